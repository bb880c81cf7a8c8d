"""The LP-FT family: the probe's head, then the encoder and head fine-tuned together (`steadytune.lpft`), and fit's
use of it."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch
from conftest import REPO, sentiment_rows, write_rows

from steadytune.cli import main
from steadytune.lpft import LpftSettings, lpft_steps, train_lpft


def _split(n: int, seed: int = 0, *, regression: bool = False):
    from steadytune.data.splits import Split

    rows = sentiment_rows(n, seed=seed)
    labels = [float(len(r["text"]) % 5) if regression else int(r["label"] == "pos") for r in rows]
    return Split(([r["text"] for r in rows],), np.array(labels))


def _probe_model(encoder, tok, split, *, regression: bool = False):
    """The probe's solution on the frozen encoder: its features (float64) and a `ProbeModel` over its head."""
    from steadytune.probe import Pooling, ProbeModel, embed, fit_head

    pooling = Pooling("mean", True, "test")
    x = embed(encoder, tok, split, pooling)
    head = fit_head(x, split.labels, regression=regression)
    model = ProbeModel.from_head(encoder, pooling, head, num_labels=1 if regression else 2, label_names=None)
    return x, head, model


def _first_batch(n: int, seed: int, batch_size: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[:batch_size]


def test_the_first_step_starts_from_the_probes_solution_its_log_loss_in_float64(still_encoder):
    """The first step's loss is scikit-learn's log loss of the probe's head on that batch's rows (float64 features
    of the untouched encoder): the fine-tuning starts where the linear probe ended, not from a random head."""
    from sklearn.metrics import log_loss

    encoder, tok = still_encoder
    split = _split(24)
    x, head, model = _probe_model(encoder, tok, split)
    settings = LpftSettings(batch_size=8, min_steps=5, epochs=1)
    rows = _first_batch(24, 7, 8)
    expected = log_loss(split.labels[rows], head.predict_proba(x[rows]), labels=[0, 1])
    seen: list[tuple[int, int, float]] = []
    losses = train_lpft(model, tok, split, seed=7, settings=settings, fast_path=False,
                        step_done=lambda *a: seen.append(a))  # fmt: skip
    assert losses[0] == pytest.approx(expected, abs=1e-5)
    assert len(losses) == lpft_steps(24, settings) == 5 and [s for s, _, _ in seen] == [1, 2, 3, 4, 5]
    assert not encoder.training and not model.weight.requires_grad  # a buffer again, as ProbeModel keeps it


def test_a_regression_head_starts_from_the_ridge_solution(still_encoder):
    encoder, tok = still_encoder
    split = _split(24, regression=True)
    x, head, model = _probe_model(encoder, tok, split, regression=True)
    rows = _first_batch(24, 2, 8)
    expected = float(np.mean((head.predict(x[rows]) - split.labels[rows]) ** 2))
    losses = train_lpft(model, tok, split, seed=2, settings=LpftSettings(batch_size=8, min_steps=3, epochs=1),
                        fast_path=False)  # fmt: skip
    assert losses[0] == pytest.approx(expected, rel=1e-5) and len(losses) == 3


def test_steps_are_epochs_of_batches_with_a_floor():
    settings = LpftSettings()
    assert lpft_steps(16, settings) == settings.min_steps == 100  # 10 epochs of 1 step: the floor
    assert lpft_steps(1000, settings) == 10 * 63


def test_training_is_reproducible_moves_encoder_and_head_and_matches_the_dense_embedding(still_encoder):
    """Twice from the same seed: the same losses and weights; both the encoder and the head move; and training only
    the reachable embedding rows (the default) is the dense run to rounding, the rows never reached shrunk by the
    weight decay alone."""
    encoder, tok = still_encoder
    encoder.embeddings.word_embeddings.weight.data.add_(1.0)  # rows far from 0, so that their decay shows
    split = _split(24)
    _, _, start = _probe_model(encoder, tok, split)
    settings = LpftSettings(batch_size=8, min_steps=6, lr=1e-2, weight_decay=0.5)  # a decay one can see
    before = {k: v.clone() for k, v in start.state_dict().items()}
    runs = []
    for compact in (True, True, False):
        model = copy.deepcopy(start)
        losses = train_lpft(model, tok, split, seed=3, settings=settings, fast_path=False, compact_embedding=compact)
        runs.append((losses, model.state_dict()))
    (a, sa), (b, sb), (dense, sd) = runs
    assert a == b and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a == pytest.approx(dense, abs=1e-6) and all(torch.allclose(sa[k], sd[k], atol=1e-5) for k in sa)
    assert not torch.equal(sa["weight"], before["weight"]) and not torch.equal(sa["bias"], before["bias"])
    query = "encoder.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(sa[query], before[query])
    reached = set(np.concatenate([tok(t)["input_ids"] for t in split.texts[0]]).tolist())
    untouched = [i for i in range(tok.vocab_size) if i not in reached and i != tok.pad_token_id]
    key = "encoder.embeddings.word_embeddings.weight"
    shrink = sa[key][untouched] / before[key][untouched]
    assert untouched and torch.allclose(shrink, shrink[0, 0].expand_as(shrink)) and 0.5 < float(shrink[0, 0]) < 1


def _fit(tiny_model_dir, rows, out, *extra):
    return ["fit", "--model", str(tiny_model_dir), "--train-file", str(rows), "--out", str(out), "--quiet", "--json",
            *extra]  # fmt: skip


def test_a_small_file_cross_validates_lpft_beside_the_probe(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """40 rows (4 test rows): the probe and LP-FT are each cross-validated over every row and compared on the same 2
    folds; LP-FT's p is the exact binomial test of its out-of-fold predictions; its model predicts through `steadytune
    predict`, its card names the family, and a rerun re-judges the stored records without training."""
    from scipy.stats import binomtest

    from steadytune.fitting import search

    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(40, seed=5))
    out = tmp_path / "fit"
    code = main(_fit(tiny_model_dir, rows, out, "--families", "probe,lp-ft", "--keep-candidates"))
    result = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in result["candidates"]}
    assert list(by_name) == ["probe", "lp-ft"] and by_name["lp-ft"]["family"] == "lp-ft"
    judged, cv = result["judgement"], by_name["lp-ft"]["cv"]
    assert judged["split"] == "cross-validated" and judged["alpha"] == pytest.approx(0.025)
    assert code == (0 if judged["yes"] else 1) and cv["folds"] == 2 and cv["rows"] == 40
    assert cv["p"] == pytest.approx(binomtest(round(cv["score"] * 40), 40, 0.5, alternative="greater").pvalue)
    # 2 folds of 20 rows and the delivered model on 40: 100 steps each (the floor)
    assert by_name["lp-ft"]["steps"] == 3 * 100
    assert by_name["lp-ft"]["probe"]["head"] == "StandardScaler + LogisticRegression"
    model = out / "candidates" / "lp-ft" / "run" / "model"
    assert json.loads((model / "steadytune.json").read_text())["family"] == "lp-ft"
    assert main(["predict", "--model", str(model), "--input", str(rows), "--output", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as f:
        assert {r["prediction"] for r in csv.DictReader(f)} <= {"neg", "pos"}
    monkeypatch.setattr(search, "run_lpft", lambda *a, **k: pytest.fail("the stored model was trained again"))
    assert main(_fit(tiny_model_dir, rows, out, "--families", "probe,lp-ft")) == code
    assert json.loads(capsys.readouterr().out)["judgement"] == judged
    # the table a user reads: each family's own cross-validated score, the score on the shared folds that chose,
    # and its p; the LP-FT steps in the compute line
    main([a for a in _fit(tiny_model_dir, rows, out, "--families", "probe,lp-ft") if a != "--json"])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["family", "outcome", "cross-validated", "accuracy", "on", "the", "same", "folds",
                                "(chooses)", "p"]  # fmt: skip
    lpft_row = next(line.split() for line in table if line.startswith("lp-ft"))
    assert lpft_row[-4:] == [f"{cv['score']:.4f}", "(2-fold)", f"{cv['compare']:.4f}", f"{cv['p']:.2g}"]
    assert any(line.startswith("compute:") and "300 LP-FT steps" in line for line in table)


def test_a_regression_small_file_gets_lpft_judged_by_its_correlation(tiny_model_dir, tmp_path, capsys):
    """Regression: LP-FT starts from the ridge head; its out-of-fold predictions' Spearman correlation is judged by
    the t test of a correlation counted as one fold's rows (`families.out_of_fold_test`: 20 of 40), and both
    families are compared on the same 2 folds."""
    from scipy.stats import t as student_t

    rows = [{"text": r["text"], "label": f"{i % 7 / 2:.1f}"} for i, r in enumerate(sentiment_rows(40))]
    path = write_rows(tmp_path / "rows.csv", rows)
    main(_fit(tiny_model_dir, path, tmp_path / "fit", "--task-type", "regression", "--families", "probe,lp-ft"))
    result = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in result["candidates"]}
    assert list(by_name) == ["probe", "lp-ft"]
    cv = by_name["lp-ft"]["cv"]
    assert cv["metric"] == "spearmanr" and "t test" in cv["test"] and cv["folds"] == 2
    assert "(18 df)" in cv["test"] and "counted as one fold's 20 rows of 40" in cv["test"]
    r = min(cv["score"], 1 - 1e-12)
    assert cv["p"] == pytest.approx(float(student_t.sf(r * np.sqrt(18 / (1 - r * r)), 18)))
    assert "compare" in by_name["probe"]["cv"]  # the probe is scored on the shared folds too
    assert by_name["lp-ft"]["probe"]["head"] == "StandardScaler + Ridge"


def test_the_out_of_fold_correlation_test_holds_its_level_where_counting_every_row_does_not():
    """Scores with nothing to learn (iid noise, random features), the small-file head cross-fitted on the 2 shared
    folds: counting all rows, the t test of the pooled out-of-fold Spearman passes about twice as often as its level
    (the two folds' correlations are near copies); counted as one fold's rows (`out_of_fold_test`) it stays under."""
    from scipy.stats import spearmanr
    from scipy.stats import t as student_t

    from steadytune.fitting.families import _compare_folds, _small_head, out_of_fold_test

    rng = np.random.default_rng(0)
    every_row, one_fold, r_all = [], [], []
    for draw in range(300):
        y, x = rng.normal(size=128), rng.normal(size=(128, 64))
        predicted = np.zeros(128)
        for inside, outside in _compare_folds(y, draw, regression=True):
            predicted[outside] = _small_head(regression=True).fit(x[inside], y[inside]).predict(x[outside])
        r = float(spearmanr(predicted, y).statistic)
        r_all.append(r)
        every_row.append(student_t.sf(r * np.sqrt(126 / (1 - r * r)), 126))
        one_fold.append(out_of_fold_test({"spearmanr": r}, y, num_labels=1, metric="spearmanr")[0])
    assert np.mean(np.array(every_row) < 0.025) > 0.04  # 2.5% promised
    assert np.mean(np.array(one_fold) < 0.025) <= 0.025
    # the figures docs/results/verdict.md quotes
    passed = f"passed {(np.array(every_row) < 0.025).sum()} of the 300 at 0.025; counted as one fold's rows, " + str(
        (np.array(one_fold) < 0.025).sum()
    )
    page = " ".join((REPO / "docs" / "results" / "verdict.md").read_text(encoding="utf-8").split())
    assert passed in page and f"sd {np.std(r_all, ddof=1):.3f} (128 independent rows give 0.089)" in page


def test_a_regression_file_gets_lpft_by_default(tiny_model_dir, tmp_path, capsys):
    """With no --families, a regression task's families are probe, lp-ft, finetune (`default_families`): on a small
    file the probe and LP-FT are cross-validated and the pick held to 0.05/2. The folder stores the families it
    ran, so a rerun asking for the classification defaults is another fit (refused, naming fit.families), and the
    same defaults re-judge it."""
    rows = [{"text": r["text"], "label": f"{i % 7 / 2:.1f}"} for i, r in enumerate(sentiment_rows(40))]
    path = write_rows(tmp_path / "rows.csv", rows)
    argv = _fit(tiny_model_dir, path, tmp_path / "fit", "--task-type", "regression")
    code = main(argv)
    result = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in result["candidates"]] == ["probe", "lp-ft"]
    assert result["settings"]["families"] == ["probe", "lp-ft", "finetune"]
    assert result["judgement"]["split"] == "cross-validated" and result["judgement"]["alpha"] == pytest.approx(0.025)
    assert main([*argv, "--families", "probe,contrastive,finetune"]) == 2
    assert "fit.families" in capsys.readouterr().err
    assert main(argv) == code
    assert json.loads(capsys.readouterr().out)["judgement"] == result["judgement"]


