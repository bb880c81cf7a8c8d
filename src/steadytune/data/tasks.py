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
_ENTAIL = ("entailment", "not_entailment")

# fmt: off
GLUE_TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec(name="rte", folder="RTE", text_columns=_PAIR, label_column="label", raw_labels=_ENTAIL,
             label_names=_ENTAIL, metric="accuracy", hub_config="rte", hub_text_columns=_PAIR,
             description="textual entailment, 2.5k train"),
    TaskSpec(name="mrpc", folder="MRPC", text_columns=("#1 String", "#2 String"), label_column="Quality",
             raw_labels=("0", "1"), label_names=("not_equivalent", "equivalent"), metric="f1",
             hub_config="mrpc", hub_text_columns=_PAIR, description="paraphrase, 3.7k train"),
    TaskSpec(name="sts-b", folder="STS-B", text_columns=_PAIR, label_column="score", raw_labels=None,
             label_names=None, metric="spearmanr", hub_config="stsb", hub_text_columns=_PAIR,
             description="similarity score 0-5 (regression), 5.7k train"),
    TaskSpec(name="cola", folder="CoLA", text_columns=("sentence",), label_column="label", raw_labels=("0", "1"),
             label_names=("unacceptable", "acceptable"), metric="matthews_correlation", hub_config="cola",
             hub_text_columns=("sentence",), header=("source", "label", "mark", "sentence"),
             description="grammatical acceptability, 8.6k train"),
    TaskSpec(name="sst-2", folder="SST-2", text_columns=("sentence",), label_column="label", raw_labels=("0", "1"),
             label_names=("negative", "positive"), metric="accuracy", hub_config="sst2",
             hub_text_columns=("sentence",), large=True, description="sentiment, 67k train"),
    TaskSpec(name="qnli", folder="QNLI", text_columns=("question", "sentence"), label_column="label",
             raw_labels=_ENTAIL, label_names=_ENTAIL, metric="accuracy", hub_config="qnli",
             hub_text_columns=("question", "sentence"), large=True,
             description="question-answer entailment, 105k train"),
    TaskSpec(name="qqp", folder="QQP", text_columns=("question1", "question2"), label_column="is_duplicate",
             raw_labels=("0", "1"), label_names=("not_duplicate", "duplicate"), metric="accuracy",
             hub_config="qqp", hub_text_columns=("question1", "question2"), large=True,
             description="duplicate questions, 364k train"),
    TaskSpec(name="mnli", folder="MNLI", text_columns=_PAIR, label_column="gold_label",
             raw_labels=("entailment", "neutral", "contradiction"),
             label_names=("entailment", "neutral", "contradiction"), metric="accuracy", hub_config="mnli",
             hub_text_columns=("premise", "hypothesis"), dev_file="dev_matched.tsv", large=True,
             description="3-way entailment, 393k train (dev matched)"),
]}
# fmt: on

_ALIASES = {"stsb": "sts-b", "sst2": "sst-2", "sts_b": "sts-b", "sst_2": "sst-2"}


def get_task(name: str) -> TaskSpec:
    """Look a preset up by name (case-insensitive; `stsb`/`sst2` spellings accepted)."""
    from ..errors import UserInputError

    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GLUE_TASKS:
        raise UserInputError(f"unknown task {name!r}; known tasks: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]
