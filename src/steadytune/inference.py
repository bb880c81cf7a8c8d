"""Predicting with a saved model: `predict` (texts or a table in, one dict per row out, like
`transformers.pipeline("text-classification", top_k=None)`) and `predict_file` (a file or standard input in, the same
rows plus the prediction out).

Every class's probability comes back, not only the top one: softmax of the logits in float64. In a file:

- JSONL: the input row, then `prediction` (the top label), `probability` (its probability) and `scores`, a list of
  `{"label", "score"}` for every label, highest first (as `pipeline(top_k=None)`).
- CSV, TSV, Parquet: the input row, `prediction`, `probability`, then one `score_<label>` column per label in the
  model's label order.
- A regression model (one output, e.g. STS-B): `prediction` is the predicted value; no probability, no scores.

The input's values keep their types where the output can hold them: JSONL and Parquet input values stay what they
were in JSONL and Parquet output (numbers stay numbers, null stays null; Parquet columns keep their Arrow types into
Parquet), CSV and TSV cells are strings. Label names that are integers (a `label` column of 0 and 1) come back as
integers in JSONL, Parquet and from `predict`.

`-` is standard input (`--input -`) or standard output (`--output -`); their format is `input_format` /
`output_format`, JSONL by default. Files take their format from their extension unless given.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Split, encode
from .data.columns import texts_from_table
from .data.readers import FORMATS as TEXT_FORMATS
from .data.readers import Table, read_table
from .errors import UserInputError
from .evaluate import predict_logits
from .files import atomic_write_bytes, check_output_file, check_stdout, json_safe, write_stdout
from .models import (
    check_max_length,
    check_model_folder,
    load_error_line,
    load_tokenizer,
    quiet_transformers,
    resolve_device,
)
from .probe import PROBE_FAMILIES
from .recipes import INT64_MAX

__all__ = ["FORMATS", "STDIO", "predict", "predict_file"]

FORMATS = {**TEXT_FORMATS, ".parquet": "parquet", ".pq": "parquet"}
"""File extension → format, for the input and the output of `predict_file`."""

STDIO = "-"
"""The path that means standard input (`--input`) or standard output (`--output`)."""

_FORMAT_NAMES = ("csv", "tsv", "jsonl", "parquet")
_STDIN = "standard input"
_NEW_COLUMNS = ("prediction", "probability", "scores")


# ---------------------------------------------------------------------------------------------------------------
# The saved model


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


def _fit_model(folder: Path) -> Path:
    """A fit folder (`steadytune fit --out`) stands for the model it delivered, `<folder>/model`; one whose verdict
    was no delivered none, which is said here rather than as "not a model folder"."""
    if not (folder / "fit.json").is_file() or (folder / "config.json").is_file():
        return folder
    if (folder / "model" / "config.json").is_file() or (folder / "model" / "steadytune.json").is_file():
        return folder / "model"
    try:  # a fit that said no keeps its pick's model (`steadytune.fitting.outcome`): named where it is there
        chosen = json.loads((folder / "fit.json").read_text(encoding="utf-8")).get("chosen")
    except (OSError, ValueError, AttributeError):
        chosen = None
    pick = folder / "candidates" / str(chosen) / "run" / "model"
    anyway = f"; to use its pick anyway, pass {pick}" if chosen and pick.is_dir() else ""
    raise UserInputError(f"{folder} is a fit folder whose fit delivered no model (its verdict was no: see "
                         f"{folder / 'fit.json'}){anyway}")  # fmt: skip


def _load_saved(model_dir: str | Path, *, allow_pickle: bool = False):
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification

    model_dir = _fit_model(Path(model_dir))
    if ((model_dir / "steadytune.json").is_file() and _read_meta(model_dir).get("family") in PROBE_FAMILIES
            and not (model_dir / "config.json").is_file()):  # fmt: skip
        # an encoder, its pooling and a linear head (a family's model that is a transformers classifier has a
        # config.json at the top and loads as one: `steadytune.probe.as_classifier`)
        return _load_probe(model_dir, _read_meta(model_dir))
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
            model, info = AutoModelForSequenceClassification.from_pretrained(
                model_dir, use_safetensors=None if allow_pickle else True, output_loading_info=True
            )
    except (OSError, ValueError, SafetensorError, pickle.UnpicklingError) as e:
        raise UserInputError(f"cannot load the model in {model_dir}: {load_error_line(e)[:300]}") from None
    if info["missing_keys"]:  # a base encoder: transformers would add a random head and predict coin flips
        missing = sorted(info["missing_keys"])
        raise UserInputError(f"{model_dir} holds no trained classification head (missing {', '.join(missing[:3])}"
                             f"{', ...' if len(missing) > 3 else ''}): it is a pre-trained encoder, not a fine-tuned "
                             "model; fine-tune it first (steadytune fit, or train --save-model)")  # fmt: skip
    check_max_length(str(model_dir), meta.get("max_length", 128), tokenizer)
    return model, tokenizer, meta


def _load_probe(model_dir: Path, meta: dict[str, Any]):
    """A probe folder (`steadytune.probe.ProbeModel`): its model, tokenizer and steadytune.json, checked as a saved
    classifier folder is (safetensors only)."""
    from safetensors import SafetensorError

    from .probe import ENCODER_DIR, HEAD_FILE, ProbeModel

    encoder = model_dir / ENCODER_DIR
    if not (encoder / "config.json").is_file():
        raise UserInputError(f"{model_dir} is a probe without its encoder ({ENCODER_DIR}/config.json); fit it again")
    check_model_folder(encoder)
    tokenizer = load_tokenizer(str(encoder))

    pooling = meta.get("pooling")
    if not isinstance(pooling, dict) or pooling.get("mode") not in ("mean", "cls", "max", "mean_sqrt_len", "pooler"):
        raise UserInputError(f"{model_dir / 'steadytune.json'}: a probe needs its pooling (mode: mean, cls, max, "
                             f"mean_sqrt_len or pooler), got {pooling!r}; fit the model again")  # fmt: skip
    if not (model_dir / HEAD_FILE).is_file():
        raise UserInputError(f"{model_dir} is a probe without its head ({HEAD_FILE}); fit the model again")
    names = meta.get("label_names")
    try:
        with quiet_transformers():
            model = ProbeModel.load(model_dir, meta, tuple(names) if isinstance(names, list) else None)
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise UserInputError(f"cannot load the probe in {model_dir}: {load_error_line(e)[:300]}") from None
    check_max_length(str(encoder), meta.get("max_length", 128), tokenizer)
    return model, tokenizer, meta


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= INT64_MAX:
        raise UserInputError(f"batch_size must be an integer from 1 to {INT64_MAX}, got {batch_size!r}")


def _logits(model, tokenizer, texts: tuple[list[str], ...], *, max_length: int, batch_size: int,
            device: torch.device) -> np.ndarray:  # fmt: skip
    """Logits of each example (regression: the value), float32, in the input's order."""
    enc = encode(Split(texts, np.zeros(len(texts[0]), dtype=np.int64), "input"), tokenizer, max_length=max_length)
    model.to(device)
    return predict_logits(model, enc, tokenizer, batch_size=batch_size, device=device)[0].numpy()


