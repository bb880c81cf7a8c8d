"""The `steadytune` argument parser: every subcommand, its flags and help, in sections (`args.GROUPS`).

Building it imports neither torch nor transformers (the command modules import them inside their functions), so
`steadytune --help` and every `steadytune COMMAND --help` answer at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._version import __version__
from . import info, runs, studies
from .args import (
    Parser,
    add_config_arguments,
    add_executor_arguments,
    device_name,
    floats,
    group,
    names,
    option,
    pair,
)

__all__ = ["add_push_arguments", "build_parser"]


def add_push_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, what: str) -> None:
    """--push-to-hub and --hub-private (`cli.runs.check_push_flags`, `push.push_folder`)."""
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help=f"after the run is saved, upload {what} with its model card to this Hugging Face hub model "
                        "repository (created if needed; token from `hf auth login` or HF_TOKEN)")  # fmt: skip
    p.add_argument("--hub-private", action="store_true", help="create the --push-to-hub repository as private")


def build_parser() -> argparse.ArgumentParser:
    """The `steadytune` parser. Without a command, `cli.main` prints its help (and exits 2)."""
    from ..config import DEVICES, STUDY_SKIPS

    parser = Parser(prog="steadytune", description="Stable few-sample fine-tuning of BERT-style encoders. "
                    "`steadytune COMMAND --help` shows a command's options.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"steadytune {__version__}",
                        help="print the version and exit")  # fmt: skip
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND", parser_class=Parser,
                                help="what to do (a command's --help shows its options)")  # fmt: skip

    p = sub.add_parser(
        "train",
        help="fine-tune once and print the result",
        description="Fine-tune a pre-trained encoder on a GLUE task or your own data, once.",
    )
    add_config_arguments(p)
    out = group(p, "output")
    out.add_argument("--out", type=Path, metavar="DIR",
                     help="write config.json, metrics.json, curve.jsonl (and the model) here")  # fmt: skip
    out.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    out.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                     help="save the run's whole state every N steps beside --out (DIR.checkpoint.pt; removed when "
                          "the run is done)")  # fmt: skip
    out.add_argument("--resume", action="store_true",
                     help="continue from the checkpoint beside --out when there is one (the same trajectory as an "
                          "uninterrupted run); start afresh when there is none")  # fmt: skip
    out.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    add_push_arguments(out, "<out>/model (needs --save-model)")
    p.set_defaults(func=runs.cmd_train)

    p = sub.add_parser(
        "fit",
        help="start several candidates, drop the bad ones early, finish the best, and say how it went",
        description="Compare candidate families (--families): a probe (the frozen encoder's features and a linear "
        "head), a contrastive model (SetFit's two stages) and --candidates fine-tuning (seed, learning rate) pairs, "
        "judged at --check-at fractions of the budget with the best --keep continued to the end; save the best on "
        "validation to <out>/model with a model card. A small file (a classification file of yours under "
        "--cross-validate-below rows, or any under 30 test rows) gets the probe, the contrastive and the lp-ft "
        "family alone, each cross-validated over every row. Exit 0: the chosen model "
        "beats every constant predictor by more than chance on the test rows, which took part in no choice (a small "
        "file: in its family's test of its cross-validated score, corrected for the choice among families); 1: it "
        "does not; 2: bad input. Rerunning the same command resumes a killed fit, or re-judges a finished one "
        "without training.",
    )
    add_config_arguments(p, skip=frozenset({"save_model", "init_seed"}))
    fit = group(p, "fit")
    fit.add_argument("--candidates", type=int, default=9, metavar="N", help="candidates to start (1 to 1000)")
    fit.add_argument("--lrs", type=floats, default=None, metavar="LR,...",
                     help="learning rates the candidates spread over (default: 5e-5,1e-4,2e-4 for an encoder "
                          "narrower than 768, else 2e-5,3e-5,5e-5)")  # fmt: skip
    fit.add_argument("--reinit", type=int, default=2, metavar="N",
                     help="re-initialise the top N blocks and the pooler of every candidate when --recipe is "
                          "train's default or re-initialises none (0: keep them)")  # fmt: skip
    fit.add_argument("--check-at", type=floats, default=(0.25, 0.5), metavar="F,...",
                     help="fractions of the budget at which candidates are judged")  # fmt: skip
    fit.add_argument("--keep", type=int, default=None, metavar="N",
                     help="candidates that continue to the end (default 2, or all when fewer)")  # fmt: skip
    # None: FitSettings.families' default, by the task (`steadytune.fitting.default_families`, written out in the
    # help: importing steadytune.fitting would load torch; tests/test_fit.py checks that the two agree)
    fit.add_argument("--families", type=names, default=None, metavar="NAME,...",
                     help="candidate families to compare: probe (the frozen encoder's features and a "
                          "cross-validated linear head: seconds), contrastive (SetFit's two stages: the encoder "
                          "tuned on pairs from the labels and the label names, then the probe's head; "
                          "classification only: minutes), lp-ft (the probe's head, then the encoder and head "
                          "fine-tuned together: minutes), finetune (the --candidates search); default: "
                          "probe,contrastive,finetune, and for a regression task probe,lp-ft,finetune on a small "
                          "file, probe,finetune held out")  # fmt: skip
    # FitSettings.cross_validate_below's default, written out for the same reason
    fit.add_argument("--cross-validate-below", type=int, default=2000, metavar="ROWS",
                     help="a classification file of yours (no --test-file) with fewer rows is a small file: the "
                          "families compared by cross-validation over every row, no fine-tuning candidates "
                          "(default: 2000; 0: only when the test split would hold under 30 rows)")  # fmt: skip
    add_executor_arguments(p)
    out = group(p, "output")
    out.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="the fit folder: model/, fit.json, the candidates")  # fmt: skip
    out.add_argument("--new", action="store_true", help="start over in an existing fit folder (old store kept)")
    out.add_argument("--keep-checkpoints", action="store_true",
                     help="keep the dropped candidates' checkpoints (about 10-12 bytes a parameter each) to continue "
                     "them later; by default they are removed when the fit is done")  # fmt: skip
    out.add_argument("--keep-candidates", action="store_true",
                     help="keep every finished candidate's model in <out>/candidates/NAME/run/model (each as "
                     "large as the model); by default only <out>/model is kept, or on a no the chosen "
                     "candidate's")  # fmt: skip
    out.add_argument("--json", action="store_true", help="print the whole record as JSON instead of a table")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    add_push_arguments(out, "<out>/model when the fit succeeds")
    p.set_defaults(func=runs.cmd_fit)

    p = sub.add_parser("predict", help="run a saved model over a file",
                       description="Predict with a model saved by `steadytune train --save-model`.")  # fmt: skip
    inp = group(p, "input")
    inp.add_argument("--input", required=True, type=Path, metavar="FILE",
                     help="CSV, TSV, JSONL or Parquet with the text column(s); - reads standard input")  # fmt: skip
    inp.add_argument("--input-format", choices=("csv", "tsv", "jsonl", "parquet"), default=None,
                     help="format of --input (default: from its extension; jsonl for -)")  # fmt: skip
    inp.add_argument("--text-columns", default=None, metavar="A[,B]",
                     help="text column(s) of the input (default: as in training)")  # fmt: skip
    model = group(p, "model")
    model.add_argument("--model", required=True, metavar="DIR", help="the saved model folder (<out>/model)")
    model.add_argument("--allow-pickle", action="store_true", help="load a model folder that has only pickle "
                       "weights (pytorch_model.bin), with torch.load(weights_only=True); only for files you "
                       "trust")  # fmt: skip
    device = group(p, "device")
    device.add_argument("--device", type=device_name, default="auto", metavar="{" + ",".join(DEVICES) + "}",
                        help="where the model runs; auto is CUDA when present")  # fmt: skip
    device.add_argument("--batch-size", type=int, default=128, metavar="N", help="examples per forward pass")
    out = group(p, "output")
    out.add_argument("--output", required=True, type=Path, metavar="FILE",
                     help="predictions file: the input's columns, prediction, probability and every label's score "
                          "(JSONL: scores, a list of {label, score}; CSV/TSV/Parquet: score_<label> columns); - "
                          "writes standard output")  # fmt: skip
    out.add_argument("--output-format", choices=("csv", "tsv", "jsonl", "parquet"), default=None,
                     help="format of --output (default: from its extension; jsonl for -)")  # fmt: skip
    out.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=runs.cmd_predict)

    p = sub.add_parser(
        "study",
        help="run a resumable grid of tasks × recipes × seeds and report it",
        description="Run every (task, recipe, seed) trial, store each in <out>/study.sqlite as it finishes, and "
        "write report.md/report.html. Rerunning the same command resumes: finished trials are skipped.",
    )
    grid = group(p, "grid")
    grid.add_argument("--tasks", metavar="TASK,...",
                      help="GLUE presets, comma-separated (or give --train-file for your own data)")  # fmt: skip
    grid.add_argument("--recipes", default="bertadam,adam", metavar="RECIPE,...", help="recipes, comma-separated")
    grid.add_argument("--seeds", default="5", help="a count N (seeds 0..N-1) or a list like 3,7,9")
    add_config_arguments(p, skip=STUDY_SKIPS, recipe_settings=False)
    add_executor_arguments(p)
    out = group(p, "output")
    out.add_argument("--out", type=Path, required=True, metavar="DIR", help="the study folder")
    out.add_argument("--new", action="store_true", help="start over in an existing study folder (old store kept)")
    out.add_argument("--reference", default=None, metavar="RECIPE",
                     help="the recipe the report's variance (Levene) and failure-rate (Fisher) tests compare with "
                          "(default: the study's first bias-corrected recipe, optimizer adamw)")  # fmt: skip
    out.add_argument("--quiet", action="store_true", help="no progress bar or per-trial lines")
    p.set_defaults(func=studies.cmd_study)

    p = sub.add_parser("report", help="(re)write a study's report", description="Write report.md and report.html "
                       "of a study folder from the trials it holds now.")  # fmt: skip
    p.add_argument("study_dir", type=Path, help="the study folder (`steadytune study --out`)")
    p.add_argument("--title", default=None, help="report title (default: the model and the number of trials)")
    p.add_argument("--reference", default=None, metavar="RECIPE",
                   help="the recipe the variance (Levene) and failure-rate (Fisher) tests compare with (default: "
                   "the study's first bias-corrected recipe, optimizer adamw)")  # fmt: skip
    p.set_defaults(func=studies.cmd_report)

    p = sub.add_parser("export", help="write a study's trials as CSV or Parquet",
                       description="One row per finished trial: scores, flags, timings, config.")  # fmt: skip
    p.add_argument("study_dir", type=Path, help="the study folder (`steadytune study --out`)")
    p.add_argument("--format", choices=("csv", "parquet"), default=None,
                   help="file format (default: from the --output extension, else csv)")  # fmt: skip
    p.add_argument("--output", type=Path, default=None, metavar="FILE",
                   help="where the rows go (default: <study_dir>/trials.<format>); - writes standard "
                        "output")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=studies.cmd_export)

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
    p.add_argument("--betas", type=pair, metavar="B1,B2", help="betas, e.g. 0.9,0.999 (default: the optimizer's)")
    p.add_argument("--eps", type=float, help="epsilon (default: the optimizer's)")
    p.add_argument("--option", type=option, action="append", default=[], metavar="KEY=VALUE",
                   help="any other constructor keyword, e.g. --option correct_bias=False (repeatable)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=info.cmd_audit)

    p = sub.add_parser("recipes", help="list the recipe presets, or expand recipes",
                       description="List the recipe presets, or show every field of the given recipes.")  # fmt: skip
    p.add_argument("recipe", nargs="*", help="recipes to expand, e.g. adam+reinit:2")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=info.cmd_recipes)

    p = sub.add_parser("tasks", help="list the GLUE presets", description="List the GLUE task presets.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=info.cmd_tasks)
    return parser
