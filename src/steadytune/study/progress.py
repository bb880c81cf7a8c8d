"""A study's (or a fit's) progress bar, counted in training steps across the trials that are running.

A bar that counts finished trials sits at 0 until the first ones finish, and when workers finish in pairs its
ETA is far off. `StepBar` counts steps instead: its total is the trials' summed step budgets, each running trial
reports its step count (`steadytune.study.executors.Steps`, at the training loop's read-backs through
`steadytune.loop.report_steps`, no device sync of its own), and a trial that finishes completes its share whatever
it ran (a diverged one stops early, an errored one may not have started), so the bar ends at 100%. tqdm's ETA
from the step throughput accounts for any number of parallel workers. It reads e.g.
`trials 2/6:  24%|██▍       | steps 140/576 [00:30<01:33, 4.7step/s]`.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from typing import Any

from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data import TaskData

__all__ = ["StepBar", "accepts_steps", "step_budget"]

_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| steps {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def step_budget(config: TrainConfig, data: TaskData, until: int | None = None) -> int:
    """The step a trial of `config` on `data` trains to: its recipe's budget, or `until` when that is sooner."""
    total = config.recipe.num_training_steps(len(data.train))
    return total if until is None else min(until, total)


def accepts_steps(executor: Any) -> bool:
    """Whether `executor.run` takes the `steps` keyword (an `Executor` written before it existed does not)."""
    try:
        params = inspect.signature(executor.run).parameters
    except (TypeError, ValueError):
        return False
    return "steps" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class StepBar:
    """A tqdm over `total` training steps; `add` each trial to run (its key, the step it starts from and the step
    it ends at), then feed it `steps(trial, step)` while trials run and `finished(trial)` when each is done.

    `done_steps` and `done_trials` are what is finished already (a resumed study's stored trials). No output with
    `enable=False`; `unit` names the trials in the description ("trials 2/6").
    """

    def __init__(self, total: int, *, done_steps: int = 0, done_trials: int = 0, total_trials: int = 0,
                 unit: str = "trials", enable: bool = True) -> None:  # fmt: skip
        self.enable = enable
        self.unit = unit
        self.done_trials, self.total_trials = done_trials, total_trials
        self._spans: dict[Hashable, tuple[int, int]] = {}  # trial key → (start step, end step)
        self._counted: dict[Hashable, int] = {}  # trial key → its steps counted in the bar so far
        self._training = False
        # smoothing=0: the ETA from the mean throughput since training began, evaluations and the set-up of each
        # later trial included; a recent-rate estimate swings with every evaluation and every trial that starts.
        self.bar = tqdm(total=max(total, done_steps), initial=done_steps, desc=self._desc(), unit="step",
                        disable=not enable, dynamic_ncols=True, smoothing=0, bar_format=_FORMAT)  # fmt: skip

    def _desc(self) -> str:
        return f"{self.unit} {self.done_trials}/{self.total_trials}"

    @property
    def n(self) -> int:
        """Steps counted so far (finished shares and running trials' steps)."""
        return int(self.bar.n)

    @property
    def total(self) -> int:
        return int(self.bar.total)

    def add(self, key: Hashable, start: int, end: int) -> None:
        """A trial to run from step `start` to step `end` (its share of the bar: `end - start` steps)."""
        self._spans[key] = (start, max(start, end))
        self._counted[key] = 0

    def set_total(self, steps: int, trials: int | None = None) -> None:
        """What the whole bar counts, when the plan changes (a fit whose candidates were dropped at a check)."""
        self.bar.total = max(steps, self.n)
        if trials is not None:
            self.total_trials = trials
            self.bar.set_description_str(self._desc(), refresh=False)
        self.bar.refresh()

    def steps(self, trial: Any, step: int) -> None:
        """`executors.Steps`: `trial` (a `Trial`) is at `step`."""
        start, end = self._spans.get(trial.key, (0, 0))
        counted = min(max(step - start, 0), end - start)
        if not self._training and self.enable:
            # The clock starts at the first steps heard, as a trainer's bar starts after loading: the start-up
            # (spawning workers, importing, loading the model and data) is no training throughput and would
            # inflate the ETA of the whole study. The rate counts the steps from there.
            self._training = True
            self.bar.start_t = self.bar.last_print_t = self.bar._time()
            self.bar.initial = self.bar.n + counted - self._counted.get(trial.key, 0)
        self._count(trial.key, counted)

    def finished(self, trial: Any) -> None:
        """`trial` is done (finished, diverged, stopped early or errored): its whole share counts."""
        start, end = self._spans.get(trial.key, (0, 0))
        self.done_trials += 1
        self.bar.set_description_str(self._desc(), refresh=False)
        self._count(trial.key, end - start, force=True)

    def write(self, line: str) -> None:
        """Print a line above the bar (a finished trial's), or plainly when the bar is disabled."""
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()

    def _count(self, key: Hashable, counted: int, *, force: bool = False) -> None:
        before = self._counted.get(key, 0)
        self._counted[key] = counted
        if counted != before:  # may go back: a Ray trial rerun after its worker died starts over
            self.bar.update(counted - before)
        if force:
            self.bar.refresh()
