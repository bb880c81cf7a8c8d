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

The figures go to ``figures/`` as PNG files, which the markdown links and the HTML embeds as ``data:`` URIs (no
external reference, no script; a Content-Security-Policy forbids loading anything else). Every user string (title,
notes, task, recipe and metric names) is escaped for HTML, and backslash-escaped for markdown, so a name such as
``<script>`` or ``a|b`` is shown as written and cannot break the page or a table. Figure file names are slugs of the
task names. Every file is written atomically (temporary file, then rename). Figures are drawn with matplotlib's
object-oriented ``Figure`` API: no pyplot, no global state, nothing to close, deterministic output.
"""

from __future__ import annotations

import base64
import html
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from steadytune.files import atomic_write_bytes, atomic_write_text
from steadytune.stats import finite_scores, ordered_unique

__all__ = ["slugify", "write_report"]

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


def slugify(name: str, *, max_length: int = _SLUG_MAX) -> str:
    """A file-name-safe slug: lowercase ASCII letters, digits and single hyphens ("task" when nothing is left).

    Accents are folded to ASCII; everything else (slashes, dots, spaces, ``<``...) becomes a hyphen, so a slug can
    never name another folder or a hidden file.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:max_length].strip("-") or "task"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _md(text: str) -> str:
    """User text for a markdown line or table cell: one line, markdown punctuation backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text))


def _html(text: str) -> str:
    return html.escape(str(text), quote=True)


def _mpl(text: str) -> str:
    """User text for matplotlib: an unescaped pair of ``$`` would start mathtext (and may fail to parse)."""
    return str(text).replace("$", r"\$")


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


# --- tables ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    text: str  # formatted numbers ("0.715 ± 0.013", "< 0.001"), escaped by the table renderers
    bold: bool = False


def _table_cells(
    summary: dict[tuple[str, str], dict[str, Any]], tasks: list[str], recipes: list[str]
) -> tuple[list[list[_Cell]], list[list[_Cell]]]:
    """Cells (without the recipe column) of the results table and of the p-value table, one list per recipe."""
    missing = [_Cell("–")] * 3
    results, tests = [], []
    for recipe in recipes:
        result_row, test_row = [], []
        for task in tasks:
            entry = summary.get((task, recipe))
            if entry is None:
                result_row += missing
                test_row += missing[:2]
                continue
            result_row += [
                _Cell(_mean_std(entry["best_mean"], entry["best_std"]), bold=bool(entry["tie"])),
                _Cell(_mean_std(entry["last_mean"], entry["last_std"])),
                _Cell(_failures(entry)),
            ]
            test_row += [_Cell(_p(entry["welch_p"])), _Cell(_p(entry["levene_p"]))]
        results.append(result_row)
        tests.append(test_row)
    return results, tests


def _headers(
    first_entry: dict[str, dict[str, Any]], esc: Escape, *, with_metric: bool
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Task headers (name, and metric when asked), then per task the sub-headers of both tables."""
    task_headers, result_subs, test_subs = [], [], []
    for task, entry in first_entry.items():
        task_headers.append(f"{esc(task)} ({esc(entry['metric'])})" if with_metric else esc(task))
        result_subs.append(["best", "last", "failed"])
        best = entry["best_recipe"]
        test_subs.append([f"Welch p vs {esc(best)}" if best is not None else "Welch p", "Levene p"])
    return task_headers, result_subs, test_subs


