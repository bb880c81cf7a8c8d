"""Loading a task into train/validation/test splits: GLUE presets (TSV folder or hub) and the user's own data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .columns import (
    _at,
    _check_label_values,
    _column,
    _columns_shown,
    _encode_labels,
    _float_labels,
    _label_key,
    _split,
)
from .hf_datasets import is_dataset, is_dataset_dict, open_dataset, pick_splits
from .readers import PARQUET_SUFFIXES, Columns, Table, dataset_columns, read_parquet, read_table, read_tsv
from .splits import DATA_SEED, SPLIT_SEED, Split, balanced_subset, split_in_two
from .tasks import TaskSpec, get_task

__all__ = ["TaskData", "load_data", "load_glue", "load_user_data"]


@dataclass(eq=False)
class TaskData:
    """A task ready to train on: three labelled splits, the label names and the metric that ranks runs."""

    name: str
    train: Split
    validation: Split
    test: Split
    label_names: tuple[str, ...] | None
    """Class names in id order; None for regression."""
    metric: str
    text_columns: tuple[str, ...]
    source: dict[str, Any] = field(default_factory=dict)
    """How the splits were made (files, seeds, sizes): recorded in every run's config."""

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        """Hugging Face convention: 1 means a regression head."""
        return 1 if self.label_names is None else len(self.label_names)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "label_names": list(self.label_names) if self.label_names else None,
            "text_columns": list(self.text_columns),
            "sizes": {s.name: len(s) for s in (self.train, self.validation, self.test)},
            "fingerprints": {s.name: s.fingerprint for s in (self.train, self.validation, self.test)},
            **self.source,
        }


# ---------------------------------------------------------------------------------------------------------------
# The paper's protocol


def _protocol(
    train: Split,
    dev: Split,
    *,
    label_names: tuple[str, ...] | None,
    train_size: int | None,
    large: bool,
    data_seed: int,
    split_seed: int,
) -> tuple[Split, Split, Split, dict[str, Any]]:
    """Paper §3: dev → stratified validation/test halves; `train_size` → class-balanced subset of train.

    For the large tasks (SST-2, QNLI, QQP, MNLI) in the subset setting, an N-example validation set is drawn from
    the unused training rows instead, and the whole dev set is the test set.
    """
    info: dict[str, Any] = {"train_size": train_size, "data_seed": data_seed, "split_seed": split_seed}
    if train_size is not None:
        chosen, rest = balanced_subset(train, train_size, seed=data_seed, label_names=label_names)
        if large:
            left = train.select(rest, "train (unused rows)")
            val_idx, _ = balanced_subset(left, train_size, seed=data_seed + 1, label_names=label_names)
            info["protocol"] = "balanced train subset; validation from unused train rows; test = dev"
            return (
                train.select(chosen, "train"),
                left.select(val_idx, "validation"),
                dev.select(np.arange(len(dev)), "test"),
                info,
            )
        train = train.select(chosen, "train")
        info["protocol"] = "balanced train subset; dev split into stratified validation/test halves"
    else:
        info["protocol"] = "full train; dev split into stratified validation/test halves"
    validation, test = split_in_two(dev, seed=split_seed, label_names=label_names)
    return train, validation, test, info


# ---------------------------------------------------------------------------------------------------------------
# GLUE


def _glue_split_from_tsv(spec: TaskSpec, path: Path, name: str) -> Split:
    table = read_tsv(path, header=spec.header)
    where = str(path)
    values = _column(table, spec.label_column, where)
    if spec.is_regression:
        labels = _float_labels(values, where, table["__line__"])
    else:
        labels = _encode_labels(values, spec.raw_labels, spec.label_names, where, table["__line__"])
    return _split(table, spec.text_columns, labels, name, where)


