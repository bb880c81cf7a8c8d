"""Hugging Face `datasets` as training data: a hub id or a `save_to_disk` folder (`NAME[:CONFIG]`), or a `Dataset`
or `DatasetDict` object; `readers.dataset_columns` turns each split into the column tables the file readers give.

A `ClassLabel` column keeps its class names: ids become their names (-1, the hub's "no label", becomes a missing
label), and the names in the feature's order are the task's label names, so a model trained on it predicts the
dataset's own names under the dataset's own ids. A Parquet file written by `datasets` (`Dataset.to_parquet`, the
hub's Parquet exports) carries its features in the file's metadata, so its `ClassLabel`s keep their names too.

A `DatasetDict`'s splits map onto the paper's protocol by name: `train`; the first of `validation`, `dev` and
`valid` as the validation data; `test`. A validation or test split without labels (the hub hides GLUE's test labels
as -1) is left out, as if it were not there, and `steadytune.data.load_user_data` applies the same rules as to files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .readers import first_line as _first_line

__all__ = [
    "TEST_SPLITS",
    "VALIDATION_SPLITS",
    "is_dataset",
    "is_dataset_dict",
    "open_dataset",
    "pick_splits",
]

# Split names that play the paper's dev (validation) and test roles, most common first.
VALIDATION_SPLITS = ("validation", "dev", "valid")
TEST_SPLITS = ("test",)


def _datasets_module() -> Any:
    """`datasets` if it has been imported (an object can only be a `Dataset` then): CSV users pay no import."""
    return sys.modules.get("datasets")


def is_dataset(obj: Any) -> bool:
    ds = _datasets_module()
    return ds is not None and isinstance(obj, ds.Dataset)


def is_dataset_dict(obj: Any) -> bool:
    ds = _datasets_module()
    return ds is not None and isinstance(obj, ds.DatasetDict)


# ---------------------------------------------------------------------------------------------------------------
# NAME[:CONFIG]: a save_to_disk folder or a hub id


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No progress bars or info logs from `datasets` while it reads a local folder (not news)."""
    import datasets

    bars_were_off = datasets.utils.are_progress_bars_disabled()
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
        datasets.logging.set_verbosity(verbosity)


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if name.startswith(("/", ".", "~")):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, RuntimeError, ValueError):  # a name too long for the filesystem, no home folder, a NUL byte
        return False


def open_dataset(spec: str) -> tuple[Any, str, str | None]:
    """The `Dataset` or `DatasetDict` that `NAME[:CONFIG]` names, a task name for it, and its hub id as
    `owner/name[/config]` (None for a local folder; a model card links it).

    NAME is a folder written by `Dataset.save_to_disk`/`DatasetDict.save_to_disk` (read with
    `datasets.load_from_disk`), else a hub id (`datasets.load_dataset(NAME, CONFIG)`; one quick probe first, so
    that without a network the error comes at once).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UserInputError(f"--dataset takes NAME or NAME:CONFIG (a save_to_disk folder or a hub id), got {spec!r}")
    name, config = spec, None
    if not _exists(spec) and ":" in spec:
        name, _, config = spec.rpartition(":")
        if not name or not config:
            raise UserInputError(f"--dataset {spec[:300]!r}: expected NAME:CONFIG with both parts")
    if _exists(name):
        folder = Path(name).expanduser()
        if config is not None:
            raise UserInputError(f"--dataset {spec!r}: {name} is a local folder, which has no configs (config "
                                 f"{config!r}); give the folder alone")  # fmt: skip
        return _from_disk(folder), folder.resolve().name, None
    if not _is_repo_id(name):
        raise UserInputError(f"dataset folder not found: {name[:300]}")  # a long "name" is no folder, nor one line
    short = name.rsplit("/", 1)[-1]
    # the model card splits `owner/name/config` after the second slash; an owner-less id with a config would not fit
    hub_id = f"{name}/{config}" if config and "/" in name else None if config else name
    return _from_hub(name, config), f"{short}-{config}" if config else short, hub_id


def _from_disk(folder: Path) -> Any:
    import datasets

    if not folder.is_dir():
        raise UserInputError(f"{folder} is a file; --dataset takes a folder written by save_to_disk or a hub id (a "
                             "data file goes to --train-file)")  # fmt: skip
    marks = ("dataset_dict.json", "state.json", "dataset_info.json")
    if not any((folder / m).is_file() for m in marks):
        raise UserInputError(f"{folder}: not a dataset saved with save_to_disk (no dataset_dict.json or state.json); "
                             "data files go to --train-file/--validation-file")  # fmt: skip
    try:
        with _quiet_datasets():
            return datasets.load_from_disk(str(folder))
    except Exception as e:  # a damaged folder: missing shards, bad JSON, truncated Arrow files
        empty = _empty_part(folder)
        if empty is not None:
            raise UserInputError(f"{empty}: the dataset is empty (saved without rows)") from None
        raise UserInputError(f"cannot load the dataset in {folder}: {_first_line(e)}") from None


def _empty_part(folder: Path) -> Path | None:
    """A (split) folder saved without rows: `load_from_disk` cannot read those back (it fails on an index)."""
    import json

    for state in (folder / "state.json", *sorted(folder.glob("*/state.json"))):
        try:
            if state.is_file() and json.loads(state.read_text()).get("_data_files") == []:
                return state.parent
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _from_hub(name: str, config: str | None) -> Any:
    import datasets
    import huggingface_hub

    from ..hub import hub_unreachable

    shown = f"{name}:{config}" if config else name
    reason = hub_unreachable(name, "dataset")
    if reason is not None:
        raise UserInputError(
            f"cannot load dataset {shown!r}: no local folder {name}, and the Hugging Face hub is unreachable "
            f"({reason}); offline? give a folder written by save_to_disk, or HF_HUB_OFFLINE=1 for a cached copy"
        )
    try:
        return datasets.load_dataset(name, config)
    except Exception as e:  # unknown id or config, not in the offline cache, hub down: all end the same way
        hint = "" if huggingface_hub.constants.HF_HUB_OFFLINE else f" (no local folder {name} either)"
        raise UserInputError(
            f"cannot load dataset {shown!r} from the Hugging Face hub{hint}: {_first_line(e)}"
        ) from None


def pick_splits(dd: Any, where: str) -> dict[str, tuple[str, Any]]:
    """A `DatasetDict`'s train, validation and test splits by name: role → (split name, `Dataset`)."""
    splits = list(dd.keys())
    shown = ", ".join(map(repr, splits)) or "none"
    if "train" not in dd:
        raise UserInputError(f"{where}: no 'train' split (splits: {shown})")
    out = {"train": ("train", dd["train"])}
    for role, names in (("validation", VALIDATION_SPLITS), ("test", TEST_SPLITS)):
        name = next((n for n in names if n in dd), None)
        if name is not None:
            out[role] = (name, dd[name])
    return out