def _label_value(name: Any) -> Any:
    """A label name as the training data had it: an integer name ("0", "-3") is an int, anything else as it is."""
    if isinstance(name, str) and name.strip() == name and name.lstrip("-").isdigit():
        number = int(name)
        if str(number) == name:  # "007" and "-0" stay text: they are not what str(int) writes
            return number
    return name


def _labels(model) -> list[Any]:
    """The model's labels in id order (`config.id2label`), integer names as ints."""
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    return [_label_value(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the classes, in float64 (the probabilities of a row sum to 1 to float64 rounding)."""
    return torch.softmax(torch.from_numpy(logits).double(), dim=-1).numpy()


def _ranked(labels: list[Any], probs: np.ndarray) -> list[dict[str, Any]]:
    """`[{"label", "score"}]` of every label, highest score first (ties in label order), as pipeline(top_k=None)."""
    order = np.argsort(-probs, kind="stable")
    return [{"label": labels[i], "score": float(probs[i])} for i in order]


# ---------------------------------------------------------------------------------------------------------------
# The Python API


def _column_names(text_columns: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if text_columns is None:
        return None
    names = text_columns.split(",") if isinstance(text_columns, str) else list(text_columns)
    names = tuple(c.strip() for c in names if isinstance(c, str) and c.strip())
    if not 1 <= len(names) <= 2 or len(names) != len(text_columns if not isinstance(text_columns, str) else names):
        raise UserInputError(f"text_columns must name one or two columns, got {text_columns!r}")
    return names


def _columns_for(available: Sequence[str], wanted: tuple[str, ...] | None, meta: dict[str, Any],
                 where: str) -> tuple[str, ...]:  # fmt: skip
    """The text columns to read: as given, else as in training (steadytune.json), else pipeline's text/text_pair."""
    if wanted:
        return wanted
    trained = tuple(meta.get("text_columns") or ())
    if trained and all(c in available for c in trained):
        return trained
    if "text" in available:
        return ("text", "text_pair") if "text_pair" in available else ("text",)
    if trained:
        return trained  # texts_from_table names the missing one and the columns there are
    shown = ", ".join(map(repr, available)) or "none"
    raise UserInputError(f"{where}: name the text column(s) with text_columns (columns: {shown})")


def _as_columns(inputs: Any) -> tuple[Table | None, tuple[list[str], ...] | None]:
    """Inputs as (a table of columns, None) or (None, the texts themselves); TypeError for unsupported types."""
    pandas, datasets, pyarrow = (sys.modules.get(m) for m in ("pandas", "datasets", "pyarrow"))
    if pandas is not None and isinstance(inputs, pandas.DataFrame):
        return {str(c): inputs[c].tolist() for c in inputs.columns}, None
    if datasets is not None and isinstance(inputs, datasets.Dataset):
        return inputs.to_dict(), None
    if pyarrow is not None and isinstance(inputs, pyarrow.Table):
        return inputs.to_pydict(), None
    if isinstance(inputs, str):
        return None, ([inputs],)
    if isinstance(inputs, Mapping):
        values = list(inputs.values())
        if values and all(isinstance(v, (list, tuple)) for v in values):
            return {str(k): list(v) for k, v in inputs.items()}, None  # columns
        return {str(k): [v] for k, v in inputs.items()}, None  # one row, e.g. {"text": ..., "text_pair": ...}
    if isinstance(inputs, Sequence):  # its first item says what kind of list it is; each item is checked
        items = list(inputs)
        if not items or isinstance(items[0], str):
            return None, (items,)
        if isinstance(items[0], Mapping):
            if not all(isinstance(x, Mapping) for x in items):
                i = next(i for i, x in enumerate(items) if not isinstance(x, Mapping))
                raise UserInputError(f"inputs row {i}: expected a dict like the rows before, found "
                                     f"{type(items[i]).__name__}")  # fmt: skip
            keys = list(dict.fromkeys(k for x in items for k in x))
            return {str(k): [x.get(k) for x in items] for k in keys}, None
        if isinstance(items[0], (tuple, list)):
            for i, x in enumerate(items):
                if not (isinstance(x, (tuple, list)) and len(x) == 2):
                    raise UserInputError(f"inputs row {i}: expected a (text, text_pair) pair, found {x!r:.80}")
            return None, ([x[0] for x in items], [x[1] for x in items])
    raise TypeError(
        f"predict takes a str, a list of str, of (text, text_pair) pairs or of dicts, a dict of columns, "
        f"a pandas DataFrame, a datasets.Dataset or a pyarrow Table, not {type(inputs).__name__}"
    )


def predict(
    model_dir: str | Path,
    inputs: Any,
    *,
    text_columns: str | Sequence[str] | None = None,
    batch_size: int = 128,
    device: str | torch.device = "auto",
    allow_pickle: bool = False,
) -> list[dict[str, Any]]:
    """Predict with a model saved by `steadytune train --save-model` (or any sequence-classification folder with
    safetensors weights); one dict per input, in order.

    `inputs`: a str, a list of str, a list of `(text, text_pair)` pairs (a pair task), a list of dicts (rows), a
    dict of columns, a pandas DataFrame, a `datasets.Dataset` or a pyarrow Table. Rows are read from `text_columns`
    (default: the columns the model was trained on, from its steadytune.json; else `text` and `text_pair`).

    A classifier gives `{"label": top label, "score": its probability, "scores": [{"label", "score"}, ...]}`, the
    scores of every label highest first, as `pipeline("text-classification", top_k=None)` lists them; a
    regression model gives `{"score": the predicted value}`. Probabilities are the softmax of the logits in float64.
    Bad input (a missing column, a cell that is not text, pairs for a single-text model) raises `UserInputError`."""
    _check_batch_size(batch_size)
    wanted = _column_names(text_columns)
    table, texts = _as_columns(inputs)
    torch_device = resolve_device(device)
    model, tokenizer, meta = _load_saved(model_dir, allow_pickle=allow_pickle)
    if table is not None:
        names = [c for c in table if c != "__line__"]
        texts = texts_from_table(table, _columns_for(names, wanted, meta, "inputs"), "inputs")
    else:
        assert texts is not None
        for column in texts:
            for i, value in enumerate(column):
                if not isinstance(value, str):
                    raise UserInputError(f"inputs row {i}: expected text, found {type(value).__name__} {value!r}")
    trained = meta.get("text_columns")
    if trained and len(trained) != len(texts):
        want = f"(text, text_pair) pairs for its columns {', '.join(trained)}" if len(trained) == 2 else "single texts"
        raise UserInputError(f"the model in {model_dir} was trained on {want}; "
                             f"got {'pairs' if len(texts) == 2 else 'single texts'}")  # fmt: skip
    if not texts[0]:
        return []
    logits = _logits(model, tokenizer, texts, max_length=meta.get("max_length", 128), batch_size=batch_size,
                     device=torch_device)  # fmt: skip
    if model.config.num_labels == 1:
        return [{"score": float(v)} for v in logits[:, 0]]
    labels = _labels(model)
    out = []
    for p in _probabilities(logits):
        ranked = _ranked(labels, p)
        out.append({"label": ranked[0]["label"], "score": ranked[0]["score"], "scores": ranked})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Files and standard input/output


def _format(path: str | Path, given: str | None, flag: str, what: str) -> str:
    """The format of `path`: `given` (checked), else its extension's, else JSONL for `-`."""
    if given is not None:
        if given not in _FORMAT_NAMES:
            raise UserInputError(f"unknown {flag} {given!r}; use csv, tsv, jsonl or parquet")
        return given
    if str(path) == STDIO:
        return "jsonl"
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserInputError(f"{path}: unknown {what} type {Path(path).suffix!r}; use .csv, .tsv, .jsonl or .parquet "
                             f"(or name the format with {flag})")  # fmt: skip
    return fmt


def _stdin_bytes() -> bytes:
    """All of standard input; a terminal (nothing piped in), an unreadable or an empty one is refused."""
    pipe = "pipe the rows in, e.g. `cat rows.jsonl | steadytune predict ... --input -`"
    stream = sys.stdin
    try:
        if stream is None or stream.isatty():
            raise UserInputError(f"--input -: standard input is a terminal, not data; {pipe}")
        data = stream.buffer.read()
    except (OSError, AttributeError, ValueError) as e:  # closed, or replaced by something without bytes
        raise UserInputError(f"--input -: cannot read standard input ({e}); {pipe}") from None
    if not data.strip():
        raise UserInputError(f"--input -: standard input is empty; {pipe}")
    return data


def _read_parquet(source: Path | bytes, where: str):
    """The Arrow table itself (its column types go on into Parquet output); `data.readers.read_parquet`, which
    training uses, gives Python columns only."""
    import pyarrow as pa  # a dependency of datasets
    import pyarrow.parquet as pq

    if isinstance(source, Path):
        if not source.is_file():
            raise UserInputError(f"{where} is a folder, not a file" if source.is_dir() else f"file not found: {where}")
    try:
        file = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, bytes) else source)
        names = file.schema_arrow.names
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise UserInputError(f"{where}: column {twice!r} appears twice; columns need distinct names")
        return file.read()
    except (pa.ArrowException, OSError) as e:  # not Parquet (no magic bytes), truncated, unreadable
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserInputError(f"{where} is not a readable Parquet file ({first[:200]})") from None


