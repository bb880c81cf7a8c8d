"""How a fit ends: the pick (the best validation checkpoint among the finished candidates), the verdict on the test
split (`steadytune.verdict`), and what is written: `<out>/fit.json` and, on a yes, `<out>/model` with its card.

Then the finished candidates' models (`<out>/candidates/<name>/run/model`, each as large as the model: 88 MB for
all-MiniLM-L6-v2, two fine-tuned ones, the probe's and the contrastive one by default) are removed, unless
`keep_candidates`: on a yes `<out>/model` holds the one that counts; on a no the pick's own stays, as the no line
points at it (`FitResult.why_no`), and a `<out>/model` left by an earlier yes is withdrawn (`_withdraw`). Their records
stay in the store and `candidates/<name>/run`, so a rerun of the same command re-judges the fit without training, and a
yes is delivered again from `<out>/model`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..config import TrainConfig
from ..data import TaskData
from ..errors import UserInputError
from ..files import to_json
from ..metrics import Baseline, constant_baseline
from ..verdict import ALPHA, Verdict, learned
from .families import COMPARE_FOLDS, PROBE, SMALL_C, SMALL_TEST_ROWS, out_of_fold_test
from .settings import Candidate, FitSettings

__all__ = ["FitResult", "choose_small", "conclude", "judge"]

# A small file's probe (the frozen encoder's features) is chosen over the best family that trains the encoder
# (contrastive, LP-FT) only when its lead on the folds they share is beyond noise: the 95% percentile interval of
# the paired difference, bootstrapped over rows this many times, lies above zero. Why prefer them: on all 872
# SST-2 dev rows the contrastive family scored above the probe (`steadytune.probe`) in 15 of the 16 samples of 16 to
# 1024 rows where fit chose it, SetFit in 19 of 19, and on MRPC's 3 of 3 at 256 rows; while 2 folds of 256 rows
# chose the probe by 1 row (0.8164 against 0.8125), and it scored 0.733 on dev where SetFit scored 0.781
# (docs/results/small-data). With 500 resamples the interval's lower end moves with the seed by about one row's
# worth (sd 0.007 at 64 rows, 0.003 at 256, 0.001 at 1024, measured against 20,000 resamples), and takes 0.3 s.
LEAD_RESAMPLES = 500


@dataclass
class FitResult:
    """What `fit` did: every candidate's outcome, the choice, and the verdict."""

    settings: dict[str, Any]
    config: dict[str, Any]
    data: dict[str, Any]
    metric: str
    baselines: dict[str, Any]
    """The best constant predictor on validation and on test (`steadytune.metrics.Baseline`)."""
    candidates: list[dict[str, Any]]
    chosen: str | None
    success: bool
    verdict: str
    """One sentence: what was chosen and why it counts as a success, or why nothing does."""
    test: dict[str, Any] | None
    """The chosen model's best-checkpoint test metrics."""
    steps: int
    """Training steps summed over the candidates (the compute used)."""
    full_steps: int
    """What running every candidate to the end would have taken."""
    judgement: dict[str, Any] | None = None
    """The verdict's test (`steadytune.verdict.Verdict`: yes, p, test, n, split, corrected_for, alpha); None when
    nothing finished. Folders written before 0.9 lack it until a rerun re-judges them."""
    choice: str = ""
    """Why a small file's pick is not simply the best score on the shared folds, or why the probe's lead over them
    counts (`choose_small`); empty otherwise."""
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def why_no(self, out: str | Path) -> str:
        """The one line for a fit that found no model (`success` false): how it fell short (nothing finished; the
        pick no better than the best constant predictor on validation, or on the test rows; above it on test but
        not by more than chance), where the pick's model is in those last cases (when it is still there), and what
        to try next."""
        tries = ("more candidates (--candidates), other learning rates (--lrs), re-initialising more or fewer top "
                 "layers (--reinit) or longer training (--epochs)")  # fmt: skip
        chosen = next((c for c in self.candidates if c["name"] == self.chosen), None)
        if chosen is None:
            return f"{self.verdict}; try {tries}"
        model = Path(out) / "candidates" / chosen["name"] / "run" / "model"
        # where the pick's model is, when it is there (a no keeps it; a folder that lost it is not pointed at)
        where = f"; its model is in {model} if you want it anyway" if model.is_dir() else ""
        if (self.judgement or {}).get("split") == "cross-validated":  # a small file: every row, cross-validated
            where = where.replace("its model", "its model (fitted on all rows)")
            # small by its row count (`FitSettings.cross_validate_below`), not by its test split: fine-tuning is
            # the other way to try
            finetune = ((self.data.get("sizes") or {}).get("test", 0) >= SMALL_TEST_ROWS and
                        "finetune" in self.settings.get("families", ()))  # fmt: skip
            other = ", or the held-out search with fine-tuning (--cross-validate-below 0)" if finetune else ""
            return (f"the {chosen['name']} model, cross-validated over every row of this small file, is not shown to "
                    f"beat chance: {self.verdict}{where}; more labelled rows could show it{other}")  # fmt: skip
        val = (chosen.get("best") or {}).get("validation") or {}
        if val.get(self.metric) is None or val[self.metric] <= self.baselines["validation"]["score"]:
            return f"no candidate beat the best constant predictor on validation: {self.verdict}; try {tries}"
        test = (self.test or {}).get(self.metric)
        if test is None or test <= self.baselines["test"]["score"]:
            return (f"the candidate best on validation is no better than the best constant predictor on the test "
                    f"rows: {self.verdict}; try {tries}")  # fmt: skip
        # above the constant predictor on test, but by no more than the test rows can attribute to chance
        more = " (a larger file, or --test-file)" if self.config.get("train_file") else ""
        return (f"the chosen candidate beat the best constant predictor on the test rows, but not by more than "
                f"chance: {self.verdict}{where}; more test examples{more} could tell it from chance, or try "
                f"{tries}")  # fmt: skip

    def __repr__(self) -> str:
        """A few lines: the task, the choice and its test score against the baseline, the outcomes, the verdict."""
        m, base = self.metric, self.baselines.get("test") or {}
        test = (self.test or {}).get(m)
        statuses = [c["status"] for c in self.candidates]
        outcomes = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        return (f"FitResult(task={self.data.get('name')!r}, metric={m!r}, chosen={self.chosen!r}, "
                f"success={self.success},\n"
                f"  test {m} {'-' if test is None else f'{test:.4f}'} (best constant predictor "
                f"{base.get('score', float('nan')):.4f}, {base.get('predictor', '-')}), candidates: {outcomes}, "
                f"steps={self.steps}/{self.full_steps},\n"
                f"  verdict={self.verdict!r})")  # fmt: skip


