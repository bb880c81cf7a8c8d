"""Tasks and data: GLUE presets, the user's own files, the paper's splits, and cached tokenization.

The names below load on first use (PEP 562), so that importing a light part (`data.seeds`, `data.tasks`, as the
CLI's parser does) does not import torch, transformers, numpy or scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_package

if TYPE_CHECKING:
    from .batching import GROUP_BATCHES, epoch_batches, padding_fraction
    from .encode import EncodedSplit, clear_cache, encode
    from .load import TaskData, load_data, load_glue, load_user_data
    from .seeds import DATA_SEED, SPLIT_SEED
    from .splits import Split, balanced_subset, split_in_two
    from .tasks import GLUE_TASKS, TaskSpec, get_task

__all__ = [
    "DATA_SEED",
    "GROUP_BATCHES",
    "GLUE_TASKS",
    "SPLIT_SEED",
    "EncodedSplit",
    "Split",
    "TaskData",
    "TaskSpec",
    "balanced_subset",
    "clear_cache",
    "encode",
    "epoch_batches",
    "get_task",
    "load_data",
    "load_glue",
    "load_user_data",
    "padding_fraction",
    "split_in_two",
]

__getattr__, __dir__ = lazy_package(
    __name__,
    {
        **dict.fromkeys(("GROUP_BATCHES", "epoch_batches", "padding_fraction"), "batching"),
        **dict.fromkeys(("EncodedSplit", "clear_cache", "encode"), "encode"),
        **dict.fromkeys(("TaskData", "load_data", "load_glue", "load_user_data"), "load"),
        **dict.fromkeys(("DATA_SEED", "SPLIT_SEED"), "seeds"),
        **dict.fromkeys(("Split", "balanced_subset", "split_in_two"), "splits"),
        **dict.fromkeys(("GLUE_TASKS", "TaskSpec", "get_task"), "tasks"),
    },
)
