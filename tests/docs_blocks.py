"""The documented commands and snippets, found and run the way a reader would run them (for tests/test_docs.py).

`discover()` finds every fenced ```bash / ```sh / ```console / ```python / ```text block of the documents in
`DOCUMENTS` and every command line of each `examples/*.py` module docstring; a `Chain` runs one document's blocks in
document order in one working folder laid out like a checkout (`<root>/checkout`, with `<root>/shared/data/glue`
beside it), so a block can read what an earlier one wrote. `rewrite()` holds every substitution the doc test makes;
anything it does not name runs verbatim.

An HTML comment right before a fence says a block is not run by the generic test, and why:
``<!-- doc-test: fragment, see test_name -->`` (a fragment that needs the reader's objects; `test_name` in
tests/test_docs.py runs it) or ``<!-- doc-test: skip, reason -->``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Block",
    "Chain",
    "Outcome",
    "DOCUMENTS",
    "OUTPUT_LANGUAGES",
    "RUN_LANGUAGES",
    "discover",
    "commands",
    "rewrite",
    "unprinted_lines",
]

# The README, the developer notes and the site's guide pages (docs/guide/*.md), plus examples/*.py docstrings; the
# results pages (docs/results) record commands that ran for hours and are not rerun here.
DOCUMENTS = ("README.md", "DEVELOPERS.md")
GUIDE = "docs/guide"
RUN_LANGUAGES = ("bash", "sh", "shell", "console", "python")
OUTPUT_LANGUAGES = ("text",)

# The caps on sizes (see rewrite): what the tiny GLUE slice holds and the tiny model learns in, in seconds.
TRAIN_SIZE_CAP = 32  # class-balanced: 16 a class; the GLUE slice's 100 train rows hold that for every task
SEEDS_CAP = 2  # two seeds still give every statistic of a report (a std, a Welch test) something to compute

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[ \t]*$")
_MARKER = re.compile(r"<!--\s*doc-test:\s*(fragment|skip)\s*,\s*(.*?)\s*-->")
_EXIT = re.compile(r"#.*\bexit(?: code)? (\d+)")  # `# exit 1: ...` documents the exit code


@dataclass(frozen=True)
class Block:
    """One documented block: where it is (`doc`, the fence's or the first command's 1-based `line`), its language
    and text, and the `doc-test` marker before it (kind, note) if any."""

    doc: str
    line: int
    language: str
    text: str
    marker: tuple[str, str] | None = None
    offset: int = 1  # the text's first line is line + offset (a fence's next line; 0 for a docstring's commands)

    @property
    def id(self) -> str:
        return f"{self.doc}:L{self.line}"


@dataclass
class Outcome:
    """What running a block gave: ok or the failure's message, its captured stdout, and how long it took."""

    ok: bool
    message: str = ""
    stdout: str = ""
    seconds: float = 0.0
    ran: bool = True
    skipped: list[str] = field(default_factory=list)  # the commands of the block deliberately not run, with why


def discover(repo: Path) -> list[Block]:
    """Every block of the documents and of examples/*.py docstrings, in document order (a missing document
    contributes none)."""
    blocks: list[Block] = []
    names = [*DOCUMENTS, *(p.relative_to(repo).as_posix() for p in sorted((repo / GUIDE).glob("*.md")))]
    for name in names:
        if (repo / name).is_file():
            blocks += _markdown_blocks(name, (repo / name).read_text(encoding="utf-8"))
    for path in sorted((repo / "examples").glob("*.py")):
        blocks += _docstring_blocks(path.relative_to(repo).as_posix(), path.read_text(encoding="utf-8"))
    return blocks


def _markdown_blocks(doc: str, text: str) -> list[Block]:
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"{doc}:L{i + 1}: a fence that never closes"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.search(before)
        blocks.append(Block(doc, i + 1, opened.group(1).lower() or "text", "\n".join(lines[i + 1 : end]) + "\n",
                            (marker.group(1), marker.group(2)) if marker else None))  # fmt: skip
        i = end + 1
    return blocks


def _docstring_blocks(doc: str, text: str) -> list[Block]:
    """The module docstring's command lines (`python ...`, `pip ...`, `steadytune ...`), one block per module."""
    docstring = ast.get_docstring(ast.parse(text), clean=False) or ""
    lines = docstring.splitlines()
    wanted = [k for k, ln in enumerate(lines) if re.match(r"\s*(python|pip|steadytune)\s", ln)]
    if not wanted:
        return []
    first = 1 + text[: text.index(docstring)].count("\n") + wanted[0]  # the first command's line in the file
    kept = [ln.strip() if k in wanted else "" for k, ln in enumerate(lines[wanted[0] : wanted[-1] + 1], wanted[0])]
    return [Block(doc, first, "bash", "\n".join(kept) + "\n", offset=0)]


