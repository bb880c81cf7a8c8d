"""Multi-seed studies: every (task, recipe, seed) trial of a grid, stored in SQLite, resumable, then summarised.

    study = Study("studies/x", tasks=["rte", "mrpc"], recipes=["bertadam", "adam", "adam+reinit:2"], seeds=20,
                  model="all-MiniLM-L6-v2", glue_dir="../shared/data/glue", train_size=1000)
    study.run(workers=1)             # skips finished trials; a crashed or killed run simply continues
    study.summary(); study.report()  # statistics (steadytune.stats) and report.md/.html (steadytune.report)

Only the driver writes the store (`<out>/study.sqlite`): each finished trial is one committed row, so a crash or
SIGKILL loses at most the trials in flight, which the next run redoes, and the primary key (task, recipe, seed)
means no trial is stored twice. A study folder belongs to one model, one data set-up and one set of run settings;
the grid (tasks, recipes, seeds) may grow between runs. Trials run behind `Executor`, a one-method interface:
`LocalExecutor` runs them in this process or in a local process pool; a cluster executor can do the same.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from .data import TaskData, load_data
from .errors import UserInputError
from .files import atomic_write_bytes, atomic_write_text, to_json
from .recipes import Recipe
from .trainer import TrainConfig, train

__all__ = ["Executor", "LocalExecutor", "Study", "Trial", "default_parallelism", "parse_recipes", "parse_seeds"]

# Fields of TrainConfig that the grid sets per trial, or that do not change what a trial computes.
_PER_TRIAL = {"task", "recipe", "seed", "init_seed"}
# Recipe fields added after studies were first stored, with the value trials stored before them ran with.
_ADDED_RECIPE_FIELDS: dict[str, Any] = {"precision": "fp32", "group_by_length": False}
_NOT_IDENTITY = {"glue_dir", "train_file", "validation_file", "test_file", "device", "save_model"}


@dataclass(frozen=True)
class Trial:
    """One cell of the grid: the config to run, and where its record goes."""

    task: str
    recipe: str
    seed: int
    config: dict[str, Any]

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


class Executor(Protocol):
    """Runs trials and reports each outcome (a record dict, or the exception) to `done` as soon as it has it."""

    def run(self, trials: list[Trial], done: Callable[[Trial, dict[str, Any] | BaseException], None]) -> None: ...


def run_trial(trial: Trial, data: TaskData | None = None) -> dict[str, Any]:
    """One trial, start to finish (also what a pool worker or a cluster task calls); `data` when already loaded."""
    config = TrainConfig.from_dict(trial.config)
    result = train(config, data=data if data is not None else trial_data(trial))
    return result.to_dict()


def trial_data(trial: Trial) -> TaskData:
    """The trial's data, loaded once per process (the driver has it already: `Study` loads it first)."""
    return _cached_data(to_json(_data_kwargs(TrainConfig.from_dict(trial.config))))


def _data_kwargs(config: TrainConfig) -> dict[str, Any]:
    names = ("task", "glue_dir", "train_file", "validation_file", "test_file", "text_columns", "label_column",
             "task_type", "train_size", "data_seed", "split_seed")  # fmt: skip
    return {n: getattr(config, n) for n in names}


@lru_cache(maxsize=16)
def _cached_data(kwargs_json: str) -> TaskData:
    # A worker loads each task's data once; tokenization is cached too (steadytune.data.encode).
    return load_data(**json.loads(kwargs_json))


def _init_worker(threads: int, parent: int) -> None:
    import threading

    import torch

    torch.set_num_threads(threads)

    def exit_with_parent() -> None:
        # A driver killed by SIGTERM/SIGKILL cannot shut its pool down; without this its workers would train on,
        # orphaned, for trials nobody will store. Poll once a second (cheap) rather than rely on Linux's prctl.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True, name="steadytune-parent-watch").start()


