"""Contrastive fine-tuning of a sentence encoder: SetFit's first stage (Tunstall et al. 2022, "Efficient Few-Shot
Learning Without Prompts"), the body of fit's `contrastive` family; its second stage is the probe's head
(`steadytune.probe.fit_head`) over the tuned encoder's features.

Pairs are drawn from the labels as SetFit draws them with `num_iterations`: in each of `iterations` rounds, every
row gets one partner of its own class (target similarity 1) and one of another class (target 0), so a file of n rows
gives 2·iterations·n pairs, growing with n rather than n². Each pair's two texts are encoded and pooled as the
encoder pools (`steadytune.probe.pool`), and the loss is the squared difference between their cosine similarity and
the target (sentence-transformers' `CosineSimilarityLoss`, SetFit's default), trained one pass with AdamW (a row
that occurs twice in a batch is encoded once, so its two occurrences share a dropout mask):

    loss = mean over the batch of (cos(u, v) − target)²

The settings are SetFit 1.2.0's defaults, so that a comparison with it measures the implementation: batch 16, learning
rate 2e-5 warmed up linearly over the first 10% of steps then decayed linearly to 0, weight decay 0.01 except on
biases and LayerNorm weights, gradients clipped to norm 1 (sentence-transformers' `fit`).

Why not `setfit` itself: it saves its head with pickle (`model_head.pkl`), which steadytune never loads, and it brings
sentence-transformers and its own trainer for one loop of forty lines; the head here is the probe's, saved as
safetensors, and the encoder is any transformers encoder, pooled as it was trained (docs/results/small-data compares
the two on the same rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data.encode import encode
from .data.splits import Split
from .fastpath import cpu_fastpath, sibling_projections
from .precision import autocast
from .probe import Pooling, pool
from .vocab import reachable_rows, restore_rows

__all__ = ["ContrastiveSettings", "pairs", "train_contrastive"]


@dataclass(frozen=True)
class ContrastiveSettings:
    """SetFit 1.2.0's defaults (module docstring), with `num_iterations` at the SetFit paper's 20."""

    iterations: int = 20
    """Rounds of pair drawing: each gives every row one same-class and one other-class partner."""
    batch_size: int = 16
    lr: float = 2e-5
    warmup: float = 0.1
    """Share of the steps over which the learning rate rises linearly from 0."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0


