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
import torch
from conftest import hears_ctrl_c

from steadytune.cli import main
from steadytune.errors import UserInputError
from steadytune.study import (
    LocalExecutor,
    Study,
    default_parallelism,
    load_records,
    parse_recipes,
    parse_seeds,
    run_trial,
)

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
    one = {"workers": 1, "threads": 1, "progress": False}  # one thread, as `run_trial` alone gets below (conftest)
    assert study.run(**one) == {"total": 4, "skipped": 0, "ran": 4, "errors": 0}
    assert study.run(**one) == {"total": 4, "skipped": 4, "ran": 0, "errors": 0}
    grown = _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=3)  # more seeds: only the new ones run
    assert grown.run(**one) == {"total": 6, "skipped": 4, "ran": 2, "errors": 0}
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
    _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1).run(workers=1, progress=False)
    with pytest.raises(UserInputError, match="other settings max_length"):
        _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1, max_length=16).run(workers=1, progress=False)
    other = _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1, max_length=16, new=True)
    assert other.run(workers=1, progress=False)["ran"] == 2
    assert [p.name for p in (tmp_path / "s").glob("study.*.sqlite.bak")]  # the old store is kept


def test_a_recipe_whose_meaning_changed_is_refused(tiny_model_dir, toy_files, tmp_path):
    """Trials stored before a recipe default changed (here: before bf16 and length grouping existed) are not
    pooled with new ones under the same name."""
    _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1).run(workers=1, progress=False)
    con = sqlite3.connect(tmp_path / "s" / "study.sqlite")
    with con:
        for key, record in con.execute("SELECT rowid, record FROM trials").fetchall():
            old = json.loads(record)
            del old["config"]["group_by_length"], old["config"]["precision"]  # as written by steadytune 0.1.0
            con.execute("UPDATE trials SET record = ? WHERE rowid = ?", (json.dumps(old), key))
    con.close()
    with pytest.raises(UserInputError, match=r"recipe 'bertadam\+lr=1e-3' now means other settings .*"
                                             r"group_by_length False → True"):  # fmt: skip
        _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=2).run(workers=1, progress=False)
    # spelled out, the old meaning is a new recipe name; the stored ones are kept as they are
    legacy = "bertadam+lr=1e-3+group_by_length=false+fp32"
    legacy_study = _study(tmp_path / "s", tiny_model_dir, toy_files, recipes=legacy, seeds=1)
    assert legacy_study.run(workers=1, progress=False)["ran"] == 1


def test_a_recipe_without_lr_runs_at_the_encoders_and_an_older_default_is_refused(tiny_model_dir, toy_files,
                                                                                tmp_path, monkeypatch):  # fmt: skip
    """A recipe without lr runs at `default_lr` of the model's width (the tiny model is 32 wide: 1e-4), and its
    trials say so; trials stored when that default was another rate are not pooled with new ones."""
    import steadytune.recipes

    monkeypatch.setattr(steadytune.recipes, "NARROW_LR", 2e-5)  # as if stored before 0.11 (the paper's 2e-5)
    _study(tmp_path / "s", tiny_model_dir, toy_files, recipes="adam+max_steps=1", seeds=1).run(
        workers=1, progress=False
    )
    monkeypatch.undo()
    with pytest.raises(
        UserInputError, match=r"recipe 'adam\+max_steps=1' now means other settings .*lr 2e-05 → 0.0001"
    ):
        _study(tmp_path / "s", tiny_model_dir, toy_files, recipes="adam+max_steps=1", seeds=2).run(
            workers=1, progress=False
        )
    fresh = _study(tmp_path / "t", tiny_model_dir, toy_files, recipes="adam+max_steps=1", seeds=1)
    fresh.run(workers=1, progress=False)
    assert [r["config"]["lr"] for r in fresh.records()] == [1e-4]