def default_parallelism(model: str, *, device: str = "auto", cores: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) for a local study of `model`: what `--workers`/`--threads` default to.

    On a GPU: one worker with every core (trials in one process share the device without contention). On CPU:
    one torch thread per ~50M parameters and as many such workers as cores and memory allow. Measured on 2 cores
    (`benchmarks/parallelism.py`, RTE-1k trials, bf16): all-MiniLM-L6-v2 (22M) runs 359 trials/h as 2 workers x 1
    thread against 316 as 1 x 2 (small matrices gain little from a second thread, a second process gains ~all);
    a BERT-base-sized model (110M) runs 86 trials/h as 1 x 2 against 73 as 2 x 1 (its matrices use both threads
    well, and two copies fight over memory bandwidth). Memory caps the workers: 24 bytes per parameter are
    weights, gradients, Adam's two moments, the best checkpoint and the cached pre-trained copy; activations and
    allocator slack double that (measured peak resident size: a MiniLM worker 2.6 GB, a BERT-base-sized one
    7.5 GB after four trials), plus ~2 GB for the libraries.
    """
    from .models import resolve_device

    cores = cores or os.cpu_count() or 1
    if resolve_device(device).type != "cpu":
        return 1, cores
    params = _parameter_count(model)
    threads = min(cores, max(1, round(params / _PARAMS_PER_THREAD)))
    per_worker = 48 * params + 2 * 2**30
    fits = max(1, int(0.8 * _physical_memory() // per_worker))  # 0.8: leave room for the OS and the driver
    workers = max(1, min(cores // threads, fits))
    return workers, max(threads, cores // workers)


# One CPU thread per this many parameters: between MiniLM (22M: 1 thread wins) and BERT-base (110M: 2 threads win).
_PARAMS_PER_THREAD = 50_000_000


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a modest 8 GB
        return 8 * 2**30


def _parameter_count(model: str) -> int:
    """Parameters of `model`'s encoder, from its config alone (built on the meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModel

    from .models import quiet_transformers, resolve_model

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(resolve_model(model))
        with torch.device("meta"):
            return sum(p.numel() for p in AutoModel.from_config(config).parameters())
    except Exception:  # unknown here (e.g. a hub id offline): the trial will report it; size as BERT-large
        return 335_000_000


