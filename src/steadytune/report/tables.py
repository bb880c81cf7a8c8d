"""The report's tables, built from :func:`steadytune.stats.summarize`'s summary and the trial rows.

Four tables: the results (laid out like Table 1 of Zhang et al. 2021), the p-values behind the bold and the
reference comparisons (raw and Holm-adjusted), what each task's test split resolves, and every run. Each caption
says how its numbers are computed, so that every number can be recomputed from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from steadytune.stats import ordered_unique

from .document import Bold, ColumnGroup, Table, Text

__all__ = ["StudySummary", "number", "p_value", "resolution_table", "results_table", "runs_table", "tests_table"]

# Three decimals resolve 0.1 percentage point, the resolution of Zhang et al.'s Table 1 (percent, one decimal).
_DECIMALS = 3
# With 5-50 seeds per recipe a p-value below 0.001 says nothing more than "below 0.001".
_P_FLOOR = 0.001
# Scores are k/n or correlations: the resolution threshold compares to within rounding (stats._TOLERANCE).
_TOLERANCE = 1e-12
_DASH = "–"


@dataclass(frozen=True)
class StudySummary:
    """The summary by (task, recipe), its tasks and recipes in order, and per task its first recipe's entry (the
    metric, failure line, resolution, best recipe, reference and alpha are the same for all of a task's recipes)."""

    entries: dict[tuple[str, str], dict[str, Any]]
    tasks: list[str]
    recipes: list[str]
    first: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, summary: Sequence[dict[str, Any]]) -> StudySummary:
        entries = {(e["task"], e["recipe"]): e for e in summary}
        tasks = ordered_unique(e["task"] for e in summary)
        recipes = ordered_unique(e["recipe"] for e in summary)
        first = {task: entries[task, next(r for r in recipes if (task, r) in entries)] for task in tasks}
        return cls(entries, tasks, recipes, first)

    def task_entries(self, task: str) -> list[dict[str, Any]]:
        return [self.entries[task, recipe] for recipe in self.recipes if (task, recipe) in self.entries]


def number(value: float | None) -> str:
    return _DASH if value is None else f"{value:.{_DECIMALS}f}"


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return _DASH
    return number(mean) if std is None else f"{number(mean)} ± {number(std)}"


def p_value(value: float | None, why: str | None = None) -> str:
    """A p-value to three decimals ("< 0.001" below that); none: a dash with the reason."""
    if value is None:
        return f"{_DASH} ({why})" if why else _DASH
    return f"< {_P_FLOOR}" if value < _P_FLOOR else f"{value:.{_DECIMALS}f}"


def _failures(entry: dict[str, Any]) -> str:
    return f"{entry['failed']}/{entry['n']} ({100 * entry['failure_rate']:.0f}%)"


def _per_task_table(
    study: StudySummary,
    columns: tuple[Text, ...],
    cells: Callable[[dict[str, Any]], list[Text]],
    caption: Text,
) -> Table:
    """A row per recipe and a group of ``columns`` per task, named with its metric; ``cells(entry)`` fills them,
    "–" where a recipe has no runs of the task."""
    header = ("recipe", *(ColumnGroup(task, columns, e["metric"]) for task, e in study.first.items()))
    rows = []
    for recipe in study.recipes:
        row: list[Text] = [recipe]
        for task in study.tasks:
            entry = study.entries.get((task, recipe))
            row += [_DASH] * len(columns) if entry is None else cells(entry)
        rows.append(tuple(row))
    return Table(header, tuple(rows), caption)


def _result_cells(entry: dict[str, Any]) -> list[Text]:
    best = _mean_std(entry["best_mean"], entry["best_std"])
    return [Bold(best) if entry["bold"] else best, _mean_std(entry["last_mean"], entry["last_std"]), _failures(entry)]


def failure_line(entry: dict[str, Any]) -> str:
    """The failure line with its predictor, e.g. "0.525 (always 'entailment')"."""
    predictor = entry.get("baseline_predictor")
    return f"{number(entry['baseline'])} ({predictor})" if predictor else number(entry["baseline"])


