"""`fit` against one run and against the best of K full runs: test metric, failures and compute, per task.

    python benchmarks/fit_vs_seeds.py --glue-dir ../shared/data/glue --out docs/results/fit-minilm   # resumable

Per task (RTE, MRPC, CoLA, STS-B; `--train-size 1000`, all-MiniLM-L6-v2) and repetition r (seed pool
r·K .. r·K + K − 1, disjoint between repetitions):

- (a) one `train` run with the default recipe (`adam`: lr 2e-5, 3 epochs), seed r·K;
- (b) one run of the best fixed recipe of the studies (`--fixed`, default `adam+reinit:2+lr=1e-4`), seed r·K;
- (c) the best of the same K candidates as (d), every one run to the end, picked by validation: the candidates
  `fit` dropped are resumed from the checkpoints it left at their last check, so (c) costs only the difference;
  its compute is K full runs. A validation tie goes where fit's search sends it (`_fit_order`): to the candidate
  fit carried furthest, so that (c) and (d) agree whenever fit's pick is among the best on validation;
- (d) `steadytune.fit` with K candidates (its defaults otherwise: learning rates by the encoder's width, the top 2
  blocks re-initialised; `--fit-recipe R` starts them from recipe R instead of train's default, in their own
  folders, sharing (a) and (b)).

Every run is stored under `--out` as it finishes (fit folders, and one JSON file per (task, repetition, way)), so
an interrupted benchmark resumes where it stopped; it runs repetition-major (every task's r-th repetition before
any (r+1)-th), and `--table-only` prints the table of the repetitions finished so far. The default `--out` is
committed: its `.gitignore` keeps the records (JSON, fit stores) and leaves out weights and checkpoints, so a
repetition finished in one session is not run again in the next (one cut off mid-fit resumes from its store).
The table: test metric of the chosen/only model (last checkpoint for (a)/(b) as the failure rule uses it, the
best-validation checkpoint for (c)/(d), which is the model they return), mean ± std over repetitions, failure rate
(the run, or the chosen model, failed on test: `metrics.failure`; for (d) also how often fit itself said no, exit
1 without a model, and how many of the models it delivered failed), and training steps summed over the candidates.
Welch t-tests compare (d) with (a) (one-sided: is fit better?) and with (c) (two-sided: is fit within noise of the
best of K?). (c) is picked afresh from the stored records of its runs each time (`_pick_of_all`); its `c.json` only
marks that they were run out. Below the tables, the counts docs/results/fit.md's sentences rest on: (d) − (c) by
repetition, how often both pick the same candidate, how many of fit's picks fail at their last checkpoint, fit's
picks by learning rate, and the versions and hosts the run records name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ttest_ind, ttest_rel

import steadytune
from steadytune.config import TrainConfig
from steadytune.files import atomic_write_text, to_json
from steadytune.fitting import FitSettings, candidate_configs, fit
from steadytune.metrics import failure
from steadytune.recipes import Recipe
from steadytune.study.executors import LocalExecutor
from steadytune.study.grid import config_data
from steadytune.trainer import train_stage

TASKS = ("rte", "mrpc", "cola", "sts-b")


def _stored(path: Path, compute, *args) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    value = compute(*args)
    atomic_write_text(path, to_json(value))
    return value


def _one_run(config: TrainConfig, data) -> dict:
    r = steadytune.train(config, data=data)
    return {"test": r.test_last, "failed": r.failed, "steps": r.steps, "recipe": config.recipe.name}


def _best_of_all(config: TrainConfig, settings: FitSettings, folder: Path, data, done: dict) -> dict:
    """(c): every candidate to the end (dropped ones resumed from their last checkpoint), picked by validation;
    `done` is (d)'s fit record."""
    configs = candidate_configs(config, settings)
    for c in done["candidates"]:
        if c["status"] == "dropped":  # the run writes its record to run/metrics.json, where `_pick_of_all` reads it
            train_stage(configs[c["name"]], data=data, out=folder / "candidates" / c["name"] / "run", until=None)
    return _pick_of_all(done, folder)


def _fit_order(candidate: dict, index: int) -> tuple[int, int, int]:
    """How far fit's search carried a candidate, as a sort key (larger: further), which breaks (c)'s validation
    ties: finished, then dropped at a later check, then dropped at an earlier one; among those dropped at the same
    check, the better rank there. Among its finished candidates fit takes the first in list order of those with the
    best validation score (`max` in `steadytune.fitting.outcome.conclude`), so finished ones go by list order."""
    checks = candidate.get("checks") or []
    finished = candidate["status"] == "finished"
    rank = 0 if finished or not checks else -int(checks[-1].get("rank") or 0)
    return len(checks) + finished, rank, -index