def judge(scores: dict[str, float] | None, baseline: Baseline, data: TaskData, *, n_candidates: int,
          kinds: str = "") -> Verdict:  # fmt: skip
    """fit's verdict on the chosen model's best-checkpoint `scores` on the test split (`steadytune.verdict`): those
    rows took part in no choice (candidates, checkpoints and drops read validation scores and training losses
    only), so one test of one model needs no correction for the search."""
    labels = np.asarray(data.test.labels)
    counts = None if data.num_labels == 1 else np.bincount(labels.astype(np.int64), minlength=data.num_labels)
    majority = None if counts is None else float(counts.max() / len(labels))
    positives = int(counts[1]) if counts is not None and data.num_labels == 2 else None
    return learned(scores or {}, baseline, n=len(data.test), num_labels=data.num_labels, majority_rate=majority,
                   positives=positives,
                   split="test", corrected_for=f"nothing: the choice among {n_candidates} "
                   f"candidate{'s' if n_candidates != 1 else ''}{kinds} and their checkpoints read validation scores "
                   "and training losses, never these rows")  # fmt: skip


def cross_validated_verdict(cv: dict[str, Any], data: TaskData, *, compared: int = 1) -> Verdict:
    """The small-file verdict: the chosen family's own test of its score cross-validated over every row (the probe:
    a permutation test; the contrastive and LP-FT families: the test of their out-of-fold predictions), at `ALPHA`
    divided by the `compared` families it was chosen among (Bonferroni: whichever is chosen, the chance that any of
    them passes by luck is at most `ALPHA`); the score also has to beat the best constant predictor of those rows."""
    labels = _every_label(data)
    base = constant_baseline(labels, num_labels=data.num_labels, metric=cv["metric"])
    cv = _retested(cv, data)
    alpha = ALPHA / compared
    yes = cv["p"] < alpha and cv["score"] > base.score
    test = cv.get("test") or (f"permutation test of the {cv['folds']}-fold cross-validated {cv['metric']} "
                              f"{cv['score']:.4f} against {cv['permutations']} label shuffles")  # fmt: skip
    among = (f"the choice among {compared} families, by their scores on the same {COMPARE_FOLDS} folds: Bonferroni, "
             f"p must be below {ALPHA}/{compared}; ") if compared > 1 else ""  # fmt: skip
    return Verdict(yes=bool(yes), p=float(cv["p"]), n=int(cv["rows"]), split="cross-validated", alpha=alpha,
                   test=f"{test} (best constant predictor {base.score:.4f})",
                   corrected_for=f"{among}nothing else was chosen on these rows: each family's head is fixed in "
                                 f"advance (C = {SMALL_C}) and its test refits it fold by fold")  # fmt: skip


