"""`train` with its defaults on the fit benchmark's runs: does the default fail no more often than the best fixed
recipe?

    python benchmarks/train_defaults.py --glue-dir ../shared/data/glue   # resumable; --table-only prints

The fit benchmark (`benchmarks/fit_vs_seeds.py`, docs/results/fit.md) ran, per task (RTE, MRPC, CoLA, STS-B;
1000 training rows, all-MiniLM-L6-v2) and repetition r, one `train` run with the default recipe of its day (a:
Adam at 2e-5, stored as a.json) and one with the best fixed recipe of the studies (b: adam+reinit:2+lr=1e-4,
b.json), both with seed 9·r. This script adds one run with today's default (`TrainConfig()`'s recipe, its learning
rate resolved for the encoder), same rows and seed, stored as a-default.json beside them, and prints the three
side by side: test metric at the last checkpoint (what the failure rule judges), failures, and the recipe and
learning rate each ran with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import steadytune
from steadytune.config import TrainConfig
from steadytune.files import atomic_write_text, to_json
from steadytune.study.grid import config_data

TASKS = ("rte", "mrpc", "cola", "sts-b")
CANDIDATES = 9  # the fit benchmark's seed pools: repetition r starts at seed 9·r


def _run(config: TrainConfig, data) -> dict:
    r = steadytune.train(config, data=data)
    return {"test": r.test_last, "failed": r.failed, "steps": r.steps, "recipe": r.config["recipe"],
            "lr": r.config["lr"], "version": steadytune.__version__}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--out", type=Path, default=Path("docs/results/fit-minilm"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--table-only", action="store_true", help="print the stored runs; run nothing")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    ways = {"a": "(a) train, 0.10 default: adam, lr 2e-5", "a-default": "(a) train, default now",
            "b": "(b) train, adam+reinit:2+lr=1e-4"}  # fmt: skip
    got: dict[str, dict[str, list[dict]]] = {t: {w: [] for w in ways} for t in tasks}
    for rep in range(args.repetitions):
        for task in tasks:
            where = args.out / task / f"rep{rep}"
            path = where / "a-default.json"
            if not path.is_file() and not args.table_only:
                base = TrainConfig(task=task, glue_dir=args.glue_dir, model=args.model, train_size=args.train_size)
                record = _run(base.with_overrides(seed=rep * CANDIDATES), config_data(base))
                atomic_write_text(path, to_json(record))
                print(f"{task} rep {rep}: {record['recipe']} lr {record['lr']:g}: test {record['test']:.4f}"
                      + (" FAILED" if record["failed"] else ""), flush=True)  # fmt: skip
            if all((where / f"{w}.json").is_file() for w in ways):
                for w in ways:
                    got[task][w].append(json.loads((where / f"{w}.json").read_text()))
    print(f"{'task':<6}  {'way':<40}  {'reps':>4}  {'test (last ckpt) mean ± std':<28}  failed")
    totals = {w: [0, 0] for w in ways}
    for task in tasks:
        for w, name in ways.items():
            runs = got[task][w]
            if not runs:
                continue
            scores = np.array([np.nan if r["test"] is None else r["test"] for r in runs], dtype=float)
            failed = sum(bool(r["failed"]) for r in runs)
            totals[w][0] += failed
            totals[w][1] += len(runs)
            spread = f"{np.nanmean(scores):.4f} ± {np.nanstd(scores, ddof=1):.4f}" if len(runs) > 1 else "-"
            print(f"{task:<6}  {name:<40}  {len(runs):>4}  {spread:<28}  {failed}/{len(runs)}")
    print("failed in all: " + "; ".join(f"{ways[w]} {f}/{n}" for w, (f, n) in totals.items()))
    now = [r for t in tasks for r in got[t]["a-default"]]
    if now:
        print("today's default ran as: " + ", ".join(sorted({f"{r['recipe']} at lr {r['lr']:g} (steadytune "
                                                             f"{r['version']})" for r in now})))  # fmt: skip
    same = sum(a["test"] == b["test"] for t in tasks for a, b in zip(got[t]["a-default"], got[t]["b"]))
    print(f"runs whose test score equals (b)'s to the last digit (same recipe, rate and seed): {same} of {len(now)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
