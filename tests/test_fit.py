"""`steadytune fit` on a tiny random BERT: a learnable task is fitted (exit 0, a model with its card), random labels
are an honest no (exit 1, one line, no model), and a killed fit resumes without redoing what it stored."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from steadytune.cli import main

# 64 examples in batches of 8, 8 epochs: 64 steps; checks at steps 16 and 32
FLAGS = ["--batch-size", "8", "--epochs", "8", "--lrs", "5e-3,1e-3", "--candidates", "4", "--keep", "1",
         "--workers", "1", "--quiet"]  # fmt: skip


def _argv(tiny_model_dir, files, out) -> list[str]:
    return ["fit", "--model", str(tiny_model_dir), "--train-file", str(files["train"]), "--validation-file",
            str(files["validation"]), "--test-file", str(files["test"]), "--out", str(out), *FLAGS]  # fmt: skip


def test_fit_finds_a_model_that_learned_and_says_so(tiny_model_dir, toy_files, tmp_path, capsys):
    from huggingface_hub import ModelCard

    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["success"] and result["chosen"]
    chosen = next(c for c in result["candidates"] if c["name"] == result["chosen"])
    assert chosen["status"] == "finished" and chosen["best"]["validation"]["accuracy"] >= 0.75
    statuses = sorted(c["status"] for c in result["candidates"])
    assert statuses == ["dropped", "dropped", "dropped", "finished"]
    # successive halving: 4 candidates to step 16, 2 to step 32, 1 to the end: 4·16 + 2·16 + 32 = 128 of 256 steps
    assert result["steps"] == 128 and result["full_steps"] == 256
    assert {c["lr"] for c in result["candidates"]} == {5e-3, 1e-3}
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.base_model is None  # a local folder is no hub id (the card names it, without its path)
    assert f"`{tiny_model_dir.name}`" in card.text and str(tiny_model_dir.parent) not in card.content
    scores = {(e.dataset_split, e.metric_type): e.metric_value for e in card.data.eval_results}
    assert scores[("test", "accuracy")] == result["test"]["accuracy"]
    assert scores[("validation", "accuracy")] == chosen["best"]["validation"]["accuracy"]
    assert "## Candidates" in card.text and result["chosen"] in card.text
    assert (out / "model" / "model.safetensors").is_file() and (out / "fit.json").is_file()
    again = json.loads((out / "fit.json").read_text())
    assert again["chosen"] == result["chosen"] and again["verdict"] == result["verdict"]


def test_fit_on_random_labels_is_an_honest_no(tiny_model_dir, toy_files, tmp_path, capsys):
    rng = random.Random(0)
    for split in ("train", "validation", "test"):
        lines = toy_files[split].read_text().splitlines()
        rows = [line.rsplit(",", 1)[0] + "," + rng.choice(["pos", "neg"]) for line in lines[1:]]
        toy_files[split].write_text("\n".join([lines[0], *rows]) + "\n")
    out = tmp_path / "fit"
    assert main(_argv(tiny_model_dir, toy_files, out)) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no candidate beat" in lines[0] and "--lrs" in lines[0]
    assert "verdict:" in captured.out and not (out / "model").exists()
    assert json.loads((out / "fit.json").read_text())["success"] is False


_KILL_AFTER = """
import os, sys
import steadytune.study.store as store
real, adds = store.Store.add, []
def add_then_die(self, *args, **kwargs):
    real(self, *args, **kwargs)
    adds.append(1)
    if len(adds) == int(os.environ["KILL_AFTER"]):
        os._exit(9)
store.Store.add = add_then_die
from steadytune.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_fit_resumes_without_redoing_stored_stages(tiny_model_dir, toy_files, tmp_path, capsys,
                                                            monkeypatch):  # fmt: skip
    import steadytune.study.grid as grid

    reference = tmp_path / "reference"
    assert main([*_argv(tiny_model_dir, toy_files, reference), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)

    out = tmp_path / "fit"
    env = {**os.environ, "KILL_AFTER": "5"}  # the 4 first-check stages and one of the second
    done = subprocess.run([sys.executable, "-c", _KILL_AFTER, *_argv(tiny_model_dir, toy_files, out)], env=env,
                          capture_output=True, timeout=300)  # fmt: skip
    assert done.returncode == 9
    ran = []
    real = grid.train_stage
    monkeypatch.setattr(grid, "train_stage", lambda config, **kw: ran.append(kw["until"]) or real(config, **kw))
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert ran == [32, None]  # only the second check's last stage and the final stage ran again
    for key in ("chosen", "success", "test", "steps", "verdict"):
        assert result[key] == expected[key], key
    assert [c["checks"] for c in result["candidates"]] == [c["checks"] for c in expected["candidates"]]
