"""A study's results: one flat row per trial (for statistics, the report and export), the report, the export."""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import ADDED_SETTINGS, STUDY_SKIPS, TrainConfig
from ..errors import UserInputError
from ..files import atomic_write_bytes, to_json, write_stdout
from ..metrics import constant_baseline, failure
from ..stats import ordered_unique
from .grid import Trial, config_data
from .store import _connect_read_only, load_records

__all__ = ["STUDY_DIR", "export_rows", "study_command", "study_notes", "trial_line", "trial_rows",
           "write_study_report"]  # fmt: skip

# The study folder in the command a report shows: a report depends on what is stored, not on where the folder is.
STUDY_DIR = "STUDY_DIR"


def trial_line(trial: Trial, record: dict[str, Any]) -> str:
    """The line a study prints when a trial finishes."""

    def fmt(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.4f}"

    m = record["metric"]
    best = (record["best"].get("test") or {}).get(m)
    last = (record["last"].get("test") or {}).get(m)
    flags = " FAILED" if record["failed"] else ""
    flags += " DIVERGED" if record["diverged"] else ""
    return (f"{trial.task} {trial.recipe} seed {trial.seed}: test {m} {fmt(best)} best / {fmt(last)} last"
            f"{flags} ({record['timings']['wall_s']:.0f} s)")  # fmt: skip


