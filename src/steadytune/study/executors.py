"""Where a study's trials run: the `Executor` interface, and `LocalExecutor` (this process or a process pool).

A cluster executor implements the same one method (`steadytune.study.ray_executor.RayExecutor`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol

from ..errors import UserInputError
from .grid import Trial, run_trial
from .parallelism import default_parallelism

__all__ = ["Done", "Executor", "LocalExecutor", "init_worker"]

Done = Callable[[Trial, "dict[str, Any] | BaseException"], None]


class Executor(Protocol):
    """Runs trials and reports each outcome (a record dict, or the exception) to `done` as soon as it has it."""

    def run(self, trials: list[Trial], done: Done) -> None: ...


def init_worker(threads: int, parent: int | None = None) -> None:
    """Set up a process that runs trials: its torch threads, glibc keeping freed memory for the next step
    (`steadytune.fastpath.retain_freed_memory`, process-wide, so only in processes that exist to train), and with
    `parent`, exiting when that process is gone."""
    import threading

    import torch

    from ..fastpath import retain_freed_memory

    torch.set_num_threads(threads)
    retain_freed_memory()
    if parent is None:
        return

    def exit_with_parent() -> None:
        # A driver killed by SIGTERM/SIGKILL cannot shut its pool down; without this its workers would train on,
        # orphaned, for trials nobody will store. Poll once a second (cheap) rather than rely on Linux's prctl.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True, name="steadytune-parent-watch").start()


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
            model, device = (trials[0].config.model, trials[0].config.device) if trials else ("", "auto")
            workers, threads = default_parallelism(model, device=device)
            workers = max(1, min(workers, len(trials)))
            return workers, self.threads or threads
        # workers × threads ≤ cores: more would only make the processes fight over the same cores.
        return self.workers, self.threads or max(1, cores // self.workers)

    def run(self, trials: list[Trial], done: Done) -> None:
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
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
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
