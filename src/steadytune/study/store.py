"""A study folder's store, `study.sqlite`: which study it holds (its identity), and one row per finished trial.

Only the driver writes it: each finished trial is one committed row, so a crash or SIGKILL loses at most the trials
in flight, which the next run redoes, and the primary key (task, recipe, seed) means no trial is stored twice.
WAL mode lets readers (`report`, `export`) read while a study runs. A folder belongs to one model, one data
set-up and one set of run settings (its identity); the grid (tasks, recipes, seeds) may grow between runs.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import ADDED_SETTINGS, TrainConfig
from ..errors import UserInputError
from ..files import to_json
from ..recipes import Recipe

__all__ = ["ADDED_RECIPE_FIELDS", "Store", "load_records"]

# Recipe fields added after studies were first stored, with the value trials stored before them ran with.
ADDED_RECIPE_FIELDS: dict[str, Any] = {"precision": "fp32", "group_by_length": False}

_SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS trials (
        task TEXT NOT NULL, recipe TEXT NOT NULL, seed INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('done', 'error')),
        record TEXT, error TEXT, finished REAL NOT NULL,
        PRIMARY KEY (task, recipe, seed));
"""


class Store:
    """The writer's connection to `<out>/study.sqlite`, opened by `claim`."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / "study.sqlite"
        self._con: sqlite3.Connection | None = None

    def claim(self, identity: dict[str, Any], recipes: dict[str, TrainConfig], tasks: list[str], *,
              new: bool = False) -> None:  # fmt: skip
        """Open the store for writing; refuse one written with another identity, or whose recipes now mean other
        settings, unless `new` (which keeps the old store as a backup and starts an empty one)."""
        if new and self.path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                old = Path(f"{self.path}{suffix}")
                if old.exists():
                    old.rename(self.out / f"study.{stamp}.sqlite{suffix}.bak")
        self.out.mkdir(parents=True, exist_ok=True)
        con = self._con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")  # readers (report, export) never block the writer
        con.execute("PRAGMA synchronous=FULL")  # a committed trial survives a power cut
        con.executescript(_SCHEMA)
        try:
            self._check_identity(identity)
            self._check_recipes(recipes)
        except UserInputError:
            self.close()
            raise
        # The order tasks and recipes were first given in (reports follow it); a grown grid appends.
        order = json.loads(self._meta("order") or '{"tasks": [], "recipes": []}')
        for key, names in (("tasks", tasks), ("recipes", list(recipes))):
            order[key] += [n for n in names if n not in order[key]]
        with con:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('order', ?)", (json.dumps(order),))

    def _meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError("the store is not open: call claim() first")
        return self._con

    def _check_identity(self, mine: dict[str, Any]) -> None:
        stored = self._meta("identity")
        theirs = json.loads(stored) if stored else {"settings": mine["settings"], "data": {}}
        theirs["settings"] = {**ADDED_SETTINGS, **theirs["settings"]}  # a store from before a setting existed
        differ = sorted(k for k in {**theirs["settings"], **mine["settings"]}
                        if theirs["settings"].get(k) != mine["settings"].get(k))  # fmt: skip
        # Tasks may be added or left out between runs; a task the store has must still have the same rows.
        changed = sorted(t for t in mine["data"].keys() & theirs["data"].keys()
                         if mine["data"][t] != theirs["data"][t])  # fmt: skip
        if differ or changed:
            what = f"settings {', '.join(differ)}" if differ else f"data for {', '.join(changed)} (the rows differ)"
            raise UserInputError(f"{self.out} holds a study with other {what}; use another folder, or --new to "
                                 "start over there (the old store is kept as a backup)")  # fmt: skip
        union = {"settings": mine["settings"], "data": {**theirs["data"], **mine["data"]}}
        if stored is None or union != json.loads(stored):
            with self._connection as con:
                con.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (to_json(union),))

    def _check_recipes(self, recipes: dict[str, TrainConfig]) -> None:
        """Refuse when a recipe name now expands to other settings than its stored trials ran with.

        The identity covers the shared settings; a recipe's own fields can change under the same name when a
        default changes between steadytune versions (`adam` became bf16 and length-grouped). Mixing the two would
        silently pool different set-ups under one label.
        """
        query = "SELECT record FROM trials WHERE status = 'done' AND recipe = ? LIMIT 1"
        for name, config in recipes.items():
            row = self._connection.execute(query, (name,)).fetchone()
            if row is None:
                continue
            stored = json.loads(row[0])["config"]
            mine = config.to_dict()
            differ = []
            for f in fields(Recipe):
                if f.name == "name" or (f.name == "precision" and mine["precision"] == "auto"):
                    continue  # auto is whatever the trial's hardware had; each record says which
                theirs = stored.get(f.name, ADDED_RECIPE_FIELDS.get(f.name, f.default))
                if json.loads(to_json(theirs)) != json.loads(to_json(mine[f.name])):
                    differ.append(f"{f.name} {theirs!r} → {mine[f.name]!r}")
            if differ:
                raise UserInputError(f"{self.out}: recipe {name!r} now means other settings than its stored "
                                     f"trials ({'; '.join(differ)}); use another folder, or --new to start over "
                                     "there")  # fmt: skip

    def done(self) -> set[tuple[str, str, int]]:
        """The keys of the trials stored as finished."""
        query = "SELECT task, recipe, seed FROM trials WHERE status = 'done'"
        return {(t, r, s) for t, r, s in self._connection.execute(query)}

    def add(self, key: tuple[str, str, int], outcome: dict[str, Any] | BaseException) -> None:
        """Store a trial's record, or its error (retried by the next run), in one transaction."""
        with self._connection as con:  # stored completely or not at all
            if isinstance(outcome, BaseException):
                con.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, 'error', NULL, ?, ?)",
                            (*key, error_line(outcome), time.time()))  # fmt: skip
            else:
                con.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, 'done', ?, NULL, ?)",
                            (*key, to_json(outcome, indent=None), time.time()))  # fmt: skip

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def error_line(error: BaseException) -> str:
    """An errored trial's message as stored: the exception's type and first line."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


def load_records(study_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished trial's record, ordered by task and recipe as the user listed them, then seed."""
    path = Path(study_dir) / "study.sqlite"
    if not path.is_file():
        raise UserInputError(f"no study in {study_dir} (no study.sqlite)")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT task, recipe, seed, record FROM trials WHERE status = 'done'").fetchall()
        order = json.loads((con.execute("SELECT value FROM meta WHERE key = 'order'").fetchone() or ["{}"])[0])
    finally:
        con.close()
    if not rows:
        raise UserInputError(f"the study in {study_dir} has no finished trials yet")
    rank = {key: {n: i for i, n in enumerate(order.get(key, []))} for key in ("tasks", "recipes")}
    rows.sort(key=lambda r: (rank["tasks"].get(r[0], math.inf), r[0], rank["recipes"].get(r[1], math.inf), r[1], r[2]))
    return [{"task": t, "recipe": r, "seed": s, **json.loads(rec)} for t, r, s, rec in rows]
