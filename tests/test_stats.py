"""Tests for steadytune.stats: every statistic against numpy/scipy in float64, Holm, bold, failures, Levene, Fisher,
best-of-k against brute-force enumeration, and what a test split resolves."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy.stats import binomtest, fisher_exact, levene, pearsonr, ttest_ind
from scipy.stats import t as student_t

from steadytune.errors import UserInputError
from steadytune.files import to_json
from steadytune.stats import (
    default_reference,
    describe,
    expected_max_performance,
    holm,
    ordered_unique,
    resolution,
    summarize,
)


def row(
    recipe: str,
    seed: int,
    test_best: float | None,
    *,
    task: str = "rte",
    test_last: float | None = None,
    validation_best: float | None = None,
    failed: bool = False,
    diverged: bool = False,
    metric: str = "accuracy",
    baseline: float = 0.5,
    optimizer: str | None = None,
) -> dict:
    """One trial row as trial_rows hands it over; last and validation default to the best test score."""
    return {
        "task": task,
        "recipe": recipe,
        "seed": seed,
        "metric": metric,
        "majority_baseline": baseline,
        "baseline": baseline,
        "test_best": test_best,
        "test_last": test_best if test_last is None else test_last,
        "validation_best": test_best if validation_best is None else validation_best,
        "failed": failed,
        "diverged": diverged,
        "wall_s": 1.0,
        **({"config.optimizer": optimizer} if optimizer else {}),
    }


def by_recipe(summary: list[dict], task: str = "rte") -> dict[str, dict]:
    return {s["recipe"]: s for s in summary if s["task"] == task}


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- describe ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_describe_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.7, 0.05, size=9)
    values = [*x.tolist(), None, math.nan]  # unscored values are left out

    d = describe(values)

    assert d["n"] == 9
    assert d["mean"] == pytest.approx(np.mean(x), abs=1e-15, rel=0)
    assert d["std"] == pytest.approx(np.std(x, ddof=1), abs=1e-15, rel=0)
    assert d["median"] == pytest.approx(np.median(x), abs=1e-15, rel=0)
    assert (d["min"], d["max"]) == (x.min(), x.max())
    assert all(type(v) is float for k, v in d.items() if k != "n")


def test_describe_degenerate() -> None:
    assert describe([]) == {"n": 0, "mean": None, "std": None, "median": None, "min": None, "max": None}
    assert describe([None, math.inf]) == describe([])
    one = describe([0.6, None])
    assert one == {"n": 1, "mean": 0.6, "std": None, "median": 0.6, "min": 0.6, "max": 0.6}


def test_ordered_unique() -> None:
    assert ordered_unique(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


# --- Holm --------------------------------------------------------------------------------------------------------


def test_holm_hand_computed() -> None:
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> raised to 0.06 (step-down: monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    # None is no test: the family has m = 2.
    assert holm([0.01, None, 0.04]) == [pytest.approx(0.02, abs=1e-15), None, pytest.approx(0.04, abs=1e-15)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1
    assert holm([0.2]) == [0.2] and holm([]) == [] and holm([None]) == [None]


@pytest.mark.parametrize("seed", range(5))
def test_holm_rejects_like_the_step_down_procedure(seed: int) -> None:
    """Adjusted p < alpha exactly for the hypotheses Holm's sequential procedure rejects."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.08, size=7)
    adjusted = holm(p.tolist())
    order = np.argsort(p)
    rejected = set()
    for rank, i in enumerate(order):
        if p[i] >= 0.05 / (len(p) - rank):
            break
        rejected.add(int(i))
    assert {i for i, a in enumerate(adjusted) if a < 0.05} == rejected


