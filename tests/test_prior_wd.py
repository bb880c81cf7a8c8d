"""Pre-trained weight decay: θ ← θ − lr·λ·(θ − θ⁽⁰⁾) before each Adam update, θ⁽⁰⁾ = the weights at the first step."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from steadytune.optim import AdamW, BertAdam

SHAPES = [(5, 4), (4,), (3, 3, 2), (7,)]


def _params(seed: int = 0) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in SHAPES]


def _groups(params: list[nn.Parameter]) -> list[dict]:
    return [
        {"params": params[:2], "lr": 1e-2, "weight_decay": 0.5},
        {"params": params[2:], "lr": 3e-3, "weight_decay": 2.0, "betas": (0.8, 0.99)},
    ]


def _set_grads(params: list[nn.Parameter], step: int) -> None:
    gen = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        p.grad = 10.0 ** (i - 2) * torch.randn(p.shape, generator=gen, dtype=p.dtype) + 0.3 * p.detach()


@pytest.mark.parametrize("foreach", [False, True])
def test_matches_torch_adamw_plus_decay_toward_the_first_step_weights(foreach):
    ours, ref = _params(), _params()
    opt = AdamW(_groups(ours), eps=1e-8, prior_weight_decay=True, foreach=foreach)
    ref_groups = _groups(ref)
    ref_opt = torch.optim.AdamW([{**g, "weight_decay": 0.0} for g in ref_groups], eps=1e-8)
    priors = [p.detach().clone() for p in ref]
    worst = 0.0
    for t in range(60):
        _set_grads(ours, t)
        _set_grads(ref, t)
        with torch.no_grad():  # the reference: decoupled decay toward θ⁽⁰⁾ on θ_{t-1}, then plain Adam
            for g in ref_groups:
                for p in g["params"]:
                    prior = priors[next(i for i, q in enumerate(ref) if q is p)]
                    p.sub_(g["lr"] * g["weight_decay"] * (p - prior))
        opt.step()
        ref_opt.step()
        for a, b in zip(ours, ref, strict=True):
            worst = max(worst, ((a - b).abs() / b.abs()).max().item())
    assert worst < 1e-12
    # and it is not plain decay: the same run decaying toward zero ends elsewhere
    plain = _params()
    plain_opt = AdamW(_groups(plain), eps=1e-8, foreach=foreach)
    for t in range(60):
        _set_grads(plain, t)
        plain_opt.step()
    assert max((a - b).abs().max().item() for a, b in zip(ours, plain, strict=True)) > 1e-3


@pytest.mark.parametrize("cls", [AdamW, BertAdam])
def test_foreach_and_per_tensor_agree(cls):
    a, b = _params(), _params()
    oa = cls(_groups(a), prior_weight_decay=True, foreach=False)
    ob = cls(_groups(b), prior_weight_decay=True, foreach=True)
    for t in range(20):
        _set_grads(a, t)
        _set_grads(b, t)
        oa.step()
        ob.step()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=0)


@pytest.mark.parametrize("foreach", [False, True])
def test_prior_is_the_weights_at_the_first_step_and_pulls_back_toward_them(foreach):
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = AdamW([p], lr=0.1, weight_decay=0.5, prior_weight_decay=True, foreach=foreach)
    with torch.no_grad():
        p.fill_(2.0)  # e.g. re-initialised after the optimizer was built: θ⁽⁰⁾ is taken at the first step
    p.grad = torch.zeros_like(p)  # zero gradient: Adam's own update is exactly 0
    opt.step()
    torch.testing.assert_close(opt.state[p]["prior"], torch.full((3,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(p.detach(), torch.full((3,), 2.0, dtype=torch.float64))  # θ = θ⁽⁰⁾: no pull
    with torch.no_grad():
        p.add_(1.0)  # now 1 away from the prior
    opt.step()
    # θ ← θ − lr·λ·(θ − θ⁽⁰⁾) = 3 − 0.1·0.5·1
    torch.testing.assert_close(p.detach(), torch.full((3,), 3.0 - 0.05, dtype=torch.float64), rtol=0, atol=1e-15)


def test_groups_without_weight_decay_keep_no_prior_and_match_plain_adamw():
    a, b = _params(), _params()
    groups = [{"params": a[:2], "weight_decay": 0.0}, {"params": a[2:], "weight_decay": 0.1}]
    opt = AdamW(groups, lr=1e-2, prior_weight_decay=True)
    ref = AdamW([{"params": b[:2], "weight_decay": 0.0}], lr=1e-2)
    for t in range(5):
        _set_grads(a, t)
        _set_grads(b, t)
        opt.step()
        ref.step()
    assert all("prior" not in opt.state[p] for p in a[:2]) and all("prior" in opt.state[p] for p in a[2:])
    for x, y in zip(a[:2], b[:2], strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_round_trip_keeps_the_prior(foreach):
    a, b = _params(), _params()
    oa = AdamW(_groups(a), prior_weight_decay=True, foreach=foreach)
    ob = AdamW(_groups(b), prior_weight_decay=True, foreach=foreach)
    for t in range(5):
        _set_grads(a, t)
        _set_grads(b, t)
        oa.step()
        ob.step()
    buf = io.BytesIO()
    torch.save(ob.state_dict(), buf)
    buf.seek(0)
    resumed = AdamW(_groups(b), prior_weight_decay=False, foreach=foreach)  # the saved groups' flag wins
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert all(g["prior_weight_decay"] for g in resumed.param_groups)
    for t in range(5, 10):
        _set_grads(a, t)
        _set_grads(b, t)
        oa.step()
        resumed.step()
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
