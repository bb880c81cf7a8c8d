"""Tests for steadytune.stats: every statistic against numpy/scipy in float64, ties, failures, Levene, best-of-k."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import levene, ttest_ind

from steadytune.errors import UserInputError
from steadytune.files import to_json
from steadytune.stats import describe, expected_max_performance, ordered_unique, summarize


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
) -> dict:
    """One trial row as study.py hands it over; last and validation default to the best test score."""
    return {
        "task": task,
        "recipe": recipe,
        "seed": seed,
        "metric": metric,
        "majority_baseline": baseline,
        "test_best": test_best,
        "test_last": test_best if test_last is None else test_last,
        "validation_best": test_best if validation_best is None else validation_best,
        "failed": failed,
        "diverged": diverged,
        "wall_s": 1.0,
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
    values = [*x.tolist(), None, math.nan]  # unscored runs are left out

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


# --- summarize against scipy -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_summary_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    recipes = ["bertadam", "adam", "adam+reinit:2"]
    scores = {r: rng.normal(0.6 + 0.03 * i, 0.04 + 0.02 * i, size=7) for i, r in enumerate(recipes)}
    last = {r: scores[r] - rng.uniform(0, 0.05, size=7) for r in recipes}
    rows = [
        row(r, s, float(scores[r][s]), test_last=float(last[r][s]), validation_best=float(rng.random()))
        for s in range(7)
        for r in recipes
    ]
    rows.append(row("adam", 7, None, test_last=None, validation_best=None, failed=True, diverged=True))

    summary = by_recipe(summarize(rows, baseline_recipe="adam"))

    best = max(recipes, key=lambda r: np.mean(scores[r]))
    for r in recipes:
        s = summary[r]
        assert s["n"] == (8 if r == "adam" else 7)
        assert s["best_n"] == s["last_n"] == 7
        for prefix, x in (("best", scores[r]), ("last", last[r])):
            assert s[f"{prefix}_mean"] == pytest.approx(np.mean(x), abs=1e-15, rel=0)
            assert s[f"{prefix}_std"] == pytest.approx(np.std(x, ddof=1), abs=1e-15, rel=0)
            assert s[f"{prefix}_median"] == pytest.approx(np.median(x), abs=1e-15, rel=0)
            assert (s[f"{prefix}_min"], s[f"{prefix}_max"]) == (x.min(), x.max())
        assert s["best_recipe"] == best
        if r == best:
            assert s["welch_p"] is None and s["tie"] is True
        else:
            p = ttest_ind(scores[best], scores[r], equal_var=False, alternative="greater").pvalue
            assert s["welch_p"] == pytest.approx(p, abs=1e-12, rel=0)
            assert s["tie"] is bool(p >= 0.05)
        if r == "adam":
            assert s["levene_p"] is None
        else:
            p = levene(scores[r], scores["adam"], center="median").pvalue
            assert s["levene_p"] == pytest.approx(p, abs=1e-12, rel=0)
    assert summary["adam"]["failed"] == 1 and summary["adam"]["diverged"] == 1
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


# --- ties (the bold cells of Table 1) ----------------------------------------------------------------------------


def test_ties() -> None:
    best = [0.70, 0.72, 0.71, 0.73, 0.74]
    close = [0.69, 0.73, 0.70, 0.72, 0.71]  # not significantly worse
    far = [0.55, 0.56, 0.54, 0.57, 0.53]  # clearly worse
    rows = [row(r, i, v) for r, xs in (("close", close), ("best", best), ("far", far)) for i, v in enumerate(xs)]
    rows.append(row("single", 0, 0.9))  # one run with the highest score: the best mean, but untestable

    summary = by_recipe(summarize(rows))

    # "single" has the highest mean: it is the best recipe, and the others cannot be tested against one run.
    assert summary["single"]["tie"] is True and summary["single"]["welch_p"] is None
    assert all(summary[r]["welch_p"] is None and summary[r]["tie"] is False for r in ("close", "best", "far"))

    summary = by_recipe(summarize(rows[:-1]))
    assert summary["best"]["best_recipe"] == "best"
    assert summary["best"]["tie"] is True and summary["best"]["welch_p"] is None
    p_close, p_far = summary["close"]["welch_p"], summary["far"]["welch_p"]
    assert p_close >= 0.05 and summary["close"]["tie"] is True
    assert p_far < 0.05 and summary["far"]["tie"] is False

    stricter = by_recipe(summarize(rows[:-1], alpha=p_close * 1.01))  # p just below alpha: no tie
    assert stricter["close"]["tie"] is False and stricter["close"]["alpha"] == p_close * 1.01


def test_constant_samples(no_warnings) -> None:
    # Collapsed runs all score the majority baseline exactly: scipy divides 0 by 0; no warning, no NaN comes out.
    rows = [row(r, i, 0.5) for r in ("adam", "bertadam") for i in range(3)]
    rows += [row("worse", i, 0.4) for i in range(3)]
    summary = by_recipe(summarize(rows))
    assert summary["adam"]["tie"] is True
    assert summary["bertadam"]["welch_p"] is None and summary["bertadam"]["tie"] is True  # exactly as good
    assert summary["worse"]["welch_p"] < 1e-20 and summary["worse"]["tie"] is False
    assert summary["bertadam"]["levene_p"] is None and summary["worse"]["levene_p"] is None  # both constant
    assert summary["adam"]["best_std"] == 0.0


# --- failures ----------------------------------------------------------------------------------------------------


def test_failure_rate_counts_diverged_runs() -> None:
    rows = [
        row("bertadam", 0, 0.70),
        row("bertadam", 1, 0.48, failed=True),
        row("bertadam", 2, None, failed=False, diverged=True),  # diverged: failed even if the flag is not set
        row("bertadam", 3, None, failed=True, diverged=True),
        row("bertadam", 4, 0.66),
    ]
    s = summarize(rows)[0]
    assert (s["n"], s["failed"], s["diverged"]) == (5, 3, 2)
    assert s["failure_rate"] == pytest.approx(3 / 5)
    assert s["best_n"] == 3 and s["best_mean"] == pytest.approx(np.mean([0.70, 0.48, 0.66]), abs=1e-15)
    assert len(s["expected"]) == 5  # k = 1..n, drawn from the 3 scored runs


def test_all_runs_diverged() -> None:
    rows = [row("bertadam", i, None, diverged=True) for i in range(3)]
    rows += [row("adam", i, 0.6 + i / 100) for i in range(3)]
    summary = by_recipe(summarize(rows))
    s = summary["bertadam"]
    assert s["best_mean"] is None and s["failure_rate"] == 1.0 and s["expected"] == []
    assert s["welch_p"] is None and s["tie"] is False and s["levene_p"] is None
    assert summary["adam"]["best_recipe"] == "adam"


# --- Levene's None cases -----------------------------------------------------------------------------------------


def test_levene_none_cases() -> None:
    rows = [row("adam", i, 0.6 + 0.01 * i) for i in range(4)]
    rows += [row("reinit", i, 0.6 + 0.03 * i) for i in range(4)]
    rows += [row("one-run", 0, 0.61), row("one-run", 1, None, diverged=True)]
    summary = by_recipe(summarize(rows))
    assert summary["adam"]["levene_p"] is None  # the baseline itself
    assert summary["reinit"]["levene_p"] is not None
    assert summary["one-run"]["levene_p"] is None  # one score
    assert summary["one-run"]["baseline_recipe"] == "adam"

    absent = summarize(rows, baseline_recipe="bertadam")
    assert all(s["levene_p"] is None for s in absent)

    other = by_recipe(summarize(rows, baseline_recipe="reinit"))
    assert other["reinit"]["levene_p"] is None
    assert other["adam"]["levene_p"] == pytest.approx(summary["reinit"]["levene_p"], abs=1e-15)  # symmetric

    # The baseline of another task does not count.
    rows2 = [row("adam", i, 0.6 + 0.01 * i, task="mrpc") for i in range(4)]
    rows2 += [row("reinit", i, 0.6 + 0.03 * i, task="rte") for i in range(4)]
    assert by_recipe(summarize(rows2), "rte")["reinit"]["levene_p"] is None

    # A baseline with a single score cannot be compared either.
    rows3 = [row("adam", 0, 0.6)] + [row("reinit", i, 0.6 + 0.03 * i) for i in range(4)]
    assert by_recipe(summarize(rows3))["reinit"]["levene_p"] is None


# --- expected best-of-k (Dodge et al. 2019) ----------------------------------------------------------------------


def closed_form(validation: np.ndarray, test: np.ndarray, k: int) -> tuple[float, float]:
    """Exact mean and std of the test score of the best-validation trial among k drawn with replacement."""
    n = len(test)
    x = test[np.argsort(validation)]  # ranked by validation (distinct), not by test
    i = np.arange(1, n + 1)
    weights = (i / n) ** k - ((i - 1) / n) ** k  # P(the i-th ranked trial is the best of the k drawn)
    mean = float(np.sum(weights * x))
    return mean, math.sqrt(max(float(np.sum(weights * x**2)) - mean**2, 0.0))


@pytest.mark.parametrize("order", ["same", "shuffled"])
def test_expected_max_matches_closed_form(order: str) -> None:
    rng = np.random.default_rng(7)
    test = rng.uniform(0.5, 0.8, size=6)
    validation = test * 2 + 1 if order == "same" else rng.permutation(test) + 0.1  # distinct either way
    n_boot = 40_000  # standard error ≈ 0.1/200 = 5e-4; the tolerance below is ~6 of them

    result = expected_max_performance(validation, test, n_boot=n_boot, seed=3)

    assert [r["k"] for r in result] == list(range(1, 7))
    assert result[0]["mean"] == pytest.approx(np.mean(test), abs=3e-3)  # k = 1: one random trial
    assert result[0]["std"] == pytest.approx(np.std(test), abs=3e-3)
    for r in result:
        mean, std = closed_form(validation, test, r["k"])
        assert r["mean"] == pytest.approx(mean, abs=3e-3), r["k"]
        assert r["std"] == pytest.approx(std, abs=3e-3), r["k"]
    if order == "same":  # more trials can only help when validation ranks like test
        assert all(a["mean"] < b["mean"] for a, b in zip(result, result[1:]))


def test_expected_max_hand_checked() -> None:
    # Two trials, validation ranks b above a: best of 2 is b unless both draws are a (prob 1/4).
    result = expected_max_performance([0.1, 0.9], [0.8, 0.6], n_boot=100_000, seed=0)
    assert result[0]["mean"] == pytest.approx(0.7, abs=2e-3)
    assert result[1]["mean"] == pytest.approx(0.25 * 0.8 + 0.75 * 0.6, abs=2e-3)


def test_expected_max_validation_ties_average() -> None:
    # All validation scores tie: the pick is uniform among the drawn runs, so every k gives the plain mean.
    test = np.array([0.5, 0.6, 0.9])
    result = expected_max_performance(np.zeros(3), test, n_boot=60_000, seed=1)
    assert all(r["mean"] == pytest.approx(test.mean(), abs=3e-3) for r in result)


def test_expected_max_seeding() -> None:
    v, t = [0.1, 0.5, 0.3, 0.4], [0.6, 0.7, 0.65, 0.62]
    a = expected_max_performance(v, t, n_boot=500, seed=5)
    assert a == expected_max_performance(v, t, n_boot=500, seed=5)
    assert a == expected_max_performance(v, t, n_boot=500, seed=np.random.default_rng(5))
    assert a != expected_max_performance(v, t, n_boot=500, seed=6)
    assert len(expected_max_performance(v, t, k_max=10, n_boot=10)) == 10  # k beyond n: with replacement


def test_summary_expected_uses_scored_runs_and_own_seed() -> None:
    rows = [row("adam", i, 0.6 + 0.02 * i, validation_best=0.5 + ((3 * i) % 5) / 10) for i in range(5)]
    rows.append(row("adam", 5, None, validation_best=None, diverged=True))
    rows += [row("bertadam", i, 0.5 + 0.01 * i) for i in range(3)]
    summary = by_recipe(summarize(rows, n_boot=300, seed=11))
    scored = [r for r in rows if r["recipe"] == "adam" and r["test_best"] is not None]
    expected = expected_max_performance(
        [r["validation_best"] for r in scored], [r["test_best"] for r in scored], k_max=6, n_boot=300, seed=11
    )
    assert summary["adam"]["expected"] == expected
    # Every (task, recipe) draws from its own Generator(seed): dropping another recipe changes nothing.
    alone = summarize([r for r in rows if r["recipe"] == "adam"], n_boot=300, seed=11)
    assert alone[0]["expected"] == expected


# --- bad input ---------------------------------------------------------------------------------------------------


def test_bad_input() -> None:
    rows = [row("adam", 0, 0.6), row("adam", 1, 0.7)]
    with pytest.raises(UserInputError, match="alpha"):
        summarize(rows, alpha=1.5)
    with pytest.raises(UserInputError, match="n_boot"):
        summarize(rows, n_boot=0)
    bad = dict(rows[0])
    del bad["validation_best"]
    with pytest.raises(UserInputError, match="row 1 lacks validation_best"):
        summarize([rows[0], bad])
    with pytest.raises(UserInputError, match="metric"):
        summarize([rows[0], row("bertadam", 0, 0.6, metric="f1")])
    with pytest.raises(UserInputError, match="majority_baseline"):
        summarize([rows[0], row("bertadam", 0, 0.6, baseline=0.4)])
    with pytest.raises(UserInputError, match="finite"):
        expected_max_performance([0.1, math.nan], [0.5, 0.6])
    with pytest.raises(UserInputError, match="shapes"):
        expected_max_performance([0.1], [0.5, 0.6])
    assert summarize([]) == []