# --- summarize against scipy -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_summary_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    recipes = ["bertadam", "adam", "adam+reinit:2", "adam+lr=1e-4"]
    scores = {r: rng.normal(0.6 + 0.03 * i, 0.04 + 0.02 * i, size=7) for i, r in enumerate(recipes)}
    last = {r: scores[r] - rng.uniform(0, 0.05, size=7) for r in recipes}
    failed = {r: last[r] <= 0.58 for r in recipes}
    rows = [
        row(r, s, float(scores[r][s]), test_last=float(last[r][s]), validation_best=float(rng.random()),
            failed=bool(failed[r][s]), optimizer="bertadam" if r == "bertadam" else "adamw", baseline=0.58)
        for s in range(7)
        for r in recipes
    ]  # fmt: skip
    rows.append(row("adam", 7, None, test_last=None, validation_best=None, failed=True, diverged=True, baseline=0.58))
    # The diverged run counts at the failure line (0.58) in the means and tests.
    scores["adam"], last["adam"] = np.append(scores["adam"], 0.58), np.append(last["adam"], 0.58)
    failures = {r: int(failed[r].sum()) + (r == "adam") for r in recipes}
    n = {r: 7 + (r == "adam") for r in recipes}

    summary = by_recipe(summarize(rows))

    best = max(recipes, key=lambda r: np.mean(scores[r]))
    others = [r for r in recipes if r != best]
    welch = {r: ttest_ind(scores[best], scores[r], equal_var=False, alternative="greater").pvalue for r in others}
    compared = [r for r in recipes if r != "adam"]  # adam is the reference: the first adamw recipe
    lev = {r: levene(scores[r], scores["adam"], center="median").pvalue for r in compared}
    fish = {
        r: fisher_exact([[failures[r], n[r] - failures[r]], [failures["adam"], n["adam"] - failures["adam"]]],
                        alternative="greater").pvalue
        for r in compared
    }  # fmt: skip
    for family, raw in (("welch", welch), ("levene", lev), ("fisher", fish)):
        adjusted = dict(zip(raw, holm(list(raw.values()))))
        for r in recipes:
            if r in raw:
                assert summary[r][f"{family}_p"] == pytest.approx(raw[r], abs=1e-12, rel=0), (family, r)
                assert summary[r][f"{family}_holm"] == pytest.approx(adjusted[r], abs=1e-12, rel=0), (family, r)
            else:
                assert summary[r][f"{family}_p"] is None and summary[r][f"{family}_holm"] is None
    assert summary[best]["welch_why"] == "best" and summary["adam"]["levene_why"] == "reference"
    for r in recipes:
        s = summary[r]
        assert s["reference"] == "adam" and s["best_recipe"] == best
        assert s["n"] == n[r] and s["best_n"] == s["last_n"] == n[r]
        assert s["failed"] == failures[r] and s["failure_rate"] == failures[r] / n[r]
        for prefix, x in (("best", scores[r]), ("last", last[r])):
            assert s[f"{prefix}_mean"] == pytest.approx(np.mean(x), abs=1e-15, rel=0)
            assert s[f"{prefix}_std"] == pytest.approx(np.std(x, ddof=1), abs=1e-15, rel=0)
            assert s[f"{prefix}_median"] == pytest.approx(np.median(x), abs=1e-15, rel=0)
            assert (s[f"{prefix}_min"], s[f"{prefix}_max"]) == (x.min(), x.max())
        assert s["expected"][0]["mean"] == pytest.approx(s["best_mean"], abs=1e-15, rel=0)  # k = 1: the mean
    assert summary["adam"]["imputed_best"] == summary["adam"]["imputed_last"] == 1
    to_json(list(summary.values()))  # plain Python values, strict JSON


def test_levene_is_brown_forsythe_not_mean_centred() -> None:
    # Skewed samples: median- and mean-centred Levene differ, and the summary must give the median one.
    a = [0.50, 0.51, 0.52, 0.53, 0.80]
    b = [0.60, 0.62, 0.64, 0.66, 0.68]
    rows = [row("adam", i, v) for i, v in enumerate(a)] + [row("other", i, v) for i, v in enumerate(b)]
    s = by_recipe(summarize(rows))["other"]
    assert s["levene_p"] == pytest.approx(levene(b, a, center="median").pvalue, abs=1e-12, rel=0)
    assert s["levene_p"] != pytest.approx(levene(b, a, center="mean").pvalue, abs=1e-6)


