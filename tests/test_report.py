"""Tests for steadytune.report: both files written, HTML parses with embedded PNGs, escaping, bold, determinism, and
one document rendered to markdown and HTML showing the same text."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from steadytune.report import (
    Bold,
    Code,
    Document,
    Figure,
    Heading,
    Mono,
    Notes,
    Paragraph,
    Table,
    render_html,
    render_markdown,
    report_document,
    slugify,
    write_report,
)
from steadytune.stats import summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL_RECIPE = "<script>alert(1)</script>|$x$ longer"  # HTML, a table pipe and a matplotlib mathtext pair
EVIL_TASK = "RTE|"  # slugifies like "rte": the figure names must still differ
EVIL_PREDICTOR = "always '<b>x</b>|y'"  # label names are the user's too
EVIL_COMMAND = "steadytune study --recipes '<script>|```' --out x"  # a code fence and HTML inside the command
TASKS = ["rte", EVIL_TASK]
RECIPES = ["adam", "bertadam", EVIL_RECIPE]

# Test scores of the best checkpoint per task, recipe and seed (None: diverged before it was scored). On "rte"
# adam is best, bertadam a tie and the third recipe clearly worse; on the second task the third recipe is best and
# bertadam clearly worse.
SCORES = {
    "rte": {
        "adam": [0.70, 0.72, 0.71, 0.73],
        "bertadam": [0.69, 0.73, 0.70, 0.72],
        EVIL_RECIPE: [0.55, 0.56, 0.54, None],
    },
    EVIL_TASK: {
        "adam": [0.40, 0.42, 0.45, 0.41],
        "bertadam": [0.10, 0.12, 0.11, 0.09],
        EVIL_RECIPE: [0.44, 0.43, 0.46, 0.45],
    },
}


def fake_study() -> tuple[list[dict], dict]:
    rows, curves = [], {}
    for task in TASKS:
        metric, baseline = ("accuracy", 0.52) if task == "rte" else ("matthews_correlation", 0.0)
        predictor = "always 'entailment'" if task == "rte" else EVIL_PREDICTOR
        for seed in range(4):
            for recipe in RECIPES:
                score = SCORES[task][recipe][seed]
                diverged = score is None
                failed = diverged or score - 0.01 <= baseline
                rows.append({
                    "task": task, "recipe": recipe, "seed": seed, "metric": metric, "majority_baseline": baseline,
                    "baseline": baseline, "baseline_predictor": predictor, "baseline_mse": None, "test_size": 139,
                    "test_best": score, "test_last": None if diverged else score - 0.01,
                    "validation_best": None if diverged else score + 0.01 * ((seed * 7) % 3),
                    "validation_last": None if diverged else score, "steps": 12 if diverged else 20,
                    "best_step": None if diverged else 10, "failed": failed, "stored_failed": failed,
                    "failure": ("diverged" if diverged else "constant") if failed else None, "rule": "current",
                    "diverged": diverged, "wall_s": 2.0, "config.optimizer": "adamw",
                })  # fmt: skip
                steps = 30 if recipe == EVIL_RECIPE else 20  # a "longer" recipe: more steps than the others
                curve = [
                    {"step": s, "loss": 0.7 * math.exp(-s / (10 + seed)) + 0.05 * seed, "grad_norm": 1.0, "lr": 1e-5}
                    for s in range(1, steps + 1)
                ]
                if diverged:
                    curve = curve[:12]
                    curve[-1]["loss"] = math.nan
                curves[task, recipe, seed] = curve
    return rows, curves


class Page(HTMLParser):
    """Collects start tags, image sources and, per table, rows of (cell text, bold) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.tables: list[list[list[tuple[str, bool]]]] = []
        self._cell: list[str] | None = None
        self._bold = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._bold = [], False
        elif tag == "strong" and self._cell is not None:
            self._bold = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(("".join(self._cell), self._bold))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    rows, curves = fake_study()
    summary = summarize(rows)
    out = tmp_path_factory.mktemp("study")
    notes = ["model <b>tiny</b>", "4 seeds | 24 trials"]
    md_path, html_path = write_report(out, rows, curves, summary, title="Study <script>x</script>", notes=notes,
                                      command=EVIL_COMMAND)  # fmt: skip
    return {"out": out, "md": md_path, "html": html_path, "rows": rows, "curves": curves, "summary": summary}