def pairs(labels: np.ndarray, *, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(first row, second row, target) triples, shuffled: per round and row, a partner of the same class (another
    row where the class has one) with target 1, and one of another class with target 0. `labels` must hold at least
    two classes."""
    labels = np.asarray(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    if len(by_class) < 2:
        raise ValueError("contrastive pairs need at least two classes")
    others = {c: np.flatnonzero(labels != c) for c in by_class}
    out = []
    for _ in range(iterations):
        for i, c in enumerate(labels):
            same = by_class[c][by_class[c] != i]  # a class of one row pairs it with itself
            out.append((i, same[rng.integers(len(same))] if len(same) else i, 1.0))
            out.append((i, others[c][rng.integers(len(others[c]))], 0.0))
    triples = np.asarray(out, dtype=np.float64)
    return triples[rng.permutation(len(triples))]


def train_contrastive(encoder: Any, tokenizer: Any, split: Split, pooling: Pooling, *, seed: int,
                      settings: ContrastiveSettings = ContrastiveSettings(), max_length: int = 128,
                      device: torch.device | None = None, precision: str = "fp32", fast_path: bool = True,
                      compact_embedding: bool = True,
                      step_done: Callable[[int, int, float], None] | None = None) -> list[float]:  # fmt: skip
    """Tune `encoder` (a transformers encoder, changed in place and left in eval mode) on pairs drawn from `split`'s
    labels (`pairs`), one pass in batches of `settings.batch_size`; returns the loss of every step.

    `step_done(step, steps, loss)` is called after each step (a progress bar). `precision` ("fp32" or "bf16",
    resolved) and `fast_path` (`steadytune.fastpath.cpu_fastpath`, on a CPU) are `train`'s settings of the same
    names. A non-finite loss stops the pass: the loss list then ends with it, and the caller decides what the
    encoder is worth.

    `compact_embedding` (`train`'s setting of that name): only the word-embedding rows the split's tokens reach are
    trained (`steadytune.vocab`). Every other row's gradient is zero at every step, so AdamW, from zero moments,
    moves it by its decoupled weight decay alone, θ·(1 − lr_t·λ) a step; that product is applied to those rows once
    at the end, so the encoder is the dense run's to rounding and each step skips ~20,000 rows of MiniLM's 30,522."""
    from transformers import get_linear_schedule_with_warmup

    base = getattr(encoder, "base_model", encoder)
    device = device or next(base.parameters()).device
    rng = np.random.default_rng(seed)
    triples = pairs(np.asarray(split.labels), iterations=settings.iterations, rng=rng)
    data = encode(split, tokenizer, max_length=max_length)
    steps = -(-len(triples) // settings.batch_size)
    kept = None
    if compact_embedding:
        pad = [tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else []
        kept = reachable_rows(base, np.concatenate([*(np.asarray(f["input_ids"]) for f in data.features), pad]))
    decay = [p for n, p in base.named_parameters() if p.requires_grad and not _no_decay(n)]
    plain = [p for n, p in base.named_parameters() if p.requires_grad and _no_decay(n)]
    # torch's fused kernel: the same update as the default foreach AdamW (to rounding), 30% less time per step here
    # (all-MiniLM-L6-v2, 64 SST-2 rows, bf16 on 2 CPU cores: 262 → 183 ms a step, the same losses to 3 digits).
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": plain, "weight_decay": 0.0}], lr=settings.lr, fused=fused)  # fmt: skip
    schedule = get_linear_schedule_with_warmup(optimizer, round(settings.warmup * steps), steps)
    fast = fast_path and device.type == "cpu"
    projections = sibling_projections(base) if fast else []
    torch.manual_seed(seed)  # dropout
    base.train()
    losses: list[float] = []
    decayed = 1.0  # the product of (1 − lr_t·λ) over the steps taken: what the rows left out would have shrunk by
    try:
        for step in range(steps):
            batch = triples[step * settings.batch_size : (step + 1) * settings.batch_size]
            # Each distinct row of the batch is encoded once (a small file repeats rows within a batch: 16 pairs of
            # a 16-row file hold at most 16 distinct texts, not 32); u and v are gathered from those vectors.
            rows, where = np.unique(batch[:, :2].astype(np.int64).T.ravel(), return_inverse=True)
            inputs = {k: v.to(device) for k, v in data.batch(rows, tokenizer).items() if k != "labels"}
            with autocast(precision, device), cpu_fastpath(fast, projections=projections):
                vectors = pool(base(**inputs), inputs["attention_mask"], pooling).float()[torch.as_tensor(where)]
                u, v = vectors[: len(batch)], vectors[len(batch) :]
                target = torch.as_tensor(batch[:, 2], dtype=vectors.dtype, device=device)
                loss = torch.nn.functional.mse_loss(torch.nn.functional.cosine_similarity(u, v), target)
            losses.append(float(loss.detach()))
            if not np.isfinite(losses[-1]):
                break
            loss.backward()
            torch.nn.utils.clip_grad_norm_(base.parameters(), settings.max_grad_norm)
            decayed *= 1.0 - optimizer.param_groups[0]["lr"] * settings.weight_decay
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            if step_done is not None:
                step_done(step + 1, steps, losses[-1])
    finally:
        base.eval()
        if kept is not None:
            restore_rows(base, kept, left_out_scale=decayed)
    return losses


def _no_decay(name: str) -> bool:
    """Biases and LayerNorm weights take no weight decay (BERT's and sentence-transformers' convention)."""
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
