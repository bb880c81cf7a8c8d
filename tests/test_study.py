"""Studies: the grid, the SQLite store, resuming (also after SIGKILL), refusing a mismatched folder, export."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from steadytune.cli import main
from steadytune.errors import UserInputError
from steadytune.study import LocalExecutor, Study, load_records, parse_recipes, parse_seeds, run_trial

RECIPES = "bertadam+lr=1e-3,adam+lr=1e-3+reinit:1"


def _data(toy_files) -> dict:
    return {"train_file": str(toy_files["train"]), "validation_file": str(toy_files["validation"]),
            "test_file": str(toy_files["test"])}  # fmt: skip


def _study(out, tiny_model_dir, toy_files, **kw) -> Study:
    kw = {"recipes": RECIPES, "seeds": 2, "num_evals": 2, **kw}
    return Study(out, model=str(tiny_model_dir), **_data(toy_files), **kw)


def _scores(records: list[dict]) -> list[tuple]:
    return [(r["task"], r["recipe"], r["seed"], r["last"]["test"], r["best"]["test"], [p["loss"] for p in r["curve"]])
            for r in records]  # fmt: skip


def test_parse_recipes_and_seeds():
    assert parse_recipes("bertadam, adam,adam+reinit:2") == ["bertadam", "adam", "adam+reinit:2"]
    assert parse_recipes("adam+betas=0.9,0.98,bertadam") == ["adam+betas=0.9,0.98", "bertadam"]
    assert parse_seeds(3) == parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("4,1,9") == [4, 1, 9]
    for bad, message in [("0", "at least 1"), ("a", "a count or a list"), ("1,1", "distinct")]:
        with pytest.raises(UserInputError, match=message):
            parse_seeds(bad)
    with pytest.raises(UserInputError, match="recipes repeat"):
        parse_recipes("adam,adam")
    with pytest.raises(UserInputError, match="contradict"):
        parse_recipes("adam,bertadam+adam")


def test_run_stores_every_trial_once_and_resumes(tiny_model_dir, toy_files, tmp_path):
    study = _study(tmp_path / "s", tiny_model_dir, toy_files)
    assert study.run(progress=False) == {"total": 4, "skipped": 0, "ran": 4, "errors": 0}
    assert study.run(progress=False) == {"total": 4, "skipped": 4, "ran": 0, "errors": 0}
    grown = _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=3)  # more seeds: only the new ones run
    assert grown.run(progress=False) == {"total": 6, "skipped": 4, "ran": 2, "errors": 0}
    records = load_records(tmp_path / "s")
    assert [(r["recipe"], r["seed"]) for r in records] == [
        (r, s) for r in parse_recipes(RECIPES) for s in range(3)
    ]  # the user's recipe order, then seeds
    con = sqlite3.connect(tmp_path / "s" / "study.sqlite")
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT task || recipe || seed) FROM trials").fetchone() == (6, 6)
    # a stored trial is exactly what running it alone gives
    alone = run_trial(grown.trials()[0])
    assert alone["last"]["test"] == records[0]["last"]["test"] and alone["curve"] == records[0]["curve"]


def test_a_folder_with_other_settings_is_refused_unless_new(tiny_model_dir, toy_files, tmp_path):
    _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1).run(progress=False)
    with pytest.raises(UserInputError, match="other settings max_length"):
        _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1, max_length=16).run(progress=False)
    other = _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1, max_length=16, new=True)
    assert other.run(progress=False)["ran"] == 2
    assert [p.name for p in (tmp_path / "s").glob("study.*.sqlite.bak")]  # the old store is kept


class _FlakyExecutor:
    """Fails one trial: an executor reports exceptions instead of raising them."""

    def run(self, trials, done):
        for i, trial in enumerate(trials):
            done(trial, RuntimeError("worker lost") if i == 1 else run_trial(trial))


def test_errored_trials_are_recorded_and_retried(tiny_model_dir, toy_files, tmp_path):
    study = _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1)
    assert study.run(executor=_FlakyExecutor(), progress=False)["errors"] == 1
    con = sqlite3.connect(tmp_path / "s" / "study.sqlite")
    assert con.execute("SELECT status, error FROM trials WHERE status = 'error'").fetchall() == [
        ("error", "RuntimeError: worker lost")
    ]
    assert study.run(progress=False) == {"total": 2, "skipped": 1, "ran": 1, "errors": 0}
    assert con.execute("SELECT COUNT(*) FROM trials WHERE status = 'done'").fetchone() == (2,)


def test_process_pool_gives_the_same_records(tiny_model_dir, toy_files, tmp_path):
    a = _study(tmp_path / "a", tiny_model_dir, toy_files)
    b = _study(tmp_path / "b", tiny_model_dir, toy_files)
    a.run(executor=LocalExecutor(1, threads=1), progress=False)
    b.run(executor=LocalExecutor(2, threads=1), progress=False)
    assert _scores(load_records(tmp_path / "a")) == _scores(load_records(tmp_path / "b"))


def _cli_args(tiny_model_dir, toy_files, out, seeds) -> list[str]:
    data = _data(toy_files)
    return ["study", "--recipes", RECIPES, "--seeds", str(seeds), "--out", str(out), "--model", str(tiny_model_dir),
            "--train-file", data["train_file"], "--validation-file", data["validation_file"],
            "--test-file", data["test_file"], "--num-evals", "2", "--quiet"]  # fmt: skip


def test_sigkill_mid_study_loses_and_repeats_nothing(tiny_model_dir, toy_files, tmp_path):
    seeds = 5  # 10 trials
    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "steadytune", *_cli_args(tiny_model_dir, toy_files, killed, seeds)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    done = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "study.sqlite").exists():
            try:
                con = sqlite3.connect(f"file:{killed / 'study.sqlite'}?mode=ro", uri=True)
                done = con.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:  # the table is being created
                pass
        if done >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 3 <= done < 2 * seeds, done

    # resume: the rest runs, nothing twice; the result equals an uninterrupted study's
    assert main(_cli_args(tiny_model_dir, toy_files, killed, seeds)) == 0
    assert main(_cli_args(tiny_model_dir, toy_files, tmp_path / "whole", seeds)) == 0
    resumed, whole = load_records(killed), load_records(tmp_path / "whole")
    assert len(resumed) == 2 * seeds and len({(r["recipe"], r["seed"]) for r in resumed}) == 2 * seeds
    assert _scores(resumed) == _scores(whole)
    for name in ("report.md", "report.html"):  # the same aggregate, to the byte
        assert (killed / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_export_csv_and_parquet(tiny_model_dir, toy_files, tmp_path, capsys):
    _study(tmp_path / "s", tiny_model_dir, toy_files).run(progress=False)
    assert main(["export", str(tmp_path / "s")]) == 0
    with open(tmp_path / "s" / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"task", "recipe", "seed", "test_best", "test_last", "failed", "config.lr"} <= set(
        rows[0]
    )
    assert [r["recipe"] for r in rows] == ["bertadam+lr=1e-3"] * 2 + ["adam+lr=1e-3+reinit:1"] * 2
    import pyarrow.parquet as pq

    assert main(["export", str(tmp_path / "s"), "--format", "parquet", "--output", str(tmp_path / "t.parquet")]) == 0
    table = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert [r["test_last"] for r in table] == [float(r["test_last"]) for r in rows]
    assert json.loads(json.dumps(table[0]["config.reinit_layers"])) in (0, 1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "nope", "--glue-dir", "x"], "unknown task 'nope'"),
        (["--tasks", "rte", "--train-file", "t.csv"], "GLUE tasks or train_file"),
        (["--train-file", "missing.csv"], "missing.csv"),
        (["--tasks", "rte,rte"], "tasks repeat"),
        (["--recipes", "adam,wat"], "unknown preset 'wat'"),
        (["--seeds", "x"], "a count or a list"),
        (["--workers", "0", "--train-file", "{train}"], "workers must be at least 1"),
    ],
)
def test_bad_study_arguments_are_one_line_exit_2(argv, message, toy_files, tmp_path, capsys):
    argv = [a.format(train=toy_files["train"]) for a in argv]
    assert main(["study", "--out", str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "s").exists()


def test_report_and_export_of_a_missing_study_are_one_line(tmp_path, capsys):
    for cmd in (["report", str(tmp_path)], ["export", str(tmp_path)]):
        assert main(cmd) == 2
        assert "no study in" in capsys.readouterr().err
