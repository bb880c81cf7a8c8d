"""Same records before and after a refactor: one small study, run by whichever steadytune is first on the path.

    python benchmarks/same_records.py --out /tmp/new                     # this checkout
    PYTHONPATH=/old/checkout/src python benchmarks/same_records.py --out /tmp/old
    python benchmarks/same_records.py --compare /tmp/old /tmp/new        # bit for bit: scores, steps, curves

The study is a tiny random BERT (2 layers, 32 wide, built here from fixed seeds) on real GLUE RTE and MRPC rows
(256 training examples each: 24 steps a trial, 3 evaluations; under a minute on 2 cores), three recipes that take
every path of a run (BERTAdam; Adam with re-init and Mixout; Adam with plain weight decay and LLRD, which keeps
the dense embedding), two seeds: 12 trials. `--compare` checks every field of every record except timings and
library versions, and lists fields that only one side has (new settings a refactor may add).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

RECIPES = "bertadam+lr=1e-3,adam+lr=1e-3+reinit:1+mixout:0.2,adam+lr=1e-3+wd:0.01+llrd:0.8"
WORDS_LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
# Vary by machine or by run, not by what a trial computes.
VOLATILE = {"timings", "versions"}


def tiny_model(path: Path) -> Path:
    """A 2-layer, 32-wide random BERT with a WordPiece vocabulary of common English words and letters."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ("the a an of to and in is was that it for on with as by be are this not no yes he she they said "
             "will has have had from at or which one two new year can would more but".split())  # fmt: skip
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = specials + words + WORDS_LETTERS + [f"##{c}" for c in WORDS_LETTERS] + list(".,!?'\"-0123456789")
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    BertTokenizerFast.from_pretrained(path, do_lower_case=True).save_pretrained(path)
    config = BertConfig(vocab_size=len(dict.fromkeys(tokens)), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    return path


def run(out: Path, glue_dir: str) -> None:
    import torch

    import steadytune

    torch.set_num_threads(2)
    # the same path on every run: records name their model folder
    model = tiny_model(Path(tempfile.gettempdir()) / "steadytune-same-records-tiny-bert")
    study = steadytune.Study(out, tasks="rte,mrpc", recipes=RECIPES, seeds=2, model=str(model), glue_dir=glue_dir,
                             train_size=256, max_length=64, num_evals=3)  # fmt: skip
    counts = study.run(workers=1, progress=False)
    print(f"steadytune {steadytune.__version__} from {Path(steadytune.__file__).parent}: {counts}")


def records(study: Path) -> dict[tuple, dict]:
    con = sqlite3.connect(f"file:{study / 'study.sqlite'}?mode=ro", uri=True)
    rows = con.execute("SELECT task, recipe, seed, record FROM trials WHERE status = 'done'").fetchall()
    con.close()
    return {(t, r, s): json.loads(rec) for t, r, s, rec in rows}


def diff(a, b, path: str, out: list[str], only: set[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() | b.keys():
            if k in VOLATILE and not path:
                continue
            if k not in a or k not in b:
                only.add(f"{path}.{k} only in {'new' if k in b else 'old'}")
            else:
                diff(a[k], b[k], f"{path}.{k}", out, only)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out, only)
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: {a!r} != {b!r}")


def compare(old: Path, new: Path) -> int:
    a, b = records(old), records(new)
    if a.keys() != b.keys():
        print(f"different trials: {sorted(a.keys() ^ b.keys())}")
        return 1
    bad, only, values = 0, set(), 0
    for key in sorted(a):
        out: list[str] = []
        diff(a[key], b[key], "", out, only)
        values += len(json.dumps(a[key]))
        if out:
            bad += 1
            print(f"{key}: {len(out)} differences, e.g. {out[:3]}")
    for line in sorted(only):
        print(line)
    curve_points = sum(len(r["curve"]) for r in a.values())
    print(f"{len(a)} trials, {curve_points} loss-curve points: {len(a) - bad} identical, {bad} differ")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="study folder to write")
    parser.add_argument("--glue-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"))
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"))
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("--out or --compare")
    run(args.out, args.glue_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