def test_tasks_may_be_added_or_left_out(tiny_model_dir, tmp_path):
    from conftest import require_glue

    glue = require_glue("RTE") and require_glue("MRPC")
    kw = {"recipes": "adam+lr=1e-3+max_steps=1", "seeds": 1, "num_evals": 1, "train_size": 16,
          "model": str(tiny_model_dir), "glue_dir": str(glue)}  # fmt: skip
    assert Study(tmp_path / "s", tasks="rte", **kw).run(workers=1, progress=False)["ran"] == 1
    assert Study(tmp_path / "s", tasks="rte,mrpc", **kw).run(workers=1, progress=False) == {
        "total": 2, "skipped": 1, "ran": 1, "errors": 0}  # fmt: skip
    assert Study(tmp_path / "s", tasks="mrpc", **kw).run(workers=1, progress=False)["skipped"] == 1
    # the same settings over other rows: a copy of RTE with one dev sentence changed
    (tmp_path / "glue" / "RTE").mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        lines = (glue / "RTE" / name).read_text(encoding="utf-8").split("\n")
        if name == "dev.tsv":
            lines[1] = lines[1].replace("\t", "\tChanged: ", 1)  # row 0's first sentence
        (tmp_path / "glue" / "RTE" / name).write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(UserInputError, match="other data for rte"):
        Study(tmp_path / "s", tasks="rte", **{**kw, "glue_dir": str(tmp_path / "glue")}).run(workers=1, progress=False)


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
    assert study.run(workers=1, progress=False) == {"total": 2, "skipped": 1, "ran": 1, "errors": 0}
    assert con.execute("SELECT COUNT(*) FROM trials WHERE status = 'done'").fetchone() == (2,)


def test_process_pool_gives_the_same_records(tiny_model_dir, toy_files, tmp_path):
    a = _study(tmp_path / "a", tiny_model_dir, toy_files)
    b = _study(tmp_path / "b", tiny_model_dir, toy_files)
    a.run(executor=LocalExecutor(1, threads=1), progress=False)
    b.run(executor=LocalExecutor(2, threads=1), progress=False)
    assert _scores(load_records(tmp_path / "a")) == _scores(load_records(tmp_path / "b"))


def test_default_parallelism_fills_the_cores_within_memory(tiny_model_dir, toy_files, monkeypatch):
    import steadytune.study.parallelism as S

    monkeypatch.setattr(S, "_physical_memory", lambda: 64 * 2**30)
    assert default_parallelism(str(tiny_model_dir), device="cpu", cores=8) == (8, 1)
    monkeypatch.setattr(S, "_physical_memory", lambda: 8 * 2**30)  # 0.8 · 8 GB holds three ~2 GB workers
    assert default_parallelism(str(tiny_model_dir), device="cpu", cores=8) == (3, 2)
    # the measured crossover on 2 cores (benchmarks/parallelism.py): MiniLM as 2 x 1, BERT-base as 1 x 2
    monkeypatch.setattr(S, "_physical_memory", lambda: 24 * 2**30)
    monkeypatch.setattr(S, "_parameter_count", lambda model: 22_700_000)
    assert default_parallelism("all-MiniLM-L6-v2", device="cpu", cores=2) == (2, 1)
    monkeypatch.setattr(S, "_parameter_count", lambda model: 109_000_000)
    assert default_parallelism("bert-base", device="cpu", cores=2) == (1, 2)
    assert default_parallelism("bert-base", device="cpu", cores=16) == (2, 8)  # 24 GB holds 2 of them
    monkeypatch.setattr(S, "_physical_memory", lambda: 64 * 2**30)
    assert default_parallelism("bert-base", device="cpu", cores=16) == (7, 2)
    monkeypatch.setattr(S, "_parameter_count", lambda model: 335_000_000)  # BERT-large: 16 GB + 2 GB each
    monkeypatch.setattr(S, "_physical_memory", lambda: 16 * 2**30)
    assert default_parallelism("bert-large", device="cpu", cores=2) == (1, 2)
    monkeypatch.setattr("steadytune.models.resolve_device", lambda name: torch.device("cuda"))
    assert default_parallelism("bert-large", device="cuda", cores=16) == (1, 16)  # one process shares the GPU
    monkeypatch.undo()
    # the tiny encoder's size, read from its config alone (2 layers × 32 wide)
    assert 5_000 < S._parameter_count(str(tiny_model_dir)) < 100_000
    # never more workers than trials; explicit settings win
    trials = _study(tiny_model_dir.parent / "unused", tiny_model_dir, toy_files, seeds=1).trials()
    assert len(trials) == 2 and LocalExecutor()._split(trials[:1])[0] == 1
    assert LocalExecutor(2, threads=3)._split(trials) == (2, 3)


