"""One fine-tuning run, in three steps: `prepare` → the loop (`steadytune.loop`) → `finish`; `train` does all three.

`config.recipe` says how to train (see `steadytune.recipes`); the default (`config.DEFAULT_RECIPE`) is the paper's
set-up (Zhang et al. 2021, §3: bias-corrected Adam, batch 32, 3 epochs, linear warm-up over the first 10% of steps
then linear decay to 0, gradient clipping at global norm 1.0, no weight decay, dropout as the model config says) with
its Re-init of the top 2 blocks (§5) and the learning rate by the encoder's width (2e-5 from BERT-base up, 1e-4
narrower: `recipes.default_lr`); the `paper` recipe is §3 exactly. Validation
runs `num_evals` times, evenly spread, the last at the final step; the best-validation weights are kept, and both
the best and the last model are scored on the test split.

Two speed paths, on by default and recorded in every run's config: `fast_path` (on a CPU, the training forward
pass runs under `steadytune.fastpath`: dropout and attention with the same distributions, computed faster, and
each attention block's query, key and value projections as one product) and `compact_embedding` (only the
word-embedding rows of the run's own tokens are trained, where the others' updates are exactly zero:
`steadytune.vocab`). Each change `prepare` makes to the model registers its undo where it is made; `finish`
undoes them in reverse order, so the model a run hands on (and saves) is a plain classifier.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import TRACKING_FIELDS, TrainConfig
from .data import GROUP_BATCHES, EncodedSplit, TaskData, encode, load_data
from .errors import UserInputError
from .fastpath import sibling_projections
from .files import check_output_folder, to_json
from .loop import LoopState, Run, eval_steps, load_checkpoint, resume, save_checkpoint, start, train_steps
from .metrics import Baseline, constant_baseline, failure, majority_baseline
from .mixout import remove_mixout
from .models import load_model, load_tokenizer, resolve_device
from .precision import resolve_precision
from .recipes import create_optimizer_and_scheduler, prepare_model
from .record import RunResult, library_versions, write_run
from .tracking import Tracker, open_tracker, require
from .vocab import reachable_rows, restore_rows

__all__ = ["Prepared", "checkpoint_path", "finish", "prepare", "resume_from", "train", "train_stage"]


@dataclass
class Prepared:
    """What `prepare` made: the `Run` the loop trains, and what the run's record needs besides the loop's state."""

    run: Run
    config: TrainConfig
    data: TaskData
    majority: float
    baseline: Baseline
    settings: dict[str, Any]
    """The settings as they resolved on this machine (init_seed, device, precision, fast_path,
    compact_embedding): the record's config holds these values."""
    new_parameters: list[str]
    surgery: dict[str, list[str]]
    undo: list[Callable[[], None]] = field(default_factory=list)
    """What `finish` calls, last first, to hand on a plain model."""
    started: float = 0.0
    setup_s: float = 0.0


