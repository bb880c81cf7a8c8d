"""A steadytune recipe inside your own `transformers.Trainer`.

    from steadytune import hf

    hf.prepare_model(model, "adam+reinit:2+llrd")                        # re-init / Mixout, before the optimizer
    optimizer, scheduler = hf.create_optimizer(model, "adam+reinit:2+llrd", num_training_steps=300)
    trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...,
                      optimizers=(optimizer, scheduler), compute_metrics=hf.metrics_function(num_labels=2),
                      callbacks=[hf.StabilityCallback(labels=eval_labels, num_labels=2)])

The recipe's batch size, budget and gradient clipping are the Trainer's to apply: set `per_device_train_batch_size`,
`max_steps` (the same `num_training_steps`) and `max_grad_norm` in `TrainingArguments` (see `training_arguments`).
On a CPU, `with steadytune.cpu_fastpath(projections=steadytune.sibling_projections(model)): trainer.train()` also
gives the Trainer steadytune's faster dropout and attention and one product for each block's query, key and value
(`steadytune.fastpath`); evaluation inside it keeps torch's attention. Calling `retain_freed_memory()` from
`steadytune.fastpath` once saves the Trainer the page faults of re-allocating each step's activations.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback, TrainingArguments

from .metrics import compute_metrics, constant_baseline, is_failed
from .models import resolve_device
from .precision import resolve_precision
from .recipes import Recipe, create_optimizer_and_scheduler
from .recipes import prepare_model as _prepare_model

__all__ = ["StabilityCallback", "create_optimizer", "metrics_function", "prepare_model", "training_arguments"]

logger = logging.getLogger("steadytune")


def prepare_model(model: nn.Module, recipe: Recipe | str, *, seed: int = 0) -> dict[str, list[str]]:
    """Apply the recipe's model surgery (re-init, then Mixout) in place; draws come from `seed`.

    Call it before building the optimizer. Returns {"reinitialized": parameter names, "mixout": module names}.
    """
    return _prepare_model(model, Recipe.parse(recipe), generator=torch.Generator().manual_seed(seed))


def create_optimizer(
    model: nn.Module, recipe: Recipe | str, num_training_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """`(optimizer, scheduler)` for `Trainer(optimizers=...)`: the recipe's Adam/BERTAdam over its parameter groups
    (with LLRD and pre-trained weight decay when the recipe has them) and linear warm-up then decay to 0 over
    `num_training_steps`, exactly as `steadytune train` builds them."""
    return create_optimizer_and_scheduler(model, Recipe.parse(recipe), num_training_steps)


def training_arguments(recipe: Recipe | str, num_examples: int, *, device: str = "auto") -> dict[str, Any]:
    """The `TrainingArguments` keywords that carry the rest of the recipe: batch size, budget, clipping, precision
    (`bf16`, resolved for `device` as `steadytune train` does; on a CPU also `use_cpu=True`) and length grouping
    (`group_by_length`: the Trainer's own sampler, with its mega-batches of 50 batches; `train_sampling_strategy`
    in transformers 5)."""
    recipe = Recipe.parse(recipe)
    where = resolve_device(device)
    precision = resolve_precision(recipe.precision, where)
    out = {"per_device_train_batch_size": recipe.batch_size, "max_steps": recipe.num_training_steps(num_examples),
           "max_grad_norm": recipe.max_grad_norm, "bf16": precision == "bf16"}  # fmt: skip
    if where.type == "cpu":
        # The Trainer checks bf16 against its own device: without use_cpu it refuses bf16 on a CPU that has it
        # ("Your setup doesn't support bf16/gpu"), and on a machine with an unused GPU it would train there.
        out["use_cpu"] = True
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:  # transformers 5
        out["train_sampling_strategy"] = "group_by_length" if recipe.group_by_length else "random"
    else:  # transformers 4.x
        # 4.x's default report_to="all" logs to every installed tracker (W&B then asks for a login and fails without
        # one); 5.x's default is "none". The same on both; to track, set extra["report_to"] before passing it on.
        out["report_to"] = "none"
        out["group_by_length"] = recipe.group_by_length
    return out


def metrics_function(*, num_labels: int):
    """A `compute_metrics` for `Trainer`: steadytune's metrics (accuracy, f1, mcc / pearson, spearmanr)."""

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        preds = logits.squeeze(-1) if num_labels == 1 else np.asarray(logits).argmax(-1)
        return compute_metrics(preds, labels, num_labels=num_labels)

    return compute


