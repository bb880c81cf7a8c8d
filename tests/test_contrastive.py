"""The contrastive family: SetFit's pairs and loss (`steadytune.contrastive`), and fit's use of it."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from conftest import sentiment_rows, write_rows

from steadytune.cli import main
from steadytune.contrastive import (
    ContrastiveSettings,
    label_rows,
    pair_batches,
    pairs,
    train_contrastive,
    with_partners,
)


def test_pairs_give_every_row_one_partner_of_its_class_and_one_of_another_per_round():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    triples = pairs(labels, iterations=7, rng=np.random.default_rng(3))
    assert triples.shape == (2 * 7 * len(labels), 3)
    first, second, target = triples[:, 0].astype(int), triples[:, 1].astype(int), triples[:, 2]
    for i in range(len(labels)):
        mine = first == i
        assert (target[mine] == 1).sum() == 7 and (target[mine] == 0).sum() == 7
    positive, negative = target == 1, target == 0
    assert (labels[first[positive]] == labels[second[positive]]).all() and (first[positive] != second[positive]).all()
    assert (labels[first[negative]] != labels[second[negative]]).all()
    again = pairs(labels, iterations=7, rng=np.random.default_rng(3))
    assert (again == triples).all()  # the seed decides the pairs
    with pytest.raises(ValueError, match="two classes"):
        pairs(np.zeros(5, dtype=int), iterations=1, rng=np.random.default_rng(0))


def test_a_class_of_one_row_pairs_it_with_itself():
    triples = pairs(np.array([0, 1, 1]), iterations=2, rng=np.random.default_rng(0))
    row0 = triples[(triples[:, 0] == 0) & (triples[:, 2] == 1)]
    assert (row0[:, 1] == 0).all()


def test_label_names_that_are_words_become_rows_of_their_class():
    """`label_rows`: each name `copies` times, labelled with its own id; none for numbers, transformers' default
    names, a regression task or 0 copies."""
    rows = label_rows(("negative", "positive", "1 star"), copies=3)
    assert rows.texts == (["negative", "positive", "1 star"] * 3,) and rows.labels.tolist() == [0, 1, 2] * 3
    for names in (("0", "1"), ("LABEL_0", "LABEL_1"), ("label 0", "positive"), ("-1", "+1"), ("2.5", "good"), None):
        assert label_rows(names, copies=8) is None, names
    assert label_rows(("neg", "pos"), copies=0) is None
    joined = with_partners(_split(4), rows)
    assert joined.texts[0][4:] == rows.texts[0] and joined.labels.tolist()[4:] == rows.labels.tolist()
    assert with_partners(_split(4), None).labels.tolist() == _split(4).labels.tolist()


def test_partner_rows_are_drawn_as_partners_and_draw_none():
    """`pairs(drawing=k)`: the first k rows draw their partners as before (2 per round), the rest appear only as
    partners, of their own class for target 1 and of another for 0; without `drawing` every row draws, the same
    triples as before."""
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1])  # rows 6-9: partners only
    triples = pairs(labels, iterations=50, rng=np.random.default_rng(2), drawing=6)
    first, second, target = triples[:, 0].astype(int), triples[:, 1].astype(int), triples[:, 2]
    assert len(triples) == 2 * 50 * 6 and set(first) == set(range(6))
    assert set(second) == set(range(10))  # 50 rounds: every partner row is drawn somewhere
    assert (labels[first[target == 1]] == labels[second[target == 1]]).all()
    assert (labels[first[target == 0]] != labels[second[target == 0]]).all()
    every = pairs(labels, iterations=3, rng=np.random.default_rng(5))
    assert (every == pairs(labels, iterations=3, rng=np.random.default_rng(5), drawing=len(labels))).all()


def test_partners_take_part_in_training_without_adding_steps(still_encoder):
    """The label names as partners: the same number of steps as the rows alone (their pairs only), and other
    losses, since other texts are encoded."""
    import copy

    from steadytune.probe import Pooling

    encoder, tok = still_encoder
    split, pooling = _split(24), Pooling("mean", True, "test")
    kw = {"seed": 3, "settings": ContrastiveSettings(iterations=2, batch_size=8), "fast_path": False}
    alone = train_contrastive(copy.deepcopy(encoder), tok, split, pooling, **kw)
    partnered = train_contrastive(copy.deepcopy(encoder), tok, split, pooling,
                                  partners=label_rows(("neg", "pos"), copies=8), **kw)  # fmt: skip
    assert len(alone) == len(partnered) == math.ceil(2 * 2 * 24 / 8) and alone != partnered


def test_pairs_are_batched_by_length_each_once_with_fewer_pad_tokens():
    """`pair_batches`: every pair in exactly one batch, ceil(pairs / batch) batches with at most one short, the
    order a function of the seed, and far fewer pad tokens than the random order (the longer row of each pair pads
    its batch); `group_batches=None` is the random order."""
    from steadytune.data.batching import GROUP_BATCHES

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=300)
    triples = pairs(rng.integers(0, 2, size=300), iterations=4, rng=rng)
    batches = pair_batches(triples, lengths, batch_size=16, seed=5)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(triples)))
    assert len(batches) == -(-len(triples) // 16) and sum(len(b) < 16 for b in batches) <= 1
    again = pair_batches(triples, lengths, batch_size=16, seed=5)
    assert all((a == b).all() for a, b in zip(batches, again))
    assert any((a != b).any() for a, b in zip(batches, pair_batches(triples, lengths, batch_size=16, seed=6)))

    def pad_share(bs):
        rows = [np.unique(triples[b, :2].astype(int)) for b in bs]
        return 1 - sum(lengths[r].sum() for r in rows) / sum(lengths[r].max() * len(r) for r in rows)

    plain = pair_batches(triples, lengths, batch_size=16, seed=5, group_batches=None)
    assert np.concatenate(plain).tolist() != np.concatenate(batches).tolist()
    assert pad_share(batches) < 0.75 * pad_share(plain)  # 0.30 against 0.44 here (the shorter rows still pad)
    # each mega-batch of GROUP_BATCHES batches holds one random slice of the pairs, sorted by the longer row
    longer = np.maximum(lengths[triples[:, 0].astype(int)], lengths[triples[:, 1].astype(int)])
    spans = [longer[b].max() - longer[b].min() for b in batches]
    assert np.median(spans) < np.median([longer[b].max() - longer[b].min() for b in plain]) / 4
    assert GROUP_BATCHES == 16


def _split(n: int, seed: int = 0):
    from steadytune.data.splits import Split

    rows = sentiment_rows(n, seed=seed)
    return Split(([r["text"] for r in rows],), np.array([int(r["label"] == "pos") for r in rows]))


def test_the_loss_is_the_squared_error_of_the_pairs_cosine_similarity_in_float64(still_encoder):
    """The first step's loss against the same pairs scored in float64 from the untouched encoder's pooled vectors
    (mean pooling, what a sentence-transformers folder asks for): mean of (cos(u, v) − target)²."""
    from steadytune.probe import Pooling, embed

    encoder, tok = still_encoder
    split, pooling = _split(24), Pooling("mean", True, "test")
    vectors = embed(encoder, tok, split, pooling)  # float64
    settings = ContrastiveSettings(iterations=2, batch_size=8)
    from steadytune.data.encode import encode

    triples = pairs(split.labels, iterations=2, rng=np.random.default_rng(11))
    first = triples[pair_batches(triples, encode(split, tok).lengths, batch_size=8, seed=11)[0]]
    u, v = vectors[first[:, 0].astype(int)], vectors[first[:, 1].astype(int)]
    cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    expected = float(np.mean((cos - first[:, 2]) ** 2))
    seen: list[tuple[int, int, float]] = []
    losses = train_contrastive(encoder, tok, split, pooling, seed=11, settings=settings, fast_path=False,
                               step_done=lambda *a: seen.append(a))  # fmt: skip
    assert losses[0] == pytest.approx(expected, abs=1e-6)
    steps = math.ceil(2 * 2 * 24 / 8)
    assert len(losses) == steps and [s for s, _, _ in seen] == list(range(1, steps + 1))
    assert all(total == steps for _, total, _ in seen) and not encoder.training


def test_training_is_reproducible_from_its_seed_and_moves_the_encoder(tiny_model_dir):
    from transformers import AutoModel

    from steadytune.models import load_tokenizer
    from steadytune.probe import pooling_of

    tok, split = load_tokenizer(str(tiny_model_dir)), _split(20)
    before = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    runs = []
    for _ in range(2):
        encoder = AutoModel.from_pretrained(tiny_model_dir)
        losses = train_contrastive(encoder, tok, split, pooling_of(tiny_model_dir, encoder), seed=4,
                                   settings=ContrastiveSettings(iterations=3), precision="bf16")  # fmt: skip
        runs.append((losses, encoder.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in before)
    assert not torch.equal(runs[0][1]["encoder.layer.0.attention.self.query.weight"],
                           before["encoder.layer.0.attention.self.query.weight"])  # fmt: skip


def test_training_only_the_reachable_embedding_rows_is_the_dense_run(still_encoder):
    """`compact_embedding` (the default) against the dense embedding, from the same weights, in float32: the same
    losses and weights to rounding; the rows the split never reaches moved by the weight decay alone, as in the dense
    run, and the encoder holds its full vocabulary again."""
    import copy

    from steadytune.probe import Pooling

    encoder, tok = still_encoder
    encoder.embeddings.word_embeddings.weight.data.add_(1.0)  # rows far from 0, so that their decay shows
    split, pooling = _split(24), Pooling("mean", True, "test")
    settings = ContrastiveSettings(iterations=2, batch_size=8, lr=1e-2, weight_decay=0.5)  # a decay one can see
    dense, compact = copy.deepcopy(encoder), copy.deepcopy(encoder)
    before = encoder.embeddings.word_embeddings.weight.detach().clone()
    kw = {"seed": 3, "settings": settings, "fast_path": False}
    dense_losses = train_contrastive(dense, tok, split, pooling, compact_embedding=False, **kw)
    compact_losses = train_contrastive(compact, tok, split, pooling, **kw)
    assert compact_losses == pytest.approx(dense_losses, abs=1e-6)
    assert type(compact.embeddings.word_embeddings) is torch.nn.Embedding
    for (name, a), (_, b) in zip(dense.named_parameters(), compact.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5), name
    reached = set(np.concatenate([tok(t)["input_ids"] for t in split.texts[0]]).tolist())
    untouched = [i for i in range(len(before)) if i not in reached and i != tok.pad_token_id]
    shrink = compact.embeddings.word_embeddings.weight[untouched] / before[untouched]
    assert untouched and torch.allclose(shrink, shrink[0, 0].expand_as(shrink)) and 0.9 < float(shrink[0, 0]) < 1


def _fit(tiny_model_dir, rows, out, *extra):
    return ["fit", "--model", str(tiny_model_dir), "--train-file", str(rows), "--out", str(out), "--quiet", "--json",
            *extra]  # fmt: skip


def test_a_small_file_compares_the_probe_and_the_contrastive_model_on_the_same_folds(tiny_model_dir, tmp_path,
                                                                                     capsys, monkeypatch):  # fmt: skip
    """40 rows leave 4 test rows: both families are cross-validated over every row; the choice between them is
    made on the same 2 folds and the verdict is corrected for it (0.05 / 2). The contrastive model's p is the exact
    binomial test of its out-of-fold predictions; its delivered model predicts through `steadytune predict`, and a
    rerun judges the stored records again without training."""
    from scipy.stats import binomtest

    from steadytune.fitting import search

    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(40, seed=5))
    out = tmp_path / "fit"
    code = main(_fit(tiny_model_dir, rows, out, "--keep-candidates"))  # the contrastive model, chosen or not
    result = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in result["candidates"]}
    assert list(by_name) == ["probe", "contrastive"]
    judged, cv = result["judgement"], by_name["contrastive"]["cv"]
    assert judged["split"] == "cross-validated" and judged["alpha"] == pytest.approx(0.025)
    assert "Bonferroni" in judged["corrected_for"] and code == (0 if judged["yes"] else 1)
    assert cv["folds"] == 2 and cv["rows"] == 40 and cv["compare"] == cv["score"]
    correct = round(cv["score"] * 40)
    assert cv["p"] == pytest.approx(binomtest(correct, 40, 0.5, alternative="greater").pvalue, rel=1e-12)
    compare = {name: c["cv"]["compare"] for name, c in by_name.items()}
    for c in by_name.values():  # each family's same-fold predictions are stored, for `choose_small` on a rerun
        assert len(c["cv"]["compare_predicted"]) == 40 and set(c["cv"]["compare_predicted"]) <= {0, 1}
    leader = max(compare, key=lambda k: (compare[k], -by_name[k]["cv"]["p"]))
    if leader == "contrastive":  # the family that trains the encoder leads: chosen, nothing to explain
        assert result["chosen"] == "contrastive" and result["choice"] == ""
    else:  # the probe leads: chosen only beyond noise (`choose_small`), and the table says which way it went
        assert (result["chosen"] == "probe") == result["choice"].startswith("the probe, ahead")
    assert by_name["contrastive"]["steps"] == 2 * math.ceil(2 * 20 * 20 / 16) + math.ceil(2 * 20 * 40 / 16)
    # the label names "neg" and "pos" joined every training as partners, 8 times each (`ContrastiveSettings`)
    assert by_name["contrastive"]["probe"]["label_rows"] == 2 * ContrastiveSettings().label_copies == 16
    model = out / "candidates" / "contrastive" / "run" / "model"
    assert json.loads((model / "steadytune.json").read_text())["family"] == "contrastive"
    assert main(["predict", "--model", str(model), "--input", str(rows), "--output", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as f:
        assert {r["prediction"] for r in csv.DictReader(f)} <= {"neg", "pos"}
    # The card of a small file's pick (written when the fit says yes; built here either way) describes families,
    # not a fine-tuning search: no recipe, learning rates or held-out baselines, each family's cross-validated scores.
    from types import SimpleNamespace

    from steadytune.card import fit_card

    card = fit_card(SimpleNamespace(**json.loads((out / "fit.json").read_text())))
    assert "## Families" in card and "## Recipe" not in card and "learning rates" not in card
    assert "| family | outcome | cross-validated accuracy | on the shared folds | its test |" in card
    assert "(2-fold)" in card and "(5-fold)" in card and "% of running" not in card
    if result["chosen"] == "contrastive":  # the card says the label names took part
        assert "the label names joined the rows as 16 partner rows" in card
    assert "on validation" not in card.split("## Baselines")[1].split("##")[0]
    assert ("Chosen: " in card) == bool(result["choice"])
    assert "Chosen: contrastive, as the probe's lead" in fit_card(
        SimpleNamespace(
            **{
                **json.loads((out / "fit.json").read_text()),
                "choice": "contrastive, as the probe's lead over it is ...",
            }
        )
    )
    monkeypatch.setattr(search, "run_contrastive", lambda *a, **k: pytest.fail("the stored model was trained again"))
    assert main(_fit(tiny_model_dir, rows, out)) == code
    assert json.loads(capsys.readouterr().out)["judgement"] == judged


def test_on_a_larger_file_the_contrastive_model_is_a_held_out_candidate(tiny_model_dir, tmp_path, capsys):
    """300 rows, held out (--cross-validate-below 0: only a test split under 30 rows makes a small file): the
    contrastive model trains on the training split, is scored on validation and test like every candidate, and the
    verdict reads the test split; its head is the probe's cross-validated one."""
    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(300, seed=2))
    held_out = ("--families", "probe,contrastive", "--cross-validate-below", "0")
    main(_fit(tiny_model_dir, rows, tmp_path / "fit", *held_out))
    result = json.loads(capsys.readouterr().out)
    contrastive = next(c for c in result["candidates"] if c["name"] == "contrastive")
    assert "cv" not in contrastive and contrastive["best"]["test"]["accuracy"] is not None
    assert contrastive["probe"]["head"] == "LogisticRegressionCV" and contrastive["probe"]["pairs"] == 2 * 20 * 240
    assert result["judgement"]["split"] == "test"
    chosen = max(result["candidates"], key=lambda c: c["best"]["validation"]["accuracy"])
    assert result["chosen"] == chosen["name"]