def _hub_error(spec: TaskSpec, reason: str, *, offline: bool) -> UserInputError:
    cached = "" if offline else " (or HF_HUB_OFFLINE=1 to use a cached copy)"
    return UserInputError(
        f"cannot load nyu-mll/glue ({spec.hub_config}) from the Hugging Face hub ({reason[:160]}); offline? pass "
        f"--glue-dir DIR or set GLUE_DIR to a local GLUE folder{cached}"
    )


def _glue_from_hub(spec: TaskSpec) -> tuple[Split, Split]:
    import datasets
    import huggingface_hub

    from ..hub import hub_unreachable

    offline = bool(huggingface_hub.constants.HF_HUB_OFFLINE)
    reason = hub_unreachable("nyu-mll/glue", "dataset")
    if reason is not None:
        raise _hub_error(spec, reason, offline=offline)
    try:
        ds = datasets.load_dataset("nyu-mll/glue", spec.hub_config)
    except Exception as e:  # hub down, dataset moved, not in the offline cache: all end the same way
        text = str(e).strip()
        raise _hub_error(spec, text.splitlines()[0] if text else type(e).__name__, offline=offline) from None
    dev_name = "validation_matched" if spec.name == "mnli" else "validation"
    out = []
    for split_name, name in (("train", "train"), (dev_name, "dev")):
        part = ds[split_name]
        table = {c: part[c] for c in (*spec.hub_text_columns, "label")}
        labels = np.asarray(table["label"], dtype=np.float32 if spec.is_regression else np.int64)
        out.append(_split(table, spec.hub_text_columns, labels, name, f"nyu-mll/glue/{spec.hub_config}/{split_name}"))
    return out[0], out[1]


def load_glue(
    task: str,
    glue_dir: str | Path | None = None,
    *,
    train_size: int | None = None,
    data_seed: int = DATA_SEED,
    split_seed: int = SPLIT_SEED,
) -> TaskData:
    """Load a GLUE task with the paper's splits.

    `glue_dir` (or env `GLUE_DIR`) is a folder in the GLUE download script's layout, `<glue_dir>/<TASK>/train.tsv`
    and `dev.tsv` (`dev_matched.tsv` for MNLI). Without one, the task comes from the `nyu-mll/glue` hub dataset.
    """
    spec = get_task(task)
    glue_dir = glue_dir if glue_dir is not None else os.environ.get("GLUE_DIR") or None
    if glue_dir is not None:
        folder = Path(glue_dir) / spec.folder
        if not Path(glue_dir).is_dir():
            raise UserInputError(f"GLUE folder not found: {glue_dir}")
        train = _glue_split_from_tsv(spec, folder / "train.tsv", "train")
        dev = _glue_split_from_tsv(spec, folder / spec.dev_file, "dev")
        source: dict[str, Any] = {"glue_dir": str(Path(glue_dir).resolve())}
    else:
        train, dev = _glue_from_hub(spec)
        source = {"hub_dataset": f"nyu-mll/glue/{spec.hub_config}"}
    train, validation, test, info = _protocol(
        train, dev, label_names=spec.label_names, train_size=train_size, large=spec.large,
        data_seed=data_seed, split_seed=split_seed,
    )  # fmt: skip
    text_columns = spec.text_columns if glue_dir is not None else spec.hub_text_columns
    return TaskData(
        spec.name, train, validation, test, spec.label_names, spec.metric, text_columns, {**source, **info}
    )


# ---------------------------------------------------------------------------------------------------------------
# User data


def _default_text_columns(table: Table, where: str) -> tuple[str, ...]:
    for guess in (
        ("text",),
        ("sentence1", "sentence2"),
        ("sentence",),
        ("text_a", "text_b"),
        ("premise", "hypothesis"),
    ):
        if all(c in table for c in guess):
            return guess
    raise UserInputError(f"{where}: name the text column(s) with --text-columns (columns: {_columns_shown(table)})")


