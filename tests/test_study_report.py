"""A study's report from its store: the command that reproduces it, the run-settings notes, and the shipped
5-seed MiniLM study (docs/results/glue-minilm) reported end to end, also through `steadytune report`."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from steadytune.cli import build_parser, main
from steadytune.stats import summarize
from steadytune.study import load_records, trial_rows
from steadytune.study.results import study_command, study_notes, write_study_report

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "docs" / "results" / "glue-minilm"


def record(task: str, recipe: str, seed: int, **config) -> dict:
    return {
        "task": task, "recipe": recipe, "seed": seed,
        "config": {"model": "m", "task": task, "glue_dir": "../glue dir", "train_size": 1000, "precision": "bf16",
                   "device": "cpu", "fast_path": True, "compact_embedding": True, **config},
        "versions": {"steadytune": "0.7.0", "torch": "2.13.0", "transformers": "5.0", "python": "3.11"},
    }  # fmt: skip


def test_the_command_parses_back_to_the_study() -> None:
    records = [record(t, r, s) for s in (0, 1, 2) for t in ("rte", "sts-b") for r in ("adam", "adam+betas=0.9,0.98")]
    settings = {"model": "m", "train_size": 1000, "max_length": 64, "fast_path": False, "text_columns": ["a", "b"],
                "data_seed": 0, "trust_remote_code": True}  # fmt: skip

    command = study_command(records, settings, "out dir")

    argv = shlex.split(command)
    assert argv[:2] == ["steadytune", "study"]
    args = build_parser().parse_args(argv[1:])
    assert (args.tasks, args.recipes, args.seeds) == ("rte,sts-b", "adam,adam+betas=0.9,0.98", "3")
    assert (args.model, args.glue_dir, args.train_size, args.max_length) == ("m", "../glue dir", 1000, 64)
    assert args.fast_path is False and args.compact_embedding is True and args.trust_remote_code is True
    assert args.text_columns == "a,b" and args.out == Path("out dir")
    for default in ("--data-seed", "--num-evals", "--device", "--new"):  # defaults and where-to-run stay out
        assert default not in argv
    assert study_command(records, settings).endswith(" --out STUDY_DIR")  # what a report shows


def test_seeds_that_are_not_a_range_are_listed() -> None:
    records = [record("rte", "adam", s) for s in (3, 7, 9)]
    assert "--seeds 3,7,9" in study_command(records, {}, "x")
    assert "--seeds 2 " in study_command([record("rte", "adam", s) for s in (1, 0)], {}, "x")


def test_notes_say_what_ran_and_how_failures_were_judged() -> None:
    records = [record("rte", "adam", s, precision="bf16" if s else "fp32") for s in range(3)]
    rows = [{"rule": "current", "failed": True, "stored_failed": False}, {"rule": "stored", "failed": False,
             "stored_failed": False}, {"rule": "current", "failed": False, "stored_failed": False}]  # fmt: skip
    notes = study_notes(records, rows)
    assert "model m; GLUE from ../glue dir; train size 1000" in notes[0]
    assert "precision fp32 (1 trials), bf16 (2 trials); device cpu" in notes[1]
    assert notes[2] == "steadytune 0.7.0; torch 2.13.0; transformers 5.0; python 3.11; cpu not recorded"
    records[0]["versions"]["cpu"] = "AMD EPYC"
    for r in records[1:]:
        r["versions"] = {**r["versions"], "cpu": "Intel Xeon"}
    assert study_notes(records, rows)[2].endswith("cpu AMD EPYC (1 trials), Intel Xeon (2 trials)")
    assert notes[3].startswith("3 trials stored of the 1 × 1 × 3 = 3")
    assert "2 of 3 records re-scored under the current rule" in notes[4]
    assert "1 kept the verdict they were stored with" in notes[4] and "(1 now failed, 0 no longer failed)" in notes[4]
    assert "3 of them stored by another steadytune version than" in notes[4]


def test_a_new_studys_notes_say_nothing_about_re_scoring() -> None:
    """Every record written by this version and re-scored to its stored verdict: no line saying "3 of 3 records
    re-scored, 0 verdicts differ". Records of another version re-scored to the same verdicts: said plainly."""
    from steadytune import __version__

    records = [record("rte", "adam", s) for s in range(3)]
    for r in records:
        r["versions"]["steadytune"] = __version__
    rows = [{"rule": "current", "failed": s == 1, "stored_failed": s == 1} for s in range(3)]
    notes = study_notes(records, rows)
    assert len(notes) == 4 and not any("re-scored" in note or "verdict" in note for note in notes)
    records[0]["versions"] = {**records[0]["versions"], "steadytune": "0.7.0"}
    (older,) = study_notes(records, rows)[4:]
    assert older == ("Failure verdicts: 3 of 3 records re-scored under the current rule (steadytune.metrics.failure, "
                     f"from each record's baseline or its data), 1 of them stored by another steadytune version than "
                     f"{__version__}; no verdict differs from the stored one")  # fmt: skip