def _every_label(data: TaskData) -> np.ndarray:
    """A small file's labels, train, validation and test rows in that order (`families._all_rows`' order)."""
    return np.concatenate([np.asarray(s.labels) for s in (data.train, data.validation, data.test)])


def _retested(cv: dict[str, Any], data: TaskData) -> dict[str, Any]:
    """A small file's `cv` record with its test as this version runs it: a regression's out-of-fold correlation
    tested as `out_of_fold_test` does (a record written before 0.14 counted every row); others as they are."""
    if data.num_labels != 1 or "permutations" in cv:
        return cv
    labels = _every_label(data)
    p, test = out_of_fold_test({cv["metric"]: cv["score"]}, labels, num_labels=1, metric=cv["metric"])
    return {**cv, "p": p, "test": test}


def _check_verdict_possible(data: TaskData, baseline: Baseline) -> None:
    """Refuse before any training when even a model right on every test row could not be told from chance: the
    verdict could then only be no (4 test rows of two balanced classes: 4 of 4 against 0.5 has p = 0.0625)."""
    labels = np.asarray(data.test.labels)
    if data.num_labels == 1:
        perfect = {"pearson": 1.0, "spearmanr": 1.0}
    else:
        present = len(np.unique(labels)) > 1
        perfect = {"accuracy": 1.0, "f1": float(bool(np.any(labels == 1))), "matthews_correlation": float(present)}
    best = judge(perfect, baseline, data, n_candidates=0)
    if not best.yes:
        raise UserInputError(
            f"the test split has {len(data.test)} rows, too few for a verdict: a model right on every one would get "
            f"{best.sentence()}, not below {best.alpha}, so fit could only say no; give it more rows (it holds out "
            "10% of a file for test) or a --test-file (two balanced classes need at least 5 test rows)"
        )


