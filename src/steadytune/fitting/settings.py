"""What `fit` searches over: its settings (`FitSettings`), the learning rates that follow the encoder's width
(`default_lrs`), the recipe every candidate starts from (`resolve`), and the candidates themselves.

Why these defaults: `steadytune.fitting.search`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..config import DEFAULT_RECIPE, TrainConfig
from ..errors import UserInputError
from ..recipes import WIDE_ENCODER, Recipe
from ..recipes import help_field as _help

# The families `FitSettings.families` may name (`steadytune.fitting.families` runs the probe, the contrastive and the
# LP-FT family, `search` the fine-tuning candidates), and those fit compares by default: docs/results/small-data.
FAMILIES = ("probe", "contrastive", "lp-ft", "finetune")
DEFAULT_FAMILIES = ("probe", "contrastive", "finetune")
# A regression task's defaults on a small file: LP-FT where the contrastive family would be (SetFit's pairs need
# classes). STS-B at 256 rows, 3 samples: LP-FT 0.370 ± 0.003 Spearman on the test half against 0.223 ± 0.002 for
# the probe 0.13 delivered, every sample ahead (docs/results/small-data). Held out, a regression file keeps
# `REGRESSION_HELD_OUT_FAMILIES`: LP-FT's 10 epochs at batch 16 are more steps than the whole fine-tuning search on
# a larger file, and at 1000 STS-B rows its validation score (0.580) was below the search's pick (0.628).
REGRESSION_FAMILIES = ("probe", "lp-ft", "finetune")
REGRESSION_HELD_OUT_FAMILIES = ("probe", "finetune")
# Rows under which a classification file of the user's is a small file (`FitSettings.cross_validate_below`): SST-2
# at 1024 rows, whose 102 validation rows chose a fine-tuning run (0.892 there) over the contrastive model (0.853)
# that then scored 0.786 against 0.883 on the 103 test rows (docs/results/small-data). 102 rows measure an accuracy
# near 0.85 to ±0.07 (95%), more than the families differ, and the best of 11 candidates on them is that much too
# high. 2000 is twice the largest size measured: 200 validation rows (±0.05). Above it fit keeps the held-out search
# with fine-tuning, the paper's stabilised recipe for a few thousand rows (not measured here from 2000 rows up).
CROSS_VALIDATE_BELOW = 2000

__all__ = [
    "CROSS_VALIDATE_BELOW",
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "MAX_CANDIDATES",
    "REGRESSION_FAMILIES",
    "REGRESSION_HELD_OUT_FAMILIES",
    "Candidate",
    "FitSettings",
    "candidate_configs",
    "default_families",
    "default_lrs",
    "resolve",
]

# A fit's candidates each keep a checkpoint of their whole training state (10-12 bytes a parameter: 240 MB for
# all-MiniLM-L6-v2) and a stage record per check; a thousand is already more than a disk and a day hold. More is a
# study (`steadytune study`), not a search.
MAX_CANDIDATES = 1000
# Candidates finished to the end by default: two, so the pick is a choice (module docstring).
_KEEP = 2


@dataclass(frozen=True)
class FitSettings:
    """How `fit` searches (the module docstring says why these defaults)."""

    candidates: int = _help(f"Candidates to start, each a (seed, learning rate) pair (1 to {MAX_CANDIDATES}).", 9)
    lrs: tuple[float, ...] | None = _help(
        "Learning rates the candidates spread over, in turn. Default: by the encoder's width (`default_lrs`).", None
    )
    check_at: tuple[float, ...] = _help("Fractions of the step budget at which candidates are judged.", (0.25, 0.5))
    keep: int | None = _help("Candidates that continue from the last check to the end (default 2, or all of fewer).",
                             None)  # fmt: skip
    # Last, so that positional FitSettings(candidates, lrs, check_at, keep) of 0.7 still means what it did.
    reinit: int = _help(
        "Top Transformer blocks (with the pooler) that every candidate re-initialises when its recipe re-initialises "
        "none (paper §5; 0: keep the pre-trained ones).",
        2,
    )
    families: tuple[str, ...] | None = _help(
        "Candidate families to compare (`steadytune.fitting.families`): probe (the frozen encoder's features and a "
        "cross-validated linear head), contrastive (SetFit's two stages: the encoder tuned on pairs drawn from the "
        "labels and the label names, then the probe's head; classification only), lp-ft (the probe's head, then the "
        "encoder and head fine-tuned together), finetune (the successive-halving fine-tuning candidates). Default: by "
        "the task (`default_families`): probe, contrastive, finetune; for regression probe, lp-ft, finetune on a "
        "small file and probe, finetune held out.",
        None,
    )
    cross_validate_below: int = _help(
        "A classification file of your own (no test file) with fewer rows than this is fitted as a small file: the "
        "families are compared by cross-validation over every row, without the fine-tuning candidates, whose pick "
        "on a 10% validation split is noise at this size (`settings.CROSS_VALIDATE_BELOW`). 0: only when its test "
        "split would hold fewer than 30 rows.",
        CROSS_VALIDATE_BELOW,
    )

    def __post_init__(self) -> None:
        if self.lrs is not None:
            object.__setattr__(self, "lrs", tuple(float(x) for x in self.lrs))
        object.__setattr__(self, "check_at", tuple(float(x) for x in self.check_at))
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise UserInputError(f"candidates must be between 1 and {MAX_CANDIDATES}, got {self.candidates}")
        if self.keep is None:
            object.__setattr__(self, "keep", min(_KEEP, self.candidates))
        if not 1 <= self.keep <= self.candidates:
            raise UserInputError(f"keep must be between 1 and the number of candidates ({self.candidates}), got "
                                 f"{self.keep}")  # fmt: skip
        if self.reinit < 0:
            raise UserInputError(f"reinit must be 0 or more, got {self.reinit}")
        if self.lrs is not None and (not self.lrs or not all(math.isfinite(x) and 0 < x < 1 for x in self.lrs)):
            raise UserInputError(f"learning rates must lie in (0, 1), got {', '.join(f'{x:g}' for x in self.lrs)}")
        if self.lrs is not None and len(set(self.lrs)) < len(self.lrs):
            twice = next(x for x in self.lrs if self.lrs.count(x) > 1)
            raise UserInputError(f"learning rate {twice:g} is listed twice in lrs")
        checks = self.check_at
        if not checks or not all(0 < a < 1 for a in checks) or list(checks) != sorted(set(checks)):
            raise UserInputError(f"check fractions must increase strictly within (0, 1), got {checks}")
        below = self.cross_validate_below
        if isinstance(below, bool) or not isinstance(below, int) or below < 0:
            raise UserInputError(f"cross_validate_below must be a whole number of rows ≥ 0, got "
                                 f"{self.cross_validate_below!r}")  # fmt: skip
        if self.families is None:  # by the task, once fit knows it (`default_families`)
            return
        object.__setattr__(self, "families", tuple(self.families))
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families or len(set(self.families)) < len(self.families):
            what = f"unknown family {unknown[0]!r}" if unknown else f"got {', '.join(self.families) or 'none'}"
            raise UserInputError(f"families must name each of {', '.join(FAMILIES)} at most once, and one at least; "
                                 f"{what}")  # fmt: skip


@dataclass
class Candidate:
    name: str
    seed: int
    lr: float
    config: TrainConfig
    status: str = "running"
    """running, dropped (at a check), finished, or diverged."""
    reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """At each check it reached: {"step", "validation", "loss", "flagged", "rank"}."""
    record: dict[str, Any] | None = None
    """The finished run's record."""
    steps: int = 0
    family: str = "finetune"

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("config", "record")}
        if self.record is not None:
            d["best"], d["last"] = self.record["best"], self.record["last"]
            d["failed"], d["failure"] = self.record["failed"], self.record["failure"]
            for key in ("probe", "cv"):  # the probe's pooling, head and regularisation; a small file's test
                if key in self.record:
                    d[key] = self.record[key]
        return d


