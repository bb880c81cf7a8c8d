"""Tests for steadytune.optim.llrd: layer-wise learning-rate decay groups, checked against a hand-written table.

Convention of the paper's code (Zhang et al. 2021): head and pooler at the base lr without weight decay, the top
block at lr·ξ, block k from the top at lr·ξᵏ, embeddings at lr·ξ^(L+1); no weight decay on biases and LayerNorms.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    get_linear_schedule_with_warmup,
)

import steadytune.optim
from steadytune.optim.llrd import llrd_param_groups

LR, XI, WD = 1e-3, 0.8, 0.01
SIZES = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
         "intermediate_size": 37, "max_position_embeddings": 64}  # fmt: skip

# --- The hand-written table for a 2-block BERT classifier (L = 2) -------------------------------------------------
# Parameters of one BERT block: local name -> whether it gets weight decay (weight matrices yes; biases, LayerNorm no).
BERT_BLOCK = {
    "attention.self.query.weight": True, "attention.self.query.bias": False,
    "attention.self.key.weight": True, "attention.self.key.bias": False,
    "attention.self.value.weight": True, "attention.self.value.bias": False,
    "attention.output.dense.weight": True, "attention.output.dense.bias": False,
    "attention.output.LayerNorm.weight": False, "attention.output.LayerNorm.bias": False,
    "intermediate.dense.weight": True, "intermediate.dense.bias": False,
    "output.dense.weight": True, "output.dense.bias": False,
    "output.LayerNorm.weight": False, "output.LayerNorm.bias": False,
}  # fmt: skip
# Block index (0 = bottom) -> k, its place from the top: layer 1 is the top block (ξ¹), layer 0 the bottom (ξ²).
BERT_K = {1: 1, 0: 2}
BERT_TABLE = {
    # embeddings: ξ^(L+1) = ξ³, weight decay on the embedding matrices only
    "bert.embeddings.word_embeddings.weight": (LR * XI**3, WD),
    "bert.embeddings.position_embeddings.weight": (LR * XI**3, WD),
    "bert.embeddings.token_type_embeddings.weight": (LR * XI**3, WD),
    "bert.embeddings.LayerNorm.weight": (LR * XI**3, 0.0),
    "bert.embeddings.LayerNorm.bias": (LR * XI**3, 0.0),
    # pooler and classifier head: the base lr, never weight decay
    "bert.pooler.dense.weight": (LR, 0.0),
    "bert.pooler.dense.bias": (LR, 0.0),
    "classifier.weight": (LR, 0.0),
    "classifier.bias": (LR, 0.0),
    **{f"bert.encoder.layer.{i}.{local}": (LR * XI**k, WD if decayed else 0.0)
       for i, k in BERT_K.items() for local, decayed in BERT_BLOCK.items()},
}  # fmt: skip
BERT_DEPTH = {"bert.embeddings.": 3, "bert.encoder.layer.0.": 2, "bert.encoder.layer.1.": 1, "bert.pooler.": 0,
              "classifier.": 0}  # fmt: skip


@pytest.fixture
def bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(**{**SIZES, "num_hidden_layers": 2})
    return BertForSequenceClassification(config).double()


def _placement(groups: list[dict]) -> dict[str, dict]:
    """Parameter name -> its group; fails if a name appears twice or names and params disagree."""
    out: dict[str, dict] = {}
    for g in groups:
        assert len(g["param_names"]) == len(g["params"])
        for name in g["param_names"]:
            assert name not in out, f"{name} in two groups"
            out[name] = g
    return out


def _check_exactly_once(model: torch.nn.Module, groups: list[dict]) -> None:
    params = dict(model.named_parameters())
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    for g in groups:
        assert g["params"], "empty group"
        for name, p in zip(g["param_names"], g["params"]):
            assert params[name] is p


def test_bert_matches_the_hand_written_table(bert):
    assert set(BERT_TABLE) == {n for n, _ in bert.named_parameters()}  # the table covers the whole model
    groups = llrd_param_groups(bert, LR, XI, weight_decay=WD)
    _check_exactly_once(bert, groups)
    placement = _placement(groups)
    assert set(placement) == set(BERT_TABLE)
    for name, (lr, wd) in BERT_TABLE.items():
        group = placement[name]
        assert math.isclose(group["lr"], lr, rel_tol=1e-12), (name, group["lr"], lr)
        assert group["weight_decay"] == wd, (name, group["weight_decay"], wd)
        assert group["depth"] == next(d for prefix, d in BERT_DEPTH.items() if name.startswith(prefix)), name
    # Head first, then down the stack: depth never decreases, lr never increases.
    assert groups[0]["depth"] == 0 and groups[0]["lr"] == LR
    assert "classifier.weight" in groups[0]["param_names"]
    assert [g["depth"] for g in groups] == sorted(g["depth"] for g in groups)
    assert [g["lr"] for g in groups] == sorted((g["lr"] for g in groups), reverse=True)


def test_frozen_parameters_appear_nowhere(bert):
    frozen = {"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.output.dense.bias", "classifier.bias"}
    for name in frozen:
        bert.get_parameter(name).requires_grad_(False)
    groups = llrd_param_groups(bert, LR, XI, weight_decay=WD)
    _check_exactly_once(bert, groups)
    assert set(_placement(groups)) == set(BERT_TABLE) - frozen


def test_fully_frozen_depth_leaves_no_empty_group(bert):
    for name, p in bert.named_parameters():
        if name.startswith("bert.embeddings."):
            p.requires_grad_(False)
    groups = llrd_param_groups(bert, LR, XI, weight_decay=WD)
    _check_exactly_once(bert, groups)
    assert 3 not in {g["depth"] for g in groups}


def test_decay_one_gives_every_group_the_base_lr(bert):
    groups = llrd_param_groups(bert, LR, 1.0, weight_decay=WD)
    _check_exactly_once(bert, groups)
    assert all(g["lr"] == LR for g in groups)
    for name, (_, wd) in BERT_TABLE.items():
        assert _placement(groups)[name]["weight_decay"] == wd


def _tiny(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch == "electra":
        config = ElectraConfig(**SIZES, embedding_size=16)
    elif arch == "deberta-v2":
        config = DebertaV2Config(**SIZES, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                                 norm_rel_ebd="layer_norm")  # fmt: skip
    else:
        config = DistilBertConfig(vocab_size=100, dim=32, n_layers=3, n_heads=2, hidden_dim=37,
                                  max_position_embeddings=64)  # fmt: skip
    return AutoModelForSequenceClassification.from_config(config)


# L = 3 here: top block (layer 2) at ξ¹, layer 0 at ξ³, embeddings at ξ⁴. name -> (depth, decayed).
PLACES = {
    "electra": {
        "electra.embeddings.word_embeddings.weight": (4, True),
        "electra.embeddings.LayerNorm.weight": (4, False),
        "electra.embeddings_project.weight": (4, True),
        "electra.embeddings_project.bias": (4, False),
        "electra.encoder.layer.2.attention.self.query.weight": (1, True),
        "electra.encoder.layer.1.intermediate.dense.weight": (2, True),
        "electra.encoder.layer.0.output.LayerNorm.weight": (3, False),
        "classifier.dense.weight": (0, False),
        "classifier.out_proj.weight": (0, False),
        "classifier.out_proj.bias": (0, False),
    },
    "deberta-v2": {
        "deberta.embeddings.word_embeddings.weight": (4, True),
        "deberta.encoder.rel_embeddings.weight": (4, True),
        "deberta.encoder.LayerNorm.weight": (4, False),
        "deberta.encoder.LayerNorm.bias": (4, False),
        "deberta.encoder.layer.2.attention.self.pos_key_proj.weight": (1, True),
        "deberta.encoder.layer.1.attention.self.query_proj.bias": (2, False),
        "deberta.encoder.layer.0.attention.output.LayerNorm.weight": (3, False),
        "pooler.dense.weight": (0, False),
        "pooler.dense.bias": (0, False),
        "classifier.weight": (0, False),
    },
    "distilbert": {
        "distilbert.embeddings.word_embeddings.weight": (4, True),
        "distilbert.embeddings.position_embeddings.weight": (4, True),
        "distilbert.embeddings.LayerNorm.bias": (4, False),
        "distilbert.transformer.layer.2.attention.q_lin.weight": (1, True),
        "distilbert.transformer.layer.1.ffn.lin1.weight": (2, True),
        "distilbert.transformer.layer.0.sa_layer_norm.weight": (3, False),
        "distilbert.transformer.layer.0.output_layer_norm.bias": (3, False),
        "pre_classifier.weight": (0, False),
        "pre_classifier.bias": (0, False),
        "classifier.weight": (0, False),
    },
}


@pytest.mark.parametrize("arch", list(PLACES))
def test_other_architectures_put_their_parts_at_the_documented_depth(arch):
    model = _tiny(arch)
    groups = llrd_param_groups(model, LR, XI, weight_decay=WD)
    _check_exactly_once(model, groups)
    placement = _placement(groups)
    for name, (depth, decayed) in PLACES[arch].items():
        group = placement[name]
        assert group["depth"] == depth, (name, group["depth"])
        assert math.isclose(group["lr"], LR * XI**depth, rel_tol=1e-12), name
        assert group["weight_decay"] == (WD if decayed else 0.0), name


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"decay": 0.0}, "0.0"), ({"decay": 1.5}, "1.5"), ({"decay": -0.1}, "-0.1"), ({"decay": math.nan}, "nan"),
     ({"lr": 0.0}, "0.0"), ({"lr": -1e-3}, "-0.001"), ({"lr": math.nan}, "nan"),
     ({"weight_decay": -0.01}, "-0.01")],
)  # fmt: skip
def test_invalid_hyperparameters_raise_value_error_quoting_the_value(bert, kwargs, bad):
    args = {"lr": LR, "decay": XI, "weight_decay": WD, **kwargs}
    with pytest.raises(ValueError) as info:
        llrd_param_groups(bert, args["lr"], args["decay"], weight_decay=args["weight_decay"])
    assert bad in str(info.value)


def _loss(model: torch.nn.Module) -> torch.Tensor:
    input_ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 14, 3, 0]])
    out = model(input_ids=input_ids, attention_mask=(input_ids != 0).long(), labels=torch.tensor([0, 1]))
    return out.loss


@pytest.mark.parametrize("optimizer_cls", [steadytune.optim.AdamW, torch.optim.AdamW])
def test_groups_drive_an_optimizer_and_a_linear_schedule(bert, optimizer_cls):
    bert.eval()  # no dropout: the first Adam step moves each parameter by about its group's lr
    groups = llrd_param_groups(bert, LR, XI)
    optimizer = optimizer_cls(groups, lr=123.0, eps=1e-12)  # the groups' lr must win over the default
    before = {n: p.detach().clone() for n, p in bert.named_parameters()}
    _loss(bert).backward()
    optimizer.step()
    checked = set()
    for name, (lr, _) in BERT_TABLE.items():
        p = bert.get_parameter(name)
        if p.grad.abs().max() > 1e-6:
            # Bias-corrected Adam's first step is lr·g/(|g| + eps): the largest move is the group's lr.
            step = (p.detach() - before[name]).abs().max().item()
            assert step == pytest.approx(lr, rel=1e-3), name
            checked.add(lr)
    assert len(checked) == 4  # head/pooler, both blocks and the embeddings were all seen moving

    schedule = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=2, num_training_steps=10)
    assert all(g["lr"] == 0.0 for g in optimizer.param_groups)  # warm-up starts at 0
    optimizer.step()
    schedule.step()  # step 1 of 2 warm-up steps: every group at half its own lr
    for g in optimizer.param_groups:
        assert math.isclose(g["initial_lr"], LR * XI ** g["depth"], rel_tol=1e-12)
        assert math.isclose(g["lr"], 0.5 * LR * XI ** g["depth"], rel_tol=1e-12)
    for _ in range(4):
        optimizer.step()
        schedule.step()  # step 5: decay to (10 - 5) / (10 - 2) of each group's lr
    for g in optimizer.param_groups:
        assert math.isclose(g["lr"], 5 / 8 * LR * XI ** g["depth"], rel_tol=1e-12)
