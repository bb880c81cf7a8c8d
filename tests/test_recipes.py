"""Recipes: the short form, presets, contradictions, and applying a recipe to a model and an optimizer."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from steadytune import PRESETS, AdamW, BertAdam, Recipe, TrainConfig, train
from steadytune.cli import main
from steadytune.errors import UserInputError
from steadytune.mixout import MixLinear
from steadytune.precision import resolve_precision
from steadytune.recipes import create_optimizer_and_scheduler, prepare_model


def test_the_paper_preset_is_the_papers_setup_and_an_unset_lr_follows_the_encoder():
    r = Recipe.parse("paper")
    assert (r.name, r.optimizer, r.lr, r.batch_size, r.epochs, r.warmup_ratio, r.max_grad_norm, r.weight_decay) == (
        "paper", "adamw", 2e-5, 32, 3.0, 0.1, 1.0, 0.0
    )  # fmt: skip
    assert (r.reinit_layers, r.reinit_pooler, r.llrd, r.mixout) == (0, False, None, 0.0)
    assert Recipe.parse("bertadam+paper").optimizer == "bertadam"
    assert Recipe.parse("adam") == Recipe() and Recipe().lr is None
    # paper §3 from BERT-base's 768 up (and when the width is unknown), 1e-4 for a narrower encoder
    assert [Recipe().resolved(w).lr for w in (None, 384, 767, 768, 1024)] == [2e-5, 1e-4, 1e-4, 2e-5, 2e-5]
    assert Recipe.parse("adam+lr=3e-5").resolved(384).lr == 3e-5  # a given lr stays
    assert Recipe().resolved(384).name == "adam"
    with pytest.raises(ValueError, match="no learning rate yet"):
        Recipe().optimizer_kwargs()


def test_an_unset_lr_resolves_from_the_model(tiny_model_dir):
    """train's default is adam+reinit:2 at the encoder's rate: the tiny model is 32 wide, so 1e-4, and the
    optimizer runs at it."""
    from steadytune import TrainConfig
    from steadytune.config import DEFAULT_RECIPE

    config = TrainConfig(model=str(tiny_model_dir))
    assert config.recipe.name == DEFAULT_RECIPE == "adam+reinit:2" and config.recipe.lr is None
    assert config.resolved().recipe.lr == 1e-4 and config.resolved(768).recipe.lr == 2e-5
    opt, _ = create_optimizer_and_scheduler(_tiny(tiny_model_dir), Recipe(), 10)
    assert {g["initial_lr"] for g in opt.param_groups} == {1e-4}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bertadam", {"optimizer": "bertadam"}),
        ("adam+reinit:3+longer:800", {"reinit_layers": 3, "reinit_pooler": True, "max_steps": 800}),
        ("adam+reinit", {"reinit_layers": 5, "reinit_pooler": True}),
        ("adam+llrd", {"llrd": 0.95}),
        ("adam+llrd:0.9", {"llrd": 0.9}),
        ("adam+mixout", {"mixout": 0.1}),
        ("adam+mixout:0.7", {"mixout": 0.7}),
        ("adam+prior-wd", {"prior_wd": True, "weight_decay": 1e-3}),
        ("adam+prior_wd:0.01", {"prior_wd": True, "weight_decay": 0.01}),
        ("adam+wd", {"weight_decay": 0.01}),
        ("adam+longer", {"max_steps": 400}),
        ("adam+lr=1e-4", {"lr": 1e-4}),
        ("bertadam+lr=5e-5+batch_size=16", {"optimizer": "bertadam", "lr": 5e-5, "batch_size": 16}),
        ("adam+betas=0.9,0.98", {"betas": (0.9, 0.98)}),
        ("adam+betas=0.9/0.98+eps=1e-8", {"betas": (0.9, 0.98), "eps": 1e-8}),
        ("adam+reinit:2+reinit_pooler=false", {"reinit_layers": 2}),
        ("adam+longer:800+max_steps=none", {}),
        ("ADAM + Reinit:1 + max-steps=7", {"reinit_layers": 1, "reinit_pooler": True, "max_steps": 7}),
    ],
)
def test_parse(text, expected):
    r = Recipe.parse(text)
    assert r.changes() == expected
    assert r.name == "".join(text.split())


def test_field_value_overrides_a_preset_but_presets_must_agree():
    assert Recipe.parse("adam+longer:800+max_steps=100").max_steps == 100
    assert Recipe.parse("adam+adam+reinit:2+reinit:2").reinit_layers == 2  # repeating the same thing is fine


@pytest.mark.parametrize(
    "text, message",
    [
        ("bertadam+adam", r"'bertadam' and 'adam' contradict each other \(optimizer = bertadam vs adamw\)"),
        ("adam+reinit:2+reinit:3", r"'reinit:2' and 'reinit:3' contradict"),
        ("adam+wd+prior-wd", r"'wd' and 'prior-wd' contradict"),
        ("adam+lr=1e-4+lr=2e-4", r"'lr=1e-4' and 'lr=2e-4' contradict"),
        ("adamm", r"unknown preset 'adamm'"),
        ("adam+nope=3", r"unknown field 'nope'"),
        ("adam+reinit:two", r"reinit_layers must be an integer, got 'two'"),
        ("adam+lr=fast", r"lr must be a number, got 'fast'"),
        ("adam+prior_wd=maybe", r"prior_wd must be true or false, got 'maybe'"),
        ("adam+betas=0.9", r"betas must be two numbers a,b, got '0.9'"),
        ("bertadam:3", r"takes no value"),
        ("adam+mixout:1", r"mixout must be in \[0, 1\), got 1.0"),
        ("adam+llrd:0", r"llrd must be in \(0, 1\], got 0.0"),
        ("adam+lr=-1", r"lr must be positive, got -1.0"),
        ("adam+optimizer=sgd", r"unknown optimizer 'sgd'"),
        ("adam+prior_wd=true", r"prior_wd needs weight_decay > 0"),
        ("", r"empty recipe"),
        ("adam++reinit", r"unknown preset ''"),
    ],
)
def test_bad_recipes_are_one_clear_error(text, message):
    with pytest.raises(UserInputError, match=message):
        Recipe.parse(text)


def test_recipe_is_frozen_and_round_trips():
    r = Recipe.parse("bertadam+reinit:2+llrd:0.9+lr=1e-4")
    with pytest.raises(AttributeError):
        r.lr = 1.0  # type: ignore[misc]
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.override(lr=1e-4) is r
    changed = r.override(lr=3e-4, batch_size=16)
    assert changed.name == "bertadam+reinit:2+llrd:0.9+lr=1e-4+lr=0.0003+batch_size=16"
    assert (changed.lr, changed.batch_size, changed.reinit_layers) == (3e-4, 16, 2)


def test_every_field_has_help_and_every_preset_a_source():
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(Recipe))
    assert all(p.source and p.summary for p in PRESETS.values())


def test_num_training_steps():
    assert Recipe().num_training_steps(1000) == 3 * 32  # ceil(1000 / 32) = 32 batches per epoch
    assert Recipe.parse("adam+epochs=1.5").num_training_steps(100) == 6  # ceil(1.5 * 4)
    assert Recipe.parse("adam+longer:800").num_training_steps(1000) == 800


def test_train_config_round_trip_is_flat(tiny_model_dir):
    c = TrainConfig(model=str(tiny_model_dir), recipe="bertadam+reinit:1+lr=1e-4")
    d = c.to_dict()
    assert d["recipe"] == "bertadam+reinit:1+lr=1e-4" and d["optimizer"] == "bertadam" and d["reinit_layers"] == 1
    assert TrainConfig.from_dict(json.loads(json.dumps(d))) == c
    assert TrainConfig.from_dict({"recipe": "adam+llrd"}).recipe.llrd == 0.95
    assert TrainConfig().with_overrides(recipe="bertadam", lr=1e-3).recipe.name == "bertadam+lr=0.001"
    with pytest.raises(TypeError, match="unknown setting"):
        TrainConfig().with_overrides(learning_rate=1e-3)


def _tiny(tiny_model_dir):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)


def test_prepare_model_reinits_then_mixes_toward_the_redrawn_weights(tiny_model_dir):
    model = _tiny(tiny_model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    done = prepare_model(model, Recipe.parse("adam+reinit:1+mixout:0.2"), generator=torch.Generator().manual_seed(3))
    assert done["reinitialized"] and all(
        n.startswith(("bert.encoder.layer.1.", "bert.pooler.")) for n in done["reinitialized"]
    )
    assert "bert.encoder.layer.1.attention.self.query" in done["mixout"] and "classifier" not in done["mixout"]
    q = model.bert.encoder.layer[1].attention.self.query
    assert isinstance(q, MixLinear) and torch.equal(q.target, q.weight)  # the target is the re-drawn weight
    assert not torch.equal(q.weight, before["bert.encoder.layer.1.attention.self.query.weight"])
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))  # the paper's code


def test_optimizer_and_schedule_follow_the_recipe(tiny_model_dir):
    model = _tiny(tiny_model_dir)
    opt, sched = create_optimizer_and_scheduler(model, Recipe.parse("bertadam+llrd:0.5+prior-wd:0.1+lr=1e-3"), 20)
    assert type(opt) is BertAdam and all(g["prior_weight_decay"] for g in opt.param_groups)
    lrs = sorted({g["initial_lr"] for g in opt.param_groups}, reverse=True)
    assert lrs == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])  # head, top block, bottom block, embeddings (L=2)
    assert all(g["lr"] == 0 for g in opt.param_groups)  # warm-up starts at 0: ceil(0.1 * 20) = 2 steps
    opt.step()  # no gradients yet: a no-op, but keeps torch's step order
    sched.step()
    assert {g["lr"] / g["initial_lr"] for g in opt.param_groups} == {0.5}

    opt, _ = create_optimizer_and_scheduler(model, Recipe.parse("adam+wd:0.01"), 10)
    assert type(opt) is AdamW and [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert not any(g["prior_weight_decay"] for g in opt.param_groups)


def test_train_with_a_full_recipe_records_it(tiny_model_dir, toy_files, tmp_path):
    r = train(model=str(tiny_model_dir), train_file=str(toy_files["train"]),
              validation_file=str(toy_files["validation"]), test_file=str(toy_files["test"]),
              recipe="adam+reinit:1+llrd:0.9+mixout:0.3+prior-wd:0.01+longer:6+lr=1e-3", out=tmp_path / "run",
              save_model=True)  # fmt: skip
    assert r.steps == 6 and r.config["recipe"].endswith("longer:6+lr=1e-3") and r.config["llrd"] == 0.9
    assert r.surgery["reinitialized"] and r.surgery["mixout"]
    assert all(math.isfinite(p["loss"]) for p in r.curve)
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")  # a plain classifier
    assert not any(isinstance(m, MixLinear) for m in saved.modules())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    # the record holds the precision "auto" resolved to on this machine; otherwise the recipe as parsed
    assert config["precision"] == resolve_precision("auto", torch.device("cpu"))
    recorded = TrainConfig.from_dict(config).recipe
    assert recorded == dataclasses.replace(Recipe.parse(config["recipe"]), precision=config["precision"])


def test_same_seed_same_run_with_reinit_and_mixout(tiny_model_dir, toy_files):
    kw = dict(model=str(tiny_model_dir), train_file=str(toy_files["train"]),
              validation_file=str(toy_files["validation"]), test_file=str(toy_files["test"]),
              recipe="adam+reinit:1+mixout:0.3+longer:4+lr=1e-3")  # fmt: skip
    a, b = train(**kw), train(**kw)
    assert [p["loss"] for p in a.curve] == [p["loss"] for p in b.curve]
    c = train(**kw, init_seed=5)
    assert [p["loss"] for p in c.curve] != [p["loss"] for p in a.curve]


def test_cli_recipes_lists_and_expands(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    assert "reinit_layers=5" in out and "sample_commands/reinit.sh" in out
    assert main(["recipes", "adam+reinit:2", "--json"]) == 0
    (expanded,) = json.loads(capsys.readouterr().out)
    assert expanded["reinit_layers"] == 2 and expanded["reinit_pooler"] is True and expanded["name"] == "adam+reinit:2"


@pytest.mark.parametrize("recipe", ["bertadam+adam", "adam+reinit:x", "wat"])
def test_cli_bad_recipe_is_one_line_exit_2(recipe, capsys, tmp_path):
    assert main(["train", "--task", "rte", "--recipe", recipe, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steadytune train: error: recipe ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_train_flags_override_the_recipe(tiny_model_dir, toy_files, capsys):
    code = main(["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]),
                 "--validation-file", str(toy_files["validation"]), "--test-file", str(toy_files["test"]),
                 "--recipe", "bertadam+reinit:1", "--lr", "1e-3", "--max-steps", "3", "--no-reinit-pooler",
                 "--json", "--quiet"])  # fmt: skip
    assert code in (0, 1)  # 1: the tiny run failed, a recorded outcome
    cfg = json.loads(capsys.readouterr().out)["config"]
    assert cfg["recipe"] == "bertadam+reinit:1+lr=0.001+max_steps=3+reinit_pooler=False"
    assert (cfg["optimizer"], cfg["lr"], cfg["max_steps"], cfg["reinit_pooler"]) == ("bertadam", 1e-3, 3, False)


def test_fits_reinit_flag_sets_the_default_recipes_reinit(tiny_model_dir):
    """train's default recipe re-initialises 2 blocks; fit's --reinit N replaces that (0 keeps them), while a
    recipe the user chose keeps its own re-init."""
    from steadytune import TrainConfig
    from steadytune.fitting import FitSettings, resolve

    base = TrainConfig(model=str(tiny_model_dir))
    for n, name in ((1, "adam+reinit:1"), (0, "adam"), (2, "adam+reinit:2")):
        config, _ = resolve(base, FitSettings(reinit=n))
        assert (config.recipe.name, config.recipe.reinit_layers) == (name, n)
    config, _ = resolve(base.with_overrides(recipe="bertadam+reinit:1"), FitSettings(reinit=2))
    assert config.recipe.reinit_layers == 1
