"""The `steadytune` command: `train`, `predict`, `study`, `report`, `export`, `recipes`, `audit`, `tasks`.

Bad input ends with one line on stderr and exit code 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from .errors import UserInputError

if TYPE_CHECKING:
    from .study import Executor

__all__ = ["main"]


EXIT_CODES = (
    "exit status: 0 done; 1 a study or fit with errored trials or no good candidate, or (audit) bias correction "
    "omitted; 2 bad input (a file, column, label, flag, path, model folder or store: one line on stderr naming "
    "it, nothing written); 3 the environment failed (disk full, out of memory: one line; what was committed "
    "before is intact, so free the resource and run the same command again); 130 interrupted. --debug shows the "
    "traceback of any error."
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit 2), like every other bad input; every command takes
    --debug and lists the exit codes in its --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EXIT_CODES)
        super().__init__(*args, **kwargs)
        # SUPPRESS: given before or after the command, it is set once and never reset to False by the other
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an error, show its full traceback (for bug reports)")  # fmt: skip

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    """An argparse type: an integer from 1 to 2**63 - 1."""
    from .recipes import INT64_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {INT64_MAX}, got {text}")
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return tp


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 0.9,0.999, got {text!r}") from None
    return a, b


def _add_config_arguments(
    parser: argparse.ArgumentParser, *, skip: frozenset[str] = frozenset(), recipe_settings: bool = True
) -> None:
    """One flag per `TrainConfig` field (but `skip`), then one per `Recipe` field (those override the --recipe)."""
    from .config import TrainConfig
    from .recipes import Recipe

    hints = get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        help_text = f.metadata.get("help", "")
        tp = _scalar_type(hints[f.name])
        if f.name == "recipe":
            parser.add_argument("--recipe", default="adam", help=help_text + " (default: adam)")
        elif tp is bool and f.default:  # on by default: --no-NAME turns it off
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=True, help=help_text)
        elif tp is bool:
            parser.add_argument(_flag(f.name), action="store_true", help=help_text)
        elif f.name == "text_columns":
            parser.add_argument("--text-columns", default=None, help=help_text + " Format: a or a,b.")
        else:
            default = f.default
            shown = f" (default: {default})" if default is not None else ""
            parser.add_argument(_flag(f.name), type=tp, default=default, help=help_text + shown)
    if not recipe_settings:
        return

    group = parser.add_argument_group("recipe settings", "Each overrides the same setting of --recipe.")
    hints = get_type_hints(Recipe)
    for f in dataclasses.fields(Recipe):
        if f.name == "name":
            continue
        help_text = f"{f.metadata.get('help', '')} (recipe default: {f.default})"
        tp = _scalar_type(hints[f.name])
        if tp is bool:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.name == "betas":
            group.add_argument("--betas", type=_pair, default=None, help=help_text + " Format: 0.9,0.999.")
        else:
            group.add_argument(_flag(f.name), type=tp, default=None, help=help_text)


def _config_from_args(args: argparse.Namespace):
    from .config import TrainConfig
    from .recipes import Recipe

    own = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe) if f.name != "name"}
    return TrainConfig(**own).with_overrides(**{k: v for k, v in settings.items() if v is not None})


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _result_table(result) -> str:
    cfg, data, m = result.config, result.data, result.metric
    sizes = data["sizes"]
    best, last = result.best, result.last
    rows = [
        ("task", f"{data['name']} ({m})  train {sizes['train']} / validation {sizes['validation']} / "
                 f"test {sizes['test']}"),
        ("model", cfg["model"]),
        ("recipe", f"{cfg['recipe']}  ({cfg['optimizer']}, lr {cfg['lr']:g}, batch {cfg['batch_size']})"),
        ("seeds", f"seed {cfg['seed']}  init_seed {cfg['init_seed']}  device {cfg['device']}"),
        ("steps", f"{result.steps} / {result.total_steps}"),
        (f"best (step {best['step']})",
         f"validation {_fmt((best['validation'] or {}).get(m))}  test {_fmt(result.test_best)}"),
        (f"last (step {last['step']})",
         f"validation {_fmt((last['validation'] or {}).get(m))}  test {_fmt(result.test_last)}"),
        ("majority baseline", f"test {_fmt(result.majority_baseline)}"),
        ("failed / diverged", f"{'yes' if result.failed else 'no'} / {'yes' if result.diverged else 'no'}"),
        ("wall time", f"{result.timings['wall_s']:.1f} s (train {result.timings['train_s']:.1f} s, "
                      f"eval {result.timings['eval_s']:.1f} s)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _check_before_work(config, *, out: Path | None, overwrite: bool) -> None:
    """What a run needs that can be checked before any data loads: the output folder (`files.check_output_folder`),
    the device, and the model (its folder's files, its tokenizer, max_length against its positions)."""
    from .files import check_output_folder
    from .models import check_model, resolve_device

    if out is not None:
        check_output_folder(out, overwrite=overwrite)
    resolve_device(config.device)
    check_model(config.model, max_length=config.max_length, trust_remote_code=config.trust_remote_code)


# Most workers or threads a study may ask for: more than any machine has cores (torch takes a 32-bit count).
_MOST_PROCESSES = 4096
# Most seeds `--seeds N` may ask for: each is a fine-tuning run per task and recipe, and the grid is built in memory.
_MOST_SEEDS = 100_000


def _check_executor_flags(args: argparse.Namespace) -> None:
    """The executor flags' upper bounds and finiteness (`study`, `fit`); the executors check their lower bounds."""
    import math

    from .recipes import INT64_MAX

    for flag, value, most in (("--workers", args.workers, _MOST_PROCESSES), ("--threads", args.threads,
                              _MOST_PROCESSES), ("--max-retries", args.max_retries, INT64_MAX)):  # fmt: skip
        if value is not None and value > most:
            raise UserInputError(f"{flag} must be at most {most}, got {value}")
    for flag, value in (("--gpus-per-trial", args.gpus_per_trial), ("--cpus-per-trial", args.cpus_per_trial)):
        if value is not None and not math.isfinite(value):
            raise UserInputError(f"{flag} must be a finite number, got {value}")


def _check_seeds(text: str) -> None:
    """--seeds within range (its form is `study.grid.parse_seeds`'s to check)."""
    from .recipes import INT64_MAX

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return
    if len(values) == 1 and "," not in text and values[0] > _MOST_SEEDS:
        raise UserInputError(f"--seeds {values[0]} is more than {_MOST_SEEDS} runs per task and recipe; give fewer")
    if any(v > INT64_MAX for v in values):
        raise UserInputError(f"--seeds: a seed must be at most {INT64_MAX}, got {max(values)}")


def _training_process() -> None:
    """This process exists to train: glibc keeps the memory it frees for the next step (process-wide, so the CLI
    and worker processes set it, never the library: a notebook calling `steadytune.train` keeps its allocator)."""
    from .fastpath import retain_freed_memory

    retain_freed_memory()


def _cmd_train(args: argparse.Namespace) -> int:
    from .trainer import train

    config = _config_from_args(args)
    if config.save_model and args.out is None:
        raise UserInputError("--save-model needs --out DIR")
    _check_before_work(config, out=args.out, overwrite=args.overwrite)
    _training_process()
    result = train(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet,
                   checkpoint_every=args.checkpoint_every, resume=args.resume)  # fmt: skip
    if args.json:
        from .files import to_json

        sys.stdout.write(to_json(result.metrics_dict() | {"config": result.config}))
    else:
        print(_result_table(result))
        if args.out:
            print(f"{'written to':<17}  {args.out}")
    warning = _run_warning(result)
    if warning:
        print(f"steadytune train: warning: {warning}", file=sys.stderr)
    return 0


# A run whose training loss over its last tenth of steps is above 95% of its first tenth's barely moved: a run that
# learned ends well below its start (RTE-1k, all-MiniLM-L6-v2 at lr 1e-4: 0.69 -> ~0.3), one that did not stays
# within a few percent of ln 2 (the same at lr 2e-5: 0.693 -> 0.690).
_STALLED_SHARE = 0.95


def _run_warning(result) -> str | None:
    """One line when a run failed or its training loss barely moved; None otherwise."""
    advice = ("try `steadytune fit` (several seeds and learning rates, the bad ones dropped early) or a higher "
              "learning rate (--lr 1e-4)")  # fmt: skip
    if result.failed:
        why = {"diverged": "the run diverged", "collapsed": "the run collapsed to predicting the mean"}.get(
            result.failure or "",
            f"the run failed: test {result.metric} {_fmt(result.test_last)} is no better than "
            f"the best constant predictor's {_fmt((result.baseline or {}).get('score', result.majority_baseline))}",
        )
        return f"{why}; {advice}"
    losses = [p["loss"] for p in result.curve if p["loss"] is not None]
    window = max(1, len(losses) // 10)
    if len(losses) >= 2 * window and sum(losses[-window:]) >= _STALLED_SHARE * sum(losses[:window]):
        first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
        return f"the training loss barely moved ({first:.4f} at the start, {last:.4f} at the end); {advice}"
    return None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.25,0.5, got {text!r}") from None


def _cmd_fit(args: argparse.Namespace) -> int:
    from .fit import FitSettings, fit

    config = _config_from_args(args)
    settings = FitSettings(candidates=args.candidates, lrs=args.lrs, check_at=args.check_at, keep=args.keep)
    executor = _study_executor(args)
    if hasattr(executor, "connect"):
        executor.connect()
    _training_process()
    result = fit(config, args.out, settings=settings, executor=executor, new=args.new, progress=not args.quiet)
    if args.json:
        from .files import to_json

        sys.stdout.write(to_json(result.to_dict()))
    else:
        print(_fit_table(result))
    if not result.success:
        print("steadytune fit: no candidate beat the best constant predictor on validation; try more candidates "
              "(--candidates), higher learning rates (--lrs), re-initialising the top layers (--recipe "
              "adam+reinit:2) or longer training (--epochs)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _fit_table(result) -> str:
    m = result.metric
    header = ("candidate", "seed", "lr", "at the checks (validation / loss)", "outcome", f"val {m}", f"test {m}")
    rows = []
    for c in result.candidates:
        checks = "  ".join(f"{_fmt(k.get('validation'))}/{_fmt(k.get('loss'))}" for k in c["checks"] if "loss" in k)
        best = c.get("best") or {}
        outcome = "CHOSEN" if c["name"] == result.chosen else c["status"]
        if c["reason"]:
            outcome += f": {c['reason']}"
        rows.append((c["name"], str(c["seed"]), f"{c['lr']:g}", checks or "-", outcome,
                     _fmt((best.get("validation") or {}).get(m)), _fmt((best.get("test") or {}).get(m))))  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    base = result.baselines["test"]
    lines += ["", f"verdict: {result.verdict}",
              f"test {m} of the choice: {_fmt((result.test or {}).get(m))} (best constant predictor: "
              f"{_fmt(base['score'])}, {base['predictor']})",
              f"compute: {result.steps} training steps ({result.steps / max(1, result.full_steps):.0%} of running "
              f"every candidate to the end)"]  # fmt: skip
    return "\n".join(lines)


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict_file

    n = predict_file(args.model, args.input, args.output, text_columns=args.text_columns,
                     batch_size=args.batch_size, device=args.device, overwrite=args.overwrite,
                     allow_pickle=args.allow_pickle)  # fmt: skip
    print(f"wrote {n} predictions to {args.output}", file=sys.stderr)
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from .data import GLUE_TASKS

    rows = [(t.name, t.folder, t.metric, "regression" if t.is_regression else " / ".join(t.label_names),
             t.description) for t in GLUE_TASKS.values()]  # fmt: skip
    if args.json:
        print(json.dumps([dict(zip(("name", "folder", "metric", "labels", "description"), r)) for r in rows],
                         indent=2))  # fmt: skip
        return 0
    header = ("task", "folder", "metric", "labels", "description")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(f"{str(c):<{w}}" for c, w in zip(r, widths)).rstrip())
    return 0


def _option(text: str) -> tuple[str, Any]:
    """KEY=VALUE with a Python literal value (`momentum=0.9`, `amsgrad=True`, `betas=(0.9,0.98)`)."""
    import ast

    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw  # a bare word: keep it as a string


def _cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit_optimizer, resolve_optimizer

    given = {"lr": args.lr, "betas": args.betas, "eps": args.eps, "weight_decay": args.weight_decay}
    hyperparameters = {k: v for k, v in given.items() if v is not None} | dict(args.option)
    if args.recipe is not None:
        if args.optimizer is not None or hyperparameters:
            raise UserInputError("give an optimizer with its options, or --recipe (whose settings are its own)")
        from .recipes import Recipe

        recipe = Recipe.parse(args.recipe)
        factory, hyperparameters = recipe.optimizer_class, recipe.optimizer_kwargs()
    elif args.optimizer is None:
        raise UserInputError("name an optimizer (e.g. torch.optim.AdamW) or give --recipe")
    else:
        factory = resolve_optimizer(args.optimizer)
    report = audit_optimizer(factory, **hyperparameters)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
        if args.recipe is not None and hyperparameters.get("prior_weight_decay"):
            print("Note: this recipe decays toward the weights of the first step (pre-trained weight decay), which "
                  "the probes start from, so they see no decay.")  # fmt: skip
    return report.exit_code


def _study_executor(args: argparse.Namespace) -> Executor:
    """The executor the flags ask for; flags of the other executor are an error, not silently ignored."""
    from .study import LocalExecutor

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
    from .ray_executor import DEFAULT_MAX_RETRIES, RayExecutor

    return RayExecutor(
        address=args.ray_address,
        gpus_per_trial=0.0 if args.gpus_per_trial is None else args.gpus_per_trial,
        cpus_per_trial=1.0 if args.cpus_per_trial is None else args.cpus_per_trial,
        max_retries=DEFAULT_MAX_RETRIES if args.max_retries is None else args.max_retries,
    )


def _cmd_study(args: argparse.Namespace) -> int:
    from .config import STUDY_SKIPS, TrainConfig
    from .files import check_writable_folder
    from .models import check_model, resolve_device
    from .study import Study
    from .study.store import in_use

    _check_executor_flags(args)
    _check_seeds(args.seeds)
    check_writable_folder(args.out)  # before any data loads: the store goes there
    holder = in_use(args.out)
    if holder is not None:
        raise UserInputError(f"{args.out} is in use by another steadytune process ({holder}); wait for it to finish "
                             "or stop it (report and export can read the folder meanwhile)")  # fmt: skip
    resolve_device(args.device)
    check_model(args.model, max_length=args.max_length, trust_remote_code=args.trust_remote_code)
    executor = _study_executor(args)
    shared = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in STUDY_SKIPS}
    study = Study(args.out, tasks=args.tasks, recipes=args.recipes, seeds=args.seeds, new=args.new, **shared)
    if hasattr(executor, "connect"):
        executor.connect()  # a cluster that cannot be reached is an error before the study folder is written
    _training_process()  # trials may run in this process
    counts = study.run(executor=executor, progress=not args.quiet)
    print(f"{counts['total']} trials: {counts['skipped']} already done, {counts['ran']} run now, "
          f"{counts['errors']} errors", file=sys.stderr)  # fmt: skip
    if counts["ran"] + counts["skipped"] > 0:
        md, html = study.report(reference=args.reference)
        print(f"report: {md} and {html}", file=sys.stderr)
        _print_summary(study.summary(reference=args.reference))
    return 1 if counts["errors"] else 0


def _print_summary(summary: list[dict[str, Any]]) -> None:
    """Per task a table of its recipes: n, best and last test metric (mean ± std, * where the report bolds it),
    failures, and each test's p-value with its Holm-adjusted value in brackets (or why there is none)."""
    if not summary:
        return
    short = {"reference": "ref", "best": "best", "n < 2": "n<2", "constant": "const", "no reference runs": "no ref"}

    def pm(mean: float | None, std: float | None) -> str:
        return "-" if mean is None else f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"

    def p(s: dict[str, Any], test: str) -> str:
        def three(x: float) -> str:  # three decimals, as in the report; "<.001" below that
            return "<.001" if x < 0.001 else f"{x:.3f}"

        raw, adjusted, why = s[f"{test}_p"], s[f"{test}_holm"], s[f"{test}_why"]
        return f"- ({short.get(why, why)})" if raw is None else f"{three(raw)} ({three(adjusted)})"

    header = ("recipe", "n", "test best ckpt", "test last ckpt", "failed", "Welch (Holm)", "Levene (Holm)",
              "Fisher (Holm)")  # fmt: skip
    first = summary[0]
    for task in dict.fromkeys(s["task"] for s in summary):
        entries = [s for s in summary if s["task"] == task]
        e, res = entries[0], entries[0]["resolution"]
        resolves = "-" if res["threshold"] is None else f"{res['threshold']:.4f}"
        print(f"{task}: {e['metric']}, test n {e['test_size'] or '-'}; failure line {e['baseline']:.4f} "
              f"({e['baseline_predictor'] or 'best constant'}); p < {e['alpha']:g} from {resolves}")  # fmt: skip
        rows = [(s["recipe"], str(s["n"]), pm(s["best_mean"], s["best_std"]) + (" *" if s["bold"] else ""),
                 pm(s["last_mean"], s["last_std"]), f"{s['failed']}/{s['n']} {s['failure_rate']:.0%}",
                 p(s, "welch"), p(s, "levene"), p(s, "fisher")) for s in entries]  # fmt: skip
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            print("  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip())
    print(f"reference recipe (Levene, Fisher): {first['reference']}. Welch: one-sided, the task's best recipe scores "
          "higher (best ckpt);\nFisher: one-sided, more failures than the reference; (Holm): adjusted within the "
          f"task and test. *: the best mean and\nevery recipe whose mean is above that of every recipe significantly "
          f"worse than the best (Welch Holm < {first['alpha']:g}).")  # fmt: skip


def _cmd_report(args: argparse.Namespace) -> int:
    from .files import check_writable_folder
    from .stats import summarize
    from .study import load_records, trial_rows, write_study_report

    if Path(args.study_dir).is_dir():  # report.md and report.html go there (a missing study is load_records' error)
        check_writable_folder(args.study_dir, what="study folder")
    md, html = write_study_report(args.study_dir, title=args.title, reference=args.reference)
    print(f"report: {md} and {html}", file=sys.stderr)
    _print_summary(summarize(trial_rows(load_records(args.study_dir)), reference=args.reference))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .files import check_output_file
    from .study import export_rows

    out = args.output or Path(args.study_dir) / f"trials.{args.format}"
    check_output_file(out, overwrite=True)
    n = export_rows(args.study_dir, out, format=args.format)
    print(f"wrote {n} trials to {out}", file=sys.stderr)
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import PRESETS, Recipe

    if args.recipe:  # expand the given recipes to every field
        recipes = [Recipe.parse(text) for text in args.recipe]
        if args.json:
            print(json.dumps([r.to_dict() for r in recipes], indent=2))
            return 0
        for r in recipes:
            print(r.name)
            for f in dataclasses.fields(r):
                if f.name != "name":
                    mark = "*" if f.name in r.changes() else " "
                    print(f"  {mark} {f.name:<20} {getattr(r, f.name)!r}")
        return 0
    rows = []
    for name, preset in PRESETS.items():
        usage = name if preset.arg is None else f"{name}[:{preset.metavar}]"
        sets = {**preset.sets, **({preset.arg: preset.default} if preset.arg else {})}
        rows.append({"preset": usage, "expands to": ", ".join(f"{k}={v!r}" for k, v in sets.items()),
                     "what": preset.summary, "source": preset.source})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["preset"]) for r in rows)
    for r in rows:
        print(f"{r['preset']:<{width}}  {r['expands to']}\n{'':<{width}}  {r['what']}\n{'':<{width}}  "
              f"source: {r['source']}")  # fmt: skip
    print(
        "\nJoin presets with '+', give a preset's value after ':', set any field with field=value, e.g.\n"
        "  adam+reinit:2   bertadam+lr=5e-5+batch_size=16   adam+llrd:0.9+longer:800\n"
        "`steadytune recipes RECIPE` shows every field of a recipe (* marks a change from the defaults)."
    )
    return 0


