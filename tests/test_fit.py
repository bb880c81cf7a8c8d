"""`steadytune fit` on a tiny random BERT: a learnable task is fitted (exit 0, a model with its card), random labels
are an honest no (exit 1, one line, no model), and a killed fit resumes without redoing what it stored."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from steadytune.cli import main

# 64 examples in batches of 8, 8 epochs: 64 steps; checks at steps 16 and 32; the fine-tuning search alone (the
# probe family has its own test below)
FLAGS = ["--batch-size", "8", "--epochs", "8", "--lrs", "5e-3,1e-3", "--candidates", "4", "--keep", "1",
         "--workers", "1", "--families", "finetune", "--quiet"]  # fmt: skip


def _argv(tiny_model_dir, files, out) -> list[str]:
    return ["fit", "--model", str(tiny_model_dir), "--train-file", str(files["train"]), "--validation-file",
            str(files["validation"]), "--test-file", str(files["test"]), "--out", str(out), *FLAGS]  # fmt: skip


def test_fit_finds_a_model_that_learned_and_says_so(tiny_model_dir, toy_files, tmp_path, capsys):
    from huggingface_hub import ModelCard

    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["success"] and result["chosen"]
    chosen = next(c for c in result["candidates"] if c["name"] == result["chosen"])
    assert chosen["status"] == "finished" and chosen["best"]["validation"]["accuracy"] >= 0.75
    statuses = sorted(c["status"] for c in result["candidates"])
    assert statuses == ["dropped", "dropped", "dropped", "finished"]
    # successive halving: 4 candidates to step 16, 2 to step 32, 1 to the end: 4·16 + 2·16 + 32 = 128 of 256 steps
    assert result["steps"] == 128 and result["full_steps"] == 256
    assert {c["lr"] for c in result["candidates"]} == {5e-3, 1e-3}
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.base_model is None  # a local folder is no hub id (the card names it, without its path)
    assert f"`{tiny_model_dir.name}`" in card.text and str(tiny_model_dir.parent) not in card.content
    scores = {(e.dataset_split, e.metric_type): e.metric_value for e in card.data.eval_results}
    assert scores[("test", "accuracy")] == result["test"]["accuracy"]
    assert scores[("validation", "accuracy")] == chosen["best"]["validation"]["accuracy"]
    assert "## Candidates" in card.text and result["chosen"] in card.text
    judged = result["judgement"]  # the verdict: one test of the pick on the 24 test rows, which chose nothing
    assert judged["yes"] and judged["split"] == "test" and judged["n"] == 24 and judged["p"] < 0.05
    assert f"Corrected for: {judged['corrected_for']}." in card.text and "on 24 test examples" in card.text
    assert (out / "model" / "model.safetensors").is_file() and (out / "fit.json").is_file()
    assert not list(out.rglob("*.checkpoint.pt"))  # every stage is stored: no candidate's training state is left
    again = json.loads((out / "fit.json").read_text())
    assert again["chosen"] == result["chosen"] and again["verdict"] == result["verdict"]


def test_fit_on_random_labels_is_an_honest_no(tiny_model_dir, toy_files, tmp_path, capsys):
    rng = random.Random(0)
    for split in ("train", "validation", "test"):
        lines = toy_files[split].read_text().splitlines()
        rows = [line.rsplit(",", 1)[0] + "," + rng.choice(["pos", "neg"]) for line in lines[1:]]
        toy_files[split].write_text("\n".join([lines[0], *rows]) + "\n")
    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--keep", "2"]) == 1  # two finish: one model is kept
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--lrs" in lines[0]
    assert lines[0].startswith(tuple(f"steadytune fit: {how}" for how in (
        "no candidate beat", "the candidate best on validation", "the chosen candidate")))  # fmt: skip
    assert "verdict:" in captured.out and not (out / "model").exists()
    result = json.loads((out / "fit.json").read_text())
    assert result["success"] is False
    # nothing delivered: the pick's model stays (the line may point at it), the other finished one is removed
    assert [p.parent.parent.name for p in out.glob("candidates/*/run/model")] == [result["chosen"]]
    named = lines[0].split("its model is in ")[1].split(" if you want")[0] if "its model is in" in lines[0] else None
    assert named is None or (Path(named) / "model.safetensors").is_file()
    # predict on the fit folder: no model delivered, and where the pick's is
    assert main(["predict", "--model", str(out), "--input", str(toy_files["test"]), "--output",
                 str(tmp_path / "p.csv")]) == 2  # fmt: skip
    pick = out / "candidates" / result["chosen"] / "run" / "model"
    assert f"delivered no model (its verdict was no: see {out / 'fit.json'}); to use its pick anyway, pass {pick}" in (
        capsys.readouterr().err
    )


def _weights(out) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.safetensors"))


def test_fit_keeps_only_the_chosen_model_unless_asked_and_a_rerun_needs_none(tiny_model_dir, toy_files, tmp_path,
                                                                             capsys, monkeypatch):  # fmt: skip
    """Two candidates finish; by default the fit folder keeps one model (<out>/model on a yes, the pick's own on a
    no), and rerunning the command re-judges it from the stored records, training nothing, to the same end;
    --keep-candidates keeps every finished candidate's model."""
    import steadytune.study.grid as grid

    out = tmp_path / "fit"
    argv = [*_argv(tiny_model_dir, toy_files, out), "--keep", "2", "--json"]
    code = main(argv)
    first = json.loads(capsys.readouterr().out)
    finished = [c["name"] for c in first["candidates"] if c["status"] == "finished"]
    assert len(finished) == 2 and code == (0 if first["success"] else 1)
    pick = f"candidates/{first['chosen']}/run/model/model.safetensors"
    kept = ["model/model.safetensors" if first["success"] else pick]
    assert _weights(out) == kept
    assert all((out / "candidates" / name / "run" / "metrics.json").is_file() for name in finished)  # records stay

    monkeypatch.setattr(grid, "train_stage", lambda *a, **k: pytest.fail("a rerun trained a stage again"))
    assert main(argv) == code
    again = json.loads(capsys.readouterr().out)
    for key in ("chosen", "success", "test", "steps", "verdict", "judgement", "candidates"):
        assert again[key] == first[key], key
    assert _weights(out) == kept
    monkeypatch.undo()

    every = tmp_path / "every"
    assert main([*_argv(tiny_model_dir, toy_files, every), "--keep", "2", "--keep-candidates"]) == code
    capsys.readouterr()
    assert _weights(every) == sorted([*(f"candidates/{name}/run/model/model.safetensors" for name in finished),
                                      *(["model/model.safetensors"] if first["success"] else [])])  # fmt: skip


