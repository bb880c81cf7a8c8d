"""`fit`: start several candidates, drop the bad ones early, finish the best, and say plainly how it went.

Dodge et al. 2020 ("Fine-Tuning Pretrained Language Models: Weight Initializations, Data Orders, and Early
Stopping") start many seeds, score them part-way, and continue only the promising ones; at the same compute this
finds better models than running few seeds to the end. Here a candidate is a (seed, learning rate) pair, since the
learning rate matters as much as the seed on small data. The procedure, successive halving over `check_at`:

1. every candidate trains to the first check (a fraction of its step budget) and is judged there: one that
   diverged is dropped; one whose training loss sits at the constant predictor's (the prior's cross-entropy, or
   the label variance for regression) or whose validation score is at or below the best constant predictor's is
   ranked below every other; the rest are ranked by the sum of two ranks, validation score and training loss
   (lower is better) over the last tenth of the steps before the check;
2. half of them (at least `keep`) continue to the next check, and `keep` continue from the last check to the end;
3. the pick is the best validation checkpoint among the finished ones; it is a success when its score on the test
   split, which took part in no choice, beats the best constant predictor's by more than chance
   (`steadytune.verdict`, whose docstring argues the design; fit ≤ 0.8.1 tested the pick on the validation split
   that chose it: on 100 fits on shuffled labels it said yes 3 times, 0.9's rule 0 times; docs/results/verdict.md).

Why these signals and these defaults (measured on docs/results/glue-minilm, 30 trials per task, all-MiniLM-L6-v2,
1000 training examples, 96 steps): no single early signal predicts the final validation score on every task; at
half the budget, Spearman ρ of validation score with the best final validation is 0.42 (CoLA), 0.43 (MRPC),
0.31 (RTE), 0.79 (STS-B) and of minus the training loss 0.65, 0.34, 0.10, 0.43, while their rank sum gives 0.61,
0.41, 0.25, 0.76 (and with last test 0.40, 0.69, 0.23, 0.73, better than either alone on three of four tasks). At
30% validation alone is weaker (0.46, 0.25, 0.59, −0.17). Hence two checks, at 25% (only clear failures and the
weakest half go) and at 50% (where the signals are informative), with 9 candidates and 2 kept: 9·0.25 + 5·0.25 +
2·0.5 = 4.5 runs' steps, half of running all 9 to the end. The 20-seed study (docs/results/glue-minilm-20) found
the first check weak on RTE and MRPC (rank-sum ρ 0.07 and 0.00 at 25%, 0.40 and 0.33 at 50%): there it drops
about half the candidates at random, which costs the search little once most candidates train (below).

What the candidates are matters more than how they are judged (docs/results/fit.md, repetition 0 of the 0.7.0
defaults: one run of `adam+reinit:2+lr=1e-4` beat fit's best of 9 on every task). So the learning rates follow
the encoder (`default_lrs`): a narrow one such as all-MiniLM-L6-v2 (384 wide) gets 5e-5, 1e-4 and 2e-4, since 2e-5
barely moves it in 96 steps; BERT-base and -large get the 2e-5 to 5e-5 of Devlin et al., where 1e-4 starts to
diverge. Each rate gets three of the 9 seeds. And every candidate re-initialises the top 2 blocks and the pooler
(Zhang et al. §5) unless its recipe re-initialises some itself (`FitSettings.reinit`; `resolve`). With these
defaults, 5 repetitions on RTE, MRPC, CoLA and STS-B (docs/results/fit.md) put fit within noise of the best of 9
full runs at half their steps on every task, and every model it delivered beat the constant predictor on test.

Candidates run through the study machinery (an `Executor`: local worker processes or Ray), each stage as a trial
that continues from the candidate's checkpoint; every stage's record goes to `<out>/study.sqlite` (the study store),
so a killed fit resumes where it stopped: finished stages are not redone.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ._version import __version__
from .config import NOT_IDENTITY, PER_TRIAL, TrainConfig
from .data import TaskData
from .errors import UserInputError
from .files import to_json
from .metrics import Baseline, constant_baseline
from .recipes import help_field as _help
from .study.executors import Executor, LocalExecutor
from .study.grid import Trial, config_data
from .study.progress import StepBar, accepts_steps
from .study.store import Store
from .tracking import require
from .verdict import ALPHA, Verdict, learned

__all__ = ["FitResult", "FitSettings", "candidate_configs", "default_lrs", "fit", "judge", "rejudge", "resolve"]

# The loss flag: a window's mean training loss within 2% of the constant predictor's loss has learned nothing
# (a balanced binary task's prior scores ln 2 on every example, so such a window sits at 0.693 exactly).
_CONSTANT_LOSS_SHARE = 0.98
# The loss window: the last tenth of the budget before a check (RTE-1k: the 10 steps before step 48).
_WINDOW_SHARE = 0.1
# A check's flags (its `flags`) as fit's table shows them: (a few words in a row, what they mean in its legend).
FLAG_WORDS = {
    "loss": ("loss at constant", f"training loss ≥ {_CONSTANT_LOSS_SHARE:.0%} of the constant predictor's"),
    "validation": ("val ≤ constant", "validation at or below the best constant predictor's"),
}


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

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("config", "record")}
        if self.record is not None:
            d["best"], d["last"] = self.record["best"], self.record["last"]
            d["failed"], d["failure"] = self.record["failed"], self.record["failure"]
        return d


@dataclass
class FitResult:
    """What `fit` did: every candidate's outcome, the choice, and the verdict."""

    settings: dict[str, Any]
    config: dict[str, Any]
    data: dict[str, Any]
    metric: str
    baselines: dict[str, Any]
    """The best constant predictor on validation and on test (`steadytune.metrics.Baseline`)."""
    candidates: list[dict[str, Any]]
    chosen: str | None
    success: bool
    verdict: str
    """One sentence: what was chosen and why it counts as a success, or why nothing does."""
    test: dict[str, Any] | None
    """The chosen model's best-checkpoint test metrics."""
    steps: int
    """Training steps summed over the candidates (the compute used)."""
    full_steps: int
    """What running every candidate to the end would have taken."""
    judgement: dict[str, Any] | None = None
    """The verdict's test (`steadytune.verdict.Verdict`: yes, p, test, n, split, corrected_for, alpha); None when
    nothing finished. Folders written before 0.9 lack it until a rerun re-judges them."""
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def why_no(self, out: str | Path) -> str:
        """The one line for a fit that found no model (`success` false): how it fell short (nothing finished; the
        pick no better than the best constant predictor on validation, or on the test rows; above it on test but
        not by more than chance), where the pick's model is in that last case, and what to try next."""
        tries = ("more candidates (--candidates), other learning rates (--lrs), re-initialising more or fewer top "
                 "layers (--reinit) or longer training (--epochs)")  # fmt: skip
        chosen = next((c for c in self.candidates if c["name"] == self.chosen), None)
        if chosen is None:
            return f"{self.verdict}; try {tries}"
        val = (chosen.get("best") or {}).get("validation") or {}
        if val.get(self.metric) is None or val[self.metric] <= self.baselines["validation"]["score"]:
            return f"no candidate beat the best constant predictor on validation: {self.verdict}; try {tries}"
        test = (self.test or {}).get(self.metric)
        if test is None or test <= self.baselines["test"]["score"]:
            return (f"the candidate best on validation is no better than the best constant predictor on the test "
                    f"rows: {self.verdict}; try {tries}")  # fmt: skip
        # above the constant predictor on test, but by no more than the test rows can attribute to chance
        model = Path(out) / "candidates" / chosen["name"] / "run" / "model"
        more = " (a larger file, or --test-file)" if self.config.get("train_file") else ""
        return (f"the chosen candidate beat the best constant predictor on the test rows, but not by more than "
                f"chance: {self.verdict}; its model is in {model} if you want it anyway; more test examples{more} "
                f"could tell it from chance, or try {tries}")  # fmt: skip

    def __repr__(self) -> str:
        """A few lines: the task, the choice and its test score against the baseline, the outcomes, the verdict."""
        m, base = self.metric, self.baselines.get("test") or {}
        test = (self.test or {}).get(m)
        statuses = [c["status"] for c in self.candidates]
        outcomes = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        return (f"FitResult(task={self.data.get('name')!r}, metric={m!r}, chosen={self.chosen!r}, "
                f"success={self.success},\n"
                f"  test {m} {'-' if test is None else f'{test:.4f}'} (best constant predictor "
                f"{base.get('score', float('nan')):.4f}, {base.get('predictor', '-')}), candidates: {outcomes}, "
                f"steps={self.steps}/{self.full_steps},\n"
                f"  verdict={self.verdict!r})")  # fmt: skip


