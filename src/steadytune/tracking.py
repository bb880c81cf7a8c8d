"""Experiment tracking: a run's per-step scalars, evaluations, final metrics and configuration, logged to
TensorBoard, MLflow or Weights & Biases through each library's own writer (`report_to`, as in transformers).

    steadytune train --task rte --report-to tensorboard,mlflow --out runs/rte
    tensorboard --logdir runs/tensorboard   ·   mlflow ui --backend-store-uri sqlite:///runs/mlflow.db

Each library is an optional extra (`pip install steadytune[tensorboard]`, `[mlflow]`, `[wandb]`), imported only
when asked for; `require` checks it is installed before any work starts. Where a run's tracking goes
(`TrainConfig.tracking_dir`, by default beside the output: a `train --out` folder's parent, a study's or fit's own
folder):

- TensorBoard (`torch.utils.tensorboard.SummaryWriter`): event files in `<dir>/tensorboard/<run name>`, the
  configuration as hyper-parameters of the same run (the HParams dashboard) and as a `config` text;
- MLflow (`mlflow.tracking.MlflowClient`): experiment `steadytune` (or `MLFLOW_EXPERIMENT_NAME`) in the SQLite store
  `<dir>/mlflow.db`, MLflow's own default store since the file store (`mlruns`) went into maintenance, or at
  `MLFLOW_TRACKING_URI` when that is set; the configuration as parameters;
- W&B (`wandb.init`): offline runs in `<dir>/wandb` (`wandb sync` uploads them; `WANDB_MODE=online` logs live),
  project `steadytune` (or `WANDB_PROJECT`); the configuration as the run's config.

What is logged, with the step as each library's step axis: `train/loss`, `train/grad_norm`, `train/learning_rate`
per optimizer step (the loop reads them back every `loop.SYNC_EVERY` steps and logs them then: tracking adds no
device synchronisation), `eval/<metric>` at every validation, and at the end `best/validation/<metric>`,
`best/test/<metric>`, `last/validation/<metric>`, `last/test/<metric>`, `final/failed`, `final/diverged`,
`final/baseline` (the best constant predictor's test score: the failure line) and `final/majority_baseline`.
TensorBoard keeps scalars as 32-bit floats (loss and gradient norm are float32 already; the learning rate is
rounded); MLflow and W&B keep the float64 values.

A run continued from a checkpoint (`train --resume`, each stage of a `fit` candidate) continues the same tracker
run on the same step axis: the MLflow and W&B run ids travel in the checkpoint, TensorBoard's writer purges the
events from the resumed step on (`purge_step`), and MLflow skips the steps it already holds, so a step is never
logged twice.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from .errors import UserInputError
from .files import check_writable_folder

__all__ = ["BACKENDS", "Tracker", "hyperparameters", "open_tracker", "parse_report_to", "require", "run_folder_name"]

BACKENDS = ("tensorboard", "mlflow", "wandb")
# What each backend imports (the first is its writer), and the distribution that provides each module.
_MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "tensorboard": (("torch.utils.tensorboard", "tensorboard"),),
    "mlflow": (("mlflow.tracking", "mlflow-skinny"), ("sqlalchemy", "sqlalchemy"), ("alembic", "alembic")),
    "wandb": (("wandb", "wandb"),),
}
# Most attempts at opening an MLflow SQLite store: parallel trial workers may create its tables at the same time,
# and the losers see them half-made; one retry a second later finds them complete.
_OPEN_ATTEMPTS = 3
# MLflow's log_batch takes at most 1000 metrics and 100 parameters per call.
_MLFLOW_METRICS_PER_BATCH = 1000
_MLFLOW_PARAMS_PER_BATCH = 100


def parse_report_to(value: str | list[str] | tuple[str, ...] | None) -> str:
    """`report_to` in its canonical form: "none", or backend names comma-separated in the given order, e.g.
    "tensorboard,mlflow" (from a string, a list, or None); an unknown name is a `UserInputError`."""
    if value is None:
        return "none"
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise UserInputError(f"report_to must be a string or a list of strings, got {value!r}")
    names = [item.strip().lower() for item in items]
    use = f"use none or any of {', '.join(BACKENDS)}, comma-separated"
    if not names or any(not n for n in names):
        raise UserInputError(f"report_to {value!r} has an empty name; {use}")
    unknown = [n for n in names if n not in (*BACKENDS, "none")]
    if unknown:
        raise UserInputError(f"unknown tracker {unknown[0]!r} in report_to; {use}")
    if "none" in names and len(names) > 1:
        raise UserInputError(f"report_to {value!r} names none beside a tracker; {use}")
    names = list(dict.fromkeys(n for n in names if n != "none"))
    return ",".join(names) if names else "none"


def _backends(report_to: str) -> list[str]:
    return [] if report_to == "none" else parse_report_to(report_to).split(",")


def require(report_to: str, folder: str | Path | None = None) -> None:
    """Check that every tracker `report_to` names is installed, and that `folder` (the tracking folder) can be
    written, before any work: a missing library is one line naming the extra to install."""
    if folder is not None and _backends(report_to):
        check_writable_folder(folder, what="--tracking-dir")
    for name in _backends(report_to):
        for module, dist in _MODULES[name]:
            try:
                importlib.import_module(module)
            except ImportError:
                raise UserInputError(f"--report-to {name} needs {dist}, which is not installed: "
                                     f"pip install 'steadytune[{name}]'") from None  # fmt: skip
        if name == "mlflow":
            _check_mlflow_uri(os.environ.get("MLFLOW_TRACKING_URI"))


# MLflow's database stores: it connects and creates its tables when a client opens one, which a check before the
# work must not do; MLflow says what is wrong with them when the first run opens.
_MLFLOW_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")


def _check_mlflow_uri(uri: str | None) -> None:
    """Refuse an MLFLOW_TRACKING_URI that MLflow cannot log to, before any work: its file store (in maintenance
    mode, it refuses new runs) and a scheme no store handles; a server's URI is resolved without contacting it."""
    if not uri:
        return
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        raise UserInputError(f"MLFLOW_TRACKING_URI={uri} is MLflow's file store, which is in maintenance mode and "
                             "takes no new runs; use a database (sqlite:///PATH/mlflow.db) or a tracking server, or "
                             "unset it to log to mlflow.db in the tracking folder")  # fmt: skip
    if scheme in _MLFLOW_DATABASES or scheme.split("+")[0] in _MLFLOW_DATABASES:
        return
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri)
    except Exception as e:  # MLflow's own word on the URI: its first sentence
        why = " ".join(str(e).split())[:200].split(". ")[0]
        raise UserInputError(f"MLFLOW_TRACKING_URI={uri} is not a store MLflow can log to: {why}") from None


