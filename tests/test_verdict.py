"""The one test of learning (`steadytune.verdict`) against hand-computed references, and fit's verdict read from
the test rows, never from the validation rows that chose the model."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from scipy.stats import binomtest, fisher_exact, pearsonr

from steadytune.metrics import classification_metrics, constant_baseline
from steadytune.verdict import learned, two_by_two


def _table(y, p) -> tuple[int, int, int, int]:
    y, p = np.asarray(y), np.asarray(p)
    return (int(((p == 1) & (y == 1)).sum()), int(((p == 0) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum()),
            int(((p == 0) & (y == 0)).sum()))  # fmt: skip


def test_the_confusion_table_is_rebuilt_from_accuracy_f1_and_mcc_up_to_a_transpose():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(3, 60))
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < rng.random(), y, rng.integers(0, 2, n))
        m = classification_metrics(p, y, num_labels=2)
        tp, fn, fp, tn = _table(y, p)
        assert two_by_two(n, m["accuracy"], m["f1"], m["matthews_correlation"], positives=tp + fn) == (tp, fn, fp, tn)
        got = two_by_two(n, m["accuracy"], m["f1"], m["matthews_correlation"])  # a record without the counts
        if fn + fp == 0 and tp > 0:  # error-free: the least significant table, one positive
            assert got == (1, 0, 0, n - 1)
        else:
            assert got in ((tp, fn, fp, tn), (tp, fp, fn, tn)), (n, m, got)


def _fisher_by_hand(tp: int, fn: int, fp: int, tn: int) -> float:
    """P(TP ≥ observed) over every table with these margins: the hypergeometric law, summed with math.comb."""
    pos, predicted, n = tp + fn, tp + fp, tp + fn + fp + tn
    total = math.comb(n, predicted)
    return sum(math.comb(pos, k) * math.comb(n - pos, predicted - k)
               for k in range(tp, min(pos, predicted) + 1)) / total  # fmt: skip


@pytest.mark.parametrize("metric", ["f1", "matthews_correlation"])
def test_binary_f1_and_mcc_are_judged_by_fishers_exact_test_of_the_table(metric):
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(5, 40))
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.6, y, 1 - y)
        m = classification_metrics(p, y, num_labels=2)
        base = constant_baseline(y, num_labels=2, metric=metric)
        v = learned(m, base, n=n, num_labels=2, positives=int(y.sum()))
        tp, fn, fp, tn = _table(y, p)
        by_hand = _fisher_by_hand(tp, fn, fp, tn)
        assert v.p == pytest.approx(by_hand, rel=1e-9, abs=1e-12)
        assert v.p == pytest.approx(fisher_exact([[tp, fn], [fp, tn]], alternative="greater").pvalue)
        assert v.yes == (m[metric] > base.score and by_hand < 0.05)
        assert v.n == n and v.split == "test" and "Fisher" in v.test


def test_accuracy_is_the_exact_binomial_test_against_the_majority_rate():
    y = np.array([0] * 13 + [1] * 17)  # majority rate 17/30
    p = y.copy()
    p[:6] = 1  # 24 of 30 right
    m = classification_metrics(p, y, num_labels=2)
    base = constant_baseline(y, num_labels=2, metric="accuracy")
    v = learned(m, base, n=30, num_labels=2)
    by_hand = sum(math.comb(30, k) * (17 / 30) ** k * (13 / 30) ** (30 - k) for k in range(24, 31))
    assert v.p == pytest.approx(by_hand, rel=1e-9) and v.yes
    assert "24/30 correct" in v.test
    # 3 classes, Matthews correlation: the binomial test of accuracy against the majority share given
    v3 = learned({"accuracy": 0.6, "matthews_correlation": 0.3}, {"metric": "matthews_correlation", "score": 0.0},
                 n=20, num_labels=3, majority_rate=0.4)  # fmt: skip
    assert v3.p == pytest.approx(binomtest(12, 20, 0.4, alternative="greater").pvalue)


def test_correlations_are_the_one_sided_t_test():
    rng = np.random.default_rng(2)
    x = rng.normal(size=25)
    y = x + 2 * rng.normal(size=25)
    r = float(pearsonr(x, y)[0])
    v = learned({"pearson": r}, {"metric": "pearson", "score": 0.0}, n=25, num_labels=1)
    assert v.p == pytest.approx(pearsonr(x, y, alternative="greater").pvalue, rel=1e-9)


def test_nothing_to_test_is_a_no():
    base = {"metric": "accuracy", "score": 0.5}
    assert learned({"accuracy": 1.0}, base, n=2, num_labels=2).test == "no score"
    assert not learned({}, base, n=30, num_labels=2).yes
    assert not learned({"accuracy": math.nan}, base, n=30, num_labels=2).yes


@pytest.mark.parametrize("n", [7, 13, 30])
def test_predictions_independent_of_the_labels_are_called_learned_at_most_five_percent_of_the_time(n):
    """The promise itself, by simulation: a predictor that ignores the labels (any bias) on n rows of labels with
    any balance, each metric's verdict; 1000 draws, so a true rate of 5% exceeds 0.07 with probability under 2%."""
    rng = np.random.default_rng(3)
    yes = {"accuracy": 0, "f1": 0, "matthews_correlation": 0}
    for _ in range(1000):
        y = (rng.random(n) < rng.uniform(0.3, 0.7)).astype(int)
        p = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
        tp, fn, fp, tn = _table(y, p)
        pos = tp + fn
        denominator = math.sqrt((tp + fp) * pos * (tn + fp) * (tn + fn))
        scores = {"accuracy": (tp + tn) / n, "f1": 2 * tp / (2 * tp + fn + fp) if tp else 0.0,
                  "matthews_correlation": (tp * tn - fp * fn) / denominator if denominator else 0.0}  # fmt: skip
        lines = {"accuracy": max(pos, n - pos) / n, "f1": 2 * pos / (pos + n), "matthews_correlation": 0.0}
        for metric in yes:
            base = {"metric": metric, "score": lines[metric]}
            yes[metric] += learned(scores, base, n=n, num_labels=2, positives=pos).yes
    assert max(yes.values()) <= 70, yes


