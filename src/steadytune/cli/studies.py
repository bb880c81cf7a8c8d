"""`steadytune study`, `report` and `export`: a grid of trials, its report and summary, its rows."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .args import check_before_trials, check_executor_flags, check_seeds, study_executor
from .runs import training_process

__all__ = ["cmd_export", "cmd_report", "cmd_study", "print_summary"]


def cmd_study(args: argparse.Namespace) -> int:
    from ..config import STUDY_SKIPS, TrainConfig
    from ..study import Study

    check_executor_flags(args)
    check_seeds(args.seeds)
    check_before_trials(args.out, device=args.device, model=args.model, max_length=args.max_length,
                        trust_remote_code=args.trust_remote_code)  # fmt: skip
    executor = study_executor(args)
    shared = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in STUDY_SKIPS}
    study = Study(args.out, tasks=args.tasks, recipes=args.recipes, seeds=args.seeds, new=args.new, **shared)
    if hasattr(executor, "connect"):
        executor.connect()  # a cluster that cannot be reached is an error before the study folder is written
    training_process()  # trials may run in this process
    counts = study.run(executor=executor, progress=not args.quiet)
    print(f"{counts['total']} trials: {counts['skipped']} already done, {counts['ran']} run now, "
          f"{counts['errors']} errors", file=sys.stderr)  # fmt: skip
    if counts["ran"] + counts["skipped"] > 0:
        md, html = study.report(reference=args.reference)
        print(f"report: {md} and {html}", file=sys.stderr)
        print_summary(study.summary(reference=args.reference))
    return 1 if counts["errors"] else 0


def print_summary(summary: list[dict[str, Any]]) -> None:
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


def cmd_report(args: argparse.Namespace) -> int:
    from ..files import check_writable_folder
    from ..stats import summarize
    from ..study import load_records, trial_rows, write_study_report

    if Path(args.study_dir).is_dir():  # report.md and report.html go there (a missing study is load_records' error)
        check_writable_folder(args.study_dir, what="study folder")
    md, html = write_study_report(args.study_dir, title=args.title, reference=args.reference)
    print(f"report: {md} and {html}", file=sys.stderr)
    print_summary(summarize(trial_rows(load_records(args.study_dir)), reference=args.reference))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..errors import UserInputError
    from ..files import check_output_file, check_stdout
    from ..study import export_rows

    suffix = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(Path(args.output or "").suffix.lower())
    fmt = args.format or suffix or "csv"
    if args.output is not None and str(args.output) != "-" and suffix is not None and suffix != fmt:
        raise UserInputError(f"--output {args.output} names a .{suffix} file but --format is {fmt}; make them agree")
    out = args.output or Path(args.study_dir) / f"trials.{fmt}"
    if str(out) == "-":  # standard output is never an existing file
        check_stdout(binary=fmt == "parquet")
    else:
        check_output_file(out, overwrite=args.overwrite)
    n = export_rows(args.study_dir, out, format=fmt)
    print(f"wrote {n} trials to {'standard output' if str(out) == '-' else out}", file=sys.stderr)
    return 0