def fit(
    config: TrainConfig,
    out: str | Path,
    *,
    settings: FitSettings | None = None,
    data: TaskData | None = None,
    executor: Executor | None = None,
    new: bool = False,
    progress: bool = False,
    keep_checkpoints: bool = False,
    _deliver: bool = True,
) -> FitResult:
    """Search as the module docstring says; write `<out>/model` (the chosen model and its model card) and
    `<out>/fit.json`; return the record. `config` is `train`'s (data, model, recipe; its `seed` is the first
    candidate's, its lr is replaced by the candidates'). A killed fit resumes from `<out>/study.sqlite`.

    Each candidate's whole training state (weights and Adam's two moments, about 10-12 bytes a parameter: 240 MB for
    all-MiniLM-L6-v2, about 4 GB for BERT-large) is checkpointed between stages and removed once the fit is done;
    `keep_checkpoints` keeps the dropped candidates' ones, to continue them later (`candidate_configs`)."""
    config, settings = resolve(config, settings or FitSettings())
    out = Path(out)
    require(config.report_to, config.tracking_dir)  # a tracker that is not installed fails before anything runs
    if config.report_to != "none" and config.tracking_dir is None:  # one tracker run per candidate, in the folder
        config = replace(config, tracking_dir=str(out.resolve()))
    data = data if data is not None else config_data(config)
    metric = config.metric or data.metric
    labels = {"num_labels": data.num_labels, "metric": metric, "label_names": data.label_names}
    val_base = constant_baseline(data.validation.labels, train_labels=data.train.labels, **labels)
    test_base = constant_baseline(data.test.labels, train_labels=data.train.labels, **labels)
    _check_verdict_possible(data, test_base)
    total = config.recipe.num_training_steps(len(data.train))
    stops = sorted({max(1, min(total - 1, round(f * total))) for f in settings.check_at} - {0}) if total > 1 else []
    candidates = _candidates(config, settings)
    store = Store(out)
    stage_names = [f"@{s}" for s in stops] + ["@end"]
    store.claim(_identity(config, settings, data), {c.name + st: c.config for c in candidates for st in stage_names},
                [data.name], new=new)  # fmt: skip
    try:
        # The bar counts training steps: each stage's share is its alive candidates × the stage's steps, planned
        # with the survivors of each check and re-planned when a check keeps fewer (diverged ones are dropped).
        segments = [b - a for a, b in zip([0, *stops], [*stops, total])]
        planned, runs = _planned(len(candidates), 0, segments, settings)
        bar = StepBar(planned, total_trials=runs, unit="fit stages", enable=progress)
        for i, stop in enumerate([*stops, None]):
            alive = [c for c in candidates if c.status == "running"]
            steps, runs = _planned(len(alive), i, segments, settings)
            bar.set_total(bar.n + steps, bar.done_trials + runs)
            records = _run_stage(alive, stop, stage_names[i], data, out, store, executor or LocalExecutor(), bar)
            for c in alive:
                _absorb(c, records[c.name], stop)
            if stop is not None:
                _judge(candidates, stop, total, data, val_base, metric, keep=_survivors(settings, i, len(stops)))
        bar.close()
    finally:
        store.close()
    return _conclude(config, settings, data, metric, val_base, test_base, candidates, total, out, keep_checkpoints,
                     deliver=_deliver)  # fmt: skip


