"""A study folder's store, `study.sqlite`: which study it holds (its identity), and one row per finished trial.

Only the driver writes it: each finished trial is one committed row, so a crash or SIGKILL loses at most the trials
in flight, which the next run redoes, and the primary key (task, recipe, seed) means no trial is stored twice.
WAL mode lets readers (`report`, `export`) read while a study runs. A folder belongs to one model, one data
set-up and one set of run settings (its identity); the grid (tasks, recipes, seeds) may grow between runs.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import ADDED_SETTINGS, TrainConfig
from ..errors import EnvironmentFailure, UserInputError, is_disk_full
from ..files import to_json
from ..recipes import Recipe

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer per folder is up to the user
    fcntl = None  # type: ignore[assignment]

__all__ = ["ADDED_RECIPE_FIELDS", "LOCK_FILE", "Store", "in_use", "load_records"]

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
# The tables and columns of a steadytune store: a database with others is another program's, and left alone.
_TABLES = {"meta": ["key", "value"], "trials": ["task", "recipe", "seed", "status", "record", "error", "finished"]}
# The writer's lock file in the study folder (`Store.lock`).
LOCK_FILE = "study.lock"


class Store:
    """The writer's connection to `<out>/study.sqlite`, opened by `claim`, which also takes the folder's writer lock
    (one writer per folder; `close` releases it, and the OS does when the process ends however it ends)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / "study.sqlite"
        self._con: sqlite3.Connection | None = None
        self._lock: int | None = None

    def claim(self, identity: dict[str, Any], recipes: dict[str, TrainConfig], tasks: list[str], *,
              new: bool = False) -> None:  # fmt: skip
        """Take the folder's writer lock, then open the store for writing; refuse a file that is not a steadytune
        store or is damaged (checked read-only first, so another program's database is never touched), one written
        with another identity, or whose recipes now mean other settings, unless `new` (which keeps the old store as
        a backup and starts an empty one)."""
        if self.out.exists() and not self.out.is_dir():
            raise UserInputError(f"{self.out} is a file, not a study folder")
        if os.path.lexists(self.path) and not self.path.is_file():
            raise UserInputError(f"{self.path} is not a file; move it away, or use another folder")
        if not new and _inspect(self.path, new="--new", records=True):
            # a file that is no usable store, or one written by another set-up, is refused before anything (even the
            # lock file) is touched: read-only here, and again under the lock below
            self._con = _connect_read_only(self.path)
            try:
                self._check_recipes(recipes)
                refusal = self._identity_refusal(identity)
            finally:
                self._con.close()
                self._con = None
            if refusal:
                raise UserInputError(refusal)
        with _writing(self.path):
            self.out.mkdir(parents=True, exist_ok=True)
        self.lock()
        try:
            with _writing(self.path):
                if new and self.path.exists():
                    stamp = time.strftime("%Y%m%dT%H%M%S")
                    for suffix in ("", "-wal", "-shm"):
                        old = Path(f"{self.path}{suffix}")
                        if old.exists():
                            old.rename(self.out / f"study.{stamp}.sqlite{suffix}.bak")
                _inspect(self.path, new="--new")  # again (what is there now, with no other writer at work)
                con = self._con = sqlite3.connect(self.path, timeout=60)
                con.execute("PRAGMA journal_mode=WAL")  # readers (report, export) never block the writer
                con.execute("PRAGMA synchronous=FULL")  # a committed trial survives a power cut
                con.executescript(_SCHEMA)
                self._check_recipes(recipes)  # reads only; then the identity, which may add to the stored one
                self._check_identity(identity)
                # The order tasks and recipes were first given in (reports follow it); a grown grid appends.
                order = json.loads(self._meta("order") or '{"tasks": [], "recipes": []}')
                for key, names in (("tasks", tasks), ("recipes", list(recipes))):
                    order[key] += [n for n in names if n not in order[key]]
                with con:
                    con.execute("INSERT OR REPLACE INTO meta VALUES ('order', ?)", (json.dumps(order),))
        except BaseException:
            self.close()
            raise

    def lock(self) -> None:
        """Take the folder's writer lock (`fcntl.flock` on study.lock), or refuse naming the process that holds it.

        The lock belongs to this process's open file: it goes when `close` is called or the process ends, even by
        SIGKILL, so a folder is never left locked. Readers (`load_records`: report, export) do not take it."""
        if self._lock is not None or fcntl is None:
            return
        path = self.out / LOCK_FILE
        with _writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserInputError(
                f"{self.out} is in use by another steadytune process ({holder}); wait for it to "
                "finish or stop it (report and export can read the folder meanwhile)"
            ) from None
        except OSError as e:  # a filesystem without locks
            os.close(fd)
            raise UserInputError(f"cannot lock {path} ({e.strerror or e}); put the study on a local disk") from None
        try:  # who holds it, for the message of the next one that asks; informative only
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        except OSError:
            pass
        self._lock = fd

    def _meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError("the store is not open: call claim() first")
        return self._con

    def _identity_refusal(self, mine: dict[str, Any]) -> str | None:
        """Why the stored identity refuses `mine` (another kind of folder, other settings, other rows), or None."""
        stored = self._meta("identity")
        theirs = json.loads(stored) if stored else {"settings": mine["settings"], "data": {}}
        kinds = ["a fit folder (steadytune fit)" if any(k.startswith("fit.") for k in x["settings"])
                 else "a study folder (steadytune study)" for x in (theirs, mine)]  # fmt: skip
        if kinds[0] != kinds[1]:
            return f"{self.out} is {kinds[0]}, not {kinds[1].split(' (')[0]}; use another folder"
        theirs["settings"] = {**ADDED_SETTINGS, **theirs["settings"]}  # a store from before a setting existed
        differ = sorted(k for k in {**theirs["settings"], **mine["settings"]}
                        if theirs["settings"].get(k) != mine["settings"].get(k))  # fmt: skip
        # Tasks may be added or left out between runs; a task the store has must still have the same rows.
        changed = sorted(t for t in mine["data"].keys() & theirs["data"].keys()
                         if mine["data"][t] != theirs["data"][t])  # fmt: skip
        if differ or changed:
            what = f"settings {', '.join(differ)}" if differ else f"data for {', '.join(changed)} (the rows differ)"
            noun = "fit" if kinds[0].startswith("a fit") else "study"
            return (f"{self.out} holds a {noun} with other {what}; use another folder, or --new to start over there "
                    "(the old store is kept as a backup)")  # fmt: skip
        return None

    def _check_identity(self, mine: dict[str, Any]) -> None:
        refusal = self._identity_refusal(mine)
        if refusal:
            raise UserInputError(refusal)
        stored = self._meta("identity")
        theirs = json.loads(stored) if stored else {"settings": mine["settings"], "data": {}}
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
            stored = _record(self.path, (None, name, None), row[0], new="--new")["config"]
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

    def records(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        """The finished trials' records by key."""
        query = "SELECT task, recipe, seed, record FROM trials WHERE status = 'done'"
        return {(t, r, s): json.loads(rec) for t, r, s, rec in self._connection.execute(query)}

    def add(self, key: tuple[str, str, int], outcome: dict[str, Any] | BaseException) -> None:
        """Store a trial's record, or its error (retried by the next run), in one transaction. A full disk (or any
        other failure to write) stops the study with `EnvironmentFailure`: the trials committed before are intact."""
        try:
            with self._connection as con:  # stored completely or not at all
                if isinstance(outcome, BaseException):
                    con.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, 'error', NULL, ?, ?)",
                                (*key, error_line(outcome), time.time()))  # fmt: skip
                else:
                    con.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, 'done', ?, NULL, ?)",
                                (*key, to_json(outcome, indent=None), time.time()))  # fmt: skip
        except (sqlite3.Error, OSError) as e:
            why = "the disk is full" if is_disk_full(e) else f"cannot write it ({e})"
            raise EnvironmentFailure(f"{self.path}: {why}; the trials stored before this one are intact: fix that "
                                     "and run the same command again to continue") from None  # fmt: skip

    def close(self) -> None:
        """Close the connection and release the folder's writer lock."""
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None


