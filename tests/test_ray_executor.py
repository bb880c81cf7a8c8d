"""The Ray executor: the same records as the local one, resuming after a killed driver, dead workers retried.

One local Ray instance (2 CPUs, no dashboard) serves the whole module; the tests need `ray` and skip without it.
The flag checks and the "Ray not installed" error run without it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steadytune.cli import main
from steadytune.data import TaskData
from steadytune.study import LocalExecutor, Study, Trial, load_records, run_trial

RECIPES = "bertadam+lr=1e-3,adam+lr=1e-3+reinit:1"


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray instance shared by the module's tests (its start-up is most of their time); its address."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    # The trial functions below live in this test module, which Ray's workers cannot import: send them by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield context.address_info["address"]
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _data(toy_files) -> dict[str, str]:
    return {f"{split}_file": str(toy_files[split]) for split in ("train", "validation", "test")}


def _study(out: Path, tiny_model_dir: Path, toy_files, **kw: Any) -> Study:
    kw = {"recipes": RECIPES, "seeds": 2, "num_evals": 2, **kw}
    return Study(out, model=str(tiny_model_dir), **_data(toy_files), **kw)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record less what depends on the clock or the host."""
    return {k: v for k, v in record.items() if k not in ("timings", "versions")}


def _stored(out: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{out / 'study.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT task, recipe, seed, status, error FROM trials ORDER BY recipe, seed").fetchall()
    finally:
        con.close()


def test_ray_gives_the_records_of_the_local_executor(ray_address, tiny_model_dir, toy_files, tmp_path):
    from steadytune.study.ray_executor import RayExecutor

    local, remote = (
        _study(tmp_path / "local", tiny_model_dir, toy_files),
        _study(tmp_path / "ray", tiny_model_dir, toy_files),
    )
    local.run(executor=LocalExecutor(1, threads=1), progress=False)
    counts = remote.run(executor=RayExecutor(cpus_per_trial=1), progress=False)
    assert counts == {"total": 4, "skipped": 0, "ran": 4, "errors": 0}
    ray_records = load_records(tmp_path / "ray")
    assert [_comparable(r) for r in ray_records] == [_comparable(r) for r in load_records(tmp_path / "local")]
    assert ray_records[0]["config"]["model"] == str(tiny_model_dir)  # not the worker's copy of the folder
    assert remote.run(executor=RayExecutor(), progress=False)["skipped"] == 4  # resuming works as before


# Trial functions for the failure tests; the marker files beside the training file say what already happened.


def _crash_once(trial: Trial, data: TaskData) -> dict[str, Any]:
    """Kills its worker the first time it runs seed 1 of the first recipe, then runs it normally."""
    marker = Path(trial.config.train_file).with_name("crashed")
    if trial.seed == 1 and trial.recipe == RECIPES.split(",")[0] and not marker.exists():
        marker.touch()
        os._exit(1)
    return run_trial(trial, data)


def _raise_or_crash(trial: Trial, data: TaskData) -> dict[str, Any]:
    """The first recipe raises (an error in the trial); the other kills its worker every time."""
    calls = Path(trial.config.train_file).with_name(f"calls-{trial.recipe}")
    with calls.open("a") as f:
        f.write("x")
    if trial.recipe == RECIPES.split(",")[0]:
        raise ValueError(f"bad row in {trial.task!r}")
    os._exit(1)


def test_a_trial_whose_worker_dies_is_retried_and_stored_once(ray_address, tiny_model_dir, toy_files, tmp_path):
    from steadytune.study.ray_executor import RayExecutor

    study = _study(tmp_path / "s", tiny_model_dir, toy_files)
    counts = study.run(executor=RayExecutor(max_retries=1, trial_fn=_crash_once), progress=False)
    assert counts == {"total": 4, "skipped": 0, "ran": 4, "errors": 0}
    assert (toy_files["train"].with_name("crashed")).exists()  # it did die once
    assert [row[3] for row in _stored(tmp_path / "s")] == ["done"] * 4


def test_errors_are_not_retried_and_exhausted_retries_are_recorded(ray_address, tiny_model_dir, toy_files, tmp_path):
    from steadytune.study.ray_executor import RayExecutor

    study = _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1)
    counts = study.run(executor=RayExecutor(max_retries=1, trial_fn=_raise_or_crash), progress=False)
    assert counts == {"total": 2, "skipped": 0, "ran": 0, "errors": 2}
    raised, crashed = RECIPES.split(",")
    assert toy_files["train"].with_name(f"calls-{raised}").read_text() == "x"  # a trial's own error: run once
    assert toy_files["train"].with_name(f"calls-{crashed}").read_text() == "xx"  # a dead worker: 1 + max_retries
    errors = {recipe: (task, error) for task, recipe, _, status, error in _stored(tmp_path / "s") if status == "error"}
    task, error = errors[raised]
    assert error == f"ValueError: bad row in {task!r}", errors  # the trial's own exception, as the local executor
    assert errors[crashed][1].startswith("WorkerCrashedError: "), errors
    # the errored trials are what the next run does
    assert study.run(executor=RayExecutor(), progress=False) == {"total": 2, "skipped": 0, "ran": 2, "errors": 0}
    assert [row[3] for row in _stored(tmp_path / "s")] == ["done"] * 2


def _cli_args(tiny_model_dir: Path, toy_files, out: Path, seeds: int, address: str) -> list[str]:
    data = _data(toy_files)
    return ["study", "--recipes", RECIPES, "--seeds", str(seeds), "--out", str(out), "--model", str(tiny_model_dir),
            "--train-file", data["train_file"], "--validation-file", data["validation_file"],
            "--test-file", data["test_file"], "--num-evals", "2", "--quiet", "--executor", "ray",
            "--ray-address", address]  # fmt: skip


def test_a_killed_driver_resumes_without_losing_or_repeating_a_trial(ray_address, tiny_model_dir, toy_files, tmp_path):
    seeds = 4  # 8 trials, 2 at a time on the module's 2 CPUs
    out = tmp_path / "killed"
    args = _cli_args(tiny_model_dir, toy_files, out, seeds, ray_address)
    proc = subprocess.Popen([sys.executable, "-m", "steadytune", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    stored = 0
    deadline = time.time() + 180  # the driver's start-up (torch, transformers, Ray) is slow on 2 busy cores
    while time.time() < deadline and proc.poll() is None and stored < 2:
        if (out / "study.sqlite").exists():
            try:
                stored = len(_stored(out))
            except sqlite3.OperationalError:  # the table is being created
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 2 <= stored < 2 * seeds, stored

    # the same command again, against the same cluster: the rest runs, nothing twice
    assert main(args) == 0
    rows = _stored(out)
    assert len(rows) == 2 * seeds and len({row[:3] for row in rows}) == 2 * seeds
    assert {row[3] for row in rows} == {"done"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--executor", "ray", "--gpus-per-trial", "-1"], "gpus per trial must be 0 or more, got -1.0"),
        (["--executor", "ray", "--gpus-per-trial", "1.5"], "a fraction up to 1 or whole, got 1.5"),
        (["--executor", "ray", "--cpus-per-trial", "0"], "cpus per trial must be more than 0, got 0.0"),
        (["--executor", "ray", "--max-retries", "-2"], "max retries must be 0 or more, got -2"),
        (["--ray-address", "auto"], "--ray-address needs --executor ray; --executor is 'local'"),
        (["--gpus-per-trial", "0.5", "--max-retries", "1"], "--gpus-per-trial, --max-retries needs --executor ray"),
        (["--executor", "ray", "--workers", "2"], "--workers needs --executor local"),
    ],
)
def test_bad_executor_flags_are_one_line_exit_2(argv, message, toy_files, tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path / "s"), "--train-file", str(toy_files["train"]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "s").exists()


def test_ray_not_installed_is_one_line_exit_2(monkeypatch, toy_files, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as when it is missing
    assert (
        main(["study", "--out", str(tmp_path / "s"), "--train-file", str(toy_files["train"]), "--executor", "ray"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--executor ray needs Ray: pip install 'steadytune[ray]'" in err, err
    assert not (tmp_path / "s").exists()


def test_an_unreachable_cluster_is_one_line_exit_2(monkeypatch, toy_files, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process, even beside the fixture
    argv = ["--executor", "ray", "--ray-address", "127.0.0.1:1"]  # port 1: nothing listens there
    assert main(["study", "--out", str(tmp_path / "s"), "--train-file", str(toy_files["train"]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect to the Ray cluster at '127.0.0.1:1'" in err, err
    assert not (tmp_path / "s").exists()
