"""Numeric precision of the forward and backward pass: `auto`, `fp32` or `bf16`.

`bf16` runs the model under `torch.autocast(dtype=torch.bfloat16)`: matrix products in bfloat16, reductions and
normalisation in float32 (autocast's own op lists). Master weights, gradients and the optimizer state stay float32,
so the update rule is unchanged; bfloat16 has float32's exponent range, so no loss scaling is needed.
`auto` picks bf16 where the hardware computes it natively: CUDA devices that support it (Ampere and newer), and
CPUs with AVX512-BF16 or AMX; fp32 elsewhere (emulated bf16 on an older CPU is slower than fp32).

The paper trained in mixed precision "to speed up experiments" (Zhang et al. 2021, §3) and found no significant
effect on results (its Table 4); `docs/results/precision.md` checks the same for steadytune.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserInputError

if TYPE_CHECKING:  # torch loads when a run resolves its precision: `PRECISIONS` is read by the CLI's parser
    import torch

__all__ = ["PRECISIONS", "autocast", "cpu_has_bf16", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when this CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(p is not None for p in probes):
        return any(bool(p()) for p in probes if p is not None)
    try:  # older torch: read the flags the kernel reports (Linux)
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` → `bf16` or `fp32` for `device`; an explicit choice is checked and kept."""
    import torch

    if precision not in PRECISIONS:
        raise UserInputError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass (and the loss) runs in: bf16 autocast, or nothing for fp32."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(f"precision must be resolved to fp32 or bf16 first, got {precision!r}")
