"""Tests for steadytune.optim.adamw: parity with torch.optim.AdamW, the BERTAdam update, state_dict, validation,
and the fused path (``torch._fused_adamw_``, the default on CPU) against the per-tensor and multi-tensor ones.

``python -m pytest tests/test_optim.py -s -k parity`` prints the measured "max rel diff vs torch.optim.AdamW".
"""

from __future__ import annotations

import copy
import importlib
import io
import math
import re

import pytest
import torch
from torch import nn

from steadytune.optim import AdamW, BertAdam, adamw

# The module itself (``steadytune.optim.adamw`` as an attribute is the re-exported function).
adamw_module = importlib.import_module("steadytune.optim.adamw")

DTYPE = torch.float64
SHAPES = [(5, 4), (4,), (3, 3, 2), (7,)]


def _make_params(seed: int = 0, dtype: torch.dtype = DTYPE) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES]


def _groups(params: list[nn.Parameter]) -> list[dict]:
    # Two groups with different lr, weight decay (both != 0) and betas.
    return [
        {"params": params[:2], "lr": 1e-2, "weight_decay": 0.1},
        {"params": params[2:], "lr": 3e-3, "weight_decay": 0.02, "betas": (0.8, 0.99)},
    ]


def _grads(step: int, params: list[torch.Tensor], seed: int = 1234) -> list[torch.Tensor]:
    """Seeded gradients for ``step``: noise of varying scale plus a pull towards zero."""
    gen = torch.Generator().manual_seed(seed * 100_003 + step)
    out = []
    for i, p in enumerate(params):
        scale = 10.0 ** (i - 2)  # 1e-2 .. 10: exercises very different magnitudes
        out.append(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype) + 0.5 * p.detach())
    return out


def _run(opt: torch.optim.Optimizer, params: list[nn.Parameter], steps: range) -> list[list[torch.Tensor]]:
    """Run ``steps`` with seeded gradients; returns the parameter trajectory (a copy after every step)."""
    traj = []
    for t in steps:
        for p, g in zip(params, _grads(t, params), strict=True):
            p.grad = g
        opt.step()
        traj.append([p.detach().clone() for p in params])
    return traj


