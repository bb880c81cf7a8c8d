"""Contrastive fine-tuning of a sentence encoder: SetFit's first stage (Tunstall et al. 2022, "Efficient Few-Shot
Learning Without Prompts"), the body of fit's `contrastive` family; its second stage is the probe's head
(`steadytune.probe.fit_head`) over the tuned encoder's features.

Pairs are drawn from the labels as SetFit draws them with `num_iterations`: in each of `iterations` rounds, every
row gets one partner of its own class (target similarity 1) and one of another class (target 0), so a file of n rows
gives 2·iterations·n pairs, growing with n rather than n². The pairs are batched by length as `train` batches rows
(`pair_batches`, `steadytune.data.batching.epoch_batches`: random mega-batches of 16 batches, each sorted by the
longer text of its pairs, the batches shuffled), where SetFit takes them in random order: a batch is padded to its
longest text, and on 1,024 SST-2 rows random batches held 3.1 padded tokens per real one, grouped ones 1.5. Each
pair's two texts are encoded and pooled as the encoder pools (`steadytune.probe.pool`), and the loss is the squared
difference between their cosine similarity and the target (sentence-transformers' `CosineSimilarityLoss`, SetFit's
default), trained one pass with AdamW (a row that occurs twice in a batch is encoded once, so its two occurrences
share a dropout mask):

    loss = mean over the batch of (cos(u, v) − target)²

The settings are SetFit 1.2.0's defaults, so that a comparison with it measures the implementation: batch 16, learning
rate 2e-5 warmed up linearly over the first 10% of steps then decayed linearly to 0, weight decay 0.01 except on
biases and LayerNorm weights, gradients clipped to norm 1 (sentence-transformers' `fit`). Two departures: the
batches' order by length (above; `ContrastiveSettings.group_by_length=False` takes SetFit's random order), and the
label names.

The label names are text the user already gave: where they are words ("negative", "positive"; not "0", "1" or
"LABEL_2": `label_rows`), each joins the rows `ContrastiveSettings.label_copies` times as a row of its own class.
Those rows are partners only (`pairs`' `drawing`): every row still draws its two partners a round, now sometimes its
class's name or another class's, so the pairs, steps and time stay the file's, and the head is fitted on the rows and
the names together. all-MiniLM-L6-v2 alone puts 64% of SST-2's dev sentences nearer "positive" or "negative" as
they should be, about what SetFit learns from 16 rows (0.640); the names give a small file that knowledge for free,
and matter less the more rows there are (8 name rows beside 16 rows, beside 1,024).

Why not `setfit` itself: it saves its head with pickle (`model_head.pkl`), which steadytune never loads, and it brings
sentence-transformers and its own trainer for one loop of forty lines; the head here is the probe's, saved as
safetensors, and the encoder is any transformers encoder, pooled as it was trained (docs/results/small-data compares
the two on the same rows).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data.batching import GROUP_BATCHES, epoch_batches
from .data.encode import encode
from .data.splits import Split
from .probe import Pooling, pool
from .tuning import tune

__all__ = ["ContrastiveSettings", "label_rows", "pair_batches", "pairs", "train_contrastive", "with_partners"]


@dataclass(frozen=True)
class ContrastiveSettings:
    """SetFit 1.2.0's defaults (module docstring), with `num_iterations` at the SetFit paper's 20, and the pairs
    batched by length."""

    iterations: int = 20
    """Rounds of pair drawing: each gives every row one same-class and one other-class partner."""
    batch_size: int = 16
    lr: float = 2e-5
    warmup: float = 0.1
    """Share of the steps over which the learning rate rises linearly from 0."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    group_by_length: bool = True
    """Batch pairs of similar length together (`pair_batches`), where SetFit draws them in random order: the same
    pairs and steps on fewer pad tokens. A contrastive step on 1,024 SST-2 rows (all-MiniLM-L6-v2, bf16, 2 threads)
    took 251 ms in random batches and 177 ms grouped."""
    label_copies: int = 8
    """Each label name joins the rows as a partner this many times (`label_rows`), where the names are words: the
    pairs then also pull each row towards its class's name. 0: the rows alone, as SetFit. Chosen on SST-2's 16-row
    samples 0-4 of docs/results/small-data (all-MiniLM-L6-v2, all 872 dev rows): the delivered model scored 0.674 ±
    0.045 with 8 copies, 0.669 ± 0.043 with 4 and 0.631 ± 0.064 with none, SetFit 0.640 on the same rows. Chosen
    there, so no evidence there: the page registers a confirmation on new samples."""


# A label name that says nothing to an encoder: a number, or transformers' default name for a class ("LABEL_0").
_MEANINGLESS = re.compile(r"(label[_ ]?)?[-+.\d\s]*", re.IGNORECASE)


def label_rows(label_names: Sequence[str] | None, *, copies: int) -> Split | None:
    """The label names as rows of their own class (label id i: `label_names[i]`), `copies` times each, to join the
    rows as partners (`train_contrastive`'s `partners`); None for a regression task, `copies` 0, or where a name is
    not a word (`_MEANINGLESS`: "0", "1", "LABEL_2"), whose text would only be noise to the encoder."""
    if not label_names or copies <= 0 or any(_MEANINGLESS.fullmatch(name.strip()) for name in label_names):
        return None
    ids = np.tile(np.arange(len(label_names)), copies)
    return Split(([label_names[i] for i in ids],), ids, name="label names")