class LocalExecutor:
    """Trials in this process (`workers=1`) or in a pool of `workers` processes with `threads` torch threads each.

    `workers=None` picks `default_parallelism` for the study's model when the trials arrive.
    """

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise UserInputError(f"workers must be at least 1, got {workers}")
        if threads is not None and threads < 1:
            raise UserInputError(f"threads must be at least 1, got {threads}")
        self.workers, self.threads = workers, threads

    def _split(self, trials: list[Trial]) -> tuple[int, int]:
        cores = os.cpu_count() or 1
        if self.workers is None:
            config = trials[0].config if trials else {}
            workers, threads = default_parallelism(config.get("model", ""), device=config.get("device", "auto"))
            workers = max(1, min(workers, len(trials)))
            return workers, self.threads or threads
        # workers × threads ≤ cores: more would only make the processes fight over the same cores.
        return self.workers, self.threads or max(1, cores // self.workers)

    def run(self, trials: list[Trial], done: Callable[[Trial, dict[str, Any] | BaseException], None]) -> None:
        workers, threads = self._split(trials)
        if workers == 1:
            import torch

            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for trial in trials:
                    try:
                        outcome: dict[str, Any] | BaseException = run_trial(trial)
                    except Exception as e:  # recorded as an errored trial, retried on the next run
                        outcome = e
                    done(trial, outcome)
            finally:
                torch.set_num_threads(old)
            return
        import multiprocessing

        # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads, os.getpid())) as pool:  # fmt: skip
            pending = {pool.submit(run_trial, t): t for t in trials}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        trial = pending.pop(future)
                        error = future.exception()
                        done(trial, error if error is not None else future.result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise


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
        unknown = config.keys() - {f.name for f in fields(TrainConfig)} | (config.keys() & _PER_TRIAL)
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
        # Run settings shared by all trials; the recipe fields come from each trial's recipe.
        recipe_fields = {f.name for f in fields(Recipe)} | {"recipe"}
        self.base = {k: v for k, v in TrainConfig(**config).to_dict().items() if k not in recipe_fields}
        self.new = new
        # Load every task's data now: bad data is one clear error before anything is written or run.
        self.data = {task: self._load(task) for task in self.tasks}

    def _load(self, task: str | None) -> TaskData:
        return _cached_data(to_json(_data_kwargs(TrainConfig.from_dict({**self.base, "task": task}))))

    # --- identity and store -------------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What must match for trials to belong to the same study: model, run settings, and the data's rows."""
        shared = {k: v for k, v in self.base.items() if k not in _NOT_IDENTITY | _PER_TRIAL}
        data = {d.name: d.summary()["fingerprints"] for d in self.data.values()}
        return json.loads(to_json({"settings": shared, "data": data}))

    @property
    def db_path(self) -> Path:
        return self.out / "study.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.out.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")  # readers (report, export) never block the writer
        con.execute("PRAGMA synchronous=FULL")  # a committed trial survives a power cut
        con.executescript("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS trials (
                task TEXT NOT NULL, recipe TEXT NOT NULL, seed INTEGER NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('done', 'error')),
                record TEXT, error TEXT, finished REAL NOT NULL,
                PRIMARY KEY (task, recipe, seed));
        """)
        return con

    def _claim_folder(self) -> sqlite3.Connection:
        """Open the store; refuse one written with another model/data/settings unless `new`."""
        if self.new and self.db_path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                old = Path(f"{self.db_path}{suffix}")
                if old.exists():
                    old.rename(self.out / f"study.{stamp}.sqlite{suffix}.bak")
        con = self._connect()
        mine = self.identity()
        row = con.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        theirs = json.loads(row[0]) if row else {"settings": mine["settings"], "data": {}}
        differ = sorted(k for k in {**theirs["settings"], **mine["settings"]}
                        if theirs["settings"].get(k) != mine["settings"].get(k))  # fmt: skip
        # Tasks may be added or left out between runs; a task the store has must still have the same rows.
        changed = sorted(
            t for t in mine["data"].keys() & theirs["data"].keys() if mine["data"][t] != theirs["data"][t]
        )
        if differ or changed:
            con.close()
            what = f"settings {', '.join(differ)}" if differ else f"data for {', '.join(changed)} (the rows differ)"
            raise UserInputError(f"{self.out} holds a study with other {what}; use another folder, or --new to "
                                 "start over there (the old store is kept as a backup)")  # fmt: skip
        union = {"settings": mine["settings"], "data": {**theirs["data"], **mine["data"]}}
        if union != theirs or row is None:
            with con:
                con.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (to_json(union),))
        self._check_recipes(con)
        # The order tasks and recipes were first given in (reports follow it); a grown grid appends.
        row = con.execute("SELECT value FROM meta WHERE key = 'order'").fetchone()
        order = json.loads(row[0]) if row else {"tasks": [], "recipes": []}
        for key, names in (("tasks", [d.name for d in self.data.values()]), ("recipes", self.recipes)):
            order[key] += [n for n in names if n not in order[key]]
        with con:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('order', ?)", (json.dumps(order),))
        return con

    def _check_recipes(self, con: sqlite3.Connection) -> None:
        """Refuse when a recipe name now expands to other settings than its stored trials ran with.

        The identity covers the shared settings; a recipe's own fields can change under the same name when a
        default changes between steadytune versions (`adam` became bf16 and length-grouped). Mixing the two would
        silently pool different set-ups under one label.
        """
        query = "SELECT record FROM trials WHERE status = 'done' AND recipe = ? LIMIT 1"
        for recipe in self.recipes:
            row = con.execute(query, (recipe,)).fetchone()
            if row is None:
                continue
            stored = json.loads(row[0])["config"]
            mine = TrainConfig.from_dict({**self.base, "recipe": recipe}).to_dict()
            differ = []
            for f in fields(Recipe):
                if f.name == "name" or (f.name == "precision" and mine["precision"] == "auto"):
                    continue  # auto is whatever the trial's hardware had; each record says which
                theirs = stored.get(f.name, _ADDED_RECIPE_FIELDS.get(f.name, f.default))
                if json.loads(to_json(theirs)) != json.loads(to_json(mine[f.name])):
                    differ.append(f"{f.name} {theirs!r} → {mine[f.name]!r}")
            if differ:
                con.close()
                raise UserInputError(f"{self.out}: recipe {recipe!r} now means other settings than its stored "
                                     f"trials ({'; '.join(differ)}); use another folder, or --new to start over "
                                     "there")  # fmt: skip

    # --- running ------------------------------------------------------------------------------------------------

    def trials(self) -> list[Trial]:
        """The grid, seed-major: an interrupted study has about as many seeds of every recipe."""
        out = []
        for seed in self.seeds:
            for task, data in self.data.items():
                for recipe in self.recipes:
                    config = {**self.base, "task": task, "seed": seed, "recipe": recipe}
                    config = TrainConfig.from_dict(config).to_dict()  # the recipe expanded into its fields
                    out.append(Trial(data.name, recipe, seed, config))
        return out

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
        con = self._claim_folder()
        try:
            query = "SELECT task, recipe, seed FROM trials WHERE status = 'done'"
            stored = {(t, r, s) for t, r, s in con.execute(query)}
            grid = self.trials()
            todo = [t for t in grid if t.key not in stored]
            counts = {"total": len(grid), "skipped": len(grid) - len(todo), "ran": 0, "errors": 0}
            bar = tqdm(total=len(grid), initial=counts["skipped"], desc="trials", unit="trial", disable=not progress,
                       dynamic_ncols=True, smoothing=0)  # fmt: skip

            def done(trial: Trial, outcome: dict[str, Any] | BaseException) -> None:
                if isinstance(outcome, BaseException):
                    counts["errors"] += 1
                    message = f"{type(outcome).__name__}: {outcome}".splitlines()[0][:500]
                    with con:
                        con.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, 'error', NULL, ?, ?)",
                                    (*trial.key, message, time.time()))  # fmt: skip
                    line = f"{trial.task} {trial.recipe} seed {trial.seed}: ERROR {message}"
                else:
                    counts["ran"] += 1
                    with con:  # one transaction per trial: it is stored completely or not at all
                        con.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, 'done', ?, NULL, ?)",
                                    (*trial.key, to_json(outcome, indent=None), time.time()))  # fmt: skip
                    line = _trial_line(trial, outcome)
                bar.update()
                if progress:
                    bar.write(line)

            executor.run(todo, done)
            bar.close()
        finally:
            con.close()
        return counts

    # --- results ------------------------------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        return load_records(self.out)

    def summary(self) -> list[dict[str, Any]]:
        from .stats import summarize

        return summarize(trial_rows(self.records()))

    def report(self, *, title: str | None = None) -> tuple[Path, Path]:
        return write_study_report(self.out, title=title)


def _trial_line(trial: Trial, record: dict[str, Any]) -> str:
    def fmt(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.4f}"

    m = record["metric"]
    best = (record["best"].get("test") or {}).get(m)
    last = (record["last"].get("test") or {}).get(m)
    flags = " FAILED" if record["failed"] else ""
    flags += " DIVERGED" if record["diverged"] else ""
    return (f"{trial.task} {trial.recipe} seed {trial.seed}: test {m} {fmt(best)} best / {fmt(last)} last"
            f"{flags} ({record['timings']['wall_s']:.0f} s)")  # fmt: skip


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


def trial_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per trial: what the statistics, the report and `steadytune export` use."""
    rows = []
    for r in records:
        m = r["metric"]
        best_test, last_test = r["best"].get("test") or {}, r["last"].get("test") or {}
        rows.append({
            "task": r["task"], "recipe": r["recipe"], "seed": r["seed"], "metric": m,
            "majority_baseline": r["majority_baseline"], "test_best": best_test.get(m), "test_last": last_test.get(m),
            "validation_best": (r["best"].get("validation") or {}).get(m), "failed": r["failed"],
            "diverged": r["diverged"], "steps": r["steps"], "best_step": r["best"]["step"],
            "wall_s": r["timings"]["wall_s"],
            **{f"config.{k}": v for k, v in r["config"].items() if not isinstance(v, (list, dict, tuple))},
        })  # fmt: skip
    return rows