def test_files_exist(report) -> None:
    assert report["md"] == report["out"] / "report.md" and report["md"].is_file()
    assert report["html"] == report["out"] / "report.html" and report["html"].is_file()
    assert not [p for p in report["out"].rglob("*") if p.name.endswith(".tmp")]  # no temporary file left over


def test_html_parses_with_one_embedded_png_per_figure(report) -> None:
    text = report["html"].read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    assert page.tags[:2] == ["html", "head"] and "body" in page.tags
    assert len(page.images) == 3 * len(TASKS)
    for image in page.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        assert base64.b64decode(image["src"][len(prefix) :], validate=True)[:8] == PNG_SIGNATURE
        assert image["alt"]
    # Self-contained: nothing refers outside the file, and nothing runs.
    assert "script" not in page.tags
    assert not re.search(r"(src|href)\s*=\s*\"(?!data:)", text)
    assert "http://" not in text and "https://" not in text


def test_markdown_links_every_figure(report) -> None:
    text = report["md"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\n]*?\]\((figures/[^)]+)\)", text)
    pngs = sorted(p.relative_to(report["out"]).as_posix() for p in (report["out"] / "figures").glob("*.png"))
    assert len(links) == len(set(links)) == 3 * len(TASKS)
    assert sorted(links) == pngs
    for link in links:
        assert re.fullmatch(r"figures/[a-z0-9-]+\.png", link)  # slugs: no traversal, no odd characters
        assert (report["out"] / link).read_bytes()[:8] == PNG_SIGNATURE
    # Sections in the order: settings and command, tables, box plots, loss, expected performance, runs.
    headings = ("- model", "```", "## Results", "## What the test", "## Test metric", "## Training loss",
                "## Expected", "## Every run")  # fmt: skip
    order = [text.index(h) for h in headings]
    assert order == sorted(order)


def test_user_strings_escaped_in_html(report) -> None:
    text = report["html"].read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|$x$ longer" in text
    assert "<pre><code>steadytune study --recipes &#x27;&lt;script&gt;|```&#x27; --out x</code></pre>" in text
    assert "always &#x27;&lt;b&gt;x&lt;/b&gt;|y&#x27;" in text
    assert "<title>Study &lt;script&gt;x&lt;/script&gt;</title>" in text
    page = Page()
    page.feed(text)
    results = page.tables[0]
    assert [row[0][0] for row in results[2:]] == RECIPES  # names come back exactly as written
    assert results[0][1][0] == "rte (accuracy)" and results[0][2][0] == "RTE| (matthews_correlation)"