# The encoder width from which the base/large grid applies: BERT-base's 768 (all-MiniLM-L6-v2 is 384 wide, BERT-small
# 512, DistilBERT and BERT-base 768, BERT-large 1024).
_WIDE = 768
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
    from .models import _peek_config, resolve_model

    found = _peek_config(resolve_model(model))
    width = getattr(found, "hidden_size", None) if found is not None else None
    return _NARROW_LRS if width is not None and width < _WIDE else _WIDE_LRS


def resolve(config: TrainConfig, settings: FitSettings) -> tuple[TrainConfig, FitSettings]:
    """What the candidates start from: the learning-rate grid (`default_lrs` when none is given) and the recipe,
    which re-initialises the top `settings.reinit` blocks and the pooler when it re-initialises none itself (the
    20-seed study, docs/results: at 1e-4 re-init cut failed runs from 7/20 to 1/20 on RTE and 14/20 to 10/20 on
    MRPC, and raised CoLA's MCC, with STS-B unchanged)."""
    from .models import _peek_config, resolve_model

    if settings.lrs is None:
        settings = replace(settings, lrs=default_lrs(config.model))
    recipe = config.recipe
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
    out = []
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


def _identity(config: TrainConfig, settings: FitSettings, data: TaskData) -> dict[str, Any]:
    """What must match for a fit folder's stored stages to be reused: the settings and the data's rows."""
    shared = {k: v for k, v in config.to_dict().items() if k not in NOT_IDENTITY | PER_TRIAL | {"lr"}}
    fit_settings = {f"fit.{f.name}": getattr(settings, f.name) for f in fields(settings)}
    return json.loads(to_json({"settings": {**shared, **fit_settings, "fit.seed": config.seed},
                               "data": {data.name: data.summary()["fingerprints"]}}))  # fmt: skip


