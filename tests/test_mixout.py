"""Tests for steadytune.mixout: the MixLinear layer's distribution, and applying/removing Mixout on a classifier.

The expectation over masks is checked exactly: every one of the 2⁴ keep-masks of a 4-input layer is observed in the
layer's own draws, identified column by column, and weighted by its Bernoulli(1 − p) probability.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
)

from steadytune.mixout import MixLinear, apply_mixout, remove_mixout

P = 0.3  # not 0.5, so swapping p and 1 - p shows
SIZES = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 37, "max_position_embeddings": 64}  # fmt: skip
# Written by hand: the Linear layers of a 2-block BERT classifier's encoder (pooler included), and its head.
BLOCK_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense")  # fmt: skip
ENCODER_LINEARS = {f"bert.encoder.layer.{i}.{n}" for i in range(2) for n in BLOCK_LINEARS} | {"bert.pooler.dense"}
INPUT_IDS = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 14, 3, 0]])


def _layer(p: float = P, seed: int = 0) -> MixLinear:
    """A float64 MixLinear(4 → 3) whose weight W has moved away from its target W0 (as after some training)."""
    torch.manual_seed(seed)
    layer = MixLinear(4, 3, p=p, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.add_(torch.randn_like(layer.weight))
        layer.bias.normal_()
    assert not torch.isclose(layer.weight, layer.target).any()
    return layer


def _keep_mask(layer: MixLinear, w: torch.Tensor) -> tuple[int, ...]:
    """Which input columns of a drawn weight kept W, each column being exactly the keep or the swap value.

    keep = 1: ((1 − 1)·W0 + W − p·W0) / (1 − p) = (W − p·W0) / (1 − p);  keep = 0: (W0 − p·W0) / (1 − p) = W0.
    """
    W, W0 = layer.weight.detach(), layer.target
    kept, swapped = (W - layer.p * W0) / (1 - layer.p), W0
    mask = []
    for j in range(layer.in_features):
        is_kept = torch.allclose(w[:, j], kept[:, j], rtol=1e-14, atol=1e-15)
        is_swapped = torch.allclose(w[:, j], swapped[:, j], rtol=1e-14, atol=1e-15)
        assert is_kept != is_swapped, f"column {j} is neither W's kept value nor W0: {w[:, j]}"
        mask.append(int(is_kept))
    return tuple(mask)


def test_eval_mode_and_p_zero_are_the_plain_linear_layer():
    layer = _layer()
    x = torch.randn(5, 4, dtype=torch.float64)
    layer.eval()
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    still = _layer(p=0.0).train()
    assert torch.equal(still(x), F.linear(x, still.weight, still.bias))
    layer.train()
    assert not torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))  # p > 0 in training: not the identity


def test_draws_are_columnwise_bernoulli_and_average_exactly_to_w():
    layer = _layer().train()
    torch.manual_seed(1)
    n = 4000
    draws: dict[tuple[int, ...], torch.Tensor] = {}
    masks = []
    for _ in range(n):
        w = layer.mixed_weight().detach()
        mask = _keep_mask(layer, w)
        masks.append(mask)
        draws.setdefault(mask, w)

    def prob(mask: tuple[int, ...]) -> float:
        return math.prod((1 - P) if k else P for k in mask)

    # Each column kept with probability 1 - p, independently: every mask at its probability (5 standard errors).
    keep_rate = torch.tensor(masks, dtype=torch.float64).mean(0)
    assert torch.all((keep_rate - (1 - P)).abs() < 5 * math.sqrt(P * (1 - P) / n)), keep_rate
    for mask in itertools.product((0, 1), repeat=4):
        freq = sum(m == mask for m in masks) / n
        assert abs(freq - prob(mask)) < 5 * math.sqrt(prob(mask) * (1 - prob(mask)) / n), (mask, freq)
    # The exact expectation over the 16 masks, from the layer's own weight for each mask, is W.
    assert len(draws) == 16
    expectation = sum(prob(mask) * w for mask, w in draws.items())
    torch.testing.assert_close(expectation, layer.weight.detach(), rtol=0, atol=1e-12)


def test_forward_uses_the_drawn_weight_and_gradients_reach_only_the_parameters():
    layer = _layer().train()
    x = torch.randn(5, 4, dtype=torch.float64)
    seed = next(s for s in range(100) if len(set(_draw_mask(layer, s))) == 2)  # some columns kept, some swapped
    mask = torch.tensor(_draw_mask(layer, seed), dtype=torch.float64)
    torch.manual_seed(seed)
    w = layer.mixed_weight().detach()
    torch.manual_seed(seed)
    out = layer(x)
    assert torch.equal(out, F.linear(x, w, layer.bias))
    out.sum().backward()
    # d/dW of sum(x W̃ᵀ + b): W enters W̃ only through kept columns, scaled by 1 / (1 - p).
    expected = (mask / (1 - P) * x.sum(0)).expand(3, 4)
    torch.testing.assert_close(layer.weight.grad, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(layer.bias.grad, torch.full((3,), 5.0, dtype=torch.float64))
    assert layer.target.grad is None and not layer.target.requires_grad


def _draw_mask(layer: MixLinear, seed: int) -> tuple[int, ...]:
    torch.manual_seed(seed)
    return _keep_mask(layer, layer.mixed_weight().detach())


def test_target_is_a_buffer_that_follows_dtype_and_device():
    layer = MixLinear(4, 3, p=P)
    assert "target" in dict(layer.named_buffers()) and "target" in layer.state_dict()
    assert "target" not in dict(layer.named_parameters())
    layer.to(torch.float64)
    assert layer.target.dtype == torch.float64 == layer.weight.dtype
    layer.to("meta")
    assert layer.target.device.type == "meta"

    linear = nn.Linear(4, 3)
    mix = MixLinear.from_linear(linear, P)
    assert mix.weight is linear.weight and mix.bias is linear.bias
    assert torch.equal(mix.target, linear.weight) and mix.target.data_ptr() != linear.weight.data_ptr()
    with torch.no_grad():
        linear.weight.add_(1.0)
    assert not torch.equal(mix.target, linear.weight)  # a copy of the values at that time, not a view


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, math.nan])
def test_invalid_probability_raises_value_error(p):
    with pytest.raises(ValueError, match=repr(p)):
        MixLinear(4, 3, p=p)
    model = _bert()
    with pytest.raises(ValueError, match=repr(p)):
        apply_mixout(model, p)
    assert not any(isinstance(m, MixLinear) for m in model.modules())


def _bert(seed: int = 0, **config) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**SIZES, **config)).double()


def _mixed(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if isinstance(m, MixLinear)}


def test_module_selection():
    model = _bert()
    assert set(apply_mixout(model, P)) == ENCODER_LINEARS == _mixed(model)
    assert type(model.classifier) is nn.Linear
    assert all(m.p == P for m in model.modules() if isinstance(m, MixLinear))

    model = _bert()
    assert set(apply_mixout(model, P, modules="all")) == ENCODER_LINEARS | {"classifier"} == _mixed(model)

    model = _bert()
    seen = []

    def queries(name: str, module: nn.Module) -> bool:
        seen.append((name, type(module)))
        return name.endswith(".query")

    assert set(apply_mixout(model, P, modules=queries)) == {f"bert.encoder.layer.{i}.attention.self.query"
                                                             for i in range(2)} == _mixed(model)  # fmt: skip
    assert {n for n, _ in seen} == ENCODER_LINEARS | {"classifier"} and {t for _, t in seen} == {nn.Linear}


def test_bad_modules_and_second_application_raise_value_error():
    model = _bert()
    with pytest.raises(ValueError, match="'encoders'"):
        apply_mixout(model, P, modules="encoders")
    assert not _mixed(model)
    apply_mixout(model, P)
    with pytest.raises(ValueError):
        apply_mixout(model, P, modules="all")
    assert _mixed(model) == ENCODER_LINEARS


def test_parameters_are_the_same_objects_and_training_mode_is_kept():
    model = _bert()
    before = dict(model.named_parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # built before Mixout: must still drive the model
    model.eval()
    apply_mixout(model, P)
    after = dict(model.named_parameters())
    assert after.keys() == before.keys() and all(after[n] is before[n] for n in before)
    assert not any(m.training for m in model.modules() if isinstance(m, MixLinear))

    model.train()
    query = model.bert.encoder.layer[0].attention.self.query
    old = query.weight.detach().clone()
    model(input_ids=INPUT_IDS, labels=torch.tensor([0, 1])).loss.backward()
    optimizer.step()
    assert not torch.equal(query.weight, old) and torch.equal(query.target, old)


@pytest.mark.parametrize("arch", ["bert", "roberta", "electra", "deberta-v2", "distilbert"])
def test_disable_dropout_leaves_mixout_the_only_noise(arch):
    torch.manual_seed(0)
    if arch == "distilbert":
        config = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    else:
        cls = {"bert": BertConfig, "roberta": RobertaConfig, "electra": ElectraConfig, "deberta-v2": DebertaV2Config}
        config = cls[arch](**SIZES, **({"relative_attention": True} if arch == "deberta-v2" else {}))
    model = AutoModelForSequenceClassification.from_config(config).double()
    apply_mixout(model, 0.0)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, nn.Dropout))
    model.train()
    with torch.no_grad():
        first, second = model(input_ids=INPUT_IDS).logits, model(input_ids=INPUT_IDS).logits
    assert torch.equal(first, second), f"train-mode outputs differ by {(first - second).abs().max().item():.3g}"


def test_keeping_dropout_leaves_its_probabilities_alone():
    model = _bert(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.15)
    before = {n: m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout)}
    assert before and all(p > 0 for p in before.values())
    apply_mixout(model, P, disable_dropout=False)
    assert {n: m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout)} == before


def _trained_with_mixout(seed: int = 0) -> BertForSequenceClassification:
    """A BERT with Mixout whose weights have moved away from their targets, as after some training."""
    model = _bert(seed)
    apply_mixout(model, P, modules="all")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _check_same_state(model: nn.Module, reference: nn.Module) -> None:
    got, want = model.state_dict(), reference.state_dict()
    assert got.keys() == want.keys()
    assert {k for k in want if k.endswith(".target")} == {f"{n}.target" for n in ENCODER_LINEARS | {"classifier"}}
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert not torch.equal(model.classifier.weight, model.classifier.target)


def test_state_dict_round_trips_through_safetensors_and_torch_save(tmp_path):
    trained = _trained_with_mixout(seed=0)
    state = {k: v.contiguous() for k, v in trained.state_dict().items()}

    save_file(state, tmp_path / "model.safetensors")
    fresh = _bert(seed=1)
    apply_mixout(fresh, P, modules="all")
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    _check_same_state(fresh, trained)

    torch.save(state, tmp_path / "model.pt")
    fresh = _bert(seed=2)
    apply_mixout(fresh, P, modules="all")
    fresh.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    _check_same_state(fresh, trained)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(input_ids=INPUT_IDS).logits, trained(input_ids=INPUT_IDS).logits)


def test_remove_mixout_restores_plain_linears_with_the_same_parameters():
    model = _trained_with_mixout()
    params = dict(model.named_parameters())
    with torch.no_grad():
        before = model(input_ids=INPUT_IDS).logits
    assert set(remove_mixout(model)) == ENCODER_LINEARS | {"classifier"}
    assert not _mixed(model)
    for name in ENCODER_LINEARS | {"classifier"}:
        module = model.get_submodule(name)
        assert type(module) is nn.Linear and not module.training
    after = dict(model.named_parameters())
    assert after.keys() == params.keys() and all(after[n] is params[n] for n in params)
    with torch.no_grad():
        assert torch.equal(model(input_ids=INPUT_IDS).logits, before)
    state = model.state_dict()
    assert not any(k.endswith(".target") for k in state)
    _bert(seed=1).load_state_dict(state)  # strict: loads into a plain classifier


def test_remove_mixout_without_bias():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2)).double()
    weight = model[0].weight
    assert apply_mixout(model, P, modules="all") == ["0", "2"]
    assert remove_mixout(model) == ["0", "2"]
    assert type(model[0]) is nn.Linear and model[0].bias is None and model[0].weight is weight


def test_encoder_includes_a_pooler_that_sits_beside_the_base_model():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(DebertaV2Config(**SIZES, relative_attention=True))
    replaced = apply_mixout(model, P)
    assert "pooler.dense" in replaced and "classifier" not in replaced
    assert isinstance(model.pooler.dense, MixLinear)
