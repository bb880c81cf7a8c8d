"""The report of a multi-seed study: ``report.md`` with PNG figures beside it, and a self-contained ``report.html``.

:func:`write_report` takes the trials, their loss curves and :func:`steadytune.stats.summarize`'s summary, and
writes, in this order:

1. the results table, laid out like Table 1 of Zhang et al. 2021 (a row per recipe, columns per task): test metric
   of the best-validation and the last checkpoint as mean ± std, failure rate with n; the best recipe per task and
   its ties in bold; then a table of the Welch and Levene p-values behind it;
2. per task, a box plot of the test metric per recipe with every run on top and the majority-class baseline as a
   dashed line (Zhang et al. Fig. 2, Mosbach et al. 2021 Fig. 1);
3. per task, the training loss per step: mean and min-max band over seeds per recipe (Zhang et al. Fig. 3);
4. per task, the expected test metric of the best-validation run among k runs, k = 1..n (Dodge et al. 2019;
   Zhang et al. Fig. 4).

The content is described once, as a :class:`Document`: a title and a sequence of blocks (:class:`Heading`,
:class:`Paragraph`, :class:`Notes`, :class:`Table` with :class:`ColumnGroup` headers, :class:`Figure`) whose text
is plain strings with :class:`Bold` spans. :func:`report_document` builds it from the summary (a new section is one
more function called there); :func:`render_markdown` and :func:`render_html` turn it into the two files. Only the
renderers escape: the document holds user strings as written. Every piece of text (title, notes, task, recipe and
metric names, as well as the fixed wording) is put on one line and escaped for HTML, or backslash-escaped for
markdown, so a name such as ``<script>`` or ``a|b`` is shown as written and cannot break the page or a table.

The figures go to ``figures/`` as PNG files, which the markdown links and the HTML embeds as ``data:`` URIs (no
external reference, no script; a Content-Security-Policy forbids loading anything else). Figure file names are
slugs of the task names. Every file is written atomically (temporary file, then rename). Figures are drawn with
matplotlib's object-oriented ``Figure`` API: no pyplot, no global state, nothing to close, deterministic output.
"""

from __future__ import annotations

import base64
import html
import io
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from steadytune.files import atomic_write_bytes, atomic_write_text
from steadytune.stats import finite_scores, ordered_unique

__all__ = [
    "Block", "Bold", "ColumnGroup", "Document", "Figure", "Heading", "Notes", "Paragraph", "Table", "Text",
    "render_html", "render_markdown", "report_document", "slugify", "write_report",
]  # fmt: skip

Escape = Callable[[str], str]

# Matplotlib's default figure width; 4 inches high keeps three figures per task readable on one screen.
_FIGSIZE = (6.4, 4.0)
# Extra width per recipe for box plots, so that rotated recipe names do not overlap with many recipes.
_INCHES_PER_RECIPE = 1.1
# 100 dpi gives 640x400 px figures: sharp on a page, ~30-60 kB each as PNG.
_DPI = 100
# Box width 0.5 (matplotlib's default); jittering points by at most ±0.12 keeps them well inside their box.
_BOX_WIDTH = 0.5
_JITTER = 0.12
# A fixed seed: jitter must not change between two reports of the same study.
_JITTER_SEED = 0
# Runs as points of 16 pt² (matplotlib's default is 36) at 80% opacity: overlapping runs stay visible as darker.
_POINT_SIZE = 16
_POINT_ALPHA = 0.8
# Markers on the expected-performance curves, small enough not to hide the ±std band.
_MARKER_SIZE = 3
# Recipe names such as "adam+reinit:2+lr=1e-4" are long; tilted by 20 degrees they do not run into each other.
_TICK_ROTATION = 20
# The majority-class baseline: a mid-grey dashed line, never mistaken for one of the recipes' colours.
_BASELINE_STYLE = {"linestyle": "--", "color": "0.4", "linewidth": 1}
# Opacity of min-max and ±std bands: light enough for three or four overlapping recipes to stay distinguishable.
_BAND_ALPHA = 0.2
# Matplotlib's default colour cycle has 10 colours ("C0".."C9"); a recipe keeps its colour in every figure.
_N_COLOURS = 10
# Three decimals resolve 0.1 percentage point, the resolution of Zhang et al.'s Table 1 (percent, one decimal).
_DECIMALS = 3
# With 5-50 seeds per recipe a p-value below 0.001 says nothing more than "below 0.001".
_P_FLOOR = 0.001
# Slugs stay far below the 255-byte file-name limit of common file systems, with room for "-expected.png".
_SLUG_MAX = 60

