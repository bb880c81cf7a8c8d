"""Tests for steadytune.reinit: re-drawing the top Transformer blocks and the pooler of a loaded classifier.

The models are tiny random encoders whose every parameter is first overwritten with values far from a fresh
initialisation (weights ~ N(0, 0.5²), LayerNorm weights in [1.1, 1.5], nonzero biases), saved with
`save_pretrained` and reloaded with `from_pretrained`, so a re-drawn parameter is easy to tell from a kept one.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
)

from steadytune.errors import UserInputError
from steadytune.models import quiet_transformers
from steadytune.reinit import reinit_top_layers

DEPTH = 3
INIT_RANGE = 0.03  # not BERT's default 0.02, so a hard-coded std would show
SIZES = {"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": DEPTH, "num_attention_heads": 2,
         "intermediate_size": 128, "max_position_embeddings": 64, "initializer_range": INIT_RANGE}  # fmt: skip
ARCHS = ("bert", "roberta", "electra", "deberta-v2", "distilbert")

# Written by hand from the models' module names: the prefix of block i, and the pooler when pre-trained.
BLOCK_PREFIX = {
    "bert": "bert.encoder.layer.{}.",
    "roberta": "roberta.encoder.layer.{}.",
    "electra": "electra.encoder.layer.{}.",
    "deberta-v2": "deberta.encoder.layer.{}.",
    "distilbert": "distilbert.transformer.layer.{}.",
}
POOLER = {"bert": ("bert.pooler.dense.weight", "bert.pooler.dense.bias"),
          "deberta-v2": ("pooler.dense.weight", "pooler.dense.bias")}  # fmt: skip
# 6 Linear layers (weight + bias) and 2 LayerNorms (weight + bias) per block; DeBERTa adds pos_key/pos_query_proj.
PARAMS_PER_BLOCK = {"bert": 16, "roberta": 16, "electra": 16, "deberta-v2": 20, "distilbert": 16}


def _config(arch: str):
    if arch == "bert":
        return BertConfig(**SIZES)
    if arch == "roberta":
        return RobertaConfig(**SIZES)
    if arch == "electra":
        return ElectraConfig(**SIZES, embedding_size=32)  # != hidden_size: ELECTRA then has embeddings_project
    if arch == "deberta-v2":
        return DebertaV2Config(**SIZES, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                               norm_rel_ebd="layer_norm")  # fmt: skip
    return DistilBertConfig(vocab_size=100, dim=64, n_layers=DEPTH, n_heads=2, hidden_dim=128,
                            max_position_embeddings=64, initializer_range=INIT_RANGE)  # fmt: skip


def _is_norm(name: str) -> bool:
    """A LayerNorm parameter, by the module names these models use (`LayerNorm`; DistilBERT `*_layer_norm`)."""
    return name.rsplit(".", 1)[0].endswith(("LayerNorm", "layer_norm"))


def _pretend_pretrained(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if _is_norm(name) and name.endswith(".weight"):
                p.copy_(1.1 + 0.4 * torch.rand(p.shape, generator=g))  # around 1, never 1
            else:
                p.normal_(0.0, 0.5, generator=g)  # biases too: nonzero


def _save(arch: str, path) -> None:
    torch.manual_seed(0)
    config = _config(arch)
    # DeBERTa-v2's pooler sits beside the base model: save the whole classifier so the pooler is pre-trained too.
    model = (
        AutoModelForSequenceClassification.from_config(config)
        if arch == "deberta-v2"
        else AutoModel.from_config(config)
    )
    _pretend_pretrained(model, seed=1)
    model.save_pretrained(path, safe_serialization=True)


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """`load(arch)`: a fresh copy of the saved-and-reloaded float64 classifier of that architecture."""
    cache: dict[str, torch.nn.Module] = {}

    def _load(arch: str) -> torch.nn.Module:
        if arch not in cache:
            path = tmp_path_factory.mktemp(arch)
            _save(arch, path)
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
            model = model.double()
            # The fixture is only useful if the encoder really carries the saved, far-from-fresh values.
            base = model.base_model_prefix
            for name, p in model.named_parameters():
                if name.startswith(base + ".") or name in POOLER.get(arch, ()):
                    if _is_norm(name) and name.endswith(".weight"):
                        assert p.min().item() >= 1.1, name
                    else:
                        assert p.std().item() > 0.3, name
            cache[arch] = model
        return copy.deepcopy(cache[arch])

    return _load


def _expected(model: torch.nn.Module, arch: str, num_layers: int, pooler: bool) -> set[str]:
    prefixes = tuple(BLOCK_PREFIX[arch].format(i) for i in range(DEPTH - num_layers, DEPTH))
    names = {n for n, _ in model.named_parameters() if prefixes and n.startswith(prefixes)}
    if pooler:
        names |= set(POOLER.get(arch, ()))
    assert len(names) == num_layers * PARAMS_PER_BLOCK[arch] + (2 if pooler and arch in POOLER else 0)
    return names


def _snapshot(model: torch.nn.Module) -> tuple[dict, dict, dict]:
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    return params, buffers, grads


def _check_redrawn(model: torch.nn.Module, before: dict, targets: set[str]) -> None:
    """Targets drawn as BERT draws new parameters; every other parameter bit-identical."""
    params = dict(model.named_parameters())
    weights = []
    for name, p in params.items():
        p = p.detach()
        if name not in targets:
            assert torch.equal(p, before[name]), f"{name} changed but is not a target"
        elif name.endswith(".bias"):
            assert torch.all(p == 0), name
        elif _is_norm(name):
            assert torch.all(p == 1), name
        else:
            assert not torch.equal(p, before[name]), f"{name} was not re-drawn"
            assert p.std().item() == pytest.approx(INIT_RANGE, rel=0.1), name
            weights.append(p.flatten())
    if targets:
        assert weights, "no weight matrix among the targets"
        drawn = torch.cat(weights)
        assert drawn.std().item() == pytest.approx(INIT_RANGE, rel=0.1)
        assert abs(drawn.mean().item()) < 0.1 * INIT_RANGE


@pytest.mark.parametrize("pooler", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("arch", ARCHS)
def test_reinit_redraws_exactly_the_top_blocks_and_pooler(load, arch, num_layers, pooler):
    model = load(arch)
    targets = _expected(model, arch, num_layers, pooler)
    # Freeze one targeted and one kept parameter: requires_grad must come out as it went in.
    frozen = (sorted(targets)[0], next(n for n, _ in model.named_parameters() if n not in targets))
    for name in frozen:
        model.get_parameter(name).requires_grad_(False)
    params, buffers, grads = _snapshot(model)

    got = reinit_top_layers(model, num_layers, pooler=pooler, generator=torch.Generator().manual_seed(3))

    assert len(got) == len(set(got)) and set(got) == targets
    _check_redrawn(model, params, targets)
    for name, b in model.named_buffers():
        assert torch.equal(b, buffers[name]), f"buffer {name} changed"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert not any(model.get_parameter(n).requires_grad for n in frozen)


def test_all_blocks_leave_the_embeddings_and_head_alone(load):
    model = load("bert")
    params, _, _ = _snapshot(model)
    targets = _expected(model, "bert", DEPTH, pooler=True)
    assert set(reinit_top_layers(model, DEPTH)) == targets
    _check_redrawn(model, params, targets)
    assert not any(n.startswith(("bert.embeddings.", "classifier.")) for n in targets)


def test_zero_layers_redraws_only_the_pooler(load):
    model = load("bert")
    params, _, _ = _snapshot(model)
    assert sorted(reinit_top_layers(model, 0, pooler=True)) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]
    _check_redrawn(model, params, {"bert.pooler.dense.weight", "bert.pooler.dense.bias"})

    model = load("bert")
    assert reinit_top_layers(model, 0, pooler=False) == []
    _check_redrawn(model, params, set())


@pytest.mark.parametrize("arch", ["roberta", "electra", "distilbert"])
def test_pooler_is_a_no_op_without_a_pretrained_pooler(load, arch):
    model = load(arch)
    params, _, _ = _snapshot(model)
    assert reinit_top_layers(model, 0, pooler=True) == []
    _check_redrawn(model, params, set())


@pytest.mark.parametrize("arch", ["bert", "deberta-v2"])
def test_same_seed_same_weights_other_seed_other_weights(load, arch):
    def draw(seed: int | None, global_seed: int = 0) -> dict[str, torch.Tensor]:
        model = load(arch)
        torch.manual_seed(global_seed)  # the global stream must not matter
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        reinit_top_layers(model, 2, generator=generator)
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    a, b, c = draw(5), draw(5, global_seed=1), draw(6)
    assert all(torch.equal(a[n], b[n]) for n in a)
    redrawn = [n for n in _expected(load(arch), arch, 2, True) if not n.endswith(".bias") and not _is_norm(n)]
    assert all(not torch.equal(a[n], c[n]) for n in redrawn)
    # No generator: reproducible whatever the global seed, and documented as a fresh generator seeded 0.
    d, e, f = draw(None, global_seed=1), draw(None, global_seed=2), draw(0)
    assert all(torch.equal(d[n], e[n]) and torch.equal(d[n], f[n]) for n in d)


@pytest.mark.parametrize("num_layers", [DEPTH + 1, -1, 1.0, "1", True, None])
def test_bad_num_layers_is_a_user_error(load, num_layers):
    model = load("bert")
    params, _, _ = _snapshot(model)
    with pytest.raises(UserInputError) as info:
        reinit_top_layers(model, num_layers)
    message = str(info.value)
    assert "num_layers" in message and repr(num_layers) in message and str(DEPTH) in message
    _check_redrawn(model, params, set())


def test_albert_shared_layer_is_refused():
    config = AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=DEPTH,
                          num_attention_heads=2, intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    model = AlbertForSequenceClassification(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(UserInputError) as info:
        reinit_top_layers(model, 1)
    message = str(info.value).lower()
    assert "albert" in message and "shar" in message
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_numpy_integers_are_accepted(load):
    import numpy as np

    model = load("bert")
    names = reinit_top_layers(model, np.int64(1), pooler=False)
    assert names and all(n.startswith(f"bert.encoder.layer.{DEPTH - 1}.") for n in names)
