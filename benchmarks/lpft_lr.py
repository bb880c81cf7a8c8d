"""LP-FT's learning rate (`steadytune.lpft.LpftSettings.lr`), measured: `fit --families lp-ft` on the small-data
benchmark's own rows (benchmarks/small_data.py, SST-2, all-MiniLM-L6-v2), at each rate, its model scored on all 872
dev rows. The records go to docs/results/small-data/lpft-lr.jsonl (one line per run, resumable: a stored
(n, sample, lr) is not run again).

    python benchmarks/lpft_lr.py --ns 64,256 --samples 3 --lrs 2e-5,1e-4
    python benchmarks/lpft_lr.py --table
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results" / "small-data"


def run(n: int, sample: int, lr: float) -> dict:
    import steadytune
    import steadytune.lpft as lpft
    from steadytune import FitSettings, TrainConfig
    from steadytune.inference import predict_file

    cell = RESULTS / f"sst2-n{n}" / f"s{sample}"
    default = lpft.LpftSettings
    lpft.LpftSettings = lambda: dataclasses.replace(default(), lr=lr)  # what run_lpft makes, at this rate
    try:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            config = TrainConfig(train_file=str(cell / "rows.csv"), text_columns=("review",),
                                 label_column="sentiment")  # fmt: skip
            result = steadytune.fit(config, Path(scratch) / "fit", settings=FitSettings(families=("lp-ft",)),
                                    keep_candidates=True)  # fmt: skip
            fit_s = time.perf_counter() - started
            model = Path(scratch) / "fit" / "candidates" / "lp-ft" / "run" / "model"
            predict_file(model, RESULTS / "sst2-dev.csv", Path(scratch) / "p.csv", text_columns="review")
            with open(Path(scratch) / "p.csv", encoding="utf-8", newline="") as f:
                got = [row["prediction"] for row in csv.DictReader(f)]
    finally:
        lpft.LpftSettings = default
    with open(RESULTS / "sst2-dev.csv", encoding="utf-8", newline="") as f:
        truth = [row["sentiment"] for row in csv.DictReader(f)]
    accuracy = sum(a == b for a, b in zip(got, truth)) / len(truth)
    return {"n": n, "sample": sample, "lr": lr, "accuracy": accuracy, "yes": result.success,
            "cv": result.candidates[0].get("cv", {}).get("score"), "fit_s": round(fit_s, 1),
            "steadytune": steadytune.__version__}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns", default="64,256")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--lrs", default="2e-5,1e-4")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    path = RESULTS / "lpft-lr.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    if not args.table:
        done = {(r["n"], r["sample"], r["lr"]) for r in records}
        for n in map(int, args.ns.split(",")):
            for sample in range(args.samples):
                for lr in map(float, args.lrs.split(",")):
                    if (n, sample, lr) in done:
                        continue
                    record = run(n, sample, lr)
                    records.append(record)
                    with open(path, "a", encoding="utf-8") as f:  # one whole line per run
                        f.write(json.dumps(record) + "\n")
                    print(json.dumps(record), flush=True)
    print(f"{'n':>5}  {'lr':>7}  runs  dev accuracy     yes   fit s")
    for key in sorted({(r["n"], r["lr"]) for r in records}):
        rows = [r for r in records if (r["n"], r["lr"]) == key]
        acc = [r["accuracy"] for r in rows]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(
            f"{key[0]:>5}  {key[1]:>7.0e}  {len(rows):>4}  {statistics.mean(acc):.3f} ± {spread:.3f}  "
            f"{sum(r['yes'] for r in rows)}/{len(rows)}  {statistics.mean(r['fit_s'] for r in rows):>6.0f}"
        )


if __name__ == "__main__":
    main()
