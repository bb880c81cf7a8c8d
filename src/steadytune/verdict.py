"""Whether a model learned anything: the one test behind every yes or no steadytune prints about learning.

A model *learned* when, on ``n`` examples that took part in no choice, its score beats the best constant
predictor's and a one-sided test rejects "its predictions are independent of the labels" at ``alpha`` (5%):

* accuracy (any number of classes), and Matthews correlation with more than two classes: the exact binomial test
  of the number of correct answers against the split's majority-class rate (`scipy.stats.binomtest`). Under
  independence no predictor is right more often than the majority share, so the test is exact, if conservative;
* F1 and Matthews correlation of a binary task: Fisher's exact test of the 2×2 table of predictions against labels,
  alternative "greater" (`scipy.stats.fisher_exact`), exact at every n given the table's margins. The table is
  rebuilt from the stored accuracy, F1 and Matthews correlation (`two_by_two`), so stored records can be judged
  again without their predictions. (fit ≤ 0.8.1 used the chi-squared test of n·MCC², which is not exact on the
  7 to 30 test rows of a small file);
* Pearson and Spearman correlation: the t test of r with n − 2 degrees of freedom (exact for Pearson under
  normality, scipy's test for both).

Where the n examples come from is the whole question. ``fit`` chooses a candidate, and within it a checkpoint, by
validation scores, and drops candidates by validation scores and training losses: the largest of ~40 validation
looks beats a per-look 5% line far more often than 5% of the time (the winner's curse; Cawley & Talbot 2010, "On
Over-fitting in Model Selection and Subsequent Selection Bias in Performance Evaluation"). fit ≤ 0.8.1 tested its
pick on that same validation split and said yes on shuffled labels (docs/results/verdict.md counts how often). So
the verdict reads the **test split**, which no choice ever reads: the one chosen model is fixed before its test
score is looked at, one test is run, and its false-yes rate is at most ``alpha`` with nothing left to correct for.
Two alternatives were weighed and rejected:

* a permutation test of the maximum over every candidate × evaluation on validation: successive halving decides
  which looks exist from the validation labels themselves (a dropped candidate is never evaluated again), so
  permuting the labels over the looks that were made is not the procedure's null distribution; the exact version
  reruns the search per permutation;
* Bonferroni over every look the search could make (9 candidates × 10 evaluations): each must then reach
  p < 0.05 / 90, which costs more power than moving to test rows (on RTE's 138 validation rows a pick then needs
  about 0.67 accuracy instead of 0.60 on the 139 test rows).

The test split's size is the data protocol's (`steadytune.data`): for a GLUE preset the test half of dev (the
paper's protocol), for a user's file 10% of it (30 rows of 300: 20 correct of 30 reach p < 0.05 against 0.5).
Small files get few test rows, and the verdict then says no unless the model is nearly always right: that is what
7 rows can show, and the no says so.

`learned` is used by `fit` (its verdict, exit code, fit.json and model card) and by the study report's count of
runs that did not fail yet cannot be told from chance (each run's last checkpoint, which no choice picked).
`steadytune.hf.FailureCallback` says only "failed" (at or below the constant predictor), never a yes: the eval
set it watches is often the one a Trainer chooses its best checkpoint on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ALPHA", "Verdict", "learned", "two_by_two"]

# One-sided significance level: the conventional 5%.
ALPHA = 0.05


@dataclass(frozen=True)
class Verdict:
    """One test's outcome: whether the scores show learning, its p-value, which test, on how many examples."""

    yes: bool
    p: float
    test: str
    """The test in words ("no score" when there was nothing to test)."""
    n: int
    split: str = "test"
    """Which split's scores were tested."""
    corrected_for: str = "nothing: the tested rows took part in no choice"
    """What the test accounts for beyond one look (a verdict on rows that chose nothing needs no correction)."""
    alpha: float = ALPHA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """The test, its size and its p in words, e.g. "exact binomial test … on 139 test examples: p = 0.037" (no
        decision words: callers say yes or no)."""
        if self.test == "no score":
            return f"no score to test on {self.n} {self.split} examples"
        return f"{self.test} on {self.n} {self.split} examples: p = {self.p:.2g}"


