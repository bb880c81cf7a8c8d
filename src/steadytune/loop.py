"""The training loop of one run, and everything it carries from step to step in one object that can be saved.

`Run` is what the loop trains (made by `steadytune.trainer.prepare`): the model with its recipe surgery, the
optimizer and schedule, the encoded splits, and the resolved settings. `LoopState` is everything the loop carries:
the step, the epoch's batch order and the position in it, the per-step scalars not yet read back, the curve, the
evaluations, the best state, divergence. `start(run)` seeds the random streams; `train_steps(run, state)` trains
on until a given step or the end; `checkpoint(run, state)` captures the model, optimizer, schedule, every random
stream and the state, and `resume(run, checkpoint)` puts them back into a freshly prepared run, so that training
from there takes exactly the trajectory it would have taken (the `RunResult` of the two is the same, bit for bit).
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .data import EncodedSplit, epoch_batches
from .errors import UserInputError
from .evaluate import evaluate
from .fastpath import cpu_fastpath
from .files import atomic_write_bytes
from .precision import autocast
from .tracking import Tracker

__all__ = [
    "SYNC_EVERY",
    "LoopState",
    "Run",
    "checkpoint",
    "eval_steps",
    "load_checkpoint",
    "report_steps",
    "resume",
    "save_checkpoint",
    "start",
    "train_steps",
]

# Per-step scalars (loss, gradient norm) stay on the device and are read back in one transfer every SYNC_EVERY
# steps and before each evaluation: reading them every step would make a GPU wait for the CPU at each step. A run
# that diverges is noticed at most SYNC_EVERY - 1 steps late; those steps are not counted or recorded.
SYNC_EVERY = 16

# Told the step count at each read-back (`report_steps`): a study's progress bar, which the loop cannot see.
_step_listeners: ContextVar[tuple[Callable[[int], None], ...]] = ContextVar("steadytune_step_listeners", default=())


@contextmanager
def report_steps(listener: Callable[[int], None]) -> Iterator[None]:
    """Call `listener(step)` at each read-back of the loops run inside this block (in this thread): the step
    count every `SYNC_EVERY` steps, and at each evaluation and the end, with no device sync of its own."""
    token = _step_listeners.set((*_step_listeners.get(), listener))
    try:
        yield
    finally:
        _step_listeners.reset(token)


@dataclass
class Run:
    """A prepared run: the model (recipe surgery applied), how to train it, on what, and how to score it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    tokenizer: Any
    train: EncodedSplit
    validation: EncodedSplit
    test: EncodedSplit
    num_labels: int
    metric: str
    """The validation metric that picks the best state."""
    total_steps: int
    batch_size: int
    group_batches: int | None
    """Length grouping's mega-batches (`steadytune.data.batching`), None for plain shuffled batches."""
    seed: int
    """Seed of the data order and of torch's generator (dropout masks, Mixout)."""
    eval_at: frozenset[int]
    max_grad_norm: float
    """inf: measure the norm, never clip."""
    device: torch.device
    precision: str
    fast_path: bool
    """Train under `steadytune.fastpath.cpu_fastpath` (only ever on a CPU)."""
    projections: list[tuple[nn.Linear, ...]]
    """Groups of sibling projections run as one product (`steadytune.sibling_projections`), in training and
    evaluation; empty without the fast path."""
    eval_batch_size: int
    params: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def evaluate(self, split: EncodedSplit) -> dict[str, float]:
        return evaluate(self.model, split, self.tokenizer, num_labels=self.num_labels, batch_size=self.eval_batch_size,
                        device=self.device, precision=self.precision, projections=self.projections)  # fmt: skip