def run_folder_name(name: str) -> Path:
    """A tracker run's name as a relative folder: each '/'-separated part with only portable characters."""
    parts = [re.sub(r"[^\w.+=,@-]", "_", part) for part in name.split("/") if part not in ("", ".", "..")]
    return Path(*parts) if parts else Path("run")


def hyperparameters(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """A run's flat configuration as hyper-parameters: scalars as they are, lists and tuples comma-joined, None as
    "None" (what TensorBoard's HParams and MLflow's parameters take)."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        elif value is None or not isinstance(value, (bool, int, float, str)):
            value = str(value)
        out[key] = value
    return out


def final_metrics(result: Any) -> dict[str, float]:
    """What a finished run's record (`RunResult`) says at the end, as flat scalars."""
    out: dict[str, float] = {}
    for which in ("best", "last"):
        for split in ("validation", "test"):
            for key, value in ((getattr(result, which) or {}).get(split) or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"{which}/{split}/{key}"] = float(value)
    out["final/failed"] = float(result.failed)
    out["final/diverged"] = float(result.diverged)
    if (result.baseline or {}).get("score") is not None:
        out["final/baseline"] = float(result.baseline["score"])
    out["final/majority_baseline"] = float(result.majority_baseline)
    return out


# A curve row's scalars and their names in the trackers (a contrastive candidate's curve has the loss alone).
_CURVE = {"loss": "train/loss", "grad_norm": "train/grad_norm", "lr": "train/learning_rate"}


class Tracker:
    """One run's tracking, forwarded to each backend `report_to` named; with none, every call does nothing."""

    def __init__(self, backends: list[Any]) -> None:
        self._backends = backends
        self._step = 0
        self._closed = False

    def __bool__(self) -> bool:
        return bool(self._backends)

    def ids(self) -> dict[str, str]:
        """The backends' run ids (MLflow, W&B), kept in a checkpoint so that resuming continues the same runs."""
        return {b.name: b.run_id for b in self._backends if b.run_id is not None}

    def log_steps(self, rows: list[dict[str, float]]) -> None:
        """Curve rows ({"step", "loss", "grad_norm", "lr"}), as read back by the loop."""
        if self._backends and rows:
            self._log([(int(r["step"]), {name: r[key] for key, name in _CURVE.items() if r.get(key) is not None})
                       for r in rows])  # fmt: skip

    def log_eval(self, step: int, scores: dict[str, float]) -> None:
        """One validation evaluation."""
        if self._backends:
            self._log([(step, {f"eval/{k}": float(v) for k, v in scores.items()})])

    def log_result(self, result: Any) -> None:
        """The finished run's final metrics, at its last logged step."""
        if self._backends:
            self._log([(max(self._step, result.steps), final_metrics(result))])

    def _log(self, points: list[tuple[int, dict[str, float]]]) -> None:
        self._step = max(self._step, *(step for step, _ in points))
        for backend in self._backends:
            backend.log(points)

    def close(self, status: str = "finished") -> None:
        """End the tracker runs: "finished", "paused" (a fit stage that stops for a check), or "failed"."""
        if not self._closed:
            self._closed = True
            for backend in self._backends:
                backend.close(status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close("failed" if exc_type is not None else "finished")


def open_tracker(
    report_to: str,
    *,
    folder: str | Path,
    name: str,
    config: dict[str, Any],
    metric: str,
    first_step: int = 1,
    previous: dict[str, str] | None = None,
) -> Tracker:
    """Start (or, with `previous` run ids from a checkpoint, continue) one run in each tracker `report_to` names.

    `folder` is where the trackers write, `name` the run's name ("rte/adam/seed-0"), `config` the record's flat
    configuration (logged as hyper-parameters), `metric` the run's metric (TensorBoard's HParams columns),
    `first_step` the first step this session will log (after a resume: the one after the curve's last)."""
    names = _backends(report_to)
    if not names:
        return Tracker([])
    require(report_to)
    folder = Path(folder)
    params = hyperparameters(config)
    previous = previous or {}
    made: list[Any] = []
    try:
        for backend in names:
            cls = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}[backend]
            made.append(cls(folder, name, params, metric=metric, first_step=first_step,
                            previous=previous.get(backend)))  # fmt: skip
    except BaseException:
        for b in made:
            b.close("failed")
        raise
    return Tracker(made)


class _TensorBoard:
    name = "tensorboard"
    run_id = None

    def __init__(self, folder: Path, name: str, params: dict[str, Any], *, metric: str, first_step: int,
                 previous: str | None) -> None:  # fmt: skip
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.log_dir = folder / "tensorboard" / run_folder_name(name)
        resumed = first_step > 1
        # purge_step: readers drop this folder's earlier events from that step on (a fresh start: all of them),
        # so a resumed or redone run never shows a step twice.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=first_step if resumed else 0)
        if not resumed:
            # The hyper-parameters as a summary of this same run (SummaryWriter.add_hparams would make a sub-run).
            columns = {f"best/test/{metric}": 0.0, f"last/test/{metric}": 0.0, f"best/validation/{metric}": 0.0,
                       "final/failed": 0.0}  # fmt: skip
            for summary in hparams(params, columns):
                self.writer.file_writer.add_summary(summary)
            self.writer.add_text("config", "```\n" + json.dumps(params, indent=2) + "\n```")
        self.writer.flush()

    def log(self, points: list[tuple[int, dict[str, float]]]) -> None:
        for step, metrics in points:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)
        self.writer.flush()  # every read-back: a live dashboard, not one 2 minutes behind

    def close(self, status: str) -> None:
        self.writer.close()