# --- the shipped study -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    if not (SHIPPED / "study.sqlite").is_file():
        pytest.skip("the shipped study is not in this checkout")
    out = tmp_path_factory.mktemp("glue-minilm")
    for path in SHIPPED.glob("study.sqlite*"):
        shutil.copy(path, out / path.name)  # never write into docs/
    return out


def test_shipped_study_report(shipped: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(REPO)  # the records' GLUE folder is relative: ../shared/data/glue
    rows = trial_rows(load_records(shipped))
    summary = {(s["task"], s["recipe"]): s for s in summarize(rows)}

    # k = 1 of the expected best-of-k is the table's mean (the bootstrap gave 0.7350 for 0.7314 here).
    for s in summary.values():
        assert s["expected"][0]["mean"] == pytest.approx(s["best_mean"], abs=1e-12)
    assert summary["sts-b", "bertadam"]["best_mean"] == pytest.approx(0.7314, abs=5e-5)
    # No recipe is named "adam" alone in many studies; here the first AdamW recipe is, and no Levene cell is blank
    # without its reason.
    assert {s["reference"] for s in summary.values()} == {"adam"}
    assert all((s["levene_p"] is None) == (s["levene_why"] is not None) for s in summary.values())
    assert all(s["levene_p"] is not None for (_, recipe), s in summary.items() if recipe != "adam")
    # MRPC: bold is monotone in the mean.
    mrpc = [s for (task, _), s in summary.items() if task == "mrpc"]
    assert all(a["bold"] for a in mrpc for b in mrpc if b["bold"] and a["best_mean"] >= b["best_mean"])
    if {row["rule"] for row in rows} == {"current"}:  # the GLUE rows are here: every record re-scored
        assert summary["rte", "adam"]["resolution"]["correct"] == 84  # 84/139 = 0.604 beats 73/139

    md, _ = write_study_report(shipped, title="t")
    text = md.read_text(encoding="utf-8")
    assert (
        "steadytune study --tasks rte,mrpc,cola,sts-b --recipes bertadam,adam,adam+reinit:2,bertadam+lr=1e-4,"
        "adam+lr=1e-4,adam+reinit:2+lr=1e-4 --seeds 5 --model all-MiniLM-L6-v2 --glue-dir ../shared/data/glue "
        "--train-size 1000 --out STUDY_DIR\n"
    ) in text
    assert str(shipped) not in text  # the report does not depend on where the folder is
    assert "- steadytune 0.2.0;" in text and "records re-scored under the current rule" in text

    assert main(["report", str(shipped), "--reference", "bertadam"]) == 0
    out = capsys.readouterr().out
    assert "reference recipe (Levene, Fisher): bertadam" in out
    assert max(len(line) for line in out.splitlines()) <= 119
    assert main(["report", str(shipped), "--reference", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reference recipe 'nope' is not in the study" in err
