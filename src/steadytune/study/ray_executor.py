"""Running a study's trials on a Ray cluster: one Ray task per trial, records committed by the driver.

    from steadytune import Study
    from steadytune.study.ray_executor import RayExecutor

    Study("studies/x", tasks="rte", recipes="bertadam,adam", seeds=20, model="all-MiniLM-L6-v2").run(
        executor=RayExecutor(address="auto", gpus_per_trial=0.25, cpus_per_trial=2))

`RayExecutor.run(trials, done)` is the `steadytune.study.Executor` interface: it submits every trial, then hands
each outcome (the record, or the exception) to `done` as it arrives (`ray.wait`); the driver stores it in
`study.sqlite` as with the local executor, so resuming, statistics and reports do not change.

What travels, and how often. The model folder and the data may exist only on the driver's machine, so the driver
puts each task's loaded `TaskData`, and the files of a local model folder, in Ray's object store once (`ray.put`)
and passes the references to every task inside a dict, where Ray leaves them unresolved: a worker process fetches
each object the first time it needs it and keeps it, and writes the model files once per node into
`$TMPDIR/steadytune-ray-models/<sha256 of the files>` (a cache reused by later studies). A hub id is passed through:
each worker loads it as `train` would. Workers need steadytune and its dependencies installed (the same versions).

Progress. With `steps` (a progress bar), a small actor (no CPU of its own) keeps each running trial's step count:
the trials tell it at their loop's read-backs, without waiting for an answer, and the driver asks it while it
waits for outcomes (`POLL_S`). A trial rerun after its worker died counts from 0 again.

Failures. A worker that dies mid-trial (killed, out of memory, node lost) makes Ray rerun the trial, up to
`max_retries` times (Ray's own `max_retries`); after that, the Ray error goes to `done` and the trial is stored as
errored, so the next run of the study retries it. An exception raised by the trial itself (bad data, say) is not
retried: it would only fail again; `done` gets the original exception, exactly as with `LocalExecutor`.

Ray is an optional extra (`pip install steadytune[ray]`): this module imports it only when an executor is made.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import shutil
import socket
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ..data import TaskData
from ..errors import UserInputError
from ..files import to_json
from ..loop import report_steps
from ..models import resolve_model
from .executors import POLL_S, Done, Steps, init_worker
from .grid import Trial, run_trial, trial_data

__all__ = ["DEFAULT_MAX_RETRIES", "RayExecutor", "TrialFunction"]

# Reruns of a trial whose worker died. A dead worker is usually a transient loss (a preempted node, a one-off OOM);
# three more attempts ride that out, while a trial that kills its worker every time fails in bounded time.
DEFAULT_MAX_RETRIES = 3
# Ray retries an unreachable head node for minutes, logging each try; one TCP connect with this timeout answers at
# once (long enough for a slow network, short next to Ray's retries).
CONNECT_TIMEOUT_S = 10.0
# Loaded data kept per worker process: a study has one entry per task (GLUE has 9), and two studies may overlap.
_DATA_CACHE_SIZE = 16

TrialFunction = Callable[[Trial, TaskData], dict[str, Any]]
"""What a task runs: `(trial, its loaded data) -> record`; `steadytune.study.run_trial` unless you pass another."""


def _import_ray() -> ModuleType:
    try:
        return importlib.import_module("ray")
    except ImportError as e:
        raise UserInputError(f"--executor ray needs Ray: pip install 'steadytune[ray]' ({e})") from None


class RayExecutor:
    """Trials as Ray tasks, `gpus_per_trial` GPUs (may be a fraction) and `cpus_per_trial` CPUs each.

    `address` is the cluster to join (`"auto"`: the one started on this machine with `ray start`; `"host:port"`: a
    head node); None starts a local Ray instance unless `RAY_ADDRESS` or a `ray start` on this machine names one.
    If Ray is already initialised in this process, that connection is used as it is and left open. Each trial runs
    with `max(1, int(cpus_per_trial))` torch threads; `max_retries` bounds the reruns of a trial whose worker died.
    `trial_fn` replaces `run_trial` (it must be importable or picklable by the workers).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        gpus_per_trial: float = 0.0,
        cpus_per_trial: float = 1.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        trial_fn: TrialFunction = run_trial,
    ) -> None:
        if not gpus_per_trial >= 0:  # `not >=` also catches NaN
            raise UserInputError(f"gpus per trial must be 0 or more, got {gpus_per_trial!r}")
        if gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial):
            raise UserInputError(f"gpus per trial must be a fraction up to 1 or whole, got {gpus_per_trial!r}")
        if not cpus_per_trial > 0:
            raise UserInputError(f"cpus per trial must be more than 0, got {cpus_per_trial!r}")
        if max_retries < 0:
            raise UserInputError(f"max retries must be 0 or more, got {max_retries!r}")
        self.address = address
        self.gpus_per_trial = float(gpus_per_trial)
        self.cpus_per_trial = float(cpus_per_trial)
        self.max_retries = int(max_retries)
        self.trial_fn = trial_fn
        self._ray = _import_ray()
        self._started_ray = False

    def connect(self) -> None:
        """Join (or start) the cluster now; `run` does this itself, the CLI calls it before writing anything."""
        ray = self._ray
        if ray.is_initialized():
            return
        where = "a local Ray instance" if self.address is None else f"the Ray cluster at {self.address!r}"
        try:
            _check_reachable(self.address)
            ray.init(address=self.address)
        except (ConnectionError, RuntimeError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserInputError(f"cannot connect to {where}: {first}") from None
        self._started_ray = True

    def run(self, trials: list[Trial], done: Done, *, steps: Steps | None = None) -> None:
        ray = self._ray
        self.connect()
        pending: dict[Any, Trial] = {}
        counter = None
        try:
            if steps is not None:
                counter = ray.remote(num_cpus=0)(_step_counts()).remote()
            task = ray.remote(_ray_trial).options(
                num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_retries=self.max_retries,
                retry_exceptions=False,  # the trial's own exceptions would only happen again
            )  # fmt: skip
            threads = max(1, int(self.cpus_per_trial))
            models: dict[str, dict[str, Any]] = {}
            data: dict[str, Any] = {}
            index: dict[Any, int] = {}
            for i, trial in enumerate(trials):
                shared = {"model": self._put_model(trial, models), "data": self._put_data(trial, data),
                          "progress": None if counter is None else (counter, i)}  # fmt: skip
                ref = task.remote(trial, shared, self.trial_fn, threads)
                pending[ref], index[ref] = trial, i
            seen: dict[int, int] = {}
            asked = None  # the counter's answer not read yet: the driver never waits for it
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=None if counter is None else POLL_S)
                for ref in ready:
                    trial = pending.pop(ref)
                    done(trial, self._outcome(ref))
                if counter is not None and steps is not None and pending and asked is not False:
                    asked = self._report(counter, asked, pending, index, seen, steps)
        except BaseException:
            for ref in pending:  # an interrupted driver: stop the trials in flight rather than let them run on
                ray.cancel(ref, force=True)
            raise
        finally:
            if counter is not None:  # an actor outlives the run on a connection we leave open
                ray.kill(counter)
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False

    def _report(self, counter: Any, asked: Any, pending: dict[Any, Trial], index: dict[Any, int],
                seen: dict[int, int], steps: Steps) -> Any:  # fmt: skip
        """Tell `steps` the running trials' new step counts once the counter has answered; returns the question
        now open, or False once the counter is lost (a progress bar is not worth failing a study for)."""
        ray = self._ray
        if asked is None:
            return counter.snapshot.remote()
        if not ray.wait([asked], timeout=0)[0]:
            return asked  # not answered yet (an actor starting on a busy node): ask again later, never block
        try:
            counts = ray.get(asked)
        except ray.exceptions.RayError:
            return False
        for ref, trial in pending.items():
            i = index[ref]
            if i in counts and counts[i] != seen.get(i):
                seen[i] = counts[i]
                steps(trial, counts[i])
        return counter.snapshot.remote()

    def _outcome(self, ref: Any) -> dict[str, Any] | BaseException:
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except exceptions.RayTaskError as e:  # the trial raised: report its own exception, as LocalExecutor does
            return e.cause if isinstance(e.cause, BaseException) else e
        except exceptions.RayError as e:  # the worker died more than max_retries times, or the node was lost
            return e

    def _put_data(self, trial: Trial, refs: dict[str, Any]) -> Any:
        """The trial's loaded data in the object store, once per distinct data set-up."""
        data = trial_data(trial)  # loaded by Study already: a cache hit
        key = to_json(data.summary())
        if key not in refs:
            # Pickled by us: Ray would hand numpy arrays (the labels) to workers read-only, straight from the store.
            refs[key] = self._ray.put(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        return refs[key]

    def _put_model(self, trial: Trial, shipped: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """A local model folder's files in the object store, once per study; None for a hub id (passed through)."""
        name = str(trial.config.model)
        if name not in shipped:
            folder = Path(resolve_model(name))
            if not folder.is_dir():
                shipped[name] = {}
            else:
                files = _model_files(folder)
                digest = hashlib.sha256()
                for file_name, content in files.items():
                    digest.update(f"{file_name}\0{len(content)}\0".encode())
                    digest.update(content)
                shipped[name] = {"digest": digest.hexdigest(), "files": self._ray.put(files)}
        return shipped[name] or None


def _check_reachable(address: str | None) -> None:
    """Raise OSError when a HOST:PORT address does not accept a connection; other forms are Ray's to judge."""
    host, sep, port = (address or "").rpartition(":")
    if sep and host and port.isdigit() and "://" not in address:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()


def _model_files(folder: Path) -> dict[str, bytes]:
    """The files `from_pretrained` reads from a folder: its top level (subfolders hold other formats, e.g. ONNX)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    if not files:
        raise UserInputError(f"model folder {folder} has no files")
    return files


# --- on the worker ----------------------------------------------------------------------------------------------


def _step_counts() -> type:
    """The Ray actor class holding each running trial's step count (by its index in the run). Made here, so that
    Ray ships it by value: the actor's process starts without importing steadytune, torch and transformers."""

    class StepCounts:
        def __init__(self) -> None:
            self.counts: dict[int, int] = {}

        def report(self, index: int, step: int) -> None:
            self.counts[index] = step

        def snapshot(self) -> dict[int, int]:
            return dict(self.counts)

    return StepCounts


_models: dict[str, str] = {}  # digest → the folder this node's copy is in
_data: OrderedDict[str, TaskData] = OrderedDict()  # object id → loaded data


def _ray_trial(trial: Trial, shared: dict[str, Any], trial_fn: TrialFunction, threads: int) -> dict[str, Any]:
    """The Ray task: this worker's copy of the model and data, then the trial, recorded under the user's model."""
    import ray

    init_worker(threads)
    data_ref = shared["data"]
    key = data_ref.hex()
    if key not in _data:
        _data[key] = pickle.loads(ray.get(data_ref))
        while len(_data) > _DATA_CACHE_SIZE:
            _data.popitem(last=False)
    _data.move_to_end(key)
    config = trial.config
    if config.device == "auto" and not ray.get_gpu_ids():
        config = replace(config, device="cpu")  # Ray hides no GPU from a task that asked for none: use none
    model = shared["model"]
    if model is not None:
        if model["digest"] not in _models:
            _models[model["digest"]] = _materialise(model["digest"], model["files"])
        config = replace(config, model=_models[model["digest"]])
    progress = shared.get("progress")
    if progress is None:
        record = trial_fn(replace(trial, config=config), _data[key])
    else:
        counter, index = progress
        with report_steps(lambda step: counter.report.remote(index, step)):  # fire and forget: no wait
            record = trial_fn(replace(trial, config=config), _data[key])
    record["config"]["model"] = trial.config.model  # the record names the model as the user gave it
    return record


def _materialise(digest: str, files_ref: Any) -> str:
    """Write the model files once per node, atomically: a folder appears complete under its content hash or not."""
    import ray

    root = Path(tempfile.gettempdir()) / "steadytune-ray-models"
    target = root / digest
    if target.is_dir():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
    try:
        for name, content in ray.get(files_ref).items():
            (staging / name).write_bytes(content)
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not another worker of this node winning the race: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)