def _max_rel_diff(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> float:
    worst = 0.0
    for xs, ys in zip(a, b, strict=True):
        for x, y in zip(xs, ys, strict=True):
            rel = (x - y).abs() / y.abs().clamp_min(torch.finfo(y.dtype).tiny)
            worst = max(worst, rel.max().item())
    return worst


def max_rel_diff_vs_torch(*, foreach: bool, torch_foreach: bool, steps: int = 100) -> float:
    """Max element-wise relative difference between our AdamW and torch.optim.AdamW over ``steps`` steps."""
    ours, ref = _make_params(), _make_params()
    opt = AdamW(_groups(ours), eps=1e-8, foreach=foreach)
    ref_opt = torch.optim.AdamW(_groups(ref), eps=1e-8, foreach=torch_foreach)
    return _max_rel_diff(_run(opt, ours, range(steps)), _run(ref_opt, ref, range(steps)))


@pytest.mark.parametrize("torch_foreach", [False, True])
@pytest.mark.parametrize("foreach", [False, True])
def test_parity_with_torch_adamw(foreach: bool, torch_foreach: bool) -> None:
    diff = max_rel_diff_vs_torch(foreach=foreach, torch_foreach=torch_foreach)
    print(f"\nmax rel diff vs torch.optim.AdamW: {diff:.3e} (ours foreach={foreach}, torch foreach={torch_foreach})")
    assert diff <= 1e-12


def test_parity_state_matches_torch() -> None:
    ours, ref = _make_params(), _make_params()
    opt = AdamW(_groups(ours), eps=1e-8)
    ref_opt = torch.optim.AdamW(_groups(ref), eps=1e-8)
    _run(opt, ours, range(10))
    _run(ref_opt, ref, range(10))
    for p, q in zip(ours, ref, strict=True):
        s, r = opt.state[p], ref_opt.state[q]
        assert s["step"].dtype == r["step"].dtype and s["step"].device == r["step"].device
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(s[key], r[key], rtol=1e-12, atol=0)


def _bertadam_reference(params: list[torch.Tensor], groups: list[dict], steps: int) -> list[list[torch.Tensor]]:
    """Plain float64 transcription of the BERT update (google-research/bert AdamWeightDecayOptimizer)."""
    theta = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in theta]
    v = [torch.zeros_like(p) for p in theta]
    hyper = {}
    for g in groups:
        for p in g["params"]:
            idx = next(i for i, q in enumerate(params) if q is p)
            hyper[idx] = (g["lr"], *g.get("betas", (0.9, 0.999)), g.get("eps", 1e-6), g["weight_decay"])
    traj = []
    for t in range(steps):
        grads = _grads(t, theta)
        for i, g in enumerate(grads):
            lr, beta1, beta2, eps, wd = hyper[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            update = m[i] / (v[i].sqrt() + eps) + wd * theta[i]
            theta[i] = theta[i] - lr * update
        traj.append([x.clone() for x in theta])
    return traj


# The three implementations: per-tensor loop, multi-tensor (foreach), fused kernel.
IMPLS = [{"foreach": False}, {"foreach": True}, {"fused": True}]
IMPL_IDS = ["per-tensor", "foreach", "fused"]


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
def test_bertadam_matches_plain_transcription(impl: dict) -> None:
    params = _make_params()
    groups = _groups(params)
    expected = _bertadam_reference(params, groups, 100)
    opt = BertAdam(groups, **impl)
    got = _run(opt, params, range(100))
    diff = _max_rel_diff(got, expected)
    normwise = max(
        ((x - y).abs().max() / y.abs().max()).item()
        for xs, ys in zip(got, expected, strict=True)
        for x, y in zip(xs, ys, strict=True)
    )
    print(f"\nBertAdam vs plain transcription: max rel diff {diff:.3e}, normwise {normwise:.3e} ({impl})")
    # The optimizer computes theta * (1 - lr * wd) - lr * m / (sqrt(v) + eps): algebraically the transcription but
    # rounded differently, a few ulps per step. Normwise that stays ~1e-14 over 100 steps; element-wise the
    # worst case is a weight passing near zero (|theta| ~ 3e-4 with an absolute difference ~1e-16 gives ~4e-13).
    assert normwise <= 1e-13
    assert diff <= 1e-11


# Constant gradients of several signs and magnitudes (one tensor, one value per element).
CONSTANT_GRAD = torch.tensor([-1e3, -2.5, -1e-3, 1e-3, 0.7, 1e2], dtype=DTYPE)


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
@pytest.mark.parametrize(
    ("cls", "expected_factor"),
    [
        (AdamW, 1.0),  # bias-corrected: lr * g / |g| = lr * sign(g)
        (BertAdam, 0.1 / math.sqrt(0.001)),  # (1 - beta1) / sqrt(1 - beta2) ≈ 3.162
    ],
)
def test_closed_form_first_step(cls: type[AdamW], expected_factor: float, impl: dict) -> None:
    lr, eps = 1e-3, 1e-15
    theta0 = torch.linspace(-1.0, 1.0, CONSTANT_GRAD.numel(), dtype=DTYPE)
    p = nn.Parameter(theta0.clone())
    p.grad = CONSTANT_GRAD.clone()
    opt = cls([p], lr=lr, eps=eps, weight_decay=0.0, **impl)
    opt.step()
    delta = p.detach() - theta0
    expected = -lr * expected_factor * CONSTANT_GRAD.sign()
    # Exact result: -lr * f * sign(g) / (1 + eps / (sqrt(1 - beta2_corr) * |g|)), so the eps-induced relative error
    # is at most eps / (sqrt(1 - beta2) * min|g|) = 1e-15 / (0.0316 * 1e-3) ≈ 3.2e-11 (for AdamW 1e-12); rounding
    # of theta0 + delta (|theta0| <= 1) adds < 1e-16 / 1e-3 = 1e-13 relative. rtol 1e-9 leaves ample margin.
    torch.testing.assert_close(delta, expected, rtol=1e-9, atol=0)
    if cls is BertAdam:
        assert abs(expected_factor - 3.1622776601683795) < 1e-12


def _mixed_params() -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(7)
    return [
        nn.Parameter(torch.randn(6, 5, generator=gen, dtype=torch.float32)),
        nn.Parameter(torch.randn(5, generator=gen, dtype=torch.float64)),
        nn.Parameter(torch.randn(3, 2, generator=gen, dtype=torch.float32)),  # gradient every other step
        nn.Parameter(torch.randn(4, generator=gen, dtype=torch.float64)),  # never gets a gradient
        nn.Parameter(torch.randn(2, 2, generator=gen, dtype=torch.float64)),
    ]


def _run_mixed(opt: torch.optim.Optimizer, params: list[nn.Parameter], steps: int) -> None:
    for t in range(steps):
        for i, (p, g) in enumerate(zip(params, _grads(t, params), strict=True)):
            p.grad = None if i == 3 or (i == 2 and t % 2) else g
        opt.step()


@pytest.mark.parametrize("bias_correction", [True, False])
def test_foreach_and_per_tensor_agree(bias_correction: bool) -> None:
    results = {}
    for foreach in (False, True):
        params = _mixed_params()
        untouched = params[3].detach().clone()
        groups = [
            {"params": params[:3], "lr": 1e-2, "weight_decay": 0.05},
            {"params": params[3:], "lr": 2e-3, "weight_decay": 0.0},
        ]
        opt = AdamW(groups, bias_correction=bias_correction, foreach=foreach)
        _run_mixed(opt, params, 20)
        # grad None: skipped, unchanged and without state.
        assert torch.equal(params[3].detach(), untouched)
        assert len(opt.state[params[3]]) == 0
        assert opt.state[params[2]]["step"].item() == 10.0
        assert opt.state[params[0]]["step"].item() == 20.0
        results[foreach] = (params, opt)
    (p_loop, opt_loop), (p_fe, opt_fe) = results[False], results[True]
    for a, b in zip(p_loop, p_fe, strict=True):
        assert a.dtype == b.dtype
        assert torch.equal(a, b)  # bitwise: on CPU the foreach ops run the same per-tensor kernels
        for key, value in opt_loop.state[a].items():
            assert torch.equal(value, opt_fe.state[b][key])


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_state_dict_resume_is_bit_identical(cls: type[AdamW], impl: dict) -> None:
    params = _make_params()
    opt = cls(_groups(params), **impl)
    _run(opt, params, range(37))
    saved = copy.deepcopy(opt.state_dict())  # state_dict() holds references: snapshot it
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    snapshot = [p.detach().clone() for p in params]
    reference = _run(opt, params, range(37, 67))

    buffer.seek(0)
    for state_dict in (saved, torch.load(buffer, weights_only=True)):
        fresh = [nn.Parameter(x.clone()) for x in snapshot]
        # Constructed with other hyper-parameters: load_state_dict must restore the saved ones.
        groups = _groups(fresh)
        for group in groups:
            group["lr"] = 0.5
        opt2 = AdamW(groups, eps=0.1, bias_correction=cls is BertAdam, **impl)
        opt2.load_state_dict(state_dict)
        assert opt2.param_groups[0]["bias_correction"] is (cls is AdamW)
        assert opt2.state[fresh[0]]["step"].dtype == torch.float32
        assert opt2.state[fresh[0]]["step"].item() == 37.0
        resumed = _run(opt2, fresh, range(37, 67))
        for xs, ys in zip(resumed, reference, strict=True):
            for x, y in zip(xs, ys, strict=True):
                assert torch.equal(x, y)


@pytest.mark.parametrize(("cls", "expected"), [(AdamW, True), (BertAdam, False)])
def test_old_state_dict_without_bias_correction_gets_default(cls: type[AdamW], expected: bool) -> None:
    params = _make_params()
    opt = cls(params)
    _run(opt, params, range(2))
    state_dict = copy.deepcopy(opt.state_dict())
    for group in state_dict["param_groups"]:
        del group["bias_correction"]
        del group["foreach"]
        del group["fused"]
    opt2 = cls([nn.Parameter(p.detach().clone()) for p in params])
    opt2.load_state_dict(state_dict)
    assert opt2.param_groups[0]["bias_correction"] is expected
    assert opt2.param_groups[0]["foreach"] is None
    assert opt2.param_groups[0]["fused"] is None
    _run(opt2, list(opt2.param_groups[0]["params"]), range(2, 4))  # and it steps


def test_sparse_gradients_rejected() -> None:
    emb = nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2, 3])).sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.is_sparse
    for impl in IMPLS:
        opt = AdamW(emb.parameters(), **impl)
        with pytest.raises(RuntimeError, match="AdamW does not support sparse gradients; use torch.optim.SparseAdam"):
            opt.step()


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        ({"lr": -1}, "Invalid learning rate: -1"),
        ({"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        ({"betas": (1.0, 0.999)}, "index 0: 1.0"),
        ({"betas": (0.9, -0.1)}, "index 1: -0.1"),
    ],
)
@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_invalid_hyperparameters(cls: type[AdamW], kwargs: dict, quoted: str) -> None:
    with pytest.raises(ValueError, match=re.escape(quoted)):
        cls(_make_params(), **kwargs)


