"""`Study`: a grid of trials over tasks × recipes × seeds, run through an executor into the store, then summarised.

    study = Study("studies/x", tasks=["rte", "mrpc"], recipes=["bertadam", "adam", "adam+reinit:2"], seeds=20,
                  model="all-MiniLM-L6-v2", glue_dir="../shared/data/glue", train_size=1000)
    study.run(workers=1)             # skips finished trials; a crashed or killed run simply continues
    study.summary(); study.report()  # statistics (steadytune.stats) and report.md/.html (steadytune.report)

`Study` loads every task's data first, so bad input fails before anything is written; the store (`store.Store`)
then claims the folder by the study's identity.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..config import NOT_IDENTITY, PER_TRIAL, STUDY_SKIPS, TrainConfig
from ..data import TaskData
from ..errors import UserInputError
from ..files import to_json
from ..recipes import Recipe
from ..tracking import require
from .executors import Executor, LocalExecutor
from .grid import Trial, config_data, parse_recipes, parse_seeds
from .progress import StepBar, accepts_steps, step_budget
from .results import trial_line, trial_rows, write_study_report
from .store import Store, error_line, load_records

__all__ = ["Study"]


class Study:
    """A grid of trials over tasks × recipes × seeds, sharing one model, data set-up and run settings.

    `tasks` are GLUE presets; for your own data leave them out and pass `train_file=...` (and the other data
    settings of `TrainConfig`). Any other `TrainConfig` field (model, train_size, max_length, num_evals, ...) is
    shared by all trials. `new=True` starts over in an existing folder (the old store is kept as a backup).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        tasks: str | Iterable[str] | None = None,
        recipes: str | Iterable[str] = "adam",
        seeds: int | str | Iterable[int] = 5,
        new: bool = False,
        **config: Any,
    ) -> None:
        self.out = Path(out)
        unknown = config.keys() - {f.name for f in fields(TrainConfig)} | (config.keys() & STUDY_SKIPS)
        if unknown:
            raise UserInputError(f"unknown or per-trial study setting(s): {', '.join(sorted(unknown))}")
        if isinstance(tasks, str):
            tasks = [t.strip() for t in tasks.split(",") if t.strip()]
        self.tasks = list(tasks) if tasks else [None]
        if len(set(self.tasks)) != len(self.tasks):
            raise UserInputError(f"tasks repeat: {', '.join(map(str, self.tasks))}")
        if self.tasks != [None] and config.get("train_file"):
            raise UserInputError("give GLUE tasks or train_file, not both")
        self.recipes = parse_recipes(recipes)
        self.seeds = parse_seeds(seeds)
        # Settings shared by all trials (the default recipe and seed stand in until the grid sets them).
        self.shared = TrainConfig(**config)
        require(self.shared.report_to, self.shared.tracking_dir)  # a missing tracker fails before anything runs
        if self.shared.report_to != "none" and self.shared.tracking_dir is None:  # one tracker run per trial, here
            self.shared = replace(self.shared, tracking_dir=str(self.out.resolve()))
        self.new = new
        # Load every task's data now: bad data is one clear error before anything is written or run.
        self.data: dict[str | None, TaskData] = {t: config_data(replace(self.shared, task=t)) for t in self.tasks}

    def config(self, task: str | None, recipe: str, seed: int) -> TrainConfig:
        """One trial's configuration; a recipe without a learning rate gets the encoder's (`TrainConfig.resolved`),
        so the store compares what its trials ran with."""
        return replace(self.shared, task=task, recipe=Recipe.parse(recipe), seed=seed).resolved()

    def identity(self) -> dict[str, Any]:
        """What must match for trials to belong to the same study: model, run settings, and the data's rows."""
        recipe_fields = {f.name for f in fields(Recipe)} | {"recipe"}
        skip = NOT_IDENTITY | PER_TRIAL | recipe_fields
        shared = {k: v for k, v in self.shared.to_dict().items() if k not in skip}
        data = {d.name: d.summary()["fingerprints"] for d in self.data.values()}
        return json.loads(to_json({"settings": shared, "data": data}))

    @property
    def db_path(self) -> Path:
        return self.out / "study.sqlite"

    def trials(self) -> list[Trial]:
        """The grid, seed-major: an interrupted study has about as many seeds of every recipe."""
        return [Trial(data.name, recipe, seed, self.config(task, recipe, seed))
                for seed in self.seeds for task, data in self.data.items() for recipe in self.recipes]  # fmt: skip

    def run(
        self,
        *,
        workers: int | None = None,
        threads: int | None = None,
        executor: Executor | None = None,
        progress: bool = True,
    ) -> dict[str, int]:
        """Run every trial not yet stored; returns counts {"total", "skipped", "ran", "errors"}."""
        executor = executor or LocalExecutor(workers, threads)
        store = Store(self.out)
        recipes = {r: self.config(None, r, 0) for r in self.recipes}
        store.claim(self.identity(), recipes, [d.name for d in self.data.values()], new=self.new)
        try:
            grid = self.trials()
            stored = store.done()
            todo = [t for t in grid if t.key not in stored]
            counts = {"total": len(grid), "skipped": len(grid) - len(todo), "ran": 0, "errors": 0}
            # The bar counts training steps: every trial's budget, the stored ones' already done.
            budgets = {t.key: step_budget(t.config, self.data[t.config.task]) for t in grid}
            bar = StepBar(sum(budgets.values()), done_steps=sum(budgets[k] for k in stored if k in budgets),
                          done_trials=counts["skipped"], total_trials=len(grid), enable=progress)  # fmt: skip
            for trial in todo:
                bar.add(trial.key, 0, budgets[trial.key])

            def done(trial: Trial, outcome: dict[str, Any] | BaseException) -> None:
                store.add(trial.key, outcome)
                failed = isinstance(outcome, BaseException)
                counts["errors" if failed else "ran"] += 1
                bar.finished(trial)
                if progress:
                    bar.write(f"{trial.task} {trial.recipe} seed {trial.seed}: ERROR {error_line(outcome)}"
                              if failed else trial_line(trial, outcome))  # fmt: skip

            if progress and accepts_steps(executor):
                executor.run(todo, done, steps=bar.steps)
            else:
                executor.run(todo, done)
            bar.close()
        finally:
            store.close()
        return counts

    def records(self) -> list[dict[str, Any]]:
        return load_records(self.out)

    def summary(self, *, reference: str | None = None) -> list[dict[str, Any]]:
        """`steadytune.stats.summarize` of the stored trials; `reference`: the recipe the Levene and Fisher tests
        compare with (default: the first bias-corrected one)."""
        from ..stats import summarize

        return summarize(trial_rows(self.records()), reference=reference)

    def report(self, *, title: str | None = None, reference: str | None = None) -> tuple[Path, Path]:
        return write_study_report(self.out, title=title, reference=reference)
