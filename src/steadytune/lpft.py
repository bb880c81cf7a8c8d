"""LP-FT: linear probing, then fine-tuning (Kumar et al., ICLR 2022, "Fine-Tuning can Distort Pretrained Features
and Underperform Out-of-Distribution"), the body of fit's `lp-ft` family.

A head fitted on the frozen encoder's features (the probe's: `steadytune.probe.fit_head`, or the small-file head) is
the starting point; then the encoder and that head are fine-tuned together on the labels:

    logits = pool(encoder(x)) · Wᵀ + b            (W, b: the probe's head, `steadytune.probe.ProbeModel`)
    loss   = cross-entropy(logits, y)             (regression: (logits[:, 0] − y)²)

A randomly initialised head sends large, arbitrary gradients into the encoder during the first steps and distorts the
features the head should have used; a head that already separates the classes asks the encoder only for what the
features lack. Kumar et al. measured it above plain fine-tuning in and out of distribution.

The fine-tuning is the paper's stabilised recipe where it applies (Zhang et al., ICLR 2021): bias-corrected Adam
(torch's AdamW), warm-up over the first 10% of steps then linear decay (BERT's schedule), gradients clipped to norm
1. Re-initialising the top layers (paper §5) does not apply: the head was fitted to those layers' features. "Train
longer" (paper §6): 10 epochs, with at least 100 steps (`LpftSettings`).

Speed: the word-embedding rows the rows never reach are left out of training, as in `steadytune.contrastive`
(`steadytune.tuning`), and only their weight decay is applied at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data.encode import encode
from .data.splits import Split
from .probe import ProbeModel, pool
from .tuning import tune

__all__ = ["LpftSettings", "lpft_steps", "train_lpft"]


@dataclass(frozen=True)
class LpftSettings:
    """The fine-tuning stage of LP-FT (module docstring)."""

    lr: float = 2e-5
    """Peak learning rate, encoder and head alike. The paper's 2e-5, not `recipes.default_lr`'s 1e-4 for a narrow
    encoder: that rate is measured for a randomly initialised head, which has far to go; this one starts at the
    probe's solution and the encoder should move little (Kumar et al.). docs/results/small-data measures it."""
    epochs: int = 10
    """Passes over the rows (paper §6: training longer than BERT's 3 epochs helps on small data)."""
    min_steps: int = 100
    """At least this many steps however few the rows: 16 rows in batches of 16 give 10 epochs of 1 step each, too few
    for warm-up and decay to mean anything (Mosbach et al. 2021 tie stability to the number of updates, not epochs)."""
    batch_size: int = 16
    warmup: float = 0.1
    """Share of the steps over which the learning rate rises linearly from 0."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0


def lpft_steps(rows: int, settings: LpftSettings = LpftSettings()) -> int:
    """The steps `train_lpft` takes on `rows` rows: `epochs` passes in batches, at least `min_steps`."""
    return max(settings.min_steps, settings.epochs * -(-rows // settings.batch_size))


def train_lpft(model: ProbeModel, tokenizer: Any, split: Split, *, seed: int,
               settings: LpftSettings = LpftSettings(), max_length: int = 128, device: torch.device | None = None,
               precision: str = "fp32", fast_path: bool = True, compact_embedding: bool = True,
               step_done: Callable[[int, int, float], None] | None = None) -> list[float]:  # fmt: skip
    """Fine-tune `model` (a `ProbeModel` whose head is the probe's solution; changed in place, left in eval mode) on
    `split`'s labels for `lpft_steps` steps, the rows reshuffled each pass (`steadytune.tuning.tune`); returns the
    loss of every step.

    The arguments mean what they mean in `steadytune.contrastive.train_contrastive`; so does a non-finite loss
    (the pass stops, the list ends with it)."""
    base = model.encoder
    device = device or next(base.parameters()).device
    model.to(device)
    regression = model.weight.shape[0] == 1
    labels = torch.as_tensor(np.asarray(split.labels), dtype=torch.float32 if regression else torch.long)
    data = encode(split, tokenizer, max_length=max_length)
    steps = lpft_steps(len(labels), settings)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(labels)) for _ in range(-(-steps * settings.batch_size //
                                                                           len(labels)))])  # fmt: skip
    # The head becomes trainable for the run and a buffer again after it (`ProbeModel` keeps it as buffers).
    weight, bias = torch.nn.Parameter(model.weight.detach().clone()), torch.nn.Parameter(model.bias.detach().clone())

    def loss_of(step: int) -> torch.Tensor:
        rows = order[step * settings.batch_size : (step + 1) * settings.batch_size]
        inputs = {k: v.to(device) for k, v in data.batch(rows, tokenizer).items() if k != "labels"}
        target = labels[rows].to(device)
        logits = pool(base(**inputs), inputs["attention_mask"], model.pooling).float() @ weight.T + bias
        if regression:
            return torch.nn.functional.mse_loss(logits[:, 0], target)
        return torch.nn.functional.cross_entropy(logits, target)

    try:
        return tune(base, data, tokenizer, loss_of, steps=steps, settings=settings, seed=seed,
                    head={"weight": weight, "bias": bias}, device=device, precision=precision, fast_path=fast_path,
                    compact_embedding=compact_embedding, step_done=step_done)  # fmt: skip
    finally:
        model.weight.copy_(weight.detach())
        model.bias.copy_(bias.detach())