_KILL_AFTER = """
import os, sys
import steadytune.study.store as store
real, adds = store.Store.add, []
def add_then_die(self, *args, **kwargs):
    real(self, *args, **kwargs)
    adds.append(1)
    if len(adds) == int(os.environ["KILL_AFTER"]):
        os._exit(9)
store.Store.add = add_then_die
from steadytune.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_fit_resumes_without_redoing_stored_stages(tiny_model_dir, toy_files, tmp_path, capsys,
                                                            monkeypatch):  # fmt: skip
    import steadytune.study.grid as grid

    reference = tmp_path / "reference"
    assert main([*_argv(tiny_model_dir, toy_files, reference), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)

    out = tmp_path / "fit"
    env = {**os.environ, "KILL_AFTER": "5"}  # the 4 first-check stages and one of the second
    done = subprocess.run([sys.executable, "-c", _KILL_AFTER, *_argv(tiny_model_dir, toy_files, out)], env=env,
                          capture_output=True, timeout=300)  # fmt: skip
    assert done.returncode == 9
    ran = []
    real = grid.train_stage
    monkeypatch.setattr(grid, "train_stage", lambda config, **kw: ran.append(kw["until"]) or real(config, **kw))
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert ran == [32, None]  # only the second check's last stage and the final stage ran again
    for key in ("chosen", "success", "test", "steps", "verdict"):
        assert result[key] == expected[key], key
    assert [c["checks"] for c in result["candidates"]] == [c["checks"] for c in expected["candidates"]]


def test_default_learning_rates_follow_the_encoder_width(tiny_model_dir, tmp_path):
    from transformers import BertConfig

    from steadytune.fitting.settings import _NARROW_LRS, _WIDE_LRS, default_lrs

    wide = tmp_path / "wide"
    BertConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=12).save_pretrained(wide)  # config only
    assert default_lrs(str(tiny_model_dir)) == _NARROW_LRS == (5e-5, 1e-4, 2e-4)  # 32 wide
    assert default_lrs(str(wide)) == _WIDE_LRS == (2e-5, 3e-5, 5e-5)
    assert default_lrs("no-such-owner/no-such-model") == _WIDE_LRS  # unreadable here: the cautious grid


def test_candidates_reinitialise_the_top_layers_unless_the_recipe_or_the_flag_says_otherwise(tiny_model_dir):
    from steadytune.config import TrainConfig
    from steadytune.fitting import FitSettings, candidate_configs, resolve
    from steadytune.recipes import Recipe

    base = TrainConfig(task="rte", model=str(tiny_model_dir))
    config, settings = resolve(base, FitSettings())
    assert config.recipe == Recipe.parse("adam+reinit:2") and settings.lrs == (5e-5, 1e-4, 2e-4)
    assert {c.recipe.lr for c in candidate_configs(base, FitSettings()).values()} == {5e-5, 1e-4, 2e-4}
    assert all(c.recipe.reinit_layers == 2 for c in candidate_configs(base, FitSettings()).values())
    own = base.with_overrides(recipe="bertadam+reinit:1")
    assert resolve(own, FitSettings())[0].recipe == Recipe.parse("bertadam+reinit:1")  # the recipe's own re-init
    assert resolve(base, FitSettings(reinit=0))[0].recipe == Recipe.parse("adam")
    assert resolve(base, FitSettings(lrs=(1e-3,)))[1].lrs == (1e-3,)


def test_fit_flag_reinit_reaches_the_candidates(tiny_model_dir, toy_files, tmp_path, capsys):
    out = tmp_path / "fit"
    argv = [a for a in _argv(tiny_model_dir, toy_files, out)]
    argv[argv.index("--candidates") + 1], argv[argv.index("--epochs") + 1] = "2", "1"
    main([*argv, "--reinit", "1", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["reinit"] == 1 and result["config"]["recipe"] == "adam+batch_size=8+epochs=1+reinit:1"
    assert all("reinit:1+lr=" in json.loads((out / "candidates" / c["name"] / "run" / "config.json").read_text())
               ["recipe"] for c in result["candidates"] if c["status"] == "finished")  # fmt: skip


def test_a_check_drops_flat_loss_and_constant_validation_first_then_ranks_the_rest():
    """The judging rule on hand-made records: 4 candidates at step 20 of 100 (loss window: steps 11-20), keep 2.
    Balanced binary labels: the constant predictor's loss is ln 2 = 0.6931, flagged from 98% of it (0.6793)."""
    from types import SimpleNamespace

    from steadytune.config import TrainConfig
    from steadytune.fitting import Candidate
    from steadytune.fitting.search import _judge
    from steadytune.metrics import Baseline

    def candidate(name, loss, val):
        c = Candidate(name=name, seed=0, lr=1e-4, config=TrainConfig())
        curve = [{"step": s, "loss": 5.0 if s <= 10 else loss} for s in range(1, 21)]  # steps 1-10 lie outside
        c.checks.append({"step": 20, "_record": {"curve": curve, "evals": [{"step": 20, "validation": {"f1": val}}]}})
        return c

    flat = candidate("flat", 0.6800, 0.95)  # best validation, but its loss has not left the prior's: dropped first
    constant = candidate("constant", 0.30, 0.60)  # validation at the always-positive F1: dropped
    good, better = candidate("good", 0.50, 0.80), candidate("better", 0.40, 0.85)
    data = SimpleNamespace(train=SimpleNamespace(labels=[0, 1] * 50), num_labels=2)
    _judge([flat, constant, good, better], 20, 100, data, Baseline("f1", 0.60, "always 1"), "f1", keep=2)
    assert [c.status for c in (better, good)] == ["running", "running"]
    assert [c.checks[-1]["rank"] for c in (better, good, flat, constant)] == [1, 2, 3, 4]
    assert flat.reason == "at step 20: training loss 0.6800 not below 98% of the constant predictor's 0.6931"
    assert constant.reason == "at step 20: validation f1 0.6000 ≤ 0.6000, the best constant predictor's"
    assert [c.checks[-1]["flags"] for c in (flat, constant, good)] == [["loss"], ["validation"], []]
    assert {c.checks[-1]["of"] for c in (flat, constant, good, better)} == {4}
    assert all("_record" not in c.checks[-1] for c in (flat, constant, good, better))


