"""The candidate families `fit` compares (`FitSettings.families`), beside the fine-tuning candidates of `search`:

- `probe`: the encoder frozen, its sentence features pooled as it was trained to pool them, and a scikit-learn head
  whose regularisation is chosen by cross-validation on the training rows (`steadytune.probe`). Seconds on a few
  hundred rows. SST-2 with all-MiniLM-L6-v2, scored on all 872 dev rows: 0.69-0.72 from 64 training rows, where
  the default `train` scored 0.53-0.56 (docs/results/small-data).
- `contrastive`: SetFit's two stages (`steadytune.contrastive`): the encoder tuned on pairs drawn from the labels
  (and the label names, where they are words: `steadytune.contrastive.label_rows`), then the probe's head over its
  features. About a minute of training on 64 rows (160 pair steps); on the same SST-2 rows it matched SetFit 1.2.0
  (0.742, 0.774, 0.758 against 0.748, 0.788, 0.756 on dev at 64 rows, before the label names) where the probe
  scored 0.690, 0.712, 0.719. Classification only: SetFit has no regression head, nor does this.
- `lp-ft`: linear probing, then fine-tuning (`steadytune.lpft`, Kumar et al. 2022): the probe's head fitted on the
  frozen features, then the encoder and that head trained together. Classification and regression. A default
  family of a regression task's small file only (`settings.REGRESSION_FAMILIES`, in the contrastive family's
  place); for classification docs/results/small-data measures it beside the defaults, and it does not beat them.
- `finetune`: the (seed, learning rate) candidates of the successive-halving search (`search`).

The probe, the contrastive and the LP-FT model are one candidate each (`probe`, `contrastive`, `lp-ft`), stored in the
fit's store like a finished stage (`probe@end`), so a rerun or `rejudge` reads them instead of computing them again;
their models go where a candidate's model goes (`<out>/candidates/<name>/run/model`, a `steadytune.probe.ProbeModel`
folder, removed with the others' when the fit is done: `steadytune.fitting.outcome`). Each is picked, like any
candidate, by its validation score, and judged by the same verdict on the test split: the family is one more choice the
test rows took no part in.

On a small file (`small_file`: too few test rows to judge a model, or a classification file under
`FitSettings.cross_validate_below` rows, whose validation rows are too few to choose one) there is no held-out
split worth the name, and every row counts instead: each family
is scored by cross-validation over all rows with its head fixed in advance (`SMALL_C`), the families are compared on
the same `COMPARE_FOLDS` folds (the probe only when its lead over the families that train the encoder is beyond noise:
`steadytune.fitting.outcome.choose_small`), and the chosen one's own test must pass at 0.05 divided by the number of
families compared (Bonferroni, which holds whatever rule chooses:
`steadytune.fitting.outcome.cross_validated_verdict`). The delivered model is refitted on all rows.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..data import TaskData
from ..files import atomic_folder, to_json
from ..metrics import Baseline, compute_metrics, constant_baseline, failure, majority_baseline
from ..record import library_versions

__all__ = [
    "CONTRASTIVE",
    "LPFT",
    "PROBE",
    "SMALL_TEST_ROWS",
    "contrastive_steps",
    "family_steps",
    "run_contrastive",
    "run_lpft",
    "run_probe",
    "small_file",
]

# The probe's and the contrastive candidate's names (their stage keys in the store are NAME + "@end").
PROBE = "probe"
CONTRASTIVE = "contrastive"
LPFT = "lp-ft"
# A small file: its held-out test split has fewer rows than this. With 30 rows a model right on 75% of them is
# told from a balanced coin (binomial p < 0.05 needs 20 of 30) 4 times in 5; with the 7 test rows of a 64-row file
# only a model right on all 7 passes. Below it, the probe is judged by cross-validation over every row instead.
SMALL_TEST_ROWS = 30
# Label shuffles of the small-file permutation test: p can go down to 1/200.
PERMUTATIONS = 199
# The small-file probe's fixed head: the features standardised, then logistic regression at C = 0.01 (ridge at
# alpha = 1/C = 100 for regression, not yet measured). Fixed in advance, so that nothing is chosen on the rows the
# verdict reads. Measured on SST-2 with all-MiniLM-L6-v2, 3 samples each, all 872 dev rows: standardised at C =
# 0.01 scored 0.556-0.626 at 16 rows, 0.690-0.712 at 64 and 0.752-0.764 at 256, as good as the best of C = 0.1 and 1
# at every size, and as the raw features at C = 1 (which, unlike standardised ones, depend on the encoder's scale).
SMALL_C = 0.01
# The folds on which a small file's families are compared, and over which the contrastive family is cross-validated:
# 2, not the probe's 5, because each fold retrains the encoder (64 rows: 80 pair steps of ~0.4 s on 2 cores a fold,
# against 160 for the delivered model). Fewer training rows per fold make its estimate pessimistic, never optimistic.
COMPARE_FOLDS = 2
# A feature whose scale is below this share of the median feature's is rounding noise, not signal
# (`_without_dead_features`): float32 holds about 7 significant digits, so a coordinate a millionth as variable as
# its neighbours sits below the resolution of the vector it belongs to.
DEAD_FEATURE = 1e-6


def small_file(data: TaskData, *, below: int = 0) -> bool:
    """Whether `data` is fitted as a small file: its test split is too small to judge a held-out model
    (`SMALL_TEST_ROWS`), or it is a classification file with fewer than `below` rows in all
    (`FitSettings.cross_validate_below`), whose validation split is too small to choose among the families."""
    rows = len(data.train) + len(data.validation) + len(data.test)
    return len(data.test) < SMALL_TEST_ROWS or (data.num_labels > 1 and rows < below)


def run_probe(config: TrainConfig, data: TaskData, *, metric: str, test_base: Baseline, out: Path,
              small: bool = False) -> dict[str, Any]:  # fmt: skip
    """Fit the probe on the training split, score it on validation and test, save its model to
    `<out>/candidates/probe/run/model` (safetensors and steadytune.json; replaced whole or not at all), and return
    its record, shaped as a finished run's (`steadytune.record.RunResult`) with `"family": "probe"`.

    `small` (`small_file`): every row counts instead. The head is fixed in advance (`SMALL_C`), scored by k-fold
    cross-validation over all rows (train, validation and test together; k = 5, or the smallest class's count),
    judged by a permutation test of that score (`PERMUTATIONS` label shuffles, each refitted fold by fold, so the
    p-value accounts for the whole fitting), and the delivered head is fitted on all rows. The record's `cv` holds
    the test (and `compare`, the score on the `COMPARE_FOLDS` folds the families share); its validation and test
    scores are the cross-validated ones."""
    from ..probe import ProbeModel, embed, fit_head

    started = time.perf_counter()
    regression = data.num_labels == 1
    encoder, tokenizer, pooling = _encoder(config)
    features = {
        name: embed(encoder, tokenizer, getattr(data, name), pooling, max_length=config.max_length,
                    batch_size=config.eval_batch_size)
        for name in ("train", "validation", "test")
    }  # fmt: skip
    labels = {name: np.asarray(getattr(data, name).labels) for name in features}
    if small:
        x, y = np.concatenate(list(features.values())), np.concatenate(list(labels.values()))
        head, cv = _cross_validated(x, y, metric, regression=regression, num_labels=data.num_labels, seed=config.seed)
        cv["compare"], cv["compare_predicted"] = _fold_score(
            x, y, metric, num_labels=data.num_labels, seed=config.seed
        )
        scores = {"validation": cv["scores"], "test": cv.pop("scores")}
        chosen = {"alpha": 1 / SMALL_C} if regression else {"C": SMALL_C}
    else:
        cv = None
        head = fit_head(features["train"], labels["train"], regression=regression, seed=config.seed)
        scores = {name: compute_metrics(head.predict(features[name]), labels[name], num_labels=data.num_labels)
                  for name in ("validation", "test")}  # fmt: skip
        chosen = {"C": float(head.C_[0])} if not regression else {"alpha": float(head.alpha_)}
    model = ProbeModel.from_head(encoder, pooling, head, num_labels=data.num_labels, label_names=data.label_names)
    saved = _save(out, PROBE, model, tokenizer, config, data, metric)
    folds = cv["folds"] if cv else "leave-one-out" if regression else head.cv.get_n_splits()
    return _record(PROBE, config, data, metric, test_base, scores, time.perf_counter() - started,
                   probe={"pooling": pooling.source, "head": _head_name(head), **chosen, "folds": folds,
                          "format": saved},
                   cv=cv)  # fmt: skip


def run_contrastive(config: TrainConfig, data: TaskData, *, metric: str, test_base: Baseline, out: Path,
                    small: bool = False, step_done: Any = None) -> dict[str, Any]:  # fmt: skip
    """The contrastive candidate (`steadytune.contrastive`): the encoder tuned on pairs from the training split's
    labels, the probe's head (`fit_head`) over its features; scored on validation and test, saved and recorded as
    `run_probe` does, with `"family": "contrastive"`.

    `small`: every row counts. The whole procedure (tuning, then the fixed `SMALL_C` head) is cross-validated over
    all rows on the `COMPARE_FOLDS` folds, each fold tuning a fresh copy of the encoder; its out-of-fold predictions
    are judged by `steadytune.verdict.learned` (the exact binomial or Fisher test of those rows, each predicted by
    a model that never saw it); the delivered model is tuned on all rows. `step_done(steps)` counts pair steps."""
    from ..contrastive import ContrastiveSettings, label_rows, train_contrastive, with_partners
    from ..models import resolve_device
    from ..precision import resolve_precision
    from ..probe import ProbeModel, embed, fit_head

    if data.num_labels == 1:
        raise ValueError("the contrastive family needs classes: SetFit's pairs have no regression form")
    started = time.perf_counter()
    pristine, tokenizer, pooling = _encoder(config)
    device = resolve_device(config.device)
    precision = resolve_precision(config.recipe.precision, device)
    settings = ContrastiveSettings()
    # The label names, where they are words, join every training's rows as partners, and its head's rows
    # (`steadytune.contrastive.label_rows`); a row of a sentence-pair task is two texts, which a name is not.
    partners = label_rows(data.label_names, copies=settings.label_copies) if len(data.train.texts) == 1 else None

    def tuned(split: Any, seed: int) -> tuple[Any, list[float]]:
        encoder = copy.deepcopy(pristine).to(device)
        losses = train_contrastive(encoder, tokenizer, split, pooling, seed=seed, settings=settings,
                                   max_length=config.max_length, device=device, precision=precision,
                                   fast_path=config.fast_path, partners=partners,
                                   step_done=None if step_done is None else lambda *_: step_done(1))  # fmt: skip
        return encoder, losses

    def features(encoder: Any, split: Any) -> np.ndarray:
        return embed(encoder, tokenizer, split, pooling, max_length=config.max_length,
                     batch_size=config.eval_batch_size, device=device)  # fmt: skip

    # what a diverged run records: no head, no scores (each stays so unless its training ends finite)
    head, scores, cv, fold_steps, chosen = None, {"validation": None, "test": None}, None, 0, {}
    if small:
        every = _all_rows(data)
        y = np.asarray(every.labels)
        predicted, fold_steps = np.empty_like(y), 0
        for k, (inside, outside) in enumerate(_compare_folds(y, config.seed)):
            encoder, losses = tuned(every.select(inside), config.seed + 1 + k)
            if _diverged(losses):  # a fold that diverged: the family did, and nothing more is trained
                break
            fold_steps += len(losses)
            rows = with_partners(every.select(inside), partners)  # a head learns from the rows and the names
            head = _small_head(regression=False).fit(features(encoder, rows), rows.labels)
            predicted[outside] = head.predict(features(encoder, every.select(outside)))
        else:
            cross, cv = _out_of_fold(predicted, y, data, metric)
            encoder, losses = tuned(every, config.seed)
            if not _diverged(losses):
                rows = with_partners(every, partners)
                head = _small_head(regression=False).fit(features(encoder, rows), rows.labels)
                scores = {"validation": cross, "test": cross}
        chosen = {"C": SMALL_C}
    else:
        encoder, losses = tuned(data.train, config.seed)
        if not _diverged(losses):
            rows = with_partners(data.train, partners)
            head = fit_head(features(encoder, rows), np.asarray(rows.labels), seed=config.seed)
            scores = {name: compute_metrics(head.predict(features(encoder, getattr(data, name))),
                                            np.asarray(getattr(data, name).labels), num_labels=data.num_labels)
                      for name in ("validation", "test")}  # fmt: skip
            chosen = {"C": float(head.C_[0])}
    diverged = _diverged(losses)
    saved = None
    if not diverged:  # else a recorded outcome, not a crash: nothing is saved, the record says so
        model = ProbeModel.from_head(encoder, pooling, head, num_labels=data.num_labels, label_names=data.label_names)
        saved = _save(out, CONTRASTIVE, model, tokenizer, config, data, metric)
    return _record(CONTRASTIVE, config, data, metric, test_base, scores, time.perf_counter() - started,
                   diverged=diverged, steps=fold_steps + len(losses), curve=[{"step": i + 1, "loss": x} for i, x in
                                                                enumerate(losses)],
                   probe={"pooling": pooling.source, "head": _head_name(head), **chosen,
                          "pairs": 2 * settings.iterations * len(data.train if not small else _all_rows(data)),
                          "iterations": settings.iterations, "batch_size": settings.batch_size, "lr": settings.lr,
                          "group_by_length": settings.group_by_length,
                          "label_rows": 0 if partners is None else len(partners), "format": saved},
                   cv=cv)  # fmt: skip


def run_lpft(config: TrainConfig, data: TaskData, *, metric: str, test_base: Baseline, out: Path,
             small: bool = False, step_done: Any = None) -> dict[str, Any]:  # fmt: skip
    """The LP-FT candidate (`steadytune.lpft`): the probe's head fitted on the frozen encoder's features of the
    training split, then the encoder and that head fine-tuned together; scored, saved and recorded as
    `run_contrastive` does, with `"family": "lp-ft"`. Classification and regression alike.

    `small`: every row counts, as in `run_contrastive`: the whole procedure (the fixed `SMALL_C` head, then the
    fine-tuning) is cross-validated on the `COMPARE_FOLDS` folds and its out-of-fold predictions judged; the
    delivered model is fitted on all rows. `step_done(steps)` counts fine-tuning steps."""
    from ..lpft import LpftSettings, train_lpft
    from ..models import resolve_device
    from ..precision import resolve_precision
    from ..probe import ProbeModel, embed, fit_head

    started = time.perf_counter()
    regression = data.num_labels == 1
    pristine, tokenizer, pooling = _encoder(config)
    device = resolve_device(config.device)
    precision = resolve_precision(config.recipe.precision, device)
    settings = LpftSettings()

    def features(encoder: Any, split: Any) -> np.ndarray:
        return embed(encoder, tokenizer, split, pooling, max_length=config.max_length,
                     batch_size=config.eval_batch_size, device=device)  # fmt: skip

    def tuned(split: Any, seed: int, *, fixed_head: bool) -> tuple[Any, Any, list[float]]:
        encoder = copy.deepcopy(pristine).to(device)
        x, y = features(encoder, split), np.asarray(split.labels)
        head = (_small_head(regression=regression).fit(x, y) if fixed_head
                else fit_head(x, y, regression=regression, seed=seed))  # fmt: skip
        start = _without_dead_features(head) if fixed_head else head
        model = ProbeModel.from_head(encoder, pooling, start, num_labels=data.num_labels, label_names=data.label_names)
        losses = train_lpft(model, tokenizer, split, seed=seed, settings=settings, max_length=config.max_length,
                            device=device, precision=precision, fast_path=config.fast_path,
                            step_done=None if step_done is None else lambda *_: step_done(1))  # fmt: skip
        return model, head, losses

    def predict(model: Any, split: Any) -> np.ndarray:
        logits = features(model.encoder, split) @ model.weight.double().cpu().numpy().T
        logits += model.bias.double().cpu().numpy()
        return logits[:, 0] if regression else logits.argmax(axis=1)

    scores, cv, fold_steps = {"validation": None, "test": None}, None, 0  # a diverged run's, unless it ends finite
    if small:
        every = _all_rows(data)
        y = np.asarray(every.labels)
        predicted = np.zeros(len(y), dtype=np.float64 if regression else np.int64)
        for k, (inside, outside) in enumerate(_compare_folds(y, config.seed, regression=regression)):
            model, head, losses = tuned(every.select(inside), config.seed + 1 + k, fixed_head=True)
            if _diverged(losses):  # a fold that diverged: the family did, and nothing more is trained
                break
            fold_steps += len(losses)
            predicted[outside] = predict(model, every.select(outside))
        else:
            cross, cv = _out_of_fold(predicted, y, data, metric)
            model, head, losses = tuned(every, config.seed, fixed_head=True)
            if not _diverged(losses):
                scores = {"validation": cross, "test": cross}
        chosen = {"alpha": 1 / SMALL_C} if regression else {"C": SMALL_C}
    else:
        model, head, losses = tuned(data.train, config.seed, fixed_head=False)
        if not _diverged(losses):
            scores = {name: compute_metrics(predict(model, getattr(data, name)),
                                            np.asarray(getattr(data, name).labels), num_labels=data.num_labels)
                      for name in ("validation", "test")}  # fmt: skip
        chosen = {"alpha": float(head.alpha_)} if regression else {"C": float(head.C_[0])}
    diverged = _diverged(losses)
    saved = None
    if not diverged:  # else a recorded outcome, not a crash: nothing is saved, the record says so
        saved = _save(out, LPFT, model, tokenizer, config, data, metric)
    return _record(LPFT, config, data, metric, test_base, scores, time.perf_counter() - started,
                   diverged=diverged, steps=fold_steps + len(losses), curve=[{"step": i + 1, "loss": x} for i, x in
                                                                enumerate(losses)],
                   probe={"pooling": pooling.source, "head": _head_name(head), **chosen, "lr": settings.lr,
                          "epochs": settings.epochs, "batch_size": settings.batch_size, "format": saved},
                   cv=cv)  # fmt: skip


def family_steps(name: str, data: TaskData, *, small: bool, seed: int) -> int:
    """The training steps the `name` family's candidate takes (its progress bar's length): pair steps (contrastive)
    or fine-tuning steps (lp-ft), the cross-validation folds' included on a small file; 0 for the probe."""
    if name == CONTRASTIVE:
        return contrastive_steps(data, small=small, seed=seed)
    if name != LPFT:
        return 0
    from ..lpft import lpft_steps

    if not small:
        return lpft_steps(len(data.train))
    y = np.asarray(_all_rows(data).labels)
    return sum(
        lpft_steps(len(inside)) for inside, _ in _compare_folds(y, seed, regression=data.num_labels == 1)
    ) + lpft_steps(len(y))