def prepare(config: TrainConfig, data: TaskData | None = None) -> Prepared:
    """Load the data (unless given), the tokenizer and the model; apply the recipe's surgery and the speed paths;
    make the optimizer and schedule."""
    started = time.perf_counter()
    recipe = config.recipe
    if data is None:
        data = load_data(**config.data_kwargs())
    device = resolve_device(config.device)
    precision = resolve_precision(recipe.precision, device)
    init_seed = config.seed if config.init_seed is None else config.init_seed
    metric = config.metric or data.metric
    # Before any training: this also rejects a metric that does not fit the task (f1 on 3 classes, say).
    baseline = constant_baseline(data.test.labels, num_labels=data.num_labels, metric=metric,
                                 train_labels=data.train.labels, label_names=data.label_names)  # fmt: skip
    majority = majority_baseline(data.test.labels, num_labels=data.num_labels, metric=metric)

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    splits = tuple(encode(s, tokenizer, max_length=config.max_length)
                   for s in (data.train, data.validation, data.test))  # fmt: skip
    # One random stream from init_seed: first the new head, then any re-initialised layers.
    init_gen = torch.Generator().manual_seed(init_seed)
    model, new_params = load_model(config.model, label_names=data.label_names, generator=init_gen,
                                   trust_remote_code=config.trust_remote_code)  # fmt: skip
    # A recipe without a learning rate runs at this encoder's (`recipes.default_lr`); the record says which.
    config = config.resolved(getattr(model.config, "hidden_size", None))
    recipe = config.recipe
    undo: list[Callable[[], None]] = []
    surgery = prepare_model(model, recipe, generator=init_gen)
    if surgery["mixout"]:
        undo.append(lambda: remove_mixout(model))  # Mixout's evaluation weights in plain Linear layers
    model.to(device).train()
    rows = None
    if config.compact_embedding and recipe.still_rows_stay_still:
        rows = reachable_rows(model, _token_ids(splits, tokenizer))
        if rows is not None:
            undo.append(lambda: restore_rows(model, rows))  # the trained rows back into the full vocabulary
    fast_path = config.fast_path and device.type == "cpu"
    projections = sibling_projections(model) if fast_path else []  # after surgery: Mixout's are left out

    total = recipe.num_training_steps(len(splits[0]))
    optimizer, scheduler = create_optimizer_and_scheduler(model, recipe, total)
    run = Run(
        model=model, optimizer=optimizer, scheduler=scheduler, tokenizer=tokenizer, train=splits[0],
        validation=splits[1], test=splits[2], num_labels=data.num_labels, metric=metric, total_steps=total,
        batch_size=recipe.batch_size, group_batches=GROUP_BATCHES if recipe.group_by_length else None,
        seed=config.seed, eval_at=eval_steps(total, config.num_evals),
        max_grad_norm=recipe.max_grad_norm if recipe.max_grad_norm > 0 else float("inf"), device=device,
        precision=precision, fast_path=fast_path, projections=projections, eval_batch_size=config.eval_batch_size,
    )  # fmt: skip
    settings = {"init_seed": init_seed, "device": str(device), "precision": precision, "fast_path": fast_path,
                "compact_embedding": rows is not None}  # fmt: skip
    return Prepared(run=run, config=config, data=data, majority=majority, baseline=baseline, settings=settings,
                    new_parameters=new_params, surgery=surgery, undo=undo, started=started,
                    setup_s=time.perf_counter() - started)  # fmt: skip