# --- order -------------------------------------------------------------------------------------------------------


def test_order_of_tasks_and_recipes_is_first_appearance() -> None:
    rows = [
        row("zeta", 0, 0.6, task="mrpc"),
        row("adam", 0, 0.7, task="rte"),
        row("alpha", 0, 0.5, task="mrpc"),
        row("adam", 0, 0.7, task="mrpc"),
        row("zeta", 0, 0.6, task="rte"),
        row("zeta", 1, 0.6, task="mrpc"),
    ]
    summary = summarize(rows)
    assert [(s["task"], s["recipe"]) for s in summary] == [
        ("mrpc", "zeta"),
        ("mrpc", "adam"),  # "adam" came before "alpha" in the rows (on rte): one recipe order for every task
        ("mrpc", "alpha"),
        ("rte", "zeta"),
        ("rte", "adam"),
    ]


# --- bold (Table 1) ----------------------------------------------------------------------------------------------


def test_bold_is_the_best_and_everything_above_the_significantly_worse() -> None:
    # The MRPC pattern of the shipped study: a tight recipe ("tight") just below the best is significantly worse,
    # while a noisy one with a lower mean ("noisy") is not. Bold must not skip "tight" and mark "noisy".
    best = [0.820, 0.825, 0.815, 0.830, 0.822]
    tight = [0.812, 0.811, 0.813, 0.812, 0.811]
    noisy = [0.78, 0.83, 0.80, 0.77, 0.84]
    far = [0.55, 0.56, 0.54, 0.57, 0.53]
    groups = {"best": best, "tight": tight, "noisy": noisy, "far": far}
    rows = [row(r, i, v) for r, xs in groups.items() for i, v in enumerate(xs)]

    s = by_recipe(summarize(rows))

    p = {r: ttest_ind(best, groups[r], equal_var=False, alternative="greater").pvalue for r in ("tight", "noisy")}
    assert p["tight"] < 0.05 / 3 and p["noisy"] > 0.05  # the premise: tight is significant even after Holm
    assert np.mean(noisy) < np.mean(tight)
    assert {r for r, e in s.items() if e["bold"]} == {"best"}  # noisy's mean is below tight's: not bold either
    # Without "tight", nothing significant sits above "noisy": it is bold, "far" is not.
    s = by_recipe(summarize([x for x in rows if x["recipe"] != "tight"]))
    assert {r for r, e in s.items() if e["bold"]} == {"best", "noisy"}


@pytest.mark.parametrize("seed", range(20))
def test_bold_is_monotone_in_the_mean(seed: int) -> None:
    rng = np.random.default_rng(seed)
    recipes = [f"r{i}" for i in range(6)]
    rows = [row(r, s, float(rng.normal(rng.uniform(0.5, 0.7), rng.uniform(0.001, 0.08))))
            for r in recipes for s in range(5)]  # fmt: skip
    s = by_recipe(summarize(rows))
    for a, b in itertools.permutations(recipes, 2):
        if s[b]["bold"] and s[a]["best_mean"] >= s[b]["best_mean"]:
            assert s[a]["bold"], (a, b)
    # ... and the one-sentence definition holds.
    worse = [e["best_mean"] for e in s.values() if e["welch_holm"] is not None and e["welch_holm"] < 0.05]
    for e in s.values():
        assert e["bold"] is (e["recipe"] == e["best_recipe"] or e["best_mean"] > max(worse, default=-math.inf))