def test_a_regression_fit_leaves_the_contrastive_family_out(tiny_model_dir, tmp_path, capsys):
    rows = [{"text": r["text"], "label": f"{i % 7 / 2:.1f}"} for i, r in enumerate(sentiment_rows(40))]
    path = write_rows(tmp_path / "rows.csv", rows)
    main(_fit(tiny_model_dir, path, tmp_path / "fit", "--task-type", "regression", "--families",
              "probe,contrastive,finetune"))  # fmt: skip
    assert [c["name"] for c in json.loads(capsys.readouterr().out)["candidates"]] == ["probe"]


def test_the_small_file_verdict_is_corrected_for_the_families_compared():
    """p = 0.03 passes alone and fails once chosen among two families (Bonferroni: 0.05 / 2)."""
    from steadytune.data.load import TaskData
    from steadytune.data.splits import Split
    from steadytune.fitting.outcome import cross_validated_verdict

    labels = np.array([0, 1] * 10)
    split = Split((["x"] * 20,), labels)
    data = TaskData(name="t", train=split, validation=split.select([0, 1]), test=split.select([2, 3]),
                    label_names=("a", "b"), metric="accuracy", text_columns=("text",))  # fmt: skip
    cv = {"metric": "accuracy", "score": 0.7, "p": 0.03, "folds": 2, "rows": 24, "test": "a test"}
    alone, among_two = cross_validated_verdict(cv, data), cross_validated_verdict(cv, data, compared=2)
    assert alone.yes and alone.alpha == 0.05 and "Bonferroni" not in alone.corrected_for
    assert not among_two.yes and among_two.alpha == 0.025 and "Bonferroni" in among_two.corrected_for
    assert not cross_validated_verdict({**cv, "score": 0.5, "p": 0.001}, data).yes  # at the constant predictor's