def test_bertadam_defaults() -> None:
    opt = BertAdam(_make_params())
    group = opt.param_groups[0]
    assert group["eps"] == 1e-6
    assert group["weight_decay"] == 0.01
    assert group["betas"] == (0.9, 0.999)
    assert group["bias_correction"] is False
    assert isinstance(opt, AdamW)
    plain = AdamW(_make_params())
    assert plain.param_groups[0]["bias_correction"] is True
    assert plain.param_groups[0]["eps"] == 1e-6


def test_bias_correction_flag_changes_the_update() -> None:
    trajectories = {}
    for bias_correction in (True, False):
        params = _make_params()
        opt = AdamW(_groups(params), bias_correction=bias_correction)
        trajectories[bias_correction] = _run(opt, params, range(5))
    theta0 = _make_params()
    for t in range(5):
        for a, b in zip(trajectories[True][t], trajectories[False][t], strict=True):
            assert not torch.allclose(a, b, rtol=1e-6, atol=0)
    # First step, weight decay aside: BERTAdam moves ~3.16x further (group 0: default betas).
    step_true = trajectories[True][0][0] - theta0[0].detach() * (1 - 1e-2 * 0.1)
    step_false = trajectories[False][0][0] - theta0[0].detach() * (1 - 1e-2 * 0.1)
    ratio = (step_false / step_true).median().item()
    assert ratio == pytest.approx(0.1 / math.sqrt(0.001), rel=1e-3)