def _infer_task_type(values: list) -> str:
    """Integer-like or non-numeric labels → classification; other numbers (`3.8`, `0.25`) → regression."""

    def kind(v: Any) -> str:
        if isinstance(v, bool) or isinstance(v, int):
            return "int"
        if isinstance(v, float):
            return "float"
        if isinstance(v, str):
            s = v.strip()
            if s.lstrip("+-").isdigit():
                return "int"
            try:
                float(s)
                return "float"
            except ValueError:
                return "str"
        return "other"

    kinds = {kind(v) for v in values}
    return "regression" if kinds and kinds <= {"int", "float"} and "float" in kinds else "classification"


def _label_order(values: list) -> tuple[str, ...]:
    keys = {_label_key(v) for v in values}
    try:  # numeric labels in numeric order (2 before 10), others alphabetically
        return tuple(sorted(keys, key=float))
    except ValueError:
        return tuple(sorted(keys))


def _as_columns(source: Any, where: str) -> Columns:
    if isinstance(source, (str, Path)):
        if Path(source).suffix.lower() in PARQUET_SUFFIXES:
            return read_parquet(source)
        return Columns(read_table(source))
    if is_dataset(source):
        return dataset_columns(source, where)
    if is_dataset_dict(source):
        raise UserInputError(f"{where}: a DatasetDict goes in as the training data, whose splits become train, "
                             "validation and test")  # fmt: skip
    if isinstance(source, dict):
        return Columns({k: list(v) for k, v in source.items()})
    raise UserInputError(f"{where}: expected a file path, a datasets.Dataset or a dict of columns, got {type(source)}")


def _unlabelled(table: Table, label_column: str) -> bool:
    """No label column, or no label in it: a hub test split whose labels are hidden (-1)."""
    return label_column not in table or all(_label_key(v) == "" for v in table[label_column])


def load_user_data(
    train: Any,
    *,
    validation: Any = None,
    test: Any = None,
    text_columns: tuple[str, ...] | list[str] | str | None = None,
    label_column: str = "label",
    task_type: str = "auto",
    train_size: int | None = None,
    data_seed: int = DATA_SEED,
    split_seed: int = SPLIT_SEED,
    name: str | None = None,
) -> TaskData:
    """Load the user's own data: files (CSV, TSV, JSONL, Parquet), `datasets.Dataset`s, or a `datasets.DatasetDict`.

    A `DatasetDict` as `train` gives its `train` split, its `validation` (or `dev`, `valid`) and `test` splits
    unless `validation`/`test` are given; a split of it without labels (hidden test labels) is left out. A
    `ClassLabel` label column's names, in the feature's id order, are the label names.

    Classification labels may be strings or integers; the label set is taken from the training data (or its
    `ClassLabel`), and a validation or test label outside it is an error. `task_type="auto"` treats non-integer
    numbers as regression. Missing splits follow the paper's protocol: a validation set alone is split into
    validation/test halves; with neither, 20% of train is held out (stratified) and split into halves; with a test
    set alone, 10% of train becomes the validation set.
    """
    return _user_data(train, validation=validation, test=test, text_columns=text_columns, label_column=label_column,
                      task_type=task_type, train_size=train_size, data_seed=data_seed, split_seed=split_seed,
                      name=name)  # fmt: skip