# A line length readable on a wide screen, thin table rules, numbers right-aligned, figures no wider than the page.
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; }
.caption, figcaption { color: #444; font-size: 0.9rem; }
"""
# Nothing may load from elsewhere or run: images only from data: URIs, styles only from the inline block above.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

# Characters that mean something in (GitHub-flavoured) markdown inline text or tables; all are ASCII punctuation,
# which CommonMark lets a backslash turn into a literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~$#!])")
# What would start a list at the start of a paragraph or list item ("- x", "+ x", "1. x", "2) x"): the
# punctuation is escaped there only, so that numbers such as 0.715 in table cells stay as they are.
_MARKDOWN_BLOCK_START = re.compile(r"^(\d*)([-+.)])")
_WHITESPACE = re.compile(r"\s+")


def slugify(name: str, *, max_length: int = _SLUG_MAX) -> str:
    """A file-name-safe slug: lowercase ASCII letters, digits and single hyphens ("task" when nothing is left).

    Accents are folded to ASCII; everything else (slashes, dots, spaces, ``<``...) becomes a hyphen, so a slug can
    never name another folder or a hidden file.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:max_length].strip("-") or "task"


def _one_line(text: str) -> str:
    """Runs of whitespace, newlines included, as one space: text cannot end a markdown line or table row."""
    return _WHITESPACE.sub(" ", str(text))


def _md(text: str) -> str:
    """Text for markdown: markdown punctuation backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def _mpl(text: str) -> str:
    """User text for matplotlib: an unescaped pair of ``$`` would start mathtext (and may fail to parse)."""
    return str(text).replace("$", r"\$")


# --- the document ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bold:
    """Strong emphasis: ``**text**`` in markdown, ``<strong>`` in HTML."""

    text: str


# Text as written (never escaped): a plain string, a bold span, or a sequence of them.
Text = str | Bold | tuple[str | Bold, ...]


@dataclass(frozen=True)
class Heading:
    level: int  # 2 for a section; the title is the document's only level 1
    text: Text


@dataclass(frozen=True)
class Paragraph:
    text: Text


@dataclass(frozen=True)
class Notes:
    """A bulleted list."""

    items: tuple[Text, ...]


@dataclass(frozen=True)
class ColumnGroup:
    """Columns under one name, such as a task's. ``detail`` (the metric) follows the name where the group has a
    header cell of its own (HTML); a markdown table has a single header row, so there the name is repeated before
    each column and the detail, which the caption should also give, is left out."""

    name: Text
    columns: tuple[Text, ...]
    detail: Text = ()


@dataclass(frozen=True)
class Table:
    """A table: ``header`` cells are single columns or column groups; a row's first cell names it."""

    header: tuple[Text | ColumnGroup, ...]
    rows: tuple[tuple[Text, ...], ...]
    caption: Text = ()


@dataclass(frozen=True)
class Figure:
    """A PNG image: ``path`` is relative to the report and URL-safe (a slug), and names the image's bytes."""

    path: str
    alt: Text
    caption: Text


Block = Heading | Paragraph | Notes | Table | Figure


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]


def _inline(text: Text, escape: Escape, strong: Escape) -> str:
    """``text`` on one line (runs of whitespace as one space), each piece escaped, the bold ones in ``strong``."""
    pieces = text if isinstance(text, tuple) else (text,)
    rendered = "".join(
        strong(escape(_one_line(piece.text).strip())) if isinstance(piece, Bold) else escape(_one_line(piece))
        for piece in pieces
    )
    return rendered.strip()


# --- markdown ----------------------------------------------------------------------------------------------------


def _md_text(text: Text) -> str:
    return _inline(text, _md, lambda inner: f"**{inner}**")


def _md_paragraph(text: Text) -> str:
    """Text that starts a line: a leading "1." or "-" must not start a list."""
    return _MARKDOWN_BLOCK_START.sub(r"\1\\\2", _md_text(text))


def _markdown_table(table: Table) -> list[str]:
    header = [
        f"{_md_text(cell.name)} {_md_text(column)}" if isinstance(cell, ColumnGroup) else _md_text(cell)
        for cell in table.header
        for column in (cell.columns if isinstance(cell, ColumnGroup) else (None,))
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]  # numbers right-aligned
    lines += ["| " + " | ".join(_md_text(cell) for cell in row) + " |" for row in table.rows]
    return lines + (["", _md_paragraph(table.caption)] if table.caption else [])