def conclude(config: TrainConfig, settings: FitSettings, data: TaskData, metric: str, val_base: Baseline,
              test_base: Baseline, candidates: list[Candidate], total: int, out: Path,
              keep_checkpoints: bool = False, *, deliver: bool = True,
              keep_candidates: bool = False) -> FitResult:  # fmt: skip
    for c in candidates:  # every stage is stored: the checkpoints have done their work, unless asked to stay
        if c.status != "dropped" or not keep_checkpoints:
            (out / "candidates" / c.name / "run.checkpoint.pt").unlink(missing_ok=True)
    finished = [c for c in candidates if c.status == "finished" and c.record["best"]["validation"] is not None]
    cross = [c for c in finished if "cv" in c.record]  # a small file: the families cross-validated over every row
    choice = ""
    for c in cross:  # each family's p as this version tests it: the table shows what the verdict would read
        c.record["cv"] = _retested(c.record["cv"], data)
    if cross:  # compared on the same folds (`families.COMPARE_FOLDS`)
        chosen, choice = choose_small(cross, data, metric, seed=config.seed)
    else:
        chosen = max(finished, key=lambda c: c.record["best"]["validation"][metric], default=None)
    if chosen is None:
        judged = None
        success, verdict, test = False, "no candidate finished with a validation score (all diverged or dropped)", None
    else:
        test = chosen.record["best"]["test"]
        kinds = _kinds(candidates)
        cv = chosen.record.get("cv")
        if cv is not None:  # a small file: every row, cross-validated (`families.run_probe`, `run_contrastive`, ...)
            judged = cross_validated_verdict(cv, data, compared=len(cross))
        else:
            judged = judge(test, test_base, data, n_candidates=len(candidates), kinds=kinds)
        success = judged.yes
        score = (test or {}).get(metric)
        how = (f"test {metric} {'-' if score is None else f'{score:.4f}'} against {test_base.score:.4f} "
               f"({test_base.predictor})")  # fmt: skip
        if cv is not None:
            how = f"every row counts on a small file: {cv['rows']} rows, {cv['folds']}-fold cross-validated"
        verdict = (f"{chosen.name}: {how}; {judged.sentence()}"
                   + ("" if success else f", not below {judged.alpha:.3g}: no better than chance"))  # fmt: skip
    result = FitResult(
        settings={f.name: getattr(settings, f.name) for f in fields(settings)},
        config=config.to_dict(), data=data.summary(), metric=metric,
        baselines={"validation": val_base.to_dict(), "test": test_base.to_dict()},
        candidates=[c.to_dict() for c in candidates], chosen=chosen.name if chosen else None, success=success,
        verdict=verdict, test=test, steps=sum(c.steps for c in candidates),
        full_steps=total * sum(c.family == "finetune" for c in candidates),
        judgement=judged.to_dict() if judged else None, choice=choice,
    )  # fmt: skip
    _write(out, result, chosen if deliver else None)
    if not keep_candidates:  # after fit.json and model/ are written: a fit killed before this lost nothing
        _remove_candidate_models(out, keep=None if result.success and deliver else result.chosen)
    return result


