"""The CPU fast path: dropout from raw random bits, SDPA written out, and the mode that swaps them in."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steadytune.fastpath import attention, cpu_fastpath, dropout, sibling_projections


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_each_element_with_probability_1_minus_p(p):
    torch.manual_seed(0)
    n = 1_000_000
    y = dropout(torch.ones(n), p)
    kept = y != 0
    sd = math.sqrt(p * (1 - p) / (n / 2))
    # Even and odd positions come from the low and high halves of each int64: both halves must be uniform (the
    # default `random_()` range leaves the top bit 0, which would keep every odd element at p = 0.5).
    for half in (kept[0::2], kept[1::2]):
        assert abs(half.double().mean().item() - (1 - p)) < 5 * sd
    # neighbours are independent: P(both kept) = (1 - p)^2
    both = (kept[0::2] & kept[1::2]).double().mean().item()
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / (n / 2))
    # kept values are scaled by exactly 1 / (1 - p), like F.dropout
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1.0 / (1 - p)), rtol=0, atol=0)


def test_dropout_is_reproducible_from_the_seed_and_differs_across_seeds():
    x = torch.randn(4, 33, 7)
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(dropout(x, 0.3) != 0)
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(99)
    assert torch.equal(dropout(x, 0.3, generator=gen) != 0, masks[0])  # an explicit generator is the stream used


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_dropout_given_its_mask_is_torch_cpu_dropouts_arithmetic_both_ways(dtype):
    # torch's CPU dropout multiplies by a mask made in x's dtype, 1 / (1 - p) rounded there: read it off F.dropout
    torch_scale = F.dropout(torch.ones(10_000, dtype=dtype), 0.25).max()
    if dtype == torch.bfloat16:
        assert torch_scale.item() == 1.3359375  # 4/3 rounded to bf16, so the comparison below can tell
    torch.manual_seed(1)
    x = (torch.rand(5, 11, dtype=torch.float64) + 0.5).to(dtype).requires_grad_()  # no zeros in x
    y = dropout(x, 0.25)
    assert y.dtype == dtype and y.shape == x.shape
    g = torch.randn(5, 11, dtype=torch.float64).to(dtype)
    y.backward(g)
    keep = y.detach() != 0
    assert 0 < keep.sum() < keep.numel()
    assert torch.equal(y.detach(), torch.where(keep, x.detach() * torch_scale, 0))
    assert torch.equal(x.grad, torch.where(keep, g * torch_scale, 0))


@pytest.mark.parametrize("low", [0, 1 << 23, (1 << 24) - 1])
def test_masks_compare_all_32_bits_though_most_elements_draw_8(low):
    from steadytune.fastpath import _random_below

    n, top = 1 << 22, 0xB7
    threshold = (top << 24) | low  # the low 24 bits only matter for elements whose top 8 bits tie with 0xB7
    keep = _random_below(n, threshold, torch.Generator().manual_seed(7))
    p = threshold / 2**32
    # 5 sd here is 0.0012; a tie always kept or always dropped would be off by up to 1/256 = 0.0039
    assert abs(keep.double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    # The same seed with the lowest low bits keeps a subset: only the tied elements (~1/256 of them) can change.
    floor = _random_below(n, top << 24, torch.Generator().manual_seed(7))
    assert not (floor & ~keep).any()
    changed = (keep & ~floor).sum().item()
    assert abs(changed - n / 256 * low / 2**24) < 5 * math.sqrt(n / 256) + 1


def test_mask_thresholds_at_the_ends_of_the_32_bit_range():
    from steadytune.fastpath import _random_below

    gen = torch.Generator().manual_seed(0)  # a fixed stream: with p = 2**-32 a random one could drop 1 in ~43k runs
    assert not _random_below(100_000, 0, gen).any()
    assert _random_below(100_000, 2**32 - 1, gen).all()  # drops only u = 2**32 - 1: p = 2**-32


def test_dropout_probabilities_below_the_32_bit_resolution_keep_everything():
    x = torch.randn(1000)
    torch.testing.assert_close(dropout(x, 2**-40), x / (1 - 2**-40), rtol=0, atol=0)
    assert torch.equal(dropout(x, 1 - 2**-40), torch.zeros_like(x))


def test_dropout_edge_probabilities_and_bad_values():
    x = torch.randn(3, 4)
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=str(bad)):
            dropout(x, bad)


def _qkv(b=2, h=3, lq=5, lk=6, d=4, hk=None, dtype=torch.float64):
    torch.manual_seed(0)
    q = torch.randn(b, h, lq, d, dtype=dtype, requires_grad=True)
    k = torch.randn(b, hk or h, lk, d, dtype=dtype, requires_grad=True)
    v = torch.randn(b, hk or h, lk, d, dtype=dtype, requires_grad=True)
    return q, k, v


def _masks():
    bool_mask = torch.ones(2, 1, 5, 6, dtype=torch.bool)
    bool_mask[0, :, :, 4:] = False  # padding keys of the first example
    additive = torch.zeros(2, 1, 5, 6, dtype=torch.float64).masked_fill(~bool_mask, torch.finfo(torch.float64).min)
    return {"none": None, "bool": bool_mask, "additive": additive}


@pytest.mark.parametrize("mask", ["none", "bool", "additive"])
@pytest.mark.parametrize("extra", [{}, {"scale": 0.3}, {"is_causal": True}])
def test_attention_without_dropout_matches_torch_sdpa_and_its_gradients(mask, extra):
    if mask != "none" and extra.get("is_causal"):
        # causal plus a padding mask: torch takes only one, so compare against the combined mask
        causal = torch.ones(5, 6, dtype=torch.bool).tril()
        m = _masks()["bool"] & causal
        ref_kw = {"attn_mask": m}
    else:
        m = _masks()[mask]
        ref_kw = {"attn_mask": m, **extra}
    q, k, v = _qkv()
    ours = attention(q, k, v, attn_mask=_masks()[mask], **extra)
    ours.sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    q2, k2, v2 = _qkv()
    ref = F.scaled_dot_product_attention(q2, k2, v2, **ref_kw)
    ref.sum().backward()
    torch.testing.assert_close(ours, ref)
    for a, b in zip(grads, (q2.grad, k2.grad, v2.grad)):
        torch.testing.assert_close(a, b)


def test_attention_grouped_query_heads():
    q, k, v = _qkv(h=4, hk=2)
    ours = attention(q, k, v, enable_gqa=True)
    ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.testing.assert_close(ours, ref)


def test_attention_dropout_is_softmax_then_fast_dropout_then_values():
    q, k, v = _qkv()
    mask = _masks()["bool"]
    torch.manual_seed(7)
    ours = attention(q, k, v, attn_mask=mask, dropout_p=0.4)
    scores = (q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, torch.finfo(torch.float64).min)  # 1/sqrt(d=4)
    torch.manual_seed(7)
    expected = dropout(torch.softmax(scores, -1), 0.4) @ v
    torch.testing.assert_close(ours, expected)


def test_mode_routes_cpu_training_dropout_and_attention_only():
    x = torch.randn(64, 64, requires_grad=True)
    module = nn.Dropout(0.5).train()
    with cpu_fastpath():
        torch.manual_seed(0)
        functional = F.dropout(x, 0.5)
        torch.manual_seed(0)
        via_module = module(x)
        not_training = F.dropout(x, 0.5, training=False)
    torch.manual_seed(0)
    ours = dropout(x, 0.5)
    torch.manual_seed(0)
    native = F.dropout(x, 0.5)
    assert torch.equal(functional, ours) and torch.equal(via_module, ours)
    assert not torch.equal(ours, native)  # a different stream, so the test can tell the two apart
    assert torch.equal(not_training, x)

    q, k, v = _qkv(dtype=torch.float32)
    with cpu_fastpath():
        torch.manual_seed(0)
        routed = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
        with torch.no_grad():  # inference is torch's own kernel (no dropout asked, so equal either way)
            inference = F.scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    assert torch.equal(routed, attention(q, k, v, dropout_p=0.5))
    torch.testing.assert_close(inference, F.scaled_dot_product_attention(q, k, v))
    with cpu_fastpath(enabled=False):
        torch.manual_seed(0)
        assert torch.equal(F.dropout(x, 0.5), native)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_tiny_bert_trains_the_same_without_dropout_and_differently_with_it(tiny_model_dir, impl):
    """A real transformers model under the mode, q/k/v projections fused: with dropout 0 the forward and gradients
    match torch's kernels and separate projections; with dropout the loss is finite and reproducible from the seed."""
    from transformers import AutoModelForSequenceClassification

    def run(dropout_prob: float, fast: bool, seed: int = 0):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_model_dir, num_labels=2, attn_implementation=impl, hidden_dropout_prob=dropout_prob,
            attention_probs_dropout_prob=dropout_prob, torch_dtype=torch.float64,
        ).train()  # fmt: skip
        ids = torch.randint(5, 40, (3, 9))
        mask = torch.ones_like(ids)
        mask[0, 6:] = 0
        projections = sibling_projections(model)
        assert len(projections) == 2  # one (query, key, value) per layer
        torch.manual_seed(seed)
        with cpu_fastpath(fast, projections=projections if fast else ()):
            loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss_native, grads_native = run(0.0, fast=False)
    loss_fast, grads_fast = run(0.0, fast=True)
    torch.testing.assert_close(loss_fast, loss_native)
    for a, b in zip(grads_fast, grads_native, strict=True):
        torch.testing.assert_close(a, b)

    first, _ = run(0.2, fast=True)
    again, _ = run(0.2, fast=True)
    other_seed, _ = run(0.2, fast=True, seed=1)
    assert torch.isfinite(first) and torch.equal(first, again) and not torch.equal(first, other_seed)


