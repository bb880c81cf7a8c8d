"""Precision: what `auto` picks, bf16 autocast with fp32 weights and optimizer state, and what runs record."""

from __future__ import annotations

import math

import pytest
import torch

import steadytune.precision as P
from steadytune import train
from steadytune.data import load_user_data
from steadytune.errors import UserInputError
from steadytune.precision import autocast, resolve_precision


@pytest.fixture
def toy(toy_files):
    return load_user_data(toy_files["train"], validation=toy_files["validation"], test=toy_files["test"])


def test_auto_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(UserInputError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", cpu)


def test_cpu_probe_agrees_with_the_kernel_flags():
    P.cpu_has_bf16.cache_clear()
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert P.cpu_has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags or "amx_tile" in flags)


def test_autocast_runs_matmuls_in_bf16_only_when_asked():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast("bf16", torch.device("cpu")):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(ValueError, match="resolved to fp32 or bf16 first, got 'auto'"):
        autocast("auto", torch.device("cpu"))


def test_bf16_training_keeps_fp32_weights_and_state_and_records_it(tiny_model_dir, toy, monkeypatch):
    import steadytune.trainer as T

    seen = {}
    real = T.create_optimizer_and_scheduler

    def spy(model, recipe, total):
        seen["model"], (seen["optimizer"], sched) = model, real(model, recipe, total)
        return seen["optimizer"], sched

    monkeypatch.setattr(T, "create_optimizer_and_scheduler", spy)
    kw = {"model": str(tiny_model_dir), "data": toy, "lr": 1e-3, "max_steps": 6, "batch_size": 8, "num_evals": 2}
    bf16 = train(**kw, precision="bf16")
    assert bf16.config["precision"] == "bf16" and bf16.config["recipe"].endswith("+precision=bf16")
    assert all(p.dtype == torch.float32 for p in seen["model"].parameters())
    states = [s for s in seen["optimizer"].state.values()]
    assert states and all(s[k].dtype == torch.float32 for s in states for k in ("exp_avg", "exp_avg_sq"))
    fp32 = train(**kw, precision="fp32")
    assert fp32.config["precision"] == "fp32"
    # the same run, so close; but not bit-identical (else bf16 was not used)
    first = (bf16.curve[0]["loss"], fp32.curve[0]["loss"])
    assert first[0] != first[1] and first[0] == pytest.approx(first[1], abs=0.05)
    assert all(math.isfinite(p["loss"]) for p in bf16.curve)
    auto = train(**kw)
    assert auto.config["precision"] == resolve_precision("auto", torch.device("cpu"))