def contrastive_steps(data: TaskData, *, small: bool, seed: int) -> int:
    """The pair steps `run_contrastive` takes (its progress bar's length)."""
    from ..contrastive import ContrastiveSettings

    settings = ContrastiveSettings()

    def steps(rows: int) -> int:
        return -(-2 * settings.iterations * rows // settings.batch_size)

    if not small:
        return steps(len(data.train))
    y = np.asarray(_all_rows(data).labels)
    return sum(steps(len(inside)) for inside, _ in _compare_folds(y, seed)) + steps(len(y))


def _encoder(config: TrainConfig) -> tuple[Any, Any, Any]:
    """The pre-trained encoder (the classifier's base model), its tokenizer and its pooling (`pooling_of`)."""
    from ..models import load_model, load_tokenizer, resolve_model
    from ..probe import pooling_of

    classifier, _ = load_model(config.model, label_names=None, trust_remote_code=config.trust_remote_code)
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    encoder = classifier.base_model
    return encoder, tokenizer, pooling_of(resolve_model(config.model), encoder)


def _save(out: Path, name: str, model: Any, tokenizer: Any, config: TrainConfig, data: TaskData,
          metric: str) -> str:  # fmt: skip
    """The `name` family's model (a `ProbeModel`) in its candidate folder, `<out>/candidates/<name>/run/model`,
    replaced whole; steadytune.json's "family" is `name`. Returns the folder's format: "transformers" where the
    model is a transformers sequence-classification model (`steadytune.probe.as_classifier`: a head over BERT's
    pooler), saved as one so that `transformers.pipeline` loads it; else "probe" (`ProbeModel.save`)."""
    from ..models import quiet_transformers
    from ..probe import ENCODER_DIR, as_classifier

    columns = [list(column[:4]) for column in data.train.texts]  # a few rows to check the conversion on
    batch = tokenizer(*columns, padding=True, truncation=True, max_length=config.max_length, return_tensors="pt")
    classifier = as_classifier(model, dict(batch))
    with atomic_folder(out / "candidates" / name / "run" / "model") as tmp, quiet_transformers():
        if classifier is not None:
            classifier.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        else:
            model.save(tmp)
            tokenizer.save_pretrained(tmp / ENCODER_DIR)
        (tmp / "steadytune.json").write_text(to_json({
            "text_columns": data.summary()["text_columns"], "label_names": data.label_names,
            "max_length": config.max_length, "metric": metric, **model.meta(), "family": name,
        }))  # fmt: skip
    return "probe" if classifier is None else "transformers"


def _record(family: str, config: TrainConfig, data: TaskData, metric: str, test_base: Baseline,
            scores: dict[str, Any], wall: float, *, probe: dict[str, Any], cv: dict[str, Any] | None,
            diverged: bool = False, steps: int = 0,
            curve: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """A family candidate's record, shaped as a finished run's (`steadytune.record.RunResult`)."""
    test = scores["test"] or {}
    why = failure(test.get(metric), test_base, mse=test.get("mse"), diverged=diverged)
    return {
        "family": family,
        "config": config.to_dict(),
        "data": data.summary(),
        "metric": metric,
        "majority_baseline": majority_baseline(data.test.labels, num_labels=data.num_labels, metric=metric),
        "best": {"step": steps, **scores},
        "last": {"step": steps, **scores},
        "diverged": diverged,
        "failed": why is not None,
        "failure": why,
        "steps": steps,
        "total_steps": steps,
        "evals": [],
        "curve": curve or [],
        "timings": {"setup_s": wall, "train_s": 0.0, "eval_s": 0.0, "wall_s": wall},
        "versions": library_versions(),
        "new_parameters": [],
        "surgery": {},
        "baseline": test_base.to_dict(),
        "probe": probe,
        **({"cv": cv} if cv else {}),
    }


def _diverged(losses: list[float]) -> bool:
    """Whether a training pass diverged: it ended on a non-finite loss (or took no step)."""
    return not losses or not np.isfinite(losses[-1])


def _head_name(head: Any) -> str:
    if head is None:
        return "-"
    steps = getattr(head, "steps", None)
    return " + ".join(type(s).__name__ for _, s in steps) if steps else type(head).__name__


def _all_rows(data: TaskData) -> Any:
    """Train, validation and test rows as one split, in that order (a small file's every row)."""
    return data.train.concat(data.validation, data.test, name="all")


def _small_head(*, regression: bool) -> Any:
    """The small-file head, fixed in advance (`SMALL_C`): standardised features, then logistic or ridge regression."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    last = Ridge(alpha=1 / SMALL_C) if regression else LogisticRegression(C=SMALL_C, max_iter=5000)
    return make_pipeline(StandardScaler(), last)


def _without_dead_features(head: Any) -> Any:
    """A copy of a standardised head (`_small_head`) with no weight on the features that hardly vary: their scale
    below `DEAD_FEATURE` times the median feature's. Standardising lifts such a feature's rounding noise to unit
    variance, and folding the scaling into the head divides its weight by that scale (all-MiniLM-L6-v2's normalised
    mean-pooled features have three: scales 1.6e-33, 2.0e-33 and 4.9e-9 against a median of 0.05, so 1e31 weights).
    Predicting through them is exact enough, but fine-tuning is not: their gradients flood the clipped norm and no
    other weight moves. Their share of the logits is noise, so LP-FT starts without it."""
    head = copy.deepcopy(head)
    scale, last = head.steps[0][1].scale_, head.steps[-1][1]
    dead = scale < DEAD_FEATURE * np.median(scale)
    last.coef_[..., dead] = 0.0
    return head


def _compare_folds(y: np.ndarray, seed: int, *, regression: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """The `COMPARE_FOLDS` folds a small file's families are compared on (stratified by class)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = (KFold if regression else StratifiedKFold)(COMPARE_FOLDS, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y))


def _out_of_fold(predicted: np.ndarray, y: np.ndarray, data: TaskData,
                 metric: str) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The scores of a small file's out-of-fold predictions (each row predicted by a model that never saw it), and
    their test as the record's `cv` (`out_of_fold_test`)."""
    cross = compute_metrics(predicted, y, num_labels=data.num_labels)
    score = cross.get(metric)
    p, test = out_of_fold_test(cross, y, num_labels=data.num_labels, metric=metric)
    cv = {"metric": metric, "score": -np.inf if score is None else float(score), "p": p, "folds": COMPARE_FOLDS,
          "rows": len(y), "test": test}  # fmt: skip
    cv["compare"], cv["compare_predicted"] = cv["score"], predicted.tolist()
    return cross, cv


def out_of_fold_test(cross: dict[str, float], y: np.ndarray, *, num_labels: int, metric: str) -> tuple[float, str]:
    """The p and the test of out-of-fold scores `cross` on labels `y` against their best constant predictor
    (`steadytune.verdict.learned`): the exact binomial or Fisher test of a classification's rows, the t test of a
    regression's correlation counted as one fold's rows. Cross-fitting makes each fold's correlation a near copy of
    the other's (each fold's model is fitted on the other fold's labels: for a linear head both are one bilinear
    form of the two folds' labels), so the pooled correlation varies as one fold's would: on 300 files of 128 iid
    scores and random features the all-rows t test passed 16 at 0.025, this one 3 (tests/test_lpft.py), and LP-FT
    on 100 STS-B files of 256 shuffled scores passed 7 at 0.025 counting every row (docs/results/verdict.md)."""
    from ..verdict import learned

    counts = np.bincount(y, minlength=num_labels) if num_labels > 1 else None
    n = len(y) if num_labels > 1 else len(y) // COMPARE_FOLDS  # regression: the smallest fold's rows
    judged = learned(
        cross,
        constant_baseline(y, num_labels=num_labels, metric=metric),
        n=n,
        num_labels=num_labels,
        majority_rate=None if counts is None else counts.max() / len(y),
        positives=int(counts[1]) if num_labels == 2 else None,
        split="cross-validated",
    )
    counted = "" if num_labels > 1 else f", counted as one fold's {n} rows of {len(y)}"
    return judged.p, f"{judged.test} (out-of-fold predictions{counted})"


def _fold_score(x: np.ndarray, y: np.ndarray, metric: str, *, num_labels: int,
                seed: int) -> tuple[float, list[float]]:  # fmt: skip
    """The small head's cross-validated `metric` on the shared `_compare_folds`, and its out-of-fold predictions."""
    import warnings

    regression = num_labels == 1
    predicted = np.empty_like(y)
    for inside, outside in _compare_folds(y, seed, regression=regression):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted[outside] = _small_head(regression=regression).fit(x[inside], y[inside]).predict(x[outside])
    value = compute_metrics(predicted, y, num_labels=num_labels).get(metric)
    return (-np.inf if value is None else float(value)), predicted.tolist()


def _cross_validated(x: np.ndarray, y: np.ndarray, metric: str, *, regression: bool, num_labels: int,
                     seed: int) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The small-file probe: the fixed head's k-fold cross-validated scores over all rows, the permutation test of
    `metric` (Phipson & Smyth 2010: p = (1 + shuffles scoring at least as high) / (1 + shuffles)), and the head
    fitted on all rows."""
    import warnings

    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    estimator = _small_head(regression=regression)
    if regression:
        folds = min(5, len(y))
        cv = KFold(folds, shuffle=True, random_state=seed)
    else:
        folds = int(min(5, np.bincount(y).min()))
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)

    def score(labels: np.ndarray) -> tuple[float, dict[str, float]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's notices of coming defaults; a non-converged fold
            predicted = cross_val_predict(estimator, x, labels, cv=cv)
        scores = compute_metrics(predicted, labels, num_labels=num_labels)
        value = scores.get(metric)
        return (-np.inf if value is None or not np.isfinite(value) else float(value)), scores

    observed, scores = score(y)
    rng = np.random.default_rng(seed)
    above = sum(score(rng.permutation(y))[0] >= observed for _ in range(PERMUTATIONS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head = estimator.fit(x, y)
    p = (1 + above) / (1 + PERMUTATIONS)
    test = (f"permutation test of the {folds}-fold cross-validated {metric} {observed:.4f} against {PERMUTATIONS} "
            "label shuffles")  # fmt: skip
    return head, {"scores": scores, "metric": metric, "score": observed, "p": p, "folds": folds,
                  "permutations": PERMUTATIONS, "rows": len(y), "test": test}  # fmt: skip