def test_on_a_larger_file_lpft_is_a_held_out_candidate(tiny_model_dir, tmp_path, capsys):
    """300 rows, held out (--cross-validate-below 0): LP-FT trains on the training split from the probe's
    cross-validated head, is scored on validation and test like every candidate, and the verdict reads the test
    split."""
    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(300, seed=2))
    main(_fit(tiny_model_dir, rows, tmp_path / "fit", "--families", "lp-ft", "--cross-validate-below", "0"))
    result = json.loads(capsys.readouterr().out)
    (lpft,) = result["candidates"]
    assert lpft["name"] == "lp-ft" and "cv" not in lpft and lpft["best"]["test"]["accuracy"] is not None
    assert lpft["probe"]["head"] == "LogisticRegressionCV" and lpft["steps"] == lpft_steps(240)
    assert result["judgement"]["split"] == "test" and result["chosen"] == "lp-ft"


def test_features_that_hardly_vary_get_no_weight_in_the_start():
    """A standardised head divides each weight by its feature's scale; a feature of rounding noise (scale 1e-33, as
    three of all-MiniLM-L6-v2's normalised features are) would get a weight of ~1e31, whose gradient floods the
    clipped norm. LP-FT's start drops those weights, and the other features' logits are the head's own."""
    from steadytune.fitting.families import _small_head, _without_dead_features
    from steadytune.probe import Pooling, ProbeModel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = (x[:, 0] > 0).astype(int)
    x[:, 3] = 1e-33 * rng.normal(size=40)  # rounding noise
    head = _small_head(regression=False).fit(x, y)
    start = _without_dead_features(head)
    from transformers import BertConfig

    encoder = torch.nn.Linear(1, 1)  # not run: only the head is read
    encoder.config = BertConfig()
    loud = ProbeModel.from_head(encoder, Pooling("mean", False, "t"), head, num_labels=2, label_names=None)
    quiet = ProbeModel.from_head(encoder, Pooling("mean", False, "t"), start, num_labels=2, label_names=None)
    assert float(loud.weight.abs().max()) > 1e20 and float(quiet.weight[1, 3]) == 0.0
    assert float(quiet.weight.abs().max()) < 10 and head.steps[-1][1].coef_[0, 3] != 0  # the head itself is kept
    kept = np.delete(np.arange(5), 3)
    z = x @ quiet.weight.double().numpy()[1] + float(quiet.bias[1])
    scaled = (x[:, kept] - head.steps[0][1].mean_[kept]) / head.steps[0][1].scale_[kept]
    assert z == pytest.approx(scaled @ head.steps[-1][1].coef_[0, kept] + head.steps[-1][1].intercept_[0], abs=1e-5)


