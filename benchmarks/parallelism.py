"""Which split of the cores runs a study fastest: W worker processes × T torch threads each, W·T = cores?

    python benchmarks/parallelism.py --glue-dir ../shared/data/glue

Runs the same small study (RTE, --train-size 1000, `--max-steps` steps, one evaluation) once per split, in a
fresh folder each time, and prints trials per hour. Two model sizes: all-MiniLM-L6-v2 (22M parameters) and a
randomly initialised BERT-base-sized encoder (110M) with MiniLM's tokenizer, so the answer can depend on size.
`steadytune.study.default_parallelism` is chosen from this table. Run it alone on the machine. (Pool workers
are fresh processes: each pays its imports and one model load, as in a real study.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from steadytune.study import Study


def bert_base_folder(out: Path) -> Path:
    """A BERT-base-shaped random model (12 × 768) with MiniLM's tokenizer, saved as a local model folder."""
    from transformers import BertConfig, BertModel

    from steadytune.models import load_tokenizer

    tok = load_tokenizer("all-MiniLM-L6-v2")
    BertModel(BertConfig(vocab_size=len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--max-steps", type=int, default=16)
    parser.add_argument("--trials", type=int, default=4, help="trials per split (a multiple of every W)")
    parser.add_argument("--models", default="minilm,bert-base", help="which of: minilm, bert-base")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    splits = [(w, cores // w) for w in range(1, cores + 1) if cores % w == 0]
    with tempfile.TemporaryDirectory() as tmp:
        chosen = args.models.split(",")
        models = {}
        if "minilm" in chosen:
            models["all-MiniLM-L6-v2 (22M)"] = "all-MiniLM-L6-v2"
        if "bert-base" in chosen:
            models["BERT-base-sized (110M)"] = str(bert_base_folder(Path(tmp) / "bert-base"))
        print(f"{cores} cores; each trial: RTE-1k, {args.max_steps} steps of batch 32, 1 evaluation; "
              f"{args.trials} trials per split")  # fmt: skip
        print(f"{'model':<24} {'workers x threads':>17} {'wall s':>7} {'s / trial':>9} {'trials / h':>10}")
        for label, model in models.items():
            for w, t in splits:
                study = Study(Path(tmp) / f"{label[:4]}-{w}x{t}", tasks="rte", seeds=args.trials, model=model,
                              recipes=f"adam+max_steps={args.max_steps}", glue_dir=args.glue_dir, train_size=1000,
                              num_evals=1)  # fmt: skip
                started = time.perf_counter()
                counts = study.run(workers=w, threads=t, progress=False)
                wall = time.perf_counter() - started
                assert counts["ran"] == args.trials, counts
                print(f"{label:<24} {f'{w} x {t}':>17} {wall:>7.1f} {wall / args.trials:>9.1f} "
                      f"{3600 * args.trials / wall:>10.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