def choose_small(cross: list[Candidate], data: TaskData, metric: str, *, seed: int) -> tuple[Candidate, str]:
    """A small file's pick among its cross-validated families, and why when not simply the best: the best score on
    the shared folds (a tie goes to the smaller p), except that the probe leading a family that trains the encoder
    must lead it beyond noise (`LEAD_RESAMPLES`), else that family is chosen. The verdict's Bonferroni correction
    holds for any such rule: whichever family is chosen, the chance that some family passes by luck is at most
    0.05. Records written before 0.15 keep no same-fold predictions: the best score chooses."""
    from scipy.stats import bootstrap

    from ..metrics import compute_metrics

    def key(c: Candidate) -> tuple[float, float]:
        return c.record["cv"].get("compare", c.record["cv"]["score"]), -c.record["cv"]["p"]

    leader = max(cross, key=key)
    trained = [c for c in cross if c.family != PROBE]
    if leader.family != PROBE or not trained:
        return leader, ""
    other = max(trained, key=key)
    ours, theirs = leader.record["cv"].get("compare_predicted"), other.record["cv"].get("compare_predicted")
    if ours is None or theirs is None:
        return leader, ""
    y = _every_label(data)

    def one(p: np.ndarray, labels: np.ndarray) -> float | None:  # 1,000 scorings: accuracy alone takes microseconds
        if metric == "accuracy":  # where compute_metrics checks its inputs and scores F1 and MCC too (5 ms)
            return float(np.mean(p == labels))
        return compute_metrics(p, labels, num_labels=data.num_labels).get(metric)

    def lead(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float:
        score = [one(p, labels) for p in (a, b)]
        return -np.inf if None in score else float(score[0] - score[1])

    observed = key(leader)[0] - key(other)[0]
    interval = bootstrap((np.asarray(ours), np.asarray(theirs), y), lead, paired=True, vectorized=False,
                         n_resamples=LEAD_RESAMPLES, method="percentile", rng=np.random.default_rng(seed),
                         ).confidence_interval  # fmt: skip
    low, high = float(interval.low), float(interval.high)
    span = f"{observed:.4f} on the same {COMPARE_FOLDS} folds (95% bootstrap interval {low:.4f} to {high:.4f})"
    if low > 0:
        return leader, f"the probe, ahead of {other.name} beyond noise: by {span}"
    return other, f"{other.name}, as the probe's lead over it is within noise: {span}"


def _withdraw(out: Path) -> None:
    """A rerun that says no where an earlier run said yes (a newer verdict, re-judged records): `<out>/model` and its
    yes card must not outlive the yes. The model goes back to its candidate's folder when that is empty (it is the
    only copy once the candidates' models were removed; the no line then points at it when it is the pick), else it
    is removed. Before fit.json is rewritten: a fit killed in between says yes with no model, and its rerun ends
    here again."""
    import json
    import os

    previous = out / "fit.json"
    named = json.loads(previous.read_text(encoding="utf-8")).get("chosen") if previous.is_file() else None
    home = out / "candidates" / str(named) / "run" / "model"
    if named and home.parent.is_dir() and not home.exists():
        (out / "model" / "README.md").unlink(missing_ok=True)  # the yes card
        os.replace(out / "model", home)
    else:
        shutil.rmtree(out / "model")


def _remove_candidate_models(out: Path, *, keep: str | None) -> None:
    """Remove every candidate's model folder but `keep`'s (the module docstring says why); their records stay."""
    for model in (out / "candidates").glob("*/run/model"):
        if model.parent.parent.name != keep:
            shutil.rmtree(model)


def _kinds(candidates: list[Candidate]) -> str:
    """The candidates by family in words, " (a probe, a contrastive model and 9 fine-tuning runs)", when there are
    several families; empty otherwise."""
    counts = {f: sum(c.family == f for c in candidates) for f in ("probe", "contrastive", "lp-ft", "finetune")}
    if sum(bool(n) for n in counts.values()) < 2:
        return ""
    words = [w for w in ("a probe" if counts["probe"] else "", "a contrastive model" if counts["contrastive"] else "",
                         "an LP-FT model" if counts["lp-ft"] else "",
                         f"{counts['finetune']} fine-tuning runs" if counts["finetune"] else "") if w]  # fmt: skip
    return f" ({', '.join(words[:-1])} and {words[-1]})"


def _write(out: Path, result: FitResult, chosen: Candidate | None) -> None:
    """`<out>/fit.json`, and on success `<out>/model` with the chosen model and its card, each replaced whole or not
    at all: copied from `<out>/candidates/<name>/run/model`, or, on a rerun once that is removed, from `<out>/model`
    itself (its card rewritten)."""
    from ..card import fit_card
    from ..files import atomic_folder, atomic_write_text

    if not result.success and (out / "model").is_dir():
        _withdraw(out)
    if chosen is not None and result.success:  # a model that failed is no answer: its record and folder stay
        source = out / "candidates" / chosen.name / "run" / "model"
        if not source.is_dir() and (out / "model").is_dir():  # written whole or not at all (`atomic_folder`)
            source = out / "model"  # a rerun of a finished fit whose candidate models were removed: keep it
        elif not source.is_dir():
            raise UserInputError(f"{source} and {out / 'model'} are gone: the stored records chose this candidate, "
                                 "but its model is not there to copy; fit again with a new --out")  # fmt: skip
        with atomic_folder(out / "model") as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            (tmp / "README.md").write_text(fit_card(result), encoding="utf-8")
    atomic_write_text(out / "fit.json", to_json(result.to_dict()))
