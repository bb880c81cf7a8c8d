"""Reading tables into columns: CSV, TSV and JSONL files, with errors that name the file and line; Parquet files
(pyarrow); and `datasets.Dataset` objects, whose `ClassLabel` columns keep their class names. The one home of the
table types (`Table`, `Columns`): `hf_datasets` opens datasets by name and hands their splits here.

TSV is read WITHOUT quote handling, as the original BERT and Hugging Face GLUE processors do: some MRPC, STS-B and
RTE sentences hold bare `"` characters, and a quote-aware reader silently merges rows (MRPC 3668 → 3570 train rows).
CSV uses standard quoting (RFC 4180), since that is how CSV files are written.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserInputError

__all__ = [
    "PARQUET_SUFFIXES",
    "Columns",
    "Table",
    "dataset_columns",
    "first_line",
    "read_parquet",
    "read_table",
    "read_tsv",
]

Table = dict[str, list]
"""Column name → values, all columns of equal length; `__line__` holds each row's line number in the file."""

PARQUET_SUFFIXES = (".parquet", ".pq")

FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def _read_text(path: Path) -> str:
    """The file's text, which must be UTF-8 (a byte-order mark is dropped); errors name the file, line and byte."""
    if not path.is_file():
        raise UserInputError(f"{path} is a folder, not a file" if path.is_dir() else f"file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserInputError(f"cannot read {path}: {e.strerror or e}") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise UserInputError(f"{path} is UTF-16/32 text; steadytune reads UTF-8: convert it, e.g. iconv -f UTF-16 "
                             "-t UTF-8")  # fmt: skip
    # MRPC's files start with a UTF-8 byte-order mark (`\ufeffQuality`), as the GLUE originals do: dropped.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserInputError(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {column}); save the "
                             "file as UTF-8, e.g. iconv -f LATIN1 -t UTF-8") from None  # fmt: skip
    nul = text.find("\0")
    if nul >= 0:  # UTF-8 text holds no NUL characters; UTF-16 without a byte-order mark, or a binary file, does
        raise UserInputError(f"{path}:{text.count(chr(10), 0, nul) + 1}: a NUL character; is this UTF-16 or a "
                             "binary file? steadytune reads UTF-8 text")  # fmt: skip
    return text


def _check_header(path: Path, header: list[str] | tuple[str, ...]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise UserInputError(f"{path}:1: column {name!r} appears twice in the header; columns need distinct names")
        seen.add(name)


def read_tsv(path: str | Path, *, header: tuple[str, ...] | None = None) -> Table:
    """Read a tab-separated file with no quote handling. `header` names the columns of a header-less file."""
    path = Path(path)
    lines = _read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline; CoLA's dev.tsv has none, which is fine too
    first = 1
    if header is None:
        if not lines:
            raise UserInputError(f"{path}: the file is empty")
        header = tuple(lines[0].rstrip("\r").split("\t"))
        _check_header(path, header)
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
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UserInputError(f"{path}: the file is empty") from None
    except csv.Error as e:
        raise UserInputError(f"{path}:{reader.line_num}: malformed CSV header: {e}") from None
    _check_header(path, header)
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


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are distinct (json.loads would keep the last of a repeated key silently)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _read_jsonl(path: Path) -> Table:
    columns: Table = {}
    lines: list[int] = []
    for lineno, line in enumerate(io.StringIO(_read_text(path), newline=""), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise UserInputError(f"{path}:{lineno}: malformed JSON: {e.msg}") from None
        except (ValueError, RecursionError) as e:  # a repeated key, a number of 4300+ digits, deep nesting
            raise UserInputError(f"{path}:{lineno}: malformed JSON: {e or 'nested too deeply'}") from None
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


@dataclass
class Columns:
    """One split as columns, and the class names of its `ClassLabel` columns (column → names in id order)."""

    table: Table
    class_names: dict[str, tuple[str, ...]] = field(default_factory=dict)


def first_line(e: BaseException) -> str:
    """A library error's first line, at most 300 characters: what a one-line message can quote."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def dataset_columns(ds: Any, where: str) -> Columns:
    """A `datasets.Dataset`'s rows as plain Python columns (whatever format it is set to), `ClassLabel` ids as
    their names."""
    import datasets

    if isinstance(ds, datasets.IterableDataset):
        raise UserInputError(f"{where}: an IterableDataset (streaming) has no length to split; load it without "
                             "streaming=True")  # fmt: skip
    table: Table = ds.with_format(None).to_dict()
    names: dict[str, tuple[str, ...]] = {}
    for column, feature in ds.features.items():
        if isinstance(feature, datasets.ClassLabel):
            names[column] = tuple(feature.names)
            table[column] = _class_names(table[column], names[column], column, where)
    return Columns(table, names)


def _class_names(ids: list, names: tuple[str, ...], column: str, where: str) -> list:
    out: list = []
    for i, value in enumerate(ids):
        if value is None or value == -1:  # -1: datasets' "no label" (the hub's hidden test labels)
            out.append(None)
        elif 0 <= value < len(names):
            out.append(names[value])
        else:
            raise UserInputError(f"{where} row {i}: column {column!r} holds class id {value}, outside its ClassLabel "
                                 f"of {len(names)} names")  # fmt: skip
    return out


def read_parquet(path: str | Path) -> Columns:
    """A Parquet file's columns (read with pyarrow; `datasets` features in its metadata are honoured)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path} is a folder, not a file" if path.is_dir() else f"file not found: {path}")
    try:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise UserInputError(f"{path}: column {name!r} appears twice; columns need distinct names")
            seen.add(name)
        table = file.read()
    except (pa.ArrowException, OSError) as e:  # not Parquet (no magic bytes), truncated, unreadable
        raise UserInputError(f"{path} is not a readable Parquet file ({first_line(e)})") from None
    if b"huggingface" in (table.schema.metadata or {}):
        import datasets

        try:
            return dataset_columns(datasets.Dataset(table), str(path))
        except UserInputError:
            raise
        except Exception as e:  # features in the metadata that do not fit the columns
            raise UserInputError(f"{path}: its `datasets` features do not fit its columns ({first_line(e)})") from None
    return Columns(table.to_pydict())


def read_table(path: str | Path) -> Table:
    """Read a CSV, TSV, JSONL or Parquet file (chosen by extension) into columns."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:  # binary, so not in FORMATS (the text formats results are written in)
        return read_parquet(path).table
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    if fmt == "tsv":
        return read_tsv(path)
    return _read_csv(path) if fmt == "csv" else _read_jsonl(path)
