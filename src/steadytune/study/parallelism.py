"""How many trials to run at once on this machine, and with how many torch threads each (measured, see below)."""

from __future__ import annotations

import os

__all__ = ["default_parallelism"]


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
    from ..models import resolve_device

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

    from ..models import quiet_transformers, resolve_model

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(resolve_model(model))
        with torch.device("meta"):
            return sum(p.numel() for p in AutoModel.from_config(config).parameters())
    except Exception:  # unknown here (e.g. a hub id offline): the trial will report it; size as BERT-large
        return 335_000_000
