"""Argument parsing shared by the commands: the one-line-error parser, argument types, the flags generated
from `TrainConfig` and `Recipe`, the executor flags and their checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from ..errors import UserInputError

if TYPE_CHECKING:
    from ..study import Executor

__all__ = [
    "CONFIG_GROUPS",
    "EXIT_CODES",
    "GROUPS",
    "MOST_PROCESSES",
    "MOST_SEEDS",
    "HelpFormatter",
    "Parser",
    "add_config_arguments",
    "add_executor_arguments",
    "check_executor_flags",
    "check_seeds",
    "config_from_args",
    "device_name",
    "flag",
    "floats",
    "fmt",
    "group",
    "option",
    "pair",
    "positive_int",
    "scalar_type",
    "study_executor",
]


EXIT_CODES = (
    "exit status: 0 done; 1 a run that failed (no better than a constant predictor on test) or diverged, a study "
    "or fit with errored trials or no good candidate, or (audit) bias correction omitted; 2 bad input (a file, "
    "column, label, flag, path, model folder or store: one line on stderr naming it, nothing written); 3 the "
    "environment failed (disk full, out of memory: one line; what was committed before is intact, so free the "
    "resource and run the same command again); 130 interrupted. --debug shows the traceback of any error."
)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with an option's default appended where it says something (a value, or "on" for a flag
    that is on unless turned off) and the help text does not give it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = _shown_default(action.default)
        if not action.option_strings or shown is None or "default:" in text.lower() or "%(default)" in text:
            return text
        return f"{text} (default: {shown.replace('%', '%%')})"

    def _split_lines(self, text: str, width: int) -> list[str]:
        # argparse's wrapping, but never inside a hyphenated word (all-MiniLM-L6-v2, failure-rate)
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


def _shown_default(value: Any) -> str | None:
    """How help shows a default; None where it says nothing (unset, off, empty, argparse's SUPPRESS)."""
    if value is True:
        return "on"
    if value is None or value is False or value is argparse.SUPPRESS or value in ("", [], ()):
        return None
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit 2), like every other bad input; every command takes
    --debug, shows its defaults (`HelpFormatter`) and lists the exit codes in its --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EXIT_CODES)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # SUPPRESS: given before or after the command, it is set once and never reset to False by the other
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an error, show its full traceback (for bug reports)")  # fmt: skip

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# The sections of a command's --help, in the order it lists them: key → (title, description).
GROUPS: dict[str, tuple[str, str | None]] = {
    "grid": ("study grid", "Every task × recipe × seed is one trial; a rerun skips the trials already stored."),
    "input": ("input", None),
    "data": ("data", "The rows a run trains and is scored on: a GLUE preset, your files (--train-file) or --dataset."),
    "model": ("model", "The pre-trained encoder and its inputs."),
    "training": ("training", "How runs train, and how they are evaluated and judged."),
    "recipe": ("recipe settings", "Each overrides the same setting of --recipe (see `steadytune recipes`)."),
    "fit": ("candidates", "(seed, learning rate) pairs, judged at fractions of the budget; the best continue."),
    "device": ("device and speed", None),
    "tracking": ("experiment tracking", "Where a run's scalars are logged besides its record; no effect on it."),
    "executor": ("executor", "Where trials run; a flag marked local: or ray: is for that executor only."),
    "output": ("output", None),
}
# The help section of each `TrainConfig` field that is not one of `config.DATA_FIELDS` ("data"); a field not
# named here is in "training".
CONFIG_GROUPS = {"model": "model", "max_length": "model", "trust_remote_code": "model", "device": "device",
                 "fast_path": "device", "compact_embedding": "device", "report_to": "tracking",
                 "tracking_dir": "tracking", "save_model": "output"}  # fmt: skip


def group(parser: argparse.ArgumentParser, key: str) -> argparse._ArgumentGroup:
    """The parser's help section `key` (of `GROUPS`), made on first use and placed in `GROUPS`' order (after
    argparse's own "options"), whatever order a command adds its arguments in."""
    title, description = GROUPS[key]
    rank = {t: i for i, (t, _) in enumerate(GROUPS.values())}
    sections = parser._action_groups  # the list --help walks, in order
    for existing in sections:
        if existing.title == title:
            return existing
    made = parser.add_argument_group(title, description)
    sections.remove(made)
    later = [i for i, g in enumerate(sections) if rank.get(g.title, -1) > rank[title]]
    sections.insert(later[0] if later else len(sections), made)
    return made


