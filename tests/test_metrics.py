"""Tests for steadytune.metrics: agreement with scikit-learn/scipy, degenerate inputs, the majority baseline."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

from steadytune.errors import UserInputError
from steadytune.metrics import (
    classification_metrics,
    compute_metrics,
    constant_baseline,
    failure,
    is_failed,
    majority_baseline,
    regression_metrics,
)

SEEDS = [0, 1, 2, 3]
SIZES = [5, 17, 100, 500]


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- agreement with the reference implementations ---------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("num_labels", [2, 3])
def test_classification_matches_sklearn(seed: int, n: int, num_labels: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_labels, size=n)
    # Mostly-correct predictions so the metrics are away from 0; make sure both arrays use every class.
    predictions = np.where(rng.random(n) < 0.7, labels, rng.integers(0, num_labels, size=n))
    labels[:num_labels] = np.arange(num_labels)
    predictions[:num_labels] = np.arange(num_labels)[::-1]

    scores = compute_metrics(predictions, labels, num_labels=num_labels)

    expected = {
        "accuracy": accuracy_score(labels, predictions),
        "matthews_correlation": matthews_corrcoef(labels, predictions),
    }
    if num_labels == 2:
        expected["f1"] = f1_score(labels, predictions)
    assert set(scores) == set(expected)
    for name, value in expected.items():
        assert type(scores[name]) is float
        assert scores[name] == pytest.approx(float(value), abs=1e-12, rel=0), name


def test_classification_accepts_lists() -> None:
    scores = classification_metrics([1, 0, 1, 1], [1, 0, 0, 1], num_labels=2)
    assert scores["accuracy"] == 0.75
    assert scores["f1"] == pytest.approx(0.8, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
def test_regression_matches_scipy_with_tied_labels(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    # STS-B-like gold scores on a 0.2 grid in [0, 5]: many ties, which spearman must rank as averages.
    labels = np.round(rng.uniform(0, 5, size=n) / 0.2) * 0.2
    labels[:2] = [0.0, 5.0]
    predictions = labels + rng.normal(0, 1.0, size=n)

    scores = compute_metrics(predictions, labels, num_labels=1)

    assert set(scores) == {"pearson", "spearmanr", "mse"}
    assert all(type(v) is float for v in scores.values())
    assert scores["pearson"] == pytest.approx(float(pearsonr(predictions, labels).statistic), abs=1e-12, rel=0)
    assert scores["spearmanr"] == pytest.approx(float(spearmanr(predictions, labels).statistic), abs=1e-12, rel=0)
    assert scores["mse"] == pytest.approx(float(mean_squared_error(labels, predictions)), abs=1e-12, rel=0)


def test_spearman_with_tied_predictions_and_float32_input() -> None:
    rng = np.random.default_rng(7)
    labels = np.round(rng.uniform(0, 5, size=200) / 0.2) * 0.2
    predictions = np.round(labels + rng.normal(0, 0.5, size=200)).astype(np.float32)  # heavy ties, float32
    scores = regression_metrics(predictions, labels)
    p64 = predictions.astype(np.float64)
    assert scores["spearmanr"] == pytest.approx(float(spearmanr(p64, labels).statistic), abs=1e-12, rel=0)
    assert scores["pearson"] == pytest.approx(float(pearsonr(p64, labels).statistic), abs=1e-12, rel=0)


# --- degenerate inputs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_labels", [2, 3])
@pytest.mark.parametrize("constant", [0, 1])
def test_constant_class_predictions_score_zero_quietly(no_warnings, num_labels: int, constant: int) -> None:
    labels = np.array([0, 1, 1, 0, 1, num_labels - 1])
    scores = classification_metrics(np.full(6, constant), labels, num_labels=num_labels)
    assert scores["matthews_correlation"] == 0.0
    assert scores["accuracy"] == pytest.approx(float(np.mean(labels == constant)))
    if num_labels == 2:
        assert scores["f1"] == (0.0 if constant == 0 else pytest.approx(f1_score(labels, np.full(6, 1))))


def test_single_class_everywhere_is_quiet(no_warnings) -> None:
    scores = classification_metrics([0, 0, 0], [0, 0, 0], num_labels=2)
    assert scores == {"accuracy": 1.0, "f1": 0.0, "matthews_correlation": 0.0}
    scores = classification_metrics([1, 1], [1, 1], num_labels=2)
    assert scores == {"accuracy": 1.0, "f1": 1.0, "matthews_correlation": 0.0}


def test_constant_regression_predictions_score_zero_quietly(no_warnings) -> None:
    labels = np.array([0.0, 1.2, 3.4, 5.0, 2.2])
    scores = regression_metrics(np.full(5, 2.5), labels)
    assert scores["pearson"] == 0.0 and scores["spearmanr"] == 0.0
    assert scores["mse"] == pytest.approx(float(np.mean((labels - 2.5) ** 2)))


def test_constant_regression_labels_and_single_example_are_quiet(no_warnings) -> None:
    scores = regression_metrics([0.1, 0.9, 2.0], [3.0, 3.0, 3.0])
    assert scores["pearson"] == 0.0 and scores["spearmanr"] == 0.0
    scores = regression_metrics([1.0], [2.0])
    assert scores == {"pearson": 0.0, "spearmanr": 0.0, "mse": 1.0}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_regression_predictions(no_warnings, bad: float) -> None:
    scores = regression_metrics([0.5, bad, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0])
    assert scores == {"pearson": 0.0, "spearmanr": 0.0, "mse": math.inf}


def test_two_examples_regression_is_perfectly_correlated(no_warnings) -> None:
    scores = regression_metrics([0.0, 1.0], [1.0, 4.0])
    assert scores["pearson"] == pytest.approx(1.0) and scores["spearmanr"] == pytest.approx(1.0)


# --- input validation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predictions", "labels", "num_labels", "match"),
    [
        ([0, 1], [0, 1, 1], 2, "differ in length"),
        ([], [], 2, "empty"),
        ([0, 2], [0, 1], 2, "0..1"),
        ([0, 1], [-1, 1], 2, "0..1"),
        ([0.5, 1.0], [0, 1], 2, "integer class ids"),
        ([[0, 1]], [[0, 1]], 2, "1-D"),
        ([0, 1], [0, 1], 0, "positive integer"),
        ([0.0, 1.0], [0.0, float("nan")], 1, "NaN"),
    ],
)
def test_bad_inputs_raise(predictions, labels, num_labels: int, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        compute_metrics(predictions, labels, num_labels=num_labels)


def test_integral_floats_are_accepted_as_class_ids() -> None:
    assert classification_metrics([1.0, 0.0], [1, 0], num_labels=2)["accuracy"] == 1.0


def test_classification_needs_two_labels() -> None:
    with pytest.raises(ValueError, match="num_labels >= 2"):
        classification_metrics([0], [0], num_labels=1)


# --- majority baseline and the failed-run rule -----------------------------------------------------------------------


def test_majority_baseline_hand_checked() -> None:
    labels = [1, 1, 1, 0]
    assert majority_baseline(labels, num_labels=2, metric="accuracy") == 0.75
    assert majority_baseline(labels, num_labels=2, metric="f1") == pytest.approx(2 * 0.75 / (1 + 0.75), abs=1e-12)
    assert majority_baseline(labels, num_labels=2, metric="f1") == pytest.approx(0.857142857142857, abs=1e-12)
    assert majority_baseline(labels, num_labels=2, metric="matthews_correlation") == 0.0


def test_majority_baseline_majority_class_zero_has_zero_f1() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    assert majority_baseline(labels, num_labels=2, metric="accuracy") == 0.6
    assert majority_baseline(labels, num_labels=2, metric="f1") == 0.0


def test_majority_baseline_tie_goes_to_smallest_class() -> None:
    # Binary tie: the constant predictor says 0, so f1 is 0 (predicting 1 would give 2/3).
    assert majority_baseline([1, 0, 1, 0], num_labels=2, metric="accuracy") == 0.5
    assert majority_baseline([1, 0, 1, 0], num_labels=2, metric="f1") == 0.0
    # Three classes, 1 and 2 tie for the majority; 0 is rarer. Accuracy is the same either way: 2/5.
    assert majority_baseline([2, 1, 2, 1, 0], num_labels=3, metric="accuracy") == pytest.approx(0.4)
    assert majority_baseline([2, 1, 2, 1, 0], num_labels=3, metric="matthews_correlation") == 0.0


def test_majority_baseline_multiclass_and_regression() -> None:
    assert majority_baseline([2, 2, 0, 1, 2], num_labels=3, metric="accuracy") == pytest.approx(0.6)
    stsb = [0.0, 2.4, 5.0, 3.2]
    assert majority_baseline(stsb, num_labels=1, metric="pearson") == 0.0
    assert majority_baseline(stsb, num_labels=1, metric="spearmanr") == 0.0


def test_majority_baseline_equals_score_of_constant_predictor() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=101)
    majority = int(np.bincount(labels).argmax())
    constant_scores = compute_metrics(np.full(101, majority), labels, num_labels=2)
    for metric in ("accuracy", "f1", "matthews_correlation"):
        assert majority_baseline(labels, num_labels=2, metric=metric) == constant_scores[metric]


def test_majority_baseline_unknown_metric_names_it() -> None:
    with pytest.raises(ValueError, match="'bleu'"):
        majority_baseline([0, 1], num_labels=2, metric="bleu")
    with pytest.raises(ValueError, match="'mse'"):
        majority_baseline([0.0, 1.0], num_labels=1, metric="mse")


@pytest.mark.parametrize(
    ("num_labels", "metric"),
    [(3, "f1"), (1, "accuracy"), (2, "pearson"), (1, "matthews_correlation")],
)
def test_majority_baseline_metric_must_fit_task(num_labels: int, metric: str) -> None:
    with pytest.raises(ValueError, match=f"'{metric}'"):
        majority_baseline([0, 1], num_labels=num_labels, metric=metric)


def test_is_failed() -> None:
    assert is_failed(0.75, 0.75)  # equality counts as failed
    assert is_failed(0.70, 0.75)
    assert not is_failed(0.76, 0.75)
    assert is_failed(None, 0.75)
    assert is_failed(math.nan, 0.75)
    assert is_failed(math.inf, 0.75)
    assert is_failed(0.0, 0.0)  # a constant predictor's MCC against its 0.0 baseline
    assert not is_failed(np.float64(0.1), 0.0)
    with pytest.raises(ValueError, match="baseline"):
        is_failed(0.5, math.nan)


# --- the failed-run rule: the best constant predictor --------------------------------------------------------


def test_constant_baseline_is_the_best_of_every_constant_scored_by_sklearn() -> None:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    for positive_share in (0.1, 0.3, 0.5, 0.8):
        labels = (rng.random(139) < positive_share).astype(np.int64)
        for metric, score in [("accuracy", accuracy_score), ("f1", lambda y, p: f1_score(y, p, zero_division=0)),
                              ("matthews_correlation", matthews_corrcoef)]:  # fmt: skip
            best = max(score(labels, np.full_like(labels, k)) for k in (0, 1))
            b = constant_baseline(labels, num_labels=2, metric=metric, label_names=["neg", "pos"])
            assert b.score == pytest.approx(best, abs=1e-12) and b.metric == metric
    # F1 with a minority positive class: always-positive (2p / (1 + p)), where the majority class would give 0
    labels = np.array([1] * 30 + [0] * 70)
    b = constant_baseline(labels, num_labels=2, metric="f1", label_names=["neg", "pos"])
    assert b.score == pytest.approx(2 * 0.3 / 1.3, abs=1e-12) and b.predictor == "always 'pos'"
    assert majority_baseline(labels, num_labels=2, metric="f1") == 0.0
    b = constant_baseline(labels, num_labels=2, metric="accuracy")
    assert b.score == 0.7 and b.predictor == "always 0" and b.mse is None


def test_constant_baseline_of_regression_is_zero_correlation_and_the_training_mean_mse() -> None:
    test = np.array([0.0, 1.0, 4.0, 5.0])
    train = np.array([1.0, 2.0, 3.0, 6.0])  # mean 3
    b = constant_baseline(test, num_labels=1, metric="spearmanr", train_labels=train)
    assert b.score == 0.0 and b.predictor == "any constant"
    assert b.mse == pytest.approx(float(np.mean((test - 3.0) ** 2)), abs=1e-12)  # = 6.5
    assert constant_baseline(test, num_labels=1, metric="pearson").mse is None


def test_failure_names_why() -> None:
    acc = constant_baseline([0, 0, 0, 1], num_labels=2, metric="accuracy")
    assert failure(0.75, acc) == "constant"  # equal to the majority: no better than a constant
    assert failure(0.76, acc) is None
    assert failure(None, acc) == "constant" and failure(math.nan, acc) == "constant"
    assert failure(0.99, acc, diverged=True) == "diverged"
    reg = constant_baseline([0.0, 1.0, 4.0, 5.0], num_labels=1, metric="spearmanr", train_labels=[3.0])
    assert reg.mse == 4.5  # (9 + 4 + 1 + 4) / 4
    assert failure(0.4, reg, mse=4.4) is None
    assert failure(0.4, reg, mse=4.5) == "collapsed"  # ranks a little, but predicts no better than the prior
    assert failure(0.4, reg, mse=None) == "collapsed"
    assert failure(0.0, reg, mse=1.0) == "constant"
    assert failure(0.4, reg.to_dict(), mse=7.0) == "collapsed"  # a record's stored baseline works as well
