"""Statistics of a multi-seed study: per (task, recipe) summaries, significance tests and expected best-of-k.

The input is one dict per finished trial (see :func:`summarize`); the output is one dict per (task, recipe), in
the order tasks and recipes first appear in the trials (the order the user asked for them), ready for
:mod:`steadytune.report` and for ``record.to_json``. What is computed, and after whom:

* mean, sample std (ddof 1), median, min and max of the test metric of the best-validation checkpoint (``best_*``)
  and of the last checkpoint (``last_*``), over all runs: a run without a score (it diverged) counts at the
  failure line, the best constant predictor's score, so a recipe cannot rank better by diverging;
* the failure rate (failed or diverged runs over all runs; ``steadytune.metrics.failure``), compared with the
  reference recipe's by Fisher's exact test, one-sided: "this recipe fails more often than the reference";
* a one-sided Welch t-test of the task's best recipe against each other recipe (Zhang et al. 2021, Table 1);
  ``bold`` marks the best mean and every recipe whose mean is above that of every recipe significantly worse
  than the best (Holm-adjusted), which is monotone in the mean;
* the Brown-Forsythe variant of Levene's test (deviations from the median) of equal variances against the
  reference recipe, as Mosbach et al. 2021 compare the spread of fine-tuning runs;
* Holm's step-down adjustment of each family of p-values (per task: Welch, Levene, Fisher), beside the raw ones;
* the expected test metric of the run with the best validation score among k runs drawn with replacement (Dodge
  et al. 2019, "Show Your Work"; Zhang et al. 2021 Fig. 4), k = 1..n, in closed form
  (:func:`expected_max_performance`);
* what the test split can resolve (:func:`resolution`): the smallest score that beats the failure line at
  p < alpha, and how many runs that did not fail stay below it ("not failed" is not "learned").

The tests come from scipy; this module groups, imputes and handles the degenerate cases (too few scores,
constant samples) by giving ``None`` with the reason (``*_why``) instead of NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom, fisher_exact, levene, ttest_ind
from scipy.stats import t as student_t

from steadytune.errors import UserInputError

__all__ = [
    "REQUIRED_KEYS", "default_reference", "describe", "expected_max_performance", "finite_scores", "holm",
    "ordered_unique", "resolution", "run_score", "summarize",
]  # fmt: skip

REQUIRED_KEYS = (
    "task", "recipe", "seed", "metric", "majority_baseline", "test_best", "test_last", "validation_best",
    "failed", "diverged",
)  # fmt: skip

_STATISTICS = ("mean", "std", "median", "min", "max")
# Scores are fractions of a test split (k/n) or correlations: a run "at" a threshold computed as the same k/n may
# differ from it in the last bit only, far below the 1/n (n < 10^6) between two attainable scores.
_TOLERANCE = 1e-12
_CORRELATIONS = ("matthews_correlation", "pearson", "spearmanr")
# The optimizer of a bias-corrected recipe (`adam`): the default reference of the variance and failure tests.
_REFERENCE_OPTIMIZER = "adamw"


def ordered_unique(items: Iterable[Any]) -> list[Any]:
    """The distinct items in the order they first appear (how tasks and recipes are ordered in a study)."""
    return list(dict.fromkeys(items))


def finite_scores(values: Iterable[float | None]) -> np.ndarray:
    """The finite values as a float64 array; ``None`` and NaN/inf (a run with no usable score) are dropped."""
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def _scored(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def run_score(value: float | None, baseline: float) -> float:
    """A run's score in the statistics: its own when finite, else (it diverged) the failure line ``baseline``."""
    return float(value) if _scored(value) else float(baseline)


@contextmanager
def _quietly_degenerate() -> Iterator[None]:
    """Silence scipy's warnings for (nearly) constant samples; the caller turns a NaN result into ``None``."""
    with warnings.catch_warnings():
        for message in ("Precision loss occurred", "invalid value encountered", "divide by zero encountered"):
            warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
        yield


