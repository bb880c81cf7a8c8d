"""The counts and the all / every / none claims of docs/results/README.md, from the two committed GLUE studies.

    python benchmarks/results_claims.py [--study20 docs/results/glue-minilm-20] [--study5 docs/results/glue-minilm]

One line per claim, each saying what it counts: first the 20-seed study (glue-minilm-20), then the 5-seed study
(glue-minilm). Records are read as `steadytune report` and `steadytune export` read them: `load_records` (SQLite
opens the store read-only and immutable, so no byte of it changes) and `trial_rows` (each failure verdict re-scored
under the current rule, `steadytune.metrics.failure`). The 5-seed records predate stored baselines, so re-scoring
them reloads their GLUE rows from the records' relative `../shared/data/glue`: the script reads from the
repository root, and a line per study counts the records that kept their stored verdict instead (0 is right).
Test scores are the report's (`steadytune.stats.run_score`: a run without a score counts at the failure line; none
here). "Before / after the stop" splits the trials at the longest pause between two stored finishes; "none ran
twice" is checked as far as a store can show it: one record per (task, recipe, seed), all of the grid.
Means, Welch, Levene and Fisher p-values that the reports' tables already show are left to the reports, except
where a claim needs them. tests/test_results_claims.py checks that the README quotes these lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.stats import fisher_exact, ttest_ind

from steadytune.metrics import failure
from steadytune.stats import run_score, summarize
from steadytune.study import load_records, trial_rows
from steadytune.study.store import _connect_read_only

REPO = Path(__file__).resolve().parents[1]
TASKS = ("rte", "mrpc", "cola", "sts-b")
BERTADAM, ADAM, REINIT = "bertadam+lr=1e-4", "adam+lr=1e-4", "adam+reinit:2+lr=1e-4"  # both studies
BERTADAM_2E5, ADAM_2E5, REINIT_2E5 = "bertadam", "adam", "adam+reinit:2"  # the 5-seed study's lr 2e-5


def p(value: float) -> str:
    """A p-value as the reports print it."""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


class Study:
    """One study's records, its rows and summary (as its report has them), looked up by task and recipe."""

    def __init__(self, study_dir: Path) -> None:
        self.records = load_records(study_dir)
        self.rows = trial_rows(self.records)
        self.summary = {(s["task"], s["recipe"]): s for s in summarize(self.rows)}
        self.recipes = list(dict.fromkeys(r["recipe"] for r in self.rows))
        con = _connect_read_only(study_dir / "study.sqlite")
        try:
            self.finished = sorted(f for (f,) in con.execute("SELECT finished FROM trials WHERE status = 'done'"))
        finally:
            con.close()

    def runs(self, task: str, recipe: str) -> list[dict]:
        return [r for r in self.rows if r["task"] == task and r["recipe"] == recipe]

    def scores(self, task: str, recipe: str, checkpoint: str) -> np.ndarray:
        """Test scores at the "best" (best-validation) or the "last" checkpoint."""
        line = self.summary[task, recipe]["baseline"]
        return np.array([run_score(r[f"test_{checkpoint}"], line) for r in self.runs(task, recipe)])

    def mean(self, task: str, recipe: str, checkpoint: str) -> float:
        return float(self.scores(task, recipe, checkpoint).mean())

    def n_failed(self, task: str, recipe: str, *, stored: bool = False) -> int:
        """Failed runs (decided at the last checkpoint); `stored`: by the verdicts the records were stored with."""
        return sum(r["stored_failed" if stored else "failed"] for r in self.runs(task, recipe))

    def failed(self, task: str, recipe: str, *, stored: bool = False) -> str:
        return f"{self.n_failed(task, recipe, stored=stored)}/{len(self.runs(task, recipe))}"

    def welch(self, task: str, higher: str, lower: str, checkpoint: str) -> float:
        """One-sided Welch t-test that `higher` scores above `lower`."""
        a, b = self.scores(task, higher, checkpoint), self.scores(task, lower, checkpoint)
        return float(ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)

    def loss(self, task: str, recipe: str, steps: slice) -> float:
        """Training loss over `steps` of each run's curve (slice(-20, None): the last 20), mean over runs."""
        runs = [r for r in self.records if r["task"] == task and r["recipe"] == recipe]
        return float(np.mean([np.mean([x["loss"] for x in r["curve"]][steps]) for r in runs]))

    def common(self) -> list[str]:
        """Trials, the stop, versions, verdicts kept: what both studies' sections state."""
        n = len(self.rows)
        keys = {(r["task"], r["recipe"], r["seed"]) for r in self.rows}
        shape = [len({r[k] for r in self.rows}) for k in ("task", "recipe", "seed")]
        twice = "none" if len(keys) == n else n - len(keys)
        pause, i = max((b - a, i) for i, (a, b) in enumerate(zip(self.finished, self.finished[1:])))
        hours = sum(r["wall_s"] for r in self.rows) / 3600
        versions = ", ".join(sorted({str(r["versions"].get("steadytune")) for r in self.records}))
        bf16 = sum(r["config"].get("precision") == "bf16" for r in self.records)
        kept = sum(r["rule"] == "stored" for r in self.rows)
        return [
            f"trials stored {n} of the {shape[0]} × {shape[1]} × {shape[2]} = {np.prod(shape)} grid, {len(keys)} "
            f"distinct (task, recipe, seed): {twice} stored twice",
            f"trials finished before the stop (the longest pause between two finishes, {pause / 60:.0f} min) "
            f"{i + 1}, after it {n - i - 1}",
            f"summed trial wall time {hours:.1f} hours",
            f"steadytune version {versions} in {n} of {n}; precision bf16 in {bf16} of {n}",
            f"records that kept their stored verdict (GLUE data not found to re-score them): {kept} of {n}",
        ]