def results_table(study: StudySummary) -> Table:
    entry = next(iter(study.first.values()))
    per_task = "; ".join(
        f"{task}: {e['metric']}, failure line {failure_line(e)}"
        + (f" or test MSE ≥ {number(e['baseline_mse'])}" if e.get("baseline_mse") is not None else "")
        + (f", test n = {e['test_size']}" if e.get("test_size") else "")
        for task, e in study.first.items()
    )
    caption = (
        "Test metric over the runs (seeds) of each recipe, mean ± sample standard deviation: best = the checkpoint "
        "with the best validation score, last = the final checkpoint. A run without a score (it diverged) counts "
        "at the failure line of its task, in the means and in every test. Failed = runs whose last-checkpoint test "
        "metric is at or below the failure line (the best score any constant predictor reaches on the test split), "
        "or, for regression, whose test MSE is at least that of predicting the training-label mean, or that "
        "diverged; out of n runs. ",
        Bold("Bold"),
        ": the best mean and every recipe whose mean is above that of every recipe significantly worse than the "
        f"best (one-sided Welch t-test on the best checkpoints, Holm-adjusted α = {entry['alpha']:g}). "
        f"Per task: {per_task}.",
    )
    return _per_task_table(study, ("best", "last", "failed"), _result_cells, caption)


def tests_table(study: StudySummary) -> Table:
    """A row per (task, recipe): each test's raw and Holm-adjusted p-value, or why there is none."""
    header = ("task", "recipe", "Welch p", "Welch Holm", "Levene p", "Levene Holm", "Fisher p", "Fisher Holm")
    rows = []
    for task in study.tasks:
        for e in study.task_entries(task):
            cells = [p_value(e[f"{test}_{kind}"], e[f"{test}_why"]) for test in ("welch", "levene", "fisher")
                     for kind in ("p", "holm")]  # fmt: skip
            rows.append((task, e["recipe"], *cells))
    entry = next(iter(study.first.values()))
    caption = (
        "Welch: one-sided Welch t-test (unequal variances) that the task's best recipe (highest best-checkpoint "
        "mean) scores higher than this recipe, on the best-checkpoint test scores. Levene: the Brown–Forsythe test "
        "(Levene's test with deviations from the median) of equal variances of the best-checkpoint test scores, "
        f"against the reference recipe {entry['reference']}. Fisher: Fisher's exact test, one-sided, that this "
        "recipe's odds of failing exceed the reference's (2×2 table: failed / not failed × this recipe / "
        "reference). Holm: Holm's step-down adjustment within one task and one test (the family is that column's "
        f"p-values for the task). Bold in the results table: recipes with Welch Holm < {entry['alpha']:g} are "
        "significantly worse than the best; the best and every recipe whose mean is above all of theirs are bold. No "
        "p-value, and why: best (the best recipe itself), reference, n < 2 (fewer than two runs), constant (both "
        "samples the same constant), no reference runs (the task has none)."
    )
    return Table(header, tuple(rows), caption, labels=2)


def _resolution_how(e: dict[str, Any]) -> str:
    res, n = e["resolution"], e["test_size"]
    if res["threshold"] is None:
        return f"none: {res['why']}"
    if res["test"] == "t":
        return f"one-sided t test of zero correlation, {n - 2} df"
    test = f"one-sided exact binomial test against the majority rate {number(res['rate'])}"
    if res["test"] == "binomial":
        return f"{test}: {res['correct']}/{n} correct"
    return f"F1 at accuracy {res['correct']}/{n} with no false negative ({test})"