def two_by_two(n: int, accuracy: float, f1: float, mcc: float, *,
               positives: int | None = None) -> tuple[int, int, int, int]:  # fmt: skip
    """The binary confusion table (true positives, false negatives, false positives, true negatives) that gives
    `accuracy`, `f1` (positive class 1) and `mcc` on `n` examples of which `positives` are labelled 1.

    With e = n(1 − accuracy) errors, F1 = 2TP / (2TP + e) gives TP = F1·e / (2(1 − F1)), then FN = positives − TP.
    Without `positives` (a stored record that lacks them), e splits into FN + FP as the Matthews correlation says,
    up to swapping the two (a transpose, which neither the scores nor Fisher's test can tell apart); an error-free
    table then has an unknown class balance and is taken at its least significant, one positive (p = 1/n)."""
    errors = round(n * (1.0 - accuracy))
    correct = n - errors
    if errors == 0:  # F1 0 here means no positive anywhere
        tp = 0 if f1 < 0.5 else positives if positives is not None else 1
        return tp, 0, 0, correct - tp
    tp = round(f1 * errors / (2.0 * (1.0 - f1)))  # F1 < 1 whenever there are errors
    tn = correct - tp
    if positives is not None and 0 <= positives - tp <= errors:
        return tp, positives - tp, errors - (positives - tp), tn
    best, table = math.inf, (tp, errors, 0, tn)
    for fn in range(errors + 1):
        fp = errors - fn
        denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        value = 0.0 if denominator == 0 else (tp * tn - fp * fn) / denominator
        if abs(value - mcc) < best:
            best, table = abs(value - mcc), (tp, fn, fp, tn)
    return table


def learned(
    metrics: Mapping[str, float],
    baseline: Any,
    *,
    n: int,
    num_labels: int,
    majority_rate: float | None = None,
    positives: int | None = None,
    split: str = "test",
    corrected_for: str | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """Whether scores on an `n`-example split beat every constant predictor by more than chance (module docstring).

    `metrics` holds the split's scores (accuracy, f1 and matthews_correlation of a binary task; pearson or
    spearmanr); `baseline` is the split's best constant predictor (a `steadytune.metrics.Baseline` or its dict),
    whose `metric` is the one judged; `majority_rate` (the split's majority-class share) is needed for a
    multi-class Matthews correlation, and `positives` (the split's count of label 1) pins a binary table down.
    `split` and `corrected_for` are recorded in the verdict as given."""
    from scipy.stats import binomtest, fisher_exact
    from scipy.stats import t as student_t

    base = baseline if isinstance(baseline, Mapping) else asdict(baseline)
    metric = base["metric"]
    kept = {"split": split, "alpha": alpha, **({"corrected_for": corrected_for} if corrected_for else {})}
    score = metrics.get(metric)
    if score is None or not math.isfinite(score) or n < 3:
        return Verdict(False, 1.0, "no score", n, **kept)
    above = score > base["score"]
    if metric == "accuracy" or (metric == "matthews_correlation" and num_labels > 2):
        majority = base["score"] if metric == "accuracy" else majority_rate
        if majority is None:
            raise ValueError("a multi-class Matthews correlation needs majority_rate (the majority-class share)")
        correct = round(metrics["accuracy"] * n)
        p = float(binomtest(correct, n, majority, alternative="greater").pvalue)
        test = f"exact binomial test of {correct}/{n} correct against the majority rate {majority:.3f}"
    elif metric in ("f1", "matthews_correlation"):
        tp, fn, fp, tn = two_by_two(
            n, metrics["accuracy"], metrics["f1"], metrics["matthews_correlation"], positives=positives
        )
        p = float(fisher_exact([[tp, fn], [fp, tn]], alternative="greater").pvalue)
        test = f"Fisher's exact test of the 2x2 table (TP {tp}, FN {fn}, FP {fp}, TN {tn})"
    elif metric in ("pearson", "spearmanr"):
        r = min(score, 1.0 - 1e-12)  # r = 1 exactly: t is infinite, p = 0
        p = float(student_t.sf(r * math.sqrt((n - 2) / (1.0 - r * r)), n - 2))
        test = f"t test of the {metric} correlation ({n - 2} df)"
    else:
        raise ValueError(f"no test of learning for metric {metric!r}")
    return Verdict(above and p < alpha, p, test, n, **kept)
