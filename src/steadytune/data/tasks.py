"""GLUE task presets: where each task's columns and labels are, and which metric ranks runs.

Column names are those of the GLUE TSV files written by the GLUE download script (CoLA has no header, so its four
columns get names here). Label ids follow the Hugging Face `nyu-mll/glue` dataset, so a task loaded from TSV files
and the same task loaded from the hub give the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GLUE_TASKS", "TaskSpec", "get_task"]


@dataclass(frozen=True)
class TaskSpec:
    """One GLUE task as a folder of TSV files and as a `nyu-mll/glue` hub config."""

    name: str
    folder: str
    text_columns: tuple[str, ...]
    label_column: str
    raw_labels: tuple[str, ...] | None
    """Label values as written in the TSV files, in id order; None for regression."""
    label_names: tuple[str, ...] | None
    """Hugging Face label names in id order; None for regression."""
    metric: str
    hub_config: str
    hub_text_columns: tuple[str, ...]
    dev_file: str = "dev.tsv"
    header: tuple[str, ...] | None = None
    """Column names for files without a header row (CoLA); None when the file has one."""
    large: bool = False
    """Paper's "1k" setting: carve the validation set from unused training rows and test on all of dev."""
    description: str = ""

    @property
    def is_regression(self) -> bool:
        return self.raw_labels is None


_PAIR = ("sentence1", "sentence2")

GLUE_TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec(
            "rte", "RTE", _PAIR, "label", ("entailment", "not_entailment"), ("entailment", "not_entailment"),
            "accuracy", "rte", _PAIR, description="textual entailment, 2.5k train",
        ),
        TaskSpec(
            "mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), ("not_equivalent", "equivalent"),
            "f1", "mrpc", _PAIR, description="paraphrase, 3.7k train",
        ),
        TaskSpec(
            "sts-b", "STS-B", _PAIR, "score", None, None, "spearmanr", "stsb", _PAIR,
            description="similarity score 0-5 (regression), 5.7k train",
        ),
        TaskSpec(
            "cola", "CoLA", ("sentence",), "label", ("0", "1"), ("unacceptable", "acceptable"),
            "matthews_correlation", "cola", ("sentence",), header=("source", "label", "mark", "sentence"),
            description="grammatical acceptability, 8.6k train",
        ),
        TaskSpec(
            "sst-2", "SST-2", ("sentence",), "label", ("0", "1"), ("negative", "positive"), "accuracy", "sst2",
            ("sentence",), large=True, description="sentiment, 67k train",
        ),
        TaskSpec(
            "qnli", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"),
            ("entailment", "not_entailment"), "accuracy", "qnli", ("question", "sentence"), large=True,
            description="question-answer entailment, 105k train",
        ),
        TaskSpec(
            "qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), ("not_duplicate", "duplicate"),
            "accuracy", "qqp", ("question1", "question2"), large=True, description="duplicate questions, 364k train",
        ),
        TaskSpec(
            "mnli", "MNLI", _PAIR, "gold_label", ("entailment", "neutral", "contradiction"),
            ("entailment", "neutral", "contradiction"), "accuracy", "mnli", ("premise", "hypothesis"),
            dev_file="dev_matched.tsv", large=True, description="3-way entailment, 393k train (dev matched)",
        ),
    ]
}

_ALIASES = {"stsb": "sts-b", "sst2": "sst-2", "sts_b": "sts-b", "sst_2": "sst-2"}


def get_task(name: str) -> TaskSpec:
    """Look a preset up by name (case-insensitive; `stsb`/`sst2` spellings accepted)."""
    from ..errors import UserInputError

    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GLUE_TASKS:
        raise UserInputError(f"unknown task {name!r}; known tasks: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]