def _markdown_block(block: Block) -> list[str]:
    match block:
        case Heading(level, text):
            return ["#" * level + " " + _md_text(text)]
        case Paragraph(text):
            return [_md_paragraph(text)]
        case Notes(items):
            return [f"- {_md_paragraph(item)}" for item in items]
        case Table():
            return _markdown_table(block)
        case Figure(path, alt, caption):
            return [f"![{_md_text(alt)}]({quote(path)})", "", _md_paragraph(caption)]
    raise TypeError(f"not a block of the report: {block!r}")


def render_markdown(document: Document) -> str:
    """The document as markdown (GitHub-flavoured: tables); figures are links to their ``path``."""
    lines = [f"# {_md_text(document.title)}", ""]
    for block in document.blocks:
        lines += [*_markdown_block(block), ""]
    return "\n".join(lines)


# --- HTML --------------------------------------------------------------------------------------------------------


def _html_text(text: Text) -> str:
    return _inline(text, _html, lambda inner: f"<strong>{inner}</strong>")


def _html_table(table: Table) -> list[str]:
    groups = [cell for cell in table.header if isinstance(cell, ColumnGroup)]
    top = []  # with column groups, two header rows: single columns span both, groups name their columns below
    for cell in table.header:
        if isinstance(cell, ColumnGroup):
            name = f"{_html_text(cell.name)} ({_html_text(cell.detail)})" if cell.detail else _html_text(cell.name)
            top.append(f'<th colspan="{len(cell.columns)}">{name}</th>')
        else:
            top.append(f'<th rowspan="2">{_html_text(cell)}</th>' if groups else f"<th>{_html_text(cell)}</th>")
    second = "".join(f"<th>{_html_text(column)}</th>" for group in groups for column in group.columns)
    head = "<thead><tr>" + "".join(top) + (f"</tr><tr>{second}</tr></thead>" if groups else "</tr></thead>")
    lines = ["<table>", head, "<tbody>"]
    lines += ["<tr>" + "".join(f"<td>{_html_text(cell)}</td>" for cell in row) + "</tr>" for row in table.rows]
    lines += ["</tbody>", "</table>"]
    return lines + ([f'<p class="caption">{_html_text(table.caption)}</p>'] if table.caption else [])


def _html_block(block: Block, images: Mapping[str, bytes]) -> list[str]:
    match block:
        case Heading(level, text):
            return [f"<h{level:d}>{_html_text(text)}</h{level:d}>"]
        case Paragraph(text):
            return [f"<p>{_html_text(text)}</p>"]
        case Notes(items):
            return ["<ul>", *(f"<li>{_html_text(item)}</li>" for item in items), "</ul>"]
        case Table():
            return _html_table(block)
        case Figure(path, alt, caption):
            source = "data:image/png;base64," + base64.b64encode(images[path]).decode("ascii")
            return [
                f'<figure><img src="{source}" alt="{_html_text(alt)}">',
                f"<figcaption>{_html_text(caption)}</figcaption></figure>",
            ]
    raise TypeError(f"not a block of the report: {block!r}")


def render_html(document: Document, images: Mapping[str, bytes]) -> str:
    """The document as one HTML page; ``images`` holds each figure's PNG by its ``path``, embedded as data: URIs."""
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{_html_text(document.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_html_text(document.title)}</h1>",
    ]
    for block in document.blocks:
        lines += _html_block(block, images)
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


# --- numbers -----------------------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.{_DECIMALS}f}"


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return _number(mean) if std is None else f"{_number(mean)} ± {_number(std)}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"< {_P_FLOOR}" if value < _P_FLOOR else f"{value:.{_DECIMALS}f}"


def _failures(entry: dict[str, Any]) -> str:
    return f"{entry['failed']}/{entry['n']} ({100 * entry['failure_rate']:.0f}%)"


# --- the report's content ----------------------------------------------------------------------------------------

# The figures per task, in the order of their sections: file-name suffix and section heading.
_SECTIONS = {
    "box": "Test metric per recipe",
    "loss": "Training loss",
    "expected": "Expected best-of-k performance",
}