def _families(y: np.ndarray, probe: np.ndarray, other: np.ndarray, *, family: str = "contrastive",
              stored: bool = True) -> tuple[list, object]:  # fmt: skip
    """Two cross-validated candidates as `choose_small` reads them (the probe and `family`), with out-of-fold
    predictions `probe` and `other` of the rows `y`, and the data they came from."""
    from steadytune.data.load import TaskData
    from steadytune.data.splits import Split
    from steadytune.fitting.settings import Candidate
    from steadytune.metrics import compute_metrics

    regression = y.dtype.kind == "f"
    metric, num_labels = ("spearmanr", 1) if regression else ("accuracy", 2)
    split = Split((["x"] * len(y),), y)
    third = len(y) // 3
    data = TaskData(name="t", train=split.select(range(third)), validation=split.select(range(third, 2 * third)),
                    test=split.select(range(2 * third, len(y))), label_names=None if regression else ("a", "b"),
                    metric=metric, text_columns=("text",))  # fmt: skip
    candidates = []
    for name, predicted in (("probe", probe), (family, other)):
        cv = {"compare": compute_metrics(predicted, y, num_labels=num_labels)[metric], "p": 0.001, "score": 0.0}
        if stored:
            cv["compare_predicted"] = predicted.tolist()
        candidates.append(Candidate(name, 0, 0.0, None, status="finished", record={"cv": cv}, family=name))
    return candidates, data