class StabilityCallback(TrainerCallback):
    """Watch a Trainer run for the failures the paper is about.

    - Gradient norm: every optimizer step, the global norm of the gradients the optimizer receives is kept in
      `grad_norms` (after the Trainer's clipping, when `max_grad_norm` > 0; the Trainer's own pre-clip `grad_norm`
      appears in its logs and is kept in `history` with the loss). The norms stay on the device and are read back
      together at each log, evaluation and at the end, so the callback adds no host sync per step on a GPU.
    - Divergence: a NaN/inf loss or gradient norm stops training (`control.should_training_stop`) and sets
      `diverged`; it is a recorded outcome, not an exception. It is noticed at the next log (`logging_steps`).
    - Failure at the end (Mosbach et al. 2021): `failed` is True when the run diverged or its last evaluation's
      `metric` is at or below the best constant predictor's (given, or computed from `labels`:
      `steadytune.metrics.constant_baseline`). Logged as a warning
      and appended to `state.log_history` as {"steadytune_failed": ...}. Without any evaluation `failed` is None.
    """

    def __init__(
        self, *, metric: str = "accuracy", baseline: float | None = None, labels=None, num_labels: int | None = None
    ) -> None:
        if baseline is None and labels is not None:
            if num_labels is None:
                raise ValueError("num_labels is needed to compute the constant baseline from labels")
            baseline = constant_baseline(labels, num_labels=num_labels, metric=metric).score
        self.metric, self.baseline = metric, baseline
        self._grad_norms: list[tuple[int, float]] = []
        self._pending: list[tuple[int, torch.Tensor]] = []  # norms not read back from the device yet
        self.history: list[dict[str, float]] = []
        self.last_eval: dict[str, float] | None = None
        self.diverged = False
        self.failed: bool | None = None

    @property
    def grad_norms(self) -> list[tuple[int, float]]:
        """(step, global gradient norm) of every optimizer step so far."""
        self._read_back()
        return self._grad_norms

    def _read_back(self, control=None) -> None:
        if not self._pending:
            return
        steps = [s for s, _ in self._pending]
        norms = torch.stack([n for _, n in self._pending]).float().cpu()  # one transfer for all of them
        self._pending.clear()
        self._grad_norms += list(zip(steps, norms.tolist()))
        if not bool(torch.isfinite(norms).all()):
            self.diverged = True
            if control is not None:
                control.should_training_stop = True

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grads = [p.grad for p in model.parameters() if p.grad is not None] if model is not None else []
        if grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            self._pending.append((state.global_step + 1, norm.detach()))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._read_back(control)
        logs = logs or {}
        seen = {k: float(logs[k]) for k in ("loss", "grad_norm") if isinstance(logs.get(k), (int, float))}
        if seen:
            self.history.append({"step": state.global_step, **seen})
            if not all(math.isfinite(v) for v in seen.values()):
                self.diverged = True
                control.should_training_stop = True
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._read_back(control)
        self.last_eval = dict(metrics or {})
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._read_back(control)
        score = None if self.last_eval is None else self.last_eval.get(f"eval_{self.metric}")
        if self.diverged:
            self.failed = True
            logger.warning("steadytune: the run diverged (non-finite loss or gradient norm); counted as failed")
        elif score is None or self.baseline is None:
            self.failed = None
            logger.warning(f"steadytune: cannot judge failure: no eval_{self.metric} or no baseline "
                           "(evaluate at the end, and pass baseline= or labels=)")  # fmt: skip
        else:
            self.failed = is_failed(score, self.baseline)
            if self.failed:
                logger.warning(f"steadytune: FAILED run: eval_{self.metric} {score:.4f} ≤ {self.baseline:.4f}, "
                               "the best constant predictor's (Mosbach et al. 2021)")  # fmt: skip
        state.log_history.append({"step": state.global_step, "steadytune_failed": self.failed,
                                  "steadytune_diverged": self.diverged})  # fmt: skip
        return control
