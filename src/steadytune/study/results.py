"""A study's results: one flat row per trial (for statistics, the report and export), the report, the export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import UserInputError
from ..files import atomic_write_bytes, atomic_write_text, to_json
from ..metrics import constant_baseline, failure
from .grid import Trial, config_data
from .store import load_records

__all__ = ["export_rows", "trial_line", "trial_rows", "write_study_report"]


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
            "diverged": r["diverged"], "steps": r["steps"], "best_step": r["best"]["step"],
            "test_size": r["data"]["sizes"]["test"], "wall_s": r["timings"]["wall_s"],
            **{f"config.{k}": v for k, v in r["config"].items() if not isinstance(v, (list, dict, tuple))},
        })  # fmt: skip
    return rows


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


def write_study_report(study_dir: str | Path, *, title: str | None = None) -> tuple[Path, Path]:
    """report.md and report.html (figures embedded) from what the study folder holds now."""
    from ..report import write_report
    from ..stats import summarize

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
