"""steadytune.hf: a recipe (re-init + LLRD) inside a real transformers.Trainer, and the stability callback."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import sentiment_rows
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from steadytune import AdamW, hf
from steadytune.precision import resolve_precision

RECIPE = "adam+reinit:1+llrd:0.8+lr=1e-3+batch_size=8+max_steps=4"


def _dataset(tokenizer, n: int, seed: int):
    import datasets

    rows = sentiment_rows(n, seed=seed)
    enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=32)
    return datasets.Dataset.from_dict({**enc, "labels": [int(r["label"] == "pos") for r in rows]})


def test_trainer_runs_a_recipe_with_reinit_and_llrd(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}

    done = hf.prepare_model(model, RECIPE, seed=0)
    top = "bert.encoder.layer.1.attention.self.query.weight"
    assert top in done["reinitialized"] and "bert.pooler.dense.weight" in done["reinitialized"]
    assert not torch.equal(model.state_dict()[top], pretrained[top])
    assert model.state_dict()[top].std().item() == pytest.approx(0.02, rel=0.25)  # 32×32 draws from N(0, 0.02²)
    bottom = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[bottom], pretrained[bottom])

    train_ds, eval_ds = _dataset(tokenizer, 48, 1), _dataset(tokenizer, 16, 2)
    extra = hf.training_arguments(RECIPE, len(train_ds))
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"  # auto: what this CPU has
    v5 = "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}
    grouping = {"train_sampling_strategy": "group_by_length"} if v5 else {"group_by_length": True, "report_to": "none"}
    on_cpu = {} if torch.cuda.is_available() else {"use_cpu": True}
    assert extra == {"per_device_train_batch_size": 8, "max_steps": 4, "max_grad_norm": 1.0, "bf16": bf16,
                     **grouping, **on_cpu}  # fmt: skip
    plain = hf.training_arguments(RECIPE + "+fp32+group_by_length=false", 48)
    assert plain["bf16"] is False and plain.get("train_sampling_strategy", "random") == "random"
    assert not plain.get("group_by_length", False)
    assert hf.training_arguments(RECIPE + "+bf16", 48)["bf16"] is True
    optimizer, scheduler = hf.create_optimizer(model, RECIPE, num_training_steps=extra["max_steps"])
    callback = hf.StabilityCallback(labels=eval_ds["labels"], num_labels=2)
    # no use_cpu or report_to here: the documented path gets them from training_arguments (report_to on 4.x only)
    args = TrainingArguments(output_dir=str(tmp_path), logging_steps=1, eval_strategy="steps", eval_steps=4,
                             save_strategy="no", disable_tqdm=True, seed=0,
                             **extra)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=DataCollatorWithPadding(tokenizer), optimizers=(optimizer, scheduler),
                      compute_metrics=hf.metrics_function(num_labels=2), callbacks=[callback])  # fmt: skip
    trainer.train()

    # the Trainer stepped our optimizer (accelerate may wrap it) over the LLRD groups
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert inner is optimizer and isinstance(optimizer, AdamW)
    by_name = {n: g for g in optimizer.param_groups for n in g["param_names"]}
    expected = {"classifier.weight": 1e-3, "bert.pooler.dense.weight": 1e-3, top: 8e-4, bottom: 6.4e-4,
                "bert.embeddings.word_embeddings.weight": 5.12e-4}  # fmt: skip
    for name, lr in expected.items():
        assert by_name[name]["initial_lr"] == pytest.approx(lr, rel=1e-12), name
    assert {len(g["params"]) for g in optimizer.param_groups} and sum(
        len(g["params"]) for g in optimizer.param_groups
    ) == sum(1 for p in model.parameters() if p.requires_grad)
    assert all(float(optimizer.state[p]["step"]) == 4 for g in optimizer.param_groups for p in g["params"])
    assert all(g["lr"] == 0.0 for g in optimizer.param_groups)  # linear decay to 0 at the last step

    # the callback saw every step's gradient norm and judged the run against the majority baseline
    assert [s for s, _ in callback.grad_norms] == [1, 2, 3, 4]
    assert all(math.isfinite(n) and n > 0 for _, n in callback.grad_norms)
    assert len([h for h in callback.history if "grad_norm" in h]) == 4
    assert callback.baseline == 0.5 and isinstance(callback.failed, bool) and not callback.diverged
    assert callback.failed == (callback.last_eval["eval_accuracy"] <= 0.5)
    assert trainer.state.log_history[-1]["steadytune_failed"] == callback.failed


def _state(step: int = 3) -> TrainerState:
    state = TrainerState()
    state.global_step = step
    return state


def test_callback_flags_failure_and_divergence():
    cb = hf.StabilityCallback(metric="accuracy", baseline=0.6)
    control = TrainerControl()
    cb.on_evaluate(None, _state(), control, metrics={"eval_accuracy": 0.6})
    cb.on_train_end(None, _state(), control)
    assert cb.failed is True  # at the baseline counts as failed (Mosbach et al.)

    cb = hf.StabilityCallback(metric="accuracy", baseline=0.6)
    cb.on_evaluate(None, _state(), control, metrics={"eval_accuracy": 0.61})
    cb.on_train_end(None, _state(), control)
    assert cb.failed is False

    cb = hf.StabilityCallback(metric="accuracy", baseline=0.6)
    control = TrainerControl()
    cb.on_log(None, _state(), control, logs={"loss": float("nan"), "grad_norm": 1.0})
    assert control.should_training_stop and cb.diverged
    cb.on_evaluate(None, _state(), control, metrics={"eval_accuracy": 0.9})
    cb.on_train_end(None, _state(), control)
    assert cb.failed is True

    cb = hf.StabilityCallback(metric="accuracy")  # neither baseline nor labels: cannot judge
    cb.on_train_end(None, _state(), TrainerControl())
    assert cb.failed is None
    with pytest.raises(ValueError, match="num_labels"):
        hf.StabilityCallback(labels=[0, 1, 1])


def test_cpu_fastpath_reaches_into_a_trainer(tiny_model_dir, tmp_path, monkeypatch):
    """`with steadytune.cpu_fastpath(): trainer.train()`: training forwards take the fast dropout and attention,
    evaluation (no gradients) keeps torch's attention."""
    import steadytune
    import steadytune.fastpath as fastpath

    calls = {"attention": 0}
    real = fastpath.attention

    def counting(*args, **kwargs):
        calls["attention"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(fastpath, "attention", counting)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3,
                             eval_strategy="steps", eval_steps=3, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(tokenizer, 24, 1),
                      eval_dataset=_dataset(tokenizer, 16, 2),
                      data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
    with steadytune.cpu_fastpath():
        trainer.train()
    assert calls["attention"] == 3 * 2  # 3 training steps × 2 layers; the evaluation's 2 batches × 2 layers are not
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])
