r"""Faster CPU training for dropout and attention, swapped in around the forward pass with a `TorchFunctionMode`.

On the CPU two parts of an encoder's training step cost far more than their arithmetic (all-MiniLM-L6-v2, batch 32
of ~70 tokens, bf16 autocast, 2 threads, torch 2.13; forward + backward of one step):

- **Dropout.** `torch.nn.functional.dropout` draws its mask with `bernoulli_`, one float per element from a single
  Mersenne-Twister stream: ~5.6 ns an element, 130 ms of a 320 ms forward. `dropout` below builds the same
  Bernoulli(1 - p) mask from raw random integers instead (numpy's PCG64DXSM, seeded from torch's generator):
  `u < round((1 - p) * 2**32)` for a uniform 32-bit `u` keeps an element with probability within 2**-33 of 1 - p,
  finer than the float `bernoulli_` itself resolves, and mostly needs only `u`'s top 8 bits (see `_random_below`);
  kept values are scaled by 1 / (1 - p), as torch does.
- **Attention.** Transformers' SDPA attention calls `scaled_dot_product_attention`. In training on the CPU that is
  either the math kernel (when there is dropout, with `bernoulli_` again) or the flash kernel (without), whose
  backward took 516 ms against 210 ms for plain matmuls. `attention` below is SDPA written out in float32 (scores,
  mask, softmax, dropout, weighted sum), so its backward is matrix products and its dropout is the fast one.

`cpu_fastpath()` turns both on for CPU tensors that need gradients and leaves everything else (inference,
CUDA, which has its own fused Philox dropout and attention kernels, other functions) to torch. Only the random
stream changes: the masks have the same distribution, and a run stays reproducible from its seed. Given
`projections` (from `sibling_projections`), it also runs each attention block's query, key and value
projections as one product, in training and inference alike.

A third cost is the memory itself: see `retain_freed_memory`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = ["attention", "cpu_fastpath", "dropout", "retain_freed_memory", "sibling_projections"]

_TWO_32 = 2**32
# Masks are made in chunks of this many elements, so that the bits, the comparisons and the ties stay in the L2
# cache between passes: a step's masks took 27 ms instead of 33 (chunks of 2**16: 29 ms, 2**19: 29 ms).
_CHUNK = 1 << 17


def dropout(x: Tensor, p: float, *, generator: torch.Generator | None = None) -> Tensor:
    r"""Inverted dropout with a mask from raw random bits: :math:`y = x \odot m / (1 - p)`, :math:`m_i \sim
    \text{Bernoulli}(1 - p)` independently.

    Each element gets a uniform 32-bit :math:`u_i` and is kept when :math:`u_i < \text{round}((1 - p) \cdot 2^{32})`,
    i.e. with probability within :math:`2^{-33}` of :math:`1 - p` (only the bits the comparison needs are drawn:
    8 for 255 elements in 256, 32 for the rest). The bits come from numpy's PCG64DXSM, seeded by
    one 63-bit draw from `generator` (torch's default generator when None), so `torch.manual_seed` decides every
    mask. Given the mask the arithmetic is torch's CPU dropout's: the mask in `x`'s dtype, divided by :math:`1 - p`
    there (so in bf16 the scale is 1/0.9 rounded, 1.109375, as with `F.dropout`), times `x`. Differentiable in `x`
    (the gradient is the same scaled mask). `x` must be on the CPU.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = _random_below(x.numel(), round((1.0 - p) * _TWO_32), generator).view(x.shape)
    # {0, 1/(1-p)} in x's dtype, then one product each way (bool -> float is a fast conversion, unlike where()).
    return x * keep.to(x.dtype).div_(1.0 - p)


def _random_below(n: int, threshold: int, generator: torch.Generator | None) -> Tensor:
    """`n` booleans, each True with probability exactly `threshold` / 2**32: a uniform 32-bit integer each, compared.

    Only the integers' top 8 bits are drawn for every element: they decide unless they equal the threshold's top
    8 bits (probability 1/256), and only those ties draw the other 24 bits. That is the same comparison of 32 bits,
    with a quarter of the random bits. The bits come from a PCG64DXSM stream seeded by one draw of `generator`:
    numpy's `random_raw` makes 64 bits in ~1.5 ns, and numpy guarantees a bit generator's raw stream for a given
    seed across versions (NEP 19), so masks stay reproducible.

    One thread draws them, the caller's: during training torch's OpenMP threads keep spinning on the other cores
    between operations, and a pool of two numpy threads drawing halves made a step no faster (all-MiniLM-L6-v2,
    2 cores: 456 ms a step against 445 ms on one thread).
    """
    seed = int(torch.empty((), dtype=torch.int64).random_(generator=generator))  # 63 bits
    if threshold >= _TWO_32:  # p < 2**-33: every element is kept
        return torch.ones(n, dtype=torch.bool)
    top, low = np.uint8(threshold >> 24), np.uint64(threshold & 0xFFFFFF)  # threshold is in [0, 2**32) here
    stream = np.random.PCG64DXSM(seed)
    keep = np.empty(n, dtype=np.bool_)
    for a in range(0, n, _CHUNK):  # the stream is drawn in order, chunk by chunk
        b = min(a + _CHUNK, n)
        # 8 elements per 64-bit value, its bytes in little-endian order on every platform
        bits = stream.random_raw((b - a + 7) // 8).astype("<u8", copy=False).view(np.uint8)[: b - a]
        np.less(bits, top, out=keep[a:b])
        ties = np.flatnonzero(bits == top)
        if ties.size:  # the next 24 bits decide: the top 24 of one more 64-bit value each
            keep[a + ties] = (stream.random_raw(ties.size) >> np.uint64(40)) < low
    return torch.from_numpy(keep)


def attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    r"""`torch.nn.functional.scaled_dot_product_attention`, written out with :func:`dropout`:

    .. math:: \text{out} = \text{dropout}\big(\text{softmax}(Q K^\top \cdot s + M)\big)\, V, \quad
        s = 1/\sqrt{d} \text{ unless given}

    `attn_mask` is boolean (True = attend) or additive, broadcastable to (..., L, S). Everything runs in at least
    float32 (bf16/fp16 inputs are upcast, autocast is off inside, and the result is cast back), as torch's math
    kernel computes it; the matrix products here are thin (head size 32-64), so float32 costs little. One difference
    from that kernel: a query row whose keys are all masked out attends uniformly instead of giving zeros (what
    transformers' eager attention does with its additive masks); padding masks never produce such rows for real
    tokens.
    """
    dtype = torch.promote_types(query.dtype, torch.float32)
    if scale is None:
        scale = 1.0 / math.sqrt(query.size(-1))
    with torch.autocast(query.device.type, enabled=False):
        # Contiguous float32 copies in one pass each: the heads usually arrive as a transposed view of a linear
        # layer's output, which `matmul` would otherwise copy a second time to batch over them.
        q, k, v = (t.to(dtype, memory_format=torch.contiguous_format) for t in (query, key, value))
        if enable_gqa and k.size(-3) != q.size(-3):  # grouped-query attention: each key head serves a group
            k = k.repeat_interleave(q.size(-3) // k.size(-3), dim=-3)
            v = v.repeat_interleave(q.size(-3) // v.size(-3), dim=-3)
        # Scale the thin query rather than the L x S scores; mask in place (the product's backward needs q and k,
        # not its output), so the only L x S tensors made are the scores, the probabilities and the dropped ones.
        scores = torch.matmul(q * scale, k.transpose(-2, -1))
        if is_causal:
            causal = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
            attn_mask = causal if attn_mask is None else _as_bool(attn_mask) & causal
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:  # as an additive mask: its backward is the identity, no L x S copy
                attn_mask = torch.zeros(attn_mask.shape, dtype=dtype, device=q.device).masked_fill_(
                    ~attn_mask, torch.finfo(dtype).min
                )
            if torch.broadcast_shapes(scores.shape, attn_mask.shape) == scores.shape:
                scores.add_(attn_mask)
            else:
                scores = scores + attn_mask
        probs = torch.softmax(scores, dim=-1)
        if dropout_p > 0.0:
            probs = dropout(probs, dropout_p)
        out = torch.matmul(probs, v)  # (..., heads, L, head size)
        if out.dim() < 4:
            return out.to(query.dtype)
        # Returned as a view of (..., L, heads, head size) memory, as torch's own CPU kernels do: callers transpose
        # the heads back next to the hidden size, which then costs no copy.
        return out.transpose(-3, -2).to(query.dtype, memory_format=torch.contiguous_format).transpose(-3, -2)


def _as_bool(mask: Tensor) -> Tensor:
    return mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min


def _needs_grad(*tensors: Any) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _sdpa_args(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return (query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


# Attributes naming an attention block's query, key and value projections: BERT, RoBERTa, ELECTRA, ALBERT, XLM-R;
# DistilBERT; DeBERTa-v2/v3; MPNet.
_PROJECTION_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"),
                     ("query_proj", "key_proj", "value_proj"), ("q", "k", "v"))  # fmt: skip


def sibling_projections(model: nn.Module) -> list[tuple[nn.Linear, ...]]:
    """The query, key and value `nn.Linear` layers of each attention block of `model`, for :func:`cpu_fastpath`
    to run as one product: same input width, dtype and device, all with a bias or all without. Subclasses (Mixout's
    `MixLinear`, whose forward mixes its weight first) are left out."""
    groups = []
    for module in model.modules():
        for names in _PROJECTION_NAMES:
            layers = [getattr(module, n, None) for n in names]
            if not all(type(layer) is nn.Linear for layer in layers):
                continue
            first = layers[0]
            if all(layer.in_features == first.in_features and layer.weight.dtype == first.weight.dtype
                   and layer.weight.device == first.weight.device
                   and (layer.bias is None) == (first.bias is None) for layer in layers):  # fmt: skip
                groups.append(tuple(layers))
    return groups


class _CPUFastPath(TorchFunctionMode):
    """Routes `F.dropout` and `F.scaled_dot_product_attention` on CPU training tensors to this module's versions,
    and runs each group of `projections` that reads one input as one product (see :func:`cpu_fastpath`)."""

    def __init__(self, projections: Sequence[tuple[nn.Linear, ...]] = ()) -> None:
        super().__init__()
        self.groups = list(projections)
        # id(weight) -> (group, position); F.linear receives the layer's own Parameter
        self.member = {id(lin.weight): (g, i) for g, group in enumerate(self.groups) for i, lin in enumerate(group)}
        self.pending: dict[int, tuple[Tensor, list[Tensor | None]]] = {}  # group -> (input, outputs not yet taken)

    def _projection(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor | None:
        g, i = self.member[id(weight)]
        if g in self.pending:
            inp, outs = self.pending[g]
            if inp is x and outs[i] is not None:
                out, outs[i] = outs[i], None
                if all(o is None for o in outs):
                    del self.pending[g]
                return out
            # Another input, or the same projection twice (cross-attention, say): these layers do not share an
            # input here, so they run one by one from now on.
            del self.pending[g]
            self.member = {k: v for k, v in self.member.items() if v[0] != g}
            return None
        layers = self.groups[g]
        w = torch.cat([layer.weight for layer in layers])
        b = None if bias is None else torch.cat([layer.bias for layer in layers])
        outs: list[Tensor | None] = list(F.linear(x, w, b).split([layer.out_features for layer in layers], dim=-1))
        out, outs[i] = outs[i], None
        self.pending[g] = (x, outs)
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func is F.linear and self.member:
            x, weight, bias = _linear_args(*args, **kwargs)
            if id(weight) in self.member and x.device.type == "cpu":
                out = self._projection(x, weight, bias)
                if out is not None:
                    return out
        elif func is F.dropout:
            x, p, training, inplace = _dropout_args(*args, **kwargs)
            if training and not inplace and x.device.type == "cpu" and x.is_floating_point() and 0.0 < p < 1.0:
                return dropout(x, p)
        elif func is F.scaled_dot_product_attention:
            sdpa = _sdpa_args(*args, **kwargs)
            query, key, value = sdpa[:3]
            if query.device.type == "cpu" and _needs_grad(query, key, value) and not query.is_nested:
                return attention(*sdpa)
        return func(*args, **kwargs)


def _dropout_args(input, p=0.5, training=True, inplace=False):  # noqa: A002 (F.dropout's own parameter name)
    return input, p, training, inplace


def _linear_args(input, weight, bias=None):  # noqa: A002 (F.linear's own parameter name)
    return input, weight, bias


@contextlib.contextmanager
def cpu_fastpath(enabled: bool = True, *, projections: Sequence[tuple[nn.Linear, ...]] = ()) -> Iterator[None]:
    """Within this block, CPU dropout and attention that need gradients use :func:`dropout` and :func:`attention`,
    and each group of `projections` (from :func:`sibling_projections`) called on one input runs as one product.

    The first layer of a group that is called computes all of them, with its weights and biases concatenated; the
    others then return their slice of that output when called on the same tensor. One product instead of three
    casts the input to bf16 once, and its backward sums the input's gradient inside one product instead of adding
    three; 6 ms off a 380 ms step (all-MiniLM-L6-v2, bf16, paired over 64 steps). A group whose layers turn out to
    be called on different inputs runs layer by layer for the rest of the block.
    """
    if not enabled:
        yield
        return
    with _CPUFastPath(projections):
        yield


# glibc's mallopt parameters (malloc.h) and the values set: 32 MiB is the largest mmap threshold glibc accepts on
# 64-bit; 1 GiB of free heap is kept before any is given back.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 1 << 30
_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Keep memory the process frees for its next allocations, instead of handing it back to the OS (glibc only;
    once per process). Returns whether it is in effect.

    glibc serves blocks above its mmap threshold (128 KiB at first) with fresh pages and unmaps them when freed,
    and gives the top of the heap back above 128 KiB. Every training step frees and re-makes the same few hundred
    MB of activations, so each step took ~17k page faults, every page zero-filled again (all-MiniLM-L6-v2, batch 32),
    and an evaluation ~60k, ~14% of its time. Raising both thresholds, as `MALLOC_MMAP_THRESHOLD_` and
    `MALLOC_TRIM_THRESHOLD_` would at start-up, brings that to ~4k per step and a few hundred per evaluation. The
    cost: the process's resident memory stays near its peak, as with PyTorch's own CUDA caching allocator.
    """
    global _retained
    if _retained is None:
        _retained = False
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version"):
            _retained = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
            )
    return _retained