def test_closure_and_grad_none_everywhere() -> None:
    w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=DTYPE))
    opt = AdamW([w], lr=0.1, eps=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    with torch.no_grad():  # the closure still runs with grad enabled
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9], dtype=DTYPE), rtol=1e-9, atol=0)
    # No gradients at all: a no-op returning None.
    opt.zero_grad()
    before = w.detach().clone()
    assert opt.step() is None
    assert torch.equal(w.detach(), before)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_functional_matches_optimizer(bias_correction: bool) -> None:
    params = _make_params()
    opt = AdamW(params, lr=1e-2, weight_decay=0.1, bias_correction=bias_correction)
    _run(opt, params, range(3))

    theta = [p.detach().clone() for p in _make_params()]
    exp_avgs = [torch.zeros_like(x) for x in theta]
    exp_avg_sqs = [torch.zeros_like(x) for x in theta]
    steps = [torch.tensor(0.0) for _ in theta]
    for t in range(3):
        adamw(
            theta,
            _grads(t, theta),
            exp_avgs,
            exp_avg_sqs,
            steps,
            foreach=None,
            lr=1e-2,
            beta1=0.9,
            beta2=0.999,
            eps=1e-6,
            weight_decay=0.1,
            bias_correction=bias_correction,
        )
    for p, x in zip(params, theta, strict=True):
        assert torch.equal(p.detach(), x)
    with pytest.raises(ValueError, match="same length"):
        adamw(theta, [], [], [], [], lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0, bias_correction=True)


# --- the fused path ---------------------------------------------------------------------------------------------


