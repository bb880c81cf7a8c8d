"""Recipes: the paper's fine-tuning set-ups as one frozen value, written like `adam+reinit:2+lr=1e-4`.

A recipe says *how* to fine-tune (optimizer, schedule, budget, model surgery); a `TrainConfig` adds *what* (model,
data, seed). `Recipe.parse` reads the short form: presets joined by `+`, each with an optional `:value`, and any
field set inline as `field=value`. `prepare_model` and `create_optimizer_and_scheduler` apply a recipe; the
trainer and `steadytune.hf` (for a `transformers.Trainer`) both use them.
"""

from __future__ import annotations

import math
import types
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from .errors import UserInputError
from .precision import PRECISIONS

if TYPE_CHECKING:  # torch loads when a recipe is applied, so `steadytune --help` and the parser stay fast
    import torch
    from torch import nn

    from .optim import AdamW

    OPTIMIZERS: dict[str, type[AdamW]]  # see `__getattr__`

__all__ = [
    "INT64_MAX",
    "NARROW_LR",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "PAPER_LR",
    "PRESETS",
    "Preset",
    "Recipe",
    "WIDE_ENCODER",
    "create_optimizer_and_scheduler",
    "default_lr",
    "prepare_model",
]

# The optimizers a recipe can name; `OPTIMIZERS` maps them to their classes (loaded with torch on first use).
OPTIMIZER_NAMES = ("adamw", "bertadam")


def _optimizer_classes() -> dict[str, type[AdamW]]:
    from .optim import AdamW, BertAdam

    return {"adamw": AdamW, "bertadam": BertAdam}


def __getattr__(name: str) -> Any:
    if name == "OPTIMIZERS":
        return _optimizer_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The largest 64-bit signed integer: torch and numpy take sizes and seeds as int64.
INT64_MAX = 2**63 - 1
# Most epochs a recipe may ask for: far past any fine-tuning run; ceil(epochs × batches) then stays an int64 for
# any data set up to 10^12 batches an epoch.
MAX_EPOCHS = 1e6


def _real(value: Any) -> bool:
    """A finite real number (not a bool, a string or NaN/inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    """An integer (not a bool) within int64."""
    return isinstance(value, int) and not isinstance(value, bool) and -INT64_MAX - 1 <= value <= INT64_MAX


# The learning rate of a recipe that names none, by the encoder's width (hidden size). From BERT-base's 768 up: the
# paper's 2e-5 (§3; Devlin et al. 2019, A.3, fine-tune base and large at 2e-5 to 5e-5). Narrower (all-MiniLM-L6-v2 is
# 384 wide): 1e-4, since 2e-5 barely moves such a model in a few hundred steps (docs/results/fit.md: `train` at 2e-5
# failed 17 of 20 runs on RTE, MRPC, CoLA and STS-B at 1000 rows, `adam+reinit:2+lr=1e-4` 3 of 20). Turc et al.
# 2019 fine-tune their compact BERTs at up to 1e-4 too.
WIDE_ENCODER = 768
PAPER_LR = 2e-5
NARROW_LR = 1e-4


def default_lr(width: int | None) -> float:
    """The learning rate of a recipe that names none, for an encoder `width` wide (its hidden size): `NARROW_LR`
    below `WIDE_ENCODER`, else the paper's `PAPER_LR` (also when the width is unknown: None)."""
    return NARROW_LR if width is not None and width < WIDE_ENCODER else PAPER_LR