def _add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """Where trials run (`study` and `fit`)."""
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where trials run: local processes, or Ray tasks (docs/ray.md) (default: local)")  # fmt: skip
    p.add_argument("--workers", type=int, default=None,
                   help="local: trials run in parallel, each in its own process (default: one single-threaded "
                   "worker per core on CPU, as memory allows; one worker on a GPU)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="local: torch threads per worker (default: cores/workers)")  # fmt: skip
    p.add_argument("--ray-address", default=None, help="ray: the cluster, 'auto' (started here with `ray start`) or "
                   "HOST:PORT (default: RAY_ADDRESS, else a cluster started here, else a new local one)")  # fmt: skip
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="ray: GPUs per trial; a fraction packs several trials on one GPU (default: 0)")  # fmt: skip
    p.add_argument("--cpus-per-trial", type=float, default=None,
                   help="ray: CPUs per trial, also its torch threads (default: 1)")  # fmt: skip
    p.add_argument("--max-retries", type=int, default=None,
                   help="ray: reruns of a trial whose worker died, then stored as an error (default: 3)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from .config import STUDY_SKIPS

    parser = _Parser(prog="steadytune", description="Stable few-sample fine-tuning of BERT-style encoders.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "train",
        help="fine-tune once and print the result",
        description="Fine-tune a pre-trained encoder on a GLUE task or your own data, once.",
    )
    _add_config_arguments(p)
    p.add_argument("--out", type=Path, help="write config.json, metrics.json, curve.jsonl (and the model) here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="save the run's whole state every N steps beside --out (DIR.checkpoint.pt; removed when the "
                        "run is done)")  # fmt: skip
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint beside --out when there is one (the same trajectory as an "
                        "uninterrupted run); start afresh when there is none")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "fit",
        help="start several candidates, drop the bad ones early, finish the best, and say how it went",
        description="Start --candidates (seed, learning rate) pairs, judge them at --check-at fractions of the "
        "budget, continue the best --keep to the end, and save the best validation checkpoint to <out>/model "
        "with a model card. Exit 0: the chosen model beats every constant predictor on validation by more than "
        "chance; 1: no candidate does; 2: bad input. Rerunning the same command resumes a killed fit.",
    )
    _add_config_arguments(p, skip=frozenset({"save_model", "init_seed"}))
    p.add_argument("--candidates", type=int, default=9, help="candidates to start (default: 9)")
    p.add_argument("--lrs", type=_floats, default=(2e-5, 5e-5, 1e-4),
                   help="learning rates the candidates spread over (default: 2e-5,5e-5,1e-4)")  # fmt: skip
    p.add_argument("--check-at", type=_floats, default=(0.25, 0.5),
                   help="fractions of the budget at which candidates are judged (default: 0.25,0.5)")  # fmt: skip
    p.add_argument("--keep", type=int, default=2, help="candidates that continue to the end (default: 2)")
    p.add_argument("--out", type=Path, required=True, help="the fit folder: model/, fit.json, the candidates")
    _add_executor_arguments(p)
    p.add_argument("--new", action="store_true", help="start over in an existing fit folder (old store kept)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("predict", help="run a saved model over a file",
                       description="Predict with a model saved by `steadytune train --save-model`.")  # fmt: skip
    p.add_argument("--model", required=True, help="the saved model folder (<out>/model)")
    p.add_argument("--input", required=True, type=Path, help="CSV, TSV or JSONL with the text column(s)")
    p.add_argument("--output", required=True, type=Path, help="predictions file; format from its extension")
    p.add_argument("--text-columns", default=None, help="text column(s) of the input (default: as in training)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--device", default="auto", help="cuda, cpu, or auto")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--allow-pickle", action="store_true", help="load a model folder that has only pickle weights "
                   "(pytorch_model.bin), with torch.load(weights_only=True); only for files you trust")  # fmt: skip
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "study",
        help="run a resumable grid of tasks × recipes × seeds and report it",
        description="Run every (task, recipe, seed) trial, store each in <out>/study.sqlite as it finishes, and "
        "write report.md/report.html. Rerunning the same command resumes: finished trials are skipped.",
    )
    p.add_argument("--tasks", help="GLUE presets, comma-separated (or give --train-file for your own data)")
    p.add_argument("--recipes", default="bertadam,adam", help="recipes, comma-separated (default: bertadam,adam)")
    p.add_argument("--seeds", default="5", help="a count N (seeds 0..N-1) or a list like 3,7,9 (default: 5)")
    p.add_argument("--out", type=Path, required=True, help="the study folder")
    _add_executor_arguments(p)
    p.add_argument("--new", action="store_true", help="start over in an existing study folder (old store kept)")
    p.add_argument("--reference", default=None, metavar="RECIPE",
                   help="the recipe the report's variance (Levene) and failure-rate (Fisher) tests compare with "
                   "(default: the study's first bias-corrected recipe, optimizer adamw)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-trial lines")
    _add_config_arguments(p, skip=STUDY_SKIPS, recipe_settings=False)
    p.set_defaults(func=_cmd_study)

    p = sub.add_parser("report", help="(re)write a study's report", description="Write report.md and report.html "
                       "of a study folder from the trials it holds now.")  # fmt: skip
    p.add_argument("study_dir", type=Path)
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--reference", default=None, metavar="RECIPE",
                   help="the recipe the variance (Levene) and failure-rate (Fisher) tests compare with (default: "
                   "the study's first bias-corrected recipe, optimizer adamw)")  # fmt: skip
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("export", help="write a study's trials as CSV or Parquet",
                       description="One row per finished trial: scores, flags, timings, config.")  # fmt: skip
    p.add_argument("study_dir", type=Path)
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--output", type=Path, default=None, help="default: <study_dir>/trials.<format>")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "audit",
        help="tell whether an optimizer is BERTAdam (Adam without bias correction)",
        description="Probe an optimizer on synthetic parameters and report whether it applies Adam's bias "
        "correction (Zhang et al. 2021, §4), how it decays weights, where eps sits and its betas. Exit code 0: "
        "bias-corrected or not Adam-like; 1: bias correction omitted; 2: bad input.",
    )
    p.add_argument("optimizer", nargs="?", help="an importable class or callable: torch.optim.AdamW, pkg.mod:Cls")
    p.add_argument("--recipe", help="audit a recipe's optimizer instead, e.g. adam+llrd or bertadam")
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default: the optimizer's)")
    p.add_argument("--betas", type=_pair, help="betas, e.g. 0.9,0.999 (default: the optimizer's)")
    p.add_argument("--eps", type=float, help="epsilon (default: the optimizer's)")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="any other constructor keyword, e.g. --option correct_bias=False (repeatable)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("recipes", help="list the recipe presets, or expand recipes",
                       description="List the recipe presets, or show every field of the given recipes.")  # fmt: skip
    p.add_argument("recipe", nargs="*", help="recipes to expand, e.g. adam+reinit:2")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("tasks", help="list the GLUE presets", description="List the GLUE task presets.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_cmd_tasks)
    return parser


def _known_failure(error: BaseException) -> tuple[int, str] | None:
    """(exit code, message) of a failure that is not a bug: bad input, or the environment failing; None for
    anything else (a bug, which keeps its traceback)."""
    from .errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EnvironmentFailure, is_disk_full

    if isinstance(error, UserInputError):
        return EXIT_BAD_INPUT, str(error)
    if isinstance(error, EnvironmentFailure):
        return EXIT_ENVIRONMENT, str(error)
    if is_disk_full(error):
        where = getattr(error, "filename", None)
        writing = f" (writing {where})" if where else ""
        return EXIT_ENVIRONMENT, f"the disk is full{writing}; free some space and run the same command again"
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":  # torch's, CPU or CUDA
        return EXIT_ENVIRONMENT, "out of memory; try a smaller --batch-size or --max-length, or fewer --workers"
    if isinstance(error, OSError) and error.filename is not None:  # a path the user gave or a folder it is in
        names = " and ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        return EXIT_BAD_INPUT, f"{names}: {error.strerror or error}"
    return None


def main(argv: list[str] | None = None) -> int:
    """The `steadytune` command. The one error boundary: bad input ends with one line on stderr and exit 2, an
    environment failure (disk full, out of memory) with one line and exit 3; a bug keeps its traceback, and with
    --debug every error shows it."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("steadytune: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        known = _known_failure(e)
        if known is None:
            raise  # a bug: the traceback is what a report needs
        if debug:
            import traceback

            traceback.print_exc()
        code, message = known
        print(f"steadytune {args.command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
