"""Records: strict JSON whatever the number types, and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from steadytune.files import atomic_write_text, to_json


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


def test_written_files_and_folders_get_the_usual_permissions(tmp_path, tiny_model_dir, toy_files):
    """Temporary files and folders are private (0600/0700); the final ones must not stay that way."""
    import os
    import stat

    from steadytune import train

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        run = tmp_path / "run"
        train(model=str(tiny_model_dir), train_file=str(toy_files["train"]),
              validation_file=str(toy_files["validation"]), test_file=str(toy_files["test"]), max_steps=1,
              out=run, save_model=True)  # fmt: skip
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE(run.stat().st_mode) == 0o755
    # every file of the saved model too: transformers writes model.safetensors 0600 (issue 31)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (run / "model").iterdir() if f.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes


def test_versions_name_the_running_code():
    import re
    from pathlib import Path

    import steadytune
    from steadytune.record import library_versions

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "(.+)"', pyproject, re.M).group(1) == steadytune.__version__  # said twice, once
    versions = library_versions()
    assert versions["steadytune"] == steadytune.__version__ and versions["torch"] == torch.__version__
    assert versions["cpu"] and versions["cpu"] != "unknown"  # bf16 numbers depend on the CPU's instruction set