def _user_data(
    train: Any,
    *,
    validation: Any,
    test: Any,
    text_columns: tuple[str, ...] | list[str] | str | None,
    label_column: str,
    task_type: str,
    train_size: int | None,
    data_seed: int,
    split_seed: int,
    name: str | None,
    dataset: str | None = None,
) -> TaskData:
    """`load_user_data`, and `load_data(dataset=...)`: `dataset` names where a `DatasetDict` came from."""
    given = {"train": train, "validation": validation, "test": test}
    from_dict: dict[str, str] = {}  # role → the DatasetDict split it came from
    if is_dataset_dict(train) or is_dataset(train) and dataset is not None:
        picked = pick_splits(train, dataset or "the DatasetDict") if is_dataset_dict(train) else {"train": ("", train)}
        for role, (split_name, part) in picked.items():
            if role == "train" or given[role] is None:
                given[role], from_dict[role] = part, split_name
    where: dict[str, str] = {}
    columns: dict[str, Columns] = {}
    for role, src in given.items():
        if src is None:
            continue
        if isinstance(src, (str, Path)):
            where[role] = str(src)
        elif role in from_dict and from_dict[role]:
            where[role] = f"{dataset} ({from_dict[role]} split)" if dataset else f"{from_dict[role]} split"
        elif role in from_dict:
            where[role] = str(dataset)  # a Dataset saved on its own
        else:
            where[role] = f"{role} data"
        columns[role] = _as_columns(src, where[role])
    unlabelled = [role for role in ("validation", "test")
                  if role in from_dict and _unlabelled(columns[role].table, label_column)]  # fmt: skip
    for role in unlabelled:
        del columns[role], where[role]
    tables = {role: c.table for role, c in columns.items()}
    class_names = columns["train"].class_names.get(label_column)

    if isinstance(text_columns, str):
        text_columns = tuple(c.strip() for c in text_columns.split(",") if c.strip())
    text_columns = tuple(text_columns) if text_columns else _default_text_columns(tables["train"], where["train"])
    if not 1 <= len(text_columns) <= 2:
        raise UserInputError(f"give one or two text columns, got {len(text_columns)}: {', '.join(text_columns)}")
    if len(set(text_columns)) != len(text_columns):
        raise UserInputError(f"text column {text_columns[0]!r} is given twice; a pair task names two columns")
    if label_column in text_columns:
        raise UserInputError(f"column {label_column!r} is both a text column and the label column; the model would "
                             "read the answer (--text-columns names the inputs)")  # fmt: skip
    for split_name, table in tables.items():
        if label_column in table and label_column != "__line__":
            _check_label_values(table[label_column], where[split_name], table.get("__line__"))

    train_labels = _column(tables["train"], label_column, where["train"])
    if not train_labels:
        raise UserInputError(f"{where['train']}: the train split is empty")
    for i, value in enumerate(train_labels):
        if _label_key(value) == "":
            raise UserInputError(f"{_at(where['train'], tables['train'].get('__line__'), i)}: missing label")
    if task_type == "auto":
        task_type = "classification" if class_names else _infer_task_type(train_labels)
    if task_type not in ("classification", "regression"):
        raise UserInputError(f"unknown task type {task_type!r}; use classification, regression or auto")
    if class_names and task_type == "regression":
        raise UserInputError(f"{where['train']}: column {label_column!r} is a ClassLabel ({', '.join(class_names)}), "
                             "not a regression target")  # fmt: skip
    label_names = None if task_type == "regression" else class_names or _label_order(train_labels)
    present = {_label_key(v) for v in train_labels}
    if label_names is not None and len(present) < 2:
        raise UserInputError(
            f"{where['train']}: classification needs at least two labels, found {tuple(sorted(present))}"
        )

    splits: dict[str, Split] = {}
    for split_name, table in tables.items():
        values = _column(table, label_column, where[split_name])
        lines = table.get("__line__")
        if label_names is None:
            labels = _float_labels(values, where[split_name], lines)
        else:
            labels = _encode_labels(values, label_names, label_names, where[split_name], lines)
        splits[split_name] = _split(table, text_columns, labels, split_name, where[split_name])

    info: dict[str, Any] = {
        "files": {k: v for k, v in where.items()},
        "label_column": label_column,
        "task_type": task_type,
        "train_size": train_size,
        "data_seed": data_seed,
        "split_seed": split_seed,
    }
    if dataset is not None:
        info["dataset"] = dataset
    if any(from_dict.values()):
        info["splits"] = {role: split for role, split in from_dict.items() if role not in unlabelled}
        if unlabelled:
            info["unlabelled_splits"] = [from_dict[role] for role in unlabelled]
    tr = splits["train"]
    if "validation" not in splits:
        held_out = 0.2 if "test" not in splits else 0.1
        tr, rest = split_in_two(tr, second_size=held_out, seed=split_seed, names=("train", "dev"),
                                label_names=label_names)  # fmt: skip
        if "test" in splits:
            splits["validation"] = rest.select(np.arange(len(rest)), "validation")
            info["protocol"] = "validation = stratified 10% of train"
        else:
            splits["validation"], splits["test"] = split_in_two(rest, seed=split_seed, label_names=label_names)
            info["protocol"] = "stratified 20% of train held out, split into validation/test halves"
    elif "test" not in splits:
        splits["validation"], splits["test"] = split_in_two(splits["validation"], seed=split_seed,
                                                            label_names=label_names)  # fmt: skip
        info["protocol"] = "validation file split into stratified validation/test halves"
    else:
        info["protocol"] = "train, validation and test files as given"
    if train_size is not None:
        chosen, _ = balanced_subset(tr, train_size, seed=data_seed, label_names=label_names)
        tr = tr.select(chosen, "train")
    if name is None and isinstance(train, (str, Path)):
        path = Path(where["train"]).resolve()
        # "reviews.csv" names the task "reviews"; "reviews/train.csv" does too
        name = (
            path.parent.name if path.stem.lower() in ("train", "training", "data") and path.parent.name else path.stem
        )
    name = name or "custom"
    return TaskData(name, tr, splits["validation"], splits["test"], label_names, "accuracy" if label_names else
                    "spearmanr", text_columns, info)  # fmt: skip


