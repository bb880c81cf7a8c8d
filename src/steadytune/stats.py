"""Statistics of a multi-seed study: per (task, recipe) summaries, significance tests and expected best-of-k.

The input is one dict per finished trial (see :func:`summarize`); the output is one dict per (task, recipe), in
the order tasks and recipes first appear in the trials (the order the user asked for them), ready for
:mod:`steadytune.report` and for ``record.to_json``. What is computed, and after whom:

* mean, sample std (ddof 1), median, min and max of the test metric of the best-validation checkpoint (``best_*``)
  and of the last checkpoint (``last_*``), over the seeds;
* the failure rate: failed runs (Mosbach et al. 2021: last-checkpoint test metric at or below the majority-class
  baseline) plus diverged runs, over all runs;
* a one-tailed Welch t-test of the task's best recipe against each other recipe; the best recipe and those not
  significantly worse are its "ties", what Zhang et al. 2021 print in bold in Table 1;
* the Brown-Forsythe variant of Levene's test (deviations from the median) of equal variances against a baseline
  recipe, as Mosbach et al. 2021 compare the spread of fine-tuning runs;
* the expected test metric of the trial with the best validation score among k trials (Dodge et al. 2019, "Show
  Your Work"; Zhang et al. 2021 Fig. 4), for k = 1..n, by bootstrap.

A trial whose score is missing (``None``: it diverged before it could be scored) or not finite counts in ``n``,
in the failure rate and in the diverged count, but is left out of every mean, test and bootstrap: there is no
number to put in. The tests and the bootstrap come from scipy and numpy; this module only groups, filters and
handles the degenerate cases (too few scores, constant samples) by returning ``None`` instead of NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import levene, ttest_ind

from steadytune.errors import UserInputError

__all__ = ["REQUIRED_KEYS", "describe", "expected_max_performance", "finite_scores", "ordered_unique", "summarize"]

REQUIRED_KEYS = (
    "task", "recipe", "seed", "metric", "majority_baseline", "test_best", "test_last", "validation_best",
    "failed", "diverged",
)  # fmt: skip

_STATISTICS = ("mean", "std", "median", "min", "max")


def ordered_unique(items: Iterable[Any]) -> list[Any]:
    """The distinct items in the order they first appear (how tasks and recipes are ordered in a study)."""
    return list(dict.fromkeys(items))


def finite_scores(values: Iterable[float | None]) -> np.ndarray:
    """The finite values as a float64 array; ``None`` and NaN/inf (a run with no usable score) are dropped."""
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def _p_value(value: float) -> float | None:
    """A p-value as a Python float, or ``None`` where scipy returns NaN (the test is undefined)."""
    return None if math.isnan(value) else float(value)


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


def _check_n_boot(n_boot: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise UserInputError(f"n_boot must be a positive integer, got {n_boot!r}")


def expected_max_performance(
    validation: ArrayLike,
    test: ArrayLike,
    *,
    k_max: int | None = None,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
) -> list[dict[str, float | int]]:
    r"""Expected test score of the best-validation trial among k trials, for k = 1..``k_max`` (Dodge et al. 2019).

    Each of ``n_boot`` bootstrap draws picks ``k_max`` trials with replacement; for every k, the draw's first k
    trials are ranked by validation score and the test score of the best one is kept. Ties in validation go to
    the trial drawn first, which, since draw positions are exchangeable, is a uniformly random pick among the tied
    draws. Returns ``{"k", "mean", "std"}`` per k: the mean and the std (of the bootstrap distribution itself,
    ddof 0) of that test score over the draws.

    When validation and test rank the trials alike, the exact value is
    :math:`\sum_i x_{(i)} \left((i/n)^k - ((i-1)/n)^k\right)` for sorted scores :math:`x_{(1)} \le \dots \le
    x_{(n)}`; k = 1 gives the mean.

    Args:
        validation, test: one score per trial, finite, the same length (at least 1).
        k_max: the largest k (default: the number of trials); may exceed it, as draws are with replacement.
        n_boot: the number of bootstrap draws.
        seed: an int, or a ``numpy.random.Generator`` to draw from.
    """
    validation = np.asarray(validation, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if validation.ndim != 1 or validation.shape != test.shape or validation.size == 0:
        raise UserInputError(
            f"validation and test must be non-empty 1-D arrays of one length, got shapes {validation.shape} "
            f"and {test.shape}"
        )
    if not (np.all(np.isfinite(validation)) and np.all(np.isfinite(test))):
        raise UserInputError("validation and test scores must be finite (leave unscored trials out)")
    _check_n_boot(n_boot)
    k_max = validation.size if k_max is None else k_max
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or k_max < 1:
        raise UserInputError(f"k_max must be a positive integer, got {k_max!r}")

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, validation.size, size=(n_boot, k_max))
    val, tst = validation[draws], test[draws]
    # The position of the best validation score among the first k draws, for every k at once: a position takes
    # over only when its score beats (strictly) every earlier one, so ties stay with the earliest draw.
    earlier_best = np.maximum.accumulate(val, axis=1)
    takes_over = np.ones_like(val, dtype=bool)
    takes_over[:, 1:] = val[:, 1:] > earlier_best[:, :-1]
    best_position = np.maximum.accumulate(np.where(takes_over, np.arange(k_max), 0), axis=1)
    best_test = np.take_along_axis(tst, best_position, axis=1)
    means, stds = best_test.mean(axis=0), best_test.std(axis=0)
    return [{"k": k, "mean": float(means[k - 1]), "std": float(stds[k - 1])} for k in range(1, k_max + 1)]


def _check_rows(rows: Sequence[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        missing = [key for key in REQUIRED_KEYS if key not in row]
        if missing:
            raise UserInputError(f"trial row {i} lacks {', '.join(missing)}")
    for task in ordered_unique(row["task"] for row in rows):
        task_rows = [row for row in rows if row["task"] == task]
        # One test split per task: every trial is scored with one metric against one majority baseline, or the
        # recipes cannot be compared (and the report draws one baseline line per task).
        for key in ("metric", "majority_baseline"):
            values = ordered_unique(row[key] for row in task_rows)
            if len(values) > 1:
                raise UserInputError(f"task {task!r}: trials disagree on {key}: {', '.join(map(repr, values))}")


def _paired(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test scores of the best checkpoint of the trials that have both (finite)."""
    pairs = [
        (row["validation_best"], row["test_best"])
        for row in rows
        if row["validation_best"] is not None
        and row["test_best"] is not None
        and math.isfinite(row["validation_best"])
        and math.isfinite(row["test_best"])
    ]
    array = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def summarize(
    rows: Sequence[dict[str, Any]],
    *,
    baseline_recipe: str = "adam",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One summary dict per (task, recipe): tasks, then recipes, in the order they first appear in ``rows``.

    Each row is one finished trial with the keys ``task``, ``recipe``, ``seed``, ``metric``,
    ``majority_baseline``, ``test_best``, ``test_last``, ``validation_best`` (floats, ``None`` when the run
    diverged before it was scored), ``failed`` and ``diverged`` (bools); other keys are ignored.

    A summary holds ``task``, ``recipe``, ``metric``, ``majority_baseline``, ``n`` (all trials) and:

    * ``best_n``, ``best_mean``, ``best_std``, ``best_median``, ``best_min``, ``best_max``: the test metric of the
      best-validation checkpoint over the trials that have one (see :func:`describe`); ``last_*`` the same for
      the last checkpoint.
    * ``failed`` (failed or diverged runs), ``failure_rate`` (``failed / n``) and ``diverged``.
    * ``best_recipe``: the task's recipe with the highest ``best_mean`` (the first one on a tie);
      ``welch_p``: the one-tailed Welch t-test (``scipy.stats.ttest_ind(equal_var=False,
      alternative="greater")``) that ``best_recipe``'s scores are higher than this recipe's; ``None`` for the
      best recipe itself, when either side has fewer than two scores, or when both are the same constant.
      ``tie``: this recipe is the best one or not significantly worse (``welch_p >= alpha``, or both samples the
      same constant); a recipe that cannot be tested is no tie. ``alpha`` is repeated for the report.
    * ``levene_p``: Levene's test of equal variances against ``baseline_recipe`` on the same task, with
      ``scipy.stats.levene``'s default ``center="median"``, i.e. the Brown-Forsythe test, robust to the skewed,
      bimodal score distributions of failing recipes. ``None`` for the baseline itself, when the task has no
      baseline trials, when either side has fewer than two scores, or when both are constant (undefined).
      ``baseline_recipe`` is repeated for the report.
    * ``expected``: ``[{"k", "mean", "std"}]`` for k = 1..n from :func:`expected_max_performance` with
      ``n_boot`` draws from a Generator seeded ``seed`` afresh for every (task, recipe), so adding a recipe or a
      task changes no other recipe's numbers. The draws (with replacement) come from the trials that have both a
      validation and a test score, so k may exceed their number; empty when there is none.

    Scores that are ``None`` or non-finite are left out of the statistics, the tests and the bootstrap, but such
    trials still count in ``n`` and (being diverged or failed) in the failure rate.
    """
    if not 0 < alpha < 1:
        raise UserInputError(f"alpha must lie in (0, 1), got {alpha!r}")
    _check_n_boot(n_boot)
    _check_rows(rows)

    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["task"], row["recipe"]), []).append(row)
    recipes = ordered_unique(row["recipe"] for row in rows)
    summaries: list[dict[str, Any]] = []
    for task in ordered_unique(row["task"] for row in rows):
        groups = {recipe: grouped[task, recipe] for recipe in recipes if (task, recipe) in grouped}
        best_scores = {recipe: finite_scores(row["test_best"] for row in group) for recipe, group in groups.items()}
        means = {recipe: float(np.mean(x)) for recipe, x in best_scores.items() if x.size}
        best_recipe = max(means, key=means.__getitem__) if means else None  # max keeps the first of equal means

        for recipe, group in groups.items():
            best = describe([row["test_best"] for row in group])
            last = describe([row["test_last"] for row in group])
            n = len(group)
            failed = sum(bool(row["failed"]) or bool(row["diverged"]) for row in group)
            summary: dict[str, Any] = {
                "task": task,
                "recipe": recipe,
                "metric": group[0]["metric"],
                "majority_baseline": float(group[0]["majority_baseline"]),
                # the failure line: the best constant predictor's score (steadytune.metrics.constant_baseline)
                "baseline": float(group[0].get("baseline", group[0]["majority_baseline"])),
                "n": n,
                **{f"best_{key}": value for key, value in best.items()},
                **{f"last_{key}": value for key, value in last.items()},
                "failed": failed,
                "failure_rate": failed / n,
                "diverged": sum(bool(row["diverged"]) for row in group),
                "best_recipe": best_recipe,
                "alpha": alpha,
                "baseline_recipe": baseline_recipe,
            }
            summary.update(_welch(best_scores, recipe, best_recipe, alpha))
            summary["levene_p"] = _levene(best_scores, recipe, baseline_recipe)
            validation, test = _paired(group)
            if validation.size:
                summary["expected"] = expected_max_performance(validation, test, k_max=n, n_boot=n_boot, seed=seed)
            else:
                summary["expected"] = []
            summaries.append(summary)
    return summaries


def _welch(scores: dict[str, np.ndarray], recipe: str, best_recipe: str | None, alpha: float) -> dict[str, Any]:
    """``welch_p`` and ``tie`` of ``recipe`` against ``best_recipe`` (see :func:`summarize`)."""
    if recipe == best_recipe:
        return {"welch_p": None, "tie": True}
    if best_recipe is None or scores[recipe].size < 2 or scores[best_recipe].size < 2:
        return {"welch_p": None, "tie": False}
    with _quietly_degenerate():
        result = ttest_ind(scores[best_recipe], scores[recipe], equal_var=False, alternative="greater")
    p = _p_value(float(result.pvalue))
    # scipy gives NaN only for 0/0: both samples constant and equal, i.e. exactly as good as the best recipe.
    return {"welch_p": p, "tie": p is None or p >= alpha}


def _levene(scores: dict[str, np.ndarray], recipe: str, baseline_recipe: str) -> float | None:
    """Brown-Forsythe p-value of ``recipe`` against ``baseline_recipe`` (see :func:`summarize`)."""
    if recipe == baseline_recipe or baseline_recipe not in scores:
        return None
    if scores[recipe].size < 2 or scores[baseline_recipe].size < 2:
        return None
    with _quietly_degenerate():
        result = levene(scores[recipe], scores[baseline_recipe], center="median")
    return _p_value(float(result.pvalue))
