"""Predicting with a saved model: a file in, a predictions file out (same rows, plus the prediction)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from .data import EncodedSplit, Split, encode
from .data.load import texts_from_table
from .data.readers import FORMATS, read_table
from .errors import UserInputError
from .files import atomic_write_text
from .models import load_tokenizer, quiet_transformers, resolve_device
from .precision import autocast

__all__ = ["predict", "predict_file", "predict_logits"]


def _load_saved(model_dir: str | Path):
    from transformers import AutoModelForSequenceClassification

    model_dir = Path(model_dir)
    meta_path = model_dir / "steadytune.json"
    if not model_dir.is_dir() or not (model_dir / "config.json").is_file():
        raise UserInputError(f"not a saved model folder: {model_dir} (expected config.json from --save-model)")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    tokenizer = load_tokenizer(str(model_dir))
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return model, tokenizer, meta


# Evaluation batches: at most 4096 tokens (32 examples of the usual max_length 128). With length-sorted examples a
# fixed 128 examples a batch pads the short ones up to the long: RTE validation (138 examples, 20-128 tokens) is 48%
# padding in 2 batches and took 0.83 s with all-MiniLM-L6-v2 (bf16, 2 threads); in 3 batches of at most 4096 tokens
# it took 0.46 s, and CoLA's 521 short sentences the same as before (0.30 vs 0.32 s). Smaller batches (1024 tokens)
# were slower on both: per-batch overhead.
EVAL_BATCH_TOKENS = 4096


def _eval_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Length-sorted batches of at most `batch_size` examples and `max_tokens` padded tokens (at least one each)."""
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]  # ascending, so the newest example is the longest
        if end - start > 1 and ((end - start) * longest > max_tokens or end - start > batch_size):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


@torch.inference_mode()
def predict_logits(
    model,
    data: EncodedSplit,
    tokenizer,
    *,
    batch_size: int = 128,
    device=None,
    with_loss: bool = False,
    precision: str = "fp32",
    max_tokens: int = EVAL_BATCH_TOKENS,
) -> tuple[torch.Tensor, float | None]:
    """Logits of every example, in the split's order, and with `with_loss` the mean loss against its labels.

    Examples are sorted by length and batched up to `batch_size` examples and `max_tokens` tokens (padding
    included), so padding stays small; the model's train/eval mode is restored after.
    `precision` "bf16" runs the forward pass under bf16 autocast (logits and loss are returned as float32).
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    out = torch.empty(len(data), model.config.num_labels, dtype=torch.float32)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per batch
    for idx in _eval_batches(data.lengths, batch_size, max_tokens):
        batch = data.batch(idx, tokenizer)
        if not with_loss:
            batch.pop("labels")
        with autocast(precision, device):
            result = model(**{k: v.to(device) for k, v in batch.items()})
        if with_loss:
            loss_sum += result.loss.detach().double() * len(idx)
        out[torch.as_tensor(idx)] = result.logits.float().cpu()
    model.train(was_training)
    return out, (float(loss_sum) / len(data) if with_loss else None)


def predict(model, tokenizer, texts: tuple[list[str], ...], *, max_length: int = 128, batch_size: int = 128,
            device: str | torch.device = "cpu") -> np.ndarray:  # fmt: skip
    """Logits for each example (regression: the score)."""
    enc = encode(Split(texts, np.zeros(len(texts[0]), dtype=np.int64), "input"), tokenizer, max_length=max_length)
    model.to(device)
    return predict_logits(model, enc, tokenizer, batch_size=batch_size, device=torch.device(device))[0].numpy()


def _write_rows(path: Path, columns: list[str], rows: list[list]) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(f"{path}: unknown output type {path.suffix!r}; use .csv, .tsv or .jsonl")
    if fmt == "jsonl":
        return "".join(json.dumps(dict(zip(columns, r)), ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    if fmt == "csv":
        csv.writer(buf, lineterminator="\n").writerows([columns, *rows])
    else:  # TSV without quoting, as it is read back: tabs and newlines inside a cell become spaces
        for r in [columns, *rows]:
            buf.write("\t".join(str(c).replace("\t", " ").replace("\n", " ") for c in r) + "\n")
    return buf.getvalue()


def predict_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 text_columns: str | None = None, batch_size: int = 128, device: str = "auto",
                 overwrite: bool = False) -> int:  # fmt: skip
    """Write the input rows plus `prediction` (and the class `probability`) to `output_path`; returns the count."""
    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise UserInputError(f"output file {output_path} exists; pass --overwrite to replace it")
    if FORMATS.get(output_path.suffix.lower()) is None:
        raise UserInputError(f"{output_path}: unknown output type {output_path.suffix!r}; use .csv, .tsv or .jsonl")
    table = read_table(input_path)
    model, tokenizer, meta = _load_saved(model_dir)
    if text_columns:
        columns = tuple(c.strip() for c in text_columns.split(",") if c.strip())
    else:
        columns = tuple(meta.get("text_columns") or ())
    if not columns:
        raise UserInputError("name the input's text column(s) with --text-columns")
    texts = texts_from_table(table, columns, str(input_path))
    n = len(texts[0])
    if n == 0:
        raise UserInputError(f"{input_path}: no rows to predict")
    logits = predict(model, tokenizer, texts, max_length=meta.get("max_length", 128), batch_size=batch_size,
                     device=resolve_device(device))  # fmt: skip
    names = [c for c in table if c != "__line__"]
    if model.config.num_labels == 1:
        extra_cols, extra = ["prediction"], [[float(v)] for v in logits[:, 0]]
    else:
        probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
        id2label = model.config.id2label
        extra_cols = ["prediction", "probability"]
        extra = [[id2label[int(i)], float(p[i])] for i, p in zip(probs.argmax(-1), probs)]
    rows = [[table[c][i] for c in names] + extra[i] for i in range(n)]
    atomic_write_text(output_path, _write_rows(output_path, names + extra_cols, rows))
    return n