def _trajectories_equal(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> bool:
    return all(torch.equal(x, y) for xs, ys in zip(a, b, strict=True) for x, y in zip(xs, ys, strict=True))


def test_fused_adamw_is_bit_identical_to_torch_fused() -> None:
    # float32 (the dtype that matters for speed), both groups with weight decay, 30 steps: the same kernel with the
    # same arguments and the same step counts must give the same bits, parameters and state alike.
    ours, ref = _make_params(dtype=torch.float32), _make_params(dtype=torch.float32)
    opt = AdamW(_groups(ours), eps=1e-8, fused=True)
    ref_opt = torch.optim.AdamW(_groups(ref), eps=1e-8, fused=True)
    assert _trajectories_equal(_run(opt, ours, range(30)), _run(ref_opt, ref, range(30)))
    for p, q in zip(ours, ref, strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt.state[p][key], ref_opt.state[q][key].to(opt.state[p][key].device))


@pytest.mark.parametrize("torch_foreach", [False, True])
def test_fused_parity_with_torch_non_fused_adamw(torch_foreach: bool) -> None:
    # Across paths only the rounding differs: float64 keeps that at ~1e-14 over 100 steps.
    ours, ref = _make_params(), _make_params()
    opt = AdamW(_groups(ours), eps=1e-8, fused=True)
    ref_opt = torch.optim.AdamW(_groups(ref), eps=1e-8, foreach=torch_foreach)
    diff = _max_rel_diff(_run(opt, ours, range(100)), _run(ref_opt, ref, range(100)))
    print(f"\nmax rel diff fused vs torch.optim.AdamW(foreach={torch_foreach}): {diff:.3e}")
    assert diff <= 1e-12


@pytest.mark.parametrize("bias_correction", [True, False])
def test_fused_and_per_tensor_agree(bias_correction: bool) -> None:
    # Mixed float32/float64 parameters (two kernel calls), a gradient every other step, one parameter never
    # updated, a group without weight decay; 20 steps.
    results = {}
    for impl in ({"foreach": False}, {"fused": True}):
        params = _mixed_params()
        untouched = params[3].detach().clone()
        groups = [
            {"params": params[:3], "lr": 1e-2, "weight_decay": 0.05},
            {"params": params[3:], "lr": 2e-3, "weight_decay": 0.0},
        ]
        opt = AdamW(groups, bias_correction=bias_correction, **impl)
        _run_mixed(opt, params, 20)
        assert torch.equal(params[3].detach(), untouched)
        assert len(opt.state[params[3]]) == 0
        for p, count in ((params[0], 20.0), (params[2], 10.0), (params[4], 20.0)):
            step = opt.state[p]["step"]
            assert step.item() == count and step.dtype == torch.float32 and step.is_cpu
        results[next(iter(impl))] = (params, opt)
    (p_loop, opt_loop), (p_fused, opt_fused) = results["foreach"], results["fused"]
    for a, b in zip(p_loop, p_fused, strict=True):
        assert a.dtype == b.dtype
        # float64: agreement to ~1e-15 per step; float32: to a few float32 ulps per step.
        rtol, atol = (1e-12, 1e-15) if a.dtype == torch.float64 else (1e-5, 1e-6)
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
        for key, value in opt_loop.state[a].items():
            torch.testing.assert_close(opt_fused.state[b][key], value, rtol=rtol, atol=atol)


def test_fused_bertadam_matches_per_tensor_bertadam() -> None:
    # float64, weight decay in both groups, 20 steps. BERTAdam's first steps are ~3-6x larger than AdamW's; any
    # leftover bias correction in the fused kernel (e.g. the real step count reaching it) would show at once.
    fused_params, loop_params = _make_params(), _make_params()
    fused = _run(BertAdam(_groups(fused_params), fused=True), fused_params, range(20))
    loop = _run(BertAdam(_groups(loop_params), foreach=False), loop_params, range(20))
    diff = _max_rel_diff(fused, loop)
    print(f"\nBertAdam fused vs per-tensor: max rel diff {diff:.3e}")
    assert diff <= 1e-12


@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_fused_prior_weight_decay_matches_per_tensor(cls: type[AdamW]) -> None:
    # Decay toward the first-step weights is a lerp before the kernel (which then decays by 0).
    results = []
    for impl in ({"foreach": False}, {"fused": True}):
        params = _make_params()
        groups = _groups(params)
        for group in groups:
            group["weight_decay"] *= 20  # strong enough that decaying toward zero instead would be far off
        opt = cls(groups, prior_weight_decay=True, **impl)
        results.append((_run(opt, params, range(30)), opt, params))
    (loop, opt_loop, p_loop), (fused, opt_fused, p_fused) = results
    diff = _max_rel_diff(fused, loop)
    print(f"\nprior weight decay, fused vs per-tensor ({cls.__name__}): max rel diff {diff:.3e}")
    assert diff <= 1e-12
    for a, b in zip(p_loop, p_fused, strict=True):
        assert torch.equal(opt_loop.state[a]["prior"], opt_fused.state[b]["prior"])


@pytest.mark.parametrize("first", ["fused", "per-tensor"])
@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_state_dict_round_trips_between_fused_and_per_tensor(cls: type[AdamW], first: str) -> None:
    # 10 steps on one path, state_dict -> the other path, 10 more: the same trajectory as 20 steps on the first
    # (to rounding noise) and step == 20. A fused path that did not count real steps would be caught here: the bias
    # correction at steps 11-20 depends on them.
    impls = {"fused": {"fused": True}, "per-tensor": {"foreach": False}}
    second = "per-tensor" if first == "fused" else "fused"
    params = _make_params()
    opt = cls(_groups(params), **impls[first])
    _run(opt, params, range(10))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    snapshot = [p.detach().clone() for p in params]
    reference = _run(opt, params, range(10, 20))

    buffer.seek(0)
    fresh = [nn.Parameter(x.clone()) for x in snapshot]
    opt2 = cls(_groups(fresh), **impls[second])
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    # As for every hyper-parameter, the saved implementation flags win; switching is explicit.
    saved_flags = (opt.defaults["foreach"], opt.defaults["fused"])
    assert all((g["foreach"], g["fused"]) == saved_flags for g in opt2.param_groups)
    for group in opt2.param_groups:
        group.update(foreach=impls[second].get("foreach"), fused=impls[second].get("fused"))
    assert all(opt2.state[p]["step"].item() == 10.0 for p in fresh)
    resumed = _run(opt2, fresh, range(10, 20))
    assert all(opt2.state[p]["step"].item() == 20.0 and opt2.state[p]["step"].dtype == torch.float32 for p in fresh)
    assert _max_rel_diff(resumed, reference) <= 1e-12


def _spy_on_fused(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the fused implementation (still running it)."""
    calls: list[int] = []
    real = adamw_module._fused_adamw

    def spy(params: list[torch.Tensor], *args: object, **kwargs: object) -> None:
        calls.append(len(params))
        real(params, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(adamw_module, "_fused_adamw", spy)
    return calls


@pytest.mark.parametrize(
    ("kwargs", "expect_fused"),
    [
        ({}, True),  # the default on CPU float32
        ({"fused": True}, True),
        ({"fused": False}, False),
        ({"foreach": False}, False),  # an explicit foreach picks that implementation, as in torch.optim
        ({"foreach": True}, False),
        ({"fused": False, "foreach": None}, False),
    ],
)
@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_default_picks_fused_on_cpu_float32(
    monkeypatch: pytest.MonkeyPatch, cls: type[AdamW], kwargs: dict, expect_fused: bool
) -> None:
    calls = _spy_on_fused(monkeypatch)
    params = _make_params(dtype=torch.float32)
    opt = cls(_groups(params), **kwargs)
    _run(opt, params, range(2))
    assert calls == ([2, 2] * 2 if expect_fused else [])  # two groups of two parameters, two steps
    assert adamw_module._default_fused(params)
    # The functional core decides the same way.
    calls.clear()
    theta = [p.detach().clone() for p in params]
    adamw(
        theta,
        _grads(0, theta),
        [torch.zeros_like(x) for x in theta],
        [torch.zeros_like(x) for x in theta],
        [torch.tensor(0.0) for _ in theta],
        **kwargs,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-6,
        weight_decay=0.0,
        bias_correction=cls is AdamW,
    )
    assert calls == ([4] if expect_fused else [])


@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_fused_and_foreach_together_is_a_value_error(cls: type[AdamW]) -> None:
    message = "fused=True and foreach=True cannot be used together"
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(_make_params(), fused=True, foreach=True)
    theta = [torch.zeros(2, dtype=DTYPE)]
    with pytest.raises(ValueError, match=re.escape(message)):
        adamw(theta, theta, theta, theta, [torch.tensor(0.0)], foreach=True, fused=True, lr=1e-3, beta1=0.9,
              beta2=0.999, eps=1e-6, weight_decay=0.0, bias_correction=cls is AdamW)  # fmt: skip
    # One of them alone is fine.
    cls(_make_params(), fused=True, foreach=False)
    cls(_make_params(), fused=False, foreach=True)


def test_unsupported_device_falls_back_by_default_and_fused_true_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # The meta device has no fused optimizer kernels (torch lists the devices that do); the per-tensor ops run there.
    calls = _spy_on_fused(monkeypatch)
    p = nn.Parameter(torch.empty(3, 2, device="meta"))
    p.grad = torch.empty(3, 2, device="meta")
    assert not adamw_module._default_fused([p])
    opt = AdamW([p], weight_decay=0.1)
    opt.step()
    assert calls == [] and opt.state[p]["step"].item() == 1.0
    with pytest.raises(RuntimeError, match=r"fused=True requires .* got a float32 tensor on 'meta'"):
        AdamW([p], fused=True).step()


@pytest.mark.parametrize("dtype", [torch.int64, torch.float8_e4m3fn])
def test_unsupported_dtype_is_not_fused_and_fused_true_raises(dtype: torch.dtype) -> None:
    # float8 passes torch.is_floating_point but has no fused kernel; integers are not floating point at all.
    theta = [torch.zeros(4, dtype=dtype)]
    assert not adamw_module._default_fused(theta)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(RuntimeError, match=rf"fused=True requires .* got a {name} tensor on 'cpu'"):
        adamw(theta, [torch.zeros(4, dtype=dtype)], [torch.zeros(4, dtype=dtype)], [torch.zeros(4, dtype=dtype)],
              [torch.tensor(0.0)], fused=True, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0,
              bias_correction=True)  # fmt: skip
    assert adamw_module._default_fused([torch.zeros(4, dtype=d) for d in adamw_module._FUSED_DTYPES])


@pytest.mark.parametrize(
    ("beta", "step", "expected"),
    [
        (0.0, None, True),
        (0.9, None, True),
        (0.999, None, True),
        (0.9999999, None, True),  # 1 - beta = 1e-7: 2**64 steps is plenty
        (1 - 2**-24, None, True),  # the float32 just below 1
        (1 - 2**-26, None, False),  # rounds to 1.0 in float32 (MPS computes the correction in float32)
        (math.nextafter(1.0, 0.0), None, False),
        (0.999, 1e9, True),  # 0.999**1e9 underflows to 0.0 ...
        (0.9999999999, 1e9, False),  # ... but (1 - 1e-10)**1e9 ~ 0.905 does not
    ],
)
def test_bias_correction_vanishes(beta: float, step: float | None, expected: bool) -> None:
    assert adamw_module._bias_correction_vanishes(beta, step) is expected


def test_no_bias_correction_step_is_exact_for_every_double_beta() -> None:
    # The claim in the comment: t = 2**64 sends beta**t to exactly 0.0 for the double closest to 1 (hence for every
    # beta in [0, 1)), and t is a float32 (what the kernels read).
    step = adamw_module._NO_BIAS_CORRECTION_STEP
    assert math.nextafter(1.0, 0.0) ** step == 0.0
    assert torch.tensor(step, dtype=torch.float32).item() == step


@pytest.mark.parametrize(
    ("beta2", "patched_step"),
    [
        (1 - 2**-30, None),  # rounds to 1.0 in float32: no step count works
        (0.9999999999, 1e9),  # with too small a step count, the correction would not vanish
    ],
)
def test_bertadam_falls_back_when_the_correction_cannot_vanish(
    monkeypatch: pytest.MonkeyPatch, beta2: float, patched_step: float | None
) -> None:
    if patched_step is not None:
        monkeypatch.setattr(adamw_module, "_NO_BIAS_CORRECTION_STEP", patched_step)
    calls = _spy_on_fused(monkeypatch)
    params, ref = _make_params(dtype=torch.float32), _make_params(dtype=torch.float32)
    got = _run(BertAdam(params, betas=(0.9, beta2), fused=True), params, range(5))
    expected = _run(BertAdam(ref, betas=(0.9, beta2), foreach=False), ref, range(5))
    assert calls == []
    assert _trajectories_equal(got, expected)  # the per-tensor loop, bit for bit
    # AdamW has no such restriction: it runs fused with the real step counts.
    _run(AdamW(params, betas=(0.9, beta2), fused=True), params, range(1))
    assert calls == [len(params)]


def test_fused_with_non_contiguous_gradient_matches_per_tensor() -> None:
    # The fused CPU kernel ignores strides; a transposed gradient must still update the right elements.
    results = []
    for impl in ({"foreach": False}, {"fused": True}):
        params = _make_params()
        opt = AdamW(params, lr=1e-2, weight_decay=0.1, **impl)
        for t in range(5):
            for p, g in zip(params, _grads(t, params), strict=True):
                p.grad = g.t().contiguous().t() if g.dim() == 2 else g  # same values, transposed strides
            assert not params[0].grad.is_contiguous()
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15)


def _print_parity() -> None:
    for foreach in (False, True):
        diff = max_rel_diff_vs_torch(foreach=foreach, torch_foreach=foreach)
        print(f"max rel diff vs torch.optim.AdamW: {diff:.3e} (foreach={foreach})")


if __name__ == "__main__":
    _print_parity()