def _cli_args(tiny_model_dir, toy_files, out, seeds) -> list[str]:
    data = _data(toy_files)
    return ["study", "--recipes", RECIPES, "--seeds", str(seeds), "--out", str(out), "--model", str(tiny_model_dir),
            "--train-file", data["train_file"], "--validation-file", data["validation_file"],
            "--test-file", data["test_file"], "--num-evals", "2", "--quiet", "--workers", "1"]  # fmt: skip


def _stored_trials(out, last: int) -> int:
    """How many trial records a running study has stored so far (read-only; `last` while the store is being made)."""
    if not (out / "study.sqlite").exists():
        return last
    try:
        con = sqlite3.connect(f"file:{out / 'study.sqlite'}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the table is being created
        return last


def test_sigkill_mid_study_loses_and_repeats_nothing(tiny_model_dir, toy_files, tmp_path):
    seeds = 5  # 10 trials
    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "steadytune", *_cli_args(tiny_model_dir, toy_files, killed, seeds)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    done = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = _stored_trials(killed, done)
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


def _stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; None when the process is gone."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and (_stat(p) or ["", "0"])[1] == str(pid)}


def _cmdline(pid: int) -> str:
    """/proc/PID/cmdline; empty when the process exited between listing /proc and reading it."""
    try:
        return open(f"/proc/{pid}/cmdline").read()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # an exited child nobody reaped yet is not running


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc (Linux)")
def test_pool_workers_exit_when_the_driver_is_killed(tiny_model_dir, toy_files, tmp_path):
    """A SIGKILLed driver cannot stop its pool; the workers notice and exit instead of training for nobody."""
    args = [*_cli_args(tiny_model_dir, toy_files, tmp_path / "s", 20), "--workers", "2", "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "steadytune", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and len(workers) < 2:
        workers = {k for k in _children(proc.pid) if "spawn_main" in _cmdline(k)}
        time.sleep(0.1)
    assert len(workers) == 2, "the pool did not start"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20  # the workers poll their parent once a second
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if _running(w)]
    for w in alive:  # do not leave them behind when the test fails
        os.kill(w, signal.SIGKILL)
    assert not alive, "orphaned workers still running"


def test_export_csv_and_parquet(tiny_model_dir, toy_files, tmp_path, capsys):
    _study(tmp_path / "s", tiny_model_dir, toy_files).run(workers=1, progress=False)
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


def test_report_names_every_steadytune_version_that_ran_trials():
    from steadytune.study.results import _versions

    def rec(v):
        return {"versions": {"steadytune": v}}

    assert _versions([rec("0.3.0"), rec("0.3.0")]) == "0.3.0"
    assert _versions([rec("0.3.0"), rec("0.2.0"), rec("0.3.0")]) == "0.2.0 (1 trials), 0.3.0 (2 trials)"


def test_records_are_rescored_under_the_current_rule_when_reported(tiny_model_dir, toy_files, tmp_path):
    """A store from before records held their baseline (0.6.0) is judged by the current rule, from its data."""
    from steadytune.study import grid, trial_rows

    out = tmp_path / "study"
    _study(out, tiny_model_dir, toy_files, seeds=1, recipes="adam+lr=1e-3").run(progress=False)
    fresh = trial_rows(load_records(out))[0]
    assert fresh["rule"] == "current" and fresh["baseline_predictor"].startswith("always")
    con = sqlite3.connect(out / "study.sqlite")
    (record,) = [json.loads(r) for (r,) in con.execute("SELECT record FROM trials")]
    for key in ("baseline", "failure"):
        del record[key]
    record["failed"] = not fresh["failed"]  # a verdict of another rule
    with con:
        con.execute("UPDATE trials SET record = ?", (json.dumps(record),))
    con.close()
    row = trial_rows(load_records(out))[0]
    assert row["rule"] == "current" and row["failed"] == fresh["failed"] and row["baseline"] == fresh["baseline"]
    assert row["stored_failed"] != row["failed"]
    toy_files["test"].unlink()  # the data is gone: the verdict it was stored with stands, and says so
    grid._cached_data.cache_clear()  # as in a new process (`steadytune report`)
    row = trial_rows(load_records(out))[0]
    assert row["rule"] == "stored" and row["failed"] == record["failed"]


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_ctrl_c_while_workers_start_is_raised_after_and_they_never_see_it(ctrl_c_heard):
    """The window in which the pool's workers start: a Ctrl-C then is not lost (it is raised when the window
    closes, so the study stops instead of running to its end), and a process started in it stays deaf to SIGINT."""
    from steadytune.study.executors import _started_deaf_to_interrupts

    before = signal.getsignal(signal.SIGINT)
    script = "import time; print('up', flush=True); time.sleep(60)"
    with pytest.raises(KeyboardInterrupt):
        with _started_deaf_to_interrupts():
            child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the workers start
            time.sleep(0.2)
    try:
        assert signal.getsignal(signal.SIGINT) is before
        assert child.stdout.readline() == b"up\n"  # its Python is running, with the handler it installs
        child.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert child.poll() is None, "the child saw SIGINT"
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc (Linux)")
@pytest.mark.parametrize("when", ["workers starting", "trials stored"])
def test_ctrl_c_stops_the_pool_with_one_line_and_the_study_resumes(when, tiny_model_dir, toy_files, tmp_path):
    """Ctrl-C signals the terminal's whole process group: the driver alone answers (one line, exit 130), its
    workers stop with it and print nothing, whether they are still importing or training; a rerun finishes."""
    out = tmp_path / "s"
    args = [*_cli_args(tiny_model_dir, toy_files, out, 20), "--workers", "2", "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "steadytune", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=hears_ctrl_c,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    deadline, workers, stored = time.time() + 120, set(), 0
    while time.time() < deadline and (len(workers) < 2 or (when == "trials stored" and stored < 2)):
        workers = {k for k in _children(proc.pid) if "spawn_main" in _cmdline(k)}
        if when == "trials stored":
            stored = _stored_trials(out, stored)
        time.sleep(0.05)
    assert len(workers) == 2, "the pool did not start"
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        for w in workers:
            if _running(w):
                os.kill(w, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "steadytune: interrupted" and "Traceback" not in err, err
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.1)
    assert not any(_running(w) for w in workers), "workers outlived the interrupted driver"
    assert main(args) == 0 and len(load_records(out)) == 2 * 20


def test_cached_data_follows_the_file_a_relative_path_names_now(tmp_path, monkeypatch):
    """A process reuses a loaded data set only while its files are the same: the same relative path in another
    working folder, or the file rewritten, is read again (a notebook that edits its CSV and fits again)."""
    from conftest import sentiment_rows, write_rows

    from steadytune.config import TrainConfig
    from steadytune.study.grid import config_data

    config = TrainConfig(train_file="reviews.csv", text_columns=("text",))
    for folder, n in (("a", 60), ("b", 100)):
        (tmp_path / folder).mkdir()
        write_rows(tmp_path / folder / "reviews.csv", sentiment_rows(n))
    monkeypatch.chdir(tmp_path / "a")
    first = config_data(config)
    assert config_data(config) is first  # unchanged: the cache serves it
    monkeypatch.chdir(tmp_path / "b")
    assert sum(len(s) for s in (config_data(config).train, config_data(config).validation,
                                config_data(config).test)) == 100  # fmt: skip
    monkeypatch.chdir(tmp_path / "a")
    write_rows(tmp_path / "a" / "reviews.csv", sentiment_rows(80))
    os.utime(tmp_path / "a" / "reviews.csv", ns=(1, 1))  # a different stamp even within the clock's resolution
    data = config_data(config)
    assert data is not first and len(data.train) + len(data.validation) + len(data.test) == 80
