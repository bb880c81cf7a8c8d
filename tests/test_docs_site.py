"""The documentation site builds strictly: a broken link, a missing page or a docstring mkdocstrings cannot render
fails here, so CI (which runs this suite) fails on it. The CLI reference page is generated from the parser."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_site_builds_strictly_with_the_cli_reference_from_the_parser(tmp_path):
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        pytest.fail("mkdocs is not installed: the dev extra installs it (pip install -e '.[dev]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("fit", "train", "study", "report", "predict", "audit", "recipes", "export", "tasks"):
        assert f"steadytune {command}" in cli
    assert "--keep-checkpoints" in cli and "--recipe" in cli
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "steadytune.trainer.train" in api and "default_lr" in api
    home = (site / "index.html").read_text()
    assert "A model for your own data" in home and 'href="guide/fit/"' in home