def test_fit_judges_on_the_test_rows_not_on_the_validation_rows_that_chose(tiny_model_dir, toy_files, tmp_path,
                                                                            capsys):  # fmt: skip
    """A learnable task whose test labels were shuffled: validation picks a model that learned, and the verdict,
    read on test, is an honest no (fit ≤ 0.8.1 said yes here); the reasons name the test rows."""
    from test_fit import _argv

    from steadytune.cli import main

    rng = random.Random(0)
    lines = toy_files["test"].read_text().splitlines()
    toy_files["test"].write_text("\n".join([lines[0], *(line.rsplit(",", 1)[0] + "," + rng.choice(["pos", "neg"])
                                                        for line in lines[1:])]) + "\n")  # fmt: skip
    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    chosen = next(c for c in result["candidates"] if c["name"] == result["chosen"])
    assert chosen["best"]["validation"]["accuracy"] >= 0.75  # validation alone would have said yes
    judged = result["judgement"]
    assert judged["split"] == "test" and judged["n"] == 24 and not judged["yes"] and judged["p"] >= 0.05
    assert "never these rows" in judged["corrected_for"]
    assert "on 24 test examples" in result["verdict"] and not (out / "model").exists()


def test_rerunning_or_rejudging_a_finished_fit_reads_its_records_and_trains_nothing(tiny_model_dir, toy_files,
                                                                                     tmp_path, capsys):  # fmt: skip
    """A folder written before the verdict moved to test (no `judgement`, a yes from validation) is judged anew
    from its stored records by `rejudge`, with nothing to train; a folder with a stage missing says so."""
    from test_fit import _argv

    from steadytune.cli import main
    from steadytune.fitting import rejudge

    out = tmp_path / "fit"
    assert main([*_argv(tiny_model_dir, toy_files, out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "fit.json").read_text())
    stored.pop("judgement")
    stored["verdict"], stored["version"] = "an 0.8.1 verdict on validation", "0.8.1"
    (out / "fit.json").write_text(json.dumps(stored))
    again = rejudge(out)
    assert again.judgement == first["judgement"] and again.verdict == first["verdict"] and again.success
    assert json.loads((out / "fit.json").read_text())["judgement"] == first["judgement"]

    import sqlite3

    with sqlite3.connect(out / "study.sqlite") as db:  # one stage's record lost: rejudge cannot, and says why
        db.execute("DELETE FROM trials WHERE rowid = (SELECT max(rowid) FROM trials)")
    with pytest.raises(ValueError, match="not stored .* rerun the fit command"):
        rejudge(out)


def test_fit_refuses_before_training_when_no_model_could_pass_the_test(tiny_model_dir, toy_files, tmp_path, capsys):
    """4 test rows: 4 of 4 right against 0.5 has p = 0.0625, so the verdict could only be no: exit 2 at once, one
    line saying why and what would do, nothing written."""
    from conftest import sentiment_rows, write_rows
    from test_fit import _argv

    from steadytune.cli import main

    write_rows(toy_files["test"], sentiment_rows(4, seed=3))
    out = tmp_path / "fit"
    assert main(_argv(tiny_model_dir, toy_files, out)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "the test split has 4 rows, too few for a verdict" in err[0] and "--test-file" in err[0]
    assert "4/4 correct" in err[0] and "p = 0.062" in err[0]
    assert not out.exists()
    write_rows(toy_files["test"], sentiment_rows(6, seed=3))  # 6 rows: 6 of 6 has p = 0.016, so fit may try
    assert main([*_argv(tiny_model_dir, toy_files, out), "--candidates", "2"]) in (0, 1)
