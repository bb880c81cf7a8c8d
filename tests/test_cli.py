"""The command line: train / predict / tasks, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import GLUE_DIR, sentiment_rows, write_rows

from steadytune.cli import main


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "steadytune.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)  # fmt: skip


def test_tasks_lists_presets(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("rte", "mrpc", "sts-b", "cola", "sst-2", "qnli", "qqp", "mnli"):
        assert f"\n{name} " in out
    assert main(["tasks", "--json"]) == 0
    assert {t["name"] for t in json.loads(capsys.readouterr().out)} >= {"rte", "mnli"}


def test_train_predict_round_trip(tiny_model_dir, toy_files, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]),
                 "--validation-file", str(toy_files["validation"]), "--test-file", str(toy_files["test"]),
                 "--max-steps", "3", "--batch-size", "8", "--lr", "1e-3", "--out", str(out), "--save-model",
                 "--quiet", "--json"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["failed"] else 0)
    assert result["steps"] == 3 and result["config"]["optimizer"] == "adamw"
    assert (out / "model" / "model.safetensors").is_file()

    rows = sentiment_rows(10, seed=9)
    for suffix in (".csv", ".tsv", ".jsonl"):
        src = write_rows(tmp_path / f"in{suffix}", rows)
        dst = tmp_path / f"pred{suffix}"
        assert main(["predict", "--model", str(out / "model"), "--input", str(src), "--output", str(dst)]) == 0
        lines = dst.read_text().splitlines()
        assert len(lines) == 10 + (suffix != ".jsonl")
    first = json.loads((tmp_path / "pred.jsonl").read_text().splitlines()[0])
    assert (
        first["text"] == rows[0]["text"] and first["prediction"] in ("neg", "pos") and 0 <= first["probability"] <= 1
    )


def test_table_output(tiny_model_dir, toy_files, capsys):
    code = main(["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]),
                 "--max-steps", "2", "--batch-size", "8", "--quiet", "--optimizer", "bertadam"])  # fmt: skip
    assert code in (0, 1)  # 1: the tiny run failed, a recorded outcome
    out = capsys.readouterr().out
    assert "bertadam" in out and "majority baseline" in out and "steps" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--task", "rtee", "--glue-dir", "{glue}"], "unknown task 'rtee'"),
        (["train", "--task", "rte", "--glue-dir", "{tmp}/missing"], "GLUE folder not found"),
        (["train", "--train-file", "{tmp}/missing.csv"], "file not found"),
        (["train", "--train-file", "{train}", "--label-column", "y"], "no column 'y'"),
        (["train", "--train-file", "{train}", "--validation-file", "{badlabel}"], "unknown label 'maybe'"),
        (["train", "--train-file", "{empty}"], "the train split is empty"),
        (["train", "--train-file", "{malformed}"], "malformed row"),
        (["train", "--train-file", "{train}", "--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
        (["train", "--train-file", "{train}", "--metric", "bleu"], "unknown metric 'bleu'"),
        (["train", "--train-file", "{train}", "--lr", "abc"], "invalid float value: 'abc'"),
        (["train", "--train-file", "{train}", "--train-size", "5000"], "larger than"),
        (["train"], "give either a GLUE task"),
        (["train", "--train-file", "{train}", "--save-model"], "--save-model needs --out"),
        (["train", "--train-file", "{train}", "--model", "{tmp}/nomodel"], "cannot load model"),
        (["predict", "--model", "{tmp}", "--input", "{train}", "--output", "{tmp}/p.csv"], "not a saved model"),
        (["predict", "--model", "{tmp}", "--input", "{train}", "--output", "{train}"], "exists; pass --overwrite"),
        (["predict", "--model", "{tmp}", "--input", "{train}", "--output", "{tmp}/p.txt"], "unknown output type"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_model_dir, args, message, capsys, monkeypatch):
    train_file = write_rows(tmp_path / "train.csv", sentiment_rows(20))
    (tmp_path / "bad.csv").write_text("text,label\na,maybe\nb,pos\n")
    (tmp_path / "empty.csv").write_text("text,label\n")
    (tmp_path / "malformed.csv").write_text("text,label\na,pos\nb\n")
    subs = {"{glue}": str(GLUE_DIR), "{tmp}": str(tmp_path), "{train}": str(train_file),
            "{badlabel}": str(tmp_path / "bad.csv"), "{empty}": str(tmp_path / "empty.csv"),
            "{malformed}": str(tmp_path / "malformed.csv")}  # fmt: skip
    argv = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    if argv[0] == "train" and "--model" not in argv:
        argv += ["--model", str(tiny_model_dir)]
    before = set(tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert message in lines[0]
    assert set(tmp_path.iterdir()) == before  # nothing written


def test_entry_point_bad_input_no_traceback_no_output(tmp_path, tiny_model_dir):
    (tmp_path / "bad.csv").write_text("text,label\na,pos\nb\n")
    out = tmp_path / "run"
    proc = run_cli("train", "--model", tiny_model_dir, "--train-file", tmp_path / "bad.csv", "--out", out)
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip().count("\n") == 0 and "malformed row" in proc.stderr and "Traceback" not in proc.stderr


def test_help_everywhere(capsys):
    for cmd in ([], ["train"], ["predict"], ["tasks"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0 and "usage: steadytune" in capsys.readouterr().out


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path):
    """`steadytune recipes | head -1`: no BrokenPipeError traceback, whatever the timing (issue 30: 3 of 5 runs
    printed one); the command exits as SIGPIPE would end a Unix tool (141), and head gets its line."""
    import shutil
    import subprocess

    exe = shutil.which("steadytune")
    for command in ("recipes", "tasks"):
        for _ in range(5):
            done = subprocess.run(f"{exe} {command} | head -1; echo \"${{PIPESTATUS[0]}}\" >&2", shell=True,
                                  executable="/bin/bash", capture_output=True, text=True, timeout=60)  # fmt: skip
            assert len(done.stdout.splitlines()) == 1, done.stdout
            assert done.stderr.strip() in ("0", "141"), done.stderr  # 0: it wrote everything before head left


def test_one_candidate_keeps_one_without_a_keep_flag():
    from steadytune.fitting import FitSettings

    assert FitSettings(candidates=1).keep == 1 and FitSettings().keep == 2 and FitSettings(candidates=5).keep == 2


def test_train_defaults_record_the_resolved_lr_and_a_failed_run_exits_1(tiny_model_dir, toy_files, tmp_path, capsys):
    """train's default recipe (adam+reinit:2) runs at the encoder's learning rate (the tiny model is 32 wide:
    1e-4), its record says so; the exit status is 1 exactly when the run failed or diverged (--json unchanged)."""
    base = ["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]), "--quiet", "--json",
            "--max-steps", "2", "--batch-size", "8"]  # fmt: skip
    code = main(base)
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["recipe"].startswith("adam+reinit:2+") and result["config"]["lr"] == 1e-4
    assert result["config"]["reinit_layers"] == 2
    assert code == (1 if result["failed"] or result["diverged"] else 0)
    # A learning rate of 1e6 diverges: a recorded outcome, exit 1.
    code = main([*base[:-4], "--lr", "1e6", "--epochs", "5", "--max-grad-norm", "0"])
    result = json.loads(capsys.readouterr().out)
    assert result["diverged"] is True and code == 1
    code = main([*base, "--recipe", "paper"])
    assert json.loads(capsys.readouterr().out)["config"]["lr"] == 2e-5 and code in (0, 1)