def commands(block: Block) -> list[tuple[int, list[str], int | None]]:
    """(line, argv, documented exit code) per command of a shell block, `&&` chains split, backslash
    continuations joined, comments dropped (a comment saying `exit N` documents the exit code)."""
    raw = block.text.splitlines()
    if block.language == "console":  # `$ command`; other lines are output
        raw = [ln[2:] if ln.startswith("$ ") else "" for ln in raw]
    out, k = [], 0
    while k < len(raw):
        start, line = k, raw[k]
        while line.rstrip().endswith("\\") and k + 1 < len(raw):
            k += 1
            line = line.rstrip()[:-1] + " " + raw[k].strip()
        k += 1
        body, comment = _split_comment(line)
        exit_code = _EXIT.search(comment)
        argv, code = shlex.split(body), int(exit_code.group(1)) if exit_code else None
        line_no = block.line + block.offset + start
        part: list[str] = []
        for token in [*argv, "&&"]:
            if token == "&&":
                if part:
                    out.append((line_no, part, code))
                part = []
            else:
                part.append(token)
    return out


def _split_comment(line: str) -> tuple[str, str]:
    """(command, comment) as a shell splits them: `#` starting a word outside quotes begins the comment."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i:]
    return line, ""


def rewrite(argv: list[str]) -> list[str]:
    """The doc test's substitutions on one command, and nothing else:

    - `--train-size N` → at most TRAIN_SIZE_CAP (the GLUE slice has 100 training rows a task);
    - `--seeds N` → at most SEEDS_CAP;
    - `steadytune study` / `steadytune fit` without `--workers` or `--executor` get `--workers 1` (trials in the
      test's process: a spawn pool's start-up would cost more than the tiny trials, and the name
      all-MiniLM-L6-v2 resolves to the tiny model only in this process), and `--threads 1` unless they set it
      (the tiny model's products are too small for a second thread, which only spin-waits: measured on the 2
      shared CI cores, 0.3 s of CPU for a tiny trial with one thread, 2.5-6 s with two).
    """
    out = list(argv)
    for flag, cap in (("--train-size", TRAIN_SIZE_CAP), ("--seeds", SEEDS_CAP)):
        for i, token in enumerate(out):
            if token == flag and i + 1 < len(out) and out[i + 1].isdigit():
                out[i + 1] = str(min(int(out[i + 1]), cap))
            elif token.startswith(flag + "=") and token[len(flag) + 1 :].isdigit():
                out[i] = f"{flag}={min(int(token[len(flag) + 1 :]), cap)}"
    program = _program(out)
    if program and program[1:2] in (["study"], ["fit"]):
        flags = {t.split("=")[0] for t in out}
        if not flags & {"--workers", "--executor"}:
            out += ["--workers", "1"] + ([] if "--threads" in flags else ["--threads", "1"])
    return out


def _program(argv: list[str]) -> list[str] | None:
    """argv as `steadytune ...` when the command is steadytune (also as `python -m steadytune`), else None."""
    if argv[:1] == ["steadytune"]:
        return argv
    if argv[:3] == ["python", "-m", "steadytune"]:
        return ["steadytune", *argv[3:]]
    return None


def unprinted_lines(shown: str, printed: str) -> list[str]:
    """The lines of documented output `shown` that `printed` lacks: a line without a digit (headers, legends: what
    does not change from run to run) must be printed as is, spaces aside; a JSON object line must have a printed
    JSON object line with the same keys in the same order."""
    have = {" ".join(ln.split()) for ln in printed.splitlines()}
    printed_keys = {keys for ln in printed.splitlines() if (keys := _json_keys(ln)) is not None}
    missing = []
    for ln in shown.splitlines():
        keys = _json_keys(ln)
        if keys is not None:
            if keys not in printed_keys:
                missing.append(ln)
        elif ln.strip() and not re.search(r"\d", ln) and " ".join(ln.split()) not in have:
            missing.append(ln)
    return missing


def _json_keys(line: str) -> tuple[str, ...] | None:
    if not line.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return tuple(value) if isinstance(value, dict) else None


class Chain:
    """One document's blocks, run once each in document order in `root/checkout`, as far as a test asks.

    `setup` is a context manager factory that makes the process look like the reader's machine for one block
    (the test's substitutions of the model, the reader's own files and packages); `suite_check` judges a
    `python -m pytest` command (the suite itself, never run from inside itself).
    """

    def __init__(self, blocks: list[Block], checkout: Path, setup: Callable[[], contextlib.AbstractContextManager],
                 suite_check: Callable[[list[str]], str | None]) -> None:  # fmt: skip
        self.blocks, self.checkout, self.setup, self.suite_check = blocks, checkout, setup, suite_check
        self.outcomes: dict[int, Outcome] = {}

    def outcome(self, block: Block) -> Outcome:
        index = self.blocks.index(block)
        for i in range(index + 1):
            if i not in self.outcomes:
                self.outcomes[i] = self._run(self.blocks[i])
        return self.outcomes[index]

    def earlier_failures(self, block: Block) -> list[str]:
        index = self.blocks.index(block)
        return [self.blocks[i].id for i in range(index) if not self.outcomes[i].ok]

    def last_output(self, block: Block) -> tuple[Block, Outcome] | None:
        """The nearest earlier block that ran commands, and its outcome: what an output block shows."""
        self.outcome(block)
        index = self.blocks.index(block)
        for i in range(index - 1, -1, -1):
            if self.blocks[i].language in RUN_LANGUAGES and self.outcomes[i].ran and self.outcomes[i].stdout:
                return self.blocks[i], self.outcomes[i]
        return None

    def _run(self, block: Block) -> Outcome:
        if block.marker or block.language not in RUN_LANGUAGES:
            return Outcome(True, ran=False)
        start = time.perf_counter()
        stdout = io.StringIO()
        outcome = Outcome(True)
        with _chdir(self.checkout), self.setup():
            if block.language == "python":
                outcome.message = self._exec(block, stdout)
            else:
                for line, argv, expected in commands(block):
                    why = self._command(block, line, argv, expected, stdout, outcome)
                    if why:
                        outcome.message = why
                        break
        outcome.ok, outcome.stdout = not outcome.message, stdout.getvalue()
        outcome.seconds = time.perf_counter() - start
        return outcome

    def _exec(self, block: Block, stdout: io.StringIO) -> str:
        padded = "\n" * (block.line + block.offset - 1) + block.text  # tracebacks name the document's lines
        code = compile(padded, block.doc, "exec")
        stderr = io.StringIO()
        sys.path.insert(0, str(self.checkout))  # a script or REPL in the working folder imports from it
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                exec(code, {"__name__": "__main__"})
        except BaseException:
            return f"{block.id}: the python block raised:\n{traceback.format_exc(limit=-4)}{_tail(stderr)}"
        finally:
            sys.path.remove(str(self.checkout))
        return ""

    def _command(self, block: Block, line: int, argv: list[str], expected: int | None, stdout: io.StringIO,
                 outcome: Outcome) -> str:  # fmt: skip
        """Run one command; '' when it did what the document says, else why not (naming its line)."""
        where = f"{block.doc}:L{line} `{shlex.join(argv)}`"
        if argv[:1] in (["pip"], ["pip3"]) or argv[:3] == ["python", "-m", "pip"]:
            outcome.skipped.append(f"{where}: an install (the suite runs on the installed package)")
            return ""
        if argv[:3] == ["python", "-m", "pytest"]:
            outcome.skipped.append(f"{where}: the test suite itself")
            return self.suite_check(argv) or ""
        argv = rewrite(argv)
        program = _program(argv)
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                if program is not None:
                    from steadytune.cli import main

                    code = _exit_code(lambda: main(program[1:]))
                elif argv[:1] == ["python"] and len(argv) > 1 and argv[1].endswith(".py"):
                    code = _exit_code(lambda: _run_script(Path(argv[1]), argv[1:]))
                else:
                    return f"{where}: the doc test has no rule to run this command (add one to tests/docs_blocks.py)"
        except BaseException:
            return f"{where} raised:\n{traceback.format_exc(limit=-6)}{_tail(stderr)}"
        # fit and train may also exit 1: a verdict of no, a run that failed (the tiny random model on a 32-row slice)
        allowed = {expected} if expected is not None else {0, 1} if program and program[1:2] in (["fit"], ["train"]) \
            else {0}  # fmt: skip
        if code not in allowed:
            return f"{where} exited {code}, documented {sorted(allowed)}{_tail(stderr)}"
        return ""


def _run_script(path: Path, argv: list[str]) -> None:
    """`python path args` in this process: argv and sys.path[0] as the interpreter sets them."""
    if not path.is_file():
        raise FileNotFoundError(f"python: can't open file {str(path)!r}")
    saved = sys.argv
    sys.argv = [str(path), *argv[1:]]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved
        sys.path.remove(str(path.resolve().parent))


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    """contextlib.chdir, which Python 3.10 lacks."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _exit_code(call: Callable[[], object]) -> int:
    try:
        result = call()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    return result if isinstance(result, int) else 0


def _tail(stderr: io.StringIO, chars: int = 2000) -> str:
    text = stderr.getvalue().strip()
    return f"\n--- stderr (end) ---\n{text[-chars:]}" if text else ""
