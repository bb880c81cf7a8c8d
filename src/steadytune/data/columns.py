"""Turning a table's columns into a `Split`: the text columns checked, the labels checked and encoded.

Errors name the file, line and column (`_at`): a missing column, a cell that is not text, a label that is not
finite, or labels of mixed kinds (numbers, strings, booleans) that would silently become separate classes.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import UserInputError
from .readers import Table
from .splits import Split

__all__ = ["texts_from_table"]


def _at(where: str, lines: list | None, i: int) -> str:
    """`file:line` when rows came from a file, else `source row i`."""
    return f"{where}:{lines[i]}" if lines else f"{where} row {i}"


def _columns_shown(table: Table) -> str:
    """The table's column names for a message: the first 20, each cut at 40 characters (a header can be anything,
    e.g. a 10 MB line of a file that is not a table)."""
    names = [c for c in table if c != "__line__"]
    shown = [repr(c) if len(c) <= 40 else repr(c[:40]) + "..." for c in names[:20]]
    return ", ".join(shown) + (f" and {len(names) - 20} more" if len(names) > 20 else "") or "none"


def _column(table: Table, name: str, where: str) -> list:
    if name not in table or name == "__line__":
        raise UserInputError(f"{where}: no column {name!r} (columns: {_columns_shown(table)})")
    return table[name]


def texts_from_table(table: Table, columns: tuple[str, ...], where: str) -> tuple[list[str], ...]:
    """The named text columns, each checked to exist and to hold only strings (errors name file and line)."""
    out = []
    lines = table.get("__line__")
    for name in columns:
        col = _column(table, name, where)
        for i, value in enumerate(col):
            if not isinstance(value, str):
                raise UserInputError(
                    f"{_at(where, lines, i)}: column {name!r} must hold text, found {type(value).__name__} {value!r}"
                )
        out.append(list(col))
    return tuple(out)


def _split(table: Table, columns: tuple[str, ...], labels: np.ndarray, name: str, where: str) -> Split:
    if len(labels) == 0:
        raise UserInputError(f"{where}: the {name} split is empty")
    rows = table.get("__line__")
    return Split(texts_from_table(table, columns, where), labels, name, None if rows is None else np.asarray(rows))


def _encode_labels(
    values: list, raw_labels: tuple[str, ...], label_names: tuple[str, ...], where: str, lines: list | None
) -> np.ndarray:
    index = {raw: i for i, raw in enumerate(raw_labels)}
    ids = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        key = _label_key(value)
        if key not in index:
            what = "missing label" if key == "" else f"unknown label {value!r}"
            raise UserInputError(f"{_at(where, lines, i)}: {what} (known labels: {', '.join(map(repr, label_names))})")
        ids[i] = index[key]
    return ids


def _float_labels(values: list, where: str, lines: list | None) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float32)
    for i, value in enumerate(values):
        try:
            if isinstance(value, bool):
                raise TypeError
            out[i] = float(value)
        except (TypeError, ValueError):
            raise UserInputError(f"{_at(where, lines, i)}: regression label {value!r} is not a number") from None
        if not np.isfinite(out[i]):
            raise UserInputError(f"{_at(where, lines, i)}: regression label {value!r} is not finite")
    return out


def _label_family(value: Any) -> str | None:
    """What kind of value a label is: "text", "number", "true/false", another type's name; None when missing."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true/false"
    if isinstance(value, numbers.Real):  # also numpy's integers and floats
        return "number"
    return "text" if isinstance(value, str) else type(value).__name__


def _check_label_values(values: list, where: str, lines: list | None) -> None:
    """One file's labels are all text, all numbers or all true/false (a JSON mix of 1, "pos", 1.5 and true would
    be four classes), and numbers are finite (JSON NaN would be a class named "nan")."""
    first: tuple[int, str] | None = None
    for i, value in enumerate(values):
        family = _label_family(value)
        if family is None:
            continue  # a missing label: reported where labels are encoded
        if family == "number" and not math.isfinite(float(value)):
            raise UserInputError(f"{_at(where, lines, i)}: label {value!r} is not a finite number")
        if family not in ("text", "number", "true/false"):
            raise UserInputError(f"{_at(where, lines, i)}: label {value!r} is a {family}; labels are text or numbers")
        if first is None:
            first = (i, family)
        elif family != first[1]:
            j, other = first
            raise UserInputError(
                f"{_at(where, lines, i)}: label {value!r} is {family} but the label at {_at(where, lines, j)} "
                f"({values[j]!r}) is {other}; a file's labels must be all text, all numbers or all true/false"
            )


def _label_key(value: Any) -> str:
    """Labels are matched as stripped strings: JSON 1, CSV "1" and TSV "1 " are the same class; null is ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
