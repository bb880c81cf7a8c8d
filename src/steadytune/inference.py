"""Predicting with a saved model: a file in, a predictions file out (same rows, plus the prediction)."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Split, encode
from .data.columns import texts_from_table
from .data.readers import FORMATS, read_table
from .errors import UserInputError
from .evaluate import predict_logits
from .files import atomic_write_text, check_output_file
from .models import check_max_length, check_model_folder, load_tokenizer, quiet_transformers, resolve_device
from .recipes import INT64_MAX

__all__ = ["predict", "predict_file"]


def _read_meta(model_dir: Path) -> dict[str, Any]:
    """steadytune.json (text columns, label names, max_length), checked; {} when the folder has none."""
    path = model_dir / "steadytune.json"
    if not path.is_file():
        return {}
    again = "save the model again with --save-model, or delete the file and pass --text-columns"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserInputError(f"{path} is not readable JSON ({e}); {again}") from None
    if not isinstance(meta, dict):
        raise UserInputError(f"{path} must hold a JSON object; {again}")
    columns = meta.get("text_columns")
    if columns is not None and not (isinstance(columns, list) and 1 <= len(columns) <= 2
                                    and all(isinstance(c, str) for c in columns)):  # fmt: skip
        raise UserInputError(f"{path}: text_columns must list one or two column names, got {columns!r}; {again}")
    length = meta.get("max_length", 128)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= INT64_MAX:
        raise UserInputError(f"{path}: max_length must be a positive integer, got {length!r}; {again}")
    return meta


def _load_saved(model_dir: str | Path, *, allow_pickle: bool = False):
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification

    model_dir = Path(model_dir)
    if not model_dir.is_dir() or not (model_dir / "config.json").is_file():
        raise UserInputError(f"not a saved model folder: {model_dir} (expected config.json from --save-model)")
    check_model_folder(model_dir, allow_pickle=allow_pickle)
    if "auto_map" in json.loads((model_dir / "config.json").read_text(encoding="utf-8")):
        raise UserInputError(f"the model in {model_dir} needs its own Python code (auto_map in config.json); "
                             "predict runs only the architectures transformers ships")  # fmt: skip
    meta = _read_meta(model_dir)
    tokenizer = load_tokenizer(str(model_dir))
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, use_safetensors=None if allow_pickle else True
            )
    except (OSError, ValueError, SafetensorError, pickle.UnpicklingError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserInputError(f"cannot load the model in {model_dir}: {first[:300]}") from None
    check_max_length(str(model_dir), meta.get("max_length", 128), tokenizer)
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
                 overwrite: bool = False, allow_pickle: bool = False) -> int:  # fmt: skip
    """Write the input rows plus `prediction` (and the class `probability`) to `output_path`; returns the count.

    The model folder's weights load from safetensors only, unless `allow_pickle` (`models.load_model`)."""
    output_path = Path(output_path)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= INT64_MAX:
        raise UserInputError(f"batch_size must be an integer from 1 to {INT64_MAX}, got {batch_size!r}")
    if FORMATS.get(output_path.suffix.lower()) is None:
        raise UserInputError(f"{output_path}: unknown output type {output_path.suffix!r}; use .csv, .tsv or .jsonl")
    check_output_file(output_path, overwrite=overwrite)
    torch_device = resolve_device(device)
    table = read_table(input_path)
    model, tokenizer, meta = _load_saved(model_dir, allow_pickle=allow_pickle)
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
                     device=torch_device)  # fmt: skip
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
