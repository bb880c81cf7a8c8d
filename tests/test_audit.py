"""Tests for steadytune.audit: verdicts, weight decay, eps placement and betas measured from outside an optimizer.

The audit only sees how parameters move, so the optimizers here include hand-written ones that torch does not ship:
the legacy Hugging Face AdamW (``correct_bias``; eps on the raw sqrt(v); decay after the update), Lion (sign-based),
a wrapper holding an inner optimizer, a SAM-like optimizer that needs a closure, and a float32-only one.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from steadytune.audit import AuditReport, audit_optimizer, resolve_optimizer
from steadytune.errors import UserInputError
from steadytune.optim import AdamW as SteadyAdamW
from steadytune.optim import BertAdam

CORRECTED, OMITTED, NOT_ADAM = "bias-corrected", "bias correction omitted", "not Adam-like"
PAPER = "bias correction omitted — with few samples this destabilises fine-tuning (Zhang et al. 2021, §4)"


class LegacyAdamW(torch.optim.Optimizer):
    """transformers' old ``AdamW`` (<= 4.x ``optimization.py``), arithmetic kept as it was.

    eps is added to the raw sqrt(v) and the bias correction folded into the step size; decoupled decay is applied
    after the update, ``p -= lr * wd * p``. ``correct_bias=False`` is BERTAdam.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, correct_bias=True):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "correct_bias": correct_bias}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                beta1, beta2 = group["betas"]
                state["step"] += 1
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
                step_size = group["lr"]
                if group["correct_bias"]:
                    step_size *= math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                p.addcdiv_(state["exp_avg"], denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


class PretrainedBertAdam(torch.optim.Optimizer):
    """pytorch-pretrained-bert's ``BertAdam`` (0.6, no warm-up): the BERTAdam of Zhang et al. in its original form.

    lr is required, the hyper-parameters are called b1/b2/e, each parameter's gradient is clipped to norm 1 inside
    step(), there is no bias correction, and the decay is added to the update: p -= lr * (m / (sqrt(v) + e) + wd * p).
    """

    def __init__(self, params, lr, b1=0.9, b2=0.999, e=1e-6, weight_decay=0.01, max_grad_norm=1.0):
        defaults = {"lr": lr, "b1": b1, "b2": b2, "e": e, "weight_decay": weight_decay, "max_grad_norm": max_grad_norm}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(next_m=torch.zeros_like(p), next_v=torch.zeros_like(p))
                if group["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(p, group["max_grad_norm"])
                state["next_m"].mul_(group["b1"]).add_(p.grad, alpha=1 - group["b1"])
                state["next_v"].mul_(group["b2"]).addcmul_(p.grad, p.grad, value=1 - group["b2"])
                update = state["next_m"] / (state["next_v"].sqrt() + group["e"]) + group["weight_decay"] * p
                p.add_(update, alpha=-group["lr"])


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al., 2023): the sign of an interpolation of momentum and gradient; |step| = lr from step 1."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(beta1 * m + (1 - beta1) * p.grad), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)


class Wrapped:
    """Not an Optimizer subclass: holds torch AdamW and delegates step/param_groups (like a lookahead shell)."""

    def __init__(self, params, **kwargs: Any) -> None:
        self.inner = torch.optim.AdamW(params, **kwargs)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    def step(self, closure=None):
        return self.inner.step(closure)


class NeedsClosure:
    """SAM-like: step(closure) is required and re-evaluates the loss before the inner Adam step."""

    def __init__(self, params, **kwargs: Any) -> None:
        self.inner = torch.optim.Adam(params, **kwargs)
        self.param_groups = self.inner.param_groups

    def step(self, closure):
        with torch.enable_grad():
            closure()
        return self.inner.step()


class Float32Only(torch.optim.AdamW):
    """Rejects float64 parameters in step(), as some fused/low-precision kernels do."""

    def step(self, closure=None):
        if any(p.dtype != torch.float32 for g in self.param_groups for p in g["params"]):
            raise RuntimeError("Float32Only supports float32 parameters only")
        return super().step(closure)


class StepRaises(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("kernel exploded\nsecond line of the traceback text")


def _audit(factory: Callable[..., Any], **hp: Any) -> AuditReport:
    start = time.perf_counter()
    report = audit_optimizer(factory, **hp)
    # The whole audit takes milliseconds (< 1 s even with torch's lazy first-step imports on 2 cores); 5 s keeps
    # the test from being flaky on a loaded machine.
    assert time.perf_counter() - start < 5.0
    assert 0 < report.seconds < 5.0
    return report


# RAdam divides by 1 - beta1**t and 1 - beta2**t like Adam. Its rectification makes the first steps (rho_t <= 5:
# steps 1..5 at beta2 = 0.999) un-normalised momentum SGD with a bias-corrected first moment, and later steps smaller
# than lr (rectifier < 1), never inflated like BERTAdam's. The audit therefore reads it from its first normalised
# step (6) on: Adam-like, and nearer the bias-corrected pattern than BERTAdam's -> "bias-corrected".
VERDICTS = [
    ("Adam", torch.optim.Adam, {}, CORRECTED),
    ("AdamW foreach", torch.optim.AdamW, {"foreach": True}, CORRECTED),
    ("AdamW per-tensor", torch.optim.AdamW, {"foreach": False}, CORRECTED),
    ("AdamW amsgrad", torch.optim.AdamW, {"amsgrad": True}, CORRECTED),
    ("NAdam", torch.optim.NAdam, {}, CORRECTED),
    ("RAdam", torch.optim.RAdam, {}, CORRECTED),
    ("SGD", torch.optim.SGD, {"lr": 0.01}, NOT_ADAM),
    ("SGD momentum", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, NOT_ADAM),
    ("SGD nesterov", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True}, NOT_ADAM),
    ("Adagrad", torch.optim.Adagrad, {}, NOT_ADAM),
    ("RMSprop", torch.optim.RMSprop, {}, NOT_ADAM),
    ("RMSprop momentum", torch.optim.RMSprop, {"momentum": 0.9}, NOT_ADAM),
    ("RMSprop centered", torch.optim.RMSprop, {"centered": True}, NOT_ADAM),
    ("Adafactor", torch.optim.Adafactor, {}, NOT_ADAM),
    ("Lion", Lion, {}, NOT_ADAM),
    ("LBFGS (needs a closure)", torch.optim.LBFGS, {}, NOT_ADAM),
    ("steadytune AdamW", SteadyAdamW, {"lr": 2e-5, "weight_decay": 0.01}, CORRECTED),
    ("steadytune BertAdam", BertAdam, {"lr": 2e-5}, OMITTED),
    ("legacy AdamW correct_bias=True", LegacyAdamW, {"correct_bias": True}, CORRECTED),
    ("legacy AdamW correct_bias=False", LegacyAdamW, {"correct_bias": False}, OMITTED),
    ("pytorch-pretrained-bert BertAdam", PretrainedBertAdam, {}, OMITTED),  # no lr given: the audit passes 1e-3
    ("wrapper around AdamW", Wrapped, {"lr": 1e-3}, CORRECTED),
    ("SAM-like, needs a closure", NeedsClosure, {"lr": 1e-3}, CORRECTED),
    ("float32-only AdamW", Float32Only, {}, CORRECTED),
    ("plain callable", lambda params: BertAdam(params, lr=1e-4), {}, OMITTED),
    ("functools.partial", functools.partial(torch.optim.AdamW, betas=(0.8, 0.99)), {}, CORRECTED),
]


@pytest.mark.parametrize("factory, hp, verdict", [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS])
def test_verdict(factory, hp, verdict):
    report = _audit(factory, **hp)
    assert report.verdict == verdict, report.format()
    assert report.adam_like == (verdict != NOT_ADAM)
    assert report.bias_correction == {CORRECTED: True, OMITTED: False, NOT_ADAM: None}[verdict]
    assert report.exit_code == (1 if verdict == OMITTED else 0)
    if verdict == NOT_ADAM:
        assert report.betas is None and report.eps_placement.startswith("not applicable")
        assert "not Adam-like: bias correction does not apply" in report.explanation
    json.dumps(report.to_dict(), allow_nan=False)  # JSON-safe
    assert report.verdict in report.format() and report.explanation in report.format()


def test_first_steps_match_adam_and_bertadam():
    beta1, beta2 = 0.9, 0.999
    corrected = _audit(torch.optim.AdamW)
    assert corrected.evidence["first_step_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert corrected.evidence["step_over_lr"] == pytest.approx([1.0] * 12, rel=1e-9)
    omitted = _audit(BertAdam, lr=1e-3, betas=(beta1, beta2))
    bert = [(1 - beta1**t) / math.sqrt(1 - beta2**t) for t in range(1, 13)]
    # eps = 1e-6 on sqrt(v) ~ 3e4 (the 1e6 probe gradient) changes the steps by ~3e-11 relative.
    assert omitted.evidence["step_over_lr"] == pytest.approx(bert, rel=1e-9)
    assert omitted.evidence["first_step_ratio"] == pytest.approx(0.1 / math.sqrt(0.001), rel=1e-9)  # 3.162
    assert omitted.optimizer == "steadytune.BertAdam"  # the shortest imported package that exports it
    assert omitted.explanation.startswith("steadytune.BertAdam: " + PAPER)
    assert "use steadytune.AdamW or torch.optim.AdamW" in omitted.explanation


def test_radam_starts_sgd_like_then_normalises():
    report = _audit(torch.optim.RAdam)
    ev = report.evidence
    assert ev["first_normalised_step"] == 6  # rho_t > 5 from step 6 at beta2 = 0.999
    assert ev["scale_ratio"][0] == pytest.approx(100.0, rel=1e-9)  # step 1 grows with a 100x gradient: SGD-like
    assert all(0 < s < 1 for s in ev["step_over_lr"][5:])  # rectified: smaller than lr, not inflated
    assert "not normalised" in report.explanation


@pytest.mark.parametrize(
    "factory, hp, expected",
    [
        (torch.optim.Adam, {"weight_decay": 0.01}, "coupled (L2)"),
        (torch.optim.AdamW, {"weight_decay": 0.01}, "decoupled, applied before the update"),
        (torch.optim.AdamW, {"weight_decay": 0.01, "foreach": True}, "decoupled, applied before the update"),
        (torch.optim.AdamW, {"weight_decay": 0.0}, "none"),
        (torch.optim.Adam, {}, "none"),
        (torch.optim.RAdam, {"weight_decay": 0.01}, "coupled (L2)"),
        (torch.optim.RAdam, {"weight_decay": 0.01, "decoupled_weight_decay": True}, "decoupled"),
        (LegacyAdamW, {"weight_decay": 0.01}, "decoupled, applied after the update"),
        (LegacyAdamW, {"weight_decay": 0.01, "correct_bias": False}, "decoupled, applied after the update"),
        (SteadyAdamW, {"weight_decay": 0.1}, "decoupled, applied before the update"),
        (BertAdam, {"lr": 1e-3, "weight_decay": 0.01}, "decoupled, applied before the update"),
        (PretrainedBertAdam, {"max_grad_norm": 0.0, "weight_decay": 0.01}, "decoupled, applied before the update"),
        (torch.optim.SGD, {"lr": 0.01, "weight_decay": 0.01}, "undetermined"),  # L2 = decoupled for plain SGD
    ],
)
def test_weight_decay(factory, hp, expected):
    report = _audit(factory, **hp)
    assert report.weight_decay.startswith(expected), report.format()
    if expected.startswith("decoupled"):
        lr, wd = report.evidence["lr"], hp["weight_decay"]
        assert report.evidence["decay_factor"] == pytest.approx(1 - lr * wd, rel=1e-12)
        assert report.evidence["zero_grad_shrink"] == pytest.approx([lr * wd] * 2, rel=1e-6)


def test_weight_decay_before_after_told_apart_at_fine_tuning_lr():
    # gap 1 - r = lr * wd = 2e-7; float64 probes resolve it.
    assert _audit(torch.optim.AdamW, lr=2e-5, weight_decay=0.01).weight_decay == (
        "decoupled, applied before the update (uses theta_{t-1})"
    )
    assert _audit(LegacyAdamW, lr=2e-5, weight_decay=0.01).weight_decay == (
        "decoupled, applied after the update (uses the updated theta)"
    )


@pytest.mark.parametrize(
    "factory, hp, placement, eps",
    [
        (torch.optim.AdamW, {}, "bias-corrected sqrt(v-hat)", 1e-8),
        (torch.optim.Adam, {"eps": 1e-6, "foreach": False}, "bias-corrected sqrt(v-hat)", 1e-6),
        (SteadyAdamW, {}, "bias-corrected sqrt(v-hat)", 1e-6),
        (LegacyAdamW, {}, "raw sqrt(v)", 1e-6),
        (LegacyAdamW, {"eps": 1e-8, "correct_bias": False}, "raw sqrt(v)", 1e-8),
        (BertAdam, {}, "raw sqrt(v)", 1e-6),
        (torch.optim.RAdam, {}, "raw sqrt(v)", 1e-8),  # torch RAdam: sqrt(1 - beta2**t) / (sqrt(v) + eps)
    ],
)
def test_eps_placement(factory, hp, placement, eps):
    report = _audit(factory, **hp)
    assert report.eps_placement.startswith(placement), report.format()
    assert report.evidence["eps_estimate"] == pytest.approx(eps, rel=0.01)


def test_eps_placement_undetermined_without_second_moment_memory():
    # Adamax's infinity norm behaves like beta2 = 0 here: sqrt(v-hat) = sqrt(v), so the two placements coincide.
    assert _audit(torch.optim.Adamax).eps_placement == "undetermined"


@pytest.mark.parametrize("factory", [torch.optim.AdamW, LegacyAdamW, BertAdam])
def test_betas_inferred(factory):
    report = _audit(factory, betas=(0.8, 0.99))
    assert report.betas == pytest.approx((0.8, 0.99), abs=1e-6)


def test_gradient_clipping_inside_step_is_tolerated():
    # Clipping to norm 1 scales every probe step alike; eps (1e-6) is then no longer negligible next to sqrt(v), so
    # the betas come out to ~1e-4 rather than to rounding, and before/after the update cannot be told apart.
    report = _audit(PretrainedBertAdam, lr=2e-5, b1=0.8, b2=0.99)
    assert report.verdict == OMITTED and report.betas == pytest.approx((0.8, 0.99), abs=1e-3)
    assert report.weight_decay.startswith("decoupled") and report.eps_placement.startswith("raw sqrt(v)")


def test_betas_of_rectified_and_nesterov_variants():
    assert _audit(torch.optim.RAdam, betas=(0.85, 0.995)).betas == pytest.approx((0.85, 0.995), abs=1e-6)
    # NAdam mixes the current gradient in (Nesterov), so its effective beta1 at step 2 is far below 0.9.
    nadam = _audit(torch.optim.NAdam).betas
    assert nadam is not None and nadam[0] < 0.9 and nadam[1] == pytest.approx(0.999, abs=1e-6)


def test_float32_fallback_and_closure_reported():
    assert _audit(Float32Only).evidence["dtype"] == "float32"
    assert _audit(torch.optim.AdamW).evidence["dtype"] == "float64"
    assert _audit(NeedsClosure).evidence["closure"] is True
    assert _audit(torch.optim.LBFGS).evidence["closure"] is True


def test_lr_read_back_or_defaulted():
    assert _audit(torch.optim.AdamW).evidence["lr"] == 1e-3  # read from param_groups
    assert _audit(torch.optim.AdamW, lr=2e-5).evidence["lr"] == 2e-5

    def needs_lr(params, lr):
        return torch.optim.Adam(params, lr=lr)

    report = _audit(needs_lr)
    assert report.evidence["lr"] == 1e-3 and report.verdict == CORRECTED


def test_step_raises_is_one_line_user_error():
    with pytest.raises(UserInputError) as info:
        audit_optimizer(StepRaises, lr=0.1)
    message = str(info.value)
    assert "\n" not in message
    assert "StepRaises failed in step(): RuntimeError: kernel exploded" in message


def test_constructor_failure_is_user_error():
    with pytest.raises(UserInputError, match=r"could not construct optimizer torch\.optim\.AdamW.*Invalid beta") as e:
        audit_optimizer(torch.optim.AdamW, betas=(1.5, 0.999))
    assert "\n" not in str(e.value)
    with pytest.raises(UserInputError, match="could not construct"):
        audit_optimizer(torch.optim.AdamW, no_such_option=1)


def test_not_an_optimizer_is_user_error():
    with pytest.raises(UserInputError, match="not an optimizer"):
        audit_optimizer(lambda params, **kw: object())
    with pytest.raises(UserInputError, match="not a class or callable"):
        audit_optimizer(42)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="positive, finite learning rate"):
        audit_optimizer(torch.optim.SGD, lr=0.0)


def test_report_format_and_dict():
    report = _audit(BertAdam, lr=2e-5, weight_decay=0.01)
    text = report.format()
    for label in ("verdict", "Adam-like", "bias correction", "weight decay", "eps placement", "betas"):
        assert label in text
    assert "3.162" in text  # first BERTAdam step, in units of lr
    d = report.to_dict()
    assert d["exit_code"] == 1 and d["verdict"] == OMITTED and d["betas"] == pytest.approx([0.9, 0.999])
    assert d["hyperparameters"] == {"lr": 2e-5, "weight_decay": 0.01}


def test_report_dict_is_strict_json_for_any_hyperparameter():
    tag = object()
    report = _audit(lambda params, tag=None, scale=None: torch.optim.AdamW(params), tag=tag,
                    scale=torch.tensor([1.0, math.nan]))  # fmt: skip
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["hyperparameters"] == {"tag": repr(tag), "scale": [1.0, None]}  # repr for the unknown, NaN as null
    assert d["betas"] == pytest.approx([0.9, 0.999]) and d["verdict"] == CORRECTED


def test_first_step_of_one_lr_is_not_enough():
    # With betas (0.9, 0.99) BERTAdam's first step is exactly lr, like Adam's; the later steps give it away.
    report = _audit(LegacyAdamW, correct_bias=False, betas=(0.9, 0.99))
    assert report.evidence["first_step_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert report.evidence["step_over_lr"][1] == pytest.approx(0.19 / math.sqrt(1 - 0.99**2), rel=1e-6)
    assert report.verdict == OMITTED


def test_user_module_spec_and_import_errors(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg_audit_xyz"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "opt.py").write_text(
        "import torch\n\n\nclass MyOpt(torch.optim.SGD):\n    class Inner(torch.optim.AdamW):\n        pass\n"
    )
    (pkg / "broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    my_opt = resolve_optimizer("mypkg_audit_xyz.opt.MyOpt")
    assert my_opt.__name__ == "MyOpt" and _audit(my_opt, lr=0.01).verdict == NOT_ADAM
    inner = resolve_optimizer("mypkg_audit_xyz.opt.MyOpt.Inner")  # a nested class, module path found by trying
    assert inner is resolve_optimizer("mypkg_audit_xyz.opt:MyOpt.Inner")
    assert _audit(inner).verdict == CORRECTED
    # A module that exists but fails to import is reported as such, not as a missing attribute of its package.
    with pytest.raises(UserInputError, match="cannot import 'mypkg_audit_xyz.broken'.*no_such_dependency_xyz"):
        resolve_optimizer("mypkg_audit_xyz.broken.Opt")
    with pytest.raises(UserInputError, match="'mypkg_audit_xyz.opt' has no attribute 'Nope'"):
        resolve_optimizer("mypkg_audit_xyz.opt.Nope")


@pytest.fixture
def failing_package(tmp_path, monkeypatch):
    """Package ``mypkg_audit_xyz2`` whose modules fail in different ways, imported afresh by each test."""
    pkg = tmp_path / "mypkg_audit_xyz2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "opt.py").write_text("import torch\n\n\nclass MyOpt(torch.optim.SGD):\n    pass\n\n\nvalue = 3\n")
    (pkg / "broken.py").write_text("import no_such_dependency_xyz\n")
    (pkg / "raises.py").write_text("raise RuntimeError('boom at import\\n  second line')\n")
    (pkg / "attr_error.py").write_text("import os\n\nos.nope\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg.name
    for name in [m for m in sys.modules if m.partition(".")[0] == pkg.name]:
        del sys.modules[name]


@pytest.mark.parametrize(
    "spec, match",
    [
        # Code that raises while importing, with or without ':', names the module and the error's first line.
        ("mypkg_audit_xyz2.raises.Opt", r"cannot import 'mypkg_audit_xyz2\.raises' .*: RuntimeError: boom at import$"),
        ("mypkg_audit_xyz2.raises:Opt", r"cannot import 'mypkg_audit_xyz2\.raises' .*: RuntimeError: boom at import$"),
        # An AttributeError inside the module's code is an import failure, not a missing attribute of the package.
        ("mypkg_audit_xyz2.attr_error.Opt", r"cannot import 'mypkg_audit_xyz2\.attr_error' .*AttributeError: .*nope"),
        ("mypkg_audit_xyz2.broken:Opt", r"cannot import 'mypkg_audit_xyz2\.broken' .*no_such_dependency_xyz"),
        # After ':' everything is an attribute: a submodule there is not imported.
        ("mypkg_audit_xyz2:broken.Opt", r"^'mypkg_audit_xyz2' has no attribute 'broken' \(optimizer "),
        ("mypkg_audit_xyz2.opt:MyOpt.Nope", r"^'mypkg_audit_xyz2\.opt\.MyOpt' has no attribute 'Nope' \(optimizer "),
        ("mypkg_audit_xyz2.opt.Nope.Deeper", r"^'mypkg_audit_xyz2\.opt' has no attribute 'Nope' \(optimizer "),
        ("mypkg_audit_xyz2.opt.value", "'mypkg_audit_xyz2.opt.value' is a int, not a class or callable"),
        ("mypkg_audit_xyz2.opt", "'mypkg_audit_xyz2.opt' is a module, not a class or callable"),
        # The first missing module is the one named.
        ("no_such_module_xyz.sub.Opt", r"cannot import 'no_such_module_xyz' .*No module named 'no_such_module_xyz'"),
    ],
)
def test_resolve_optimizer_user_module_errors(spec, match, failing_package):
    with pytest.raises(UserInputError, match=match) as info:
        resolve_optimizer(spec)
    assert "\n" not in str(info.value)
    assert f"{spec!r}" in str(info.value)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("torch.optim.AdamW", torch.optim.AdamW),
        ("torch.optim:AdamW", torch.optim.AdamW),
        ("steadytune.optim:BertAdam", BertAdam),
        ("steadytune.optim.adamw.AdamW", SteadyAdamW),
        (" steadytune.optim.BertAdam ", BertAdam),
    ],
)
def test_resolve_optimizer(spec, expected):
    assert resolve_optimizer(spec) is expected


@pytest.mark.parametrize(
    "spec, match",
    [
        ("AdamW", "not module:Class or module.Class"),
        ("", "not module:Class or module.Class"),
        ("torch.optim:", "not module:Class or module.Class"),
        ("no_such_module_xyz.Opt", "cannot import 'no_such_module_xyz'"),
        ("no_such_module_xyz:Opt", "cannot import 'no_such_module_xyz'"),
        ("torch.optim.NoSuchOptimizer", "'torch.optim' has no attribute 'NoSuchOptimizer'"),
        ("math:pi", "is a float, not a class or callable"),
    ],
)
def test_resolve_optimizer_errors(spec, match):
    with pytest.raises(UserInputError, match=match) as info:
        resolve_optimizer(spec)
    assert "\n" not in str(info.value)


# --- the command line: `steadytune audit` ---------------------------------------------------------------------


def _cli(argv, capsys):
    from steadytune.cli import main

    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes_and_json(capsys):
    code, out, _ = _cli(["torch.optim.AdamW", "--lr", "2e-5", "--weight-decay", "0.01"], capsys)
    assert code == 0 and "bias-corrected" in out and "decoupled" in out
    code, out, _ = _cli(["steadytune.optim:BertAdam", "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "bias correction omitted" and report["exit_code"] == 1
    assert report["evidence"]["step_over_lr"][0] == pytest.approx(0.1 / 0.001**0.5, rel=1e-6)
    code, out, _ = _cli(["torch.optim.SGD", "--lr", "0.1", "--option", "momentum=0.9"], capsys)
    assert code == 0 and "not Adam-like" in out
    code, out, _ = _cli([f"{__name__}:LegacyAdamW", "--lr", "1e-3", "--option", "correct_bias=False"], capsys)
    assert code == 1


def test_cli_audits_a_recipes_optimizer(capsys):
    assert _cli(["--recipe", "bertadam+llrd"], capsys)[0] == 1
    code, out, _ = _cli(["--recipe", "adam+llrd:0.9+lr=1e-4", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["hyperparameters"]["lr"] == 1e-4 and report["verdict"] == "bias-corrected"


@pytest.mark.parametrize(
    "argv, message",
    [
        ([f"{__name__}:StepRaises", "--lr", "0.1"], "failed in step()"),
        (["nope.Opt"], "cannot import 'nope'"),
        (["torch.optim.AdamW", "--lr", "-1"], "torch.optim.AdamW"),
        (["torch.optim.AdamW", "--option", "nonsense=1"], "nonsense"),
        (["torch.optim.AdamW", "--recipe", "adam"], "give an optimizer with its options, or --recipe"),
        (["--recipe", "bertadam+adam"], "contradict"),
        ([], "name an optimizer"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys):
    code, out, err = _cli(argv, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