@dataclass
class LoopState:
    """Everything the training loop carries between steps (with `checkpoint`: also the model's, the optimizer's,
    the schedule's and the random streams' state)."""

    order: torch.Generator
    """The data order's random stream (seeded with the run's seed)."""
    step: int = 0
    """Optimizer steps taken and counted (a diverged run's steps from the bad one on are not)."""
    epoch: int = 0
    """Epochs started."""
    batches: list[Tensor] = field(default_factory=list)
    """This epoch's batches of training-example indices, in order."""
    position: int = 0
    """How many of this epoch's batches are done."""
    pending: list[tuple[Tensor, Tensor, float]] = field(default_factory=list)
    """(loss, gradient norm, lr) of the steps not yet read back into `curve`."""
    curve: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    best: int | None = None
    """Index into `evals` of the best validation score so far."""
    best_state: dict[str, Tensor] | None = None
    """The model's state (on the CPU) at that evaluation."""
    diverged: bool = False
    loop_s: float = 0.0
    """Seconds spent in `train_steps`, evaluations included."""
    eval_s: float = 0.0
    """Seconds of validation."""

    @property
    def best_eval(self) -> dict[str, Any] | None:
        return None if self.best is None else self.evals[self.best]


def eval_steps(total: int, num_evals: int) -> frozenset[int]:
    """`num_evals` steps spread evenly over `total`, the last at `total`."""
    return frozenset(math.ceil(k * total / num_evals) for k in range(1, num_evals + 1))


def start(run: Run) -> LoopState:
    """A fresh state at step 0, with the run's random streams seeded from its seed."""
    torch.manual_seed(run.seed)  # dropout masks (the fast path draws its bits from this generator too), Mixout
    if run.device.type == "cuda":
        torch.cuda.manual_seed_all(run.seed)
    return LoopState(order=torch.Generator().manual_seed(run.seed))


def train_steps(
    run: Run, state: LoopState, *, until: int | None = None, bar: Any = None, tracker: Tracker | None = None
) -> LoopState:
    """Train from `state` until step `until` (default: the end), the end, or divergence; `bar` a tqdm to advance;
    `tracker` (`steadytune.tracking`) is given the curve at each read-back and every evaluation."""
    stop = run.total_steps if until is None else min(until, run.total_steps)
    started = time.perf_counter()
    skip_unit_scale = run.device.type == "cpu"
    while state.step < stop and not state.diverged:
        if state.position == len(state.batches):
            state.batches = epoch_batches(run.train.lengths, run.batch_size, state.order,
                                          group_batches=run.group_batches)  # fmt: skip
            state.position, state.epoch = 0, state.epoch + 1
        idx = state.batches[state.position]
        state.position += 1
        batch = {k: v.to(run.device, non_blocking=True) for k, v in run.train.batch(idx, run.tokenizer).items()}
        with autocast(run.precision, run.device), cpu_fastpath(run.fast_path, projections=run.projections):
            loss = run.model(**batch).loss
        loss.backward()
        grad_norm = clip_grad_norm(run.params, run.max_grad_norm, skip_unit_scale=skip_unit_scale)
        state.pending.append((loss.detach().float(), grad_norm, run.scheduler.get_last_lr()[0]))
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        if bar is not None:
            bar.update()
        at_eval = state.step in run.eval_at
        if (at_eval or state.step >= run.total_steps or len(state.pending) >= SYNC_EVERY) and not _read_back(
            state, bar, tracker
        ):
            # Diverged (NaN/inf): a recorded outcome. The steps from the bad one on do not count.
            state.diverged, state.step = True, len(state.curve) - 1
        elif at_eval:
            _validate(run, state, tracker)
    state.loop_s += time.perf_counter() - started
    return state


