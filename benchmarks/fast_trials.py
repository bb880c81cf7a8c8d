"""How fast is a trial? steadytune's defaults against `transformers.Trainer` set up the way `run_glue` does it.

    python benchmarks/fast_trials.py --glue-dir ../shared/data/glue --seeds 3

Same model (all-MiniLM-L6-v2), task (RTE, --train-size 1000, the paper's splits), hyper-parameters (batch 32,
lr 2e-5, 3 epochs, 10% warm-up, clip 1.0, Adam eps 1e-6, no weight decay, 10 evaluations) and seeds, one trial
after the other in this process:

  (a) `Trainer`: every example padded to max_length 128, fp32, torch AdamW, evaluation every N steps;
  (b) `steadytune.train`: its defaults (length-grouped batches, dynamic padding, bf16 where the CPU/GPU has it,
      the fused AdamW kernel, and on the CPU `steadytune.fastpath`'s dropout and attention).

Prints four parts: the machine (measured fp32 and bf16 matmul peaks), the per-trial table with the ratio, the
model FLOP/s steadytune reached while training as a fraction of the bf16 peak, and one optimizer step of
steadytune's AdamW/BertAdam against `torch.optim.AdamW(foreach=True)` (and its fused kernel) on BERT-base-sized
tensors.
Timings depend on what else runs on the machine: run it alone.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from steadytune import AdamW, BertAdam, train
from steadytune.data import GROUP_BATCHES, encode, epoch_batches, load_data, padding_fraction
from steadytune.fastpath import retain_freed_memory
from steadytune.models import load_tokenizer, quiet_transformers, resolve_model
from steadytune.precision import cpu_has_bf16

HP = {"batch_size": 32, "lr": 2e-5, "epochs": 3, "warmup_ratio": 0.1, "max_grad_norm": 1.0, "eps": 1e-6}


# --- part 1: the machine ----------------------------------------------------------------------------------------


def matmul_peak(dtype: torch.dtype, device: torch.device, seconds: float = 2.0) -> float:
    """Best FLOP/s of square matrix products (sizes 1024-4096) in `dtype`, measured here and now."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):  # warm-up: thread pool, oneDNN/cuBLAS kernel choice
            a @ b
        reps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            a @ b
            reps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - started))
    return best


# --- part 2: the two ways of running a trial --------------------------------------------------------------------


def hf_trial(data, model_name: str, seed: int, device: torch.device) -> dict:
    """(a) run_glue's way: pad to 128, fp32, torch AdamW, evaluate every N steps; final model scored on test."""
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    started = time.perf_counter()
    set_seed(seed)  # before the model exists, as run_glue does: the new head's init then depends on the seed alone
    path = resolve_model(model_name)
    tok = AutoTokenizer.from_pretrained(path)

    def dataset(split) -> datasets.Dataset:
        enc = tok(*split.texts, padding="max_length", truncation=True, max_length=128)
        return datasets.Dataset.from_dict({**enc, "labels": [int(x) for x in split.labels]})

    train_ds, val_ds, test_ds = dataset(data.train), dataset(data.validation), dataset(data.test)
    with quiet_transformers():  # no load report for the new head
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=data.num_labels)
    steps = math.ceil(HP["epochs"] * math.ceil(len(data.train) / HP["batch_size"]))

    def accuracy(p) -> dict:
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=HP["batch_size"], per_device_eval_batch_size=128,
            learning_rate=HP["lr"], num_train_epochs=HP["epochs"], warmup_steps=math.ceil(HP["warmup_ratio"] * steps),
            max_grad_norm=HP["max_grad_norm"], adam_epsilon=HP["eps"], weight_decay=0.0, optim="adamw_torch",
            eval_strategy="steps", eval_steps=math.ceil(steps / 10), save_strategy="no", logging_steps=10,
            report_to=[], seed=seed, disable_tqdm=True, use_cpu=device.type == "cpu",
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                          compute_metrics=accuracy)  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # its per-evaluation log lines would bury the table
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
        test = trainer.predict(test_ds).metrics["test_accuracy"]
    return {"wall_s": time.perf_counter() - started, "train_s": train_s, "test": test, "steps": steps}


def steadytune_trial(data, model_name: str, seed: int) -> dict:
    """(b) steadytune's defaults; the last model is scored on test, as (a) does."""
    r = train(data=data, model=model_name, seed=seed, num_evals=10, **HP)
    return {"wall_s": r.timings["wall_s"], "train_s": r.timings["train_s"], "test": r.test_last, "steps": r.steps,
            "precision": r.config["precision"]}  # fmt: skip


