"""Tasks and data: GLUE presets, the user's own files, the paper's splits, and cached tokenization."""

from .batching import GROUP_BATCHES, epoch_batches, padding_fraction
from .encode import EncodedSplit, clear_cache, encode
from .load import TaskData, load_data, load_glue, load_user_data
from .splits import DATA_SEED, SPLIT_SEED, Split, balanced_subset, split_in_two
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