def _read_back(state: LoopState, bar: Any, tracker: Tracker | None = None) -> bool:
    """Move the pending scalars into the curve (and to the tracker); False (and the curve ends there) at a
    non-finite one."""
    if not state.pending:
        return True
    first = len(state.curve) + 1
    values = torch.stack([torch.stack((loss, norm.float())) for loss, norm, _ in state.pending]).tolist()
    lrs = [lr for _, _, lr in state.pending]
    state.pending.clear()
    for i, ((loss, grad_norm), lr) in enumerate(zip(values, lrs)):
        state.curve.append({"step": first + i, "loss": loss, "grad_norm": grad_norm, "lr": lr})
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            break
    if tracker is not None:  # the values just read back: no device sync of its own
        tracker.log_steps(state.curve[first - 1 :])
    if not (math.isfinite(state.curve[-1]["loss"]) and math.isfinite(state.curve[-1]["grad_norm"])):
        return False
    if bar is not None:  # redrawn now: the loss shown is always the latest read back
        bar.set_postfix(loss=f"{state.curve[-1]['loss']:.4f}")
    for listener in _step_listeners.get():
        listener(state.step)
    return True


def _validate(run: Run, state: LoopState, tracker: Tracker | None = None) -> None:
    """Score the validation split now; a better score than any before keeps a copy of the weights."""
    t0 = time.perf_counter()
    val = run.evaluate(run.validation)
    state.eval_s += time.perf_counter() - t0
    state.evals.append({"step": state.step, "validation": val})
    if tracker is not None:
        tracker.log_eval(state.step, val)
    score = val[run.metric]
    # A model no update has moved (every step so far at lr 0: the warm-up's first step) is the starting point, not a
    # trained model; on a few validation rows it could win, and the "best checkpoint" would be the untrained encoder
    # with a random head (issue 29). Any moved state beats an unmoved one; an unmoved one is kept only while nothing
    # has moved (a run whose every step is at lr 0, e.g. one step with warm-up, has nothing else to keep).
    best = None if state.best is None else state.evals[state.best]
    rank = (_moved(state, state.step), score)
    if math.isfinite(score) and (best is None or rank > (_moved(state, best["step"]), best["validation"][run.metric])):
        state.best = len(state.evals) - 1
        state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}


def _moved(state: LoopState, step: int) -> bool:
    """Whether any of the first `step` updates had a learning rate above 0 (changed the weights)."""
    return any(c["lr"] > 0 for c in state.curve[:step])


def clip_grad_norm(params: list[Tensor], max_norm: float, *, skip_unit_scale: bool = False) -> Tensor:
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


# --- saving and restoring ---------------------------------------------------------------------------------------


def checkpoint(run: Run, state: LoopState) -> dict[str, Any]:
    """A copy of everything needed to continue from `state`: the loop's state, the model (recipe surgery and the
    compact embedding included), the optimizer, the schedule, and every random stream. Training on does not change
    it; `resume` reads it back."""
    loop = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "order"}
    rng = {"order": state.order.get_state(), "torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else []}  # fmt: skip
    parts = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "scheduler": run.scheduler.state_dict()}  # fmt: skip
    return copy.deepcopy({"loop": loop, "rng": rng, **parts})


def resume(run: Run, saved: dict[str, Any]) -> LoopState:
    """Put a `checkpoint` back into `run` (prepared afresh from the same configuration) and return its state."""
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    state = LoopState(order=torch.Generator(), **copy.deepcopy(saved["loop"]))
    state.order.set_state(saved["rng"]["order"])
    torch.set_rng_state(saved["rng"]["torch"])
    if saved["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return state


def save_checkpoint(path: str | Path, run: Run, state: LoopState, *, meta: dict[str, Any]) -> None:
    """Write `checkpoint(run, state)` and `meta` (what it belongs to) to `path`, atomically."""
    buffer = io.BytesIO()
    torch.save({"meta": meta, **checkpoint(run, state)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a `save_checkpoint` file: tensors and plain values only (`weights_only`: nothing is unpickled that
    could run code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a checkpoint, or written by something else
        first = str(e).split(". ")[0].splitlines()[0][:200] if str(e).strip() else ""  # torch's advice is not ours
        raise UserInputError(
            f"{path}: not a readable steadytune checkpoint ({type(e).__name__}{': ' + first if first else ''}); "
            "delete it to start over"
        ) from None
