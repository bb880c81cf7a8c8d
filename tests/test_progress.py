"""Progress bars: a study's (and a fit's) counts training steps across running trials; `train`'s shows the latest
read-back loss. The bars are recorded by replacing tqdm in the modules that make them (the driver's process)."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import threading

import pytest
from tqdm.std import tqdm as std_tqdm

import steadytune.study.progress as progress_module
from steadytune import TrainConfig, train
from steadytune.data import load_user_data
from steadytune.fitting import FitSettings, fit
from steadytune.loop import SYNC_EVERY, report_steps
from steadytune.study import LocalExecutor, Study, load_records
from steadytune.study.progress import StepBar, accepts_steps

# Two budgets that are not multiples of SYNC_EVERY, so read-backs and evaluations fall apart.
RECIPES = "adam+lr=1e-3+max_steps=40,adam+lr=1e-3+max_steps=24"
BUDGETS = {"adam+lr=1e-3+max_steps=40": 40, "adam+lr=1e-3+max_steps=24": 24}


class _Recorded(std_tqdm):
    """A tqdm that keeps (n, total, description, postfix) at its start and at each update, and each postfix set;
    `final` is (n, total, description) when it was closed."""

    bars: list[_Recorded] = []

    def __init__(self, *args, **kwargs):
        self.shown: list[tuple[int, int, str, str]] = []
        self.postfixes: list[tuple[int, dict, bool]] = []
        super().__init__(*args, **kwargs)
        _Recorded.bars.append(self)
        self._note()

    def close(self):
        self.final = (int(self.n), int(self.total or 0), self.desc)
        return super().close()

    def _note(self) -> None:
        self.shown.append(
            (int(self.n), int(self.total or 0), getattr(self, "desc", ""), getattr(self, "postfix", "") or "")
        )

    def update(self, n=1):
        out = super().update(n)
        self._note()
        return out

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfixes.append((int(self.n), dict(kwargs), refresh))
        return super().set_postfix(ordered_dict, refresh, **kwargs)


@pytest.fixture
def recorded(monkeypatch):
    _Recorded.bars = []
    monkeypatch.setattr(progress_module, "tqdm", _Recorded)
    return _Recorded.bars


def _data(toy_files) -> dict:
    return {"train_file": str(toy_files["train"]), "validation_file": str(toy_files["validation"]),
            "test_file": str(toy_files["test"])}  # fmt: skip


def _study(out, tiny_model_dir, toy_files, **kw) -> Study:
    kw = {"recipes": RECIPES, "seeds": 2, "num_evals": 2, **kw}
    return Study(out, model=str(tiny_model_dir), **_data(toy_files), **kw)


def test_in_process_trials_report_each_read_back(recorded, tiny_model_dir, toy_files, tmp_path):
    counts = _study(tmp_path / "s", tiny_model_dir, toy_files).run(workers=1)
    assert counts == {"total": 4, "skipped": 0, "ran": 4, "errors": 0}
    (bar,) = recorded
    assert bar.total == 2 * (40 + 24)
    # Read-backs: every SYNC_EVERY steps, at the evaluations (half-way and the end); a trial's end finishes it.
    per_trial = {40: [16, 20, 36, 40], 24: [12, 24]}
    expected, done = [0], 0
    for recipe in ["adam+lr=1e-3+max_steps=40", "adam+lr=1e-3+max_steps=24"] * 2:  # the grid: seed-major
        expected += [done + s for s in per_trial[BUDGETS[recipe]]]
        done += BUDGETS[recipe]
    assert [n for n, *_ in bar.shown] == expected
    assert bar.final == (128, 128, "trials 4/4") and bar.shown[1][2] == "trials 0/4"


def test_pool_workers_report_steps_and_the_bar_ends_at_the_total(recorded, tiny_model_dir, toy_files, tmp_path):
    # Long enough trials (in steps) that the driver sees them part-way through, however fast the machine.
    recipes = "adam+lr=1e-3+max_steps=400+batch_size=4,adam+lr=1e-3+max_steps=300+batch_size=4"
    study = _study(tmp_path / "s", tiny_model_dir, toy_files, recipes=recipes)
    assert study.run(executor=LocalExecutor(2, threads=1))["ran"] == 4
    (bar,) = recorded
    ns = [n for n, *_ in bar.shown]
    assert bar.final == (1400, 1400, "trials 4/4")
    assert ns == sorted(ns)
    # Steps counted before any trial finished, and counts that are no sum of whole trials: steps, not trials.
    assert any(n > 0 and desc == "trials 0/4" for n, _, desc, _ in bar.shown)
    whole = {0, 300, 400, 600, 700, 800, 1000, 1100, 1400}
    assert any(n not in whole for n in ns)
    records = load_records(tmp_path / "s")
    assert len(records) == 4 and all(r["steps"] == r["total_steps"] for r in records)


def test_a_resumed_study_starts_at_the_stored_trials_steps(recorded, tiny_model_dir, toy_files, tmp_path):
    _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=1).run(workers=1, progress=False)
    recorded.clear()
    assert _study(tmp_path / "s", tiny_model_dir, toy_files, seeds=2).run(workers=1)["skipped"] == 2
    (bar,) = recorded
    assert bar.shown[0][:3] == (64, 128, "trials 2/4")
    assert bar.final == (128, 128, "trials 4/4")


def test_diverged_and_errored_trials_complete_their_share(recorded, tiny_model_dir, toy_files, tmp_path):
    recipes = "adam+lr=1e6+max_grad_norm=0+max_steps=200,adam+lr=1e-3+max_steps=24"
    study = _study(tmp_path / "s", tiny_model_dir, toy_files, recipes=recipes, seeds=1, num_evals=20)
    study.run(workers=1)
    (diverged,) = [r for r in load_records(tmp_path / "s") if r["diverged"]]
    assert diverged["steps"] < 200
    bar = recorded[0]
    assert bar.final == (224, 224, "trials 2/2")

    class Failing:  # an executor of the old interface (no `steps`): each trial ends as an error
        def run(self, trials, done):
            for trial in trials:
                done(trial, RuntimeError("lost"))

    recorded.clear()
    counts = _study(tmp_path / "e", tiny_model_dir, toy_files, seeds=1).run(executor=Failing())
    assert counts["errors"] == 2 and recorded[0].final == (64, 64, "trials 2/2")


def test_a_killed_worker_does_not_hang_the_bar(recorded, tiny_model_dir, toy_files, tmp_path):
    study = _study(tmp_path / "s", tiny_model_dir, toy_files, recipes="adam+lr=1e-3+max_steps=5000+batch_size=4")
    killed = []
    real_steps = StepBar.steps

    def steps(self, trial, step):  # the first step count heard: kill a worker mid-trial
        if not killed:
            worker = multiprocessing.active_children()[0]
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker.pid)
        real_steps(self, trial, step)

    counts: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StepBar, "steps", steps)
        thread = threading.Thread(target=lambda: counts.update(study.run(executor=LocalExecutor(2, threads=1))))
        thread.start()
        thread.join(timeout=600)
    assert not thread.is_alive(), "the study hung after its worker was killed"
    assert killed and counts["errors"] >= 1 and counts["ran"] + counts["errors"] == 2
    bar = recorded[0]
    assert bar.final == (10000, 10000, "trials 2/2")


def test_executors_without_steps_and_quiet_runs(tiny_model_dir, toy_files, tmp_path, capsys):
    seen = []

    class Recording:  # ends each trial as an error at once: what is checked is what the study asks of it
        def run(self, trials, done, **kwargs):
            seen.append(sorted(kwargs))
            for trial in trials:
                done(trial, RuntimeError("not run"))

    assert accepts_steps(Recording()) and accepts_steps(LocalExecutor(1))
    assert not accepts_steps(type("Old", (), {"run": lambda self, trials, done: None})())
    _study(tmp_path / "q", tiny_model_dir, toy_files, seeds=1).run(executor=Recording(), progress=False)
    quiet = capsys.readouterr()
    assert quiet.out == quiet.err == ""  # quiet: no bar, no per-trial lines
    _study(tmp_path / "p", tiny_model_dir, toy_files, seeds=1).run(executor=Recording())
    assert seen == [[], ["steps"]]  # and the trials of a quiet study are not even asked for their steps
    shown = capsys.readouterr()
    assert "steps 64/64" in shown.err and shown.out.count("ERROR RuntimeError: not run") == 2


def test_a_log_file_gets_a_line_per_trial_not_per_redraw(tiny_model_dir, toy_files, tmp_path, capsys):
    from steadytune.cli import main

    argv = ["study", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]), "--validation-file",
            str(toy_files["validation"]), "--test-file", str(toy_files["test"]), "--recipes", RECIPES,
            "--seeds", "1", "--workers", "1", "--out", str(tmp_path / "s")]  # fmt: skip
    assert main(argv) == 0
    shown = capsys.readouterr()
    # Not a terminal: tqdm's redraws ("\r", at read-backs) share one line, ended when the bar closes; then the
    # study's two closing lines. The trials' lines go to standard output, one each.
    assert shown.out.count("seed 0: test") == 2
    assert "steps 64/64" in shown.err and "trials 2/2" in shown.err and shown.err.count("\n") == 3, shown.err


def test_report_steps_nests_and_ends_with_its_block():
    heard: list[tuple[str, int]] = []
    from steadytune.loop import _step_listeners

    with report_steps(lambda s: heard.append(("outer", s))):
        with report_steps(lambda s: heard.append(("inner", s))):
            for listener in _step_listeners.get():
                listener(16)
        assert len(_step_listeners.get()) == 1
    assert _step_listeners.get() == () and heard == [("outer", 16), ("inner", 16)]


def test_train_bar_shows_the_latest_read_back_loss(monkeypatch, tiny_model_dir, toy_files, tmp_path):
    import steadytune.trainer as trainer

    _Recorded.bars = []
    monkeypatch.setattr(trainer, "tqdm", _Recorded)
    data = load_user_data(toy_files["train"], validation=toy_files["validation"], test=toy_files["test"])
    config = TrainConfig(model=str(tiny_model_dir)).with_overrides(lr=1e-3, max_steps=40, batch_size=8, num_evals=2)
    result = train(config, data=data, out=tmp_path / "run", progress=True)
    curve = [json.loads(line) for line in (tmp_path / "run" / "curve.jsonl").open()]
    (bar,) = _Recorded.bars
    # A redraw (refresh) at each read-back (every SYNC_EVERY steps, the evaluations, the end) with its last loss.
    assert [n for n, _, _ in bar.postfixes] == [SYNC_EVERY, 20, 20 + SYNC_EVERY, 40]
    assert all(refresh for _, _, refresh in bar.postfixes)
    for n, postfix, _ in bar.postfixes:
        assert postfix == {"loss": f"{curve[n - 1]['loss']:.4f}"} and curve[n - 1]["step"] == n
    assert bar.postfix == f"loss={curve[-1]['loss']:.4f}" and math.isfinite(result.curve[-1]["loss"])


def test_fit_bar_counts_the_planned_stage_steps(recorded, tiny_model_dir, toy_files, tmp_path):
    import steadytune.fitting  # noqa: F401  (StepBar's tqdm is the recorded one)

    config = TrainConfig(model=str(tiny_model_dir), **_data(toy_files)).with_overrides(lr=1e-3, max_steps=40,
                                                                                       batch_size=8)  # fmt: skip
    settings = FitSettings(candidates=3, lrs=(1e-3,), keep=1, families=("finetune",))
    result = fit(config, tmp_path / "fit", settings=settings, progress=True)
    (bar,) = recorded
    # checks at 10 and 20 of 40 steps: 3 candidates to 10, 2 of them to 20, 1 to the end
    dropped_early = sum(c["status"] == "diverged" for c in result.candidates)
    assert dropped_early == 0
    assert bar.shown[0][:2] == (0, 3 * 10 + 2 * 10 + 1 * 20)
    assert bar.final == (70, 70, "fit stages 6/6")
    assert result.steps == 70


def test_step_bar_counts_shares_and_starts_its_clock_at_the_first_steps(recorded):
    from types import SimpleNamespace

    a, b = SimpleNamespace(key=("t", "a", 0)), SimpleNamespace(key=("t", "b", 0))
    bar = StepBar(100 + 60, done_steps=60, done_trials=1, total_trials=3)
    bar.add(a.key, 0, 40)
    bar.add(b.key, 20, 80)  # a stage from step 20 to 80: its share is 60 steps
    assert (bar.n, bar.total, bar.bar.initial) == (60, 160, 60)
    bar.steps(b, 36)  # the first steps heard: the rate counts from here, the start-up is not training
    assert bar.n == 76 and bar.bar.initial == 76
    bar.steps(a, 500)  # never more than its share
    bar.steps(b, 20)  # a rerun (a Ray worker died) starts over
    assert bar.n == 100
    bar.finished(b)  # however far it got, a finished trial's share is complete
    bar.finished(a)
    bar.close()
    assert recorded[0].final == (160, 160, "trials 3/3")