# The encoder width from which the base/large grid applies (`recipes.WIDE_ENCODER`): BERT-base's 768 (all-MiniLM-L6-v2
# is 384 wide, BERT-small 512, DistilBERT and BERT-base 768, BERT-large 1024).
_WIDE = WIDE_ENCODER
# Devlin et al. 2019, appendix A.3: fine-tune BERT-base and -large at 5e-5, 3e-5 or 2e-5 (2e-5 is what Zhang et al.
# and Mosbach et al. use for BERT-large on small data).
_WIDE_LRS = (2e-5, 3e-5, 5e-5)
# Measured on all-MiniLM-L6-v2, 1000 examples, 3 epochs (benchmarks/runs/fit repetition 0, 3 seeds per rate and
# task; the 5- and 20-seed studies): 2e-5 barely moves it (STS-B ρ 0.15, every MRPC run failed), 5e-5 is better,
# 1e-4 best so far, 2e-4 as good (MRPC best-checkpoint F1 0.83, RTE 0.55-0.57, 2 seeds each, nothing diverged).
# Turc et al. 2019 fine-tune their compact BERTs at up to 1e-4 too.
_NARROW_LRS = (5e-5, 1e-4, 2e-4)


def default_lrs(model: str) -> tuple[float, ...]:
    """The learning rates `fit` spreads its candidates over when none are given: a narrow encoder (hidden size below
    768) trains at higher rates than BERT-base or -large (see the constants above). A model whose config cannot be
    read here (a hub id offline) gets the base/large grid; its trials then report why it cannot be loaded."""
    from ..models import _peek_config, resolve_model

    found = _peek_config(resolve_model(model))
    width = getattr(found, "hidden_size", None) if found is not None else None
    return _NARROW_LRS if width is not None and width < _WIDE else _WIDE_LRS


