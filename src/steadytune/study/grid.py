"""A study's grid: trials (task × recipe × seed), parsing the recipe and seed lists, and running one trial."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data import TaskData, load_data
from ..errors import UserInputError
from ..recipes import Recipe
from ..trainer import train, train_stage

__all__ = ["Trial", "parse_recipes", "parse_seeds", "run_trial", "trial_data"]


@dataclass(frozen=True)
class Trial:
    """One cell of the grid: the configuration to run (the recipe expanded into its fields), and its key.

    With `out`, the trial is a stage of a longer run (`steadytune.fit`): it continues from the checkpoint beside
    `out` when there is one, trains until step `until` (None: the end) and returns the partial record there, or
    writes the finished run (with its model) to `out`.
    """

    task: str
    recipe: str
    seed: int
    config: TrainConfig
    until: int | None = None
    out: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return self.task, self.recipe, self.seed


def parse_recipes(text: str | Iterable[str]) -> list[str]:
    """ "bertadam,adam,adam+reinit:2" → a list; a comma followed by a digit stays (betas=0.9,0.98)."""
    items = re.split(r",(?=\s*[A-Za-z])", text) if isinstance(text, str) else list(text)
    recipes = [Recipe.parse(item).name for item in items if item.strip()]
    if not recipes:
        raise UserInputError("no recipes given; e.g. --recipes bertadam,adam")
    if len(set(recipes)) != len(recipes):
        raise UserInputError(f"recipes repeat: {', '.join(recipes)}")
    return recipes


def parse_seeds(seeds: int | str | Iterable[int]) -> list[int]:
    """N → 0..N-1; "3,7,9" → [3, 7, 9]; a list as it is."""
    if isinstance(seeds, str):
        try:
            values = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise UserInputError(f"seeds must be a count or a list like 3,7,9, got {seeds!r}") from None
        seeds = values[0] if len(values) == 1 and "," not in seeds else values
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise UserInputError(f"seeds must be at least 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise UserInputError(f"seeds must be distinct non-negative integers, got {out}")
    return out


def run_trial(trial: Trial, data: TaskData | None = None) -> dict[str, Any]:
    """One trial, start to finish (also what a pool worker or a cluster task calls); `data` when already loaded."""
    data = data if data is not None else trial_data(trial)
    if trial.out is not None:
        return train_stage(trial.config, data=data, out=trial.out, until=trial.until)
    return train(trial.config, data=data).to_dict()


def trial_data(trial: Trial) -> TaskData:
    """The trial's data, loaded once per process (the driver has it already: `Study` loads it first)."""
    return config_data(trial.config)


def config_data(config: TrainConfig) -> TaskData:
    """`load_data` of a configuration's data settings, cached: a process loads each data set-up once (and
    tokenizes it once per tokenizer, `steadytune.data.encode`). The key holds each local path resolved, with the
    size and modification time of what it names (a folder's files), so a relative path in another working folder,
    or a file edited since, is read again."""
    kwargs = tuple(config.data_kwargs().items())
    return _cached_data(kwargs, tuple(_stamp(v) for _, v in kwargs))


def _stamp(value: Any) -> tuple:
    """Where a data setting points on disk and what is there now; () for a value that names no local path."""
    if not isinstance(value, str) or not value:
        return ()
    path = Path(value)
    try:
        files = sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path] if path.is_file() else []
        return (str(path.resolve()), *((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    except OSError:  # unreadable here: load_data says why
        return ()


@lru_cache(maxsize=16)
def _cached_data(kwargs: tuple[tuple[str, Any], ...], stamps: tuple) -> TaskData:
    return load_data(**dict(kwargs))