def with_partners(split: Split, partners: Split | None) -> Split:
    """`split`'s rows followed by `partners`' (`label_rows`), one split (a single text column each)."""
    return split if partners is None else split.concat(partners)


def pairs(labels: np.ndarray, *, iterations: int, rng: np.random.Generator, drawing: int | None = None) -> np.ndarray:
    """(first row, second row, target) triples, shuffled: per round and row, a partner of the same class (another
    row where the class has one) with target 1, and one of another class with target 0. `labels` must hold at least
    two classes. Only the first `drawing` rows (all by default) draw partners; the rest (the label names:
    `label_rows`) are partners only, so that they add no pairs: 2·iterations·drawing in all."""
    labels = np.asarray(labels)
    drawing = len(labels) if drawing is None else drawing
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    if len(by_class) < 2:
        raise ValueError("contrastive pairs need at least two classes")
    others = {c: np.flatnonzero(labels != c) for c in by_class}
    out = []
    for _ in range(iterations):
        for i, c in enumerate(labels[:drawing]):
            same = by_class[c][by_class[c] != i]  # a class of one row pairs it with itself
            out.append((i, same[rng.integers(len(same))] if len(same) else i, 1.0))
            out.append((i, others[c][rng.integers(len(others[c]))], 0.0))
    triples = np.asarray(out, dtype=np.float64)
    return triples[rng.permutation(len(triples))]


def pair_batches(triples: np.ndarray, lengths: np.ndarray, *, batch_size: int, seed: int,
                 group_batches: int | None = GROUP_BATCHES) -> list[np.ndarray]:  # fmt: skip
    """The pass's batches of `triples` (`pairs`), as positions into it: length-grouped by the longer of each pair's
    two rows (`lengths`: their token counts) as `steadytune.data.batching.epoch_batches` groups rows, from a
    generator seeded with `seed`; `group_batches=None` keeps the random order. Every pair once; only one batch can
    be short, so there are ceil(pairs / batch_size) of them, as in SetFit's random order."""
    first, second = triples[:, 0].astype(np.int64), triples[:, 1].astype(np.int64)
    longer = np.maximum(np.asarray(lengths)[first], np.asarray(lengths)[second])
    batches = epoch_batches(longer, batch_size, torch.Generator().manual_seed(seed), group_batches=group_batches)
    return [b.numpy() for b in batches]


def train_contrastive(encoder: Any, tokenizer: Any, split: Split, pooling: Pooling, *, seed: int,
                      settings: ContrastiveSettings = ContrastiveSettings(), max_length: int = 128,
                      device: torch.device | None = None, precision: str = "fp32", fast_path: bool = True,
                      compact_embedding: bool = True, partners: Split | None = None,
                      step_done: Callable[[int, int, float], None] | None = None) -> list[float]:  # fmt: skip
    """Tune `encoder` (a transformers encoder, changed in place and left in eval mode) on pairs drawn from `split`'s
    labels (`pairs`), one pass in length-grouped batches of `settings.batch_size` (`pair_batches`;
    `steadytune.tuning.tune`: AdamW, BERT's schedule, clipping); returns the loss of every step.

    `step_done(step, steps, loss)` is called after each step (a progress bar). `precision` ("fp32" or "bf16",
    resolved) and `fast_path` (`steadytune.fastpath.cpu_fastpath`, on a CPU) are `train`'s settings of the same
    names. A non-finite loss stops the pass: the loss list then ends with it, and the caller decides what the
    encoder is worth. `compact_embedding` (`train`'s setting of that name): only the word-embedding rows the split's
    tokens reach are trained, the encoder the dense run's to rounding (`steadytune.tuning`)."""
    base = getattr(encoder, "base_model", encoder)
    device = device or next(base.parameters()).device
    rng = np.random.default_rng(seed)
    drawing, split = len(split), with_partners(split, partners)
    triples = pairs(np.asarray(split.labels), iterations=settings.iterations, rng=rng, drawing=drawing)
    data = encode(split, tokenizer, max_length=max_length)
    batches = pair_batches(triples, data.lengths, batch_size=settings.batch_size, seed=seed,
                           group_batches=GROUP_BATCHES if settings.group_by_length else None)  # fmt: skip

    def loss_of(step: int) -> torch.Tensor:
        batch = triples[batches[step]]
        # Each distinct row of the batch is encoded once (a small file repeats rows within a batch: 16 pairs of a
        # 16-row file hold at most 16 distinct texts, not 32); u and v are gathered from those vectors.
        rows, where = np.unique(batch[:, :2].astype(np.int64).T.ravel(), return_inverse=True)
        inputs = {k: v.to(device) for k, v in data.batch(rows, tokenizer).items() if k != "labels"}
        vectors = pool(base(**inputs), inputs["attention_mask"], pooling).float()[torch.as_tensor(where)]
        u, v = vectors[: len(batch)], vectors[len(batch) :]
        target = torch.as_tensor(batch[:, 2], dtype=vectors.dtype, device=device)
        return torch.nn.functional.mse_loss(torch.nn.functional.cosine_similarity(u, v), target)

    return tune(base, data, tokenizer, loss_of, steps=len(batches), settings=settings,
                seed=seed, device=device, precision=precision, fast_path=fast_path,
                compact_embedding=compact_embedding, step_done=step_done)  # fmt: skip
