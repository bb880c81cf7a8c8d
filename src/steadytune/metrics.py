"""Evaluation metrics for GLUE-style tasks, and the constant-predictor baselines behind the "failed run" rule.

Metric names follow Hugging Face ``evaluate``'s GLUE metric: ``accuracy``, ``f1`` (binary, positive label 1),
``matthews_correlation``, ``pearson`` and ``spearmanr``; regression also reports ``mse``. The numbers come from
scikit-learn and scipy; this module only validates inputs and handles the degenerate cases (constant or diverged
predictions) so that they score 0 quietly instead of returning NaN or flooding the log with warnings.

``num_labels`` follows the Hugging Face convention: 1 means regression (STS-B), 2 or more means classification
with integer class ids ``0 .. num_labels - 1``. Bad arguments raise :class:`~steadytune.errors.UserInputError`,
which is a ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import pearsonr, spearmanr
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

from steadytune.errors import UserInputError

__all__ = [
    "Baseline",
    "beats_chance",
    "classification_metrics",
    "compute_metrics",
    "constant_baseline",
    "failure",
    "is_failed",
    "majority_baseline",
    "regression_metrics",
]

_CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews_correlation")
_REGRESSION_METRICS = ("pearson", "spearmanr")


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise UserInputError(f"{name} must be a 1-D array, got shape {array.shape}")
    if array.size == 0:
        raise UserInputError(f"{name} is empty")
    return array


def _as_class_ids(values: ArrayLike, name: str, num_labels: int) -> np.ndarray:
    """Return ``values`` as int64 class ids, checking they lie in ``0 .. num_labels - 1``."""
    array = _as_1d(values, name)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iub":
        raise UserInputError(f"{name} must be integer class ids, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= num_labels:
        raise UserInputError(
            f"{name} must be class ids in 0..{num_labels - 1}, found values from {array.min()} to {array.max()}"
        )
    return array


def _check_same_length(predictions: np.ndarray, labels: np.ndarray) -> None:
    if predictions.shape != labels.shape:
        raise UserInputError(f"predictions ({predictions.size}) and labels ({labels.size}) differ in length")


def _check_num_labels(num_labels: int) -> None:
    if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
        raise UserInputError(f"num_labels must be a positive integer, got {num_labels!r}")


def classification_metrics(predictions: ArrayLike, labels: ArrayLike, *, num_labels: int) -> dict[str, float]:
    """Score predicted class ids against gold class ids.

    Returns ``accuracy`` and ``matthews_correlation`` always, plus ``f1`` (positive label 1) when
    ``num_labels == 2``. A constant prediction vector gets Matthews correlation 0 and, if it never predicts 1,
    F1 0, without warnings.
    """
    _check_num_labels(num_labels)
    if num_labels < 2:
        raise UserInputError(f"classification needs num_labels >= 2, got {num_labels}")
    predictions = _as_class_ids(predictions, "predictions", num_labels)
    labels = _as_class_ids(labels, "labels", num_labels)
    _check_same_length(predictions, labels)

    scores = {"accuracy": float(accuracy_score(labels, predictions))}
    if num_labels == 2:
        # zero_division=0: no predicted (or gold) positives scores 0 instead of warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            f1 = f1_score(labels, predictions, labels=[0, 1], pos_label=1, average="binary", zero_division=0)
        scores["f1"] = float(f1)
    with warnings.catch_warnings():
        # When labels and predictions hold one and the same class, sklearn's confusion matrix warns about it;
        # matthews_corrcoef then returns 0, which is the value we want.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        scores["matthews_correlation"] = float(matthews_corrcoef(labels, predictions))
    return scores


def regression_metrics(predictions: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """Score real-valued predictions: ``pearson``, ``spearmanr`` and ``mse``.

    Degenerate cases, scored without warnings:

    * constant predictions (or constant labels, or a single example): the correlations are undefined (scipy
      returns NaN and warns); both are scored 0.0. A constant predictor carries no ranking information, so it
      ties the majority baseline (0.0, see :func:`majority_baseline`), and the failed-run rule counts it as
      failed -- which is what a collapsed model should be.
    * non-finite predictions (NaN/inf from a diverged model): both correlations 0.0 and ``mse`` = ``inf``, the
      worst possible value for every metric, so the run is counted as failed and never looks better than a
      finite one.

    Labels must be finite.
    """
    predictions = _as_1d(predictions, "predictions").astype(np.float64)
    labels = _as_1d(labels, "labels").astype(np.float64)
    _check_same_length(predictions, labels)
    if not np.all(np.isfinite(labels)):
        raise UserInputError("labels contain NaN or infinite values")

    if not np.all(np.isfinite(predictions)):
        return {"pearson": 0.0, "spearmanr": 0.0, "mse": math.inf}

    mse = float(mean_squared_error(labels, predictions))
    if np.all(predictions == predictions[0]) or np.all(labels == labels[0]):
        return {"pearson": 0.0, "spearmanr": 0.0, "mse": mse}
    return {
        "pearson": float(pearsonr(predictions, labels).statistic),
        "spearmanr": float(spearmanr(predictions, labels).statistic),
        "mse": mse,
    }


def compute_metrics(predictions: ArrayLike, labels: ArrayLike, *, num_labels: int) -> dict[str, float]:
    """Regression metrics when ``num_labels == 1``, else classification metrics.

    For classification, ``predictions`` are class ids (take the argmax of the logits first), not logits.
    """
    _check_num_labels(num_labels)
    if num_labels == 1:
        return regression_metrics(predictions, labels)
    return classification_metrics(predictions, labels, num_labels=num_labels)


def _validate_metric(metric: str, num_labels: int) -> None:
    """Raise unless `compute_metrics` reports `metric` for `num_labels` (a higher-is-better one: not mse)."""
    _check_num_labels(num_labels)
    known = _CLASSIFICATION_METRICS + _REGRESSION_METRICS
    if metric not in known:
        raise UserInputError(f"unknown metric {metric!r}; expected one of {', '.join(known)}")
    if num_labels == 1:
        applicable = _REGRESSION_METRICS
    elif num_labels == 2:
        applicable = _CLASSIFICATION_METRICS
    else:
        applicable = ("accuracy", "matthews_correlation")
    if metric not in applicable:
        raise UserInputError(f"metric {metric!r} does not apply to a task with num_labels={num_labels}")


def majority_baseline(labels: ArrayLike, *, num_labels: int, metric: str) -> float:
    """Score of the constant majority-class predictor on ``labels``, measured with ``metric``.

    The predictor always outputs the most frequent class of ``labels`` themselves (ties go to the smallest
    class id). ``accuracy`` is then the majority fraction; ``f1`` is the F1 of that constant prediction (0 when
    the majority class is 0); ``matthews_correlation``, ``pearson`` and ``spearmanr`` are 0.0, because a
    constant predictor has no correlation with anything.

    This is the reference of the "failed run" rule of Dodge et al. (2020) and Mosbach et al. (ICLR 2021) as they
    state it. steadytune's rule (:func:`failure`) compares with :func:`constant_baseline` instead, the best of all
    constant predictors, which is the same number for accuracy, Matthews correlation and the correlations, and
    differs for F1 when the positive class is the minority (the majority class then scores F1 = 0).

    ``metric`` must be one that :func:`compute_metrics` reports for ``num_labels`` (``mse`` is not supported:
    lower is better there, so the rule does not apply). Anything else raises ``UserInputError``.
    """
    _validate_metric(metric, num_labels)
    if num_labels == 1:
        _as_1d(labels, "labels")  # still reject empty or malformed labels
        return 0.0
    labels = _as_class_ids(labels, "labels", num_labels)
    majority = int(np.argmax(np.bincount(labels, minlength=num_labels)))  # argmax takes the first (smallest) tie
    constant = np.full_like(labels, majority)
    return classification_metrics(constant, labels, num_labels=num_labels)[metric]


def is_failed(score: float | None, baseline: float) -> bool:
    """True when a run failed: no score, a non-finite score, or a score at or below ``baseline``."""
    if not math.isfinite(baseline):
        raise UserInputError(f"baseline must be finite, got {baseline!r}")
    return score is None or not math.isfinite(score) or bool(score <= baseline)


# --- the failed-run rule ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """What a constant predictor reaches on a split: the reference of the failed-run rule (see `failure`)."""

    metric: str
    score: float
    """The best `metric` any constant prediction scores on the split."""
    predictor: str
    """Which constant that is, e.g. "always 'not_entailment'" (accuracy on RTE) or "any constant" (correlations)."""
    mse: float | None = None
    """Regression: the split's MSE when every example is predicted as the training labels' mean."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def constant_baseline(
    labels: ArrayLike,
    *,
    num_labels: int,
    metric: str,
    train_labels: ArrayLike | None = None,
    label_names: Sequence[str] | None = None,
) -> Baseline:
    """The best score any constant predictor reaches on `labels` under `metric`, and which predictor it is.

    Classification: every constant class is scored and the best kept (ties to the smallest class id): for accuracy
    that is the majority class; for F1 (positive class 1) the better of always-positive, ``2p / (1 + p)`` with
    ``p`` the positive share, and always-negative (0) — so a minority positive class does not make the baseline 0,
    as the majority class alone would; Matthews correlation is 0 for every constant. Regression: correlations are
    0 for every constant, and with `train_labels` `mse` is the split's MSE when predicting their mean (what a model
    that collapsed to the prior would score).
    """
    _validate_metric(metric, num_labels)
    if num_labels == 1:
        labels = _as_1d(labels, "labels").astype(np.float64)
        mse = None
        if train_labels is not None:
            mean = float(np.mean(_as_1d(train_labels, "train_labels").astype(np.float64)))
            mse = float(np.mean((labels - mean) ** 2))
        return Baseline(metric, 0.0, "any constant", mse)
    labels = _as_class_ids(labels, "labels", num_labels)
    scores = [classification_metrics(np.full_like(labels, k), labels, num_labels=num_labels)[metric]
              for k in range(num_labels)]  # fmt: skip
    best = int(np.argmax(scores))  # the first (smallest) class id among ties
    name = repr(label_names[best]) if label_names is not None else str(best)
    return Baseline(metric, float(scores[best]), f"always {name}")