def _survivors(settings: FitSettings, check: int, checks: int) -> int:
    """How many continue past check `check` of `checks`: half (at least `keep`) in between, `keep` at the last."""
    return (
        settings.keep if check == checks - 1 else max(settings.keep, math.ceil(settings.candidates / 2 ** (check + 1)))
    )


def _planned(alive: int, stage: int, segments: list[int], settings: FitSettings) -> tuple[int, int]:
    """(training steps, stage runs) of stages `stage`… when `alive` candidates start stage `stage`."""
    steps = runs = 0
    for j in range(stage, len(segments)):
        if j > stage:
            alive = min(alive, _survivors(settings, j - 1, len(segments) - 1))
        steps, runs = steps + alive * segments[j], runs + alive
    return steps, runs


def _run_stage(alive: list[Candidate], stop: int | None, stage: str, data: TaskData, out: Path, store: Store,
               executor: Executor, bar: StepBar) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Run (or find stored) every alive candidate's stage; their records by candidate name."""
    stored = store.records()
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for c in alive:
        trial = Trial(data.name, c.name + stage, c.seed, c.config, until=stop,
                      out=str(out / "candidates" / c.name / "run"))  # fmt: skip
        bar.add(trial.key, c.steps, stop if stop is not None else c.config.recipe.num_training_steps(len(data.train)))
        if trial.key in stored:
            records[c.name] = stored[trial.key]
            bar.finished(trial)
        else:
            todo.append(trial)
    errors: list[str] = []

    def done(trial: Trial, outcome: dict[str, Any] | BaseException) -> None:
        store.add(trial.key, outcome)
        bar.finished(trial)
        if isinstance(outcome, BaseException):
            errors.append(f"{trial.recipe}: {type(outcome).__name__}: {outcome}".splitlines()[0])
        else:
            records[trial.recipe[: -len(stage)]] = outcome

    if bar.enable and accepts_steps(executor):
        executor.run(todo, done, steps=bar.steps)
    else:
        executor.run(todo, done)
    if errors:  # rerunning the same command retries them; what is stored stays
        raise UserInputError(f"{len(errors)} candidate stage(s) failed with an error, e.g. {errors[0]}")
    return records


def _absorb(c: Candidate, record: dict[str, Any], stop: int | None) -> None:
    c.steps = record["steps"]
    if not record.get("partial"):
        c.record = record
        if record["diverged"]:
            c.status, c.reason = "diverged", f"diverged at step {record['steps'] + 1}"
        elif stop is None:
            c.status = "finished"
    if stop is not None and c.status == "running":
        c.checks.append({"step": record["steps"], "_record": record})  # judged by `_judge`, which drops the record


