"""The candidate families `fit` compares (`FitSettings.families`), beside the fine-tuning candidates of `search`:

- `probe`: the encoder frozen, its sentence features pooled as it was trained to pool them, and a scikit-learn head
  whose regularisation is chosen by cross-validation on the training rows (`steadytune.probe`). Seconds on a few
  hundred rows. SST-2 with all-MiniLM-L6-v2, scored on all 872 dev rows: 0.69-0.72 from 64 training rows, where
  the default `train` scored 0.53-0.56 (docs/results/small-data).
- `finetune`: the (seed, learning rate) candidates of the successive-halving search (`search`).

A probe is one candidate, `probe`, stored in the fit's store like a finished stage (`probe@end`), so a rerun or
`rejudge` reads it instead of computing it again; its model goes where a candidate's model goes
(`<out>/candidates/probe/run/model`). It is picked, like any candidate, by its validation score, and judged by the
same verdict on the test split: the family is one more choice the test rows took no part in.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..data import TaskData
from ..files import atomic_folder, to_json
from ..metrics import Baseline, compute_metrics, failure, majority_baseline
from ..record import library_versions

__all__ = ["PROBE", "SMALL_TEST_ROWS", "run_probe", "small_file"]

# The probe candidate's name (its stage key in the store is PROBE + "@end").
PROBE = "probe"
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


def small_file(data: TaskData) -> bool:
    """Whether the test split is too small to judge a held-out model (`SMALL_TEST_ROWS`)."""
    return len(data.test) < SMALL_TEST_ROWS


def run_probe(config: TrainConfig, data: TaskData, *, metric: str, test_base: Baseline, out: Path,
              small: bool = False) -> dict[str, Any]:  # fmt: skip
    """Fit the probe on the training split, score it on validation and test, save its model to
    `<out>/candidates/probe/run/model` (safetensors and steadytune.json; replaced whole or not at all), and return
    its record, shaped as a finished run's (`steadytune.record.RunResult`) with `"family": "probe"`.

    `small` (`small_file`): every row counts instead. The head is fixed in advance (`SMALL_C`), scored by k-fold
    cross-validation over all rows (train, validation and test together; k = 5, or the smallest class's count),
    judged by a permutation test of that score (`PERMUTATIONS` label shuffles, each refitted fold by fold, so the
    p-value accounts for the whole fitting), and the delivered head is fitted on all rows. The record's `cv` holds
    the test; its validation and test scores are the cross-validated ones."""
    from ..models import load_model, load_tokenizer, quiet_transformers, resolve_model
    from ..probe import ENCODER_DIR, ProbeModel, embed, fit_head, pooling_of

    started = time.perf_counter()
    regression = data.num_labels == 1
    classifier, _ = load_model(config.model, label_names=data.label_names, trust_remote_code=config.trust_remote_code)
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    encoder = classifier.base_model
    pooling = pooling_of(resolve_model(config.model), encoder)
    features = {
        name: embed(encoder, tokenizer, getattr(data, name), pooling, max_length=config.max_length,
                    batch_size=config.eval_batch_size)
        for name in ("train", "validation", "test")
    }  # fmt: skip
    labels = {name: np.asarray(getattr(data, name).labels) for name in features}
    if small:
        x, y = np.concatenate(list(features.values())), np.concatenate(list(labels.values()))
        head, cv = _cross_validated(x, y, metric, regression=regression, num_labels=data.num_labels, seed=config.seed)
        cross_validated = cv.pop("scores")
        scores = {"validation": cross_validated, "test": cross_validated}
    else:
        cv = None
        head = fit_head(features["train"], labels["train"], regression=regression, seed=config.seed)
        scores = {}
        for name in ("validation", "test"):
            predicted = head.predict(features[name])
            scores[name] = compute_metrics(predicted, labels[name], num_labels=data.num_labels)
    model = ProbeModel.from_head(encoder, pooling, head, num_labels=data.num_labels, label_names=data.label_names)
    with atomic_folder(out / "candidates" / PROBE / "run" / "model") as tmp, quiet_transformers():
        model.save(tmp)
        tokenizer.save_pretrained(tmp / ENCODER_DIR)
        (tmp / "steadytune.json").write_text(to_json({
            "text_columns": data.summary()["text_columns"], "label_names": data.label_names,
            "max_length": config.max_length, "metric": metric, **model.meta(),
        }))  # fmt: skip
    test = scores["test"]
    why = failure(test.get(metric), test_base, mse=test.get("mse"))
    if small:
        chosen = {"alpha": 1 / SMALL_C} if regression else {"C": SMALL_C}
    else:
        chosen = {"C": float(head.C_[0])} if not regression else {"alpha": float(head.alpha_)}
    wall = time.perf_counter() - started
    return {
        "family": PROBE,
        "config": config.to_dict(),
        "data": data.summary(),
        "metric": metric,
        "majority_baseline": majority_baseline(data.test.labels, num_labels=data.num_labels, metric=metric),
        "best": {"step": 0, **scores},
        "last": {"step": 0, **scores},
        "diverged": False,
        "failed": why is not None,
        "failure": why,
        "steps": 0,
        "total_steps": 0,
        "evals": [],
        "curve": [],
        "timings": {"setup_s": wall, "train_s": 0.0, "eval_s": 0.0, "wall_s": wall},
        "versions": library_versions(),
        "new_parameters": [],
        "surgery": {},
        "baseline": test_base.to_dict(),
        "probe": {"pooling": pooling.source, "head": _head_name(head), **chosen,
                  "folds": cv["folds"] if cv else "leave-one-out" if regression else head.cv.get_n_splits()},
        **({"cv": cv} if cv else {}),
    }  # fmt: skip


def _head_name(head: Any) -> str:
    steps = getattr(head, "steps", None)
    return " + ".join(type(s).__name__ for _, s in steps) if steps else type(head).__name__


def _cross_validated(x: np.ndarray, y: np.ndarray, metric: str, *, regression: bool, num_labels: int,
                     seed: int) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The small-file probe: the fixed head's k-fold cross-validated scores over all rows, the permutation test of
    `metric` (Phipson & Smyth 2010: p = (1 + shuffles scoring at least as high) / (1 + shuffles)), and the head
    fitted on all rows."""
    import warnings

    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if regression:
        estimator, folds = make_pipeline(StandardScaler(), Ridge(alpha=1 / SMALL_C)), min(5, len(y))
        cv = KFold(folds, shuffle=True, random_state=seed)
    else:
        estimator = make_pipeline(StandardScaler(), LogisticRegression(C=SMALL_C, max_iter=5000))
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
    return head, {"scores": scores, "metric": metric, "score": observed, "p": p, "folds": folds,
                  "permutations": PERMUTATIONS, "rows": len(y)}  # fmt: skip
