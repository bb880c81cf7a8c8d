"""Tests for steadytune.optim.adamw: parity with torch.optim.AdamW, the BERTAdam update, state_dict, validation.

``python -m pytest tests/test_optim.py -s -k parity`` prints the measured "max rel diff vs torch.optim.AdamW".
"""

from __future__ import annotations

import copy
import io
import math
import re

import pytest
import torch
from torch import nn

from steadytune.optim import AdamW, BertAdam, adamw

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


@pytest.mark.parametrize("foreach", [False, True])
def test_bertadam_matches_plain_transcription(foreach: bool) -> None:
    params = _make_params()
    groups = _groups(params)
    expected = _bertadam_reference(params, groups, 100)
    opt = BertAdam(groups, foreach=foreach)
    got = _run(opt, params, range(100))
    diff = _max_rel_diff(got, expected)
    normwise = max(
        ((x - y).abs().max() / y.abs().max()).item()
        for xs, ys in zip(got, expected, strict=True)
        for x, y in zip(xs, ys, strict=True)
    )
    print(f"\nBertAdam vs plain transcription: max rel diff {diff:.3e}, normwise {normwise:.3e} (foreach={foreach})")
    # The optimizer computes theta * (1 - lr * wd) - lr * m / (sqrt(v) + eps): algebraically the transcription but
    # rounded differently, a few ulps per step. Normwise that stays ~1e-14 over 100 steps; element-wise the
    # worst case is a weight passing near zero (|theta| ~ 3e-4 with an absolute difference ~1e-16 gives ~4e-13).
    assert normwise <= 1e-13
    assert diff <= 1e-11


# Constant gradients of several signs and magnitudes (one tensor, one value per element).
CONSTANT_GRAD = torch.tensor([-1e3, -2.5, -1e-3, 1e-3, 0.7, 1e2], dtype=DTYPE)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    ("cls", "expected_factor"),
    [
        (AdamW, 1.0),  # bias-corrected: lr * g / |g| = lr * sign(g)
        (BertAdam, 0.1 / math.sqrt(0.001)),  # (1 - beta1) / sqrt(1 - beta2) ≈ 3.162
    ],
)
def test_closed_form_first_step(cls: type[AdamW], expected_factor: float, foreach: bool) -> None:
    lr, eps = 1e-3, 1e-15
    theta0 = torch.linspace(-1.0, 1.0, CONSTANT_GRAD.numel(), dtype=DTYPE)
    p = nn.Parameter(theta0.clone())
    p.grad = CONSTANT_GRAD.clone()
    opt = cls([p], lr=lr, eps=eps, weight_decay=0.0, foreach=foreach)
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


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_state_dict_resume_is_bit_identical(cls: type[AdamW], foreach: bool) -> None:
    params = _make_params()
    opt = cls(_groups(params), foreach=foreach)
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
        opt2 = AdamW(groups, eps=0.1, bias_correction=cls is BertAdam, foreach=foreach)
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
    opt2 = cls([nn.Parameter(p.detach().clone()) for p in params])
    opt2.load_state_dict(state_dict)
    assert opt2.param_groups[0]["bias_correction"] is expected
    assert opt2.param_groups[0]["foreach"] is None


def test_sparse_gradients_rejected() -> None:
    emb = nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2, 3])).sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.is_sparse
    for foreach in (False, True):
        opt = AdamW(emb.parameters(), foreach=foreach)
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


def _print_parity() -> None:
    for foreach in (False, True):
        diff = max_rel_diff_vs_torch(foreach=foreach, torch_foreach=foreach)
        print(f"max rel diff vs torch.optim.AdamW: {diff:.3e} (foreach={foreach})")


if __name__ == "__main__":
    _print_parity()