def _pick_of_all(done: dict, folder: Path) -> dict:
    """(c)'s pick from the stored records of the candidates run to the end: the best validation score of the best
    checkpoints (fit's record for the candidates it finished, run/metrics.json for those it dropped), ties broken
    by `_fit_order`; failed under the same rule as the other ways, against the test baseline fit stored."""
    metric = done["metric"]
    finals = []
    for i, c in enumerate(done["candidates"]):
        run = folder / "candidates" / c["name"] / "run" / "metrics.json"
        record = json.loads(run.read_text()) if c["status"] == "dropped" else c
        score = ((record.get("best") or {}).get("validation") or {}).get(metric)
        if score is not None:
            finals.append(((score, *_fit_order(c, i)), c["name"], record))
    if not finals:
        return {"test": None, "failed": True, "steps": done["full_steps"], "pick": None}
    _, name, record = max(finals, key=lambda f: f[0])
    test = record["best"]["test"] or {}
    why = failure(test.get(metric), done["baselines"]["test"], mse=test.get("mse"))
    return {"test": test.get(metric), "failed": why is not None, "steps": done["full_steps"], "pick": name}


def _stored_only(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fit_only(folder: Path) -> dict | None:
    """(d) from a finished fit folder's fit.json, without touching the fit."""
    done = _stored_only(folder / "fit.json")
    if done is None:
        return None
    return _fit_way(done)


def _fit_way(done: dict) -> dict:
    """(d)'s row from a fit record: its model's test score, failed under the same rule as the other ways (on test),
    and whether fit itself said no (exit 1: its verdict was no); the pick's name and learning rate, and whether the
    pick failed at its last checkpoint (the same rule on its last test score; fit returns its best checkpoint)."""
    test = done["test"] or {}
    why = failure(test.get(done["metric"]), done["baselines"]["test"], mse=test.get("mse"))
    pick = next((c for c in done["candidates"] if c["name"] == done["chosen"]), {})
    last = (pick.get("last") or {}).get("test") or {}
    last_why = failure(last.get(done["metric"]), done["baselines"]["test"], mse=last.get("mse"),
                       diverged=pick.get("status") == "diverged")  # fmt: skip
    return {"test": test.get(done["metric"]), "failed": why is not None, "said_no": not done["success"],
            "steps": done["steps"], "pick": done["chosen"], "lr": pick.get("lr"),
            "pick_failed_last": bool(pick) and last_why is not None,
            "test_last": last.get(done["metric"])}  # fmt: skip


def _fit_paths(where: Path, recipe: str | None) -> tuple[Path, Path]:
    """The fit folder and the (c) file of a repetition: `fit`, `c.json` for the default recipe."""
    return (
        (where / "fit", where / "c.json") if recipe is None else (where / f"fit-{recipe}", where / f"c-{recipe}.json")
    )


def _repetition(task: str, rep: int, args, settings: FitSettings, data) -> tuple[dict, ...]:
    """The four ways of one (task, repetition), each computed once and stored under --out."""
    base = TrainConfig(task=task, glue_dir=args.glue_dir, model=args.model, train_size=args.train_size)
    seed = rep * args.candidates
    where = args.out / task / f"rep{rep}"
    where.mkdir(parents=True, exist_ok=True)
    a = _stored(where / "a.json", _one_run, base.with_overrides(seed=seed), data)
    b = _stored(where / "b.json", _one_run, base.with_overrides(seed=seed, recipe=args.fixed), data)
    start = base.with_overrides(seed=seed, **({"recipe": args.fit_recipe} if args.fit_recipe else {}))
    folder, c_file = _fit_paths(where, args.fit_recipe)
    # A finished fit is read back, not called again: the stored folders keep records, not weights (see --out).
    done = _stored_only(folder / "fit.json")
    if done is None:
        done = fit(
            start, folder, settings=settings, data=data, executor=LocalExecutor(args.workers), keep_checkpoints=True
        ).to_dict()  # (c) continues the dropped candidates from theirs
    _stored(c_file, _best_of_all, start, settings, folder, data, done)  # once stored, (c)'s runs are all out
    c = _pick_of_all(done, folder)
    for saved in (folder / "candidates").glob("*/run.checkpoint.pt"):  # (c) ran them all out: 240 MB each, spent
        saved.unlink()
    d = _fit_way(done)
    return a, b, c, d


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--out", type=Path, default=Path("docs/results/fit-minilm"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=FitSettings().candidates)
    parser.add_argument("--fixed", default="adam+reinit:2+lr=1e-4")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--fit-recipe", default=None, help="the recipe fit's candidates start from (default: train's); (a), (b) shared"
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="print the table of the repetitions already finished under --out; run nothing",
    )
    args = parser.parse_args()
    settings = FitSettings(candidates=args.candidates)
    tasks = args.tasks.split(",")
    on = f", {args.fit_recipe}" if args.fit_recipe else ""
    names = ("(a) train, default recipe", f"(b) train, {args.fixed}", f"(c) best of {args.candidates} full runs{on}",
             f"(d) fit, {args.candidates} candidates{on}")  # fmt: skip
    ways = {task: {name: [] for name in names} for task in tasks}
    datas: dict = {}
    for rep in range(args.repetitions):  # repetition-major: every task gets its r-th repetition before the next
        for task in tasks:
            where = args.out / task / f"rep{rep}"
            if args.table_only:
                folder, c_file = _fit_paths(where, args.fit_recipe)
                got = (*(_stored_only(where / f"{w}.json") for w in "ab"), _stored_only(c_file), _fit_only(folder))
                if any(g is None for g in got):
                    continue
                got = (*got[:2], _pick_of_all(_stored_only(folder / "fit.json"), folder), got[3])
            else:
                if task not in datas:
                    datas[task] = config_data(TrainConfig(task=task, glue_dir=args.glue_dir, model=args.model,
                                                          train_size=args.train_size))  # fmt: skip
                got = _repetition(task, rep, args, settings, datas[task])
                print(f"{task} rep {rep}: " + " ".join(f"{w} {g['test']:.4f}" for w, g in zip("abcd", got)),
                      file=sys.stderr, flush=True)  # fmt: skip
            for name, value in zip(names, got):
                ways[task][name].append(value)
    rows = []
    for task in tasks:
        if not ways[task][names[0]]:
            continue
        for way, values in ways[task].items():
            scores = np.array([np.nan if v["test"] is None else v["test"] for v in values], dtype=float)
            rows.append((task, way, str(len(values)), f"{np.nanmean(scores):.4f} ± {np.nanstd(scores, ddof=1):.4f}",
                         f"{sum(v['failed'] for v in values)}/{len(values)}" + _delivered(values),
                         str(sum(v["steps"] for v in values))))  # fmt: skip
        a_scores = [v["test"] for v in ways[task][names[0]] if v["test"] is not None]
        d_scores = [v["test"] for v in ways[task][names[3]] if v["test"] is not None]
        c_scores = [v["test"] for v in ways[task][names[2]] if v["test"] is not None]
        p = ttest_ind(d_scores, a_scores, equal_var=False, alternative="greater").pvalue
        q = ttest_ind(d_scores, c_scores, equal_var=False).pvalue
        rows.append((task, "Welch p: (d) > (a); (d) ≠ (c)", "", f"{p:.3g}; {q:.3g}", "", ""))
    _print_table(("task", "way", "reps", "test mean ± std", "failed", "steps"), rows)
    print()
    _print_table(("task", "lr", "runs", "best val mean", "test (best ckpt) mean ± std", "failed (last ckpt)"),
                 _by_lr(args, tasks))  # fmt: skip
    print()
    _claims(ways, names, args, tasks)
    return 0


