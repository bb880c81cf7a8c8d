"""Multi-seed studies: every (task, recipe, seed) trial of a grid, stored in SQLite, resumable, then summarised.

A reader's path: `study.Study` (the grid of `grid.Trial`s over one shared `TrainConfig`) → an `Executor`
(`executors.LocalExecutor`, `ray_executor.RayExecutor`) runs `grid.run_trial` → `trainer.train` → the driver
commits each record to `store.Store` (`study.sqlite`) → `results` (flat rows, the report, the export).
"""

from .executors import Executor, LocalExecutor
from .grid import Trial, parse_recipes, parse_seeds, run_trial, trial_data
from .parallelism import default_parallelism
from .results import export_rows, trial_rows, write_study_report
from .store import Store, load_records
from .study import Study

__all__ = [
    "Executor",
    "LocalExecutor",
    "Store",
    "Study",
    "Trial",
    "default_parallelism",
    "export_rows",
    "load_records",
    "parse_recipes",
    "parse_seeds",
    "run_trial",
    "trial_data",
    "trial_rows",
    "write_study_report",
]
