"""One SetFit model (setfit 1.2.0: contrastive fine-tuning of the sentence encoder, then a logistic-regression head)
on a CSV of `review,sentiment` rows (or `text_a,text_b,label` pairs, their texts joined), scored on another: the
setfit system of benchmarks/small_data.py. Runs in an environment with `setfit` installed (it is no dependency of
steadytune).

    python benchmarks/setfit_run.py rows.csv dev.csv predictions.csv [--num-iterations 20] [--model all-MiniLM-L6-v2]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from small_data import read_rows  # this folder is on sys.path when run as a script


def _joined(texts: list, labels: list[str]) -> tuple[list[str], list[str]]:
    """SetFit takes one text a row: a sentence pair is given as its two texts joined by a space."""
    return [" ".join(t) if isinstance(t, tuple) else t for t in texts], labels


def main() -> None:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from steadytune.models import resolve_model

    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("dev")
    parser.add_argument("predictions")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--num-iterations", type=int, default=20, help="0: SetFit's default (all pairs, oversampled)")
    args = parser.parse_args()
    texts, labels = _joined(*read_rows(args.train))
    model = SetFitModel.from_pretrained(resolve_model(args.model))
    extra = {"num_iterations": args.num_iterations} if args.num_iterations else {}
    with tempfile.TemporaryDirectory() as scratch:  # SetFit writes checkpoints unless told not to
        training = TrainingArguments(output_dir=scratch, save_strategy="no", batch_size=16, seed=0, report_to="none",
                                     **extra)  # fmt: skip
        rows = Dataset.from_dict({"text": texts, "label": labels})
        trainer = Trainer(model=model, args=training, train_dataset=rows)
        trainer.train()
    dev_texts, _ = _joined(*read_rows(args.dev))
    predicted = model.predict(dev_texts, batch_size=128, as_numpy=True)
    with open(args.predictions, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prediction"])
        w.writerows([str(p)] for p in predicted)
    info = {"num_iterations": args.num_iterations or "default", "batch_size": 16}
    Path(args.predictions).with_name("setfit-info.json").write_text(json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