def _claims(ways: dict, names: tuple[str, ...], args, tasks: list[str]) -> None:
    """The counts docs/results/fit.md's sentences rest on, printed so that each sentence is a copy: (d) − (c) by
    repetition with its mean and the paired t-test, how often (d) and (c) pick the same candidate, how many of
    fit's picks fail at their last checkpoint, fit's picks by learning rate, and the versions and hosts that the
    run records (every candidate's run/metrics.json) name, by repetition."""
    rows, lrs = [], {}
    for task in tasks:
        cs, ds = ways[task][names[2]], ways[task][names[3]]
        if not ds:
            continue
        both = [(c["test"], d["test"]) for c, d in zip(cs, ds) if c["test"] is not None and d["test"] is not None]
        if not both:
            continue
        diff = np.array([d - c for c, d in both])
        paired = ttest_rel([d for _, d in both], [c for c, _ in both]).pvalue if len(both) > 1 else float("nan")
        failed_last = [f"{d['test_last']:.4f} → {d['test']:.4f}" for d in ds if d.get("pick_failed_last")]
        same = [r for r, (c, d) in enumerate(zip(cs, ds)) if c["pick"] == d["pick"]]
        rows.append((task, f"{diff.mean():+.4f}", f"{paired:.2f}", " ".join(f"{x:+.4f}" for x in diff),
                     f"{len(same)} of {len(ds)}" + (f" (rep {', '.join(map(str, same))})" if same else ""),
                     f"{len(failed_last)} of {len(ds)}"
                     + (f" ({', '.join(failed_last)})" if failed_last else "")))  # fmt: skip
        for d in ds:
            lrs.setdefault(d["lr"], {}).setdefault(task, 0)
            lrs[d["lr"]][task] += 1
    _print_table(("task", "(d) − (c) mean", "paired p", "(d) − (c) by repetition", "same pick as (c)",
                  "(d)'s pick failed at its last ckpt (last → best-ckpt test)"), rows)  # fmt: skip
    picks = sum(len(ways[t][names[3]]) for t in tasks)
    print(f"fit's picks by learning rate, of {picks}: " + "; ".join(
        f"{lr:g} in {sum(by.values())} ({', '.join(f'{t} {n}' for t, n in by.items())})"
        for lr, by in sorted(lrs.items(), key=lambda kv: -sum(kv[1].values()))))  # fmt: skip
    for rep in range(args.repetitions):
        seen: dict[tuple, list[str]] = {}
        anew = []
        for task in tasks:
            folder, _ = _fit_paths(args.out / task / f"rep{rep}", args.fit_recipe)
            for run in sorted((folder / "candidates").glob("*/run/metrics.json")):
                v = json.loads(run.read_text()).get("versions") or {}
                seen.setdefault((v.get("steadytune"), v.get("transformers"), v.get("platform")), []).append(task)
            anew += [task] * _restarted(folder)
        if seen:
            kinds = [f"{len(t)} steadytune {s}, transformers {tr}, {pl} ({_per_task(t)})"
                     for (s, tr, pl), t in seen.items()]  # fmt: skip
            again = f"{len(anew)}" + (f" ({_per_task(anew)})" if anew else "")
            print(f"repetition {rep}'s run records: {'; '.join(kinds)}; (c)'s runs trained anew, not from fit's "
                  f"checkpoints: {again}")  # fmt: skip