def test_a_small_file_chooses_the_probe_over_an_encoder_it_leads_only_beyond_noise():
    """`choose_small`: 400 rows, the contrastive family right on 320; the probe fixes 30 of its errors and makes 20
    new ones, 10 rows ahead (0.025). Bootstrapped over rows in pairs, the lead's 95% interval is about
    +-1.96 sd(d) / sqrt(400) with d each row's difference in correctness (0.0346 here): it reaches below zero, so the
    contrastive model is chosen. Unpaired, the interval would be twice as wide; a constant contrastive model is
    left behind beyond noise; records without predictions (before 0.15) keep the best score's choice."""
    import re

    from steadytune.fitting.outcome import choose_small

    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat([0, 1], 200))
    other = y.copy()
    wrong = rng.choice(400, size=80, replace=False)
    other[wrong] = 1 - other[wrong]
    probe = other.copy()
    fixed, broken = wrong[:30], rng.choice(np.setdiff1d(np.arange(400), wrong), size=20, replace=False)
    probe[fixed], probe[broken] = y[fixed], 1 - y[broken]
    candidates, data = _families(y, probe, other)
    chosen, why = choose_small(candidates, data, "accuracy", seed=0)
    assert chosen.name == "contrastive" and why.startswith("contrastive, as the probe's lead over it is within noise")
    low, high = map(float, re.search(r"interval (-?[\d.]+) to (-?[\d.]+)", why).groups())
    d = (probe == y).astype(float) - (other == y)
    assert "0.0250 on the same 2 folds" in why and low < 0 < 0.025 < high
    assert high - low == pytest.approx(2 * 1.96 * d.std() / np.sqrt(400), rel=0.15)

    constant = np.zeros_like(y)
    chosen, why = choose_small(_families(y, probe, constant)[0], data, "accuracy", seed=0)
    assert chosen.name == "probe" and why.startswith("the probe, ahead of contrastive beyond noise: by 0.3250")
    ahead = _families(y, other, probe)[0]  # the contrastive model leads: chosen, nothing to explain
    assert [c.name for c in [choose_small(ahead, data, "accuracy", seed=0)[0]]] == ["contrastive"]
    old = _families(y, probe, other, stored=False)[0]
    assert choose_small(old, data, "accuracy", seed=0) == (old[0], "")


def test_a_small_regression_file_prefers_lpft_within_noise():
    """The same rule for a regression file's probe and LP-FT, on Spearman's correlation: two predictions about as
    noisy, the probe ahead by chance, leave LP-FT chosen; an LP-FT model that predicts noise leaves the probe."""
    from scipy.stats import spearmanr

    from steadytune.fitting.outcome import choose_small

    rng = np.random.default_rng(1)
    y = rng.normal(size=120)
    probe, lpft = sorted([y + rng.normal(size=120) for _ in range(2)], key=lambda p: -spearmanr(p, y)[0])
    candidates, data = _families(y, probe, lpft, family="lp-ft")
    lead = candidates[0].record["cv"]["compare"] - candidates[1].record["cv"]["compare"]
    chosen, why = choose_small(candidates, data, "spearmanr", seed=0)
    assert lead > 0 and chosen.name == "lp-ft" and "within noise" in why
    chosen, why = choose_small(_families(y, probe, rng.normal(size=120), family="lp-ft")[0], data, "spearmanr",
                               seed=0)  # fmt: skip
    assert chosen.name == "probe" and "beyond noise" in why
