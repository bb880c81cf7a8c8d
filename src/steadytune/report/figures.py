"""The report's figures, per task: box plots of the test metric, training loss, expected best-of-k.

Drawn with matplotlib's object-oriented ``Figure`` API (no pyplot, no global state, nothing to close) as PNG bytes
without metadata, so two reports of one study are byte-identical (the jitter has a fixed seed). Figures are sized
for the report's width: recipe names are wrapped at their ``+`` joints below the boxes, and legends sit below the
axes, never on the data.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from steadytune.stats import run_score

__all__ = ["box_figure", "box_plot", "expected_figure", "expected_plot", "loss_figure", "mpl_text", "recipe_colours"]

Rows = dict[str, list[dict[str, Any]]]  # a task's rows per recipe, in the report's order

# 6.4 in is matplotlib's default width; 4 in high keeps three figures per task readable on one screen.
_WIDTH, _HEIGHT = 6.4, 4.0
# The HTML page is 72rem (1152 px) wide: at 100 dpi a figure up to 11.5 in is shown at its own size.
_MAX_WIDTH = 11.5
# Two boxes per recipe (last, best-validation) and their names need about 1.5 in; less once the page is full.
_INCHES_PER_RECIPE = 1.5
# Line figures (loss, expected) widen from the default beyond 11 recipes, so that their legend keeps 2-3 columns.
_INCHES_PER_LINE = 0.55
# 10-pt DejaVu Sans sets about 11.5 characters per inch (measured: 0.07-0.094 in a character in these names);
# wrapping recipe names at 11 an inch of their slot, less one for a hanging "+", leaves a gap between neighbours.
# A slot is the axes' width (the figure's less ~0.9 in of y tick labels and label) over the recipes.
_CHARS_PER_INCH = 11
_AXES_MARGIN = 0.9
# Below 6 characters a wrapped name is mostly line breaks: names are then written on one line each, tilted by 45
# degrees (neighbours then lie a slot·sin 45° apart, more than a line's 0.14 in down to slots of 0.2 in), and the
# figure grows by the height the longest one takes (at 14 characters an inch, ·sin 45°: 0.05 in a character).
_MIN_WRAP = 6
_TILT = 45
_TILT_INCHES_PER_CHAR = 0.05
# 100 dpi gives 640x400 px for the default size: sharp on a page, ~30-60 kB each as PNG.
_DPI = 100
# Two boxes of width 0.34 either side of a recipe's position leave a gap of 0.16 to the next recipe's pair.
_BOX_WIDTH = 0.34
_BOX_OFFSET = 0.19
# Jittering points by at most ±0.09 keeps them inside their box (half-width 0.17).
_JITTER = 0.09
# A fixed seed: jitter must not change between two reports of the same study.
_JITTER_SEED = 0
# Runs as points of 18 pt² (matplotlib's default is 36) at 80% opacity: overlapping runs stay visible as darker.
_POINT_SIZE = 18
_POINT_ALPHA = 0.8
# The last-checkpoint box filled lightly in the recipe's colour; the best-validation one left white.
_FILL_ALPHA = 0.3
# Markers on the expected-performance curves, small enough not to hide the ±std band.
_MARKER_SIZE = 3
# The failure line: a mid-grey dashed line, never mistaken for one of the recipes' colours; the resolution line
# dotted in the same grey.
_FAILURE_STYLE = {"linestyle": "--", "color": "0.35", "linewidth": 1.2}
_RESOLUTION_STYLE = {"linestyle": ":", "color": "0.35", "linewidth": 1.2}
# Opacity of min-max and ±std bands: light enough for three or four overlapping recipes to stay distinguishable.
_BAND_ALPHA = 0.2
# Matplotlib's default colour cycle has 10 colours ("C0".."C9"); a recipe keeps its colour in every figure.
_N_COLOURS = 10
# A legend below the axes may take 95% of the figure's width, leaving a margin at either side.
_LEGEND_SHARE = 0.95
# A legend row of 10-pt text with matplotlib's default spacing is ~0.25 in high.
_LEGEND_ROW_INCHES = 0.25


def mpl_text(text: object) -> str:
    """User text for matplotlib: an unescaped pair of ``$`` would start mathtext (and may fail to parse)."""
    return str(text).replace("$", r"\$")


def recipe_colours(recipes: Sequence[str]) -> dict[str, str]:
    return {recipe: f"C{i % _N_COLOURS}" for i, recipe in enumerate(recipes)}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the PNG then holds nothing but the picture (and no URL).
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _line_width(recipes: int) -> float:
    return min(_MAX_WIDTH, max(_WIDTH, _INCHES_PER_LINE * recipes))


def _wrap(name: str, width: int) -> str:
    """A recipe name on lines of at most ``width`` characters (a ``+`` may hang one over), broken after its ``+``
    joints where possible and inside a part only where the part alone is too long."""
    lines: list[str] = []
    for part in name.replace("+", "+\n").splitlines():
        if lines and len(lines[-1]) + len(part.rstrip("+")) <= width:
            lines[-1] += part
        elif len(part.rstrip("+")) <= width:
            lines.append(part)
        else:
            lines += textwrap.wrap(part, width, break_on_hyphens=False)
    return "\n".join(lines)


def _legend_below(fig: Figure, handles: list[Any], labels: list[str]) -> None:
    """The legend under the axes, outside the data (constrained layout makes room for it): in the most columns
    whose measured width fits the figure's, and the figure taller by the legend's rows, so the axes keep their
    height."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    for columns in range(len(labels), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False)
        if columns == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width * _LEGEND_SHARE:
            break
        legend.remove()
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + _LEGEND_ROW_INCHES * math.ceil(len(labels) / columns))


