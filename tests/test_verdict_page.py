"""docs/results/verdict.md shows what benchmarks/verdict_calibration.py makes from the committed fit records.

Each calibration block of the page is the table that its marker's arguments make (`verdict_calibration.py --page`
rewrites them; every fit is re-judged from its records on a scratch copy, so nothing under docs/ is written), and
each pair below is a fragment of the page's prose with the fragment of the tables that backs it: its counts, and
its all / every / none sentences. No training and no model: the verdicts are re-judged from the stored records.
"""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
from conftest import REPO, require_glue

PAGE = REPO / "docs" / "results" / "verdict.md"
RECORDS = [
    REPO / "docs" / "results" / d
    for d in ("verdict-calibration", "verdict-calibration-families", "fit-minilm", "verdict-calibration-named")
]

# (the page's words, what the tables must hold: one fragment or several, each within one line)
PAIRS = [
    # 0.17's label names, all-MiniLM-L6-v2 on shuffled "negative"/"positive" labels
    ("The rule said yes in 1 of 50 (1/50 = 0.020 [0.001, 0.106]; p = 0.923 for a rate above 5%): rep 3, whose "
     "contrastive model had 41 of 64 out-of-fold predictions right (p = 0.016, below 0.025), where the probe's "
     "permutation test gave p = 0.34",
     ("sst2-named-64   50  0/50 = 0.000 [0.000, 0.071]     1/50 = 0.020 [0.001, 0.106]     0.923",
      "sst2-named-64/rep3: contrastive, exact binomial test of 41/64 correct against the majority rate 0.500 "
      "(out-of-fold predictions) (best constant predictor 0.5000), p = 0.016; probe: permutation test of the 5-fold "
      "cross-validated accuracy 0.5469 against 199 label shuffles, p = 0.34")),
    # the 100 held-out fits on shuffled labels (0.9's rule against 0.8.1's)
    ("**The new rule said yes in 0 of 100 fits** (95% interval 0 to 3.6%; 0 of 25 on each of the 4 data sets)",
     ("all         100  3/100 = 0.030 [0.006, 0.085]    0/100 = 0.000 [0.000, 0.036]",
      "own-csv      25  2/25 = 0.080 [0.010, 0.260]     0/25 = 0.000",
      "sst2-64      25  0/25 = 0.000 [0.000, 0.137]     0/25",
      "sst2-256     25  1/25 = 0.040 [0.001, 0.204]     0/25 = 0.000",
      "mrpc-128     25  0/25 = 0.000 [0.000, 0.137]     0/25")),
    ("**The old rule said yes in 3 of 100** (3%, interval 0.6% to 8.5%): 2 of 25 on the 300-row file (validation "
     "20 of 30, test 0.4000 and 0.6000), 1 of 25 at 256 rows (validation 18 of 26, test 0.5000)",
     ("own-csv/rep10: validation accuracy 0.6667, test 0.4000, new rule p = 0.9",
      "own-csv/rep2: validation accuracy 0.6667, test 0.6000, new rule p = 0.18",
      "sst2-256/rep11: validation accuracy 0.6923, test 0.5000, new rule p = 0.58")),
    # the power block: 16 yeses become 14
    ("16 yeses become 14", ("rte       5  1              1 ", "mrpc      5  5              5 ",
                            "cola      5  5              3 ", "sts-b     5  5              5 ")),
    ("MRPC (F1 0.82-0.84, p ≤ 0.00024) and STS-B (Spearman 0.76-0.83) keep their 5 yeses each",
     ("mrpc rep3: test f1 0.8224; old yes, new yes (p = 0.00024)",
      "sts-b rep3: test spearmanr 0.7610; old yes, new yes")),
    # the families at 64 rows: 100 fits, 3 yeses, all the contrastive model
    ("All 100 fits are done",
     "sst2-64     100  0/100 = 0.000 [0.000, 0.036]    3/100 = 0.030 [0.006, 0.085]    0.882"),
    ("The three yeses (reps 1, 74 and 98, as `--table-only` lists them) are all the contrastive model, at 41, 41 "
     "and 45 of 64 out-of-fold predictions right (p = 0.016, 0.016 and 0.0008",
     ("sst2-64/rep1: contrastive, exact binomial test of 41/64 correct",
      "sst2-64/rep74: contrastive, exact binomial test of 41/64 correct",
      "sst2-64/rep98: contrastive, exact binomial test of 45/64 correct")),
    # the families at 1,024 rows: 50 fits, 1 yes
    ("All 50 fits are done (2026-12-07, 0.13.0): the new rule said yes in 1 of 50 (1/50 = 0.020 [0.001, 0.106]",
     "sst2-1024    50  0/50 = 0.000 [0.000, 0.071]     1/50 = 0.020 [0.001, 0.106]     0.923"),
    ("in 4 of 150 fits (4/150 = 0.027 [0.007, 0.067]; p = 0.945 for a rate above 5%)",
     "all         150  0/150 = 0.000 [0.000, 0.024]    4/150 = 0.027 [0.007, 0.067]    0.945"),
    ("The one yes, rep 39, is a chance alignment the probe found too: its 5-fold cross-validated accuracy on the "
     "same shuffled labels was 0.5664, above all 199 of its label shuffles (p = 0.005, the smallest a permutation "
     "test of 199 shuffles can give), and the contrastive model's out-of-fold predictions were right on 568 of "
     "1,024 (p = 0.00026)",
     "sst2-1024/rep39: contrastive, exact binomial test of 568/1024 correct against the majority rate 0.500 "
     "(out-of-fold predictions) (best constant predictor 0.5000), p = 0.00026; probe: permutation test of the "
     "5-fold cross-validated accuracy 0.5664 against 199 label shuffles, p = 0.005"),
    # a small regression file, 0.14's rule
    ("table above is that rule: 2 yeses in 100 (2/100 = 0.020 [0.002, 0.070], p = 0.963 for a rate above 5%",
     "stsb-256    100  0/100 = 0.000 [0.000, 0.036]    2/100 = 0.020 [0.002, 0.070]    0.963"),
    # 0.15's choice rule: the most yeses any rule could give
    ("They are 3 of 100 at 64 rows and 1 of 50 at 1,024 rows, the very fits that said yes (4 of 150), and for the "
     "regression file 3 of 100 (3/100 = 0.030 [0.006, 0.085])",
     ("  sst2-64: 3/100 = 0.030 [0.006, 0.085]", "  sst2-1024: 1/50 = 0.020 [0.001, 0.106]",
      "  stsb-256: 3/100 = 0.030 [0.006, 0.085]")),
]  # fmt: skip