def split_markdown_row(line: str) -> list[str]:
    """Cells of a markdown table row: split on pipes that are not backslash-escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def markdown_table(text: str, first_header: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| recipe |") and first_header in line)
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return [split_markdown_row(line) for line in lines[start:end]]


def test_user_strings_escaped_in_markdown(report) -> None:
    text = report["md"].read_text(encoding="utf-8")
    # The command, verbatim, in a fence longer than its own run of backticks (a code block shows it as text).
    assert f"\n````\n{EVIL_COMMAND}\n````\n" in text
    outside = text.replace(f"````\n{EVIL_COMMAND}\n````", "")
    assert "<script>" not in outside and "<b>" not in outside
    assert text.startswith(r"# Study \<script\>x\</script\>")
    assert r"- 4 seeds \| 24 trials" in text
    table = markdown_table(text, "best")
    assert all(len(row) == 1 + 3 * len(TASKS) for row in table)  # the pipes in names did not add columns
    assert table[0][1:5] == ["rte best", "rte last", "rte failed", r"RTE\| best"]
    # The caption names each metric and failure line with its predictor, escaped.
    assert r"RTE\|: matthews\_correlation, failure line 0.000 (always '\<b\>x\</b\>\|y'), test n = 139" in text
    assert [row[0] for row in table[2:]] == ["adam", "bertadam", r"\<script\>alert(1)\</script\>\|\$x\$ longer"]


def test_bold_cells_are_the_summary_bold(report) -> None:
    summary = {(s["task"], s["recipe"]): s for s in report["summary"]}
    ties = {key for key, s in summary.items() if s["bold"]}
    # The fake scores give a best recipe, a bold one that is not the best, and one that is not bold.
    assert ties == {("rte", "adam"), ("rte", "bertadam"), (EVIL_TASK, EVIL_RECIPE), (EVIL_TASK, "adam")}

    md_rows = markdown_table(report["md"].read_text(encoding="utf-8"), "best")[2:]
    page = Page()
    page.feed(report["html"].read_text(encoding="utf-8"))
    html_rows = page.tables[0][2:]
    for r, recipe in enumerate(RECIPES):
        for t, task in enumerate(TASKS):
            s = summary[task, recipe]
            best_cell, last_cell, failed_cell = md_rows[r][1 + 3 * t : 4 + 3 * t]
            assert best_cell.startswith("**") is s["bold"], (task, recipe)
            assert "**" not in last_cell + failed_cell
            assert f"{s['best_mean']:.3f} ± {s['best_std']:.3f}" in best_cell
            assert failed_cell == f"{s['failed']}/{s['n']} ({100 * s['failure_rate']:.0f}%)"
            assert [bold for _, bold in html_rows[r][1 + 3 * t : 4 + 3 * t]] == [s["bold"], False, False]
    assert md_rows[2][1 + 2] == "1/4 (25%)"  # the diverged run is a failure
    # ... and counts at the failure line (0.52) in the mean: 3 scored runs and one at 0.52.
    assert md_rows[2][1].startswith(f"{(0.55 + 0.56 + 0.54 + 0.52) / 4:.3f} ± ")


def test_report_is_deterministic(report, tmp_path: Path) -> None:
    md2, html2 = write_report(
        tmp_path, report["rows"], report["curves"], report["summary"], title="Study <script>x</script>",
        notes=["model <b>tiny</b>", "4 seeds | 24 trials"], command=EVIL_COMMAND,
    )  # fmt: skip
    assert md2.read_text(encoding="utf-8") == report["md"].read_text(encoding="utf-8")
    assert html2.read_text(encoding="utf-8") == report["html"].read_text(encoding="utf-8")
    for png in (report["out"] / "figures").glob("*.png"):
        assert (tmp_path / "figures" / png.name).read_bytes() == png.read_bytes()


def test_empty_summary(tmp_path: Path) -> None:
    md, html_path = write_report(tmp_path, [], {}, [], title="nothing yet")
    assert "No finished trials." in md.read_text(encoding="utf-8")
    assert "No finished trials." in html_path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "slug"),
    [("RTE", "rte"), ("sts-b", "sts-b"), ("../../etc/passwd", "etc-passwd"), ("", "task"), ("…", "task"),
     ("Déjà vu", "deja-vu"), (".hidden", "hidden"), ("a/b\\c", "a-b-c")],
)  # fmt: skip
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert len(slugify("x" * 500)) <= 60


# --- one document, two renderers ---------------------------------------------------------------------------------

NOTES = ["model <b>tiny</b>", "4 seeds | 24 trials"]
TITLE = "Study <script>x</script>"


class Blocks(HTMLParser):
    """The text of a page as a list of blocks ``(kind, text)``, kind one of "h1", "h2", "li", "p" (paragraphs,
    captions), "code" (a code block, less its final newline), "img" (its alt text), "th", "td" (a cell's text;
    ``td*`` when it is bold)."""

    KINDS = {"h1": "h1", "h2": "h2", "li": "li", "p": "p", "figcaption": "p", "pre": "code", "th": "th", "td": "td"}

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[str, str]] = []
        self._open: list[str] | None = None
        self._kind = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.blocks.append(("img", dict(attrs)["alt"] or ""))
        elif tag in self.KINDS:
            self._open, self._kind = [], self.KINDS[tag]
        elif tag == "strong" and self._kind == "td":
            self._kind = "td*"

    def handle_endtag(self, tag: str) -> None:
        if tag in self.KINDS and self._open is not None:
            if self._open or self._kind != "p":  # a markdown image is a paragraph of its own: no text
                text = "".join(self._open)
                self.blocks.append((self._kind, text.removesuffix("\n") if self._kind == "code" else text))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


def html_blocks(page: str) -> list[tuple[str, str]]:
    parser = Blocks()
    parser.feed(page)
    parser.close()
    return parser.blocks


def unescape_markdown(text: str) -> str:
    """Text as a reader sees it: code spans as their content (verbatim, less one space of padding on each side
    where both have one), elsewhere backslash escapes undone and bold markers dropped (user text has every "*"
    escaped: no "**" of its own)."""
    parts = re.split(r"(?<!`)(`+)(?!`)(.*?)(?<!`)\1(?!`)", text)
    out = []
    for i in range(0, len(parts), 3):
        out.append(re.sub(r"\\(.)", r"\1", parts[i].replace("**", "")))
        if i + 2 < len(parts):
            code = parts[i + 2]
            out.append(code[1:-1] if len(code) > 2 and code[0] == code[-1] == " " else code)
    return "".join(out)


def simple_markdown_blocks(text: str) -> list[tuple[str, str]]:
    """The blocks of the report's markdown, read line by line: just enough markdown for what render_markdown writes."""
    blocks: list[tuple[str, str]] = []
    fence: str | None = None  # inside a code block: its fence
    for line in text.splitlines():
        if fence is not None:
            if line == fence:
                fence = None
            else:
                blocks[-1] = ("code", blocks[-1][1] + ("\n" if blocks[-1][1] else "") + line)
            continue
        if re.fullmatch(r"`{3,}", line):
            fence = line
            blocks.append(("code", ""))
            continue
        if not line or re.fullmatch(r"\|(-+:?\|)+", line):
            continue
        if line.startswith("|"):
            kind = "th" if not blocks or blocks[-1][0] not in ("th", "td", "td*") else "td"
            for cell in split_markdown_row(line):
                bold = kind == "td" and cell.startswith("**") and cell.endswith("**")
                blocks.append((kind + "*" * bold, unescape_markdown(cell)))
        elif match := re.fullmatch(r"(#{1,2}) (.*)", line):
            blocks.append((f"h{len(match[1])}", unescape_markdown(match[2])))
        elif match := re.fullmatch(r"!\[(.*)\]\([^)]*\)", line):
            blocks.append(("img", unescape_markdown(match[1])))
        elif line.startswith("- "):
            blocks.append(("li", unescape_markdown(line[2:])))
        else:
            blocks.append(("p", unescape_markdown(line)))
    return blocks