def _judge(candidates: list[Candidate], stop: int, total: int, data: TaskData, val_base: Baseline, metric: str,
           *, keep: int) -> None:  # fmt: skip
    """Rank the candidates alive at `stop` and drop all but the first `keep` (see the module docstring)."""
    alive = [c for c in candidates if c.status == "running"]
    constant_loss = _constant_loss(data)
    window = max(1, math.ceil(_WINDOW_SHARE * total))
    rows = []
    for c in alive:
        check = c.checks[-1]
        record = check.pop("_record")
        evals = [e for e in record["evals"] if e["step"] <= stop]
        val = evals[-1]["validation"][metric] if evals else None
        losses = [p["loss"] for p in record["curve"] if stop - window < p["step"] <= stop and p["loss"] is not None]
        loss = float(np.mean(losses)) if losses else math.inf
        flags, kinds = [], []
        if loss >= _CONSTANT_LOSS_SHARE * constant_loss:
            share = f"{_CONSTANT_LOSS_SHARE:.0%}"
            flags.append(f"training loss {loss:.4f} not below {share} of the constant predictor's {constant_loss:.4f}")
            kinds.append("loss")
        if val is not None and val <= val_base.score:
            flags.append(f"validation {metric} {val:.4f} ≤ {val_base.score:.4f}, the best constant predictor's")
            kinds.append("validation")
        check.update({"validation": val, "loss": loss, "flagged": flags, "flags": kinds})
        rows.append((c, val if val is not None else -math.inf, loss, bool(flags)))
    if not rows:
        return
    signal = rankdata([v for _, v, _, _ in rows]) + rankdata([-x for _, _, x, _ in rows])
    order = sorted(range(len(rows)), key=lambda i: (rows[i][3], -signal[i], -rows[i][1]))
    for rank, i in enumerate(order, 1):
        c = rows[i][0]
        c.checks[-1].update({"rank": rank, "of": len(rows), "signal": float(signal[i])})
        if rank > keep:
            why = "; ".join(rows[i][0].checks[-1]["flagged"]) or f"ranked {rank} of {len(rows)}"
            c.status, c.reason = "dropped", f"at step {stop}: {why}"
    for c in candidates:  # the partial records of candidates dropped earlier are not kept in memory
        for check in c.checks:
            check.pop("_record", None)


def _constant_loss(data: TaskData) -> float:
    """The training loss of the constant predictor a model that learned nothing converges to: the class prior's
    cross-entropy, or (regression, mean squared error) the labels' variance."""
    labels = np.asarray(data.train.labels)
    if data.num_labels == 1:
        return float(np.var(labels.astype(np.float64)))
    p = np.bincount(labels.astype(np.int64), minlength=data.num_labels) / len(labels)
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


def judge(scores: dict[str, float] | None, baseline: Baseline, data: TaskData, *, n_candidates: int) -> Verdict:
    """fit's verdict on the chosen model's best-checkpoint `scores` on the test split (`steadytune.verdict`): those
    rows took part in no choice (candidates, checkpoints and drops read validation scores and training losses
    only), so one test of one model needs no correction for the search."""
    labels = np.asarray(data.test.labels)
    counts = None if data.num_labels == 1 else np.bincount(labels.astype(np.int64), minlength=data.num_labels)
    majority = None if counts is None else float(counts.max() / len(labels))
    positives = int(counts[1]) if counts is not None and data.num_labels == 2 else None
    return learned(scores or {}, baseline, n=len(data.test), num_labels=data.num_labels, majority_rate=majority,
                   positives=positives,
                   split="test", corrected_for=f"nothing: the choice among {n_candidates} candidates and their "
                   "checkpoints read validation scores and training losses, never these rows")  # fmt: skip


def _check_verdict_possible(data: TaskData, baseline: Baseline) -> None:
    """Refuse before any training when even a model right on every test row could not be told from chance: the
    verdict could then only be no (4 test rows of two balanced classes: 4 of 4 against 0.5 has p = 0.0625)."""
    labels = np.asarray(data.test.labels)
    if data.num_labels == 1:
        perfect = {"pearson": 1.0, "spearmanr": 1.0}
    else:
        present = len(np.unique(labels)) > 1
        perfect = {"accuracy": 1.0, "f1": float(bool(np.any(labels == 1))), "matthews_correlation": float(present)}
    best = judge(perfect, baseline, data, n_candidates=0)
    if not best.yes:
        raise UserInputError(
            f"the test split has {len(data.test)} rows, too few for a verdict: a model right on every one would get "
            f"{best.sentence()}, not below {best.alpha}, so fit could only say no; give it more rows (it holds out "
            "10% of a file for test) or a --test-file (two balanced classes need at least 5 test rows)"
        )


