"""`fit`'s search: start several candidates, drop the bad ones early, finish the best, and say plainly how it went.

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
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ..config import NOT_IDENTITY, PER_TRIAL, TrainConfig
from ..data import TaskData
from ..errors import UserInputError
from ..files import to_json
from ..metrics import Baseline, constant_baseline
from ..study.executors import Executor, LocalExecutor
from ..study.grid import Trial, config_data
from ..study.progress import StepBar, accepts_steps
from ..study.store import Store
from ..tracking import require
from .families import CONTRASTIVE, LPFT, PROBE, family_steps, run_contrastive, run_lpft, run_probe, small_file
from .outcome import FitResult, _check_verdict_possible, conclude
from .settings import Candidate, FitSettings, _candidates, default_families, resolve

__all__ = ["FLAG_WORDS", "fit", "rejudge"]

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
    keep_candidates: bool = False,
    _deliver: bool = True,
) -> FitResult:
    """Search as the module docstring says; write `<out>/model` (the chosen model and its model card) and
    `<out>/fit.json`; return the record. `config` is `train`'s (data, model, recipe; its `seed` is the first
    candidate's, its lr is replaced by the candidates'). A killed fit resumes from `<out>/study.sqlite`.

    Each candidate's whole training state (weights and Adam's two moments, about 10-12 bytes a parameter: 240 MB for
    all-MiniLM-L6-v2, about 4 GB for BERT-large) is checkpointed between stages and removed once the fit is done;
    `keep_checkpoints` keeps the dropped candidates' ones, to continue them later (`candidate_configs`).

    Each finished candidate's model is removed too once the fit is done, but the pick's on a no (`outcome`'s
    docstring); `keep_candidates` keeps them all."""
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
    # A small file: the probe alone, judged by cross-validation over every row (`families.small_file`), unless the
    # test rows are the user's own (--test-file, a dataset's split), which are then judged as given; else the test
    # split must be able to show a model right on every row, or the verdict could only be no.
    own_test = config.test_file is not None or config.dataset is not None
    # A classification file of the user's under `cross_validate_below` rows is a small file too; not a preset's
    # (its validation and test rows are the paper's halves of its dev set), nor one with test rows of its own.
    below = 0 if config.task else settings.cross_validate_below
    small_rows = not own_test and small_file(data, below=below)  # small, if a feature family runs
    if settings.families is None:  # the defaults, by the task and (for regression) by whether the file is small
        settings = replace(settings, families=default_families(data.num_labels, small=small_rows))
    # The families that run besides fine-tuning: the contrastive one needs classes (SetFit has no regression form).
    extra = [f for f in (PROBE, CONTRASTIVE, LPFT)
             if f in settings.families and (f != CONTRASTIVE or data.num_labels > 1)]  # fmt: skip
    if settings.families == (CONTRASTIVE,) and not extra:
        raise UserInputError("the contrastive family needs a classification task (SetFit's pairs have no regression "
                             "form); for this regression task use --families probe,finetune")  # fmt: skip
    small = bool(extra) and small_rows
    if not small:
        _check_verdict_possible(data, test_base)
    total = config.recipe.num_training_steps(len(data.train))
    stops = sorted({max(1, min(total - 1, round(f * total))) for f in settings.check_at} - {0}) if total > 1 else []
    candidates = [] if small else _candidates(config, settings)
    store = Store(out)
    stage_names = [f"@{s}" for s in stops] + ["@end"]
    recipes = {c.name + st: c.config for c in candidates for st in stage_names}
    recipes |= {name + "@end": config for name in extra}
    store.claim(_identity(config, settings, data, small=small), recipes, [data.name], new=new)
    try:
        # Before fine-tuning: the probe takes seconds and the other families minutes at most, and a fit that is
        # stopped later keeps them.
        for i, name in enumerate(extra):
            family = _family(name, config, data, metric, test_base, out, store, executor, small=small,
                             progress=progress)  # fmt: skip
            candidates.insert(i, family)
        # The bar counts training steps: each stage's share is its alive candidates × the stage's steps, planned
        # with the survivors of each check and re-planned when a check keeps fewer (diverged ones are dropped).
        segments = [b - a for a, b in zip([0, *stops], [*stops, total])]
        planned, runs = _planned(sum(c.family == "finetune" for c in candidates), 0, segments, settings)
        bar = StepBar(planned, total_trials=runs, unit="fit stages", enable=progress and not small)
        for i, stop in enumerate([*stops, None] if any(c.family == "finetune" for c in candidates) else []):
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
    return conclude(config, settings, data, metric, val_base, test_base, candidates, total, out, keep_checkpoints,
                    deliver=_deliver, keep_candidates=keep_candidates)  # fmt: skip


def _track(name: str, config: TrainConfig, data: TaskData, metric: str, record: dict[str, Any]) -> None:
    """A probe, contrastive or LP-FT candidate as one tracker run (`config.report_to`, in the fit's folder), as each
    fine-tuning candidate is one: its step losses (contrastive, lp-ft) and final metrics, named `<data>/<family>`."""
    if config.report_to == "none":
        return
    from ..tracking import open_tracker

    with open_tracker(config.report_to, folder=config.tracking_dir or ".", name=f"{data.name}/{name}",
                      config={**record["config"], "family": name}, metric=metric) as tracker:  # fmt: skip
        tracker.log_steps(record["curve"])
        final = {k: record[k] for k in ("best", "last", "failed", "diverged", "baseline", "majority_baseline")}
        # at step 1 at least: the trackers log from a run's first step on (a probe takes none)
        tracker.log_result(SimpleNamespace(**final, steps=max(1, record["steps"])))


def _family(name: str, config: TrainConfig, data: TaskData, metric: str, test_base: Baseline, out: Path,
            store: Store, executor: Executor | None, *, small: bool, progress: bool) -> Candidate:  # fmt: skip
    """The probe, contrastive or LP-FT candidate: its stored record, else run now (`families.run_probe`,
    `families.run_contrastive`, `families.run_lpft`) and stored."""
    key = (data.name, name + "@end", config.seed)
    record = store.records().get(key)
    if record is None:
        if not getattr(executor, "trains", True):  # rejudge: nothing may be computed
            raise UserInputError(f"the {name} candidate of this fit is not stored: rerun the fit command to finish it")
        if name == PROBE:
            record = run_probe(config, data, metric=metric, test_base=test_base, out=out, small=small)
        else:
            total = family_steps(name, data, small=small, seed=config.seed)
            bar, trial, done = (
                StepBar(total, total_trials=1, unit=name, enable=progress),
                SimpleNamespace(key=name),
                [0],
            )
            bar.add(name, 0, total)

            def step_done(steps: int) -> None:
                done[0] += steps
                bar.steps(trial, done[0])

            try:
                run = run_contrastive if name == CONTRASTIVE else run_lpft
                record = run(config, data, metric=metric, test_base=test_base, out=out, small=small,
                             step_done=step_done)  # fmt: skip
                bar.finished(trial)
            finally:
                bar.close()
        _track(name, config, data, metric, record)
        store.add(key, record)
    status, reason = ("diverged", f"diverged at step {record['steps']}") if record["diverged"] else ("finished", "")
    return Candidate(name, config.seed, 0.0, config, status=status, reason=reason, record=record, family=name,
                     steps=record.get("steps", 0))  # fmt: skip


def _identity(config: TrainConfig, settings: FitSettings, data: TaskData, *, small: bool) -> dict[str, Any]:
    """What must match for a fit folder's stored stages to be reused: the settings and the data's rows (families
    only when not the fine-tuning alone of the folders written before families existed). Not `cross_validate_below`
    itself but what it decided, and only where it decided otherwise than the test-split rule of the folders written
    before it existed, so that theirs stays the same."""
    shared = {k: v for k, v in config.to_dict().items() if k not in NOT_IDENTITY | PER_TRIAL | {"lr"}}
    fit_settings = {f"fit.{f.name}": getattr(settings, f.name) for f in fields(settings)}
    del fit_settings["fit.cross_validate_below"]
    if small and not small_file(data):
        fit_settings["fit.cross_validated"] = True
    if settings.families == ("finetune",):
        del fit_settings["fit.families"]
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


def rejudge(out: str | Path, *, data: TaskData | None = None, model: bool = True) -> FitResult:
    """Judge a finished fit folder again under the current verdict, from its stored records, without training (as
    rerunning the same `fit` command does): its `fit.json` gives the configuration and settings; the data is
    reloaded from where the fit read it (and must still be what the folder's store was claimed with) unless given.
    Rewrites `fit.json` and, on a yes, `model/` (its card); `model=False` leaves `model/` alone, for folders whose
    weights were not kept (the benchmarks' records). It removes nothing: the candidates' models that are there stay
    (a folder fitted with `keep_candidates` keeps them)."""
    out = Path(out)
    path = out / "fit.json"
    if not path.is_file():
        raise UserInputError(f"{path} is missing: {out} is not a finished fit folder")
    stored = json.loads(path.read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(stored["config"])
    stored["settings"].setdefault("families", ["finetune"])  # written before families: fine-tuning alone
    stored["settings"].setdefault("cross_validate_below", 0)  # written before it: the test-split rule alone
    names = {f.name for f in fields(FitSettings)}
    settings = FitSettings(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in stored["settings"].items() if k in names})  # fmt: skip
    return fit(config, out, settings=settings, data=data, executor=_NoTraining(), keep_candidates=True, _deliver=model)


class _NoTraining:
    """An executor for `rejudge`: every stage must already be stored."""

    trains = False

    def run(self, trials: list[Trial], done: Any, **_: Any) -> None:
        if trials:
            raise UserInputError(f"{len(trials)} stage(s) of this fit are not stored (e.g. {trials[0].recipe}): "
                                 "rerun the fit command to finish it")  # fmt: skip
