"""Predicting with a saved model: a file in, a predictions file out (same rows, plus the prediction)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from .data import Split, encode
from .data.load import texts_from_table
from .data.readers import FORMATS, read_table
from .errors import UserInputError
from .evaluate import predict_logits
from .files import atomic_write_text
from .models import load_tokenizer, quiet_transformers, resolve_device

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