@dataclass(frozen=True)
class _Summary:
    """The summary by (task, recipe), its tasks and recipes in order, and per task its first recipe's entry (the
    metric, baseline, best recipe and alpha are the same for all of a task's recipes)."""

    entries: dict[tuple[str, str], dict[str, Any]]
    tasks: list[str]
    recipes: list[str]
    first: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, summary: Sequence[dict[str, Any]]) -> _Summary:
        entries = {(e["task"], e["recipe"]): e for e in summary}
        tasks = ordered_unique(e["task"] for e in summary)
        recipes = ordered_unique(e["recipe"] for e in summary)
        first = {task: entries[task, next(r for r in recipes if (task, r) in entries)] for task in tasks}
        return cls(entries, tasks, recipes, first)

    def task_entries(self, task: str) -> list[dict[str, Any]]:
        return [self.entries[task, recipe] for recipe in self.recipes if (task, recipe) in self.entries]


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


def _figure_paths(tasks: list[str]) -> dict[tuple[str, str], str]:
    """Per (task, figure kind) the figure's path relative to the report."""
    slugs = _unique_slugs(tasks)
    return {(task, kind): f"figures/{slugs[task]}-{kind}.png" for kind in _SECTIONS for task in tasks}


def _per_task_table(
    study: _Summary,
    columns: Callable[[dict[str, Any]], tuple[Text, ...]],
    cells: Callable[[dict[str, Any]], list[Text]],
    caption: Text,
) -> Table:
    """A row per recipe and a group of columns per task, named with its metric: ``columns(entry)`` names them
    (from the task's first entry), ``cells(entry)`` fills them, "–" where a recipe has no runs of the task."""
    header = ("recipe", *(ColumnGroup(task, columns(e), e["metric"]) for task, e in study.first.items()))
    rows = []
    for recipe in study.recipes:
        row: list[Text] = [recipe]
        for task, first in study.first.items():
            entry = study.entries.get((task, recipe))
            row += ["–"] * len(columns(first)) if entry is None else cells(entry)
        rows.append(tuple(row))
    return Table(header, tuple(rows), caption)


def _result_cells(entry: dict[str, Any]) -> list[Text]:
    best = _mean_std(entry["best_mean"], entry["best_std"])
    return [Bold(best) if entry["tie"] else best, _mean_std(entry["last_mean"], entry["last_std"]), _failures(entry)]


def _results_table(study: _Summary) -> Table:
    alpha = next(iter(study.first.values()))["alpha"]
    per_task = "; ".join(
        f"{task}: {e['metric']}, majority baseline {_number(e['majority_baseline'])}"
        for task, e in study.first.items()
    )
    caption = (
        "Test metric over seeds, as mean ± sample standard deviation: best = the checkpoint with the best "
        "validation score, last = the final checkpoint. Failed = runs whose last-checkpoint test metric is at or "
        "below the majority-class baseline (Mosbach et al. 2021) or that diverged, out of n runs; runs that "
        "diverged before they were scored have no score and are left out of the means. ",
        Bold("Bold"),
        ": per task, the recipe with the highest mean (best) and those not significantly worse "
        f"(one-tailed Welch t-test, p ≥ α = {alpha:g}), as in Zhang et al. 2021, Table 1. "
        f"Metric and majority-class baseline per task: {per_task}.",
    )
    return _per_task_table(study, lambda _: ("best", "last", "failed"), _result_cells, caption)


def _test_columns(entry: dict[str, Any]) -> tuple[Text, ...]:
    best = entry["best_recipe"]
    return (f"Welch p vs {best}" if best is not None else "Welch p", "Levene p")


def _tests_table(study: _Summary) -> Table:
    entry = next(iter(study.first.values()))
    caption = (
        "Welch p: one-tailed Welch t-test (unequal variances) that the task's best recipe scores higher than this "
        f"recipe (best checkpoint); p ≥ {entry['alpha']:g} is a tie. Levene p: Levene's test of equal variances "
        f"against {entry['baseline_recipe']} with deviations from the median (the Brown–Forsythe test), as Mosbach "
        "et al. 2021 compare the spread of fine-tuning runs. – where a test does not apply (the recipe itself, fewer "
        "than two scores, constant scores, or no baseline runs)."
    )
    return _per_task_table(study, _test_columns, lambda e: [_p(e["welch_p"]), _p(e["levene_p"])], caption)


def _results_section(study: _Summary) -> list[Block]:
    if not study.tasks:
        return [Heading(2, "Results"), Paragraph("No finished trials.")]
    return [Heading(2, "Results"), _results_table(study), _tests_table(study)]