def load_data(
    *,
    task: str | None = None,
    glue_dir: str | Path | None = None,
    train_file: Any = None,
    validation_file: Any = None,
    test_file: Any = None,
    dataset: Any = None,
    text_columns: tuple[str, ...] | list[str] | str | None = None,
    label_column: str = "label",
    task_type: str = "auto",
    train_size: int | None = None,
    data_seed: int = DATA_SEED,
    split_seed: int = SPLIT_SEED,
) -> TaskData:
    """One entry point for every kind of data: a GLUE preset (`task`), the user's own files (`train_file`), or a
    Hugging Face dataset (`dataset`: `NAME[:CONFIG]`, a `save_to_disk` folder or a hub id, or a `Dataset` or
    `DatasetDict` object), whose splits `validation_file`/`test_file` may replace."""
    given = [flag for flag, value in (("--task", task), ("--train-file", train_file), ("--dataset", dataset))
             if value is not None]  # fmt: skip
    if len(given) != 1:
        what = f"not {' and '.join(given)} together" if given else "none was given"
        raise UserInputError("give either a GLUE task (--task), your own data files (--train-file) or a Hugging "
                             f"Face dataset (--dataset), one of them: {what}")  # fmt: skip
    if task is not None:
        return load_glue(task, glue_dir, train_size=train_size, data_seed=data_seed, split_seed=split_seed)
    kwargs: dict[str, Any] = dict(validation=validation_file, test=test_file, text_columns=text_columns,
                                  label_column=label_column, task_type=task_type, train_size=train_size,
                                  data_seed=data_seed, split_seed=split_seed)  # fmt: skip
    if dataset is None:
        return _user_data(train_file, name=None, **kwargs)
    if isinstance(dataset, str):
        opened, name, hub_id = open_dataset(dataset)
        data = _user_data(opened, name=name, dataset=dataset, **kwargs)
        if hub_id is not None:
            data.source["hub_dataset"] = hub_id
        return data
    if is_dataset(dataset) or is_dataset_dict(dataset):
        return _user_data(dataset, name=None, **kwargs)
    raise UserInputError(f"dataset: expected NAME[:CONFIG] (a save_to_disk folder or a hub id), a datasets.Dataset "
                         f"or a DatasetDict, got {type(dataset).__name__}")  # fmt: skip