def error_line(error: BaseException) -> str:
    """An errored trial's message as stored: the exception's type and first line."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


def load_records(study_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished trial's record, ordered by task and recipe as the user listed them, then seed.

    Read-only, without the writer lock: a report or export reads a study while it runs."""
    path = Path(study_dir) / "study.sqlite"
    if os.path.lexists(path) and not path.is_file():
        raise UserInputError(f"{path} is not a file, so no study store")
    if not path.is_file():
        raise UserInputError(f"no study in {study_dir} (no study.sqlite)")
    if not _inspect(path, new="the study's --new"):
        raise UserInputError(f"the study in {study_dir} has no finished trials yet (its store is empty)")
    try:
        con = _connect_read_only(path)
        try:
            rows = con.execute("SELECT task, recipe, seed, record FROM trials WHERE status = 'done'").fetchall()
            order_row = con.execute("SELECT value FROM meta WHERE key = 'order'").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise _unusable(path, str(e), new="the study's --new") from None
    if not rows:
        raise UserInputError(f"the study in {study_dir} has no finished trials yet")
    try:
        order = json.loads(order_row[0]) if order_row else {}
        rank = {key: {n: i for i, n in enumerate(order.get(key, []))} for key in ("tasks", "recipes")}
    except (TypeError, ValueError, AttributeError):
        raise _unusable(path, "its meta table holds no valid order", new="the study's --new") from None
    rows.sort(key=lambda r: (rank["tasks"].get(r[0], math.inf), str(r[0]), rank["recipes"].get(r[1], math.inf),
                             str(r[1]), r[2] if isinstance(r[2], int) else -1))  # fmt: skip
    records = [{"task": t, "recipe": r, "seed": s, **_record(path, (t, r, s), rec, new="the study's --new")}
               for t, r, s, rec in rows]  # fmt: skip
    return [r for r in records if not r.get("partial")]  # a fit's stages that stopped at a check are no trials