def _figure_caption(kind: str, task: str, entry: dict[str, Any]) -> str:
    metric = entry["metric"]
    if kind == "box":
        return (
            f"{task}: test {metric} of the best-validation checkpoint per recipe. Boxes: quartiles and median, "
            "whiskers to the furthest run within 1.5 IQR; points: every run, spread sideways; dashed line: the "
            f"majority-class baseline ({_number(entry['majority_baseline'])}). Runs that diverged before they were "
            "scored are counted in n but not drawn."
        )
    if kind == "loss":
        return (
            f"{task}: training loss per step, mean over seeds (line) and min–max band, at each step over the runs "
            "that reached it; non-finite losses are left out."
        )
    return (
        f"{task}: expected test {metric} of the run with the best validation score among k runs drawn with "
        "replacement (Dodge et al. 2019), bootstrap mean ± one standard deviation."
    )


def _figure_sections(study: _Summary) -> list[Block]:
    """A section per kind of figure, with that figure of every task (nothing without tasks)."""
    if not study.tasks:
        return []
    paths = _figure_paths(study.tasks)
    blocks: list[Block] = []
    for kind, section in _SECTIONS.items():
        blocks.append(Heading(2, section))
        for task in study.tasks:
            alt = f"{task}: {section.lower()}"
            blocks.append(Figure(paths[task, kind], alt, _figure_caption(kind, task, study.first[task])))
    return blocks


def report_document(summary: Sequence[dict[str, Any]], *, title: str, notes: Sequence[str] = ()) -> Document:
    """The report's content, once for both files: notes, the results and p-value tables, the figure sections.

    ``summary`` is :func:`steadytune.stats.summarize`'s; the figures are named as :func:`write_report` draws them.
    A new section is a function returning its blocks, added here.
    """
    study = _Summary.of(summary)
    blocks: list[Block] = [Notes(tuple(notes))] if notes else []
    blocks += _results_section(study)
    blocks += _figure_sections(study)
    return Document(title, tuple(blocks))


# --- figures -----------------------------------------------------------------------------------------------------