def device_name(text: str) -> str:
    """An argparse type: a device a run accepts (`config.DEVICES`; whether this machine has it is checked later)."""
    from ..config import check_device

    try:
        return check_device(text)
    except UserInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    """An argparse type: an integer from 1 to 2**63 - 1."""
    from ..recipes import INT64_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {INT64_MAX}, got {text}")
    return value


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def scalar_type(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return tp


def pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 0.9,0.999, got {text!r}") from None
    return a, b


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers; an empty item (`1e-4,,2e-4`) is a typo, not a number to skip."""
    import math

    items = text.split(",")
    if any(not x.strip() for x in items):
        raise argparse.ArgumentTypeError(f"expected numbers like 0.25,0.5, got an empty item in {text!r}")
    try:
        values = tuple(float(x) for x in items)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.25,0.5, got {text!r}") from None
    if not all(math.isfinite(x) for x in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names (`probe,finetune`); an empty item is a typo. Which names are allowed is the reader's
    check (`FitSettings`), so the message can list them."""
    items = tuple(x.strip() for x in text.split(","))
    if any(not x for x in items):
        raise argparse.ArgumentTypeError(f"expected names like probe,finetune, got an empty item in {text!r}")
    return items


def option(text: str) -> tuple[str, Any]:
    """KEY=VALUE with a Python literal value (`momentum=0.9`, `amsgrad=True`, `betas=(0.9,0.98)`)."""
    import ast

    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw  # a bare word: keep it as a string


def add_config_arguments(
    parser: argparse.ArgumentParser, *, skip: frozenset[str] = frozenset(), recipe_settings: bool = True
) -> None:
    """One flag per `TrainConfig` field (but `skip`) in its help section (`CONFIG_GROUPS`), then one per `Recipe`
    field (those override the --recipe). A field's `choices` metadata makes its flag take only those values."""
    from ..config import DATA_FIELDS, DEFAULT_RECIPE, DEVICES, TrainConfig
    from ..recipes import Recipe

    hints = get_type_hints(TrainConfig)
    own = [f for f in dataclasses.fields(TrainConfig) if f.name not in skip]
    where = {f.name: "data" if f.name in DATA_FIELDS else CONFIG_GROUPS.get(f.name, "training") for f in own}
    for f in own:
        section = group(parser, where[f.name])
        help_text = f.metadata.get("help", "")
        tp = scalar_type(hints[f.name])
        if f.name == "recipe":
            section.add_argument("--recipe", default=DEFAULT_RECIPE, help=help_text)
        elif tp is bool and f.default:  # on by default: --no-NAME turns it off
            section.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=True, help=help_text)
        elif tp is bool:
            section.add_argument(flag(f.name), action="store_true", help=help_text)
        elif f.name == "text_columns":
            section.add_argument("--text-columns", default=None, metavar="A[,B]",
                                 help=help_text + " Format: a or a,b.")  # fmt: skip
        elif f.name == "device":
            section.add_argument("--device", type=device_name, default=f.default,
                                 metavar="{" + ",".join(DEVICES) + "}", help=help_text)  # fmt: skip
        else:
            choices = f.metadata.get("choices")
            section.add_argument(flag(f.name), type=tp, default=f.default, choices=choices,
                                 metavar=None if choices else _metavar(f.name, tp), help=help_text)  # fmt: skip
    if not recipe_settings:
        return

    section = group(parser, "recipe")
    hints = get_type_hints(Recipe)
    for f in dataclasses.fields(Recipe):
        if f.name == "name":
            continue
        shown = _shown_default(f.default)  # None: the help says what an unset field means (lr: by the encoder)
        help_text = f.metadata.get("help", "") + ("" if shown is None else f" (recipe default: {shown})")
        tp = scalar_type(hints[f.name])
        if tp is bool:
            section.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.name == "betas":
            section.add_argument("--betas", type=pair, default=None, metavar="B1,B2",
                                 help=help_text + " Format: 0.9,0.999.")  # fmt: skip
        else:
            choices = f.metadata.get("choices")
            section.add_argument(flag(f.name), type=tp, default=None, choices=choices,
                                 metavar=None if choices else _metavar(f.name, tp), help=help_text)  # fmt: skip


def _metavar(name: str, tp: Any) -> str | None:
    """A flag's value placeholder: FILE, DIR, NAME, N for a count or seed; None keeps argparse's (the flag's name)."""
    if name.endswith("_file"):
        return "FILE"
    if name.endswith("_dir"):
        return "DIR"
    if name.endswith("_column"):
        return "NAME"
    if name == "dataset":
        return "NAME[:CONFIG]"
    return "N" if tp is int else None


