"""How often `fit` says yes when nothing can be learned: fits on shuffled labels, judged by the old rule and the new.

    python benchmarks/verdict_calibration.py --glue-dir ../shared/data/glue   # resumable; --table-only: the table

Each fit is `steadytune fit` as a user types it on their own CSV (fit's defaults: 9 candidates, all-MiniLM-L6-v2,
the file split 80/10/10 into train/validation/test; `--workers 1` runs the stages in the fit's own process, which
changes no setting but saves starting a worker pool per stage: on these small files that start-up, not training,
was most of a fit's minute), on a file whose label column was shuffled, so no model can
beat the best constant predictor except by chance. The data sets (every repetition draws its rows and its shuffle
from its own seed, so the fits are independent):

- `own-csv`: the 300 SST-2 rows of `benchmarks/own_csv.py` (the README's own-CSV example), labels shuffled anew;
- `sst2-64`, `sst2-256`: 64 and 256 class-balanced SST-2 training sentences;
- `mrpc-128`: 128 class-balanced MRPC training pairs (two text columns).

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
import subprocess
import sys
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
    elif name.startswith("sst2-"):
        n = int(name.split("-")[1])
        sst = _read_tsv(glue / "SST-2" / "train.tsv")
        draw = random.Random(1000 + rep)
        pools = {y: [t.strip() for t, label in sst if label == y] for y in ("0", "1")}
        picked = [(t, y) for y in ("0", "1") for t in draw.sample(pools[y], n // 2)]
        draw.shuffle(picked)
        header = ["text", "label"]
    elif name.startswith("mrpc-"):
        n = int(name.split("-")[1])
        mrpc = _read_tsv(glue / "MRPC" / "train.tsv")  # Quality, #1 ID, #2 ID, #1 String, #2 String
        draw = random.Random(2000 + rep)
        picked = [(r[3], r[4], y) for y in ("0", "1") for r in draw.sample([r for r in mrpc if r[0] == y], n // 2)]
        draw.shuffle(picked)
        header = ["sentence1", "sentence2", "label"]
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
               *(["--model", model] if model else [])]  # fmt: skip
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


def table(out: Path) -> str:
    from scipy.stats import binomtest

    from steadytune.fitting import rejudge

    lines = [
        f"{'data set':<10} {'fits':>4}  {'old rule: false yes [95% CI]':<30}  "
        f"{'new rule: false yes [95% CI]':<30}  p (new rate > 5%)"
    ]
    totals, old_yeses, new_yeses = [0, 0, 0], [], []
    others = sorted(
        (d.name for d in out.iterdir() if d.is_dir() and d.name not in DATASETS),
        key=lambda name: (name.split("-")[0], int(name.split("-")[-1]) if name[-1].isdigit() else 0),
    )
    for name in [*DATASETS, *others]:  # others: a size fitted with --datasets, such as sst2-1024
        olds, news = [], []
        if not (out / name).is_dir():
            continue
        for fit_json in sorted((out / name).glob("rep*/fit/fit.json")):
            result = json.loads(fit_json.read_text())
            olds.append(_old_rule(result))
            now = rejudge(fit_json.parent, model=False)  # records only: the weights are not kept
            news.append(now.success)
            if news[-1]:  # the pick and the test that said yes: what the calibration's prose quotes
                new_yeses.append(f"{fit_json.parent.parent.relative_to(out)}: {now.chosen}, {now.judgement['test']}, "
                                 f"p = {now.judgement['p']:.2g}")  # fmt: skip
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
    n, k_old, k_new = totals
    if n:
        p = binomtest(k_new, n, 0.05, alternative="greater").pvalue
        lines.append(f"{'all':<10} {n:>4}  {_interval(k_old, n):<30}  {_interval(k_new, n):<30}  {p:.3g}")
    lines += ["", "the old rule's yeses:", *(f"  {line}" for line in old_yeses or ["none"])]
    lines += ["", "the new rule's yeses:", *(f"  {line}" for line in new_yeses or ["none"])]
    return "\n".join(lines)


def power(folder: Path) -> str:
    """The fits of `benchmarks/fit_vs_seeds.py` (`folder`: <task>/rep<r>/fit) judged by both rules: per task the yes
    count of each, and the test score of the models each rule delivers. Re-judging rewrites each fit.json under the
    current rule (the folders keep no weights, so `model/` is left alone); the old rule is 0.8.1's, replicated by
    `_old_rule` and checked against the verdict 0.8.1 stored."""
    from steadytune.fitting import rejudge

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
            now = rejudge(fit_json.parent, model=False)
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
    parser.add_argument(
        "--power",
        type=Path,
        default=None,
        metavar="FIT_VS_SEEDS_DIR",
        help="instead: re-judge fit_vs_seeds.py's fits (docs/results/fit-minilm) by both rules",
    )
    args = parser.parse_args()
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
