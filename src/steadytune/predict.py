"""Predicting with a saved model: a file in, a predictions file out (same rows, plus the prediction)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from .data import Split, encode
from .data.readers import FORMATS, read_table
from .errors import UserInputError
from .models import load_tokenizer, quiet_transformers
from .record import atomic_write_text

__all__ = ["predict", "predict_file"]


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


@torch.inference_mode()
def predict(model, tokenizer, texts: tuple[list[str], ...], *, max_length: int = 128, batch_size: int = 128,
            device: str | torch.device = "cpu") -> np.ndarray:  # fmt: skip
    """Logits for each example (regression: the score), batched by length."""
    split = Split(texts, np.zeros(len(texts[0]), dtype=np.int64), "input")
    enc = encode(split, tokenizer, max_length=max_length)
    model.to(device).eval()
    order = np.argsort(enc.lengths, kind="stable")
    out = np.empty((len(enc), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = enc.batch(idx, tokenizer)
        batch.pop("labels")
        out[idx] = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
    return out


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
    table.pop("__line__", None)
    model, tokenizer, meta = _load_saved(model_dir)
    if text_columns:
        columns = tuple(c.strip() for c in text_columns.split(",") if c.strip())
    else:
        columns = tuple(meta.get("text_columns") or ())
    if not columns:
        raise UserInputError("name the input's text column(s) with --text-columns")
    for c in columns:
        if c not in table:
            raise UserInputError(f"{input_path}: no column {c!r} (columns: {', '.join(map(repr, table))})")
        if not all(isinstance(v, str) for v in table[c]):
            raise UserInputError(f"{input_path}: column {c!r} must hold text")
    n = len(table[columns[0]])
    if n == 0:
        raise UserInputError(f"{input_path}: no rows to predict")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto"
                       else device)  # fmt: skip
    logits = predict(model, tokenizer, tuple(table[c] for c in columns), max_length=meta.get("max_length", 128),
                     batch_size=batch_size, device=dev)  # fmt: skip
    names = list(table)
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