def resolution_table(study: StudySummary) -> Table:
    """Per task: the test split's size, the smallest score that beats the failure line, and the runs below it."""
    rows = []
    for task, e in study.first.items():
        entries = study.task_entries(task)
        not_failed = sum(x["not_failed"] for x in entries)
        below = [x["unresolved"] for x in entries]
        below_text = _DASH if None in below else f"{sum(below)} of {not_failed}"  # type: ignore[arg-type]
        rows.append((task, e["metric"], str(e["test_size"] or _DASH), failure_line(e),
                     number(e["resolution"]["threshold"]), _resolution_how(e), below_text))  # fmt: skip
    header = ("task", "metric", "test n", "failure line", f"beats it at p < {study.first[study.tasks[0]]['alpha']:g}",
              "how", "runs not failed, not shown to learn")  # fmt: skip
    caption = (
        "What each test split can tell apart from the failure line. Accuracy: the smallest accuracy c/n with "
        "P(X ≥ c) < α for X ~ Binomial(n, majority rate), a one-sided exact binomial test. Matthews correlation, "
        "Pearson, Spearman: the critical correlation r = t / √(n − 2 + t²), t the 1 − α quantile of Student's t with "
        "n − 2 degrees of freedom (one-sided test of zero correlation). F1: the F1 of a predictor that reaches that "
        "accuracy threshold with no false negative, 2P / (2P + n − c) with P the test positives (from the failure "
        "line 2P / (P + n) of always-positive); an F1 at or above it forces at most n − c errors, so its accuracy "
        "beats the majority class significantly; below it nothing is claimed either way. Last column: runs that "
        "did not fail whose last-checkpoint test scores do not pass steadytune.verdict's test, the one behind fit's "
        "yes (the binomial test for accuracy, Fisher's exact test of the 2×2 table for a binary F1 or Matthews "
        "correlation, the t test for Pearson and Spearman; for F1 and Matthews correlation the threshold is a guide, "
        "since Fisher's test reads the whole table): not failed, but not shown to have learned anything at this "
        "test size."
    )
    return Table(header, tuple(rows), caption, labels=2)


def _run_score(value: float | None, row: dict[str, Any]) -> str:
    return f"{_DASH} (diverged)" if value is None and row["diverged"] else number(value)


def _verdict(row: dict[str, Any]) -> str:
    if not row["failed"]:
        return "no"
    why = row.get("failure") or ("diverged" if row["diverged"] else "failed")
    return f"yes: {why}" + (" (stored verdict)" if row.get("rule") == "stored" else "")


def _resolved(row: dict[str, Any], entry: dict[str, Any] | None) -> str:
    threshold = None if entry is None else entry["resolution"]["threshold"]
    last = row["test_last"]
    if threshold is None or last is None:
        return _DASH
    return "yes" if last >= threshold - _TOLERANCE else "no"


def runs_table(rows: Sequence[dict[str, Any]], study: StudySummary) -> Table:
    """Every run, in the report's order (tasks, recipes, seeds)."""
    task_rank = {t: i for i, t in enumerate(study.tasks)}
    recipe_rank = {r: i for i, r in enumerate(study.recipes)}
    ordered = sorted(rows, key=lambda r: (task_rank.get(r["task"], 0), recipe_rank.get(r["recipe"], 0), r["seed"]))
    out = []
    for row in ordered:
        entry = study.entries.get((row["task"], row["recipe"]))
        steps = " / ".join(_DASH if row.get(key) is None else str(row[key]) for key in ("best_step", "steps"))
        out.append((row["task"], row["recipe"], str(row["seed"]), number(row["validation_best"]),
                    number(row.get("validation_last")), _run_score(row["test_best"], row),
                    _run_score(row["test_last"], row), _verdict(row), _resolved(row, entry), steps))  # fmt: skip
    alpha = next(iter(study.first.values()))["alpha"]
    header = ("task", "recipe", "seed", "validation best", "validation last", "test best", "test last", "failed",
              f"last beats the failure line at p < {alpha:g}", "best step / steps")  # fmt: skip
    caption = (
        "Every run: validation and test metric at the best-validation and the last checkpoint; failed and why "
        "(constant: last-checkpoint test metric at or below the failure line; collapsed: regression test MSE at "
        "least that of predicting the training mean; diverged: a non-finite loss; a stored verdict is the one the "
        "record was stored with, kept where its data could not be found to re-score it); whether the last "
        "checkpoint's test score reaches the task's resolution threshold (see the table above); the step of the "
        "best-validation checkpoint and the steps trained."
    )
    return Table(header, tuple(out), caption, labels=2)
