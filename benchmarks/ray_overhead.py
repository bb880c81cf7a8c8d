"""What running a study's trials as Ray tasks costs next to running them in-process, on this machine.

    python benchmarks/ray_overhead.py --glue-dir ../shared/data/glue            # real all-MiniLM-L6-v2, 32 RTE rows

The same small study (one recipe, --seeds trials) runs four times, one trial at a time with the same torch
threads: with the local executor in this process (cold: the process's first trials; warm: a second study) and on a
new local Ray instance with --threads CPUs (cold: fresh worker processes; warm: a second study on the same workers),
interleaved so that a change in the machine's load hits both. Starting Ray is timed on its own row. Each study has
its own folder, so nothing is skipped. Per trial: the study's wall time, the part inside `train()` (the records'
own wall time) and outside it (scheduling, shipping data and model, storing), and the difference from the local
executor in the same state. Needs `pip install "steadytune[ray]"`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from steadytune.study import Executor, LocalExecutor, Study, load_records


def _timed_study(out: Path, executor: Executor, settings: dict) -> tuple[float, float, int]:
    """(study wall s, sum of the trials' own wall s, trials) of one study run from scratch."""
    study = Study(out, **settings)  # loads the data: not part of the timing, as for every executor
    started = time.perf_counter()
    counts = study.run(executor=executor, progress=False)
    wall = time.perf_counter() - started
    if counts["errors"] or counts["ran"] != counts["total"]:
        raise SystemExit(f"the study did not run cleanly: {counts}")
    return wall, sum(r["timings"]["wall_s"] for r in load_records(out)), counts["ran"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--task", default="rte")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--train-size", type=int, default=32, help="a few dozen rows: overhead, not accuracy")
    parser.add_argument("--seeds", type=int, default=4, help="trials per study")
    parser.add_argument("--recipe", default="adam")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial (and Ray's CPUs)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # Ray's workers inherit it: no tokenizer fork warnings

    import ray

    from steadytune.study.ray_executor import RayExecutor

    settings = {"tasks": args.task, "glue_dir": args.glue_dir, "model": args.model, "train_size": args.train_size,
                "recipes": args.recipe, "seeds": args.seeds, "num_evals": 2, "device": "cpu"}  # fmt: skip
    # num_evals 2: the fewest that still exercise the best-checkpoint path; evaluation is most of a tiny run
    rows: dict[tuple[str, str], tuple[float, float, int]] = {}  # (executor, state) → (wall, inside train, trials)
    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as tmp:

        def measure(kind: str, state: str) -> None:
            executor = LocalExecutor(1, args.threads) if kind == "local" else RayExecutor(cpus_per_trial=args.threads)
            rows[kind, state] = _timed_study(Path(tmp, f"{kind}-{state}"), executor, settings)

        measure("local", "cold")
        started = time.perf_counter()
        # One trial at a time, as above; no dashboard, worker output not echoed (the timing is the point).
        ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
        ray_init_s = time.perf_counter() - started
        try:  # interleaved, so that a change in the machine's load hits both executors alike
            for kind, state in (("ray", "cold"), ("local", "warm"), ("ray", "warm")):
                measure(kind, state)
        finally:
            ray.shutdown()

    print(f"{args.model} on {args.task} (train size {args.train_size}), recipe {args.recipe}, "
          f"{args.threads} thread(s) per trial, {os.cpu_count()} cores\n")  # fmt: skip
    names = ("trials", "wall s", "s/trial", "in train() s/trial", "outside train() s/trial", "vs local s/trial")
    columns = f"{'executor':<30} " + " ".join(f"{name:>{max(len(name), 7)}}" for name in names)
    print(columns + "\n" + "-" * len(columns))
    print(f"{'ray.init (new local instance)':<30} {'':>7} {ray_init_s:>7.2f}")
    for kind, state in (("local", "cold"), ("local", "warm"), ("ray", "cold"), ("ray", "warm")):
        wall, inside, n = rows[kind, state]
        name = f"{'local, in-process' if kind == 'local' else 'ray, 1 task at a time'} ({state})"
        versus = "" if kind == "local" else f"{(wall - rows['local', state][0]) / n:+.2f}"
        print(f"{name:<30} {n:>7} {wall:>7.2f} {wall / n:>7.2f} {inside / n:>18.2f} {(wall - inside) / n:>23.2f} "
              f"{versus:>16}")  # fmt: skip


if __name__ == "__main__":
    main()