def test_constant_samples(no_warnings) -> None:
    # Collapsed runs all score the failure line exactly: scipy divides 0 by 0; no warning, no NaN comes out.
    rows = [row(r, i, 0.5) for r in ("adam", "bertadam") for i in range(3)]
    rows += [row("worse", i, 0.4) for i in range(3)]
    summary = by_recipe(summarize(rows))
    assert summary["adam"]["bold"] is True and summary["adam"]["welch_why"] == "best"
    assert summary["bertadam"]["welch_p"] is None and summary["bertadam"]["welch_why"] == "constant"
    assert summary["bertadam"]["bold"] is True  # exactly as good
    assert summary["worse"]["welch_p"] < 1e-20 and summary["worse"]["bold"] is False
    assert summary["bertadam"]["levene_why"] == summary["worse"]["levene_why"] == "constant"
    assert summary["adam"]["best_std"] == 0.0


# --- failures and diverged runs ----------------------------------------------------------------------------------


def test_diverged_runs_count_at_the_failure_line() -> None:
    rows = [
        row("bertadam", 0, 0.70),
        row("bertadam", 1, 0.48, failed=True),
        row("bertadam", 2, None, failed=False, diverged=True),  # diverged: failed even if the flag is not set
        row("bertadam", 3, 0.66, failed=True, diverged=True),  # diverged after its best checkpoint ...
        row("bertadam", 4, 0.66),
    ]
    rows[3]["test_last"] = None  # ... so its last checkpoint has no score
    s = summarize(rows)[0]
    assert (s["n"], s["failed"], s["diverged"]) == (5, 3, 2)
    assert s["failure_rate"] == pytest.approx(3 / 5)
    assert s["best_n"] == 5 and s["best_mean"] == pytest.approx(np.mean([0.70, 0.48, 0.5, 0.66, 0.66]), abs=1e-15)
    assert s["last_mean"] == pytest.approx(np.mean([0.70, 0.48, 0.5, 0.5, 0.66]), abs=1e-15)
    assert (s["imputed_best"], s["imputed_last"]) == (1, 2)
    assert len(s["expected"]) == 5 and s["expected"][0]["mean"] == pytest.approx(s["best_mean"], abs=1e-15)


def test_a_diverging_recipe_cannot_rank_best_by_dropping_its_runs() -> None:
    rows = [row("steady", i, 0.70 + 0.01 * i) for i in range(4)]
    rows += [row("wild", 0, 0.90), *(row("wild", i, None, diverged=True, failed=True) for i in range(1, 4))]
    s = by_recipe(summarize(rows))
    assert s["wild"]["best_mean"] == pytest.approx((0.90 + 3 * 0.5) / 4, abs=1e-15)
    assert s["steady"]["best_recipe"] == "steady"


def test_all_runs_diverged() -> None:
    rows = [row("bertadam", i, None, diverged=True) for i in range(3)]
    rows += [row("adam", i, 0.6 + i / 100) for i in range(3)]
    summary = by_recipe(summarize(rows))
    s = summary["bertadam"]
    assert s["best_mean"] == 0.5 and s["failure_rate"] == 1.0 and s["best_std"] == 0.0
    assert [e["mean"] for e in s["expected"]] == [0.5] * 3  # no validation score: picked at the failure line
    assert s["bold"] is False and s["levene_why"] == "reference"  # the first recipe: no optimizer in the rows
    assert summary["adam"]["best_recipe"] == "adam"


# --- the reference recipe ----------------------------------------------------------------------------------------


def test_default_reference_is_the_first_bias_corrected_recipe() -> None:
    rows = [row("bertadam", 0, 0.6, optimizer="bertadam"), row("adam+reinit:2", 0, 0.6, optimizer="adamw"),
            row("adam", 0, 0.6, optimizer="adamw")]  # fmt: skip
    assert default_reference(rows) == "adam+reinit:2"  # not "adam" by name
    assert default_reference([row("bertadam", 0, 0.6, optimizer="bertadam"), row("x", 0, 0.6)]) == "bertadam"
    assert default_reference([]) is None


