"""One fine-tuning run, start to finish: `train(config)` → `RunResult`.

`config.recipe` says how to train (see `steadytune.recipes`); its defaults are the paper's set-up (Zhang et al.
2021, §3): bias-corrected Adam, batch 32, lr 2e-5, 3 epochs, linear warm-up over the first 10% of steps then linear
decay to 0, gradient clipping at global norm 1.0, no weight decay, dropout as the model config says. Validation
runs `num_evals` times, evenly spread, the last at the final step; the best-validation weights are kept, and both
the best and the last model are scored on the test split. On a CPU the training forward pass runs under
`steadytune.fastpath` (dropout and attention with the same distributions, computed faster; each attention block's
query, key and value projections as one product), and the process keeps the memory it frees for the next step
(`retain_freed_memory`). Only the word-embedding rows of the run's own tokens are trained (`steadytune.vocab`): the
others' updates are exactly zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import DATA_SEED, GROUP_BATCHES, SPLIT_SEED, EncodedSplit, TaskData, encode, epoch_batches, load_data
from .errors import UserInputError
from .fastpath import cpu_fastpath, retain_freed_memory, sibling_projections
from .metrics import compute_metrics, is_failed, majority_baseline
from .mixout import remove_mixout
from .models import load_model, load_tokenizer, resolve_device
from .precision import autocast, resolve_precision
from .predict import predict_logits
from .recipes import Recipe, create_optimizer_and_scheduler, prepare_model
from .recipes import help_field as _help
from .record import RunResult, library_versions, write_run
from .vocab import reachable_rows, restore_rows

__all__ = ["RunResult", "TrainConfig", "evaluate", "train"]

# Per-step scalars (loss, gradient norm) stay on the device and are read back in one transfer every SYNC_EVERY
# steps and before each evaluation: reading them every step would make a GPU wait for the CPU at each step. A run
# that diverges is noticed at most SYNC_EVERY - 1 steps late; those steps are not counted or recorded.
SYNC_EVERY = 16


@dataclass
class TrainConfig:
    """Everything one run needs; saved as the run's `config.json`, so a run can be repeated from it."""

    # what to train
    model: str = _help("Hub id, local folder, or 'all-MiniLM-L6-v2' (the packaged copy when installed).",
                       "all-MiniLM-L6-v2")  # fmt: skip
    task: str | None = _help("GLUE preset (rte, mrpc, sts-b, cola, sst-2, qnli, qqp, mnli); or use train_file.")
    glue_dir: str | None = _help("GLUE folder (<dir>/<TASK>/train.tsv); default env GLUE_DIR, else the hub.")
    train_file: str | None = _help("Your own training data: CSV, TSV or JSONL.")
    validation_file: str | None = _help("Validation data; without it, held out from train (paper protocol).")
    test_file: str | None = _help("Test data; without it, the validation data is split into halves.")
    text_columns: tuple[str, ...] | None = _help("One or two text columns of the user's data.")
    label_column: str = _help("Label column of the user's data.", "label")
    task_type: str = _help("classification, regression, or auto (non-integer numbers mean regression).", "auto")
    train_size: int | None = _help("Draw a class-balanced subset of this many training examples (paper: 1000).")
    data_seed: int = _help("Seed of the train subset; fixed, so every run sees the same rows.", DATA_SEED)
    split_seed: int = _help("Seed of the validation/test split of dev; fixed across runs.", SPLIT_SEED)
    max_length: int = _help("Truncate inputs to this many tokens (paper §3: 128).", 128)
    metric: str | None = _help(
        "Metric that picks the best checkpoint and decides failure: accuracy, f1, matthews_correlation, pearson, "
        "spearmanr. Default: the GLUE task's (RTE accuracy, MRPC f1, CoLA MCC, STS-B spearmanr), else accuracy or "
        "spearmanr."
    )
    # how to train
    recipe: Recipe = field(default_factory=Recipe, metadata={"help": (
        "How to train: presets joined by '+', each with an optional :value, and field=value settings, e.g. "
        "'adam', 'bertadam', 'adam+reinit:2', 'adam+llrd:0.9+lr=1e-4' (see `steadytune recipes`).")})  # fmt: skip
    num_evals: int = _help("Validation evaluations spread evenly over training, the last at the final step.", 10)
    eval_batch_size: int = _help("Most examples in an evaluation batch (which also holds at most 4096 tokens).", 128)
    seed: int = _help("Seed of data order and dropout.", 0)
    init_seed: int | None = _help("Seed of the new classifier head; defaults to seed.")
    device: str = _help("cuda, cpu, or auto (CUDA when present).", "auto")
    trust_remote_code: bool = _help("Allow model code from the hub (off unless you ask).", False)
    save_model: bool = _help("Write the best model and tokenizer (safetensors) to <out>/model.", False)

    def __post_init__(self) -> None:
        if isinstance(self.recipe, str):
            self.recipe = Recipe.parse(self.recipe)
        elif isinstance(self.recipe, dict):
            self.recipe = Recipe.from_dict(self.recipe)
        positive = {"max_length": self.max_length, "eval_batch_size": self.eval_batch_size,
                    "num_evals": self.num_evals}  # fmt: skip
        for name, value in positive.items():
            if not value > 0:
                raise UserInputError(f"{name} must be positive, got {value!r}")
        if isinstance(self.text_columns, str):
            self.text_columns = tuple(c.strip() for c in self.text_columns.split(",") if c.strip())

    def to_dict(self) -> dict[str, Any]:
        """Flat: the recipe's fields sit beside the run's, and "recipe" is its name (easy to tabulate)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "recipe"}
        recipe = self.recipe.to_dict()
        return {**d, "recipe": recipe.pop("name"), **recipe}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict` (also takes a nested recipe dict, or a recipe string to parse)."""
        own = {f.name for f in fields(cls)} - {"recipe"}
        recipe_keys = {f.name for f in fields(Recipe)} - {"name"}
        recipe: Any = d.get("recipe", "adam")
        if isinstance(recipe, str) and recipe_keys & d.keys():
            recipe = Recipe.from_dict({"name": recipe, **{k: d[k] for k in recipe_keys & d.keys()}})
        return cls(recipe=recipe, **{k: v for k, v in d.items() if k in own})

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with run fields and recipe fields changed (`recipe=` first, then recipe fields on top of it)."""
        own = {f.name for f in fields(self)}
        recipe_keys = {f.name for f in fields(Recipe)} - {"name"}
        unknown = overrides.keys() - own - recipe_keys
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        config = replace(self, **{k: v for k, v in overrides.items() if k in own})
        recipe_changes = {k: v for k, v in overrides.items() if k in recipe_keys}
        if recipe_changes:
            config = replace(config, recipe=config.recipe.override(**recipe_changes))
        return config


def evaluate(
    model: nn.Module,
    data: EncodedSplit,
    tokenizer,
    *,
    num_labels: int,
    batch_size: int = 128,
    device=None,
    precision: str = "fp32",
    projections: Sequence[tuple[nn.Linear, ...]] = (),
) -> dict[str, float]:
    """Metrics of `model` on an encoded split, plus its mean `loss`; `projections` (on the CPU) as in training,
    each group one product (~2% faster; all-MiniLM-L6-v2's RTE logits came out bit for bit the same)."""
    with cpu_fastpath(bool(projections), projections=projections):
        logits, loss = predict_logits(model, data, tokenizer, batch_size=batch_size, device=device, with_loss=True,
                                      precision=precision)  # fmt: skip
    preds = logits.squeeze(-1) if num_labels == 1 else logits.argmax(-1)
    metrics = compute_metrics(preds.numpy(), data.split.labels, num_labels=num_labels)
    metrics["loss"] = loss
    return metrics


def _clip_grad_norm(params: list[torch.Tensor], max_norm: float, *, skip_unit_scale: bool = False) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_`: scale the gradients so their global 2-norm is at most `max_norm`; return
    the norm from before.

    torch multiplies by the clipping factor even when it is exactly 1, so that a GPU never waits to read the norm.
    With `skip_unit_scale` (for CPU tensors, where reading it is free) that multiply, a full pass over the gradients,
    is skipped; the norm and any clipping are torch's own, bit for bit.
    """
    utils = torch.nn.utils
    if not skip_unit_scale or not hasattr(utils, "get_total_norm"):  # the two halves are public since torch 2.6
        return utils.clip_grad_norm_(params, max_norm)
    norm = utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if torch.clamp(max_norm / (norm + 1e-6), max=1.0).item() != 1.0:  # as torch computes it (NaN included)
        utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def _token_ids(splits: tuple[EncodedSplit, ...], tokenizer) -> np.ndarray:
    """Every token id the run's batches can hold: the splits' own and the padding id."""
    pad = [tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else []
    ids = [np.asarray(f["input_ids"], dtype=np.int64) for split in splits for f in split.features]
    return np.unique(np.concatenate([*ids, np.asarray(pad, dtype=np.int64)]))


def _eval_steps(total: int, num_evals: int) -> set[int]:
    return {math.ceil(k * total / num_evals) for k in range(1, num_evals + 1)}


def train(
    config: TrainConfig | None = None,
    *,
    data: TaskData | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> RunResult:
    """Fine-tune once and return the result record.

    `config` (or keyword overrides of its fields, e.g. `train(task="rte", glue_dir=..., optimizer="bertadam")`)
    says what to run; `data` may pass already loaded `TaskData` (a `steadytune.data.load_*` result). With `out`,
    the run's `config.json`, `metrics.json` and `curve.jsonl` (and with `save_model` the model) are written there
    atomically: an interrupted run leaves no half-written folder.
    """
    config = (config if config is not None else TrainConfig()).with_overrides(**overrides)
    recipe = config.recipe
    started = time.perf_counter()
    if out is not None and Path(out).exists() and any(Path(out).iterdir()) and not overwrite:
        raise UserInputError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    if data is None:
        data = load_data(
            task=config.task, glue_dir=config.glue_dir, train_file=config.train_file,
            validation_file=config.validation_file, test_file=config.test_file, text_columns=config.text_columns,
            label_column=config.label_column, task_type=config.task_type, train_size=config.train_size,
            data_seed=config.data_seed, split_seed=config.split_seed,
        )  # fmt: skip
    device = resolve_device(config.device)
    precision = resolve_precision(recipe.precision, device)
    init_seed = config.seed if config.init_seed is None else config.init_seed
    metric = config.metric or data.metric
    # Before any training: this also rejects a metric that does not fit the task (f1 on 3 classes, say).
    baseline = majority_baseline(data.test.labels, num_labels=data.num_labels, metric=metric)

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    train_enc, val_enc, test_enc = (encode(s, tokenizer, max_length=config.max_length)
                                    for s in (data.train, data.validation, data.test))  # fmt: skip
    # One random stream from init_seed: first the new head, then any re-initialised layers.
    init_gen = torch.Generator().manual_seed(init_seed)
    model, new_params = load_model(config.model, label_names=data.label_names, generator=init_gen,
                                   trust_remote_code=config.trust_remote_code)  # fmt: skip
    surgery = prepare_model(model, recipe, generator=init_gen)
    model.to(device).train()
    if device.type == "cpu":
        retain_freed_memory()
    # Only the embedding rows of the run's own tokens are trained: the others' updates are exactly zero (vocab.py).
    rows = None
    if recipe.weight_decay == 0 or recipe.prior_wd:
        rows = reachable_rows(model, _token_ids((train_enc, val_enc, test_enc), tokenizer))
    projections = sibling_projections(model) if device.type == "cpu" else []  # after surgery: Mixout's are left out
    setup_s = time.perf_counter() - started

    n, bs = len(train_enc), recipe.batch_size
    total = recipe.num_training_steps(n)
    optimizer, scheduler = create_optimizer_and_scheduler(model, recipe, total)
    eval_at = _eval_steps(total, config.num_evals)
    params = [p for p in model.parameters() if p.requires_grad]
    clip = recipe.max_grad_norm if recipe.max_grad_norm > 0 else float("inf")  # inf: measure the norm, never clip
    group = GROUP_BATCHES if recipe.group_by_length else None
    order_gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout masks
    if device.type == "cuda":
        torch.cuda.manual_seed_all(config.seed)

    curve: list[dict[str, float]] = []
    evals: list[dict[str, Any]] = []
    best_state, best_eval, diverged = None, None, False
    num_labels = data.num_labels
    eval_kw = {"num_labels": num_labels, "batch_size": config.eval_batch_size, "device": device,
               "precision": precision, "projections": projections}  # fmt: skip
    bar = tqdm(total=total, desc=f"{data.name} {recipe.name} seed {config.seed}", disable=not progress,
               unit="step", leave=False, dynamic_ncols=True)  # fmt: skip
    pending: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (loss, grad norm, lr) not yet read back

    def read_back() -> bool:
        """Move the pending scalars into `curve`; False (and the curve ends there) at a non-finite one."""
        if not pending:
            return True
        first = len(curve) + 1
        values = torch.stack([torch.stack((loss, norm.float())) for loss, norm, _ in pending]).tolist()
        lrs = [lr for _, _, lr in pending]
        pending.clear()
        for i, ((loss_value, grad_norm), lr) in enumerate(zip(values, lrs)):
            curve.append({"step": first + i, "loss": loss_value, "grad_norm": grad_norm, "lr": lr})
            if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
                return False
        bar.set_postfix(loss=f"{curve[-1]['loss']:.4f}", refresh=False)
        return True

    train_started = time.perf_counter()
    eval_s = 0.0
    step = 0
    while step < total and not diverged:
        for idx in epoch_batches(train_enc.lengths, bs, order_gen, group_batches=group):
            batch = {k: v.to(device, non_blocking=True) for k, v in train_enc.batch(idx, tokenizer).items()}
            with autocast(precision, device), cpu_fastpath(device.type == "cpu", projections=projections):
                loss = model(**batch).loss
            loss.backward()
            grad_norm = _clip_grad_norm(params, clip, skip_unit_scale=device.type == "cpu")
            pending.append((loss.detach().float(), grad_norm, scheduler.get_last_lr()[0]))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update()
            if (step in eval_at or step >= total or len(pending) >= SYNC_EVERY) and not read_back():
                # Diverged (NaN/inf): a recorded outcome. The steps from the bad one on do not count.
                diverged, step = True, len(curve) - 1
                break
            if step in eval_at:
                t0 = time.perf_counter()
                val = evaluate(model, val_enc, tokenizer, **eval_kw)
                eval_s += time.perf_counter() - t0
                evals.append({"step": step, "validation": val})
                score = val[metric]
                if math.isfinite(score) and (best_eval is None or score > best_eval["validation"][metric]):
                    best_eval = evals[-1]
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if step >= total:
                break
    bar.close()
    train_s = time.perf_counter() - train_started - eval_s

    t0 = time.perf_counter()
    last_test = None if diverged else evaluate(model, test_enc, tokenizer, **eval_kw)
    last_val = evals[-1]["validation"] if evals and evals[-1]["step"] == step and not diverged else None
    if best_eval is not None and best_eval["step"] == step and not diverged:
        best_test = last_test
    elif best_state is not None:
        model.load_state_dict(best_state)
        best_test = evaluate(model, test_enc, tokenizer, **eval_kw)
    else:
        best_test = None
    eval_s += time.perf_counter() - t0

    last_score = None if last_test is None else last_test[metric]
    result = RunResult(
        config={**config.to_dict(), "init_seed": init_seed, "device": str(device), "precision": precision},
        data=data.summary(),
        metric=metric,
        majority_baseline=baseline,
        best={"step": best_eval["step"] if best_eval else None,
              "validation": best_eval["validation"] if best_eval else None, "test": best_test},
        last={"step": step, "validation": last_val, "test": last_test},
        diverged=diverged,
        failed=diverged or is_failed(last_score, baseline),
        steps=step,
        total_steps=total,
        evals=evals,
        curve=curve,
        timings={"setup_s": setup_s, "train_s": train_s, "eval_s": eval_s,
                 "wall_s": time.perf_counter() - started},
        versions=library_versions(),
        new_parameters=new_params,
        surgery=surgery,
    )  # fmt: skip
    if out is not None:
        # The saved model is the best-validation one; a run that diverged before any evaluation has none to save.
        if config.save_model and best_state is not None:
            model.load_state_dict(best_state)
            remove_mixout(model)  # evaluation weights only: the saved model loads as a plain classifier
            if rows is not None:
                restore_rows(model, rows)
        keep = config.save_model and best_state is not None
        write_run(out, result, model=model if keep else None, tokenizer=tokenizer, overwrite=overwrite)
    return result