def in_use(out: str | Path) -> str | None:
    """Who holds the writer lock of the study folder `out` ("pid N on HOST"), or None when nobody does. A probe:
    it takes and drops a shared lock, and creates nothing."""
    path = Path(out) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return None


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not said which"


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Failures to write the store's folder as one line: a full disk is the environment's (exit 3), the rest
    (read-only, no permission, a damaged database) the user's to fix."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        if is_disk_full(e):
            raise EnvironmentFailure(f"{path}: the disk is full; free some space and run the same command again "
                                     "(what is stored is intact)") from None  # fmt: skip
        if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
            raise _unusable(path, str(e), new="--new") from None
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UserInputError(f"cannot write {getattr(e, 'filename', None) or path}: {reason}") from None


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the store or leave files beside it. Without a write-ahead log beside it the
    file alone is the whole database, read as immutable (SQLite then makes no -wal/-shm files, and a writer that
    starts meanwhile writes to its log, not to this file); with a log, read-only through it, or, where SQLite cannot
    make the shared-memory file (a read-only filesystem, where no writer can be at work), immutable."""
    uri = path.resolve().as_uri()
    if not os.path.lexists(f"{path}-wal"):
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    con = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        con.close()
        con = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    return con


def _unusable(path: Path, why: str, *, new: str) -> UserInputError:
    """The error for a store that cannot be used, with the ways back."""
    backups = sorted(p.name for p in path.parent.glob("study.*.sqlite.bak"))
    restore = f"copy a backup over it ({', '.join(backups[-2:])})" if backups else "restore a copy of it"
    return UserInputError(f"{path} is not a usable steadytune study store ({why}): {restore}, or start over with "
                          f"{new} (which keeps this file beside the new store)")  # fmt: skip


def _inspect(path: Path, *, new: str, records: bool = False) -> bool:
    """Read-only, before anything writes: True when `path` is a steadytune store SQLite reads whole (with
    `records`, every finished trial's record parsed and checked too), False when it is absent or empty (zero bytes
    or no tables: SQLite's empty database); else a `UserInputError` saying what it is and how to recover. Another
    program's database is refused untouched."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        with path.open("rb") as f:
            magic = f.read(16)
    except OSError as e:
        raise UserInputError(f"cannot read {path}: {e.strerror or e}") from None
    if magic != b"SQLite format 3\x00":
        raise _unusable(path, "not an SQLite database: another program's file, or a store damaged at its start",
                        new=new)  # fmt: skip
    try:
        con = _connect_read_only(path)
        try:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            tables = {n: [c[1] for c in con.execute(f"PRAGMA table_info('{n}')")] for n in names}
            if tables and tables != _TABLES:
                raise UserInputError(f"{path} is another program's database, not a steadytune study store (tables: "
                                     f"{', '.join(sorted(tables))}); use another folder")  # fmt: skip
            check = con.execute("PRAGMA quick_check").fetchall() if tables else [("ok",)]
            if tables and records and check == [("ok",)]:
                for task, recipe, seed, text in con.execute(
                    "SELECT task, recipe, seed, record FROM trials WHERE status = 'done'"
                ):
                    _record(path, (task, recipe, seed), text, new=new)
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise _unusable(path, str(e), new=new) from None
    if check != [("ok",)]:
        raise _unusable(path, f"damaged: {str(check[0][0])[:120]}", new=new)
    return bool(tables)


# What a stored record must hold for the report, the export and resuming: key → the type of its value.
_RECORD_KEYS: dict[str, type | tuple[type, ...]] = {
    "config": dict, "data": dict, "metric": str, "best": dict, "last": dict, "diverged": bool, "failed": bool,
    "steps": int, "timings": dict, "curve": list, "majority_baseline": (int, float),
}  # fmt: skip
# A stage of a run that stopped at a check (`steadytune.fit`; `trainer.train_stage`'s partial record).
_PARTIAL_KEYS: dict[str, type | tuple[type, ...]] = {
    "config": dict, "steps": int, "total_steps": int, "evals": list, "curve": list, "diverged": bool,
}  # fmt: skip


def _record(path: Path, key: tuple, text: Any, *, new: str) -> dict[str, Any]:
    """A stored record, parsed and checked to be one steadytune wrote (else the store is damaged or foreign)."""
    try:
        record = json.loads(text)
    except (TypeError, ValueError):
        record = None
    keys = _PARTIAL_KEYS if isinstance(record, dict) and record.get("partial") is True else _RECORD_KEYS
    problem = "no JSON record" if not isinstance(record, dict) else next(
        (f"no {k!r}" for k, tp in keys.items() if not isinstance(record.get(k), tp)), None)  # fmt: skip
    if problem is None and keys is _RECORD_KEYS and not (
        isinstance(record["data"].get("sizes"), dict) and "test" in record["data"]["sizes"]
        and "wall_s" in record["timings"] and "step" in record["best"]
    ):  # fmt: skip
        problem = "an incomplete record"
    if problem is not None:
        task, recipe, seed = key
        trial = f"trial {task} {recipe} seed {seed}" if task is not None else f"a trial of recipe {recipe}"
        raise _unusable(path, f"{trial} holds {problem}", new=new)
    return record