def model_flops(data, model_name: str, seed: int, steps: int) -> float:
    """FLOPs of the training steps steadytune ran for `seed`: 6·N per real token (N = non-embedding parameters)
    plus attention, 12·layers·hidden·L² per example of L tokens (forward QKᵀ and AV, 4·L²·d; backward twice that).
    Padding is not counted: this is useful work."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model(model_name))
    from steadytune.models import load_model

    model, _ = load_model(model_name, label_names=data.label_names)
    n = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    lengths = encode(data.train, load_tokenizer(model_name), max_length=128).lengths
    gen, flops, done = torch.Generator().manual_seed(seed), 0.0, 0
    while done < steps:  # the same batches the trainer drew
        for batch in epoch_batches(lengths, HP["batch_size"], gen):
            ls = lengths[batch.numpy()].astype(np.float64)
            flops += 6 * n * ls.sum() + 12 * config.num_hidden_layers * config.hidden_size * (ls**2).sum()
            done += 1
            if done == steps:
                break
    return flops


# --- part 4: one optimizer step ---------------------------------------------------------------------------------


MakeOptimizer = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
Timings = dict[str, float]  # label -> median ms


def optimizer_step_ms(makers: dict[str, MakeOptimizer], params: list[torch.Tensor], rounds: int = 15) -> Timings:
    """Median time of one step of each optimizer, measured round-robin (each round times every optimizer once, in a
    rotated order), so that the host's drift during the measurement falls on all of them alike. They share the
    parameters and gradients (the arithmetic does not depend on the values) and each keeps its own state."""
    params = [p.detach().clone().requires_grad_() for p in params]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opts = {label: make(params) for label, make in makers.items()}
    for opt in opts.values():
        for _ in range(3):
            opt.step()
    times: dict[str, list[float]] = {label: [] for label in opts}
    labels = list(opts)
    for r in range(rounds):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            t0 = time.perf_counter()
            opts[label].step()
            if params[0].is_cuda:
                torch.cuda.synchronize()
            times[label].append(time.perf_counter() - t0)
    return {label: 1000 * statistics.median(ts) for label, ts in times.items()}


def bert_base_tensors(device: torch.device) -> list[torch.Tensor]:
    from transformers import BertConfig

    c = BertConfig()  # BERT-base: 12 layers, hidden 768, intermediate 3072, vocab 30522
    h, i = c.hidden_size, c.intermediate_size
    shapes = [(c.vocab_size, h), (c.max_position_embeddings, h), (c.type_vocab_size, h), (h,), (h,)]
    for _ in range(c.num_hidden_layers):
        shapes += [(h, h), (h,)] * 4 + [(h,), (h,)] + [(i, h), (i,), (h, i), (h,), (h,), (h,)]
    shapes += [(h, h), (h,), (2, h), (2,)]  # pooler, classifier
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(s, generator=gen) * 0.02).to(device) for s in shapes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-hf", action="store_true", help="only steadytune's side (and parts 1, 3, 4)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # 1. the machine
    name = torch.cuda.get_device_name() if device.type == "cuda" else _cpu_name()
    bf16 = cpu_has_bf16() if device.type == "cpu" else torch.cuda.is_bf16_supported()
    print(f"## machine: {name}; {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads; native bf16: {bf16}")  # fmt: skip
    if device.type == "cpu":
        # steadytune's train() does this on a CPU; done here first, so that (a) runs with it too (the fair side)
        print(f"glibc keeps freed memory for reuse (steadytune.fastpath.retain_freed_memory), in both ways: "
              f"{retain_freed_memory()}")  # fmt: skip
    peak = {dt: matmul_peak(getattr(torch, dt), device) for dt in ("float32", "bfloat16")}
    print(f"matmul peak, measured: fp32 {peak['float32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bfloat16'] / 1e9:.0f} "
          f"GFLOP/s ({peak['bfloat16'] / peak['float32']:.1f}x)\n", flush=True)  # fmt: skip
    if device.type == "cpu":
        print("(no GPU on this machine: CPU only)\n")

    # 2. padding, then trials
    print(f"## padding: share of the tokens in training batches of {HP['batch_size']} that are padding "
          "(mean of 5 epoch orders)")  # fmt: skip
    print(f"{'task':<6} {'mean len':>8} {'to 128':>7} {'shuffled':>8} {'grouped':>8}")
    for task in ("rte", "mrpc", "cola", "sts-b"):
        lengths = encode(load_data(task=task, glue_dir=args.glue_dir, train_size=args.train_size).train,
                         load_tokenizer(args.model), max_length=128).lengths  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        shuffled, grouped = (statistics.mean(padding_fraction(lengths, epoch_batches(lengths, HP["batch_size"], gen,
                                                                                      group_batches=g))
                                             for _ in range(5)) for g in (None, GROUP_BATCHES))  # fmt: skip
        print(f"{task:<6} {lengths.mean():>8.0f} {1 - lengths.mean() / 128:>7.1%} {shuffled:>8.1%} {grouped:>8.1%}")
    print()
    data = load_data(task="rte", glue_dir=args.glue_dir, train_size=args.train_size)
    lengths = encode(data.train, load_tokenizer(args.model), max_length=128).lengths
    examples = HP["epochs"] * len(data.train)
    real_tokens = HP["epochs"] * int(lengths.sum())
    rows = {"(a) Trainer, run_glue": [], "(b) steadytune": []}
    print(f"## RTE, train {len(data.train)} / validation {len(data.validation)} / test {len(data.test)}, "
          f"{args.model}, {args.seeds} seeds")  # fmt: skip
    print(f"{'way':<22} {'seed':>4} {'wall s':>7} {'train s':>7} {'examples/s':>10} {'tokens/s':>9} {'test acc':>8}")
    for seed in range(args.seeds):
        ways = [("(b) steadytune", lambda s=seed: steadytune_trial(data, args.model, s))]
        if not args.skip_hf:
            ways.insert(0, ("(a) Trainer, run_glue", lambda s=seed: hf_trial(data, args.model, s, device)))
        for way, run in ways:
            r = run()
            rows[way].append(r)
            print(f"{way:<22} {seed:>4} {r['wall_s']:>7.1f} {r['train_s']:>7.1f} {examples / r['wall_s']:>10.1f} "
                  f"{real_tokens / r['wall_s']:>9.0f} {r['test']:>8.4f}", flush=True)  # fmt: skip
    print("\n(tokens/s counts real tokens, not padding, per second of trial wall time)")
    print(f"{'way':<22} {'wall s mean':>11} {'test acc mean ± std':>20}")
    for way, rs in rows.items():
        if rs:
            tests = [r["test"] for r in rs]
            sd = statistics.stdev(tests) if len(tests) > 1 else 0.0
            print(f"{way:<22} {statistics.mean(r['wall_s'] for r in rs):>11.1f} "
                  f"{statistics.mean(tests):>11.4f} ± {sd:.4f}")  # fmt: skip
    if rows["(a) Trainer, run_glue"]:
        a, b = (statistics.mean(r["wall_s"] for r in rs) for rs in rows.values())
        print(f"speed-up per trial, (a) / (b): {a / b:.2f}x")

    # 3. model FLOP/s while training
    r = rows["(b) steadytune"][0]
    flops = model_flops(data, args.model, 0, r["steps"])
    achieved = flops / r["train_s"]
    print(f"\n## steadytune training, seed 0 ({r['precision']}): {flops / 1e12:.2f} TFLOP of model work in "
          f"{r['train_s']:.1f} s = {achieved / 1e9:.0f} GFLOP/s = {achieved / peak['bfloat16']:.0%} of the bf16 "
          f"peak ({achieved / peak['float32']:.0%} of fp32's)")  # fmt: skip

    # 4. one optimizer step, BERT-base-sized tensors
    tensors = bert_base_tensors(device)
    print(f"\n## one optimizer step, {len(tensors)} BERT-base tensors ({sum(t.numel() for t in tensors) / 1e6:.0f}M "
          "values), median of 15 rounds, round-robin")  # fmt: skip
    kw = {"lr": 1e-3, "eps": 1e-6, "weight_decay": 0.0}
    ms = optimizer_step_ms({
        "torch.optim.AdamW(foreach=True)": lambda p: torch.optim.AdamW(p, **kw, foreach=True),
        "torch.optim.AdamW(fused=True)": lambda p: torch.optim.AdamW(p, **kw, fused=True),
        "steadytune AdamW (default: fused)": lambda p: AdamW(p, **kw),
        "steadytune AdamW (foreach=True)": lambda p: AdamW(p, **kw, foreach=True),
        "steadytune AdamW (per-tensor)": lambda p: AdamW(p, **kw, foreach=False),
        "steadytune BertAdam (default: fused)": lambda p: BertAdam(p, **kw),
        "steadytune BertAdam (foreach=True)": lambda p: BertAdam(p, **kw, foreach=True),
        "steadytune BertAdam (per-tensor)": lambda p: BertAdam(p, **kw, foreach=False),
    }, tensors)  # fmt: skip
    ref = ms["torch.optim.AdamW(foreach=True)"]
    for label, t in ms.items():
        print(f"{label:<36} {t:>8.1f} ms   {t / ref:.2f}x")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


if __name__ == "__main__":
    main()