def per_task(tasks, item) -> str:
    """`item(task)` for each task, as "rte …, mrpc …"."""
    return ", ".join(f"{t} {item(t)}" for t in tasks)


def fails_more(s: Study) -> str:
    """On how many tasks BERTAdam fails more runs than Adam, with each task's counts (both studies claim it)."""
    more = sum(s.n_failed(t, BERTADAM) > s.n_failed(t, ADAM) for t in TASKS)
    pairs = per_task(TASKS, lambda t: f"{s.failed(t, BERTADAM)} vs {s.failed(t, ADAM)}")
    return f"tasks where {BERTADAM} fails more runs than {ADAM}: {more} of 4 ({pairs})"


def losses(s: Study, first: int, recipes: dict[str, tuple[str, ...]]) -> str:
    """Each recipe's mean training loss over its first `first` steps and its last 20, per task."""
    said = "; ".join(
        f"{t} " + ", ".join(f"{x} {s.loss(t, x, slice(first)):.3f} → {s.loss(t, x, slice(-20, None)):.3f}"
                            for x in xs)
        for t, xs in recipes.items()
    )  # fmt: skip
    return f"mean training loss, first {first} steps → last 20 of 96: {said}"


def claims_20(s: Study) -> list[str]:
    """The 20-seed study's section."""
    out = s.common()
    out.append(f"runs that diverged: {sum(r['diverged'] for r in s.rows)} of {len(s.rows)}")
    failed = ", ".join(f"{x} {'/'.join(str(s.n_failed(t, x)) for t in TASKS)}" for x in s.recipes)
    out.append(f"failed (last checkpoint; rte/mrpc/cola/sts-b): {failed}")
    bold = "; ".join(f"{t} {', '.join(x for x in s.recipes if s.summary[t, x]['bold'])}" for t in TASKS)
    out.append(f"bold (the best best-checkpoint mean, and every recipe not significantly worse: Welch Holm ≥ 0.05): "
               f"{bold}")  # fmt: skip

    out.append(fails_more(s))
    out.append(losses(s, 10, {"rte": (BERTADAM, ADAM), "cola": (BERTADAM, ADAM)}))
    steps = per_task(("rte", "cola"), lambda t: format(
        statistics.median(r["best_step"] for r in s.runs(t, BERTADAM) if r["failed"]), "g"))  # fmt: skip
    out.append(f"median best-validation step of {BERTADAM}'s failed runs: {steps}")
    above = sum(s.mean(t, ADAM, "last") > s.mean(t, BERTADAM, "last") for t in TASKS)
    welch = per_task(TASKS, lambda t: p(s.welch(t, ADAM, BERTADAM, "last")))
    sts = f"sts-b {s.mean('sts-b', ADAM, 'last'):.3f} vs {s.mean('sts-b', BERTADAM, 'last'):.3f}"
    out.append(f"tasks where {ADAM}'s last-checkpoint mean is above {BERTADAM}'s: {above} of 4 (one-sided Welch "
               f"p: {welch}; {sts})")  # fmt: skip

    highest = {
        c: sum(max(s.recipes, key=lambda x: s.mean(t, x, c)) == REINIT for t in TASKS) for c in ("best", "last")
    }
    out.append(f"tasks where {REINIT} has the highest mean: best checkpoint {highest['best']} of 4, last checkpoint "
               f"{highest['last']} of 4")  # fmt: skip
    welch = per_task(TASKS, lambda t: f"{p(s.summary[t, ADAM]['welch_holm'])} / {p(s.welch(t, REINIT, ADAM, 'last'))}")
    out.append(f"{REINIT} above {ADAM}, best checkpoint (the report's Welch Holm) / last checkpoint (one-sided Welch "
               f"p): {welch}")  # fmt: skip

    def fisher(t: str) -> str:
        table = [[s.n_failed(t, x), len(s.runs(t, x)) - s.n_failed(t, x)] for x in (ADAM, REINIT)]
        return f"{s.failed(t, ADAM)} vs {s.failed(t, REINIT)} p {p(fisher_exact(table, alternative='greater').pvalue)}"

    out.append(f"{ADAM} fails more runs than {REINIT} (one-sided Fisher): {per_task(('rte', 'mrpc'), fisher)}")

    def failed_at_best(t: str) -> int:
        """BERTAdam's runs that the failure rule fails on their best-validation checkpoint's test scores."""
        found = 0
        for r in (x for x in s.records if x["task"] == t and x["recipe"] == BERTADAM):
            test = r["best"].get("test") or {}
            found += (
                failure(test.get(r["metric"]), r["baseline"], mse=test.get("mse"), diverged=r["diverged"]) is not None
            )
        return found

    counts = per_task(TASKS, lambda t: f"{failed_at_best(t)} vs {s.n_failed(t, BERTADAM)}")
    out.append(f"{BERTADAM} runs at or below the failure line (the same rule), best-validation vs last checkpoint: "
               f"{counts} (sts-b best mean {s.mean('sts-b', BERTADAM, 'best'):.3f})")  # fmt: skip

    levene = [e for e in s.summary.values() if e["levene_p"] is not None]
    found = [e for e in levene if e["levene_holm"] < 0.05]
    named = ", ".join(f"{e['task']} {e['recipe']} p {p(e['levene_p'])}, Holm {p(e['levene_holm'])}" for e in found)
    out.append(f"Levene (Brown–Forsythe) tests against {ADAM} with Holm < 0.05: {len(found)} of {len(levene)} "
               f"({named})")  # fmt: skip
    line = s.summary["rte", ADAM]["baseline"]
    runs = s.runs("rte", BERTADAM)
    at_line = [r for r in runs if abs(r["test_best"] - line) < 1e-9]
    out.append(f"rte {BERTADAM} runs whose best-checkpoint test score is the failure line {line:.3f} exactly: "
               f"{sum(r['failed'] for r in at_line)} of its {s.n_failed('rte', BERTADAM)} failed runs, "
               f"{len(at_line)} of its {len(runs)} runs")  # fmt: skip

    needs = s.summary["mrpc", ADAM]["resolution"]["threshold"]
    scores = [r[f"test_{c}"] for r in s.rows if r["task"] == "mrpc" for c in ("best", "last")]
    best_mean = max(s.mean("mrpc", x, "best") for x in s.recipes)
    out.append(f"mrpc test scores at or above {needs:.3f} (beats the line at p < 0.05), either checkpoint, any "
               f"recipe: {sum(x >= needs for x in scores)} of {len(scores)} (the best {max(scores):.4f}; the best "
               f"mean {best_mean:.3f})")  # fmt: skip
    out.append(f"mrpc {REINIT} runs at or below the failure line at the last checkpoint: "
               f"{s.n_failed('mrpc', REINIT)} of {len(s.runs('mrpc', REINIT))}")  # fmt: skip
    needs = s.summary["rte", ADAM]["resolution"]["threshold"]
    kept = [r for r in s.rows if r["task"] == "rte" and not r["failed"]]
    out.append(f"rte runs that did not fail {len(kept)}, of them below {needs:.3f} at the last checkpoint: "
               f"{sum(r['test_last'] < needs for r in kept)}")  # fmt: skip
    return out