def test_reference_none_cases() -> None:
    rows = [row("bertadam", i, 0.6 + 0.01 * i, optimizer="bertadam") for i in range(4)]
    rows += [row("reinit", i, 0.6 + 0.03 * i, optimizer="adamw") for i in range(4)]
    rows += [row("one-run", 0, 0.61, optimizer="adamw")]
    summary = by_recipe(summarize(rows))
    assert summary["reinit"]["reference"] == "reinit"  # no recipe named adam: the Levene column is not blank
    assert summary["bertadam"]["levene_p"] == pytest.approx(
        levene([0.6 + 0.01 * i for i in range(4)], [0.6 + 0.03 * i for i in range(4)]).pvalue, abs=1e-12
    )
    assert (summary["reinit"]["levene_why"], summary["reinit"]["fisher_why"]) == ("reference", "reference")
    assert summary["one-run"]["levene_why"] == "n < 2" and summary["one-run"]["fisher_p"] == 1.0

    other = by_recipe(summarize(rows, reference="bertadam"))
    assert other["reinit"]["levene_p"] == pytest.approx(summary["bertadam"]["levene_p"], abs=1e-15)  # symmetric
    with pytest.raises(UserInputError, match="reference recipe 'adam' is not in the study; recipes: bertadam"):
        summarize(rows, reference="adam")

    # A task without the reference's runs says so.
    rows2 = [row("adam", i, 0.6 + 0.01 * i, task="mrpc", optimizer="adamw") for i in range(4)]
    rows2 += [row("reinit", i, 0.6 + 0.03 * i, task="rte") for i in range(4)]
    s = by_recipe(summarize(rows2), "rte")["reinit"]
    assert (s["levene_p"], s["levene_why"], s["fisher_why"]) == (None, "no reference runs", "no reference runs")


# --- expected best-of-k (Dodge et al. 2019) ----------------------------------------------------------------------


def brute_force(validation: list[float], test: list[float], k: int) -> tuple[float, float]:
    """Mean and std over all n^k equally likely draws: the picked run is a uniform pick among the drawn runs that
    tie for the best validation score (its expectation is the mean of those drawn); the std is of the winning
    validation group's mean test score."""
    v, t = np.array(validation), np.array(test)
    total, second = 0.0, 0.0
    for draw in itertools.product(range(len(v)), repeat=k):
        top = max(v[i] for i in draw)
        total += np.mean([t[i] for i in draw if v[i] == top])
        second += np.mean(t[v == top]) ** 2
    count = len(v) ** k
    mean = total / count
    return mean, math.sqrt(max(second / count - mean**2, 0.0))


@pytest.mark.parametrize("seed", range(6))
def test_expected_max_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    validation = rng.choice([0.1, 0.2, 0.3, 0.4], size=n).tolist()  # few values: ties in validation
    if seed % 2:
        validation[0] = -math.inf  # a run without a validation score
    test = rng.uniform(0.4, 0.9, size=n).tolist()

    result = expected_max_performance(validation, test, k_max=4)

    assert [r["k"] for r in result] == [1, 2, 3, 4]
    assert result[0]["mean"] == pytest.approx(np.mean(test), abs=1e-15, rel=0)  # k = 1: the plain mean
    for r in result:
        mean, std = brute_force(validation, test, r["k"])
        assert r["mean"] == pytest.approx(mean, abs=1e-12, rel=0), r["k"]
        assert r["std"] == pytest.approx(std, abs=1e-9, rel=0), r["k"]


def test_expected_max_hand_checked() -> None:
    # Two runs, validation ranks b above a: best of 2 is b unless both draws are a (prob 1/4).
    result = expected_max_performance([0.1, 0.9], [0.8, 0.6])
    assert result[0] == {"k": 1, "mean": pytest.approx(0.7, abs=1e-15), "std": pytest.approx(0.1, abs=1e-15)}
    assert result[1]["mean"] == pytest.approx(0.25 * 0.8 + 0.75 * 0.6, abs=1e-15)
    assert result[1]["std"] == pytest.approx(math.sqrt(0.25 * 0.75) * 0.2, abs=1e-15)