def _versions(records: list[dict[str, Any]]) -> str:
    """The steadytune version of the trials, e.g. "0.3.0"; a study resumed under another names each with a count."""
    counts: dict[str, int] = {}
    for r in records:
        version = r.get("versions", {}).get("steadytune", "?")
        counts[version] = counts.get(version, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{v} ({n} trials)" for v, n in sorted(counts.items()))


def write_study_report(study_dir: str | Path, *, title: str | None = None) -> tuple[Path, Path]:
    """report.md and report.html (figures embedded) from what the study folder holds now."""
    from .report import write_report
    from .stats import summarize

    records = load_records(study_dir)
    rows = trial_rows(records)
    curves = {(r["task"], r["recipe"], r["seed"]): r["curve"] for r in records}
    model = records[0]["config"]["model"]
    title = title or f"steadytune study: {model}, {len(rows)} trials"
    notes = [f"model {model}; train size {records[0]['config'].get('train_size') or 'full'}; "
             f"steadytune {_versions(records)}"]  # fmt: skip
    return write_report(Path(study_dir), rows, curves, summarize(rows), title=title, notes=notes)


def export_rows(study_dir: str | Path, path: str | Path, *, format: str = "csv") -> int:
    """Write every trial's flat row to a CSV or Parquet file (atomically); returns the number of rows."""
    import csv
    import io

    rows = trial_rows(load_records(study_dir))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())
    elif format == "parquet":
        import pyarrow as pa  # a dependency of datasets
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
    else:
        raise UserInputError(f"unknown export format {format!r}; use csv or parquet")
    return len(rows)
