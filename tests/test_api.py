"""The Python API's results: `train(..., return_model=True)` hands on the model `save_model` writes, and results
and audits print as a few readable lines, not as a wall of fields."""

from __future__ import annotations

import json

import pytest
import torch

import steadytune
from steadytune import train


def _files(toy_files) -> dict[str, str]:
    return {"train_file": str(toy_files["train"]), "validation_file": str(toy_files["validation"]),
            "test_file": str(toy_files["test"])}  # fmt: skip


def test_the_returned_model_is_the_saved_one(tiny_model_dir, toy_files, tmp_path):
    """With surgery (Mixout, a re-initialised block) and the compact embedding undone: a plain classifier on the
    CPU whose logits equal those of the folder `save_model` wrote, bit for bit."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from steadytune.mixout import MixLinear

    out = tmp_path / "run"
    result = train(model=str(tiny_model_dir), **_files(toy_files), recipe="adam+mixout:0.1+reinit:1", max_steps=6,
                   num_evals=3, lr=1e-3, save_model=True, out=out, return_model=True)  # fmt: skip
    model = result.model
    assert type(model).__name__ == "BertForSequenceClassification" and not model.training
    assert not any(isinstance(m, MixLinear) for m in model.modules())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model.get_input_embeddings().weight.shape[0] == AutoTokenizer.from_pretrained(out / "model").vocab_size
    saved = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    batch = tokenizer(["the movie was good", "awful plot", "a very fine film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, saved(**batch).logits)
    assert "model" not in result.to_dict() and "model" not in json.loads((out / "metrics.json").read_text())
    assert "model attached" in repr(result)


def test_no_model_is_held_unless_asked(tiny_model_dir, toy_files):
    result = train(model=str(tiny_model_dir), **_files(toy_files), max_steps=2, num_evals=1)
    assert result.model is None and "model" not in result.to_dict()


def test_a_run_result_prints_as_a_few_lines(tiny_model_dir, toy_files):
    result = train(model=str(tiny_model_dir), **_files(toy_files), max_steps=3, num_evals=1)
    text = repr(result)
    m = result.metric
    assert text.startswith("RunResult(") and len(text.splitlines()) <= 4 and len(text) < 700, text
    for fact in (f"task={result.data['name']!r}", "recipe='adam+reinit:2+max_steps=3'", "seed=0", f"metric={m!r}",
                 f"best (step {result.best['step']}): validation {result.best['validation'][m]:.4f}, test "
                 f"{result.test_best:.4f}", f"last (step 3): validation {result.last['validation'][m]:.4f}",
                 f"failed={result.failed}", "diverged=False", "steps=3/3"):  # fmt: skip
        assert fact in text, (fact, text)
    assert "curve" not in text and "grad_norm" not in text


def test_an_audit_prints_its_verdict_and_findings_in_a_few_lines():
    report = steadytune.audit_optimizer(steadytune.BertAdam, lr=1e-3)
    text = repr(report)
    assert len(text.splitlines()) <= 5 and len(text) < 600, text
    for fact in ("optimizer='steadytune.BertAdam'", "lr=0.001", "verdict='bias correction omitted'", "exit_code=1",
                 "bias_correction=False", "betas=(0.9, 0.999)", "weight_decay='decoupled"):  # fmt: skip
        assert fact in text, (fact, text)
    assert "step_over_lr" not in text and "evidence" not in text
    assert str(report) == report.format()  # print(report): the full report with its evidence


def test_a_fit_result_prints_as_a_few_lines():
    statuses = ["finished", "dropped", "dropped", "diverged"]
    candidates = [{"name": f"c0{i}", "status": s} for i, s in enumerate(statuses)]
    result = steadytune.FitResult(
        settings={}, config={}, data={"name": "toy"}, metric="accuracy",
        baselines={"test": {"score": 0.5, "predictor": "always 'neg'"}}, candidates=candidates, chosen="c00",
        success=True, verdict="c00: validation accuracy 0.9583 against 0.5000", test={"accuracy": 0.9167},
        steps=128, full_steps=256,
    )  # fmt: skip
    text = repr(result)
    assert len(text.splitlines()) <= 4, text
    facts = ["task='toy'", "chosen='c00'", "success=True", "test accuracy 0.9167", "0.5000, always 'neg'",
             "1 finished, 2 dropped, 1 diverged", "steps=128/256", "verdict='c00: validation accuracy"]  # fmt: skip
    for fact in facts:
        assert fact in text, (fact, text)


@pytest.mark.parametrize("name", ["RunResult", "AuditReport", "FitResult"])
def test_reprs_are_defined_by_the_classes(name):
    assert "__repr__" in vars(getattr(steadytune, name))