def test_expected_max_validation_ties_average() -> None:
    # All validation scores tie: the pick is uniform among the drawn runs, so every k gives the plain mean.
    test = np.array([0.5, 0.6, 0.9])
    result = expected_max_performance(np.zeros(3), test, k_max=6)
    assert all(r["mean"] == pytest.approx(test.mean(), abs=1e-15) and r["std"] == 0.0 for r in result)


def test_expected_max_rises_when_validation_ranks_like_test() -> None:
    test = np.array([0.5, 0.6, 0.65, 0.7, 0.9])
    result = expected_max_performance(test * 2, test, k_max=8)
    assert all(a["mean"] < b["mean"] for a, b in zip(result, result[1:]))
    assert result[-1]["mean"] < 0.9 and len(result) == 8  # k beyond n: with replacement


# --- what a test split resolves ----------------------------------------------------------------------------------


def test_resolution_of_accuracy_is_the_exact_binomial_threshold() -> None:
    res = resolution("accuracy", 139, 73 / 139)  # RTE's test half: 73 of 139 are the majority class
    assert res["test"] == "binomial" and res["correct"] == 84
    assert res["threshold"] == pytest.approx(0.604, abs=5e-4)
    assert binomtest(84, 139, 73 / 139, alternative="greater").pvalue < 0.05
    assert binomtest(83, 139, 73 / 139, alternative="greater").pvalue >= 0.05  # the smallest such count
    assert resolution("accuracy", 5, 0.8)["threshold"] is None  # 5/5 has p = 0.33: nothing resolves
    assert resolution("accuracy", None, 0.5)["why"] == "test-split size unknown"


@pytest.mark.parametrize(("metric", "n"), [("matthews_correlation", 522), ("pearson", 20), ("spearmanr", 750)])
def test_resolution_of_correlations_is_the_critical_r(metric: str, n: int) -> None:
    r = resolution(metric, n, 0.0)["threshold"]
    t = r * math.sqrt((n - 2) / (1 - r * r))
    assert student_t.sf(t, n - 2) == pytest.approx(0.05, abs=1e-12)
    # scipy's Pearson test at exactly that correlation gives p = 0.05 one-sided.
    x = np.linspace(-1, 1, n)
    z = np.random.default_rng(0).normal(size=n)
    z -= z.mean() + np.dot(z - z.mean(), x) / np.dot(x, x) * x  # orthogonal to x, mean 0
    y = r * x / np.linalg.norm(x) + math.sqrt(1 - r * r) * z / np.linalg.norm(z)
    assert pearsonr(x, y, alternative="greater").pvalue == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize(("n", "positives"), [(204, 139), (40, 12), (60, 30)])
def test_resolution_of_f1_guarantees_a_significant_accuracy(n: int, positives: int) -> None:
    baseline = 2 * positives / (positives + n)  # always-positive: the failure line of F1
    res = resolution("f1", n, baseline)
    c = res["correct"]
    assert res["test"] == "binomial-f1" and res["rate"] == max(positives, n - positives) / n
    assert binomtest(c, n, res["rate"], alternative="greater").pvalue < 0.05
    assert binomtest(c - 1, n, res["rate"], alternative="greater").pvalue >= 0.05
    # Every confusion matrix: an F1 at or above the threshold has at least c correct, and the threshold is reached.
    reached = False
    for tp in range(positives + 1):
        for tn in range(n - positives + 1):
            errors = n - tp - tn
            f1 = 2 * tp / (2 * tp + errors) if tp else 0.0
            if f1 >= res["threshold"] - 1e-12:
                assert tp + tn >= c, (tp, tn)
                reached |= tp + tn == c
    assert reached
    assert resolution("f1", 100, 0.0)["threshold"] is None  # no positives


def test_the_failure_line_comes_from_re_scored_rows() -> None:
    # F1 with a minority positive class: the stored rule's line was the majority class's F1, 0; the current one is
    # always-positive's. A row that kept its stored verdict does not move the task's line.
    stored = {**row("adam", 0, 0.3, metric="f1", baseline=0.0), "rule": "stored"}
    rows = [stored, {**row("adam", 1, 0.6, metric="f1", baseline=0.0), "baseline": 0.5, "rule": "current"}]
    assert summarize(rows)[0]["baseline"] == 0.5


