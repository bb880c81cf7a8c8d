"""How often `fit` says yes when nothing can be learned: fits on shuffled labels, judged by the old rule and the new.

    python benchmarks/verdict_calibration.py --glue-dir ../shared/data/glue   # resumable; --table-only: the table
    python benchmarks/verdict_calibration.py --page docs/results/verdict.md   # rewrite the page's tables

Each fit is `steadytune fit` as a user types it on their own CSV (fit's defaults: 9 candidates, all-MiniLM-L6-v2,
the file split 80/10/10 into train/validation/test; `--workers 1` runs the stages in the fit's own process, which
changes no setting but saves starting a worker pool per stage: on these small files that start-up, not training,
was most of a fit's minute), on a file whose label column was shuffled, so no model can
beat the best constant predictor except by chance. The data sets (every repetition draws its rows and its shuffle
from its own seed, so the fits are independent):

- `own-csv`: the 300 SST-2 rows of `benchmarks/own_csv.py` (the README's own-CSV example), labels shuffled anew;
- `sst2-64`, `sst2-256`: 64 and 256 class-balanced SST-2 training sentences;
- `sst2-named-N` (asked for with `--datasets`): sst2-N's rows, labelled "negative" and "positive" instead of 0 and 1,
  so that the contrastive family learns from the label names too (0.17: `steadytune.contrastive.label_rows`);
- `mrpc-128`: 128 class-balanced MRPC training pairs (two text columns);
- `stsb-N` (asked for with `--datasets`): N STS-B training pairs at random, their scores shuffled (regression,
  `--task-type regression`).

Each fit's folder is kept under `--out` (records and stores; `.gitignore` leaves out weights), so the benchmark
resumes where it stopped, running repetition-major (every data set's r-th fit before any (r+1)-th). The table
counts, per data set, the false yeses of two rules on the same fits, each with its exact (Clopper-Pearson) 95%
interval:

- old: fit ≤ 0.8.1, the chosen candidate's best validation score tested against chance on the validation split
  that chose it (0.8.1's test, replicated here: the winner's curse);
- new: the verdict fit gives now (`steadytune.fitting.judge`), re-judged from each folder's stored records.

and the one-sided exact binomial test of the new rule's count against its promise (`binomtest(k, n, 0.05,
alternative="greater")`): p < 0.05 would mean it says yes significantly more often than 5% of the time.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DATASETS = ("own-csv", "sst2-64", "sst2-256", "mrpc-128")


def _read_tsv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quotechar=None))[1:]  # GLUE files have no quoting


def _rows(name: str, rep: int, glue: Path) -> tuple[list[str], list[tuple]]:
    """(header, rows) of data set `name`'s repetition `rep`, labels already shuffled."""
    if name == "own-csv":  # own_csv.py's draw, then a new shuffle of the labels per repetition
        sst = _read_tsv(glue / "SST-2" / "train.tsv")
        by_label = {y: [t.strip() for t, label in sst if label == y] for y in ("0", "1")}
        draw = random.Random(7)
        picked = [(t, "positive") for t in draw.sample(by_label["1"], 150)]
        picked += [(t, "negative") for t in draw.sample(by_label["0"], 150)]
        draw.shuffle(picked)
        header = ["review", "stars"]
    elif name.startswith("sst2-"):  # sst2-N: labels 0 and 1; sst2-named-N: the same rows, labelled by name
        n, named = int(name.split("-")[-1]), "-named-" in name
        sst = _read_tsv(glue / "SST-2" / "train.tsv")
        draw = random.Random(1000 + rep)
        pools = {y: [t.strip() for t, label in sst if label == y] for y in ("0", "1")}
        words = {"0": "negative", "1": "positive"} if named else {"0": "0", "1": "1"}
        picked = [(t, words[y]) for y in ("0", "1") for t in draw.sample(pools[y], n // 2)]
        draw.shuffle(picked)
        header = ["text", "label"]
    elif name.startswith("mrpc-"):
        n = int(name.split("-")[1])
        mrpc = _read_tsv(glue / "MRPC" / "train.tsv")  # Quality, #1 ID, #2 ID, #1 String, #2 String
        draw = random.Random(2000 + rep)
        picked = [(r[3], r[4], y) for y in ("0", "1") for r in draw.sample([r for r in mrpc if r[0] == y], n // 2)]
        draw.shuffle(picked)
        header = ["sentence1", "sentence2", "label"]
    elif name.startswith("stsb-"):  # regression: n STS-B training pairs at random, their scores shuffled
        n = int(name.split("-")[1])
        sts = _read_tsv(glue / "STS-B" / "train.tsv")  # ..., sentence1, sentence2, score (columns 7, 8, 9)
        draw = random.Random(3000 + rep)
        picked = [(r[7], r[8], r[9]) for r in draw.sample(sts, n)]
        header = ["sentence1", "sentence2", "score"]
    else:
        raise SystemExit(f"unknown data set {name}")
    labels = [r[-1] for r in picked]
    random.Random(5000 + rep).shuffle(labels)  # nothing left to learn
    return header, [(*r[:-1], y) for r, y in zip(picked, labels)]


def _fit_folder(out: Path, name: str, rep: int, glue: Path, model: str | None = None) -> Path:
    """Write the shuffled CSV (once) and run `steadytune fit` on it (resumes a killed fit; a finished one is only
    re-judged)."""
    folder = out / name / f"rep{rep}"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.csv"
    header, rows = _rows(name, rep, glue)
    if not data.is_file():
        tmp = data.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        tmp.replace(data)
    if not (folder / "fit" / "fit.json").is_file():
        cmd = ["steadytune", "fit", "--train-file", str(data), "--text-columns", ",".join(header[:-1]),
               "--label-column", header[-1], "--out", str(folder / "fit"), "--quiet", "--workers", "1",
               *(["--model", model] if model else []),
               *(["--task-type", "regression"] if name.startswith("stsb-") else [])]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        print(f"{name} rep {rep}: exit {done.returncode}", flush=True)
    return folder / "fit"


def _old_rule(result: dict) -> bool:
    """fit ≤ 0.8.1's verdict, as 0.8.1 computed it: the chosen candidate's best validation metrics tested on the
    validation split that chose it (the binomial test of accuracy against the majority rate; for F1 and Matthews
    correlation the chi-squared test of n·MCC², one-sided; for correlations the t test), and the score above the
    constant predictor's."""
    from scipy.stats import binomtest, chi2
    from scipy.stats import t as student_t

    metric, val = result["metric"], _chosen_validation(result)
    if val is None:
        return False
    base, n = result["baselines"]["validation"]["score"], result["data"]["sizes"]["validation"]
    if val.get(metric) is None or n < 3:
        return False
    if metric == "accuracy":
        p = binomtest(round(val["accuracy"] * n), n, base, alternative="greater").pvalue
    elif metric in ("pearson", "spearmanr"):  # the t test of r, n - 2 df
        r = min(val[metric], 1.0 - 1e-12)
        p = float(student_t.sf(r * math.sqrt((n - 2) / (1.0 - r * r)), n - 2))
    else:  # f1, matthews_correlation (binary): the phi coefficient
        phi = val["matthews_correlation"]
        half = 0.5 * float(chi2.sf(n * phi * phi, 1))
        p = half if phi > 0 else 1.0 - half
    return val[metric] > base and p < 0.05


def _chosen_validation(result: dict) -> dict | None:
    """The best validation scores of the candidate fit chose (any version: the finished one best on validation);
    None when nothing finished with a validation score."""
    metric = result["metric"]
    done = [c for c in result["candidates"] if c["status"] == "finished" and (c.get("best") or {}).get("validation")]
    return max(done, key=lambda c: c["best"]["validation"][metric])["best"]["validation"] if done else None


def _interval(k: int, n: int) -> str:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k}/{n} = {k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def _rejudged(fit_dir: Path):
    """`steadytune.fitting.rejudge` of a scratch copy of the folder's records (fit.json and the store: the weights
    are not kept), so that making the table writes nothing under --out; the data file is read where the fit's
    config names it (relative paths from the repository root, where the script runs)."""
    from steadytune.fitting import rejudge

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "fit"
        copy.mkdir()
        for name in ("fit.json", "study.sqlite"):
            shutil.copy2(fit_dir / name, copy / name)
        return rejudge(copy, model=False)


def table(out: Path, datasets: list[str] | None = None) -> str:
    """Per data set under `out` (or those of `datasets`), the false yeses of both rules; an `all` row when there
    are several, then each rule's yeses."""
    from scipy.stats import binomtest

    lines = [
        f"{'data set':<10} {'fits':>4}  {'old rule: false yes [95% CI]':<30}  "
        f"{'new rule: false yes [95% CI]':<30}  p (new rate > 5%)"
    ]
    totals, old_yeses, new_yeses, bounds = [0, 0, 0], [], [], []
    others = sorted(
        (d.name for d in out.iterdir() if d.is_dir() and d.name not in DATASETS),
        key=lambda name: (name.split("-")[0], int(name.split("-")[-1]) if name[-1].isdigit() else 0),
    )
    rows = 0
    for name in [*DATASETS, *others]:  # others: a size fitted with --datasets, such as sst2-1024
        olds, news, bound, small = [], [], 0, False
        if datasets is not None and name not in datasets:
            continue
        if not (out / name).is_dir():
            continue
        for fit_json in sorted((out / name).glob("rep*/fit/fit.json")):
            result = json.loads(fit_json.read_text())
            olds.append(_old_rule(result))
            now = _rejudged(fit_json.parent)
            news.append(now.success)
            # whatever rule picks among the families, a yes needs the pick's p below 0.05/k: some family's must be
            tested = [c["cv"]["p"] for c in now.to_dict()["candidates"] if c.get("cv")]
            bound += any(p < 0.05 / len(tested) for p in tested)
            small |= bool(tested)
            if news[-1]:  # the pick and the test that said yes, and the other families' tests on the same rows
                others = [f"{c['name']}: {c['cv']['test']}, p = {c['cv']['p']:.2g}" for c in result["candidates"]
                          if c.get("cv") and c["name"] != now.chosen]  # fmt: skip
                new_yeses.append(f"{fit_json.parent.parent.relative_to(out)}: {now.chosen}, {now.judgement['test']}, "
                                 f"p = {now.judgement['p']:.2g}" + "".join(f"; {o}" for o in others))  # fmt: skip
            if olds[-1]:  # what the old rule's yes delivered, judged on its test rows
                m, val, test = now.metric, _chosen_validation(result), (now.test or {}).get(now.metric, math.nan)
                old_yeses.append(f"{fit_json.parent.parent.relative_to(out)}: validation {m} {val[m]:.4f}, test "
                                 f"{test:.4f}, new rule p = {now.judgement['p']:.2g}")  # fmt: skip
        if not olds:
            continue
        n, k_old, k_new = len(olds), sum(olds), sum(news)
        totals = [totals[0] + n, totals[1] + k_old, totals[2] + k_new]
        p = binomtest(k_new, n, 0.05, alternative="greater").pvalue
        lines.append(f"{name:<10} {n:>4}  {_interval(k_old, n):<30}  {_interval(k_new, n):<30}  {p:.3g}")
        rows += 1
        if small:
            bounds.append(f"  {name}: {_interval(bound, n)}")
    n, k_old, k_new = totals
    if rows > 1:
        p = binomtest(k_new, n, 0.05, alternative="greater").pvalue
        lines.append(f"{'all':<10} {n:>4}  {_interval(k_old, n):<30}  {_interval(k_new, n):<30}  {p:.3g}")
    if bounds:  # a yes needs the pick's p below 0.05/k, so some family's: a count no rule of choice can exceed
        lines += ["", "fits where some family's p is below 0.05/k (k families): the most yeses any rule choosing "
                  "among them could give", *bounds]  # fmt: skip
    lines += ["", "the old rule's yeses:", *(f"  {line}" for line in old_yeses or ["none"])]
    lines += ["", "the new rule's yeses:", *(f"  {line}" for line in new_yeses or ["none"])]
    return "\n".join(lines)


# A table block of a results page: the arguments its table is made with, then the table.
PAGE_BLOCK = re.compile(
    r"<!-- calibration: (?P<args>[^>]*?) -->\n```\n(?P<body>.*?)\n```\n<!-- /calibration -->", re.S
)


def page_tables(page: Path, root: Path) -> list[tuple[re.Match, str]]:
    """Each calibration block of `page` with the table its arguments make now (`--out` relative to `root`, the
    repository; tests/test_verdict_page.py checks the committed page)."""
    blocks = []
    for block in PAGE_BLOCK.finditer(page.read_text(encoding="utf-8")):
        block_args = argparse.ArgumentParser()
        block_args.add_argument("--out", type=Path)
        block_args.add_argument("--datasets", default=None)
        block_args.add_argument("--power", type=Path)
        parsed = block_args.parse_args(block["args"].split())
        if parsed.power is not None:
            blocks.append((block, power(root / parsed.power)))
            continue
        datasets = parsed.datasets.split(",") if parsed.datasets else None
        blocks.append((block, table(root / parsed.out, datasets)))
    return blocks


def refresh_page(page: Path, root: Path) -> None:
    """Rewrite the calibration blocks of `page` from the records (`small_data.rewrite_blocks`)."""
    blocks = page_tables(page, root)
    if not blocks:
        sys.exit(f"error: {page} has no calibration block (<!-- calibration: --out DIR -->)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # as when run as a script: this folder first
    from small_data import rewrite_blocks

    rewrite_blocks(page, blocks)


def power(folder: Path) -> str:
    """The fits of `benchmarks/fit_vs_seeds.py` (`folder`: <task>/rep<r>/fit) judged by both rules: per task the yes
    count of each, and the test score of the models each rule delivers, re-judged on scratch copies (`_rejudged`;
    0.9 rewrote each fit.json under its rule); the old rule is 0.8.1's, replicated by `_old_rule` and checked against
    the verdict 0.8.1 stored where a fit.json still holds it."""
    lines = [f"{'task':<6} {'fits':>4}  {'yes, old rule':<14} {'yes, new rule':<14} {'test of the yeses (old)':<26} "
             "test of the yeses (new)"]  # fmt: skip
    detail = ["", "each fit: the pick's test score, and its verdict under each rule (the new one with its p):"]
    for task in ("rte", "mrpc", "cola", "sts-b"):
        old, new = [], []
        for fit_json in sorted((folder / task).glob("rep*/fit/fit.json")):
            stored = json.loads(fit_json.read_text())
            was = _old_rule(stored)
            if stored.get("judgement") is None and was != stored["success"]:
                raise SystemExit(f"{fit_json}: the replicated 0.8.1 rule says {was}, 0.8.1 stored {stored['success']}")
            now = _rejudged(fit_json.parent)
            score = (now.test or {}).get(now.metric)
            old.append((was, score))
            new.append((now.success, score))
            said = {True: "yes", False: "no"}
            detail.append(f"  {task} {fit_json.parent.parent.name}: test {now.metric} {score:.4f}; old {said[was]}, "
                          f"new {said[now.success]} (p = {now.judgement['p']:.2g})")  # fmt: skip

        def scores(pairs):
            kept = [x for yes, x in pairs if yes and x is not None]
            return " ".join(f"{x:.4f}" for x in kept) or "-"

        lines.append(f"{task:<6} {len(old):>4}  {sum(y for y, _ in old):<14} {sum(y for y, _ in new):<14} "
                     f"{scores(old):<26} {scores(new)}")  # fmt: skip
    return "\n".join(lines + detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", type=Path, default=Path("../shared/data/glue"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/verdict-calibration"))
    parser.add_argument("--reps", type=int, default=25, help="fits per data set (25 × 4 data sets = 100 fits)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="which data sets to fit (comma-separated)")
    parser.add_argument("--model", default=None, help="the encoder (default: fit's own default, all-MiniLM-L6-v2)")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--page", type=Path, default=None,
                        help="instead: rewrite each calibration block of this page (between `<!-- calibration: --out "
                             "DIR [--datasets A,B] -->` or `<!-- calibration: --power DIR -->` and `<!-- /calibration "
                             "-->`, DIR from the repository root) from the stored records")  # fmt: skip
    parser.add_argument(
        "--power",
        type=Path,
        default=None,
        metavar="FIT_VS_SEEDS_DIR",
        help="instead: re-judge fit_vs_seeds.py's fits (docs/results/fit-minilm) by both rules",
    )
    args = parser.parse_args()
    if args.page is not None:
        return refresh_page(args.page, Path(__file__).resolve().parents[1])
    if args.power is not None:
        print(power(args.power))
        return
    if not args.table_only:
        for rep in range(args.reps):
            for name in args.datasets.split(","):
                _fit_folder(args.out, name, rep, args.glue_dir, args.model)
    print(table(args.out))


if __name__ == "__main__":
    sys.exit(main())
