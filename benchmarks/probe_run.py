"""One linear probe (`steadytune.probe`) on a CSV of `review,sentiment` rows (or `text_a,text_b,label` pairs, encoded
as pairs), scored on another: the probe system of
benchmarks/small_data.py, as one process.

    python benchmarks/probe_run.py rows.csv dev.csv predictions.csv [--model all-MiniLM-L6-v2]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from small_data import read_rows  # this folder is on sys.path when run as a script


def main() -> None:
    from transformers import AutoModel

    from steadytune.data.splits import Split
    from steadytune.models import load_tokenizer, resolve_model
    from steadytune.probe import embed, fit_head, pooling_of

    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("dev")
    parser.add_argument("predictions")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--regression", action="store_true", help="numeric labels: a ridge head, values predicted")
    args = parser.parse_args()
    torch.manual_seed(0)
    folder = resolve_model(args.model)
    encoder, tokenizer = AutoModel.from_pretrained(folder), load_tokenizer(folder)
    pooling = pooling_of(folder, encoder)
    names = [] if args.regression else sorted(set(read_rows(args.train)[1]))
    features = {}
    for part in ("train", "dev"):
        texts, labels = read_rows(getattr(args, part))
        y = np.array([float(v) for v in labels] if args.regression else [names.index(label) for label in labels])
        columns = tuple(map(list, zip(*texts))) if texts and isinstance(texts[0], tuple) else (texts,)  # pairs: 2
        features[part] = (embed(encoder, tokenizer, Split(columns, y, part), pooling), y)
    head = fit_head(*features["train"], regression=args.regression)
    predicted = head.predict(features["dev"][0])
    with open(args.predictions, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prediction"])
        w.writerows([repr(float(v))] if args.regression else [names[int(v)]] for v in predicted)
    chosen = {"alpha": float(head.alpha_)} if args.regression else {"C": float(head.C_[0])}
    info = {"pooling": pooling.source, **chosen}
    Path(args.predictions).with_name("probe-info.json").write_text(json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
