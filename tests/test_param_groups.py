"""Tests for steadytune.optim.param_groups: no weight decay on biases and norm weights, decided by module type."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from steadytune.optim import AdamW, BertAdam, create_optimizer, param_groups

TINY_BERT = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**TINY_BERT, intermediate_size=37))


def _ids(params: list[torch.Tensor]) -> list[int]:
    return [id(p) for p in params]


def _by_decay(groups: list[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    decay = [p for g in groups if g["weight_decay"] != 0 for p in g["params"]]
    no_decay = [p for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    return decay, no_decay


def test_bert_every_trainable_param_exactly_once(bert: BertForSequenceClassification) -> None:
    groups = param_groups(bert, weight_decay=0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    got = _ids([p for g in groups for p in g["params"]])
    assert len(got) == len(set(got))
    assert set(got) == {id(p) for p in bert.parameters() if p.requires_grad}
    # Names are the model's own parameter names, aligned with the params.
    names = dict(bert.named_parameters())
    for g in groups:
        assert len(g["param_names"]) == len(g["params"])
        for name, p in zip(g["param_names"], g["params"], strict=True):
            assert names[name] is p


def test_bert_no_decay_is_exactly_biases_and_layernorm_weights(bert: BertForSequenceClassification) -> None:
    expected = set()
    for module in bert.modules():
        for local_name, p in module.named_parameters(recurse=False):
            if local_name == "bias" or isinstance(module, nn.LayerNorm):
                expected.add(id(p))
    assert len(expected) > 0
    decay, no_decay = _by_decay(param_groups(bert, weight_decay=0.01))
    assert set(_ids(no_decay)) == expected
    assert not set(_ids(decay)) & expected
    # Sanity on names: every LayerNorm weight and every bias is in no-decay; embeddings are decayed.
    no_decay_names = {
        n for g in param_groups(bert, weight_decay=0.01) if g["weight_decay"] == 0 for n in g["param_names"]
    }
    assert "bert.embeddings.LayerNorm.weight" in no_decay_names
    assert "bert.encoder.layer.1.output.LayerNorm.weight" in no_decay_names
    assert "classifier.bias" in no_decay_names
    assert "bert.embeddings.word_embeddings.weight" not in no_decay_names


class MyRMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class FooLayerNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, x.shape[-1:], self.gamma, self.beta)


class Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.rms = MyRMSNorm(4)
        self.norm = FooLayerNorm(4)
        # Named "LayerNorm" but a plain Linear: its weight must still be decayed.
        self.LayerNorm = nn.Linear(4, 4, bias=False)
        self.scale = nn.Parameter(torch.ones(4))  # owned by a plain module, not a bias: decayed


def _names(groups: list[dict]) -> tuple[set[str], set[str]]:
    decay = {n for g in groups if g["weight_decay"] != 0 for n in g["param_names"]}
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    return decay, no_decay


def test_custom_norm_classes_by_class_name_and_decision_by_type() -> None:
    decay, no_decay = _names(param_groups(Custom(), weight_decay=0.1))
    assert no_decay == {"proj.bias", "rms.weight", "norm.gamma", "norm.beta"}
    assert decay == {"proj.weight", "LayerNorm.weight", "scale"}


def test_torch_norm_types_get_no_decay() -> None:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 4, 3, bias=False),
        nn.BatchNorm2d(4),
        nn.GroupNorm(2, 4),
        nn.InstanceNorm2d(4, affine=True),
    ]
    if hasattr(nn, "RMSNorm"):
        layers.append(nn.RMSNorm(4))
    model = nn.Sequential(*layers)
    decay, no_decay = _by_decay(param_groups(model, weight_decay=0.1))
    assert _ids(decay) == [id(model[0].weight)]
    assert set(_ids(no_decay)) == {id(p) for m in list(model)[1:] for p in m.parameters()}


def test_frozen_params_excluded(bert: BertForSequenceClassification) -> None:
    frozen = list(bert.bert.embeddings.parameters())
    try:
        for p in frozen:
            p.requires_grad_(False)
        groups = param_groups(bert, weight_decay=0.01)
        got = set(_ids([p for g in groups for p in g["params"]]))
        assert not got & set(_ids(frozen))
        assert got == {id(p) for p in bert.parameters() if p.requires_grad}
        assert not any(n.startswith("bert.embeddings.") for g in groups for n in g["param_names"])
    finally:
        for p in frozen:
            p.requires_grad_(True)


def test_tied_weights_appear_once() -> None:
    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(**TINY_BERT, intermediate_size=37))
    tied = mlm.cls.predictions.decoder.weight
    assert tied is mlm.bert.embeddings.word_embeddings.weight
    groups = param_groups(mlm, weight_decay=0.01)
    got = _ids([p for g in groups for p in g["params"]])
    assert len(got) == len(set(got)) == len(list(mlm.parameters()))
    assert got.count(id(tied)) == 1
    decay, _ = _by_decay(groups)
    assert id(tied) in _ids(decay)

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(7, 4)
            self.out = nn.Linear(4, 7)
            self.out.weight = self.emb.weight
            self.shared = nn.ModuleList([self.out, self.out])  # the same module under several paths

    model = Tied()
    groups = param_groups(model, weight_decay=0.1)
    assert sorted(n for g in groups for n in g["param_names"]) == ["emb.weight", "out.bias"]


def test_lr_option_and_empty_groups_omitted() -> None:
    model = nn.Linear(3, 2, bias=False)
    groups = param_groups(model, weight_decay=0.1, lr=5e-5)
    assert len(groups) == 1
    assert groups[0]["lr"] == 5e-5 and groups[0]["weight_decay"] == 0.1
    assert "lr" not in param_groups(model, weight_decay=0.1)[0]
    model.weight.requires_grad_(False)
    assert param_groups(model, weight_decay=0.1) == []
    with pytest.raises(ValueError, match="no trainable parameters"):
        create_optimizer(model, lr=1e-3)


@pytest.mark.parametrize("cls", [AdamW, BertAdam, torch.optim.AdamW])
def test_create_optimizer(bert: BertForSequenceClassification, cls: type[torch.optim.Optimizer]) -> None:
    opt = create_optimizer(bert, cls, lr=2e-5, weight_decay=0.01, betas=(0.9, 0.98))
    assert isinstance(opt, cls)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert all(g["lr"] == 2e-5 and g["betas"] == (0.9, 0.98) for g in opt.param_groups)
    _, no_decay = _by_decay(opt.param_groups)
    assert set(_ids(no_decay)) == {id(p) for n, p in bert.named_parameters() if n.endswith("bias") or "LayerNorm" in n}
    # torch keeps the extra "param_names" key, also through state_dict().
    assert opt.state_dict()["param_groups"][0]["param_names"][0] == "bert.embeddings.word_embeddings.weight"


def test_create_optimizer_trains_tiny_bert() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY_BERT, intermediate_size=37))
    opt = create_optimizer(model, AdamW, lr=1e-3, weight_decay=0.01, bias_correction=False)
    assert all(g["bias_correction"] is False for g in opt.param_groups)
    inputs = torch.randint(0, 99, (4, 8))
    labels = torch.tensor([0, 1, 0, 1])
    before = model.classifier.weight.detach().clone()
    loss = model(input_ids=inputs, labels=labels).loss
    loss.backward()
    opt.step()
    assert not torch.equal(model.classifier.weight.detach(), before)