def _failure_lines(ax: Axes, entry: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The failure line and, where the split resolves one, the p < alpha line; their legend entries."""
    predictor = entry.get("baseline_predictor") or "best constant predictor"
    handles = [ax.axhline(entry["baseline"], **_FAILURE_STYLE)]
    labels = [f"failure line: {mpl_text(predictor)} ({entry['baseline']:.3f})"]
    threshold = entry["resolution"]["threshold"]
    if threshold is not None:
        handles.append(ax.axhline(threshold, **_RESOLUTION_STYLE))
        labels.append(f"beats it at p < {entry['alpha']:g} ({threshold:.3f})")
    return handles, labels


def box_figure(task: str, groups: Rows, colours: dict[str, str], entry: dict[str, Any]) -> bytes:
    """:func:`box_plot` as PNG."""
    return _png(box_plot(task, groups, colours, entry))


def box_plot(task: str, groups: Rows, colours: dict[str, str], entry: dict[str, Any]) -> Figure:
    """Per recipe two boxes: the last checkpoint's test metric (filled; it decides failure) and the best-validation
    checkpoint's (white), every run on top (× failed), with the failure line and the resolution line."""
    recipes = list(groups)
    width = min(_MAX_WIDTH, max(_WIDTH, _INCHES_PER_RECIPE * len(recipes)))
    fig = Figure(figsize=(width, _HEIGHT), layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(_JITTER_SEED)
    positions = np.arange(1, len(recipes) + 1)
    for position, (recipe, group) in zip(positions, groups.items()):
        failed = np.array([bool(row["failed"] or row["diverged"]) for row in group])
        for key, offset, face in (("test_last", -_BOX_OFFSET, colours[recipe]), ("test_best", _BOX_OFFSET, "white")):
            scores = np.array([run_score(row[key], entry["baseline"]) for row in group])
            x = position + offset
            # Every run is drawn as a point, so no fliers; black medians (orange is the second recipe's colour).
            boxes = ax.boxplot([scores], positions=[x], widths=_BOX_WIDTH, showfliers=False, patch_artist=True,
                               medianprops={"color": "black"})  # fmt: skip
            boxes["boxes"][0].set(facecolor=face, alpha=1.0 if face == "white" else _FILL_ALPHA, edgecolor="black")
            jitter = x + rng.uniform(-_JITTER, _JITTER, size=scores.size)
            ax.scatter(jitter[~failed], scores[~failed], s=_POINT_SIZE, color=colours[recipe], alpha=_POINT_ALPHA,
                       zorder=3)  # fmt: skip
            ax.scatter(jitter[failed], scores[failed], s=_POINT_SIZE, color=colours[recipe], marker="x", zorder=3)
    handles, labels = _failure_lines(ax, entry)
    handles += [
        Patch(facecolor="0.6", alpha=_FILL_ALPHA, edgecolor="black"),
        Patch(facecolor="white", edgecolor="black"),
        Line2D([], [], color="0.3", marker="x", linestyle=""),
    ]
    labels += ["last checkpoint (decides failure)", "best-validation checkpoint", "a failed run"]
    wrap = int((width - _AXES_MARGIN) / len(recipes) * _CHARS_PER_INCH) - 1
    if wrap >= _MIN_WRAP:
        ax.set_xticks(positions, [f"{mpl_text(_wrap(r, wrap))}\n(n={len(g)})" for r, g in groups.items()])
    else:
        names = [f"{mpl_text(r)} (n={len(g)})" for r, g in groups.items()]
        ax.set_xticks(positions, names, rotation=_TILT, ha="right", rotation_mode="anchor")
        fig.set_size_inches(width, _HEIGHT + _TILT_INCHES_PER_CHAR * max(map(len, names)))
    ax.set_xlim(0.4, len(recipes) + 0.6)
    ax.set_ylabel(f"test {mpl_text(entry['metric'])}")
    ax.set_title(mpl_text(task))
    _legend_below(fig, handles, labels)
    return fig


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


def loss_figure(
    task: str, groups: Rows, curves: dict[tuple[str, str, int], list[dict[str, Any]]], colours: dict[str, str]
) -> bytes:
    """Training loss per step: mean over a recipe's runs and the min-max band."""
    fig = Figure(figsize=(_line_width(len(groups)), _HEIGHT), layout="constrained")
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
        labels.append(f"{mpl_text(recipe)} ({len(recipe_curves)} runs)")
    if handles:
        _legend_below(fig, handles, labels)  # explicit labels: matplotlib would hide ones starting with "_"
    else:
        ax.text(0.5, 0.5, "no loss curves recorded", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(mpl_text(task))
    return _png(fig)


def expected_figure(task: str, entries: list[dict[str, Any]], colours: dict[str, str]) -> bytes:
    """:func:`expected_plot` as PNG."""
    return _png(expected_plot(task, entries, colours))


def expected_plot(task: str, entries: list[dict[str, Any]], colours: dict[str, str]) -> Figure:
    """Expected test metric of the best-validation run among k, ± one standard deviation, per recipe."""
    fig = Figure(figsize=(_line_width(len(entries)), _HEIGHT), layout="constrained")
    ax = fig.add_subplot()
    handles, labels = [], []
    for entry in entries:
        k = np.array([e["k"] for e in entry["expected"]])
        mean = np.array([e["mean"] for e in entry["expected"]])
        std = np.array([e["std"] for e in entry["expected"]])
        colour = colours[entry["recipe"]]
        (line,) = ax.plot(k, mean, color=colour, marker="o", markersize=_MARKER_SIZE, linewidth=1)
        ax.fill_between(k, mean - std, mean + std, color=colour, alpha=_BAND_ALPHA, linewidth=0)
        handles.append(line)
        labels.append(mpl_text(entry["recipe"]))
    lines, line_labels = _failure_lines(ax, entries[0])
    _legend_below(fig, [*handles, *lines], [*labels, *line_labels])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(left=1 - 0.2, right=max((len(e["expected"]) for e in entries), default=1) + 0.2)
    ax.set_xlabel("number of runs k")
    ax.set_ylabel(f"expected test {mpl_text(entries[0]['metric'])}")
    ax.set_title(mpl_text(task))
    return fig