def _read_text_stdin(data: bytes, fmt: str) -> Table:
    """Parse standard input's bytes with the file readers (through a private temporary file, so every check and
    message is the same as for a file), naming it "standard input" in errors."""
    with tempfile.TemporaryDirectory(prefix="steadytune-stdin-") as tmp:
        path = Path(tmp) / f"stdin.{fmt}"
        path.write_bytes(data)
        try:
            table = read_table(path)
        except UserInputError as e:
            message = str(e).replace(str(path), _STDIN)
            if fmt == "jsonl" and "malformed JSON" in message:
                message += " (standard input is read as JSONL; name another format with --input-format)"
            raise UserInputError(message) from None
    return table


def _read_input(input_path: str | Path, fmt: str):
    """(the table as Python columns, the Arrow table for Parquet input else None, the name for messages)."""
    if str(input_path) == STDIO:
        data, where = _stdin_bytes(), _STDIN
        if fmt == "parquet":
            arrow = _read_parquet(data, where)
            return arrow.to_pydict(), arrow, where
        return _read_text_stdin(data, fmt), None, where
    path, where = Path(input_path), str(input_path)
    if fmt == "parquet":
        arrow = _read_parquet(path, where)
        return arrow.to_pydict(), arrow, where
    if FORMATS.get(path.suffix.lower()) != fmt:  # a file named with another (or no) extension, its format given
        with tempfile.TemporaryDirectory(prefix="steadytune-input-") as tmp:
            link = Path(tmp) / f"input.{fmt}"
            os.symlink(path.absolute(), link)
            try:
                return read_table(link), None, where
            except UserInputError as e:
                raise UserInputError(str(e).replace(str(link), where)) from None
    return read_table(path), None, where