class _MLflow:
    name = "mlflow"

    def __init__(self, folder: Path, name: str, params: dict[str, Any], *, metric: str, first_step: int,
                 previous: str | None) -> None:  # fmt: skip
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        local = not uri
        if local:
            folder.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{folder.resolve() / 'mlflow.db'}"
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "steadytune")
        artifacts = (folder.resolve() / "mlartifacts").as_uri() if local else None
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                self.client = MlflowClient(tracking_uri=uri)
                found = self.client.get_experiment_by_name(experiment)
                if found is not None:
                    experiment_id = found.experiment_id
                else:
                    experiment_id = self.client.create_experiment(experiment, artifact_location=artifacts)
                break
            except Exception:
                if attempt == _OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(1.0)
        self.logged: dict[str, int] = {}
        if previous is not None and self._holds(previous):
            self.run_id = previous
            self.client.update_run(previous, status="RUNNING")
            # What the run holds already (a stage redone after a kill): those steps are not logged again.
            for key in self.client.get_run(previous).data.metrics:
                self.logged[key] = max(m.step for m in self.client.get_metric_history(previous, key))
        else:
            tags = {"steadytune.name": name, "steadytune.metric": metric}
            self.run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
            items = [Param(k, str(v)) for k, v in params.items()]
            for i in range(0, len(items), _MLFLOW_PARAMS_PER_BATCH):
                self.client.log_batch(self.run_id, params=items[i : i + _MLFLOW_PARAMS_PER_BATCH])

    def _holds(self, run_id: str) -> bool:
        """Whether this store has the run (a resumed run logged elsewhere, another MLFLOW_TRACKING_URI, starts a
        new one)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:
            return False
        return True

    def log(self, points: list[tuple[int, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for step, values in points for k, v in values.items()
                   if step > self.logged.get(k, 0)]  # fmt: skip
        for i in range(0, len(metrics), _MLFLOW_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + _MLFLOW_METRICS_PER_BATCH])

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, {"finished": "FINISHED", "paused": "KILLED"}.get(status, "FAILED"))


class _WandB:
    name = "wandb"

    def __init__(self, folder: Path, name: str, params: dict[str, Any], *, metric: str, first_step: int,
                 previous: str | None) -> None:  # fmt: skip
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "steadytune"), name=name, dir=str(folder), config=params,
            mode=os.environ.get("WANDB_MODE", "offline"), id=previous, resume="allow" if previous else None,
            reinit="create_new",  # a study's trials in one process: each its own run, never the previous one's
        )  # fmt: skip
        self.run_id = self.run.id

    def log(self, points: list[tuple[int, dict[str, float]]]) -> None:
        for step, metrics in points:
            self.run.log(metrics, step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=1 if status == "failed" else 0)