def _per_task(tasks: list[str]) -> str:
    """How often each task occurs, in order of first occurrence: `rte 9, sts-b 2`."""
    return ", ".join(f"{t} {tasks.count(t)}" for t in dict.fromkeys(tasks))


def _restarted(folder: Path) -> int:
    """How many of the candidates fit dropped were run out by (c) anew instead of from fit's checkpoint: the run's
    training curve differs from that of fit's longest stored stage of the candidate (`study.sqlite`) within that
    stage's steps (a continued run carries the stage's curve bit for bit)."""
    done = _stored_only(folder / "fit.json")
    if done is None or not (folder / "study.sqlite").is_file():
        return 0
    n = 0
    with contextlib.closing(sqlite3.connect(folder / "study.sqlite")) as store:
        for c in done["candidates"]:
            curve = folder / "candidates" / c["name"] / "run" / "curve.jsonl"
            if c["status"] != "dropped" or not curve.is_file():
                continue
            stages = [json.loads(r) for (r,) in store.execute("SELECT record FROM trials WHERE recipe LIKE ?",
                                                             (c["name"] + "@%",))]  # fmt: skip
            fit_curve = max((s.get("curve") or [] for s in stages), key=len, default=[])
            run = [json.loads(line) for line in curve.read_text().splitlines() if line.strip()]
            n += [p["loss"] for p in fit_curve] != [p["loss"] for p in run[: len(fit_curve)]]
    return n


def _delivered(values: list[dict]) -> str:
    """(d)'s failure count split by what fit said: how often it said no (exit 1, no model), and how many of the models
    it did deliver (exit 0) failed on test."""
    if "said_no" not in values[0]:
        return ""
    delivered = [v for v in values if not v["said_no"]]
    return (
        f" (fit said no: {len(values) - len(delivered)}; of the {len(delivered)} it delivered, "
        f"{sum(v['failed'] for v in delivered)} failed)"
    )


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip())


def _by_lr(args, tasks: list[str]) -> list[tuple[str, ...]]:
    """Every candidate run to the end ((c)'s runs, finished repetitions only), grouped by learning rate: what the
    default grid's rates give on their own (the failure rule on the last checkpoint, as for (a) and (b))."""
    rows = []
    for task in tasks:
        by: dict[float, list[dict]] = {}
        for rep in range(args.repetitions):
            folder, c_file = _fit_paths(args.out / task / f"rep{rep}", args.fit_recipe)
            if not c_file.is_file():
                continue
            for run in sorted((folder / "candidates").glob("*/run/metrics.json")):
                record = json.loads(run.read_text())
                lr = Recipe.parse(json.loads((run.parent / "config.json").read_text())["recipe"]).lr
                by.setdefault(lr, []).append(record)
        for lr, records in sorted(by.items()):
            m = records[0]["metric"]
            val = np.mean([r["best"]["validation"][m] for r in records])
            test = np.array([r["best"]["test"][m] for r in records])
            spread = f"{test.mean():.4f} ± {test.std(ddof=1):.4f}"
            rows.append((task, f"{lr:g}", str(len(records)), f"{val:.4f}", spread,
                         f"{sum(r['failed'] for r in records)}/{len(records)}"))  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