def trial_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per trial: what the statistics, the report and `steadytune export` use.

    `failed` is decided here, under the current rule (`steadytune.metrics.failure`), not read from the record, so
    a store written under an older rule is re-scored when reported: from the record's own baseline where it has
    one, else from its data, reloaded and checked against the record's fingerprints. A record whose data cannot be
    found keeps the verdict it was stored with (`rule` says which).
    """
    baselines = _Baselines()
    rows = []
    for r in records:
        m = r["metric"]
        best_test, last_test = r["best"].get("test") or {}, r["last"].get("test") or {}
        baseline = r.get("baseline") or baselines.of(r)
        if baseline:
            why = failure(last_test.get(m), baseline, mse=last_test.get("mse"), diverged=r["diverged"])
            rule = "current"
        else:
            why = ("diverged" if r["diverged"] else "constant") if r["failed"] else None
            rule = "stored"
        rows.append({
            "task": r["task"], "recipe": r["recipe"], "seed": r["seed"], "metric": m,
            "majority_baseline": r["majority_baseline"],
            "baseline": baseline["score"] if baseline else r["majority_baseline"],
            "baseline_predictor": baseline["predictor"] if baseline else "majority class",
            "test_best": best_test.get(m), "test_last": last_test.get(m), "test_mse_last": last_test.get("mse"),
            "baseline_mse": baseline.get("mse") if baseline else None,
            "validation_best": (r["best"].get("validation") or {}).get(m),
            "validation_last": (r["last"].get("validation") or {}).get(m),
            "failed": why is not None, "failure": why, "rule": rule, "stored_failed": r["failed"],
            "learned_last": _learned(r, last_test, baseline),
            "diverged": r["diverged"], "steps": r["steps"], "best_step": r["best"]["step"],
            "test_size": r["data"]["sizes"]["test"], "wall_s": r["timings"]["wall_s"],
            **{f"config.{k}": v for k, v in r["config"].items() if not isinstance(v, (list, dict, tuple))},
        })  # fmt: skip
    return rows


def _learned(record: dict[str, Any], scores: dict[str, float], baseline: dict[str, Any] | None) -> bool | None:
    """`steadytune.verdict.learned` (fit's test of learning) on a run's last-checkpoint test scores; None where it
    cannot run: no baseline, or a multi-class Matthews correlation (the record lacks the majority-class share). A
    binary F1 task's positives are read off its failure line, always-positive's F1 2P / (P + n)."""
    from ..verdict import learned

    if not baseline or not scores:
        return None if not baseline else False
    names = record["data"].get("label_names")
    num_labels, n = len(names) if names else 1, record["data"]["sizes"]["test"]
    if baseline["metric"] == "matthews_correlation" and num_labels > 2:
        return None
    f1 = baseline["score"] if baseline["metric"] == "f1" else 0.0
    positives = round(f1 * n / (2.0 - f1)) if f1 > 0 else None
    return learned(scores, baseline, n=n, num_labels=num_labels, positives=positives).yes


class _Baselines:
    """Constant-predictor baselines of records stored before records held one, from their data (each data
    set-up loaded once)."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Any] | None] = {}

    def of(self, record: dict[str, Any]) -> dict[str, Any] | None:
        key = to_json(record["data"]["fingerprints"]) + record["metric"]
        if key not in self._cache:
            self._cache[key] = self._load(record)
        return self._cache[key]

    @staticmethod
    def _load(record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            data = config_data(TrainConfig.from_dict(record["config"]))
        except (UserInputError, OSError, ValueError, TypeError, KeyError):  # moved, deleted, or never here
            return None
        if data.summary()["fingerprints"] != record["data"]["fingerprints"]:
            return None  # other rows than the trial ran on: judging it by them would be wrong
        return constant_baseline(data.test.labels, num_labels=data.num_labels, metric=record["metric"],
                                 train_labels=data.train.labels, label_names=data.label_names).to_dict()  # fmt: skip


def _versions(records: list[dict[str, Any]]) -> str:
    """The steadytune version of the trials, e.g. "0.3.0"; a study resumed under another names each with a count."""
    counts: dict[str, int] = {}
    for r in records:
        version = r.get("versions", {}).get("steadytune", "?")
        counts[version] = counts.get(version, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{v} ({n} trials)" for v, n in sorted(counts.items()))


def _identity_settings(study_dir: Path) -> dict[str, Any]:
    """The shared settings the study was claimed with (`Store.claim`'s identity), as the user gave them."""
    con = _connect_read_only(study_dir / "study.sqlite")  # leaves no -wal/-shm files behind
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
    finally:
        con.close()
    return {**ADDED_SETTINGS, **(json.loads(row[0])["settings"] if row else {})}


def _seeds(seeds: list[int]) -> str:
    """--seeds as a count where the seeds are 0..N-1, else as a list."""
    return str(len(seeds)) if seeds == list(range(len(seeds))) else ",".join(map(str, seeds))


def study_command(records: list[dict[str, Any]], settings: dict[str, Any], out: str | Path = STUDY_DIR) -> str:
    """The `steadytune study` command that runs (or resumes) these records' grid: tasks, recipes, seeds, the data
    paths, the model, and every shared setting that differs from its default; ``--out`` is ``out`` (the report
    writes the placeholder `STUDY_DIR`: a report depends on what is stored, not on where the folder is)."""
    config = records[0]["config"]
    args = ["steadytune", "study"]
    tasks = ordered_unique(r["config"].get("task") for r in records)
    if tasks != [None]:
        args += ["--tasks", ",".join(t for t in tasks if t is not None)]
    args += ["--recipes", ",".join(ordered_unique(r["recipe"] for r in records))]
    args += ["--seeds", _seeds(sorted({r["seed"] for r in records}))]
    args += ["--model", str(settings.get("model", config["model"]))]
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name not in STUDY_SKIPS | {"model", "device"}}
    paths = ("glue_dir", "train_file", "validation_file", "test_file", "dataset")
    given = {**{k: config.get(k) for k in paths}, **settings}
    for name, default in defaults.items():
        value = given.get(name, default)
        if isinstance(value, list):
            value = tuple(value)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            args += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return shlex.join([*args, "--out", str(out)])


def _counts(values: list[Any]) -> str:
    """The value when all trials agree (e.g. "bf16"), else each value with its number of trials."""
    counts = {str(v): values.count(v) for v in ordered_unique(values)}
    return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{v} ({n} trials)" for v, n in counts.items())


def study_notes(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The report's lines on what ran: model, data, run settings, versions, and how the failures were judged."""
    config = records[0]["config"]
    grid = [len(ordered_unique(r[key] for r in records)) for key in ("task", "recipe", "seed")]
    data = f"GLUE from {config['glue_dir']}" if config.get("glue_dir") else f"train file {config.get('train_file')}"
    data = f"dataset {config['dataset']}" if config.get("dataset") else data
    missing = {"cpu": "not recorded"}  # recorded since 0.8.0
    versions = {lib: _counts([r.get("versions", {}).get(lib, missing.get(lib, "?")) for r in records])
                for lib in ("torch", "transformers", "python", "cpu")}  # fmt: skip
    notes = [
        f"model {config['model']}; {data}; train size {config.get('train_size') or 'full'} (data_seed "
        f"{config.get('data_seed')}, split_seed {config.get('split_seed')}); max_length {config.get('max_length')}; "
        f"{config.get('num_evals')} validation evaluations per run",
        f"precision {_counts([r['config'].get('precision') for r in records])}; device "
        f"{_counts([r['config'].get('device') for r in records])}; CPU fast path "
        f"{_counts([r['config'].get('fast_path', 'not recorded') for r in records])}; compact embedding "
        f"{_counts([r['config'].get('compact_embedding', 'not recorded') for r in records])}",
        f"steadytune {_versions(records)}; " + "; ".join(f"{lib} {v}" for lib, v in versions.items()),
        f"{len(records)} trials stored of the {grid[0]} × {grid[1]} × {grid[2]} = {math.prod(grid)} of the grid "
        "(tasks × recipes × seeds)",
    ]
    verdicts = _verdicts_note(records, rows)
    return notes + ([verdicts] if verdicts else [])


def _verdicts_note(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str | None:
    """What re-scoring the failure verdicts under the current rule (`trial_rows`) did, where it could matter: some
    records were stored by another steadytune version (an older rule), kept their stored verdict (data not found),
    or changed verdict. None for a study whose every record this version wrote and re-scored to the same verdict:
    a line saying that "6 of 6 records were re-scored, 0 differ" tells its reader nothing."""
    from .._version import __version__

    kept = sum(row["rule"] == "stored" for row in rows)
    changed = [row for row in rows if row["rule"] == "current" and row["failed"] != row["stored_failed"]]
    older = sum(r.get("versions", {}).get("steadytune") != __version__ for r in records)
    if not (kept or changed or older):
        return None
    newly = sum(row["failed"] for row in changed)
    parts = [f"{len(rows) - kept} of {len(rows)} records re-scored under the current rule "
             "(steadytune.metrics.failure, from each record's baseline or its data)"]  # fmt: skip
    if older:
        parts[0] += f", {older} of them stored by another steadytune version than {__version__}"
    if kept:
        parts.append(f"{kept} kept the verdict they were stored with (data not found)")
    differ = (f"{len(changed)} verdicts differ from the stored ones ({newly} now failed, {len(changed) - newly} no "
              "longer failed)")  # fmt: skip
    parts.append(differ if changed else "no verdict differs from the stored one")
    return "Failure verdicts: " + "; ".join(parts)


def write_study_report(
    study_dir: str | Path, *, title: str | None = None, reference: str | None = None
) -> tuple[Path, Path]:
    """report.md and report.html (figures embedded) from what the study folder holds now; ``reference``: the recipe
    the variance and failure tests compare with (default: `steadytune.stats.default_reference`)."""
    from ..report import write_report
    from ..stats import summarize

    study_dir = Path(study_dir)
    records = load_records(study_dir)
    if any(k.startswith("fit.") for k in _identity_settings(study_dir)):  # candidates with one seed each: no study
        raise UserInputError(f"{study_dir} is a fit folder (steadytune fit), not a study folder: its results are in "
                             f"{study_dir / 'fit.json'}, and the same fit command prints its table again; export "
                             "writes its candidates' records")  # fmt: skip
    rows = trial_rows(records)
    summary = summarize(rows, reference=reference)
    curves = {(r["task"], r["recipe"], r["seed"]): r["curve"] for r in records}
    title = title or f"steadytune study: {records[0]['config']['model']}, {len(rows)} trials"
    notes, command = study_notes(records, rows), study_command(records, _identity_settings(study_dir))
    return write_report(study_dir, rows, curves, summary, title=title, notes=notes, command=command)


def export_rows(study_dir: str | Path, path: str | Path, *, format: str = "csv") -> int:
    """Write every trial's flat row to a CSV or Parquet file (atomically), or to standard output when `path` is
    `-`; returns the number of rows."""
    import csv
    import io

    if format not in ("csv", "parquet"):
        raise UserInputError(f"unknown export format {format!r}; use csv or parquet")
    rows = trial_rows(load_records(study_dir))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        data = buf.getvalue().encode("utf-8")
    else:
        import pyarrow as pa  # a dependency of datasets
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        data = sink.getvalue().to_pybytes()
    if str(path) == "-":
        write_stdout(data, binary=format == "parquet")
    else:
        atomic_write_bytes(path, data)
    return len(rows)