# The README quotes the small-file calibration too.
README_PAIRS = [
    ("on shuffled labels it said yes in 4 of 150 small-file fits (64 and 1,024 rows)",
     "all         150  0/150 = 0.000 [0.000, 0.024]    4/150 = 0.027 [0.007, 0.067]    0.945"),
    ("and in 1 of 50 with the label names on (64 rows)",
     "sst2-named-64   50  0/50 = 0.000 [0.000, 0.071]     1/50 = 0.020 [0.001, 0.106]     0.923"),
]  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split())


def _digest() -> str:
    h = hashlib.sha256()
    for folder in RECORDS:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tables() -> list[tuple[str, str]]:
    """(the block as the page has it, the table made from the records now), per calibration block."""
    for task in ("RTE", "MRPC", "CoLA", "STS-B"):  # the power block's fits re-read their GLUE rows
        require_glue(task)
    spec = importlib.util.spec_from_file_location(
        "verdict_calibration", REPO / "benchmarks" / "verdict_calibration.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # the fits' configs name their data files from the repository root
        before = _digest()
        made = [(block["body"], table) for block, table in module.page_tables(PAGE, REPO)]
        assert _digest() == before  # re-judging wrote nothing under docs/
    return made


def test_the_first_regression_run_as_the_page_tells_it() -> None:
    """The STS-B fits' stored verdicts are the first run's (every row counted): 5 yeses, LP-FT's own test below
    0.025 in 7 and below 0.01 in 6, its out-of-fold correlations of sd 0.087; the page says so."""
    import json

    import numpy as np

    stored = [json.loads(p.read_text()) for p in sorted(RECORDS[1].glob("stsb-256/rep*/fit/fit.json"))]
    lpft = [next(c["cv"] for c in r["candidates"] if c["name"] == "lp-ft") for r in stored]
    p = np.array([cv["p"] for cv in lpft])
    counts = (len(stored), sum(r["success"] for r in stored), int((p < 0.025).sum()), int((p < 0.01).sum()))
    assert counts == (100, 5, 7, 6)
    assert f"{np.std([cv['score'] for cv in lpft], ddof=1):.3f}" == "0.087"
    said = ("said yes in 5 of 100; LP-FT's own test passed 7 of them at 0.025 and 6 at 0.01, and its out-of-fold "
            "correlations spread with sd 0.087")  # fmt: skip
    assert flat(said) in flat(PAGE.read_text(encoding="utf-8"))


def test_the_page_tables_are_the_made_tables(tables) -> None:
    assert len(tables) == 6  # the 100 held-out fits, the power, the families at 64 and 1,024 rows, STS-B, the names
    for shown, made in tables:
        assert shown == made, "the page's table is not what the records make now: run verdict_calibration.py --page"


CASES = [(PAGE, *p) for p in PAIRS] + [(REPO / "README.md", *p) for p in README_PAIRS]


@pytest.mark.parametrize(("page", "said", "made"), CASES, ids=[f"{c[0].name}-{c[1][:40]}" for c in CASES])
def test_the_page_says_what_the_tables_show(tables, page, said: str, made: str | tuple[str, ...]) -> None:
    assert flat(said) in flat(page.read_text(encoding="utf-8")), f"{page.name} no longer says {said!r}"
    lines = "\n".join(t for _, t in tables).splitlines()
    for fragment in (made,) if isinstance(made, str) else made:
        assert any(fragment in line for line in lines), f"no line of the tables holds {fragment!r}"


def test_every_named_fit_trained_with_the_label_names() -> None:
    """'in each the contrastive family trained with the 16 name rows, as its record's `label_rows` says', counted
    over the 50 stored fits (0.17.0)."""
    import json

    page = flat(PAGE.read_text(encoding="utf-8"))
    assert flat("All 50 fits are done (2026-12-07, 0.17.0; in each the contrastive family trained with the 16 name "
                "rows, as its record's `label_rows` says)") in page  # fmt: skip
    stored = [json.loads(p.read_text()) for p in sorted(RECORDS[3].glob("sst2-named-64/rep*/fit/fit.json"))]
    contrastive = [next(c for c in r["candidates"] if c["name"] == "contrastive") for r in stored]
    assert len(stored) == 50 and {r["version"] for r in stored} == {"0.17.0"}
    assert {c["probe"]["label_rows"] for c in contrastive} == {16}
