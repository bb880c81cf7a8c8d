"""Where a study's trials run: the `Executor` interface, and `LocalExecutor` (this process or a process pool).

A cluster executor implements the same one method (`steadytune.study.ray_executor.RayExecutor`). Its optional
`steps` callback is how the driver's progress bar (`steadytune.study.progress.StepBar`) hears how far the running
trials are: trials in this process call it at their loop's read-backs (`steadytune.loop.report_steps`); pool
workers write their trial's step count into a slot of a shared array, lock-free, which the driver polls while it
waits (a worker that dies cannot hold a lock or leave a message half-written).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Protocol

from ..errors import UserInputError
from ..loop import report_steps
from .grid import Trial, run_trial
from .parallelism import default_parallelism

__all__ = ["POLL_S", "Done", "Executor", "LocalExecutor", "Steps", "init_worker"]

Done = Callable[[Trial, "dict[str, Any] | BaseException"], None]
Steps = Callable[[Trial, int], None]
"""`steps(trial, step)`: a running trial has reached optimizer step `step` (counted from its run's start)."""

# How often a waiting driver looks at its workers' step counts: a progress bar needs no more than two updates a
# second, and a wake-up that reads a few integers costs nothing next to the training it waits for.
POLL_S = 0.5


class Executor(Protocol):
    """Runs trials and reports each outcome (a record dict, or the exception) to `done` as soon as it has it; with
    `steps`, also tells it (in the driver's thread) how far the running trials are, now and then."""

    def run(self, trials: list[Trial], done: Done, *, steps: Steps | None = None) -> None: ...


def init_worker(threads: int, parent: int | None = None) -> None:
    """Set up a process that runs trials: its torch threads, glibc keeping freed memory for the next step
    (`steadytune.fastpath.retain_freed_memory`, process-wide, so only in processes that exist to train), and with
    `parent`, exiting when that process is gone."""
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


_slots: Any = None  # in a pool worker: the shared array of step counts, one slot per trial of the run


def _init_pool_worker(threads: int, parent: int, slots: Any) -> None:
    """`init_worker`, and keep the shared step counts (`None` without a progress bar)."""
    from tqdm import tqdm

    global _slots
    _slots = slots
    init_worker(threads, parent)
    # tqdm's default lock is a named multiprocessing semaphore, registered with the driver's resource tracker; a
    # worker the driver terminates (interrupted) cannot unregister it, and the tracker warns of a leak at exit. A
    # worker draws no bars of its own (the driver's bar counts its steps), so a thread lock does.
    tqdm.set_lock(threading.RLock())


def _pool_trial(trial: Trial, slot: int) -> dict[str, Any]:
    """`run_trial` in a pool worker, writing its step count into its slot at each read-back."""
    if _slots is None:
        return run_trial(trial)

    def write(step: int) -> None:
        _slots[slot] = step

    with report_steps(write):
        return run_trial(trial)


@contextmanager
def _started_deaf_to_interrupts() -> Iterator[None]:
    """Processes started inside never see SIGINT, and a Ctrl-C that arrives meanwhile is raised here at the end.

    Ctrl-C in a terminal signals the whole process group: pool workers would each raise KeyboardInterrupt wherever
    they are (importing torch, waiting for work) and print its traceback. They leave the interrupt to the driver,
    which stops them. So SIGINT is blocked while they start (a blocked signal stays blocked across fork and exec,
    and Python never unblocks it) and, for the driver, caught rather than ignored: an ignored one would be lost,
    and a study interrupted while its workers start would run to its end. Only the main thread may change signal
    handlers; elsewhere this does nothing. Without `pthread_sigmask` (Windows) the workers start ignoring it.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield  # (ignored already, as in a background job of a script: the workers inherit that)
        return
    hits: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    block = hasattr(signal, "pthread_sigmask")
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    else:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if block:  # a SIGINT held back meanwhile is delivered now, to the recording handler
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if hits:  # what the handler before would have done with it (Python's default raises KeyboardInterrupt)
        (previous if callable(previous) else signal.default_int_handler)(signal.SIGINT, None)


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

    def run(self, trials: list[Trial], done: Done, *, steps: Steps | None = None) -> None:
        workers, threads = self._split(trials)
        if workers == 1:
            import torch

            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for trial in trials:
                    try:
                        if steps is None:
                            outcome: dict[str, Any] | BaseException = run_trial(trial)
                        else:
                            with report_steps(lambda step, trial=trial: steps(trial, step)):
                                outcome = run_trial(trial)
                    except Exception as e:  # recorded as an errored trial, retried on the next run
                        outcome = e
                    done(trial, outcome)
            finally:
                torch.set_num_threads(old)
            return
        import multiprocessing

        # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
        ctx = multiprocessing.get_context("spawn")
        # One int64 per trial, each written by the one worker running that trial: no lock is needed or held.
        slots = ctx.RawArray("q", len(trials)) if steps is not None else None
        before = set(multiprocessing.active_children())
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_pool_worker,
                                 initargs=(threads, os.getpid(), slots)) as pool:  # fmt: skip
            seen = [0] * len(trials)
            try:
                with _started_deaf_to_interrupts():  # the workers start at the first submits
                    pending = {pool.submit(_pool_trial, t, i): (i, t) for i, t in enumerate(trials)}
                while pending:
                    finished, _ = wait(pending, timeout=None if slots is None else POLL_S,
                                       return_when=FIRST_COMPLETED)  # fmt: skip
                    for future in finished:
                        _, trial = pending.pop(future)
                        error = future.exception()
                        done(trial, error if error is not None else future.result())
                    if slots is not None:
                        for i, trial in pending.values():
                            if slots[i] != seen[i]:
                                seen[i] = slots[i]
                                steps(trial, seen[i])
            except BaseException:  # interrupted, or `done` failed: nobody will store what the workers are training
                # Deaf to SIGINT, they are stopped here rather than awaited to their trials' ends; the pool, broken,
                # fails the futures left (cancelling them first trips Python 3.11's pool: InvalidStateError).
                for process in multiprocessing.active_children():
                    if process not in before:
                        process.terminate()
                raise