def commonmark_blocks(text: str) -> list[tuple[str, str]]:
    """The blocks of the markdown as a CommonMark reader (with GitHub's tables) renders them."""
    markdown_it = pytest.importorskip("markdown_it")
    return html_blocks(markdown_it.MarkdownIt("commonmark").enable("table").render(text))


def without_headers(blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The HTML names a column group once, with its metric, in a header row above its columns; markdown repeats
    the group's name (without the metric) in each column's header. Everything else must read the same."""
    return [block for block in blocks if block[0] != "th"]


def images(document: Document) -> dict[str, bytes]:
    return {block.path: PNG_SIGNATURE for block in document.blocks if isinstance(block, Figure)}


@pytest.fixture(scope="module")
def document(report: dict) -> Document:
    return report_document(report["summary"], title=TITLE, notes=NOTES, command=EVIL_COMMAND, rows=report["rows"])


def test_write_report_renders_the_document(report: dict, document: Document) -> None:
    assert report["md"].read_text(encoding="utf-8") == render_markdown(document)
    written = {path: (report["out"] / path).read_bytes() for path in images(document)}
    assert report["html"].read_text(encoding="utf-8") == render_html(document, written)


def test_document_holds_user_strings_as_written(document: Document) -> None:
    """Only the renderers escape: the document has the names exactly as the user wrote them."""
    assert document.title == TITLE
    assert document.blocks[0] == Notes(tuple(NOTES))
    assert Code(EVIL_COMMAND) in document.blocks
    results, tests, resolution, runs = [block for block in document.blocks if isinstance(block, Table)]
    assert [row[0] for row in results.rows] == RECIPES
    assert [(group.name, group.detail) for group in results.header[1:]] == [
        ("rte", "accuracy"), (EVIL_TASK, "matthews_correlation")
    ]  # fmt: skip
    assert [row[:2] for row in tests.rows] == [(task, recipe) for task in TASKS for recipe in RECIPES]
    assert [row[0] for row in resolution.rows] == TASKS and resolution.rows[1][3] == f"0.000 ({EVIL_PREDICTOR})"
    assert [row[:3] for row in runs.rows] == [(t, r, str(s)) for t in TASKS for r in RECIPES for s in range(4)]
    alts = [block.alt for block in document.blocks if isinstance(block, Figure)]
    assert alts[1] == f"{EVIL_TASK}: test metric per recipe"
    assert "&lt;" not in repr(document) and "\\\\" not in repr(document)


@pytest.mark.parametrize("read_markdown", [simple_markdown_blocks, commonmark_blocks])
def test_markdown_and_html_say_the_same(document: Document, read_markdown: Callable[[str], list]) -> None:
    md_blocks = read_markdown(render_markdown(document))
    html = html_blocks(render_html(document, images(document)))
    assert without_headers(md_blocks) == without_headers(html)
    # Same headings, notes, cells (bold ones too), figure alt texts and captions, in the same order.
    kinds = {kind for kind, _ in html}
    assert kinds == {"h1", "h2", "li", "p", "code", "img", "th", "td", "td*"}
    assert ("code", EVIL_COMMAND) in html
    assert ("h1", TITLE) in html and ("td", EVIL_RECIPE) in html and ("li", NOTES[1]) in html
    assert [text for kind, text in html if kind == "h2"] == [
        "Results", "What the test split resolves", "Test metric per recipe", "Training loss",
        "Expected best-of-k performance", "Every run",
    ]  # fmt: skip
    # Headers: markdown's "<task> <column>" is the HTML's group name (less its metric) and column name.
    md_headers = [text for kind, text in md_blocks if kind == "th"]
    assert md_headers[:5] == ["recipe", "rte best", "rte last", "rte failed", f"{EVIL_TASK} best"]
    html_headers = [text for kind, text in html if kind == "th"]
    assert html_headers[:4] == ["recipe", "rte (accuracy)", f"{EVIL_TASK} (matthews_correlation)", "best"]


@pytest.mark.parametrize("read_markdown", [simple_markdown_blocks, commonmark_blocks])
def test_a_new_section_appears_in_both(document: Document, read_markdown: Callable[[str], list]) -> None:
    """A section added to the document once shows in both files, escaped for each."""
    extra = (
        Heading(2, "Fisher's exact test <a|b>"),
        Paragraph(("Reference recipe: ", Bold("adam|*x*"), " & 1. $y$")),
        Table(("task", "recipe", "Holm p"), (("rte", EVIL_RECIPE, Bold("< 0.001")), ("1. x", "- y", "+ z")),
              "a <i>caption"),
        Notes(("1. not a list", "- nor a list", "+ nor this", "2) nor this")),
        Paragraph("- not a list either"),
    )  # fmt: skip
    extended = Document(document.title, document.blocks + extra)
    markdown = render_markdown(extended)
    md_blocks = read_markdown(markdown)
    html = html_blocks(render_html(extended, images(extended)))
    assert without_headers(md_blocks) == without_headers(html)
    new = html[html.index(("h2", "Fisher's exact test <a|b>")) :]
    assert new == [
        ("h2", "Fisher's exact test <a|b>"),
        ("p", "Reference recipe: adam|*x* & 1. $y$"),
        ("th", "task"), ("th", "recipe"), ("th", "Holm p"),
        ("td", "rte"), ("td", EVIL_RECIPE), ("td*", "< 0.001"),
        ("td", "1. x"), ("td", "- y"), ("td", "+ z"),
        ("p", "a <i>caption"),
        ("li", "1. not a list"), ("li", "- nor a list"), ("li", "+ nor this"), ("li", "2) nor this"),
        ("p", "- not a list either"),
    ]  # fmt: skip
    assert [block for block in md_blocks if block[0] == "th"][-3:] == new[2:5]  # a table without column groups
    # Header and rows of the tables: results, tests, resolution, runs, the new one.
    n_runs = len(TASKS) * len(RECIPES) * 4
    assert markdown.count("\n| ") == (1 + 3) + (1 + 6) + (1 + 2) + (1 + n_runs) + (1 + 2)


def test_whitespace_is_collapsed_in_both() -> None:
    doc = Document("two\nlines", (Paragraph(("a\n\n", Bold(" b "), "\tc ")), Notes(("x\ny",))))
    assert render_markdown(doc) == "# two lines\n\na **b** c\n\n- x y\n"
    assert "<h1>two lines</h1>\n<p>a <strong>b</strong> c</p>\n<ul>\n<li>x y</li>\n</ul>" in render_html(doc, {})


@pytest.mark.parametrize("read_markdown", [simple_markdown_blocks, commonmark_blocks])
def test_code_blocks_are_verbatim_and_cannot_break_out(read_markdown: Callable[[str], list]) -> None:
    texts = ["plain", "a ``` b\n```\n</code></pre><script>x</script>", "`````", "x  *y*  [z](u) <b>\\n"]
    doc = Document("t", tuple(Code(text) for text in texts) + (Paragraph("after"),))
    md_blocks = read_markdown(render_markdown(doc))
    html = html_blocks(render_html(doc, {}))
    assert md_blocks == html == [("h1", "t"), *(("code", text) for text in texts), ("p", "after")]
    assert "<script" not in render_html(doc, {})


@pytest.mark.parametrize("read_markdown", [simple_markdown_blocks, commonmark_blocks])
def test_inline_code_is_code_in_both(read_markdown: Callable[[str], list]) -> None:
    """A command in running text is a code span in markdown and escaped <code> in HTML: never literal backticks in
    the HTML, never markup from its text in either."""
    texts = ["steadytune report --reference RECIPE", "a `b` c", "`x", "<script>x</script> *y* \\n"]
    doc = Document("t", tuple(Paragraph(("run ", Mono(text), " now")) for text in texts))
    page = render_html(doc, {})
    assert read_markdown(render_markdown(doc)) == html_blocks(page) == [
        ("h1", "t"), *(("p", f"run {text} now") for text in texts)
    ]  # fmt: skip
    assert "<p>run <code>steadytune report --reference RECIPE</code> now</p>" in page
    assert "<script" not in page and page.count("`") == 3  # only those of the texts themselves


def test_the_report_has_no_markdown_or_tex_left_in_its_html(report: dict) -> None:
    """report.html shows the --reference command as code, not between backticks, and the expected-maximum caption
    as readable text, not TeX (F_{g−1}^k); report.md says the same in markdown."""
    page = report["html"].read_text(encoding="utf-8")
    text = "".join(text for kind, text in html_blocks(page) if kind != "code")  # the command block may hold any
    assert "`" not in text and "<code>steadytune report --reference RECIPE</code>" in page
    assert not re.search(r"[_^]\{|\b[A-Za-z]_[A-Za-z{]", text), "TeX or subscript markup in the HTML's text"
    assert "with probability F(g)ᵏ − F(g−1)ᵏ" in text
    assert "`steadytune report --reference RECIPE`" in report["md"].read_text(encoding="utf-8")


# --- figures -----------------------------------------------------------------------------------------------------

LONG_RECIPES = [
    "bertadam", "adam", "adam+reinit:2+llrd:0.9+lr=1e-4", "adam+mixout:0.1+longer:800", "adam+prior-wd:1e-3+lr=5e-5",
    "bertadam+lr=1e-4+batch_size=16", "a-very-long-name-without-joints", "adam+wd:0.01+lr=2e-5+epochs=5",
    "adam+llrd:0.95", "adam+reinit:5", "adam+fp32", "adam+bf16",
]  # fmt: skip


def long_study(recipes: list[str]) -> tuple[dict[str, list[dict]], list[dict]]:
    rows = []
    for i, recipe in enumerate(recipes):
        for seed in range(3):
            score = 0.55 + 0.01 * ((i * 3 + seed * 7) % 11)
            rows.append({
                "task": "rte", "recipe": recipe, "seed": seed, "metric": "accuracy", "majority_baseline": 0.52,
                "baseline": 0.52, "baseline_predictor": "always 'entailment'", "test_size": 139,
                "test_best": score + 0.02, "test_last": None if seed == 2 else score, "validation_best": score,
                "failed": seed == 2 or score <= 0.52, "diverged": seed == 2,
            })  # fmt: skip
    groups = {recipe: [row for row in rows if row["recipe"] == recipe] for recipe in recipes}
    return groups, summarize(rows)


def extents(fig, artists) -> list:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    return [artist.get_window_extent(renderer) for artist in artists]


@pytest.mark.parametrize("n", [2, 6, 12, 20])
def test_box_plot_labels_do_not_overlap_and_the_legend_is_off_the_data(n: int) -> None:
    from steadytune.report.figures import box_plot, recipe_colours

    recipes = (LONG_RECIPES * 2)[:n]
    recipes = [r if i < len(LONG_RECIPES) else f"{r}+x" for i, r in enumerate(recipes)]
    groups, summary = long_study(recipes)
    fig = box_plot("rte", groups, recipe_colours(recipes), summary[0])
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    (legend,) = fig.legends
    boxes = extents(fig, [*labels, legend, ax])
    ticks, legend_box, axes_box = boxes[:-2], boxes[-2], boxes[-1]
    figure_box = fig.bbox
    assert not legend_box.overlaps(axes_box)  # below the axes, not on the data
    for box in [*ticks, legend_box]:
        assert figure_box.x0 - 1 <= box.x0 and box.x1 <= figure_box.x1 + 1  # nothing cut off at the sides
        assert figure_box.y0 - 1 <= box.y0
    if labels[0].get_rotation() == 0:
        assert all(a.x1 <= b.x0 for a, b in zip(ticks, ticks[1:])), [t.get_text() for t in labels]
    else:  # tilted names on one line each: neighbours' baselines lie further apart than a line is high
        assert n >= 20 and labels[0].get_rotation() == 45
    assert fig.get_figwidth() <= 11.5  # at most the page's width at 100 dpi


def test_box_plot_draws_the_last_checkpoint_beside_the_best() -> None:
    from steadytune.report.figures import box_plot, recipe_colours

    groups, summary = long_study(["adam", "bertadam"])
    ax = box_plot("rte", groups, recipe_colours(["adam", "bertadam"]), summary[0]).axes[0]
    # Per recipe four point sets: last (not failed, failed), then best (not failed, failed).
    points = [sorted(c.get_offsets()[:, 1].tolist()) for c in ax.collections]
    for i, group in enumerate(groups.values()):
        last = sorted(0.52 if row["test_last"] is None else row["test_last"] for row in group)  # diverged: the line
        best = sorted(row["test_best"] for row in group)
        assert sorted(points[4 * i] + points[4 * i + 1]) == pytest.approx(last, abs=1e-12)
        assert sorted(points[4 * i + 2] + points[4 * i + 3]) == pytest.approx(best, abs=1e-12)
    lines = {line.get_ydata()[0] for line in ax.lines if line.get_linestyle() in ("--", ":")}
    assert lines == {0.52, summary[0]["resolution"]["threshold"]}  # the failure line and the resolution line


def test_expected_plot_legend_is_off_the_data() -> None:
    from steadytune.report.figures import expected_plot, recipe_colours

    _, summary = long_study(LONG_RECIPES)
    fig = expected_plot("rte", summary, recipe_colours(LONG_RECIPES))
    legend_box, axes_box = extents(fig, [fig.legends[0], fig.axes[0]])
    assert not legend_box.overlaps(axes_box)
    assert fig.bbox.x0 - 1 <= legend_box.x0 and legend_box.x1 <= fig.bbox.x1 + 1


# --- the tables --------------------------------------------------------------------------------------------------


def test_tables_say_why_a_cell_is_blank_and_list_every_run(document: Document, report: dict) -> None:
    results, tests, resolution, runs = [block for block in document.blocks if isinstance(block, Table)]
    header = tests.header
    rte = {row[1]: dict(zip(header, row)) for row in tests.rows if row[0] == "rte"}
    assert rte["adam"]["Welch p"] == "– (best)" and rte["adam"]["Levene p"] == "– (reference)"
    assert rte["bertadam"]["Fisher p"] == "1.000" and rte[EVIL_RECIPE]["Welch p"] == "< 0.001"
    summary = {(s["task"], s["recipe"]): s for s in report["summary"]}
    assert rte["bertadam"]["Welch Holm"] == f"{summary['rte', 'bertadam']['welch_holm']:.3f}"
    reference = [b for b in document.blocks if isinstance(b, Paragraph) and "Reference recipe" in str(b.text)]
    assert len(reference) == 1 and "adam (by default" in reference[0].text[0]
    # What the split resolves: RTE's 139 test examples against 0.52.
    res = summary["rte", "adam"]["resolution"]
    line = "0.520 (always 'entailment')"
    assert resolution.rows[0][:5] == ("rte", "accuracy", "139", line, f"{res['threshold']:.3f}")
    assert resolution.rows[0][5].endswith(f"{res['correct']}/139 correct")
    scored = [row for row in report["rows"] if row["task"] == "rte" and not row["failed"]]
    below = sum(row["test_last"] < res["threshold"] for row in scored)
    assert resolution.rows[0][6] == f"{below} of {len(scored)}" and 0 < below < len(scored)
    diverged = next(row for row in runs.rows if row[1] == EVIL_RECIPE and row[2] == "3" and row[0] == "rte")
    assert diverged[5:10] == ("– (diverged)", "– (diverged)", "yes: diverged", "–", "– / 12")