def help_field(text: str, default: Any = None, *, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with help text (shown by `steadytune train --help` and `steadytune recipes`) and, for a
    setting with a fixed set of values, its `choices` (the CLI's flag accepts only those)."""
    metadata: dict[str, Any] = {"help": text} if choices is None else {"help": text, "choices": choices}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Recipe:
    """How to fine-tune. Defaults are the paper's §3 set-up with bias-corrected Adam (its "Standard")."""

    name: str = help_field("How the recipe was written, e.g. 'adam+reinit:2'; the label in reports.", "adam")
    optimizer: str = help_field("adamw (bias-corrected Adam, decoupled weight decay) or bertadam (no bias "
                                "correction: BERT's original optimizer).", "adamw",
                                choices=OPTIMIZER_NAMES)  # fmt: skip
    lr: float | None = help_field("Peak learning rate. Unset: by the encoder's width (`default_lr`: 1e-4 "
                                  "below 768 wide, the paper's 2e-5 from BERT-base up); preset paper: "
                                  "2e-5.")  # fmt: skip
    betas: tuple[float, float] = help_field("Adam betas (BERT's 0.9, 0.999).", (0.9, 0.999))
    eps: float = help_field("Adam epsilon (BERT's 1e-6).", 1e-6)
    weight_decay: float = help_field("Decoupled weight decay; never on biases or LayerNorm weights (paper §3: 0).",
                                     0.0)  # fmt: skip
    prior_wd: bool = help_field("Decay toward the pre-trained weights (after re-init) instead of toward zero "
                                "(paper §6).", False)  # fmt: skip
    batch_size: int = help_field("Training batch size (paper §3: 32).", 32)
    epochs: float = help_field("Training epochs (paper §3: 3); ignored when max_steps is set.", 3.0)
    max_steps: int | None = help_field("Training budget in optimizer steps; overrides epochs (paper §7).")
    warmup_ratio: float = help_field("Linear warm-up over this fraction of the steps, then linear decay to 0 "
                                     "(paper §3: 0.1).", 0.1)  # fmt: skip
    max_grad_norm: float = help_field("Clip the global gradient norm to this (paper §3: 1.0); 0 turns clipping off.",
                                      1.0)  # fmt: skip
    reinit_layers: int = help_field("Re-initialise this many top Transformer blocks (paper §5).", 0)
    reinit_pooler: bool = help_field("Re-initialise the pooler's dense layer (paper §5, with reinit_layers).", False)
    llrd: float | None = help_field("Layer-wise learning-rate decay ξ in (0, 1]: block k from the top gets lr·ξᵏ, "
                                    "embeddings lr·ξ^(L+1) (paper §6). None: off.")  # fmt: skip
    mixout: float = help_field("Mixout probability toward the pre-trained weights, in [0, 1) (paper §6). 0: off.",
                               0.0)  # fmt: skip
    mixout_keep_dropout: bool = help_field("Keep dropout on with Mixout (the paper's code turned it off).", False)
    # how fast (chosen not to change results: docs/results/precision.md)
    precision: str = help_field("auto, fp32 or bf16: bf16 autocast with fp32 weights and optimizer state; auto is "
                                "bf16 where the hardware has it (CUDA Ampere+, CPUs with AVX512-BF16 or AMX). "
                                "Runs record what they used.", "auto", choices=PRECISIONS)  # fmt: skip
    group_by_length: bool = help_field("Batch training examples of similar length together (random mega-batches "
                                       "of 16 batches, sorted; batches shuffled), so batches carry little "
                                       "padding.", True)  # fmt: skip

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        problems = []
        if self.optimizer not in OPTIMIZER_NAMES:
            problems.append(f"unknown optimizer {self.optimizer!r} (use {' or '.join(OPTIMIZER_NAMES)})")
        # Numbers must be finite (records are strict JSON, and inf/NaN settings only make a run diverge or never
        # end), integers within int64 (what torch and numpy take); then each in its range.
        floats = ("lr", "eps", "weight_decay", "epochs", "warmup_ratio", "max_grad_norm", "mixout", "llrd")
        ints = ("batch_size", "max_steps", "reinit_layers")
        bad = [f"{name} must be a finite number, got {getattr(self, name)!r}" for name in floats
               if getattr(self, name) is not None and not _real(getattr(self, name))]  # fmt: skip
        bad += [f"{name} must be an integer of at most {INT64_MAX}, got {getattr(self, name)!r}" for name in ints
                if getattr(self, name) is not None and not _integer(getattr(self, name))]  # fmt: skip
        if bad:  # the ranges below cannot compare these
            raise UserInputError(f"recipe {self.name!r}: " + "; ".join(problems + bad))
        checks = [
            ("lr", self.lr is None or self.lr > 0, "positive"),
            ("eps", self.eps >= 0, "≥ 0"),
            ("betas", len(self.betas) == 2 and all(_real(b) and 0 <= b < 1 for b in self.betas),
             "two numbers in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "≥ 0"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("epochs", self.max_steps is not None or self.epochs > 0, "positive"),
            ("epochs", self.epochs <= MAX_EPOCHS, f"at most {MAX_EPOCHS:g}"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "at least 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            ("max_grad_norm", self.max_grad_norm >= 0, "≥ 0"),
            ("reinit_layers", self.reinit_layers >= 0, "≥ 0"),
            ("llrd", self.llrd is None or 0 < self.llrd <= 1, "in (0, 1]"),
            ("mixout", 0 <= self.mixout < 1, "in [0, 1)"),
        ]  # fmt: skip
        problems += [f"{name} must be {rule}, got {getattr(self, name)!r}" for name, ok, rule in checks if not ok]
        if self.precision not in PRECISIONS:
            problems.append(f"unknown precision {self.precision!r} (use {', '.join(PRECISIONS)})")
        if self.prior_wd and self.weight_decay == 0:
            problems.append("prior_wd needs weight_decay > 0 (its strength λ), e.g. prior-wd:1e-3")
        if problems:
            raise UserInputError(f"recipe {self.name!r}: " + "; ".join(problems))

    # --- the short form ---------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Recipe:
        """Read `preset[:value]` and `field=value` tokens joined by `+`, e.g. "bertadam+lr=5e-5+batch_size=16".

        Presets (see `PRESETS`, `steadytune recipes`) must not contradict each other ("bertadam+adam" sets two
        optimizers); `field=value` overrides what a preset set. Unset fields keep the `Recipe` defaults.
        """
        if isinstance(text, Recipe):
            return text
        name = "".join(str(text).split())
        if not name:
            raise UserInputError("empty recipe; write e.g. 'adam' or 'adam+reinit:2'")
        by_preset: dict[str, tuple[Any, str]] = {}
        explicit: dict[str, tuple[Any, str]] = {}
        for token in name.split("+"):
            if "=" in token:
                key, _, raw = token.partition("=")
                key = key.lower().replace("-", "_")
                if key not in _FIELD_TYPES:
                    raise UserInputError(f"recipe {name!r}: unknown field {key!r} in {token!r} "
                                         f"(fields: {', '.join(_FIELD_TYPES)})")  # fmt: skip
                _merge(explicit, {key: _convert(name, key, raw)}, token, name)
                continue
            preset_name, _, raw = token.partition(":")
            preset = PRESETS.get(preset_name.lower().replace("_", "-"))
            if preset is None:
                raise UserInputError(f"recipe {name!r}: unknown preset {preset_name!r} "
                                     f"(presets: {', '.join(PRESETS)}; or write field=value)")  # fmt: skip
            _merge(by_preset, preset.expand(name, raw or None), token, name)
        values = {k: v for k, (v, _) in by_preset.items()} | {k: v for k, (v, _) in explicit.items()}
        return cls(name=name, **values)

    def override(self, **changes: Any) -> Recipe:
        """A copy with some fields changed; the changes are appended to the name ("adam" → "adam+lr=0.0001")."""
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if not changed:
            return self
        suffix = "".join(f"+{k}={_show(v)}" for k, v in changed.items())
        return replace(self, name=self.name + suffix, **changed)

    # --- what it means ----------------------------------------------------------------------------------------

    def num_training_steps(self, num_examples: int) -> int:
        """The budget: `max_steps`, else ceil(epochs × batches per epoch)."""
        return self.max_steps or max(1, math.ceil(self.epochs * math.ceil(num_examples / self.batch_size)))

    @property
    def optimizer_class(self) -> type[AdamW]:
        return _optimizer_classes()[self.optimizer]

    def resolved(self, width: int | None) -> Recipe:
        """This recipe with its learning rate set: `default_lr(width)` when it names none (the name stays: the
        record's `lr` says what ran)."""
        return self if self.lr is not None else replace(self, lr=default_lr(width))

    def optimizer_kwargs(self) -> dict[str, Any]:
        if self.lr is None:
            raise ValueError(f"recipe {self.name!r} has no learning rate yet: resolve it for the model first "
                             "(`Recipe.resolved(hidden_size)`)")  # fmt: skip
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                "prior_weight_decay": self.prior_wd}  # fmt: skip

    @property
    def still_rows_stay_still(self) -> bool:
        r"""True when the optimizer leaves a parameter row whose gradient is always zero exactly where it started,
        so such rows can be left out of training (`steadytune.vocab`): Adam and BERTAdam from zero state step by
        :math:`\eta \cdot 0 / (0 + \epsilon) = 0`, and decay toward the pre-trained weights by
        :math:`\lambda(\theta - \theta^{(0)}) = 0`; plain decay shrinks every row."""
        return self.weight_decay == 0 or self.prior_wd

    def create_optimizer(self, params) -> torch.optim.Optimizer:
        """This recipe's optimizer over `params` (parameters or groups); `steadytune audit --recipe` probes it."""
        return self.optimizer_class(params, **self.optimizer_kwargs())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        return cls(**{k: v for k, v in d.items() if k in _FIELD_TYPES or k == "name"})

    def changes(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what the name expands to)."""
        base = Recipe()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "name" and getattr(self, f.name) != getattr(base, f.name)}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A named recipe part: fixed field values, and optionally one field set by `:value` (with a default)."""

    summary: str
    source: str
    sets: dict[str, Any] = field(default_factory=dict)
    arg: str | None = None
    default: Any = None
    metavar: str = ""
    """How `steadytune recipes` names the value (L, ξ, p, λ, steps)."""

    def expand(self, recipe: str, raw: str | None) -> dict[str, Any]:
        if raw is not None and self.arg is None:
            raise UserInputError(f"recipe {recipe!r}: this preset takes no value (got ':{raw}')")
        values = dict(self.sets)
        if self.arg is not None:
            values[self.arg] = self.default if raw is None else _convert(recipe, self.arg, raw)
        return values


# Defaults: the paper's §3 set-up and the official sample commands (asappresearch/revisit-bert-finetuning,
# sample_commands/*.sh, all for BERT-large on RTE). Each preset names its source.
PRESETS: dict[str, Preset] = {
    "bertadam": Preset("Adam without bias correction: BERT's original optimizer, the paper's baseline",
                       "paper §4; run_glue.py --use_bertadam", {"optimizer": "bertadam"}),
    "adam": Preset("bias-corrected Adam (the paper's 'Standard'); the default optimizer",
                   "paper §4; every sample command's --use_torch_adamw", {"optimizer": "adamw"}),
    "paper": Preset("the paper's §3 set-up exactly: lr 2e-5 whatever the encoder (with adam: its 'Standard'; with "
                    "bertadam: its baseline)", "paper §3; every sample command's --learning_rate 2e-5",
                    {"lr": PAPER_LR}),
    "reinit": Preset("re-initialise the pooler and the top L Transformer blocks",
                     "paper §5; sample_commands/reinit.sh: --reinit_pooler --reinit_layers 5",
                     {"reinit_pooler": True}, "reinit_layers", 5, "L"),
    "llrd": Preset("layer-wise learning-rate decay: block k from the top at lr·ξᵏ",
                   "paper §6; sample_commands/llrd.sh: --layerwise_learning_rate_decay 0.95", {}, "llrd", 0.95, "ξ"),
    "mixout": Preset("Mixout toward the pre-trained weights with probability p (dropout off)",
                     "paper §6; sample_commands/mixout.sh: --mixout 0.1", {}, "mixout", 0.1, "p"),
    "prior-wd": Preset("weight decay toward the pre-trained weights with strength λ",
                       "paper §6; sample_commands/pretrained_wd.sh: --prior_weight_decay --weight_decay 1e-3",
                       {"prior_wd": True}, "weight_decay", 1e-3, "λ"),
    "wd": Preset("plain decoupled weight decay toward zero with strength λ",
                 "BERT's weight_decay_rate 0.01 (google-research/bert optimization.py)",
                 {"prior_wd": False}, "weight_decay", 0.01, "λ"),
    "longer": Preset("train for a fixed number of steps instead of 3 epochs",
                     "paper §7; sample_commands/debiased_adam_longer.sh: --max_steps 400",
                     {}, "max_steps", 400, "steps"),
    "fp32": Preset("train in float32 throughout (the default where the hardware has no fast bf16)",
                   "paper Table 4: precision had no significant effect", {"precision": "fp32"}),
    "bf16": Preset("bf16 autocast, fp32 weights and optimizer state (the default where the hardware has it)",
                   "paper §3: mixed precision 'to speed up experiments'", {"precision": "bf16"}),
}  # fmt: skip

_FIELD_TYPES: dict[str, Any] = {f.name: get_type_hints(Recipe)[f.name] for f in fields(Recipe) if f.name != "name"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _convert(recipe: str, key: str, raw: str) -> Any:
    """Parse `raw` as the type of field `key`; one clear error line otherwise."""
    tp = _FIELD_TYPES[key]
    optional = get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)
    if optional:
        if raw.lower() == "none":
            return None
        tp = next(a for a in get_args(tp) if a is not type(None))
    try:
        if tp is bool:
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError
            return raw.lower() in _TRUE
        if get_origin(tp) is tuple:
            parts = tuple(float(x) for x in raw.replace("/", ",").split(","))
            if len(parts) != 2:
                raise ValueError
            return parts
        if tp is int:
            return int(raw)
        return tp(raw)
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a word"}.get(tp, "two numbers a,b")
        raise UserInputError(f"recipe {recipe!r}: {key} must be {kind}, got {raw!r}") from None


def _merge(into: dict[str, tuple[Any, str]], values: dict[str, Any], token: str, recipe: str) -> None:
    for key, value in values.items():
        if key in into and into[key][0] != value:
            other = into[key][1]
            raise UserInputError(f"recipe {recipe!r}: {other!r} and {token!r} contradict each other "
                                 f"({key} = {_show(into[key][0])} vs {_show(value)})")  # fmt: skip
        into[key] = (value, token)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    return str(value)


# --- applying a recipe ----------------------------------------------------------------------------------------


def prepare_model(model: nn.Module, recipe: Recipe, *, generator: torch.Generator | None = None) -> dict[str, list]:
    """The recipe's model surgery, in the paper's order: re-init, then Mixout (whose target is the re-drawn model).

    Returns {"reinitialized": parameter names, "mixout": module names}.
    """
    from .mixout import apply_mixout
    from .reinit import reinit_top_layers

    recipe = Recipe.parse(recipe)
    done: dict[str, list] = {"reinitialized": [], "mixout": []}
    if recipe.reinit_layers or recipe.reinit_pooler:
        done["reinitialized"] = reinit_top_layers(
            model, recipe.reinit_layers, pooler=recipe.reinit_pooler, generator=generator
        )
    if recipe.mixout > 0:
        done["mixout"] = apply_mixout(model, recipe.mixout, disable_dropout=not recipe.mixout_keep_dropout)
    return done


def create_optimizer_and_scheduler(
    model: nn.Module, recipe: Recipe, num_training_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The recipe's optimizer (parameter groups with or without LLRD) and its linear warm-up/decay schedule.

    Warm-up lasts ceil(warmup_ratio · steps) steps (Hugging Face Trainer's rounding), then the rate decays
    linearly to 0 at `num_training_steps`.
    """
    from transformers import get_linear_schedule_with_warmup

    from .optim import param_groups
    from .optim.llrd import llrd_param_groups

    # A recipe that names no learning rate runs at the one for this encoder's width (`default_lr`).
    recipe = Recipe.parse(recipe).resolved(getattr(getattr(model, "config", None), "hidden_size", None))
    if recipe.llrd is not None:
        groups = llrd_param_groups(model, recipe.lr, recipe.llrd, weight_decay=recipe.weight_decay)
    else:
        groups = param_groups(model, weight_decay=recipe.weight_decay, lr=recipe.lr)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (all have requires_grad=False)")
    optimizer = recipe.create_optimizer(groups)
    warmup = math.ceil(recipe.warmup_ratio * num_training_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, num_training_steps)