class _Block(nn.Module):
    """Three projections of one width, as an attention block has them; `forward` feeds them `inputs` in turn."""

    def __init__(self, names=("query", "key", "value"), bias=True):
        super().__init__()
        for name, out in zip(names, (6, 6, 4), strict=True):
            setattr(self, name, nn.Linear(5, out, bias=bias, dtype=torch.float64))
        self.names = names

    def forward(self, *inputs, order=(0, 1, 2)):
        return [getattr(self, self.names[i])(x) for i, x in zip(order, inputs, strict=True)]


@pytest.mark.parametrize("names", [("query", "key", "value"), ("q_lin", "k_lin", "v_lin")])
@pytest.mark.parametrize("bias", [True, False])
def test_projections_of_one_input_run_as_one_product_in_any_order(names, bias):
    block = _Block(names, bias)
    (group,) = sibling_projections(block)
    assert [id(m) for m in group] == [id(getattr(block, n)) for n in names]
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)

    for order in [(0, 1, 2), (2, 0, 1)]:
        expected = block(x, x, x, order=order)
        grads = torch.autograd.grad(sum(o.square().sum() for o in expected), [x, *block.parameters()])
        with cpu_fastpath(projections=[group]):
            got = block(x, x, x, order=order)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        again = torch.autograd.grad(sum(o.square().sum() for o in got), [x, *block.parameters()])
        for a, b in zip(again, grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # one product: below the fast path's mode, F.linear is called once, with the three weights stacked
    shapes = []

    class Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.linear:
                shapes.append(tuple(args[1].shape))
            return func(*args, **(kwargs or {}))

    with Spy(), cpu_fastpath(projections=[group]):
        block(x, x, x)
    assert shapes == [(16, 5)]


def test_projections_on_different_inputs_run_one_by_one():
    """Cross-attention's pattern (key and value read another input): exact results, and no more fusing."""
    block = _Block()
    (group,) = sibling_projections(block)
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    plain = block(x, y, y)
    with cpu_fastpath(projections=[group]):
        first, second = block(x, y, y), block(x, y, y)
    for a, b in zip(first, plain, strict=True):  # query came from the fused product (its rounding may differ)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert all(torch.equal(a, b) for a, b in zip(second, plain, strict=True))  # then layer by layer, as torch


def test_sibling_projections_leave_out_mixout_and_mismatched_layers(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    from steadytune.mixout import apply_mixout

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    assert len(sibling_projections(model)) == 2
    apply_mixout(model, 0.1)
    assert sibling_projections(model) == []  # MixLinear mixes its weight before the product
    block = _Block()
    block.value = nn.Linear(5, 4, bias=False, dtype=torch.float64)  # one without a bias
    assert sibling_projections(block) == []


def test_fused_projections_leave_inference_logits_unchanged(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).eval()
    ids = torch.randint(5, 40, (3, 9))
    widths = []

    class Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.linear:
                widths.append(args[1].shape[0])
            return func(*args, **(kwargs or {}))

    with torch.inference_mode():
        plain = model(input_ids=ids).logits
        with Spy(), cpu_fastpath(projections=sibling_projections(model)):
            fused = model(input_ids=ids).logits
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    assert widths.count(3 * 32) == 2  # one q/k/v product per layer, also under inference_mode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_retained_memory_is_reused_without_page_faults():
    """Like a training step: 160 MB of 4 MB tensors live at once, then all freed, ten times. Each case runs in a
    fresh interpreter that first pins glibc's thresholds at their start-up values (128 KiB; left alone, glibc moves
    them as it goes, and whether it then trims depends on the address-space layout): every round faults all its
    pages in again, unless `retain_freed_memory` raises them."""
    script = (
        "import ctypes, resource, sys, torch\n"
        "from steadytune.fastpath import retain_freed_memory\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "assert libc.mallopt(-3, 128 << 10) and libc.mallopt(-1, 128 << 10)  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD\n"
        "if sys.argv[1] == 'retain': assert retain_freed_memory() and retain_freed_memory()\n"
        "def step(): return [torch.ones(1 << 20) for _ in range(40)]\n"
        "for _ in range(3): step()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(10): step()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {
        mode: int(
            subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True).stdout
        )  # fmt: skip
        for mode in ("default", "retain")
    }
    pages = 10 * 40 * (4 << 20) // 4096
    assert faults["default"] > pages // 2, faults
    assert faults["retain"] < pages // 100, faults
