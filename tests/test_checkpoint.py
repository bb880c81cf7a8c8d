"""A run killed and resumed from its checkpoint, in new processes, ends exactly where an uninterrupted run ends.

float64 on a tiny BERT (the CPU fast path is off: it computes attention in float32), Mixout on (a random draw at
every step), compact embedding on, pauses mid-epoch and between evaluations. Each run is a real process
(`python -m steadytune train ... --checkpoint-every N --resume`), killed by `os._exit` right after its k-th
checkpoint (as SIGKILL would, nothing is cleaned up), then started again with the same command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# The command line of every process: the data, a recipe that draws randomness each step, float64.
RECIPE = "adam+lr=1e-3+reinit:1+mixout:0.2+fp32+epochs=2+batch_size=8"

# Run by each process: float64 throughout, and with KILL_AFTER=k, exit like a killed process after the k-th save.
_LAUNCH = """
import os, sys, torch
torch.set_default_dtype(torch.float64)
import steadytune.loop as loop
kill = int(os.environ.get("KILL_AFTER", "0"))
if kill:
    real, saves = loop.save_checkpoint, []
    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        saves.append(1)
        if len(saves) == kill:
            os._exit(9)
    loop.save_checkpoint = save_then_die
import steadytune.trainer
steadytune.trainer.save_checkpoint = loop.save_checkpoint
from steadytune.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def float64_model(tiny_model_dir, tmp_path_factory) -> Path:
    from transformers import BertModel

    path = tmp_path_factory.mktemp("tiny-bert-f64")
    BertModel.from_pretrained(tiny_model_dir).double().save_pretrained(path, safe_serialization=True)
    for f in tiny_model_dir.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special")):
            (path / f.name).write_bytes(f.read_bytes())
    return path


def _train(model: Path, files: dict, out: Path, *extra: str, kill_after: int = 0) -> int:
    data = ["--train-file", str(files["train"]), "--validation-file", str(files["validation"]),
            "--test-file", str(files["test"])]  # fmt: skip
    argv = ["train", "--model", str(model), "--recipe", RECIPE, "--num-evals", "4", "--seed", "5", "--no-fast-path",
            *data, "--out", str(out), "--save-model", "--quiet", "--json", *extra]  # fmt: skip
    env = {**os.environ, "KILL_AFTER": str(kill_after)}
    return subprocess.run([sys.executable, "-c", _LAUNCH, *argv], env=env, capture_output=True, timeout=300).returncode


def _outcome(out: Path) -> tuple:
    metrics = json.loads((out / "metrics.json").read_text())
    curve = (out / "curve.jsonl").read_text()
    weights = load_file(out / "model" / "model.safetensors")
    return metrics["best"], metrics["last"], metrics["evals"], curve, weights


def test_killed_runs_resume_to_the_uninterrupted_trajectory(float64_model, toy_files, tmp_path):
    reference = tmp_path / "reference"
    code = _train(float64_model, toy_files, reference)
    assert code in (0, 1)  # 1: the tiny run failed (no better than a constant), a recorded outcome
    ref = _outcome(reference)
    assert next(iter(ref[4].values())).dtype == torch.float64
    assert len(ref[3].splitlines()) == 16  # 64 examples, batches of 8, 2 epochs

    # checkpoints every 3 steps: killed after the 1st (step 3), then the 3rd (step 9, mid-epoch 2), then resumed
    out = tmp_path / "run"
    saved = out.parent / f"{out.name}.checkpoint.pt"
    assert _train(float64_model, toy_files, out, "--checkpoint-every", "3", "--resume", kill_after=1) == 9
    assert saved.is_file() and not out.exists()
    assert torch.load(saved, weights_only=True)["loop"]["step"] == 3
    assert _train(float64_model, toy_files, out, "--checkpoint-every", "3", "--resume", kill_after=2) == 9
    assert torch.load(saved, weights_only=True)["loop"]["step"] == 9
    assert _train(float64_model, toy_files, out, "--checkpoint-every", "3", "--resume") == code
    assert not saved.exists()  # removed once the run is complete
    got = _outcome(out)
    assert got[:4] == ref[:4]  # every step's loss and gradient norm, every evaluation, best and last: equal
    assert got[4].keys() == ref[4].keys() and all(torch.equal(got[4][k], ref[4][k]) for k in ref[4])


def test_a_checkpoint_of_another_run_is_refused(float64_model, toy_files, tmp_path):
    out = tmp_path / "run"
    assert _train(float64_model, toy_files, out, "--checkpoint-every", "5", "--resume", kill_after=1) == 9
    argv = ["train", "--model", str(float64_model), "--recipe", RECIPE, "--lr", "2e-3", "--seed", "5",
            "--train-file", str(toy_files["train"]), "--validation-file", str(toy_files["validation"]),
            "--test-file", str(toy_files["test"]), "--out", str(out), "--resume", "--quiet"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "steadytune", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "written by another run" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    (out.parent / f"{out.name}.checkpoint.pt").write_bytes(b"not a checkpoint")
    done = subprocess.run([sys.executable, "-m", "steadytune", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "not a readable steadytune checkpoint" in done.stderr