def claims_5(s: Study) -> list[str]:
    """The 5-seed study's section."""
    out = s.common()
    failed = ", ".join(
        f"{x} {'/'.join(str(s.n_failed(t, x, stored=True)) for t in TASKS)} → "
        f"{'/'.join(str(s.n_failed(t, x)) for t in TASKS)}"
        for x in s.recipes
    )  # fmt: skip
    out.append(f"failed (last checkpoint; rte/mrpc/cola/sts-b), stored verdicts (0.2.0's rule) → current rule: "
               f"{failed}")  # fmt: skip
    changed = [r for r in s.rows if r["failed"] != r["stored_failed"]]
    by_recipe = ", ".join(f"{x} {sum(r['recipe'] == x for r in changed)} of {len(s.runs('sts-b', x))}"
                          for x in dict.fromkeys(r["recipe"] for r in changed))  # fmt: skip
    out.append(f"verdicts that differ between the stored and the current rule: {len(changed)}, on sts-b "
               f"{sum(r['task'] == 'sts-b' for r in changed)}, now failed as collapsed (test MSE at least the "
               f"training mean's) {sum(r['failure'] == 'collapsed' for r in changed)} ({by_recipe})")  # fmt: skip
    bold = "; ".join(f"{t} {', '.join(x for x in s.recipes if (s.summary[t, x]['welch_p'] or 1.0) >= 0.05)}"
                     for t in TASKS)  # fmt: skip
    out.append(f"bold (the best best-checkpoint mean, and every recipe with one-sided Welch p ≥ 0.05 against it, "
               f"uncorrected): {bold}")  # fmt: skip

    out.append(fails_more(s))
    out.append(losses(s, 20, {"rte": (BERTADAM, ADAM, BERTADAM_2E5, ADAM_2E5), "cola": (BERTADAM, ADAM)}))
    above = sum(s.mean(t, ADAM, "last") > s.mean(t, BERTADAM, "last") for t in TASKS)
    significant = sum(s.welch(t, ADAM, BERTADAM, "last") < 0.05 for t in TASKS)
    means = per_task(TASKS, lambda t: f"{s.mean(t, ADAM, 'last'):.3f} vs {s.mean(t, BERTADAM, 'last'):.3f} p "
                                      f"{p(s.welch(t, ADAM, BERTADAM, 'last'))}")  # fmt: skip
    out.append(f"tasks where {ADAM}'s last-checkpoint mean is above {BERTADAM}'s: {above} of 4, one-sided Welch "
               f"p < 0.05 on {significant} ({means})")  # fmt: skip
    steps = [r["best_step"] for r in s.runs("rte", BERTADAM)]
    out.append(f"rte {BERTADAM} runs whose best-validation checkpoint is at step 10 or 20 of 96: "
               f"{sum(x in (10, 20) for x in steps)} of {len(steps)}")  # fmt: skip

    at_1e4 = (BERTADAM, ADAM, REINIT)
    highest = {c: sum(max(at_1e4, key=lambda x: s.mean(t, x, c)) == REINIT for t in TASKS) for c in ("best", "last")}
    out.append(f"tasks where {REINIT} has the highest mean of the lr=1e-4 recipes: best checkpoint "
               f"{highest['best']} of 4, last checkpoint {highest['last']} of 4")  # fmt: skip
    fewest = sum(s.n_failed(t, REINIT) == min(s.n_failed(t, x) for x in s.recipes) for t in TASKS)
    out.append(f"tasks where no recipe fails fewer runs than {REINIT}: {fewest} of 4 "
               f"({per_task(TASKS, lambda t: s.failed(t, REINIT))})")  # fmt: skip
    welch = {(t, c): s.welch(t, REINIT, ADAM, c) for t in TASKS for c in ("best", "last")}
    both = per_task(TASKS, lambda t: f"{p(welch[t, 'best'])} / {p(welch[t, 'last'])}")
    below = [f"{t} {c}" for (t, c), v in welch.items() if v < 0.05]
    out.append(f"{REINIT} above {ADAM}, one-sided Welch p best / last: {both}; below 0.05: {len(below)} of "
               f"{len(welch)} ({', '.join(below)})")  # fmt: skip

    def lift(t: str) -> str:
        welch = p(s.welch(t, REINIT_2E5, ADAM_2E5, "best"))
        return f"{s.mean(t, ADAM_2E5, 'best'):.3f} → {s.mean(t, REINIT_2E5, 'best'):.3f} p {welch}"

    lifts = per_task(("sts-b", "mrpc"), lift)
    out.append(f"{REINIT_2E5} above {ADAM_2E5} (lr 2e-5), best checkpoint, one-sided Welch: {lifts}")
    both = per_task(TASKS, lambda t: f"{p(s.welch(t, BERTADAM_2E5, ADAM_2E5, 'best'))} / "
                    f"{p(s.welch(t, BERTADAM_2E5, ADAM_2E5, 'last'))}")  # fmt: skip
    out.append(f"{BERTADAM_2E5} above {ADAM_2E5} (lr 2e-5), one-sided Welch p best / last: {both}")
    levene = [e for e in s.summary.values() if e["levene_p"] is not None]
    found = [e for e in levene if e["levene_p"] < 0.05]
    named = ", ".join(f"{e['task']} {e['recipe']} p {p(e['levene_p'])}" for e in found)
    out.append(f"Levene (Brown–Forsythe) tests against {ADAM_2E5} with p < 0.05 (uncorrected): {len(found)} of "
               f"{len(levene)} ({named})")  # fmt: skip
    return out


def claims(study20: Path, study5: Path) -> list[str]:
    """Every line the script prints, from the repository root (the 5-seed records name their GLUE rows relative
    to it)."""
    here = Path.cwd()
    os.chdir(REPO)
    try:
        return ([f"glue-minilm-20: {line}" for line in claims_20(Study(study20))]
                + [f"glue-minilm: {line}" for line in claims_5(Study(study5))])  # fmt: skip
    finally:
        os.chdir(here)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study20", type=Path, default=REPO / "docs/results/glue-minilm-20")
    parser.add_argument("--study5", type=Path, default=REPO / "docs/results/glue-minilm")
    args = parser.parse_args()
    for line in claims(args.study20.resolve(), args.study5.resolve()):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