def test_summary_counts_runs_that_did_not_fail_but_do_not_resolve() -> None:
    rows = [row("adam", i, v, test_last=v, failed=v <= 73 / 139, baseline=73 / 139)
            for i, v in enumerate([0.58, 0.61, 84 / 139, 0.5])]  # fmt: skip
    for r in rows:
        r["test_size"] = 139
    s = summarize(rows)[0]
    assert s["resolution"]["correct"] == 84
    assert (s["not_failed"], s["unresolved"]) == (3, 1)  # 0.58 did not fail, yet is below 84/139


def test_summary_counts_not_learned_by_the_verdicts_test_where_the_rows_carry_it() -> None:
    """`learned_last` (steadytune.verdict's test, fit's rule) decides the count, not the score threshold."""
    rows = [row("adam", i, v, test_last=v, failed=False, baseline=73 / 139) for i, v in enumerate([0.58, 0.61, 0.7])]
    for r, learned in zip(rows, [True, False, True]):
        r["test_size"], r["learned_last"] = 139, learned
    assert summarize(rows)[0]["unresolved"] == 1  # 0.61 passes the threshold, but its row says not learned


def test_trial_rows_judge_each_run_with_the_verdicts_test() -> None:
    from scipy.stats import fisher_exact

    from steadytune.study.results import _learned

    n, positives = 204, 139  # MRPC's test half: always-positive scores F1 2·139 / (139 + 204)
    line = {"metric": "f1", "score": 2 * positives / (positives + n), "predictor": "always 1", "mse": None}
    record = {"data": {"label_names": ["no", "yes"], "sizes": {"test": n}}}
    tp, fn, fp, tn = 120, 19, 30, 35  # TP + FN = the positives
    scores = {
        "accuracy": (tp + tn) / n,
        "f1": 2 * tp / (2 * tp + fn + fp),
        "matthews_correlation": (tp * tn - fp * fn) / ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5,
    }
    p = fisher_exact([[tp, fn], [fp, tn]], alternative="greater").pvalue
    assert _learned(record, scores, line) is bool(scores["f1"] > line["score"] and p < 0.05) is True
    assert _learned(record, {**scores, "f1": 0.5}, line) is False  # below always-positive's F1
    assert _learned(record, scores, None) is None and _learned(record, {}, line) is False


# --- bad input ---------------------------------------------------------------------------------------------------


def test_bad_input() -> None:
    rows = [row("adam", 0, 0.6), row("adam", 1, 0.7)]
    with pytest.raises(UserInputError, match="alpha"):
        summarize(rows, alpha=1.5)
    bad = dict(rows[0])
    del bad["validation_best"]
    with pytest.raises(UserInputError, match="row 1 lacks validation_best"):
        summarize([rows[0], bad])
    with pytest.raises(UserInputError, match="metric"):
        summarize([rows[0], row("bertadam", 0, 0.6, metric="f1")])
    with pytest.raises(UserInputError, match="majority_baseline"):
        summarize([rows[0], row("bertadam", 0, 0.6, baseline=0.4)])
    with pytest.raises(UserInputError, match="test_size"):
        summarize([{**rows[0], "test_size": 10}, {**rows[1], "test_size": 11}])
    with pytest.raises(UserInputError, match="finite"):
        expected_max_performance([0.1, math.nan], [0.5, 0.6])
    with pytest.raises(UserInputError, match="finite"):
        expected_max_performance([0.1, 0.2], [0.5, None])
    with pytest.raises(UserInputError, match="shapes"):
        expected_max_performance([0.1], [0.5, 0.6])
    with pytest.raises(UserInputError, match="k_max"):
        expected_max_performance([0.1], [0.5], k_max=0)
    assert summarize([]) == []