def _token_ids(splits: tuple[EncodedSplit, ...], tokenizer) -> np.ndarray:
    """Every token id the run's batches can hold: the splits' own and the padding id."""
    pad = [tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else []
    ids = [np.asarray(f["input_ids"], dtype=np.int64) for split in splits for f in split.features]
    return np.unique(np.concatenate([*ids, np.asarray(pad, dtype=np.int64)]))


def finish(prep: Prepared, state: LoopState, *, out: str | Path | None = None, overwrite: bool = False) -> RunResult:
    """Score the last and the best state on test, undo the surgery (the model is left holding the best state), and
    write the record (with `out`)."""
    run, config, metric = prep.run, prep.config, prep.run.metric
    t0 = time.perf_counter()
    last_test = None if state.diverged else run.evaluate(run.test)
    at_last = not state.diverged and bool(state.evals) and state.evals[-1]["step"] == state.step
    last_val = state.evals[-1]["validation"] if at_last else None
    best = state.best_eval
    if best is not None and best["step"] == state.step and not state.diverged:
        best_test = last_test
    elif state.best_state is not None:
        run.model.load_state_dict(state.best_state)
        best_test = run.evaluate(run.test)
    else:
        best_test = None
    eval_s = state.eval_s + time.perf_counter() - t0
    # The model handed on is the best-validation one; a run that diverged before any evaluation has none.
    if state.best_state is not None:
        run.model.load_state_dict(state.best_state)
    for undo in reversed(prep.undo):
        undo()

    scores = last_test or {}
    why = failure(scores.get(metric), prep.baseline, mse=scores.get("mse"), diverged=state.diverged)
    result = RunResult(
        config={**config.to_dict(), **prep.settings},
        data=prep.data.summary(),
        metric=metric,
        majority_baseline=prep.majority,
        best={"step": best["step"] if best else None, "validation": best["validation"] if best else None,
              "test": best_test},
        last={"step": state.step, "validation": last_val, "test": last_test},
        diverged=state.diverged,
        failed=why is not None,
        steps=state.step,
        total_steps=run.total_steps,
        evals=state.evals,
        curve=state.curve,
        timings={"setup_s": prep.setup_s, "train_s": state.loop_s - state.eval_s, "eval_s": eval_s,
                 "wall_s": time.perf_counter() - prep.started},
        versions=library_versions(),
        new_parameters=prep.new_parameters,
        surgery=prep.surgery,
        baseline=prep.baseline.to_dict(),
        failure=why,
    )  # fmt: skip
    if out is not None:
        keep = config.save_model and state.best_state is not None
        write_run(out, result, model=run.model if keep else None, tokenizer=run.tokenizer, overwrite=overwrite)
    return result


def train(
    config: TrainConfig | None = None,
    *,
    data: TaskData | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    checkpoint_every: int | None = None,
    resume: bool = False,
    return_model: bool = False,
    **overrides: Any,
) -> RunResult:
    """Fine-tune once and return the result record.

    `config` (or keyword overrides of its fields, e.g. `train(task="rte", glue_dir=..., optimizer="bertadam")`)
    says what to run; `data` may pass already loaded `TaskData` (a `steadytune.data.load_*` result). With `out`,
    the run's `config.json`, `metrics.json` and `curve.jsonl` (and with `save_model` the model) are written there
    atomically: an interrupted run leaves no half-written folder. With `out` and `checkpoint_every`, the run's
    whole state is saved every that many steps to `checkpoint_path(out)` (and removed when the run is done);
    `resume` continues from it when it is there, on exactly the trajectory an uninterrupted run takes.

    With `return_model`, `result.model` is the trained model (else None, so that a loop over many runs holds no
    models): a plain transformers classifier on the CPU in eval mode, the recipe's surgery undone, holding the
    best-validation checkpoint, the weights `save_model` writes (`result.model.save_pretrained(folder)` writes
    them too). A run that diverged before its first evaluation has no such checkpoint: its `model` is None.
    """
    config = (config if config is not None else TrainConfig()).with_overrides(**overrides)
    if out is not None:  # before any work: a folder that cannot be written fails now, not after training
        check_output_folder(out, overwrite=overwrite)
    if (checkpoint_every is not None or resume) and out is None:
        raise UserInputError("checkpoints need an output folder (--out DIR); they are kept beside it")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise UserInputError(f"checkpoint_every must be at least 1 step, got {checkpoint_every}")
    if out is not None:
        _check_checkpoint_path(checkpoint_path(out), writing=checkpoint_every is not None, resume=resume)
    require(config.report_to, config.tracking_dir)  # a tracker that is not installed fails now, not after training
    prep = prepare(config, data)
    run = prep.run
    saved = checkpoint_path(out) if out is not None else None
    meta = _checkpoint_meta(prep)
    state = resume_from(saved, prep, meta) if resume and saved.is_file() else start(run)
    desc = f"{prep.data.name} {config.recipe.name} seed {config.seed}"
    # Tracked as the folder's name beside it (`runs/rte` → runs/tensorboard/rte), else as task/recipe/seed.
    where = Path(os.path.abspath(out)) if out is not None else None
    tracker = _tracker(prep, state, meta, folder=where.parent if where else Path("."),
                       name=where.name if where else None)  # fmt: skip
    with tracker:  # closed as failed on an exception
        with tqdm(total=run.total_steps, initial=state.step, desc=desc, unit="step", disable=not progress,
                  leave=False, dynamic_ncols=True) as bar:  # fmt: skip
            while not (state.diverged or state.step >= run.total_steps):
                until = None if checkpoint_every is None else (state.step // checkpoint_every + 1) * checkpoint_every
                train_steps(run, state, until=until, bar=bar, tracker=tracker or None)
                if until is not None and state.step < run.total_steps and not state.diverged:
                    save_checkpoint(saved, run, state, meta=meta)
        result = finish(prep, state, out=out, overwrite=overwrite)
        tracker.log_result(result)
    if return_model and state.best_state is not None:
        result.model = run.model.cpu().eval()
    if saved is not None:
        saved.unlink(missing_ok=True)
    return result


def checkpoint_path(out: str | Path) -> Path:
    """Where a run writing to `out` keeps its checkpoint: beside the folder, which appears only when complete."""
    out = Path(out)
    return out.parent / f"{out.name}.checkpoint.pt"


def _check_checkpoint_path(path: Path, *, writing: bool, resume: bool) -> None:
    """Before any work: the checkpoint file beside --out can be read or written, and no earlier run's checkpoint
    is overwritten without --resume (that would throw its steps away)."""
    if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
        raise UserInputError(f"{path}, where this run keeps its checkpoint, is not a plain file; remove it or choose "
                             "another --out")  # fmt: skip
    if writing and not resume and path.is_file():
        raise UserInputError(f"{path} holds the checkpoint of an earlier run; pass --resume to go on from it, or "
                             "delete it to start over")  # fmt: skip


def _checkpoint_meta(prep: Prepared) -> dict[str, Any]:
    """What a checkpoint belongs to: the run's settings and the rows of its data."""
    return json.loads(to_json({"config": prep.config.to_dict(), "settings": prep.settings,
                               "data": prep.data.summary()["fingerprints"]}))  # fmt: skip


def _tracker(prep: Prepared, state: LoopState, meta: dict[str, Any], *, folder: Path, name: str | None) -> Tracker:
    """The run's tracker (`steadytune.tracking`; `config.tracking_dir` before `folder`), continuing the tracker
    runs a resumed checkpoint names; their ids go into `meta`, so the checkpoints saved from now on name them."""
    config = prep.config
    tracker = open_tracker(
        config.report_to, folder=config.tracking_dir or folder,
        name=name or f"{prep.data.name}/{config.recipe.name}/seed-{config.seed}",
        config={**config.to_dict(), **prep.settings}, metric=prep.run.metric, first_step=len(state.curve) + 1,
        previous=meta.get("tracking"),
    )  # fmt: skip
    meta["tracking"] = tracker.ids()
    return tracker


def resume_from(path: Path, prep: Prepared, meta: dict[str, Any]) -> LoopState:
    """`loop.resume` from a checkpoint file written by this configuration on these rows (else a clear error);
    `meta["tracking"]` takes the tracker run ids the checkpoint names (where to log on)."""
    saved = load_checkpoint(path)
    theirs = saved.get("meta") or {}
    differ = sorted(
        f"{part}.{k}" for part in ("config", "settings", "data")
        for k in {**theirs.get(part, {}), **meta[part]} if theirs.get(part, {}).get(k) != meta[part].get(k)
        and not (part == "config" and k in TRACKING_FIELDS)  # where it is logged may change on resuming
    )  # fmt: skip
    if differ:
        raise UserInputError(f"{path} was written by another run (it differs in {', '.join(differ[:5])}); "
                             "delete it, or run without --resume")  # fmt: skip
    meta["tracking"] = theirs.get("tracking") or {}
    return resume(prep.run, saved)


def train_stage(config: TrainConfig, *, data: TaskData, out: str | Path, until: int | None) -> dict[str, Any]:
    """Train from the checkpoint beside `out` (or from the start) until step `until` (None: the end).

    A run that reaches its end is finished and written to `out` (replacing what is there) and its record
    returned (its checkpoint is left for the caller to remove once the record is stored); one that stops at
    `until` saves its checkpoint and returns a partial record: {"partial": True, "config", "steps",
    "total_steps", "evals", "curve" (every step so far), "diverged"}.
    """
    require(config.report_to, config.tracking_dir)
    prep = prepare(config, data)
    saved, meta = checkpoint_path(out), _checkpoint_meta(prep)
    state = resume_from(saved, prep, meta) if saved.is_file() else start(prep.run)
    # Each stage logs on into the candidate's tracker runs (their ids travel in the checkpoint).
    with _tracker(prep, state, meta, folder=Path(out).parent, name=None) as tracker:
        train_steps(prep.run, state, until=until, tracker=tracker or None)
        if state.diverged or state.step >= prep.run.total_steps:
            # The checkpoint stays: a caller killed before it stored this record redoes only the last stage from it.
            result = finish(prep, state, out=out, overwrite=True)
            tracker.log_result(result)
            return result.to_dict()
        save_checkpoint(saved, prep.run, state, meta=meta)
        tracker.close("paused")
    pending = [{"step": len(state.curve) + 1 + i, "loss": float(loss), "grad_norm": float(norm), "lr": lr}
               for i, (loss, norm, lr) in enumerate(state.pending)]  # fmt: skip
    return json.loads(to_json({"partial": True, "config": {**config.to_dict(), **prep.settings}, "steps": state.step,
                               "total_steps": prep.run.total_steps, "evals": state.evals,
                               "curve": state.curve + pending, "diverged": state.diverged}))  # fmt: skip
