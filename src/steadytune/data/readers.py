"""Reading tables from CSV, TSV and JSONL files into columns, with errors that name the file and line.

TSV is read WITHOUT quote handling, as the original BERT and Hugging Face GLUE processors do: some MRPC, STS-B and
RTE sentences hold bare `"` characters, and a quote-aware reader silently merges rows (MRPC 3668 → 3570 train rows).
CSV uses standard quoting (RFC 4180), since that is how CSV files are written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import UserInputError

__all__ = ["Table", "read_table", "read_tsv"]

Table = dict[str, list]
"""Column name → values, all columns of equal length; `__line__` holds each row's line number in the file."""

FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def _open(path: Path):
    if not path.is_file():
        raise UserInputError(f"file not found: {path}")
    # utf-8-sig: MRPC's files start with a byte-order mark (`\ufeffQuality`), as the GLUE originals do.
    return path.open(encoding="utf-8-sig", newline="")


def read_tsv(path: str | Path, *, header: tuple[str, ...] | None = None) -> Table:
    """Read a tab-separated file with no quote handling. `header` names the columns of a header-less file."""
    path = Path(path)
    with _open(path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline; CoLA's dev.tsv has none, which is fine too
    first = 1
    if header is None:
        if not lines:
            raise UserInputError(f"{path}: the file is empty")
        header = tuple(lines[0].rstrip("\r").split("\t"))
        first = 2
        lines = lines[1:]
    columns: Table = {name: [] for name in header}
    columns["__line__"] = []
    cells = [columns[name] for name in header]
    for i, line in enumerate(lines):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != len(header):
            raise UserInputError(
                f"{path}:{i + first}: malformed row: expected {len(header)} tab-separated fields, found {len(fields)}"
            )
        for col, value in zip(cells, fields):
            col.append(value)
        columns["__line__"].append(i + first)
    return columns


def _read_csv(path: Path) -> Table:
    with _open(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise UserInputError(f"{path}: the file is empty") from None
        columns: Table = {name: [] for name in header}
        columns["__line__"] = []
        cells = [columns[name] for name in header]
        try:
            for fields in reader:
                if not fields:
                    continue  # blank line
                if len(fields) != len(header):
                    raise UserInputError(
                        f"{path}:{reader.line_num}: malformed row: expected {len(header)} comma-separated fields, "
                        f"found {len(fields)}"
                    )
                for col, value in zip(cells, fields):
                    col.append(value)
                columns["__line__"].append(reader.line_num)
        except csv.Error as e:
            raise UserInputError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
    return columns


def _read_jsonl(path: Path) -> Table:
    columns: Table = {}
    lines: list[int] = []
    with _open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserInputError(f"{path}:{lineno}: malformed JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{path}:{lineno}: expected a JSON object per line, found {type(row).__name__}")
            if not lines:
                columns = {key: [] for key in row}
            elif row.keys() != columns.keys():
                missing = sorted(set(columns) - set(row)) or sorted(set(row) - set(columns))
                raise UserInputError(f"{path}:{lineno}: malformed row: keys differ from line {lines[0]} ({missing})")
            for key, value in row.items():
                columns[key].append(value)
            lines.append(lineno)
    columns["__line__"] = lines
    return columns


def read_table(path: str | Path) -> Table:
    """Read a CSV, TSV or JSONL file (chosen by extension) into columns."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv or .jsonl")
    if fmt == "tsv":
        return read_tsv(path)
    return _read_csv(path) if fmt == "csv" else _read_jsonl(path)