@pytest.mark.parametrize("family", ["lp-ft", "contrastive"])
@pytest.mark.parametrize("when", ["a fold", "the delivered model"])
def test_a_family_that_diverges_is_a_recorded_outcome(family, when, tiny_model_dir, tmp_path, capsys, monkeypatch):
    """A small file whose LP-FT or contrastive training ends on a non-finite loss, in a cross-validation fold or in
    the delivered model: the family is recorded as diverged (no scores, no model), the fit goes on with the probe,
    and nothing crashes."""
    import steadytune.contrastive as contrastive
    import steadytune.lpft as lpft

    module, name = (lpft, "train_lpft") if family == "lp-ft" else (contrastive, "train_contrastive")
    real, calls = getattr(module, name), []

    def diverging(*args, **kwargs):
        calls.append(1)
        losses = real(*args, **kwargs)
        return [*losses[:3], float("nan")] if when == "a fold" or len(calls) == 3 else losses

    monkeypatch.setattr(module, name, diverging)
    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(40, seed=5))
    out = tmp_path / "fit"
    code = main(_fit(tiny_model_dir, rows, out, "--families", f"probe,{family}"))
    result = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in result["candidates"]}
    bad = by_name[family]
    assert bad["status"] == "diverged" and bad["best"]["validation"] is None and bad["failure"]
    assert len(calls) == (1 if when == "a fold" else 3) and ("cv" in bad) == (when != "a fold")
    assert result["chosen"] == "probe" and code == (0 if result["success"] else 1)
    assert not (out / "candidates" / family / "run" / "model").exists()