def _png(fig: MplFigure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the PNG then holds nothing but the picture (and no URL).
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _box_figure(
    task: str, groups: dict[str, list[dict[str, Any]]], colours: dict[str, str], entry: dict[str, Any]
) -> bytes:
    recipes = list(groups)
    fig = MplFigure(figsize=(max(_FIGSIZE[0], _INCHES_PER_RECIPE * len(recipes)), _FIGSIZE[1]), layout="constrained")
    ax = fig.add_subplot()
    data = [finite_scores(row["test_best"] for row in group) for group in groups.values()]
    positions = np.arange(1, len(recipes) + 1)
    # Every run is drawn as a point, so no fliers; black medians, as the default orange is the second recipe's colour.
    ax.boxplot(data, positions=positions, widths=_BOX_WIDTH, showfliers=False, medianprops={"color": "black"})
    rng = np.random.default_rng(_JITTER_SEED)
    for position, values, recipe in zip(positions, data, recipes):
        x = position + rng.uniform(-_JITTER, _JITTER, size=values.size)
        ax.scatter(x, values, s=_POINT_SIZE, color=colours[recipe], alpha=_POINT_ALPHA, zorder=3)  # above the boxes
    baseline = ax.axhline(entry["majority_baseline"], **_BASELINE_STYLE)
    labels = [f"{_mpl(recipe)}\n(n={len(group)})" for recipe, group in groups.items()]
    ax.set_xticks(positions, labels, rotation=_TICK_ROTATION, ha="right")
    ax.set_ylabel(f"test {_mpl(entry['metric'])} (best checkpoint)")
    ax.set_title(_mpl(task))
    ax.legend([baseline], ["majority-class baseline"], loc="best")
    return _png(fig)


def _loss_band(curves: list[list[dict[str, Any]]]) -> tuple[np.ndarray, ...]:
    """Steps and the mean, min and max loss at each step over the curves that reached it (finite losses only)."""
    steps = np.unique(np.concatenate([np.array([p["step"] for p in c], dtype=np.int64) for c in curves]))
    table = np.full((len(curves), steps.size), np.nan)
    for i, curve in enumerate(curves):
        curve_steps = np.array([p["step"] for p in curve], dtype=np.int64)
        table[i, np.searchsorted(steps, curve_steps)] = np.array([p["loss"] for p in curve], dtype=np.float64)
    table[~np.isfinite(table)] = np.nan
    reached = ~np.all(np.isnan(table), axis=0)
    table = table[:, reached]
    return steps[reached], np.nanmean(table, axis=0), np.nanmin(table, axis=0), np.nanmax(table, axis=0)


def _loss_figure(
    task: str,
    groups: dict[str, list[dict[str, Any]]],
    curves: dict[tuple[str, str, int], list[dict[str, Any]]],
    colours: dict[str, str],
) -> bytes:
    fig = MplFigure(figsize=_FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    handles, labels = [], []
    for recipe, group in groups.items():
        recipe_curves = [curves[task, recipe, row["seed"]] for row in group if curves.get((task, recipe, row["seed"]))]
        if not recipe_curves:
            continue
        steps, mean, low, high = _loss_band(recipe_curves)
        (line,) = ax.plot(steps, mean, color=colours[recipe], linewidth=1)
        ax.fill_between(steps, low, high, color=colours[recipe], alpha=_BAND_ALPHA, linewidth=0)
        handles.append(line)
        labels.append(f"{_mpl(recipe)} ({len(recipe_curves)} runs)")
    if handles:
        ax.legend(handles, labels, loc="best")  # explicit labels: matplotlib would hide ones starting with "_"
    else:
        ax.text(0.5, 0.5, "no loss curves recorded", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(_mpl(task))
    return _png(fig)


def _expected_figure(task: str, entries: list[dict[str, Any]], colours: dict[str, str]) -> bytes:
    fig = MplFigure(figsize=_FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    handles, labels = [], []
    for entry in entries:
        if not entry["expected"]:
            continue
        k = np.array([e["k"] for e in entry["expected"]])
        mean = np.array([e["mean"] for e in entry["expected"]])
        std = np.array([e["std"] for e in entry["expected"]])
        colour = colours[entry["recipe"]]
        (line,) = ax.plot(k, mean, color=colour, marker="o", markersize=_MARKER_SIZE, linewidth=1)
        ax.fill_between(k, mean - std, mean + std, color=colour, alpha=_BAND_ALPHA, linewidth=0)
        handles.append(line)
        labels.append(_mpl(entry["recipe"]))
    baseline = ax.axhline(entries[0]["majority_baseline"], **_BASELINE_STYLE)
    ax.legend([*handles, baseline], [*labels, "majority-class baseline"], loc="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of runs k")
    ax.set_ylabel(f"expected test {_mpl(entries[0]['metric'])}")
    ax.set_title(_mpl(task))
    return _png(fig)


def _draw_figures(
    rows: Sequence[dict[str, Any]], curves: dict[tuple[str, str, int], list[dict[str, Any]]], study: _Summary
) -> dict[str, bytes]:
    """Every figure's PNG by its path (see :func:`_figure_paths`)."""
    paths = _figure_paths(study.tasks)
    colours = {recipe: f"C{i % _N_COLOURS}" for i, recipe in enumerate(study.recipes)}
    images = {}
    for task in study.tasks:
        entries = study.task_entries(task)
        groups = {
            e["recipe"]: [row for row in rows if row["task"] == task and row["recipe"] == e["recipe"]] for e in entries
        }
        images[paths[task, "box"]] = _box_figure(task, groups, colours, entries[0])
        images[paths[task, "loss"]] = _loss_figure(task, groups, curves, colours)
        images[paths[task, "expected"]] = _expected_figure(task, entries, colours)
    return images


# --- writing -----------------------------------------------------------------------------------------------------


def write_report(
    out_dir: Path,
    rows: Sequence[dict[str, Any]],
    curves: dict[tuple[str, str, int], list[dict[str, Any]]],
    summary: Sequence[dict[str, Any]],
    *,
    title: str,
    notes: list[str] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``; return the two report paths.

    Args:
        out_dir: the folder to write into (created if needed). Files of an earlier report are replaced; figures of
            tasks no longer in the study are left alone.
        rows: the trials, as given to :func:`steadytune.stats.summarize` (the runs drawn in the box plots).
        curves: per ``(task, recipe, seed)`` the per-step ``{"step", "loss", ...}`` records; a trial without a
            curve is left out of the loss figure.
        summary: ``summarize(rows)``; its order (tasks, then recipes) is the report's order, and its ``tie`` flags
            are the bold cells.
        title: the report's title.
        notes: lines shown under the title (model, data, seeds, wall time...), as plain text.
    """
    out_dir = Path(out_dir)
    document = report_document(summary, title=title, notes=notes or ())
    images = _draw_figures(rows, curves, _Summary.of(summary))
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    for path, png in images.items():
        atomic_write_bytes(out_dir / path, png)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, render_markdown(document))
    atomic_write_text(html_path, render_html(document, images))
    return md_path, html_path