def failure(
    score: float | None, baseline: Baseline | Mapping[str, Any], *, mse: float | None = None, diverged: bool = False
) -> str | None:
    """Why a run failed, or None when it did not: "diverged" (a non-finite loss); "constant" (its final test score
    is missing, non-finite, or at or below the best constant predictor's: Dodge et al. 2020 and Mosbach et al.
    2021 count a run as failed when it is no better than the majority classifier, and this is the same rule for
    every metric, taking the best constant rather than the majority class alone); "collapsed" (regression: a test
    MSE at least that of predicting the training labels' mean, whatever the correlations say).
    """
    b = baseline if isinstance(baseline, Baseline) else Baseline(**baseline)
    if diverged:
        return "diverged"
    if is_failed(score, b.score):
        return "constant"
    if b.mse is not None and (mse is None or not mse < b.mse):
        return "collapsed"
    return None


# One-sided significance level of `beats_chance`: the conventional 5% (`steadytune.verdict.ALPHA`).
CHANCE_ALPHA = 0.05


def beats_chance(
    metrics: Mapping[str, float],
    baseline: Baseline,
    *,
    n: int,
    num_labels: int,
    majority_rate: float | None = None,
    alpha: float = CHANCE_ALPHA,
) -> tuple[bool, float, str]:
    """(verdict, p, test) of `steadytune.verdict.learned`, the one test of learning, on scores of an `n`-example
    split; kept for code written against 0.8 (fit's verdict now reads the test split: see `steadytune.verdict`)."""
    from .verdict import learned

    v = learned(metrics, baseline, n=n, num_labels=num_labels, majority_rate=majority_rate, alpha=alpha)
    return v.yes, v.p, v.test
