"""One seed of each of the paper's recipes on RTE (--train-size 1000), real all-MiniLM-L6-v2: a smoke-level look.

    python benchmarks/recipes_rte.py --glue-dir ../shared/data/glue --out runs/recipes_rte

Prints one line per recipe (test metric of the best-validation and the last checkpoint, steps, wall time) and
writes each run's folder under --out. One seed says nothing about a recipe's distribution: `steadytune study`
is for that. This only shows that every recipe runs end to end on real data and what it costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from steadytune import train

RECIPES = ["bertadam", "adam", "adam+reinit:2", "adam+llrd", "adam+mixout", "adam+prior-wd", "adam+longer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    print(f"{'recipe':<16} {'steps':>5} {'test best':>9} {'test last':>9} {'failed':>6} {'wall s':>7}", flush=True)
    for recipe in args.recipes.split(","):
        out = None if args.out is None else args.out / recipe.replace(":", "_").replace("+", "_")
        r = train(task="rte", glue_dir=args.glue_dir, model=args.model, train_size=args.train_size, seed=args.seed,
                  recipe=recipe, out=out, overwrite=True)  # fmt: skip
        print(f"{recipe:<16} {r.steps:>5} {r.test_best:>9.4f} {r.test_last:>9.4f} {str(r.failed):>6} "
              f"{r.timings['wall_s']:>7.1f}", flush=True)  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