def config_from_args(args: argparse.Namespace):
    from ..config import TrainConfig
    from ..recipes import Recipe

    own = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe) if f.name != "name"}
    return TrainConfig(**own).with_overrides(**{k: v for k, v in settings.items() if v is not None})


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where trials run (`study` and `fit`), in the "executor" section of --help."""
    p = group(parser, "executor")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes on this machine, or Ray tasks on a cluster (docs/ray.md)")  # fmt: skip
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local: trials run in parallel, each in its own process (default: one single-threaded "
                   "worker per core on CPU, as memory allows; one worker on a GPU)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="local: torch threads per worker (default: cores/workers)")  # fmt: skip
    p.add_argument("--ray-address", default=None, metavar="ADDRESS", help="ray: the cluster, 'auto' (started here "
                   "with `ray start`) or HOST:PORT (default: RAY_ADDRESS, else a cluster started here, else a new "
                   "local one)")  # fmt: skip
    p.add_argument("--gpus-per-trial", type=float, default=None, metavar="X",
                   help="ray: GPUs per trial; a fraction packs several trials on one GPU (default: 0)")  # fmt: skip
    p.add_argument("--cpus-per-trial", type=float, default=None, metavar="X",
                   help="ray: CPUs per trial, also its torch threads (default: 1)")  # fmt: skip
    p.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="ray: reruns of a trial whose worker died, then stored as an error (default: 3)")  # fmt: skip


# Most workers or threads a study may ask for: more than any machine has cores (torch takes a 32-bit count).
MOST_PROCESSES = 4096


# Most seeds `--seeds N` may ask for: each is a fine-tuning run per task and recipe, and the grid is built in memory.
MOST_SEEDS = 100_000


def check_executor_flags(args: argparse.Namespace) -> None:
    """The executor flags' upper bounds and finiteness (`study`, `fit`); the executors check their lower bounds."""
    import math

    from ..recipes import INT64_MAX

    for flag, value, most in (("--workers", args.workers, MOST_PROCESSES), ("--threads", args.threads,
                              MOST_PROCESSES), ("--max-retries", args.max_retries, INT64_MAX)):  # fmt: skip
        if value is not None and value > most:
            raise UserInputError(f"{flag} must be at most {most}, got {value}")
    for flag, value in (("--gpus-per-trial", args.gpus_per_trial), ("--cpus-per-trial", args.cpus_per_trial)):
        if value is not None and not math.isfinite(value):
            raise UserInputError(f"{flag} must be a finite number, got {value}")


def check_seeds(text: str) -> None:
    """--seeds within range (its form is `study.grid.parse_seeds`'s to check)."""
    from ..recipes import INT64_MAX

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return
    if len(values) == 1 and "," not in text and values[0] > MOST_SEEDS:
        raise UserInputError(f"--seeds {values[0]} is more than {MOST_SEEDS} runs per task and recipe; give fewer")
    if any(v > INT64_MAX for v in values):
        raise UserInputError(f"--seeds: a seed must be at most {INT64_MAX}, got {max(values)}")


def study_executor(args: argparse.Namespace) -> Executor:
    """The executor the flags ask for; flags of the other executor are an error, not silently ignored."""
    from ..study import LocalExecutor

    ray_flags = {"--ray-address": args.ray_address, "--gpus-per-trial": args.gpus_per_trial,
                 "--cpus-per-trial": args.cpus_per_trial, "--max-retries": args.max_retries}  # fmt: skip
    local_flags = {"--workers": args.workers, "--threads": args.threads}
    other = ray_flags if args.executor == "local" else local_flags
    given = [flag for flag, value in other.items() if value is not None]
    if given:
        use = "--executor ray" if args.executor == "local" else "--executor local (with ray: --cpus-per-trial)"
        raise UserInputError(f"{', '.join(given)} needs {use}; --executor is {args.executor!r}")
    if args.executor == "local":
        return LocalExecutor(args.workers, args.threads)  # None: steadytune.study.default_parallelism
    from ..ray_executor import DEFAULT_MAX_RETRIES, RayExecutor

    return RayExecutor(
        address=args.ray_address,
        gpus_per_trial=0.0 if args.gpus_per_trial is None else args.gpus_per_trial,
        cpus_per_trial=1.0 if args.cpus_per_trial is None else args.cpus_per_trial,
        max_retries=DEFAULT_MAX_RETRIES if args.max_retries is None else args.max_retries,
    )


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def check_before_trials(out: Path, *, device: str, model: str, max_length: int, trust_remote_code: bool) -> None:
    """What `study` and `fit` check before any data loads: the folder is writable and not in use by another
    writer (the store's lock), the device exists, and the model folder, its tokenizer and `max_length` fit."""
    from ..files import check_writable_folder
    from ..models import check_model, resolve_device
    from ..study.store import in_use

    check_writable_folder(out)  # the store (and a fit's candidates and model) go there
    # Resuming is not overwriting: a study or fit folder (its store or lock) is continued. Any other folder with
    # files in it is refused, so report.md, fit.json or model/ never land on top of someone else's files.
    if out.is_dir() and not any((out / n).exists() for n in ("study.sqlite", "study.lock")) and any(out.iterdir()):
        raise UserInputError(f"--out {out} holds files but is not a study or fit folder (no study.sqlite); name a "
                             "new or empty folder, or a study/fit folder to resume")  # fmt: skip
    holder = in_use(out)
    if holder is not None:
        raise UserInputError(f"{out} is in use by another steadytune process ({holder}); wait for it to finish "
                             "or stop it (report and export can read the folder meanwhile)")  # fmt: skip
    resolve_device(device)
    check_model(model, max_length=max_length, trust_remote_code=trust_remote_code)