def _markdown_table(
    task_headers: list[str], subs: list[list[str]], recipes: list[str], cells: list[list[_Cell]]
) -> str:
    header = ["recipe"] + [f"{task} {sub}" for task, task_subs in zip(task_headers, subs) for sub in task_subs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    for recipe, row in zip(recipes, cells):
        texts = [f"**{_md(cell.text)}**" if cell.bold else _md(cell.text) for cell in row]
        lines.append("| " + " | ".join([_md(recipe), *texts]) + " |")
    return "\n".join(lines)


def _html_table(task_headers: list[str], subs: list[list[str]], recipes: list[str], cells: list[list[_Cell]]) -> str:
    top = "".join(f'<th colspan="{len(s)}">{task}</th>' for task, s in zip(task_headers, subs))
    second = "".join(f"<th>{sub}</th>" for task_subs in subs for sub in task_subs)
    lines = ["<table>", f'<thead><tr><th rowspan="2">recipe</th>{top}</tr><tr>{second}</tr></thead>', "<tbody>"]
    for recipe, row in zip(recipes, cells):
        tds = "".join(
            f"<td><strong>{_html(c.text)}</strong></td>" if c.bold else f"<td>{_html(c.text)}</td>" for c in row
        )
        lines.append(f"<tr><td>{_html(recipe)}</td>{tds}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _results_caption(first_entry: dict[str, dict[str, Any]], esc: Escape, bold: Escape) -> str:
    alpha = next(iter(first_entry.values()))["alpha"]
    per_task = "; ".join(
        f"{esc(task)}: {esc(e['metric'])}, majority baseline {_number(e['majority_baseline'])}"
        for task, e in first_entry.items()
    )
    return (
        "Test metric over seeds, as mean ± sample standard deviation: best = the checkpoint with the best "
        "validation score, last = the final checkpoint. Failed = runs whose last-checkpoint test metric is at or "
        "below the majority-class baseline (Mosbach et al. 2021) or that diverged, out of n runs; runs that "
        "diverged before they were scored have no score and are left out of the means. "
        f"{bold('Bold')}: per task, the recipe with the highest mean (best) and those not significantly worse "
        f"(one-tailed Welch t-test, p ≥ α = {alpha:g}), as in Zhang et al. 2021, Table 1. "
        f"Metric and majority-class baseline per task: {per_task}."
    )


def _tests_caption(first_entry: dict[str, dict[str, Any]], esc: Escape) -> str:
    entry = next(iter(first_entry.values()))
    alpha, baseline = entry["alpha"], entry["baseline_recipe"]
    return (
        "Welch p: one-tailed Welch t-test (unequal variances) that the task's best recipe scores higher than this "
        f"recipe (best checkpoint); p ≥ {alpha:g} is a tie. Levene p: Levene's test of equal variances against "
        f"{esc(baseline)} with deviations from the median (the Brown–Forsythe test), as Mosbach et al. 2021 "
        "compare the spread of fine-tuning runs. – where a test does not apply (the recipe itself, fewer than two "
        "scores, constant scores, or no baseline runs)."
    )


# --- figures -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plot:
    task: str
    kind: str  # "box", "loss" or "expected": the section and the file-name suffix
    filename: str
    png: bytes


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the PNG then holds nothing but the picture (and no URL).
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _box_figure(
    task: str, groups: dict[str, list[dict[str, Any]]], colours: dict[str, str], entry: dict[str, Any]
) -> bytes:
    recipes = list(groups)
    fig = Figure(figsize=(max(_FIGSIZE[0], _INCHES_PER_RECIPE * len(recipes)), _FIGSIZE[1]), layout="constrained")
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
    fig = Figure(figsize=_FIGSIZE, layout="constrained")
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
    fig = Figure(figsize=_FIGSIZE, layout="constrained")
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


_SECTIONS = {
    "box": "Test metric per recipe",
    "loss": "Training loss",
    "expected": "Expected best-of-k performance",
}


def _figure_caption(plot: _Plot, entry: dict[str, Any], esc: Escape) -> str:
    task, metric = esc(plot.task), esc(entry["metric"])
    if plot.kind == "box":
        return (
            f"{task}: test {metric} of the best-validation checkpoint per recipe. Boxes: quartiles and median, "
            "whiskers to the furthest run within 1.5 IQR; points: every run, spread sideways; dashed line: the "
            f"majority-class baseline ({_number(entry['majority_baseline'])}). Runs that diverged before they were "
            "scored are counted in n but not drawn."
        )
    if plot.kind == "loss":
        return (
            f"{task}: training loss per step, mean over seeds (line) and min–max band, at each step over the runs "
            "that reached it; non-finite losses are left out."
        )
    return (
        f"{task}: expected test {metric} of the run with the best validation score among k runs drawn with "
        "replacement (Dodge et al. 2019), bootstrap mean ± one standard deviation."
    )


# --- writing -----------------------------------------------------------------------------------------------------


def _markdown(
    title: str,
    notes: list[str],
    tables: tuple[str, str] | None,
    captions: tuple[str, str] | None,
    plots: list[_Plot],
    figure_captions: list[str],
) -> str:
    lines = [f"# {_md(title)}", ""]
    if notes:
        lines += [f"- {_md(note)}" for note in notes] + [""]
    lines += ["## Results", ""]
    if tables is None or captions is None:
        lines += ["No finished trials.", ""]
    else:
        lines += [tables[0], "", captions[0], "", tables[1], "", captions[1], ""]
    for kind, section in _SECTIONS.items():
        section_plots = [(p, c) for p, c in zip(plots, figure_captions) if p.kind == kind]
        if not section_plots:
            continue
        lines += [f"## {section}", ""]
        for plot, caption in section_plots:
            lines += [f"![{_md(plot.task)}: {section.lower()}](figures/{plot.filename})", "", caption, ""]
    return "\n".join(lines)


def _html_page(
    title: str,
    notes: list[str],
    tables: tuple[str, str] | None,
    captions: tuple[str, str] | None,
    plots: list[_Plot],
    figure_captions: list[str],
) -> str:
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{_html(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_html(title)}</h1>",
    ]
    if notes:
        lines += ["<ul>", *(f"<li>{_html(note)}</li>" for note in notes), "</ul>"]
    lines.append("<h2>Results</h2>")
    if tables is None or captions is None:
        lines.append("<p>No finished trials.</p>")
    else:
        lines += [
            tables[0],
            f'<p class="caption">{captions[0]}</p>',
            tables[1],
            f'<p class="caption">{captions[1]}</p>',
        ]
    for kind, section in _SECTIONS.items():
        section_plots = [(p, c) for p, c in zip(plots, figure_captions) if p.kind == kind]
        if not section_plots:
            continue
        lines.append(f"<h2>{section}</h2>")
        for plot, caption in section_plots:
            source = "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")
            alt = f"{_html(plot.task)}: {section.lower()}"
            lines += [f'<figure><img src="{source}" alt="{alt}">', f"<figcaption>{caption}</figcaption></figure>"]
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


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
    notes = list(notes or [])
    entries = {(e["task"], e["recipe"]): e for e in summary}
    tasks = ordered_unique(e["task"] for e in summary)
    recipes = ordered_unique(e["recipe"] for e in summary)
    colours = {recipe: f"C{i % _N_COLOURS}" for i, recipe in enumerate(recipes)}
    slugs = _unique_slugs(tasks)

    plots: list[_Plot] = []
    for task in tasks:
        task_entries = [entries[task, recipe] for recipe in recipes if (task, recipe) in entries]
        groups = {
            e["recipe"]: [row for row in rows if row["task"] == task and row["recipe"] == e["recipe"]]
            for e in task_entries
        }
        pngs = {
            "box": _box_figure(task, groups, colours, task_entries[0]),
            "loss": _loss_figure(task, groups, curves, colours),
            "expected": _expected_figure(task, task_entries, colours),
        }
        plots += [_Plot(task, kind, f"{slugs[task]}-{kind}.png", png) for kind, png in pngs.items()]
    plots.sort(key=lambda plot: list(_SECTIONS).index(plot.kind))  # stable: tasks keep their order per section

    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for plot in plots:
        atomic_write_bytes(figures / plot.filename, plot.png)

    # Per task the first recipe's summary: the metric, baseline, best recipe, alpha are the same for all of them.
    first_entry = {task: entries[task, next(r for r in recipes if (task, r) in entries)] for task in tasks}
    result_cells, test_cells = _table_cells(entries, tasks, recipes)
    documents = {}
    for name, esc, bold, render_table, render_page in (
        ("report.md", _md, lambda text: f"**{text}**", _markdown_table, _markdown),
        ("report.html", _html, lambda text: f"<strong>{text}</strong>", _html_table, _html_page),
    ):
        tables = captions = None
        if first_entry:
            # The HTML table has a header cell per task with room for the metric; markdown names it in the caption.
            task_headers, result_subs, test_subs = _headers(first_entry, esc, with_metric=name == "report.html")
            tables = (
                render_table(task_headers, result_subs, recipes, result_cells),
                render_table(task_headers, test_subs, recipes, test_cells),
            )
            captions = (_results_caption(first_entry, esc, bold), _tests_caption(first_entry, esc))
        figure_captions = [_figure_caption(plot, first_entry[plot.task], esc) for plot in plots]
        documents[name] = render_page(title, notes, tables, captions, plots, figure_captions)

    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, documents["report.md"])
    atomic_write_text(html_path, documents["report.html"])
    return md_path, html_path
