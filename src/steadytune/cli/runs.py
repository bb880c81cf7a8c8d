"""`steadytune train`, `fit` and `predict`: one run, a search over candidates, predictions from a saved model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserInputError
from ..recipes import NARROW_LR
from .args import check_before_trials, check_executor_flags, config_from_args, fmt, study_executor

__all__ = [
    "STALLED_SHARE",
    "check_before_work",
    "check_push_flags",
    "cmd_fit",
    "cmd_predict",
    "cmd_train",
    "fit_table",
    "push_model",
    "result_table",
    "run_warning",
    "training_process",
]


def check_before_work(config, *, out: Path | None, overwrite: bool) -> None:
    """What a run needs that can be checked before any data loads: the output folder (`files.check_output_folder`),
    the device, and the model (its folder's files, its tokenizer, max_length against its positions)."""
    from ..files import check_output_folder
    from ..models import check_model, resolve_device

    if out is not None:
        check_output_folder(out, overwrite=overwrite)
    resolve_device(config.device)
    check_model(config.model, max_length=config.max_length, trust_remote_code=config.trust_remote_code)


def training_process() -> None:
    """This process exists to train: glibc keeps the memory it frees for the next step (process-wide, so the CLI
    and worker processes set it, never the library: a notebook calling `steadytune.train` keeps its allocator)."""
    from ..fastpath import retain_freed_memory

    retain_freed_memory()


def cmd_train(args: argparse.Namespace) -> int:
    from ..trainer import train

    config = config_from_args(args)
    if config.save_model and args.out is None:
        raise UserInputError("--save-model needs --out DIR")
    if args.push_to_hub is not None and not (config.save_model and args.out is not None):
        raise UserInputError("--push-to-hub needs --save-model and --out DIR (it uploads <out>/model)")
    check_push_flags(args)
    check_before_work(config, out=args.out, overwrite=args.overwrite)
    training_process()
    result = train(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet,
                   checkpoint_every=args.checkpoint_every, resume=args.resume)  # fmt: skip
    if args.json:
        from ..files import to_json

        sys.stdout.write(to_json(result.metrics_dict() | {"config": result.config}))
    else:
        print(result_table(result))
        if args.out:
            print(f"{'written to':<17}  {args.out}")
    warning = run_warning(result)
    if warning:
        print(f"steadytune train: warning: {warning}", file=sys.stderr)
    if args.push_to_hub is not None:
        if not (args.out / "model").is_dir():  # a run that diverged before its first evaluation has no model to save
            print("steadytune train: warning: no model was saved (the run diverged before its first evaluation); "
                  f"nothing pushed to {args.push_to_hub}", file=sys.stderr)  # fmt: skip
            return 1
        if result.failed or result.diverged:  # a model no better than a constant is not one to publish
            how = "diverged" if result.diverged else "failed"
            print(f"steadytune train: nothing pushed to {args.push_to_hub}: the run {how}; "
                  f"`hf upload {args.push_to_hub} {args.out / 'model'} .` pushes it anyway",
                  file=sys.stderr)  # fmt: skip
            return 1
        push_model(args, args.out / "model", "steadytune train")
    return 1 if result.failed or result.diverged else 0  # no better than a constant: not a model to use


def check_push_flags(args: argparse.Namespace) -> None:
    """--push-to-hub's checks before any work (`push.check_push`); --hub-private only with it."""
    if args.push_to_hub is None:
        if args.hub_private:
            raise UserInputError("--hub-private needs --push-to-hub REPO")
        return
    from ..push import check_push

    check_push(args.push_to_hub)


def push_model(args: argparse.Namespace, folder: Path, command: str) -> None:
    """Upload a saved model folder to --push-to-hub's repository; say where (stderr with --json)."""
    from ..push import push_folder

    url = push_folder(folder, args.push_to_hub, private=True if args.hub_private else None,
                      message=f"Upload {folder.name} from `{command}`")  # fmt: skip
    if args.json:
        print(f"{command}: pushed {folder} to {url}", file=sys.stderr)
    else:
        print(f"{'pushed to':<17}  {url}")


# A run whose training loss over its last tenth of steps is above 95% of its first tenth's barely moved: a run that
# learned ends well below its start (RTE-1k, all-MiniLM-L6-v2 at lr 1e-4: 0.69 -> ~0.3), one that did not stays
# within a few percent of ln 2 (the same at lr 2e-5: 0.693 -> 0.690).
STALLED_SHARE = 0.95


def run_warning(result) -> str | None:
    """One line when a run failed or its training loss barely moved; None otherwise."""
    advice = "try `steadytune fit` (several seeds and learning rates, the bad ones dropped early)"
    if result.config.get("lr", NARROW_LR) < NARROW_LR:
        advice += f" or a higher learning rate (--lr {NARROW_LR:g})"
    if result.failed:
        why = {"diverged": "the run diverged", "collapsed": "the run collapsed to predicting the mean"}.get(
            result.failure or "",
            f"the run failed: test {result.metric} {fmt(result.test_last)} is no better than "
            f"the best constant predictor's {fmt((result.baseline or {}).get('score', result.majority_baseline))}",
        )
        return f"{why}; {advice}"
    losses = [p["loss"] for p in result.curve if p["loss"] is not None]
    window = max(1, len(losses) // 10)
    if len(losses) >= 2 * window and sum(losses[-window:]) >= STALLED_SHARE * sum(losses[:window]):
        first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
        return f"the training loss barely moved ({first:.4f} at the start, {last:.4f} at the end); {advice}"
    return None


def result_table(result) -> str:
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
         f"validation {fmt((best['validation'] or {}).get(m))}  test {fmt(result.test_best)}"),
        (f"last (step {last['step']})",
         f"validation {fmt((last['validation'] or {}).get(m))}  test {fmt(result.test_last)}"),
        ("majority baseline", f"test {fmt(result.majority_baseline)}"),
        ("failed / diverged", f"{'yes' if result.failed else 'no'} / {'yes' if result.diverged else 'no'}"),
        ("wall time", f"{result.timings['wall_s']:.1f} s (train {result.timings['train_s']:.1f} s, "
                      f"eval {result.timings['eval_s']:.1f} s)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cmd_fit(args: argparse.Namespace) -> int:
    from ..fitting import FitSettings, fit

    config = config_from_args(args)
    settings = FitSettings(candidates=args.candidates, lrs=args.lrs, reinit=args.reinit, check_at=args.check_at,
                           keep=args.keep, families=args.families,
                           cross_validate_below=args.cross_validate_below)  # fmt: skip
    check_executor_flags(args)
    check_push_flags(args)
    check_before_trials(args.out, device=config.device, model=config.model, max_length=config.max_length,
                        trust_remote_code=config.trust_remote_code)  # fmt: skip
    executor = study_executor(args)
    if hasattr(executor, "connect"):
        executor.connect()
    training_process()
    result = fit(config, args.out, settings=settings, executor=executor, new=args.new, progress=not args.quiet,
                 keep_checkpoints=args.keep_checkpoints, keep_candidates=args.keep_candidates)  # fmt: skip
    if args.json:
        from ..files import to_json

        sys.stdout.write(to_json(result.to_dict()))
    else:
        print(fit_table(result))
    if not result.success:
        unpushed = f"; nothing was pushed to {args.push_to_hub}" if args.push_to_hub is not None else ""
        print(f"steadytune fit: {result.why_no(args.out)}{unpushed}", file=sys.stderr)
        return 1
    if args.push_to_hub is not None:
        push_model(args, Path(args.out) / "model", "steadytune fit")
    return 0


def _outcome(c: dict, chosen: str | None) -> tuple[str, list[str]]:
    """A candidate's outcome in a few words, and the flags among them: the flags or the rank that dropped it, or
    its full reason."""
    from ..fitting import FLAG_WORDS

    if c["name"] == chosen:
        return "CHOSEN", []
    last = c["checks"][-1] if c["checks"] else {}
    if c["status"] == "dropped" and "flags" in last and "of" in last:  # records before 0.8.1 keep the sentence
        why = ", ".join(FLAG_WORDS[f][0] for f in last["flags"]) or f"ranked {last['rank']} of {last['of']}"
        return f"dropped at step {last['step']}: {why}", last["flags"]
    return (f"{c['status']}: {c['reason']}" if c["reason"] else c["status"]), []


def fit_table(result) -> str:
    m = result.metric
    header = ("candidate", "seed", "lr", "at the checks (validation / loss)", "outcome", f"val {m}", f"test {m}")
    from ..fitting import FLAG_WORDS

    rows, shown = [], set()
    small = ((getattr(result, "judgement", None) or {}).get("split") == "cross-validated")  # fmt: skip
    if small:  # a small file: each family cross-validated over every row, picked on the folds they share
        header = ("family", "outcome", f"cross-validated {m}", "on the same folds (chooses)", "p")
    for c in result.candidates if small else []:
        cv = c.get("cv") or {}
        own = f"{fmt(cv.get('score'))} ({cv['folds']}-fold)" if "folds" in cv else "-"
        p = "-" if cv.get("p") is None else f"{cv['p']:.2g}"
        rows.append((c["name"], _outcome(c, result.chosen)[0], own, fmt(cv.get("compare")), p))
    for c in [] if small else result.candidates:
        checks = "  ".join(f"{fmt(k.get('validation'))}/{fmt(k.get('loss'))}" for k in c["checks"] if "loss" in k)
        best = c.get("best") or {}
        outcome, flags = _outcome(c, result.chosen)
        shown.update(flags)
        lr = f"{c['lr']:g}" if c.get("family", "finetune") == "finetune" else "-"
        rows.append((c["name"], str(c["seed"]), lr, checks or "-", outcome,
                     fmt((best.get("validation") or {}).get(m)), fmt((best.get("test") or {}).get(m))))  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    if shown:
        legend = [f"{words}: {meaning}" for flag, (words, meaning) in FLAG_WORDS.items() if flag in shown]
        lines.append("; ".join(legend) + "; every check is in fit.json")
    base = result.baselines["test"]
    judged = getattr(result, "judgement", None) or {}
    pair_steps = sum(c.get("steps", 0) for c in result.candidates if c.get("family") == "contrastive")
    lpft_steps = sum(c.get("steps", 0) for c in result.candidates if c.get("family") == "lp-ft")
    if result.full_steps:
        steps = result.steps - pair_steps - lpft_steps
        compute = (f"compute: {steps} training steps ({steps / result.full_steps:.0%} of running every fine-tuning "
                   "candidate to the end)")  # fmt: skip
    else:
        compute = "compute: no fine-tuning steps"
    if pair_steps:
        compute += f"; {pair_steps} contrastive pair steps"
    if lpft_steps:
        compute += f"; {lpft_steps} LP-FT steps"
    if judged.get("split") == "cross-validated":  # a small file: the scores above are cross-validated over every row
        choice = f"cross-validated {m} of the choice: {fmt((result.test or {}).get(m))} over {judged['n']} rows"
    else:
        choice = (f"test {m} of the choice: {fmt((result.test or {}).get(m))} (best constant predictor: "
                  f"{fmt(base['score'])}, {base['predictor']})")  # fmt: skip
    picked = getattr(result, "choice", "")  # a small file's pick, when not simply the best on the shared folds
    lines += ["", *([f"chosen: {picked}"] if picked else []), f"verdict: {result.verdict}",
              *([f"corrected for: {judged['corrected_for']}"] if judged else []),
              choice, compute]  # fmt: skip
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    from ..inference import predict_file

    n = predict_file(args.model, args.input, args.output, text_columns=args.text_columns,
                     batch_size=args.batch_size, device=args.device, overwrite=args.overwrite,
                     allow_pickle=args.allow_pickle, input_format=args.input_format,
                     output_format=args.output_format)  # fmt: skip
    where = "standard output" if str(args.output) == "-" else args.output
    print(f"wrote {n} predictions to {where}", file=sys.stderr)  # stderr: with --output - stdout holds only them
    return 0