def _without_default_reinit(recipe: Recipe) -> Recipe:
    """`recipe` without the re-init of train's default (`adam+reinit:2`, with any settings on top, e.g.
    `adam+reinit:2+batch_size=8` from --batch-size), so that fit's --reinit decides it; any other recipe as it is."""
    head, tokens = DEFAULT_RECIPE.split("+"), recipe.name.split("+")
    rest = tokens[len(head) :]
    if tokens[: len(head)] != head or any(t.split(":")[0].split("=")[0].startswith("reinit") for t in rest):
        return recipe
    return replace(recipe, name="+".join([head[0], *rest]), reinit_layers=0, reinit_pooler=False)


def default_families(num_labels: int, *, small: bool) -> tuple[str, ...]:
    """The families `fit` compares when `FitSettings.families` names none: `DEFAULT_FAMILIES` for a classification
    task; for a regression task (`num_labels` 1) `REGRESSION_FAMILIES` on a small file (`families.small_file`),
    else `REGRESSION_HELD_OUT_FAMILIES`."""
    if num_labels > 1:
        return DEFAULT_FAMILIES
    return REGRESSION_FAMILIES if small else REGRESSION_HELD_OUT_FAMILIES


def resolve(config: TrainConfig, settings: FitSettings) -> tuple[TrainConfig, FitSettings]:
    """What the candidates start from: the learning-rate grid (`default_lrs` when none is given) and the recipe,
    which re-initialises the top `settings.reinit` blocks and the pooler when it re-initialises none itself (the
    20-seed study, docs/results: at 1e-4 re-init cut failed runs from 7/20 to 1/20 on RTE and 14/20 to 10/20 on
    MRPC, and raised CoLA's MCC, with STS-B unchanged)."""
    from ..models import _peek_config, resolve_model

    if settings.lrs is None:
        settings = replace(settings, lrs=default_lrs(config.model))
    recipe = config.recipe
    recipe = _without_default_reinit(recipe)  # train's default re-initialises 2 blocks: here --reinit says how many
    config = replace(config, recipe=recipe)
    if settings.reinit and not recipe.reinit_layers:
        n = settings.reinit
        config = replace(config, recipe=replace(recipe.override(reinit_layers=n, reinit_pooler=True),
                                                name=f"{recipe.name}+reinit:{n}"))  # fmt: skip
    # Before any candidate starts: each one would fail on its own (a folder of errored stages) for this reason.
    found = _peek_config(resolve_model(config.model))
    depth = getattr(found, "num_hidden_layers", None) if found is not None else None
    if depth is not None and config.recipe.reinit_layers > depth:
        raise UserInputError(f"re-initialising {config.recipe.reinit_layers} blocks (--reinit) needs a deeper model: "
                             f"{config.model} has {depth} Transformer blocks")  # fmt: skip
    return config, settings


def _candidates(config: TrainConfig, settings: FitSettings) -> list[Candidate]:
    """The fine-tuning candidates (none when `settings.families` leaves finetune out)."""
    out: list[Candidate] = []
    if settings.families is not None and "finetune" not in settings.families:  # None: the defaults, all fine-tune
        return out
    for i in range(settings.candidates):
        lr = settings.lrs[i % len(settings.lrs)]
        seed = config.seed + i
        cfg = replace(config.with_overrides(lr=lr), seed=seed, init_seed=None, save_model=True)
        out.append(Candidate(f"c{i:02d}-lr{lr:g}-seed{seed}", seed, lr, cfg))
    return out


def candidate_configs(config: TrainConfig, settings: FitSettings) -> dict[str, TrainConfig]:
    """Each candidate's configuration by name, as `fit` runs it (e.g. to continue a dropped one from its checkpoint:
    `steadytune.trainer.train_stage(configs[name], data=..., out=<out>/candidates/<name>/run, until=None)`)."""
    return {c.name: c.config for c in _candidates(*resolve(config, settings))}
