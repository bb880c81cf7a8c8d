"""Write the two small CSVs docs/results/fit.md runs `steadytune fit` on, the way a user brings their own file.

    python benchmarks/own_csv.py --glue-dir ../shared/data/glue --out fits/data

- `reviews.csv`: 300 real SST-2 training sentences, 150 positive and 150 negative (drawn with `random.Random(7)`),
  columns `review` and `stars` (`positive` / `negative`);
- `random_labels.csv`: the same rows with the `stars` column shuffled (`random.Random(8)`): nothing to learn.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", type=Path, default=Path("../shared/data/glue"))
    parser.add_argument("--out", type=Path, default=Path("fits/data"))
    parser.add_argument("--per-class", type=int, default=150)
    args = parser.parse_args()
    with open(args.glue_dir / "SST-2" / "train.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quotechar=None))[1:]  # the GLUE files have no quoting
    by_label = {label: [text.strip() for text, y in rows if y == label] for label in ("0", "1")}
    draw = random.Random(7)
    picked = [(text, "positive") for text in draw.sample(by_label["1"], args.per_class)]
    picked += [(text, "negative") for text in draw.sample(by_label["0"], args.per_class)]
    draw.shuffle(picked)
    shuffled = [label for _, label in picked]
    random.Random(8).shuffle(shuffled)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, labels in (("reviews.csv", [label for _, label in picked]), ("random_labels.csv", shuffled)):
        with open(args.out / name, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["review", "stars"])
            writer.writerows((text, label) for (text, _), label in zip(picked, labels))
        print(args.out / name)


if __name__ == "__main__":
    main()
