"""The report's content, described once as a :class:`~steadytune.report.document.Document`, and its figures.

:func:`report_document` lays out the sections (a new section is one more function called there);
:func:`draw_figures` draws the PNG of every :class:`~steadytune.report.document.Figure` the document names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .document import Block, Code, Document, Figure, Heading, Mono, Notes, Paragraph, slugify
from .figures import box_figure, expected_figure, loss_figure, recipe_colours
from .tables import StudySummary, failure_line, number, resolution_table, results_table, runs_table, tests_table

__all__ = ["draw_figures", "figure_paths", "report_document"]

Curves = dict[tuple[str, str, int], list[dict[str, Any]]]

# The figures per task, in the order of their sections: file-name suffix and section heading.
_SECTIONS = {
    "box": "Test metric per recipe",
    "loss": "Training loss",
    "expected": "Expected best-of-k performance",
}


def _unique_slugs(tasks: list[str]) -> dict[str, str]:
    slugs: dict[str, str] = {}
    for task in tasks:
        base = candidate = slugify(task)
        suffix = 2
        while candidate in slugs.values():
            candidate = f"{base}-{suffix}"
            suffix += 1
        slugs[task] = candidate
    return slugs


def figure_paths(tasks: list[str]) -> dict[tuple[str, str], str]:
    """Per (task, figure kind) the figure's path relative to the report."""
    slugs = _unique_slugs(tasks)
    return {(task, kind): f"figures/{slugs[task]}-{kind}.png" for kind in _SECTIONS for task in tasks}


def _settings_section(notes: Sequence[str], command: str | None) -> list[Block]:
    blocks: list[Block] = [Notes(tuple(notes))] if notes else []
    if command:
        blocks += [
            Paragraph(
                "The command that runs this study, STUDY_DIR being its folder (run there it resumes the study, in a "
                "new folder it reproduces it; relative data paths are as the study was started):"
            ),
            Code(command),
        ]
    return blocks


def _results_section(study: StudySummary) -> list[Block]:
    if not study.tasks:
        return [Heading(2, "Results"), Paragraph("No finished trials.")]
    reference = next(iter(study.first.values()))["reference"]
    return [
        Heading(2, "Results"),
        results_table(study),
        Paragraph(
            (
                f"Reference recipe of the variance (Levene) and failure-rate (Fisher) tests: {reference} (by default "
                "the study's first bias-corrected recipe, optimizer adamw; ",
                Mono("steadytune report --reference RECIPE"),
                " names another).",
            )
        ),
        tests_table(study),
        Heading(2, "What the test split resolves"),
        resolution_table(study),
    ]


def _box_caption(task: str, entry: dict[str, Any]) -> str:
    res = entry["resolution"]
    resolved = (
        f"dotted line: the smallest score that beats it at p < {entry['alpha']:g} with n = {entry['test_size']} "
        f"test examples ({number(res['threshold'])})"
        if res["threshold"] is not None
        else f"the test split resolves no score from it ({res['why']})"
    )
    collapsed = (
        f" A regression run also fails when its test MSE is at least {number(entry['baseline_mse'])} (predicting the "
        "training mean), so a failed run (×) can sit above the line."
        if entry.get("baseline_mse") is not None
        else ""
    )
    return (
        f"{task}: test {entry['metric']} per recipe at the last checkpoint (left, filled box), which decides "
        "whether a run failed, and at the best-validation checkpoint (right, white box). Boxes: quartiles and "
        "median, whiskers to the furthest run within 1.5 IQR; points: every run, spread sideways; ×: a failed run "
        "(failed is decided at the last checkpoint, so in the white box a × may sit above the line). Dashed line: "
        f"the failure line, {failure_line(entry)}, the best score of any constant predictor on the test split; "
        f"{resolved}. A run without a score (it diverged) is drawn at the failure line.{collapsed}"
    )


def _figure_caption(kind: str, task: str, entry: dict[str, Any]) -> str:
    if kind == "box":
        return _box_caption(task, entry)
    if kind == "loss":
        return (
            f"{task}: training loss per step, mean over seeds (line) and min–max band, at each step over the runs "
            "that reached it; non-finite losses are left out."
        )
    return (
        f"{task}: expected test {entry['metric']} (best checkpoint) of the run with the best validation score "
        "among k runs drawn with replacement from a recipe's n runs (Dodge et al. 2019), in closed form: with the "
        "runs grouped by distinct validation score v(1) < … < v(G) and F(g) the share with validation ≤ v(g), the "
        "best of k runs falls in group g with probability F(g)ᵏ − F(g−1)ᵏ, and the expected score is the sum over "
        "the groups of that probability times the group's mean test score, so runs tied in validation count at "
        "their mean, and k = 1 is the results table's best mean. Band: ± one standard deviation of that group mean "
        "over the draws (the picked run's score where validation scores are distinct). A run without a validation "
        "score is picked only when every draw is one. Lines as in the box plots."
    )


def _figure_sections(study: StudySummary) -> list[Block]:
    """A section per kind of figure, with that figure of every task (nothing without tasks)."""
    if not study.tasks:
        return []
    paths = figure_paths(study.tasks)
    blocks: list[Block] = []
    for kind, section in _SECTIONS.items():
        blocks.append(Heading(2, section))
        for task in study.tasks:
            alt = f"{task}: {section.lower()}"
            blocks.append(Figure(paths[task, kind], alt, _figure_caption(kind, task, study.first[task])))
    return blocks


def report_document(
    summary: Sequence[dict[str, Any]],
    *,
    title: str,
    notes: Sequence[str] = (),
    command: str | None = None,
    rows: Sequence[dict[str, Any]] = (),
) -> Document:
    """The report's content, once for both files: the settings and the command, the results, p-value and
    resolution tables, the figure sections, and (with ``rows``) the table of every run.

    ``summary`` is :func:`steadytune.stats.summarize`'s; the figures are named as :func:`draw_figures` draws them.
    """
    study = StudySummary.of(summary)
    blocks: list[Block] = _settings_section(notes, command)
    blocks += _results_section(study)
    blocks += _figure_sections(study)
    if rows and study.tasks:
        blocks += [Heading(2, "Every run"), runs_table(rows, study)]
    return Document(title, tuple(blocks))


def draw_figures(
    rows: Sequence[dict[str, Any]], curves: Curves, summary: Sequence[dict[str, Any]]
) -> dict[str, bytes]:
    """Every figure's PNG by its path (see :func:`figure_paths`)."""
    study = StudySummary.of(summary)
    paths = figure_paths(study.tasks)
    colours = recipe_colours(study.recipes)
    images = {}
    for task in study.tasks:
        entries = study.task_entries(task)
        groups = {
            e["recipe"]: [row for row in rows if row["task"] == task and row["recipe"] == e["recipe"]] for e in entries
        }
        images[paths[task, "box"]] = box_figure(task, groups, colours, entries[0])
        images[paths[task, "loss"]] = loss_figure(task, groups, curves, colours)
        images[paths[task, "expected"]] = expected_figure(task, entries, colours)
    return images