def rejudge(out: str | Path, *, data: TaskData | None = None, model: bool = True) -> FitResult:
    """Judge a finished fit folder again under the current verdict, from its stored records, without training (as
    rerunning the same `fit` command does): its `fit.json` gives the configuration and settings; the data is
    reloaded from where the fit read it (and must still be what the folder's store was claimed with) unless given.
    Rewrites `fit.json` and, on a yes, `model/` (its card); `model=False` leaves `model/` alone, for folders whose
    weights were not kept (the benchmarks' records)."""
    out = Path(out)
    path = out / "fit.json"
    if not path.is_file():
        raise UserInputError(f"{path} is missing: {out} is not a finished fit folder")
    stored = json.loads(path.read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(stored["config"])
    names = {f.name for f in fields(FitSettings)}
    settings = FitSettings(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in stored["settings"].items() if k in names})  # fmt: skip
    return fit(config, out, settings=settings, data=data, executor=_NoTraining(), _deliver=model)


class _NoTraining:
    """An executor for `rejudge`: every stage must already be stored."""

    def run(self, trials: list[Trial], done: Any, **_: Any) -> None:
        if trials:
            raise UserInputError(f"{len(trials)} stage(s) of this fit are not stored (e.g. {trials[0].recipe}): "
                                 "rerun the fit command to finish it")  # fmt: skip


def _conclude(config: TrainConfig, settings: FitSettings, data: TaskData, metric: str, val_base: Baseline,
              test_base: Baseline, candidates: list[Candidate], total: int, out: Path,
              keep_checkpoints: bool = False, *, deliver: bool = True) -> FitResult:  # fmt: skip
    for c in candidates:  # every stage is stored: the checkpoints have done their work, unless asked to stay
        if c.status != "dropped" or not keep_checkpoints:
            (out / "candidates" / c.name / "run.checkpoint.pt").unlink(missing_ok=True)
    finished = [c for c in candidates if c.status == "finished" and c.record["best"]["validation"] is not None]
    chosen = max(finished, key=lambda c: c.record["best"]["validation"][metric], default=None)
    if chosen is None:
        judged = None
        success, verdict, test = False, "no candidate finished with a validation score (all diverged or dropped)", None
    else:
        test = chosen.record["best"]["test"]
        judged = judge(test, test_base, data, n_candidates=len(candidates))
        success = judged.yes
        score = (test or {}).get(metric)
        how = (f"test {metric} {'-' if score is None else f'{score:.4f}'} against {test_base.score:.4f} "
               f"({test_base.predictor})")  # fmt: skip
        verdict = (f"{chosen.name}: {how}; {judged.sentence()}"
                   + ("" if success else f", not below {ALPHA}: no better than chance"))  # fmt: skip
    result = FitResult(
        settings={f.name: getattr(settings, f.name) for f in fields(settings)},
        config=config.to_dict(), data=data.summary(), metric=metric,
        baselines={"validation": val_base.to_dict(), "test": test_base.to_dict()},
        candidates=[c.to_dict() for c in candidates], chosen=chosen.name if chosen else None, success=success,
        verdict=verdict, test=test, steps=sum(c.steps for c in candidates), full_steps=total * len(candidates),
        judgement=judged.to_dict() if judged else None,
    )  # fmt: skip
    _write(out, result, chosen if deliver else None)
    return result


def _write(out: Path, result: FitResult, chosen: Candidate | None) -> None:
    """`<out>/fit.json`, and on success `<out>/model` with the chosen model and its card, each replaced whole or not
    at all (every candidate's finished model stays in `<out>/candidates/<name>/run/model`)."""
    from .card import fit_card
    from .files import atomic_folder, atomic_write_text

    if chosen is not None and result.success:  # a model that failed is no answer: its record and folder stay
        source = out / "candidates" / chosen.name / "run" / "model"
        if not source.is_dir() and (out / "model" / "model.safetensors").is_file():
            source = out / "model"  # a rerun of a finished fit whose candidate folders were cleaned up: keep it
        elif not source.is_dir():
            raise UserInputError(f"{source} and {out / 'model'} are gone: the stored records chose this candidate, "
                                 "but its model is not there to copy; fit again with a new --out")  # fmt: skip
        with atomic_folder(out / "model") as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            (tmp / "README.md").write_text(fit_card(result), encoding="utf-8")
    atomic_write_text(out / "fit.json", to_json(result.to_dict()))
