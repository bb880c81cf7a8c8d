"""`TrainConfig`, everything one run needs, and the field sets that the rest of the package reads from it.

A study shares one configuration between its trials except `PER_TRIAL` (the grid sets those); its identity (what
must match for trials to be pooled) leaves out `NOT_IDENTITY` (where files are, where to run, what to keep), since
the data's identity is its rows' fingerprints, not its paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .data.seeds import DATA_SEED, SPLIT_SEED
from .errors import UserInputError
from .recipes import INT64_MAX, Recipe
from .recipes import help_field as _help
from .tracking import parse_report_to

__all__ = [
    "ADDED_SETTINGS",
    "DEFAULT_RECIPE",
    "DATA_FIELDS",
    "DEVICES",
    "NOT_IDENTITY",
    "PER_TRIAL",
    "STUDY_SKIPS",
    "TASK_TYPES",
    "TRACKING_FIELDS",
    "TrainConfig",
    "check_device",
]

# `steadytune.load_data`'s keywords: which rows a run trains and is scored on.
DATA_FIELDS = ("task", "glue_dir", "train_file", "validation_file", "test_file", "dataset", "text_columns",
               "label_column", "task_type", "train_size", "data_seed", "split_seed")  # fmt: skip
# What a study's grid sets per trial.
PER_TRIAL = frozenset({"task", "recipe", "seed", "init_seed"})
# What a study does not take as a shared setting: the grid's fields, and a run's own output (a study keeps records).
STUDY_SKIPS = PER_TRIAL | {"save_model"}
# Shared settings that do not change what a trial computes: paths (the data is identified by its rows), the
# device (each record says which ran), what to keep.
# Where a run's scalars are logged besides its record (`steadytune.tracking`): they change nothing it computes.
TRACKING_FIELDS = frozenset({"report_to", "tracking_dir"})
NOT_IDENTITY = frozenset({"glue_dir", "train_file", "validation_file", "test_file", "dataset", "device",
                          "save_model"}) | TRACKING_FIELDS  # fmt: skip
# Device names a run accepts (whether this machine has one is checked when the run starts: records name the
# device they ran on, and are read on other machines).
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
# What `task_type` may say (`data.load_user_data` resolves auto from the labels).
TASK_TYPES = ("auto", "classification", "regression")


def check_device(name: str) -> str:
    """`name` when it is a device a run accepts (`DEVICES`); whether this machine has it is checked at the start."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise UserInputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return name


# `train`'s recipe when none is given: fit's candidate recipe (bias-corrected Adam, the top 2 blocks and the pooler
# re-initialised, the learning rate by the encoder's width: `recipes.default_lr`). On the fit benchmark (all-MiniLM-
# L6-v2, 1000 rows of RTE, MRPC, CoLA and STS-B, docs/results/fit.md) this run failed 3 of 20 times where the paper's
# set-up (`paper`: Adam at 2e-5, no re-init) failed 17 of 20; the paper's is one name away: --recipe paper.
DEFAULT_RECIPE = "adam+reinit:2"

# Settings added after studies were first stored, with the value those studies' trials ran with.
ADDED_SETTINGS: dict[str, Any] = {"fast_path": True, "compact_embedding": True}


