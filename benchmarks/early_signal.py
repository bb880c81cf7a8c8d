"""How well does a run's early state predict its final validation score? The measurement behind `fit`'s rule.

    python benchmarks/early_signal.py docs/results/glue-minilm-20 [--fractions 0.25,0.3,0.5]

For every finished trial of a study store and each fraction f of its step budget, three signals at the check
step s = round(f · total_steps) (what `fit` sees there):

- validation: the task metric of the last evaluation at or before s;
- −loss: minus the mean training loss over the last tenth of the budget before s (`fitting.search._WINDOW_SHARE`);
- rank sum: the sum of the two ranks within the task (what `fit` ranks by).

Printed per task and fraction: Spearman ρ (scipy) of each signal with the trial's final best validation score
(what `fit` picks by) and with its last test score, over all of the task's trials; and the share of trials whose
window loss sits at the constant predictor's level (within 2%, `fitting.search._CONSTANT_LOSS_SHARE`) that end failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

from steadytune.config import TrainConfig
from steadytune.fitting.search import _CONSTANT_LOSS_SHARE, _WINDOW_SHARE, _constant_loss
from steadytune.study.grid import config_data


def _records(store: Path) -> list[dict]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    rows = con.execute("SELECT record FROM trials WHERE status = 'done'").fetchall()
    return [r for r in (json.loads(row[0]) for row in rows) if not r.get("partial")]


def _signals(record: dict, fraction: float) -> tuple[float, float] | None:
    total, metric = record["total_steps"], record["metric"]
    step = max(1, min(total - 1, round(fraction * total)))  # as `fit` places its checks
    evals = [e for e in record["evals"] if e["step"] <= step]
    window = max(1, math.ceil(_WINDOW_SHARE * total))
    losses = [p["loss"] for p in record["curve"] if step - window < p["step"] <= step]
    if not evals or not losses or not np.all(np.isfinite(losses)):
        return None
    return evals[-1]["validation"][metric], -float(np.mean(losses))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--fractions", default="0.25,0.3,0.5")
    args = parser.parse_args()
    records = _records(args.study_dir / "study.sqlite")
    fractions = [float(f) for f in args.fractions.split(",")]
    print(f"{len(records)} trials of {args.study_dir}")
    header = ("task", "f", "n", "ρ val→best val", "ρ −loss→best val", "ρ rank sum→best val", "ρ rank sum→last test",
              "at constant loss: failed")  # fmt: skip
    rows = []
    for task in sorted({r["config"]["task"] for r in records}):
        mine = [r for r in records if r["config"]["task"] == task and not r["diverged"]]
        metric = mine[0]["metric"]
        constant = _constant_loss(config_data(TrainConfig.from_dict(mine[0]["config"])))  # same data in every trial
        for f in fractions:
            got = [(r, s) for r in mine if (s := _signals(r, f)) is not None]
            val = np.array([s[0] for _, s in got])
            neg_loss = np.array([s[1] for _, s in got])
            best = np.array([r["best"]["validation"][metric] for r, _ in got])
            last_test = np.array([r["last"]["test"][metric] for r, _ in got])
            ranks = rankdata(val) + rankdata(neg_loss)
            flat = [r for r, s in got if -s[1] >= _CONSTANT_LOSS_SHARE * constant]
            rows.append((task, f"{f:g}", str(len(got)), f"{spearmanr(val, best)[0]:.2f}",
                         f"{spearmanr(neg_loss, best)[0]:.2f}", f"{spearmanr(ranks, best)[0]:.2f}",
                         f"{spearmanr(ranks, last_test)[0]:.2f}",
                         f"{sum(r['failed'] for r in flat)}/{len(flat)}"))  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
