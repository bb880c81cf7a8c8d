"""The report as a document: a title and blocks of plain text, and its two renderers, Markdown and HTML.

A :class:`Document` is a sequence of blocks (:class:`Heading`, :class:`Paragraph`, :class:`Notes`, :class:`Code`,
:class:`Table` with :class:`ColumnGroup` headers, :class:`Figure`) whose text is plain strings with :class:`Bold`
and :class:`Mono` (inline code) spans. Only the renderers escape: the document holds user strings as written.
Every piece of text (title, notes, task, recipe and metric names, as well as the fixed wording) is put on one line
and escaped for HTML, or backslash-escaped for markdown, so a name such as ``<script>`` or ``a|b`` is shown as
written and cannot break the page or a table. A :class:`Code` block (a command to copy) keeps its text verbatim: in
markdown inside a fence longer than any run of backticks in it, in HTML escaped inside ``<pre><code>``; a
:class:`Mono` span likewise, in a code span or an escaped ``<code>`` (never as backticks in HTML, where they would
show as written).

The HTML is one self-contained page: figures are embedded as ``data:`` URIs, and a Content-Security-Policy
forbids loading anything else or running anything.
"""

from __future__ import annotations

import base64
import html
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "Block", "Bold", "Code", "ColumnGroup", "Document", "Figure", "Heading", "Mono", "Notes", "Paragraph", "Table",
    "Text", "render_html", "render_markdown", "slugify",
]  # fmt: skip

Escape = Callable[[str], str]

# Slugs stay far below the 255-byte file-name limit of common file systems, with room for "-expected.png".
_SLUG_MAX = 60

# A line length readable on a wide screen, thin table rules, numbers right-aligned, figures no wider than the page.
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }
table { border-collapse: collapse; margin: 1rem 0; display: block; overflow-x: auto; }
pre { background: #f6f6f6; padding: 0.5rem; white-space: pre-wrap; overflow-wrap: anywhere; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td.label { text-align: left; }
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
_BACKTICKS = re.compile(r"`+")
# CommonMark's shortest code fence.
_MIN_FENCE = 3


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


# --- the document ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bold:
    """Strong emphasis: ``**text**`` in markdown, ``<strong>`` in HTML."""

    text: str


@dataclass(frozen=True)
class Mono:
    """Inline code, such as a command to type: a code span in markdown, ``<code>`` in HTML."""

    text: str


# Text as written (never escaped): a plain string, a bold or code span, or a sequence of them.
Text = str | Bold | Mono | tuple[str | Bold | Mono, ...]


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
class Code:
    """Verbatim text, such as a command to copy: shown as written, in a monospaced block."""

    text: str


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
    """A table: ``header`` cells are single columns or column groups; a row's first ``labels`` cells name it (left-
    aligned), the others are numbers (right-aligned)."""

    header: tuple[Text | ColumnGroup, ...]
    rows: tuple[tuple[Text, ...], ...]
    caption: Text = ()
    labels: int = 1


@dataclass(frozen=True)
class Figure:
    """A PNG image: ``path`` is relative to the report and URL-safe (a slug), and names the image's bytes."""

    path: str
    alt: Text
    caption: Text


Block = Heading | Paragraph | Notes | Code | Table | Figure


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]


def _inline(text: Text, escape: Escape, strong: Escape, code: Escape) -> str:
    """``text`` on one line (runs of whitespace as one space), each piece escaped, the bold ones in ``strong``; a
    code span's text goes to ``code`` as it is (on one line), which escapes it its own way."""
    pieces = text if isinstance(text, tuple) else (text,)
    rendered = "".join(
        strong(escape(_one_line(piece.text).strip())) if isinstance(piece, Bold)
        else code(_one_line(piece.text).strip()) if isinstance(piece, Mono)
        else escape(_one_line(piece))
        for piece in pieces
    )  # fmt: skip
    return rendered.strip()


# --- markdown ----------------------------------------------------------------------------------------------------


def _md_code_span(text: str) -> str:
    """A CommonMark code span: delimited by more backticks than any run in it (backslashes mean nothing there), with
    a space inside each delimiter where the text starts or ends with a backtick."""
    ticks = "`" * (1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _md_text(text: Text) -> str:
    return _inline(text, _md, lambda inner: f"**{inner}**", _md_code_span)


def _md_paragraph(text: Text) -> str:
    """Text that starts a line: a leading "1." or "-" must not start a list."""
    return _MARKDOWN_BLOCK_START.sub(r"\1\\\2", _md_text(text))


def _markdown_table(table: Table) -> list[str]:
    header = [
        f"{_md_text(cell.name)} {_md_text(column)}" if isinstance(cell, ColumnGroup) else _md_text(cell)
        for cell in table.header
        for column in (cell.columns if isinstance(cell, ColumnGroup) else (None,))
    ]
    rule = "|" + "---|" * table.labels + "---:|" * (len(header) - table.labels)  # numbers right-aligned
    lines = ["| " + " | ".join(header) + " |", rule]
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
        case Code(text):
            # A fence longer than any run of backticks in the text: no line of it can close the block.
            fence = "`" * max(_MIN_FENCE, 1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
            return [fence, *text.splitlines(), fence]
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
    return _inline(text, _html, lambda inner: f"<strong>{inner}</strong>", _html_code)


def _html_code(text: str) -> str:
    return f"<code>{_html(text)}</code>"


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
    cells = [[f'<td class="label">{_html_text(cell)}</td>' if i < table.labels else f"<td>{_html_text(cell)}</td>"
              for i, cell in enumerate(row)] for row in table.rows]  # fmt: skip
    lines += ["<tr>" + "".join(row) + "</tr>" for row in cells]
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
        case Code(text):
            return [f"<pre><code>{_html(text)}</code></pre>"]
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