def describe(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``n`` (finite values), ``mean``, ``std`` (ddof 1), ``median``, ``min`` and ``max`` of ``values``.

    ``None`` and non-finite values are left out. With no value left every statistic is ``None``; with one value
    ``std`` is ``None`` (a sample std needs two).
    """
    x = finite_scores(values)
    if x.size == 0:
        return {"n": 0, **dict.fromkeys(_STATISTICS)}
    return {
        "n": int(x.size),
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)) if x.size >= 2 else None,
        "median": float(np.median(x)),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
    }


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of one family of p-values (``None``: no test, not counted in the family).

    With the m p-values sorted, p_(1) <= ... <= p_(m), the adjusted p_(i) is max_{j <= i} min(1, (m - j + 1) p_(j)):
    rejecting where it is below alpha keeps the family-wise error rate at alpha (Holm 1979).
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def expected_max_performance(
    validation: ArrayLike, test: ArrayLike, *, k_max: int | None = None
) -> list[dict[str, float | int]]:
    r"""Expected test score of the best-validation run among k runs drawn with replacement, k = 1..``k_max``.

    Dodge et al. 2019, exactly: group the n runs by distinct validation score :math:`v_1 < \dots < v_G`, let
    :math:`F_g` be the share of runs with validation :math:`\le v_g` and :math:`m_g` the mean test score of group g
    (runs tied in validation are equally likely picks, so a tie group is worth its mean). The best of k draws lies
    in group g with probability :math:`w_g = F_g^k - F_{g-1}^k`, so :math:`E_k = \sum_g w_g m_g`; k = 1 gives the
    plain mean. ``std`` is :math:`\sqrt{\sum_g w_g (m_g - E_k)^2}` (the second moment less :math:`E_k^2`): the
    spread over draws of the picked tie group's mean, which is the picked run's test score when validation scores
    are distinct. Returns ``{"k", "mean", "std"}`` per k.

    Args:
        validation, test: one score per run, the same length (at least 1); test finite, validation finite or
            ``-inf`` (a run without a validation score, picked only when every draw is such a run).
        k_max: the largest k (default: the number of runs); may exceed it, as draws are with replacement.
    """
    validation = np.asarray(validation, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if validation.ndim != 1 or validation.shape != test.shape or validation.size == 0:
        raise UserInputError(
            f"validation and test must be non-empty 1-D arrays of one length, got shapes {validation.shape} "
            f"and {test.shape}"
        )
    if not (np.all(np.isfinite(test)) and not np.any(np.isnan(validation) | (validation == np.inf))):
        raise UserInputError("test scores must be finite and validation scores finite or -inf")
    k_max = validation.size if k_max is None else k_max
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or k_max < 1:
        raise UserInputError(f"k_max must be a positive integer, got {k_max!r}")
    _, group = np.unique(validation, return_inverse=True)
    counts = np.bincount(group)
    means = np.bincount(group, weights=test) / counts
    below = np.cumsum(counts) / validation.size  # F_g; the last is n/n = 1 exactly
    above = np.concatenate([[0.0], below[:-1]])  # F_{g-1}
    out = []
    for k in range(1, int(k_max) + 1):
        weights = below**k - above**k
        mean = float(np.sum(weights * means))
        out.append({"k": k, "mean": mean, "std": math.sqrt(float(np.sum(weights * (means - mean) ** 2)))})
    return out


def resolution(metric: str, test_size: int | None, baseline: float, *, alpha: float = 0.05) -> dict[str, Any]:
    """The smallest test score that beats the failure line at p < ``alpha`` on a test split of ``test_size``.

    Returns ``{"threshold", "test", "correct", "rate", "why"}``: ``test`` names the test; ``correct`` and ``rate``
    are the binomial test's count c of correct answers and its null rate (accuracy, F1); where no threshold exists
    it is None and ``why`` says why.

    * accuracy (``test`` "binomial"): the smallest c/n with P(X >= c) < alpha for X ~ Binomial(n, ``baseline``),
      the one-sided exact binomial test against the majority-class rate;
    * Matthews correlation, Pearson, Spearman ("t"): the critical correlation of the one-sided t test of zero
      correlation, r = t / sqrt(n - 2 + t^2) with t the 1 - alpha quantile of Student's t with n - 2 degrees of
      freedom (scipy's test for Pearson and Spearman; for MCC n * MCC^2 is the chi-square statistic, the same
      test to first order);
    * F1, binary ("binomial-f1"): the F1 of the predictor that reaches the accuracy threshold c/n (against the
      majority rate) with no false negative, 2P / (2P + n - c), P the test positives, read off the failure line
      2P / (P + n) of always-positive. An F1 at or above it forces at most n - c errors (F1 = 2TP / (2TP + errors)
      with TP <= P), so the run's accuracy beats the majority class at p < alpha; below it nothing is claimed.
    """
    n = test_size
    none = {"threshold": None, "test": None, "correct": None, "rate": None}
    if n is None or n < 1:
        return {**none, "why": "test-split size unknown"}
    if metric in _CORRELATIONS:
        if n < 3:
            return {**none, "why": "n < 3"}
        t = float(student_t.ppf(1 - alpha, n - 2))
        return {**none, "threshold": t / math.sqrt(n - 2 + t * t), "test": "t", "why": None}
    if metric not in ("accuracy", "f1"):
        return {**none, "why": f"no test for {metric}"}
    majority, positives = baseline, None
    if metric == "f1":
        positives = round(baseline * n / (2 - baseline))
        if positives < 1 or abs(2 * positives / (positives + n) - baseline) > _TOLERANCE:
            return {**none, "why": "failure line not the F1 of always-positive"}
        majority = max(positives, n - positives) / n
    tail = binom.sf(np.arange(n + 1) - 1, n, majority)  # P(X >= c), c = 0..n
    if not np.any(tail < alpha):
        return {**none, "why": f"no score reaches p < {alpha:g} at n = {n}"}
    c = int(np.argmax(tail < alpha))
    found = {"correct": c, "rate": majority, "why": None}
    if positives is None:
        return {"threshold": c / n, "test": "binomial", **found}
    return {"threshold": 2 * positives / (2 * positives + n - c), "test": "binomial-f1", **found}


def _unresolved(group: Sequence[dict[str, Any]], not_failed: list[float], threshold: float | None) -> int | None:
    """Runs that did not fail yet are not shown to have learned: by `steadytune.verdict`'s test of each run's last
    test scores (``learned_last``, the test behind fit's yes) where the rows carry it, else below ``threshold``."""
    judged = [row.get("learned_last") for row in group if not (row["failed"] or row["diverged"])]
    if judged and all(x is not None for x in judged):
        return sum(not x for x in judged)
    return None if threshold is None else sum(s < threshold - _TOLERANCE for s in not_failed)


def default_reference(rows: Sequence[dict[str, Any]]) -> str | None:
    """The first recipe (in study order) of a bias-corrected optimizer (``config.optimizer == "adamw"``), else
    the first recipe; None without rows."""
    recipes = ordered_unique(row["recipe"] for row in rows)
    adam = [row["recipe"] for row in rows if row.get("config.optimizer") == _REFERENCE_OPTIMIZER]
    return next((r for r in recipes if r in adam), recipes[0] if recipes else None)


def _check_rows(rows: Sequence[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        missing = [key for key in REQUIRED_KEYS if key not in row]
        if missing:
            raise UserInputError(f"trial row {i} lacks {', '.join(missing)}")
    for task in ordered_unique(row["task"] for row in rows):
        task_rows = [row for row in rows if row["task"] == task]
        # One test split per task: every trial is scored with one metric on the same rows, or the recipes cannot
        # be compared. (The failure line may differ where some records kept a verdict of an older rule.)
        for key in ("metric", "majority_baseline", "test_size"):
            values = ordered_unique(row.get(key) for row in task_rows)
            if len(values) > 1:
                raise UserInputError(f"task {task!r}: trials disagree on {key}: {', '.join(map(repr, values))}")


def summarize(
    rows: Sequence[dict[str, Any]], *, reference: str | None = None, alpha: float = 0.05
) -> list[dict[str, Any]]:
    """One summary dict per (task, recipe): tasks, then recipes, in the order they first appear in ``rows``.

    Each row is one finished trial (:func:`steadytune.study.results.trial_rows`) with ``task``, ``recipe``,
    ``seed``, ``metric``, ``majority_baseline``, ``test_best``, ``test_last``, ``validation_best`` (floats, ``None``
    when the run diverged before it was scored), ``failed`` and ``diverged`` (bools); optional ``baseline`` (the
    failure line; default ``majority_baseline``; a task's comes from a row whose ``rule`` is not "stored" where
    there is one), ``baseline_predictor``, ``baseline_mse``, ``test_size``, ``rule`` and ``config.optimizer``.

    ``reference`` (default :func:`default_reference`) is the recipe the Levene and Fisher tests compare with; a
    name not among the rows' recipes is a ``UserInputError``. A summary holds ``task``, ``recipe``, ``metric``,
    ``majority_baseline``, ``baseline``, ``baseline_predictor``, ``baseline_mse``, ``test_size``, ``n`` (all runs),
    and:

    * ``best_*`` and ``last_*`` (``n``, ``mean``, ``std``, ``median``, ``min``, ``max``, :func:`describe`) of the
      test metric at the best-validation and the last checkpoint over all runs, a run without a score counted at
      ``baseline`` (:func:`run_score`; ``imputed_best`` and ``imputed_last`` count them).
    * ``failed`` (failed or diverged runs), ``failure_rate`` (``failed / n``), ``diverged``.
    * ``best_recipe`` (highest ``best_mean``, the first on a tie); ``welch_p``: one-sided Welch t-test
      (``ttest_ind(equal_var=False, alternative="greater")``) that the best recipe's scores are higher;
      ``welch_holm``: Holm-adjusted over the task's Welch tests; ``bold``: the best recipe, and every recipe whose
      ``best_mean`` is above that of every recipe with ``welch_holm < alpha``.
    * ``levene_p`` / ``levene_holm``: Brown-Forsythe test (``levene(center="median")``) against ``reference``.
    * ``fisher_p`` / ``fisher_holm``: Fisher's exact test of the 2x2 table (failed, not failed) x (this recipe,
      reference), ``alternative="greater"``: this recipe's odds of failing exceed the reference's.
    * ``*_why`` for each test: ``None`` with a p-value, else why there is none ("best", "reference", "n < 2",
      "constant" (equal constant samples), "no reference runs").
    * ``expected``: :func:`expected_max_performance` of the best checkpoints (validation ``-inf`` where missing),
      k = 1..n; k = 1 is ``best_mean``.
    * ``resolution``: :func:`resolution` of the task; ``not_failed`` and ``unresolved`` (runs that did not fail
      whose last-checkpoint score is below the threshold).
    * ``alpha``, ``reference``, repeated for the report.
    """
    if not 0 < alpha < 1:
        raise UserInputError(f"alpha must lie in (0, 1), got {alpha!r}")
    _check_rows(rows)
    recipes = ordered_unique(row["recipe"] for row in rows)
    if reference is None:
        reference = default_reference(rows)
    elif reference not in recipes:
        raise UserInputError(f"reference recipe {reference!r} is not in the study; recipes: {', '.join(recipes)}")
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["task"], row["recipe"]), []).append(row)
    summaries: list[dict[str, Any]] = []
    for task in ordered_unique(row["task"] for row in rows):
        groups = {recipe: grouped[task, recipe] for recipe in recipes if (task, recipe) in grouped}
        summaries += _task_summaries(groups, reference, alpha)
    return summaries


def _task_summaries(groups: dict[str, list[dict[str, Any]]], reference: str, alpha: float) -> list[dict[str, Any]]:
    task_rows = [row for group in groups.values() for row in group]
    # The failure line of the current rule: from a re-scored row where there is one (rule "stored" rows carry the
    # majority-class score of the rule they were stored with).
    first = next((row for row in task_rows if row.get("rule") != "stored"), task_rows[0])
    baseline = float(first.get("baseline", first["majority_baseline"]))
    res = resolution(first["metric"], first.get("test_size"), baseline, alpha=alpha)
    best_scores = {r: np.array([run_score(x["test_best"], baseline) for x in g]) for r, g in groups.items()}
    means = {recipe: float(np.mean(x)) for recipe, x in best_scores.items()}
    best_recipe = max(means, key=means.__getitem__)  # max keeps the first of equal means
    failures = {r: sum(bool(x["failed"]) or bool(x["diverged"]) for x in g) for r, g in groups.items()}
    entries = []
    for recipe, group in groups.items():
        last = [run_score(row["test_last"], baseline) for row in group]
        not_failed = [score for row, score in zip(group, last) if not (row["failed"] or row["diverged"])]
        threshold = res["threshold"]
        entry: dict[str, Any] = {
            "task": first["task"], "recipe": recipe, "metric": first["metric"],
            "majority_baseline": float(first["majority_baseline"]), "baseline": baseline,
            "baseline_predictor": first.get("baseline_predictor"), "baseline_mse": first.get("baseline_mse"),
            "test_size": first.get("test_size"),
            "n": len(group),
            **{f"best_{key}": value for key, value in describe(best_scores[recipe].tolist()).items()},
            **{f"last_{key}": value for key, value in describe(last).items()},
            "imputed_best": sum(not _scored(row["test_best"]) for row in group),
            "imputed_last": sum(not _scored(row["test_last"]) for row in group),
            "failed": failures[recipe], "failure_rate": failures[recipe] / len(group),
            "diverged": sum(bool(row["diverged"]) for row in group),
            "best_recipe": best_recipe, "alpha": alpha, "reference": reference,
            "resolution": res, "not_failed": len(not_failed),
            "unresolved": _unresolved(group, not_failed, threshold),
        }  # fmt: skip
        entry.update(_welch(best_scores, recipe, best_recipe))
        entry.update(_levene(best_scores, recipe, reference))
        entry.update(_fisher(failures, {r: len(g) for r, g in groups.items()}, recipe, reference))
        validation = [row["validation_best"] if _scored(row["validation_best"]) else -math.inf for row in group]
        entry["expected"] = expected_max_performance(validation, best_scores[recipe])
        entries.append(entry)
    for test in ("welch", "levene", "fisher"):
        for entry, adjusted in zip(entries, holm([e[f"{test}_p"] for e in entries])):
            entry[f"{test}_holm"] = adjusted
    worse = [e["best_mean"] for e in entries if e["welch_holm"] is not None and e["welch_holm"] < alpha]
    for entry in entries:
        entry["bold"] = entry["recipe"] == best_recipe or entry["best_mean"] > max(worse, default=-math.inf)
    return entries


def _test(p: float, why: str = "constant") -> tuple[float | None, str | None]:
    """scipy's p-value, or None with ``why`` where it is NaN (0/0: samples constant and equal)."""
    return (None, why) if math.isnan(p) else (float(p), None)


def _welch(scores: dict[str, np.ndarray], recipe: str, best_recipe: str) -> dict[str, Any]:
    """``welch_p`` and ``welch_why`` of ``best_recipe`` > ``recipe`` (see :func:`summarize`)."""
    if recipe == best_recipe:
        return {"welch_p": None, "welch_why": "best"}
    if scores[recipe].size < 2 or scores[best_recipe].size < 2:
        return {"welch_p": None, "welch_why": "n < 2"}
    with _quietly_degenerate():
        result = ttest_ind(scores[best_recipe], scores[recipe], equal_var=False, alternative="greater")
    return dict(zip(("welch_p", "welch_why"), _test(float(result.pvalue))))


def _levene(scores: dict[str, np.ndarray], recipe: str, reference: str) -> dict[str, Any]:
    """Brown-Forsythe p-value of ``recipe`` against ``reference`` (see :func:`summarize`)."""
    if recipe == reference:
        return {"levene_p": None, "levene_why": "reference"}
    if reference not in scores:
        return {"levene_p": None, "levene_why": "no reference runs"}
    if scores[recipe].size < 2 or scores[reference].size < 2:
        return {"levene_p": None, "levene_why": "n < 2"}
    with _quietly_degenerate():
        result = levene(scores[recipe], scores[reference], center="median")
    return dict(zip(("levene_p", "levene_why"), _test(float(result.pvalue))))


def _fisher(failed: dict[str, int], n: dict[str, int], recipe: str, reference: str) -> dict[str, Any]:
    """One-sided Fisher p-value that ``recipe`` fails more often than ``reference`` (see :func:`summarize`)."""
    if recipe == reference:
        return {"fisher_p": None, "fisher_why": "reference"}
    if reference not in n:
        return {"fisher_p": None, "fisher_why": "no reference runs"}
    table = [[failed[recipe], n[recipe] - failed[recipe]], [failed[reference], n[reference] - failed[reference]]]
    return {"fisher_p": float(fisher_exact(table, alternative="greater").pvalue), "fisher_why": None}
