"""The report of a multi-seed study: ``report.md`` with PNG figures beside it, and a self-contained ``report.html``.

:func:`write_report` takes the trials (:func:`steadytune.study.results.trial_rows`), their loss curves and
:func:`steadytune.stats.summarize`'s summary, and writes, in this order:

1. the run settings and the ``steadytune study`` command that reproduces the study (given by the caller);
2. the results table, laid out like Table 1 of Zhang et al. 2021 (a row per recipe, columns per task): test metric
   at the best-validation and at the last checkpoint as mean ± std (a run without a score counted at the failure
   line), failure rate with n; bold: the best mean and every recipe whose mean is above that of every recipe
   significantly worse than the best (one-sided Welch, Holm-adjusted); then the Welch, Levene and Fisher p-values
   behind it and the reference comparisons, raw and Holm-adjusted, and what each task's test split resolves;
3. per task, box plots of the last-checkpoint test metric (which decides failure) beside the best-validation one,
   every run on top, with the failure line (the best constant predictor, named) and the resolution line
   (Zhang et al. Fig. 2, Mosbach et al. 2021 Fig. 1);
4. per task, the training loss per step: mean and min-max band over seeds per recipe (Zhang et al. Fig. 3);
5. per task, the expected test metric of the best-validation run among k runs, k = 1..n, in closed form (Dodge et
   al. 2019; Zhang et al. Fig. 4);
6. every run: its scores, whether and why it failed, its steps.

The package, one concept a module: :mod:`~steadytune.report.document` (the :class:`Document` of blocks and its
Markdown and HTML renderers, the only place that escapes), :mod:`~steadytune.report.tables` (the tables and their
captions), :mod:`~steadytune.report.figures` (matplotlib), :mod:`~steadytune.report.content` (the document's
sections, and which figure goes where). Figures go to ``figures/`` as PNG files named by slugs of the task names,
linked from the markdown and embedded in the HTML as ``data:`` URIs (a Content-Security-Policy forbids loading
anything else). Every file is written atomically (temporary file, then rename); the output is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steadytune.files import atomic_write_bytes, atomic_write_text

from .content import Curves, draw_figures, report_document
from .document import (
    Block,
    Bold,
    Code,
    ColumnGroup,
    Document,
    Figure,
    Heading,
    Mono,
    Notes,
    Paragraph,
    Table,
    Text,
    render_html,
    render_markdown,
    slugify,
)

__all__ = [
    "Block", "Bold", "Code", "ColumnGroup", "Document", "Figure", "Heading", "Mono", "Notes", "Paragraph", "Table",
    "Text", "render_html", "render_markdown", "report_document", "slugify", "write_report",
]  # fmt: skip


def write_report(
    out_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    curves: Curves,
    summary: Sequence[dict[str, Any]],
    *,
    title: str,
    notes: Sequence[str] | None = None,
    command: str | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``; return the two report paths.

    Args:
        out_dir: the folder to write into (created if needed). Files of an earlier report are replaced; figures of
            tasks no longer in the study are left alone.
        rows: the trials, as given to :func:`steadytune.stats.summarize` (the runs drawn and listed).
        curves: per ``(task, recipe, seed)`` the per-step ``{"step", "loss", ...}`` records; a trial without a
            curve is left out of the loss figure.
        summary: ``summarize(rows)``; its order (tasks, then recipes) is the report's order.
        title: the report's title.
        notes: lines shown under the title (model, data, settings, versions...), as plain text.
        command: the command that reproduces the study, shown verbatim.
    """
    out_dir = Path(out_dir)
    document = report_document(summary, title=title, notes=notes or (), command=command, rows=rows)
    images = draw_figures(rows, curves, summary)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    for path, png in images.items():
        atomic_write_bytes(out_dir / path, png)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, render_markdown(document))
    atomic_write_text(html_path, render_html(document, images))
    return md_path, html_path
