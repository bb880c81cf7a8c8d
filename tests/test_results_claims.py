"""docs/results/README.md quotes what benchmarks/results_claims.py counts in the two committed GLUE study stores.

Each pair below is a fragment of a README sentence (whitespace aside) and the fragment of the script's output that
backs it, so the test fails when the page or the records change without the other. The results tables' failed
column and bold cells are checked cell by cell. No training: the script reads the stores (read-only) and, for the
5-seed records' verdicts, their GLUE rows.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re

import pytest
from conftest import REPO, require_glue

README = REPO / "docs" / "results" / "README.md"
STORES = [REPO / "docs" / "results" / d / "study.sqlite" for d in ("glue-minilm-20", "glue-minilm")]

# (README fragment, printed fragment), per study section.
PAIRS_20 = [
    ("240 trials (20 seeds", "trials stored 240 of the 4 × 3 × 20 = 240 grid, 240 distinct"),
    ("(none ran twice)", "(task, recipe, seed): none stored twice"),
    ("5.5 hours of summed trial time", "summed trial wall time 5.5 hours"),
    ("steadytune 0.7.0 defaults (bf16 autocast",
     "steadytune version 0.7.0 in 240 of 240; precision bf16 in 240 of 240"),
    ("No run diverged.", "runs that diverged: 0 of 240"),
    ("on every task: 16/20 vs 7/20 on RTE", "fails more runs than adam+lr=1e-4: 4 of 4 (rte 16/20 vs 7/20"),
    ("20/20 vs 14/20 on MRPC", "mrpc 20/20 vs 14/20"),
    ("13/20 vs 0/20 on CoLA", "cola 13/20 vs 0/20"),
    ("16/20 vs 0/20 on STS-B", "sts-b 16/20 vs 0/20)"),
    ("stays at the prior's on RTE (0.693, from 0.695 over the first 10)", "rte bertadam+lr=1e-4 0.695 → 0.693"),
    ("barely moves on CoLA (0.664)", "cola bertadam+lr=1e-4 0.695 → 0.664"),
    ("while Adam's falls to 0.591 and 0.566", "adam+lr=1e-4 0.694 → 0.591; cola"),
    ("while Adam's falls to 0.591 and 0.566", "adam+lr=1e-4 0.694 → 0.566"),
    ("at median step 15 (RTE) and 10 (CoLA)", "failed runs: rte 15, cola 10"),
    ("Adam is better on every task (one-sided Welch p = 0.014 MRPC, < 0.001 RTE, CoLA and STS-B: 0.663 vs 0.090)",
     "above bertadam+lr=1e-4's: 4 of 4 (one-sided Welch p: rte < 0.001, mrpc 0.014, cola < 0.001, sts-b < 0.001; "
     "sts-b 0.663 vs 0.090)"),
    ("has the highest mean on all four tasks", "has the highest mean: best checkpoint 4 of 4, last checkpoint 4 of 4"),
    ("(Welch Holm 0.002, 0.004, 0.002) and on the last checkpoint too (p < 0.001, 0.011, < 0.001)",
     "rte 0.002 / < 0.001, mrpc 0.004 / 0.011, cola 0.002 / < 0.001"),
    ("On STS-B it ties with Adam (0.675 vs 0.666, p = 0.43)", "sts-b 0.426 / "),
    ("fails less on RTE (1/20 vs 7/20, one-sided Fisher p = 0.022)", "rte 7/20 vs 1/20 p 0.022"),
    ("Re-init's failure rate on MRPC** (10/20 vs 14/20, p = 0.17)", "mrpc 14/20 vs 10/20 p 0.167"),
    ("9 of its 20 MRPC runs are at or below the line (20 at the last)", "best-validation vs last checkpoint: rte 18 "
     "vs 16, mrpc 9 vs 20,"),
    ("on RTE 18 are (16 at the last", "rte 18 vs 16"),
    ("on CoLA 12 (13)", "cola 12 vs 13"),
    ("on STS-B 15 (16; mean 0.160)", "sts-b 15 vs 16 (sts-b best mean 0.160)"),
    ("no Levene (Brown–Forsythe) test against Adam is significant after Holm except BERTAdam on RTE (p = 0.012, "
     "Holm 0.023)", "with Holm < 0.05: 1 of 8 (rte bertadam+lr=1e-4 p 0.012, Holm 0.023)"),
    ("14 of its 16 failed runs sit exactly at the majority rate there (0.525; 16 of its 20 runs do)",
     "the failure line 0.525 exactly: 14 of its 16 failed runs, 16 of its 20 runs"),
    ("needs 0.840; no run of any recipe gets there at either checkpoint (the best run 0.8397, the best mean 0.821)",
     "at or above 0.840 (beats the line at p < 0.05), either checkpoint, any recipe: 0 of 120 (the best 0.8397; the "
     "best mean 0.821)"),
    ("half of Re-init's runs end at or below the line",
     "at or below the failure line at the last checkpoint: 10 of 20"),
    ("Of the 36 runs that did not fail, 35 end below the 0.604",
     "rte runs that did not fail 36, of them below 0.604 at the last checkpoint: 35"),
]  # fmt: skip
PAIRS_5 = [
    ("120 trials, steadytune 0.2.0 defaults (bf16 autocast",
     "steadytune version 0.2.0 in 120 of 120; precision bf16 in 120 of 120"),
    ("120 trials, steadytune 0.2.0", "trials stored 120 of the 4 × 6 × 5 = 120 grid"),
    ("(68 trials were stored before the stop, 52 after it; none ran twice)", ") 68, after it 52"),
    ("none ran twice", "120 distinct (task, recipe, seed): none stored twice"),
    ("2.9 hours of summed trial time", "summed trial wall time 2.9 hours"),
    ("the 6 verdicts that changed are all on STS-B, where Adam at 2e-5 predicts worse than the training mean in 5 of "
     "5 runs and `adam+reinit:2` in 1", "current rule: 6, on sts-b 6, now failed as collapsed (test MSE at least the "
     "training mean's) 6 (adam 5 of 5, adam+reinit:2 1 of 5)"),
    ("BERTAdam fails 5/5 runs on RTE (Adam 2/5), 5/5 on MRPC (3/5), 3/5 on CoLA (0/5) and 2/5 on STS-B (0/5)",
     "4 of 4 (rte 5/5 vs 2/5, mrpc 5/5 vs 3/5, cola 3/5 vs 0/5, sts-b 2/5 vs 0/5)"),
    ("(RTE 0.694 and CoLA 0.693, from 0.700 and 0.701 over the first 20)", "rte bertadam+lr=1e-4 0.700 → 0.694"),
    ("(RTE 0.694 and CoLA 0.693, from 0.700 and 0.701 over the first 20)", "cola bertadam+lr=1e-4 0.701 → 0.693"),
    ("while Adam's falls (0.585, 0.572)", "adam+lr=1e-4 0.695 → 0.585"),
    ("while Adam's falls (0.585, 0.572)", "adam+lr=1e-4 0.694 → 0.572"),
    ("RTE training loss 0.694 → 0.688", ", adam 0.694 → 0.688"),
    ("(0.696 → 0.616)", "bertadam 0.696 → 0.616"),
    ("Adam's mean is higher on every task, significantly on three (one-tailed Welch p = 0.023 RTE, 0.020 MRPC, "
     "< 0.001 STS-B: 0.634 vs 0.067; CoLA 0.062 vs 0.012, p = 0.054)",
     "above bertadam+lr=1e-4's: 4 of 4, one-sided Welch p < 0.05 on 3 (rte 0.541 vs 0.505 p 0.023, mrpc 0.805 vs "
     "0.724 p 0.020, cola 0.062 vs 0.012 p 0.054, sts-b 0.634 vs 0.067 p < 0.001)"),
    ("on RTE all 5 BERTAdam+1e-4 runs' best-validation checkpoints are at step 10 or 20 of 96",
     "best-validation checkpoint is at step 10 or 20 of 96: 5 of 5"),
    ("With Adam at 1e-4, `reinit:2` (pooler + top 2 of 6 blocks) has the highest mean on all four tasks",
     "highest mean of the lr=1e-4 recipes: best checkpoint 4 of 4, last checkpoint 4 of 4"),
    ("and the fewest failures (0/5, 2/5, 0/5, 0/5)", "4 of 4 (rte 0/5, mrpc 2/5, cola 0/5, sts-b 0/5)"),
    ("on RTE last (0.584 vs 0.541, p = 0.004), MRPC best (p = 0.039) and CoLA last (p = 0.049); on STS-B it is a tie "
     "(p = 0.32)", "rte 0.187 / 0.004, mrpc 0.039 / 0.345, cola 0.232 / 0.049, sts-b 0.323 / 0.326; below 0.05: 3 of "
     "8 (rte last, mrpc best, cola last)"),
    ("lifts STS-B from 0.151 to 0.403 (p < 0.001) and MRPC best from 0.746 to 0.812 (p = 0.045)",
     "sts-b 0.151 → 0.403 p < 0.001, mrpc 0.746 → 0.812 p 0.045"),
    ("STS-B 0.731 vs 0.151; MRPC last 0.803 vs 0.596, 3/5 vs 5/5 failed", "bertadam 2/3/0/0 → 2/3/0/0, "
     "adam 2/5/3/0 → 2/5/3/5"),
    ("RTE a tie", "one-sided Welch p best / last: rte 0.352 / 0.215"),
    ("no variance difference in the report is significant except one (MRPC, `adam+reinit:2`, p = 0.034)",
     "with p < 0.05 (uncorrected): 1 of 20 (mrpc adam+reinit:2 p 0.034)"),
]  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def claims() -> dict[str, list[str]]:
    for task in ("RTE", "MRPC", "CoLA", "STS-B"):  # the 5-seed records' verdicts are re-scored from these rows
        require_glue(task)
    spec = importlib.util.spec_from_file_location("results_claims", REPO / "benchmarks" / "results_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in STORES]
    lines = module.claims(STORES[0].parent, STORES[1].parent)
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in STORES] == before  # no byte of a store changed
    return {study: [line.removeprefix(f"{study}: ") for line in lines if line.startswith(f"{study}: ")]
            for study in ("glue-minilm-20", "glue-minilm")}  # fmt: skip


def sections() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    five = text.index("## The 5-seed study")
    return {"glue-minilm-20": text[text.index("## The 20-seed study") : five], "glue-minilm": text[five:]}


CASES = [("glue-minilm-20", *x) for x in PAIRS_20] + [("glue-minilm", *x) for x in PAIRS_5]


@pytest.mark.parametrize(("study", "said", "printed"), CASES, ids=[f"{c[0]}-{c[1][:40]}" for c in CASES])
def test_readme_quotes_the_printed_counts(claims, study: str, said: str, printed: str) -> None:
    assert flat(said) in flat(sections()[study]), f"the README's {study} section no longer says {said!r}"
    assert any(printed in line for line in claims[study]), f"{study}: nothing printed says {printed!r}"


@pytest.mark.parametrize("study", ["glue-minilm-20", "glue-minilm"])
def test_results_table_failed_and_bold_cells(claims, study: str) -> None:
    """Each recipe's failed cell (R/M/C/S) is the printed count, and the bold cells are the printed bold sets."""
    rows = [line.split("|")[1:-1] for line in sections()[study].splitlines() if line.startswith("| ")]
    rows = [
        [c.strip() for c in cells] for cells in rows if len(cells) == 6 and re.fullmatch(r"[\d/ →]+", cells[5].strip())
    ]
    assert len(rows) == (3 if study == "glue-minilm-20" else 6)
    failed = next(line for line in claims[study] if line.startswith("failed (last checkpoint"))
    bold_line = next(line for line in claims[study] if line.startswith("bold ("))
    printed_bold = {}
    for part in bold_line.split("): ", 1)[1].split("; "):
        task, recipes = part.split(" ", 1)
        printed_bold[task] = set(recipes.split(", "))
    for recipe, *_, cell in rows:
        expected = cell if study == "glue-minilm-20" or "→" in cell else f"{cell} → {cell}"
        assert f" {recipe} {expected}" in f" {failed.split(': ', 1)[1]}", (study, recipe, cell)
    for i, task in enumerate(("rte", "mrpc", "cola", "sts-b")):
        said = {recipe for recipe, *scores, _ in rows if scores[i].startswith("**")}
        assert said == printed_bold[task], (study, task)