@dataclass
class TrainConfig:
    """Everything one run needs; saved as the run's `config.json`, so a run can be repeated from it."""

    # what to train
    model: str = _help("Hub id, local folder, or 'all-MiniLM-L6-v2' (the packaged copy when installed).",
                       "all-MiniLM-L6-v2")  # fmt: skip
    task: str | None = _help("GLUE preset (rte, mrpc, sts-b, cola, sst-2, qnli, qqp, mnli); or use train_file.")
    glue_dir: str | None = _help("GLUE folder (<dir>/<TASK>/train.tsv); default env GLUE_DIR, else the hub.")
    train_file: str | None = _help("Your own training data: CSV, TSV, JSONL or Parquet.")
    validation_file: str | None = _help("Validation data; without it, held out from train (paper protocol).")
    test_file: str | None = _help("Test data; without it, the validation data is split into halves.")
    dataset: str | None = _help(
        "A Hugging Face dataset as NAME or NAME:CONFIG: a folder written by save_to_disk, or a hub id. Its train "
        "split, its validation (or dev) and test splits when it has them, as with the files; a ClassLabel keeps its "
        "names.")  # fmt: skip
    text_columns: tuple[str, ...] | None = _help("One or two text columns of the user's data.")
    label_column: str = _help("Label column of the user's data.", "label")
    task_type: str = _help("classification, regression, or auto (non-integer numbers mean regression).", "auto",
                           choices=TASK_TYPES)  # fmt: skip
    train_size: int | None = _help("Draw a class-balanced subset of this many training examples (paper: 1000).")
    data_seed: int = _help("Seed of the train subset; fixed, so every run sees the same rows.", DATA_SEED)
    split_seed: int = _help("Seed of the validation/test split of dev; fixed across runs.", SPLIT_SEED)
    max_length: int = _help("Truncate inputs to this many tokens (paper §3: 128).", 128)
    metric: str | None = _help(
        "Metric that picks the best checkpoint and decides failure: accuracy, f1, matthews_correlation, pearson, "
        "spearmanr. Default: the GLUE task's (RTE accuracy, MRPC f1, CoLA MCC, STS-B spearmanr), else accuracy or "
        "spearmanr."
    )
    # how to train
    recipe: Recipe = field(default_factory=lambda: Recipe.parse(DEFAULT_RECIPE), metadata={"help": (
        "How to train: presets joined by '+', each with an optional :value, and field=value settings, e.g. "
        "'adam', 'paper' (the paper's exact set-up), 'bertadam+paper', 'adam+llrd:0.9+lr=1e-4' (see `steadytune "
        "recipes`). A recipe without lr runs at the encoder's (1e-4 below 768 wide, else 2e-5).")})  # fmt: skip
    num_evals: int = _help("Validation evaluations spread evenly over training, the last at the final step.", 10)
    eval_batch_size: int = _help("Most examples in an evaluation batch (which also holds at most 4096 tokens).", 128)
    seed: int = _help("Seed of data order and dropout.", 0)
    init_seed: int | None = _help("Seed of the new classifier head; defaults to seed.")
    device: str = _help("Where to run: auto (CUDA when present), cpu, cuda, cuda:N or mps.", "auto")
    trust_remote_code: bool = _help("Allow model code from the hub (off unless you ask).", False)
    save_model: bool = _help("Write the best model and tokenizer (safetensors) to <out>/model.", False)
    # speed paths: on by default; each record says whether it ran
    fast_path: bool = _help(
        "On a CPU, train through steadytune.fastpath: dropout masks from raw random bits and attention as float32 "
        "products (the same distributions, another random stream), each block's q/k/v as one product. Off: torch's "
        "own dropout and attention. No effect on CUDA.", True)  # fmt: skip
    compact_embedding: bool = _help(
        "Train only the word-embedding rows the run's tokens reach, where that is exact (no plain weight decay: "
        "the other rows' updates are zero); the saved model has the full vocabulary. Off: the dense embedding.",
        True)  # fmt: skip
    # experiment tracking (steadytune.tracking): where the scalars go besides the record; no effect on the scores
    report_to: str = _help(
        "Experiment trackers to log to, as transformers' report_to: none, or tensorboard, mlflow, wandb, "
        "comma-separated (each an optional extra: pip install 'steadytune[tensorboard]'). Logged: per-step loss, "
        "gradient norm and learning rate, every evaluation, the final metrics, the configuration as "
        "hyper-parameters; a study logs one run per trial (task/recipe/seed), a fit one per candidate.",
        "none",
    )
    tracking_dir: str | None = _help(
        "Where the trackers write: TensorBoard events in <dir>/tensorboard/<run>, MLflow's SQLite store "
        "<dir>/mlflow.db (MLFLOW_TRACKING_URI wins when set), W&B offline runs in <dir>/wandb. Default: the folder "
        "holding train's --out (the run folder appears whole only at the end), the study's or fit's folder, else "
        "the current folder.")  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.recipe, str):
            self.recipe = Recipe.parse(self.recipe)
        elif isinstance(self.recipe, dict):
            self.recipe = Recipe.from_dict(self.recipe)
        # Integer settings: counts positive, seeds non-negative, all within int64 (torch and numpy take seeds and
        # sizes as 64-bit integers); split_seed goes to scikit-learn, which takes 32 bits.
        counts = ("max_length", "eval_batch_size", "num_evals", "train_size")
        seeds = {"seed": INT64_MAX, "init_seed": INT64_MAX, "data_seed": INT64_MAX, "split_seed": 2**32 - 1}
        for name in (*counts, *seeds):
            value = getattr(self, name)
            if value is None and name in ("train_size", "init_seed"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > INT64_MAX:
                raise UserInputError(f"{name} must be an integer of at most {INT64_MAX}, got {value!r}")
            if name in counts and not value > 0:
                raise UserInputError(f"{name} must be positive, got {value!r}")
            if name in seeds and not 0 <= value <= seeds[name]:
                raise UserInputError(f"{name} must be from 0 to {seeds[name]}, got {value!r}")
        check_device(self.device)
        self.report_to = parse_report_to(self.report_to)
        if self.tracking_dir is not None:
            self.tracking_dir = str(self.tracking_dir)
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise UserInputError("dataset takes NAME[:CONFIG] (a config is saved as JSON), got a "
                                 f"{type(self.dataset).__name__}; pass a Dataset object as train(config, "
                                 "data=steadytune.load_user_data(ds))")  # fmt: skip
        if isinstance(self.text_columns, str):
            self.text_columns = tuple(c.strip() for c in self.text_columns.split(",") if c.strip())
        elif self.text_columns is not None:
            self.text_columns = tuple(self.text_columns)

    def data_kwargs(self) -> dict[str, Any]:
        """The settings that say which rows a run trains and is scored on: `steadytune.load_data`'s keywords."""
        return {name: getattr(self, name) for name in DATA_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Flat: the recipe's fields sit beside the run's, and "recipe" is its name (easy to tabulate)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "recipe"}
        recipe = self.recipe.to_dict()
        return {**d, "recipe": recipe.pop("name"), **recipe}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict` (also takes a nested recipe dict, or a recipe string to parse)."""
        own = {f.name for f in fields(cls)} - {"recipe"}
        recipe_keys = {f.name for f in fields(Recipe)} - {"name"}
        recipe: Any = d.get("recipe", DEFAULT_RECIPE)
        if isinstance(recipe, str) and recipe_keys & d.keys():
            recipe = Recipe.from_dict({"name": recipe, **{k: d[k] for k in recipe_keys & d.keys()}})
        return cls(recipe=recipe, **{k: v for k, v in d.items() if k in own})

    def resolved(self, width: int | None = None) -> TrainConfig:
        """This configuration with its recipe's learning rate set for its model (`Recipe.resolved`): the encoder's
        width is `width`, else read from the model's config where it is at hand (a folder, the local cache)."""
        if self.recipe.lr is not None:
            return self
        if width is None:
            from .models import _peek_config, resolve_model

            found = _peek_config(resolve_model(self.model), self.trust_remote_code)
            width = getattr(found, "hidden_size", None) if found is not None else None
        return replace(self, recipe=self.recipe.resolved(width))

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with run fields and recipe fields changed (`recipe=` first, then recipe fields on top of it)."""
        own = {f.name for f in fields(self)}
        recipe_keys = {f.name for f in fields(Recipe)} - {"name"}
        unknown = overrides.keys() - own - recipe_keys
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        config = replace(self, **{k: v for k, v in overrides.items() if k in own})
        recipe_changes = {k: v for k, v in overrides.items() if k in recipe_keys}
        if recipe_changes:
            config = replace(config, recipe=config.recipe.override(**recipe_changes))
        return config