def _plain(value: Any) -> Any:
    """A value JSON has no type for (a Parquet date, time or decimal) as text: ISO 8601 where it has a form."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _cell(value: Any) -> str:
    """A CSV/TSV cell: text as it is, null as empty, anything else as JSON (1, 0.5, true, [1, 2])."""
    if isinstance(value, str):
        return value
    value = json_safe(value, default=_plain)
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _csv_bytes(columns: list[str], rows: list[list[Any]], fmt: str) -> bytes:
    buf = io.StringIO()
    if fmt == "csv":
        csv.writer(buf, lineterminator="\n").writerows([columns, *([_cell(c) for c in r] for r in rows)])
    else:  # TSV without quoting, as it is read back: tabs and newlines inside a cell become spaces
        for r in [columns, *rows]:
            buf.write("\t".join(_cell(c).replace("\t", " ").replace("\n", " ").replace("\r", " ") for c in r) + "\n")
    return buf.getvalue().encode("utf-8")


def _check_new_columns(names: list[str], new: list[str], where: str) -> None:
    clash = [c for c in new if c in names]
    if clash:
        raise UserInputError(f"{where} already has a column {clash[0]!r} (an earlier predictions file?); "
                             "rename or drop it, the predictions are written under that name")  # fmt: skip


def predict_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_columns: str | None = None,
    batch_size: int = 128,
    device: str = "auto",
    overwrite: bool = False,
    allow_pickle: bool = False,
    input_format: str | None = None,
    output_format: str | None = None,
) -> int:
    """Write the input rows plus `prediction`, `probability` and every label's score (module docstring) to
    `output_path`, atomically; returns the number of rows. `-` reads standard input / writes standard output.

    Everything is checked before the model runs: the formats, the output file (absent unless `overwrite`), the
    device, the input, the model folder (weights from safetensors only, unless `allow_pickle`) and the columns."""
    _check_batch_size(batch_size)
    in_fmt = _format(input_path, input_format, "--input-format", "input")
    out_fmt = _format(output_path, output_format, "--output-format", "output")
    to_stdout = str(output_path) == STDIO
    if to_stdout:  # standard output is never an existing file
        check_stdout(binary=out_fmt == "parquet")
    else:
        check_output_file(output_path, overwrite=overwrite)
    torch_device = resolve_device(device)
    table, arrow, where = _read_input(input_path, in_fmt)
    model, tokenizer, meta = _load_saved(model_dir, allow_pickle=allow_pickle)
    names = [c for c in table if c != "__line__"]
    wanted = _column_names(text_columns) if text_columns else None
    columns = wanted or tuple(meta.get("text_columns") or ())
    if not columns:
        raise UserInputError(f"name the input's text column(s) with --text-columns (columns: {', '.join(names)})")
    texts = texts_from_table(table, columns, where)
    n = len(texts[0])
    if n == 0:
        raise UserInputError(f"{where}: no rows to predict")
    regression = model.config.num_labels == 1
    labels = [] if regression else _labels(model)
    score_columns = [f"score_{label}" for label in labels]
    new = ["prediction"] if regression else ["prediction", "probability"]
    _check_new_columns(names, new + (["scores"] if out_fmt == "jsonl" else score_columns), where)
    if out_fmt == "parquet" and arrow is None:  # a column Arrow cannot type is refused before the model runs
        passthrough = _arrow_columns(table, names, where)

    logits = _logits(model, tokenizer, texts, max_length=meta.get("max_length", 128), batch_size=batch_size,
                     device=torch_device)  # fmt: skip
    if regression:
        added: dict[str, list[Any]] = {"prediction": [float(v) for v in logits[:, 0]]}
        ranked: list[list[dict[str, Any]]] = []
    else:
        probs = _probabilities(logits)
        top = probs.argmax(-1)
        added = {"prediction": [labels[i] for i in top], "probability": [float(p[i]) for i, p in zip(top, probs)]}
        added |= {c: [float(v) for v in probs[:, j]] for j, c in enumerate(score_columns)}
        ranked = [_ranked(labels, p) for p in probs]

    if out_fmt == "jsonl":
        lines = []
        for i in range(n):
            row = {c: table[c][i] for c in names} | {c: added[c][i] for c in new}
            if ranked:
                row["scores"] = ranked[i]
            lines.append(json.dumps(json_safe(row, default=_plain), ensure_ascii=False, allow_nan=False) + "\n")
        data = "".join(lines).encode("utf-8")
    elif out_fmt == "parquet":
        data = _parquet_bytes(arrow if arrow is not None else passthrough, added)
    else:
        cells = [[table[c][i] for c in names] + [added[c][i] for c in added] for i in range(n)]
        data = _csv_bytes(names + list(added), cells, out_fmt)
    if to_stdout:
        write_stdout(data, binary=out_fmt == "parquet")
    else:
        atomic_write_bytes(output_path, data)
    return n


def _arrow_columns(table: Table, names: list[str], where: str):
    """The input's columns as an Arrow table (types inferred from the values), or one line naming the column that
    has none (a JSONL column of numbers and text)."""
    import pyarrow as pa

    arrays = {}
    for c in names:
        try:
            arrays[c] = pa.array(table[c])
        except (pa.ArrowException, TypeError, OverflowError) as e:
            raise UserInputError(
                f"{where}: column {c!r} cannot be written to Parquet (its values are of mixed "
                f"kinds: {str(e).splitlines()[0][:120]}); write JSONL or CSV instead"
            ) from None
    return pa.table(arrays) if arrays else pa.table({})


def _parquet_bytes(base, added: dict[str, list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = base
    for name, values in added.items():
        array = pa.array(values)
        table = table.append_column(name, array) if table.num_columns else pa.table({name: array})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()
