"""Records: strict JSON whatever the number types, and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steadytune.record import atomic_write_text, to_json


def test_to_json_is_strict_for_python_and_numpy_values():
    text = to_json({"a": float("nan"), "b": np.float32("nan"), "c": np.array([1.5, np.inf]), "d": np.int64(3),
                    "e": (np.float64(2.0), -float("inf")), "f": Path("x/y")})  # fmt: skip
    assert json.loads(text, parse_constant=pytest.fail) == {
        "a": None, "b": None, "c": [1.5, None], "d": 3, "e": [2.0, None], "f": "x/y",
    }  # fmt: skip


def test_atomic_write_replaces_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]