def test_rerunning_a_finished_fit_after_its_candidate_folders_were_cleaned_up(tiny_model_dir, toy_files, tmp_path,
                                                                              capsys):  # fmt: skip
    import shutil

    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    weights = (out / "model" / "model.safetensors").read_bytes()
    for model in out.glob("candidates/*/run/model"):
        shutil.rmtree(model)
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0  # DIR/model is kept, its card rewritten
    again = json.loads(capsys.readouterr().out)
    assert again["chosen"] == first["chosen"] and again["verdict"] == first["verdict"]
    assert (out / "model" / "model.safetensors").read_bytes() == weights and (out / "model" / "README.md").is_file()
    shutil.rmtree(out / "model")
    assert main(_argv(tiny_model_dir, toy_files, out)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "are gone" in err[0] and "new --out" in err[0], err
    assert not (out / "model").exists()


def test_the_no_line_says_how_the_fit_fell_short(tmp_path, monkeypatch):
    """exit 1's line on hand-made results: nothing finished; the pick at the constant predictor on validation; at it
    on the test rows; above it on test but within chance (then it points at that candidate's model, where it is
    there, and at more test data, with the flags only where the data came from files)."""
    from steadytune.fitting import FitResult

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fits" / "x" / "candidates" / "c01" / "run" / "model").mkdir(parents=True)

    def result(val, test=0.5, *, train_file=None, chosen="c01"):
        best = {"validation": {"accuracy": val}, "test": {"accuracy": test}}
        return FitResult(
            settings={}, config={"train_file": train_file}, data={"name": "toy"}, metric="accuracy",
            baselines={"validation": {"score": 0.53, "predictor": "always 'a'"}, "test": {"score": 0.52}},
            candidates=[{"name": "c01", "best": best}], chosen=chosen, success=False, verdict="VERDICT",
            test=best["test"], steps=1, full_steps=2,
        )  # fmt: skip

    nothing = result(None, chosen=None).why_no("fits/x")
    assert nothing.startswith("VERDICT; try more candidates (--candidates)") and "model" not in nothing
    at = result(0.53).why_no("fits/x")
    assert at.startswith("no candidate beat the best constant predictor on validation: VERDICT; try")
    assert "by more than chance" not in at and "model" not in at
    at_test = result(0.58, 0.52).why_no("fits/x")
    assert at_test.startswith("the candidate best on validation is no better than the best constant predictor on "
                              "the test rows: VERDICT; try")  # fmt: skip
    assert "model" not in at_test
    within = result(0.58, 0.6).why_no("fits/x")
    assert within.startswith("the chosen candidate beat the best constant predictor on the test rows, but not by "
                             "more than chance: VERDICT; ")  # fmt: skip
    assert "its model is in fits/x/candidates/c01/run/model" in within and "--test-file" not in within
    assert "more test examples (a larger file, or --test-file)" in result(0.58, 0.6, train_file="t.csv").why_no("x")
    assert "its model" not in result(0.58, 0.6).why_no("x")  # x/candidates/c01/run/model is not there: not named
    assert all("\n" not in line and "--lrs" in line for line in (nothing, at, at_test, within))

    def cross_validated(test_rows, families=("probe", "contrastive", "finetune")):
        return FitResult(
            settings={"families": list(families)}, config={"train_file": "t.csv"},
            data={"name": "toy", "sizes": {"train": 8 * test_rows, "validation": test_rows, "test": test_rows}},
            metric="accuracy", baselines={"validation": {"score": 0.5}, "test": {"score": 0.5}},
            candidates=[{"name": "probe", "best": {}}], chosen="probe", success=False, verdict="VERDICT", test={},
            steps=0, full_steps=0, judgement={"split": "cross-validated"},
        ).why_no("fits/x")  # fmt: skip

    # small by its row count (300 to 1,999 rows): the held-out search with fine-tuning is the other way to try
    assert cross_validated(103).endswith("more labelled rows could show it, or the held-out search with fine-tuning "
                                         "(--cross-validate-below 0)")  # fmt: skip
    assert cross_validated(4).endswith("more labelled rows could show it")  # too few test rows for any held-out fit
    assert cross_validated(103, ("probe", "contrastive")).endswith("more labelled rows could show it")


def test_the_table_says_why_each_candidate_was_dropped_in_a_few_words():
    """fit's stdout table: the flags or the rank that dropped a candidate (a legend names the flags once), the choice,
    and for a record written before the flags were stored, its full reason."""
    from steadytune.cli.runs import fit_table
    from steadytune.fitting import FitResult

    def cand(name, status, checks, reason="", best=None):
        return {"name": name, "seed": 0, "lr": 1e-4, "status": status, "reason": reason, "checks": checks,
                "best": best}  # fmt: skip

    flagged = {"step": 6, "validation": 0.5, "loss": 0.70, "flags": ["loss", "validation"], "rank": 4, "of": 4}
    ranked = {"step": 6, "validation": 0.7, "loss": 0.60, "flags": [], "rank": 3, "of": 4}
    kept = {"step": 6, "validation": 0.8, "loss": 0.50, "flags": [], "rank": 1, "of": 4}
    old = {"step": 6, "validation": 0.5, "loss": 0.71, "flagged": ["training loss 0.71 at the prior's"], "rank": 2}
    best = {"validation": {"accuracy": 0.9}, "test": {"accuracy": 0.8}}
    result = FitResult(
        settings={}, config={}, data={"name": "toy"}, metric="accuracy",
        baselines={"validation": {"score": 0.5}, "test": {"score": 0.5, "predictor": "always 'a'"}},
        candidates=[cand("c00", "dropped", [flagged], "at step 6: a long sentence"),
                    cand("c01", "dropped", [ranked], "at step 6: ranked 3 of 4"),
                    cand("c02", "finished", [kept], best=best),
                    cand("c03", "dropped", [old], "at step 6: training loss 0.71 at the prior's"),
                    cand("c04", "diverged", [], "diverged at step 3")],
        chosen="c02", success=True, verdict="VERDICT", test=best["test"], steps=10, full_steps=20,
    )  # fmt: skip
    lines = fit_table(result).splitlines()
    outcome = {line.split()[0]: line for line in lines if line.startswith("c0")}
    assert "dropped at step 6: loss at constant, val ≤ constant" in outcome["c00"] and "long" not in outcome["c00"]
    assert "dropped at step 6: ranked 3 of 4" in outcome["c01"]
    assert "CHOSEN" in outcome["c02"] and outcome["c02"].split()[-2:] == ["0.9000", "0.8000"]
    assert "dropped: at step 6: training loss 0.71 at the prior's" in outcome["c03"]
    assert "diverged: diverged at step 3" in outcome["c04"]
    legend = lines[len(outcome) + 1]
    assert legend.startswith("loss at constant: training loss ≥ 98% of the constant predictor's; val ≤ constant: ")
    assert "verdict: VERDICT" in lines


def test_keep_checkpoints_keeps_the_dropped_candidates_ones_to_continue_them(tiny_model_dir, toy_files, tmp_path,
                                                                            capsys):  # fmt: skip
    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--keep-checkpoints", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    kept = {p.parent.name for p in out.glob("candidates/*/run.checkpoint.pt")}
    assert kept == {c["name"] for c in result["candidates"] if c["status"] == "dropped"} and len(kept) == 3


@pytest.mark.parametrize("pooling", ["pooler", "mean"])
def test_the_probe_family_delivers_a_model_that_predict_reads(pooling, tiny_model_dir, toy_files, tmp_path, capsys,
                                                              monkeypatch):  # fmt: skip
    """`--families probe`: the frozen encoder's features and a cross-validated head, chosen and judged like any
    candidate; its folder is what `predict` scores the test rows with, to the same accuracy fit.json records; a
    rerun reads the stored probe instead of fitting it again. Over BERT's pooler the folder is a transformers
    classifier, which `transformers.pipeline` loads and which predicts the same; mean-pooled (a sentence-transformers
    folder) it is a probe folder (encoder/, probe_head.safetensors, steadytune.json), which transformers refuses
    rather than adding a random head."""
    import csv
    import shutil

    from transformers import AutoModelForSequenceClassification, pipeline

    import steadytune.fitting.search as search

    encoder = tiny_model_dir
    if pooling == "mean":
        encoder = tmp_path / "st"
        shutil.copytree(tiny_model_dir, encoder)
        (encoder / "modules.json").write_text(
            json.dumps(
                [
                    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                ]
            )
        )
        (encoder / "1_Pooling").mkdir()
        (encoder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    out = tmp_path / "fit"
    argv = [*_argv(encoder, toy_files, out)[: -len(FLAGS)], "--families", "probe", "--json", "--quiet"]
    code = main(argv)
    result = json.loads(capsys.readouterr().out)
    assert result["chosen"] == "probe" and result["steps"] == 0 and code == (0 if result["success"] else 1)
    probe = result["candidates"][0]
    assert probe["family"] == "probe" and probe["probe"]["head"] == "LogisticRegressionCV"
    assert probe["probe"]["format"] == ("transformers" if pooling == "pooler" else "probe")
    model = out / "model" if result["success"] else out / "candidates" / "probe" / "run" / "model"
    assert json.loads((model / "steadytune.json").read_text())["pooling"] == {"mode": pooling, "normalize": False}
    assert main(["predict", "--model", str(model), "--input", str(toy_files["test"]), "--output",
                 str(tmp_path / "p.csv")]) == 0  # fmt: skip
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    accuracy = sum(r["prediction"] == r["label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(result["test"]["accuracy"], abs=1e-12)
    if pooling == "pooler":
        assert (model / "config.json").is_file() and not (model / "encoder").exists()
        classify = pipeline("text-classification", model=str(model), tokenizer=str(model))
        labels = [r["label"] for r in classify([r["text"] for r in rows])]
        assert labels == [r["prediction"] for r in rows]  # the pipeline predicts what steadytune predicts
    else:
        assert {p.name for p in model.iterdir()} >= {"encoder", "probe_head.safetensors", "steadytune.json"}
        with pytest.raises((OSError, ValueError)):
            AutoModelForSequenceClassification.from_pretrained(model)
    if result["success"]:
        card = (model / "README.md").read_text()
        assert ("`transformers.pipeline`, `steadytune predict` and `steadytune.predict` all load" in card) == (
            pooling == "pooler"
        )
    monkeypatch.setattr(search, "run_probe", lambda *a, **k: pytest.fail("the stored probe was fitted again"))
    assert main(argv) == code
    assert json.loads(capsys.readouterr().out)["test"] == result["test"]


def test_families_are_checked():
    from steadytune.cli.parser import build_parser
    from steadytune.fitting import FitSettings, default_families

    assert FitSettings().families is None  # by the task, once fit knows it
    for small in (True, False):
        assert default_families(2, small=small) == ("probe", "contrastive", "finetune")
    assert default_families(1, small=True) == ("probe", "lp-ft", "finetune")  # LP-FT in the contrastive one's place
    assert default_families(1, small=False) == ("probe", "finetune")  # held out: LP-FT's epochs cost more than that
    parser = build_parser()
    args = parser.parse_args(["fit", "--task", "rte", "--out", "x"])
    assert args.families == FitSettings().families  # the CLI's default is the library's
    fit_help = " ".join(next(a for a in parser._subparsers._group_actions[0].choices["fit"]._actions
                             if a.dest == "families").help.split())  # fmt: skip
    regression = f"{','.join(default_families(1, small=True))} on a small file, " + ",".join(
        default_families(1, small=False)
    )
    assert f"default: {','.join(default_families(2, small=False))}, and for a regression task {regression}" in fit_help
    for bad, message in ((("svm",), "unknown family 'svm'"), ((), "got none"), (("probe", "probe"), "at most once")):
        with pytest.raises(Exception, match=message):
            FitSettings(families=bad)


def test_a_classification_file_under_cross_validate_below_rows_is_a_small_file(tiny_model_dir, tmp_path, capsys):
    """300 rows leave 30 test rows, enough for a held-out verdict, but 30 validation rows cannot choose among the
    families: a classification file under `cross_validate_below` rows (2000) is cross-validated over every row and
    runs no fine-tuning candidates. The folder remembers it: rerun with the held-out rule, it is refused, not mixed.
    A regression file of the same size keeps the held-out search, fine-tuning included."""
    from conftest import sentiment_rows, write_rows

    from steadytune.cli.parser import build_parser
    from steadytune.fitting import FitSettings

    args = build_parser().parse_args(["fit", "--task", "rte", "--out", "x"])
    assert args.cross_validate_below == FitSettings().cross_validate_below == 2000  # the CLI's default: the library's
    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(300, seed=3))
    argv = ["fit", "--model", str(tiny_model_dir), "--train-file", str(rows), "--out", str(tmp_path / "fit"),
            "--quiet", "--json", "--families", "probe,finetune"]  # fmt: skip
    code = main(argv)
    result = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in result["candidates"]] == ["probe"]
    assert result["judgement"]["split"] == "cross-validated" and result["judgement"]["n"] == 300
    assert code == (0 if result["judgement"]["yes"] else 1)
    assert main([*argv, "--cross-validate-below", "300"]) == 2  # held out at exactly 300 rows: another fit
    assert "fit.cross_validated" in capsys.readouterr().err
    assert main([*argv, "--cross-validate-below", "301"]) == code  # the same fit: re-judged, not refused
    assert json.loads(capsys.readouterr().out)["judgement"] == result["judgement"]

    regression = [{"text": r["text"], "label": f"{i % 7 / 2:.1f}"} for i, r in enumerate(sentiment_rows(300, seed=3))]
    path = write_rows(tmp_path / "scores.csv", regression)
    main(["fit", "--model", str(tiny_model_dir), "--train-file", str(path), "--out", str(tmp_path / "reg"), "--quiet",
          "--json", "--task-type", "regression", "--candidates", "1", "--epochs", "1"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["families"] == ["probe", "finetune"]  # a held-out regression file's defaults
    assert [c["name"] for c in result["candidates"]][0] == "probe" and len(result["candidates"]) == 2
    assert result["judgement"]["split"] == "test"


def test_a_small_file_is_judged_by_cross_validation_over_every_row(tiny_model_dir, tmp_path, capsys):
    """A 40-row file leaves 4 test rows, too few for a held-out verdict: fit (--families probe) runs the probe alone,
    cross-validates its fixed head over all 40 rows, and tests that score against label shuffles. The score is what
    scikit-learn's cross_val_predict gives on the same features, folds and head."""
    import numpy as np
    from conftest import sentiment_rows, write_rows
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from transformers import AutoModel

    from steadytune.data import load_user_data
    from steadytune.fitting.families import PERMUTATIONS, SMALL_C
    from steadytune.models import load_tokenizer
    from steadytune.probe import embed, pooling_of

    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(40, seed=5))
    out = tmp_path / "fit"
    code = main(["fit", "--model", str(tiny_model_dir), "--train-file", str(rows), "--out", str(out), "--quiet",
                 "--json", "--families", "probe"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    judged = result["judgement"]
    assert result["chosen"] == "probe" and [c["name"] for c in result["candidates"]] == ["probe"]
    assert judged["alpha"] == 0.05 and "Bonferroni" not in judged["corrected_for"]  # one family: nothing to correct
    assert judged["split"] == "cross-validated" and judged["n"] == 40 and code == (0 if judged["yes"] else 1)
    assert round(judged["p"] * (PERMUTATIONS + 1)) == pytest.approx(judged["p"] * (PERMUTATIONS + 1))
    data = load_user_data(str(rows))
    encoder, tok = AutoModel.from_pretrained(tiny_model_dir), load_tokenizer(str(tiny_model_dir))
    pooling = pooling_of(tiny_model_dir, encoder)
    x = np.concatenate([embed(encoder, tok, s, pooling) for s in (data.train, data.validation, data.test)])
    y = np.concatenate([np.asarray(s.labels) for s in (data.train, data.validation, data.test)])
    head = make_pipeline(StandardScaler(), LogisticRegression(C=SMALL_C, max_iter=5000))
    predicted = cross_val_predict(head, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert result["test"]["accuracy"] == pytest.approx((predicted == y).mean(), abs=1e-12)


def test_a_rerun_that_says_no_withdraws_an_earlier_yes(tiny_model_dir, toy_files, tmp_path, capsys, monkeypatch):
    """A finished yes, re-judged to a no (as a newer verdict could): `<out>/model` and its yes card do not outlive
    the yes. The model goes back to its candidate's folder (its only copy once the candidates' models were removed),
    the no line points there, and judged yes again it is delivered once more, the same weights."""
    from dataclasses import replace

    import steadytune.fitting.outcome as outcome

    out = tmp_path / "fit"
    argv = [*_argv(tiny_model_dir, toy_files, out), "--json"]
    assert main(argv) == 0
    chosen = json.loads(capsys.readouterr().out)["chosen"]
    weights = (out / "model" / "model.safetensors").read_bytes()
    real = outcome.judge
    # the fit's own verdict turns no; the check before training (a perfect model, n_candidates 0) stays as it was
    monkeypatch.setattr(outcome, "judge", lambda *a, **k: replace(real(*a, **k), yes=k["n_candidates"] == 0))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert not (out / "model").exists() and not json.loads((out / "fit.json").read_text())["success"]
    home = out / "candidates" / chosen / "run" / "model"
    assert (home / "model.safetensors").read_bytes() == weights and not (home / "README.md").exists()
    assert str(home) in err
    monkeypatch.undo()
    assert main(argv) == 0
    capsys.readouterr()
    assert (out / "model" / "model.safetensors").read_bytes() == weights and (out / "model" / "README.md").is_file()
