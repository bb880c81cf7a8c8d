"""The command line's manners (issue 21): --version, a bare `steadytune`, help that needs no torch, choices for the
enumerated options, and grouped help where every argument says what it is.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import steadytune
from steadytune._version import __version__
from steadytune.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "fit", "predict", "study", "report", "export", "audit", "recipes", "tasks")


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own exits: --help, --version, usage errors
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def python(code: str) -> str:
    """Run `code` in a fresh interpreter (nothing imported yet) and return its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# --------------------------------------------------------------------------------------------------------------
# --version and the bare command


def test_version_prints_the_package_version_and_exits_0(capsys):
    code, out, err = run_main(["--version"], capsys)
    assert (code, out, err) == (0, f"steadytune {__version__}\n", "")
    assert steadytune.__version__ == __version__


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version

    assert version("steadytune") == __version__


def test_bare_command_prints_the_whole_help_to_stderr_and_exits_2(capsys):
    code, out, err = run_main([], capsys)
    assert code == 2 and out == ""
    assert err == build_parser().format_help()  # the full help, not "arguments are required"
    assert err.startswith("usage: steadytune") and "--version" in err
    for command in COMMANDS:
        assert f"\n    {command} " in err  # each command is listed with its one-line help


def test_bare_command_through_the_entry_point():
    proc = subprocess.run([sys.executable, "-m", "steadytune"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: steadytune") and "commands:" in proc.stderr


# --------------------------------------------------------------------------------------------------------------
# Fast help: building the parser, --help and --version import neither torch nor transformers


def test_building_the_parser_imports_no_torch_transformers_or_datasets():
    code = ("import steadytune.cli, sys; steadytune.cli.build_parser(); print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch','transformers','datasets')))")  # fmt: skip
    assert python(code) == "[]"


def test_every_help_and_version_import_nothing_heavy():
    """`steadytune --help`, `--version` and every `steadytune COMMAND --help`, in one fresh interpreter: none of them
    loads torch, transformers, datasets or the numeric stack (help is text; those load when a command runs)."""
    code = textwrap.dedent(f"""
        import contextlib, io, sys
        from steadytune.cli import main
        for argv in [["--help"], ["--version"], *[[c, "--help"] for c in {COMMANDS!r}]]:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv)
                except SystemExit as e:
                    assert e.code == 0, (argv, e.code)
        heavy = ("torch", "transformers", "datasets", "numpy", "scipy", "sklearn", "pandas", "pyarrow", "tqdm")
        print(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy)))
    """)
    assert python(code) == "[]"


def test_import_steadytune_is_lazy_and_loads_on_use():
    code = ("import sys, steadytune; before = 'torch' in sys.modules; steadytune.AdamW; "
            "print(before, 'torch' in sys.modules)")  # fmt: skip
    assert python(code) == "False True"


# --------------------------------------------------------------------------------------------------------------
# The lazy package keeps its public names


def test_star_import_gives_every_name_in_all():
    namespace: dict = {}
    exec("from steadytune import *", namespace)
    assert sorted(set(steadytune.__all__) - namespace.keys()) == []
    assert set(steadytune.__all__) <= set(dir(steadytune))


def test_star_import_in_a_fresh_interpreter():
    code = ("ns = {}; exec('from steadytune import *', ns); import steadytune; print(sorted(set("
            "steadytune.__all__) - ns.keys()), callable(ns['train']), ns['Recipe'].__name__)")  # fmt: skip
    assert python(code) == "[] True Recipe"


def test_public_names_are_the_defining_modules_objects():
    import steadytune.data
    import steadytune.data.encode
    import steadytune.evaluate
    import steadytune.fitting
    import steadytune.optim.llrd
    import steadytune.trainer

    # a submodule imported after the package keeps the same-named function in place (as an eager import did)
    assert steadytune.evaluate is sys.modules["steadytune.evaluate"].evaluate
    assert steadytune.data.encode is sys.modules["steadytune.data.encode"].encode
    assert steadytune.fit is steadytune.fitting.fit and steadytune.train is steadytune.trainer.train
    if "predict" in steadytune.__all__:
        assert steadytune.predict is sys.modules["steadytune.inference"].predict
    assert steadytune.llrd_param_groups is steadytune.optim.llrd.llrd_param_groups
    from steadytune import hub, models, train

    assert callable(train) and hub.__name__ == "steadytune.hub" and models.__name__ == "steadytune.models"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        steadytune.nonexistent  # noqa: B018


def test_a_submodule_loaded_first_does_not_shadow_the_function():
    code = ("import steadytune.trainer, steadytune, steadytune.data; from steadytune.data import encode; "
            "print(type(steadytune.evaluate).__name__, type(encode).__name__)")  # fmt: skip
    assert python(code) == "function function"


# --------------------------------------------------------------------------------------------------------------
# Choices: the enumerated options take only their values, and say which in one line


BAD_CHOICES = [
    (["train", "--device", "gpu"], "--device", "unknown device 'gpu'", ("auto", "cpu", "cuda", "cuda:N", "mps")),
    (["train", "--precision", "fp16"], "--precision", "'fp16'", ("auto", "fp32", "bf16")),
    (["train", "--optimizer", "sgd"], "--optimizer", "'sgd'", ("adamw", "bertadam")),
    (["train", "--task-type", "ordinal"], "--task-type", "'ordinal'", ("auto", "classification", "regression")),
    (["fit", "--out", "f", "--precision", "half"], "--precision", "'half'", ("fp32", "bf16")),
    (["fit", "--out", "f", "--executor", "dask"], "--executor", "'dask'", ("local", "ray")),
    (["study", "--out", "s", "--executor", "dask"], "--executor", "'dask'", ("local", "ray")),
    (["study", "--out", "s", "--device", "cuda:x"], "--device", "unknown device 'cuda:x'", ("cuda:N",)),
    (["study", "--out", "s", "--task-type", "multi"], "--task-type", "'multi'", ("classification",)),
    (["export", "s", "--format", "xlsx"], "--format", "'xlsx'", ("csv", "parquet")),
    (["predict", "--model", "m", "--input", "i", "--output", "o", "--device", "tpu"], "--device",
     "unknown device 'tpu'", ("auto", "cpu")),
    (["predict", "--model", "m", "--input", "i", "--output", "o", "--output-format", "xml"], "--output-format",
     "'xml'", ("csv", "jsonl")),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "flag", "value", "allowed"), BAD_CHOICES, ids=lambda v: str(v)[:30])
def test_a_bad_choice_is_one_line_and_exit_2(argv, flag, value, allowed, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(argv, capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"steadytune {argv[0]}: error: argument {flag}") and value in lines[0]
    assert all(a in lines[0] for a in allowed), lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_every_device_a_run_accepts_still_parses(device):
    for argv in (["train", "--device", device], ["study", "--out", "s", "--device", device],
                 ["predict", "--model", "m", "--input", "i", "--output", "o", "--device", device]):  # fmt: skip
        assert build_parser().parse_args(argv).device == device


def test_choices_come_from_the_fields_and_show_in_help():
    from steadytune.config import DEVICES, TASK_TYPES
    from steadytune.precision import PRECISIONS
    from steadytune.recipes import OPTIMIZER_NAMES, OPTIMIZERS

    assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES  # the names the parser offers are the classes a run builds
    text = subparsers(build_parser())["train"].format_help()
    for choices in (DEVICES, TASK_TYPES, PRECISIONS, OPTIMIZER_NAMES):
        assert "{" + ",".join(choices) + "}" in text
    args = build_parser().parse_args(["train", "--precision", "bf16", "--optimizer", "bertadam", "--task-type",
                                      "regression"])  # fmt: skip
    assert (args.precision, args.optimizer, args.task_type) == ("bf16", "bertadam", "regression")


# --------------------------------------------------------------------------------------------------------------
# Complete, grouped help


def test_every_argument_of_every_command_has_help():
    parser = build_parser()
    missing = [(name, a.dest) for name, p in [("steadytune", parser), *subparsers(parser).items()]
               for a in p._actions if not a.help or a.help == argparse.SUPPRESS]  # fmt: skip
    assert missing == []
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(c.dest for c in action._choices_actions if c.help) == sorted(COMMANDS)


def test_positionals_have_help(capsys):
    for command in ("report", "export"):
        code, out, _ = run_main([command, "--help"], capsys)
        assert code == 0 and re.search(r"^  study_dir\s+the study folder", out, re.MULTILINE), out


def sections(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Help section title → the options in it (first spelling), for the sections that hold any."""
    return {g.title: [a.option_strings[0] if a.option_strings else a.dest for a in g._group_actions]
            for g in parser._action_groups if g._group_actions}  # fmt: skip


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("train", ["options", "data", "model", "training", "recipe settings", "device and speed", "output"]),
        ("fit", ["options", "data", "model", "training", "recipe settings", "candidates", "device and speed",
                 "executor", "output"]),
        ("study", ["options", "study grid", "data", "model", "training", "device and speed", "executor", "output"]),
        ("predict", ["options", "input", "model", "device and speed", "output"]),
    ],
)  # fmt: skip
def test_help_sections_in_order(command, expected):
    from steadytune.cli.args import GROUPS

    parser = subparsers(build_parser())[command]
    found = sections(parser)
    rank = {title: i for i, (title, _) in enumerate(GROUPS.values())}
    assert [title for title in found if title in expected] == expected
    assert set(found) - {"options"} <= rank.keys()  # no option outside the known sections
    assert list(found)[1:] == sorted(list(found)[1:], key=rank.__getitem__)
    assert found["options"] == ["-h", "--debug"]  # every other option sits in its section
    text = parser.format_help()
    positions = [text.index(f"\n{title}:\n") for title in expected if title != "options"]
    assert positions == sorted(positions)


def test_study_help_keeps_executor_and_data_apart():
    found = sections(subparsers(build_parser())["study"])
    executor = {"--executor", "--workers", "--threads", "--ray-address", "--gpus-per-trial", "--cpus-per-trial",
                "--max-retries"}  # fmt: skip
    assert set(found["executor"]) == executor
    assert {"--train-file", "--validation-file", "--test-file", "--glue-dir", "--task-type"} <= set(found["data"])
    assert not executor & set(found["data"])
    assert found["study grid"] == ["--tasks", "--recipes", "--seeds"] and "--out" in found["output"]


def test_every_train_config_field_is_in_a_section_of_train():
    import dataclasses

    from steadytune.config import TrainConfig

    found = sections(subparsers(build_parser())["train"])
    flags = {f for title, options in found.items() if title != "options" for f in options}
    assert {"--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainConfig)} <= flags


def test_defaults_are_shown_once_and_never_as_none_or_false():
    parser = build_parser()
    for name, p in subparsers(parser).items():
        text = " ".join(p.format_help().split())  # unwrapped
        assert "(default: None)" not in text and "(default: False)" not in text, name
    train = " ".join(subparsers(parser)["train"].format_help().split())
    assert "Truncate inputs to this many tokens (paper §3: 128). (default: 128)" in train
    assert "(default: all-MiniLM-L6-v2)" in train  # a hyphenated default is never split across lines
    assert "No effect on CUDA. (default: on)" in train  # --fast-path is on unless --no-fast-path
    assert "(recipe default: 32)" in train and "(recipe default: 32) (default:" not in train
    assert "(recipe default: None)" not in train
    fit = " ".join(subparsers(parser)["fit"].format_help().split())
    assert "candidates to start (1 to 1000) (default: 9)" in fit
    assert "5e-5,1e-4,2e-4 for an encoder narrower than 768" in fit
    assert "(0: keep them) (default: 2)" in fit
