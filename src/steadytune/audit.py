"""Audit an optimizer from the outside: is it Adam with bias correction, or BERTAdam (Adam without it)?

Zhang et al., "Revisiting Few-sample BERT Fine-tuning" (ICLR 2021, §4) found that BERT's original optimizer omits
Adam's bias correction and that this destabilises few-sample fine-tuning; many code bases (the TF BERT release,
old Hugging Face ``AdamW(correct_bias=False)``) still do. :func:`audit_optimizer` tells which one a user has by
running small controlled probes and looking only at how the parameters move. Along the way it measures whether the
optimizer is Adam-like at all, its weight decay (none, L2, or decoupled before or after the update), where eps is
added (to sqrt(v-hat) as torch does, or to the raw sqrt(v) as old HF/TF BERT did) and the effective betas.

This module is the public side: naming an optimizer (:func:`resolve_optimizer`), running the audit and wording the
:class:`AuditReport`. The probes, and what each measurement means, are described and implemented in
:mod:`steadytune.audit_probes`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from .audit_probes import MIN_BETA1, first_line, format_kwargs, probe_optimizer
from .errors import UserInputError
from .files import json_safe

__all__ = ["AuditReport", "audit_optimizer", "resolve_optimizer"]

_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?")  # module.path[:Attr.path]

CORRECTED, OMITTED, NOT_ADAM = "bias-corrected", "bias correction omitted", "not Adam-like"
PAPER_ADVICE = (
    "bias correction omitted — with few samples this destabilises fine-tuning (Zhang et al. 2021, §4); "
    "use steadytune.AdamW or torch.optim.AdamW"
)


@dataclasses.dataclass
class AuditReport:
    """What :func:`audit_optimizer` found, with the measured numbers behind each finding.

    Attributes:
        optimizer: display name of the factory (e.g. ``torch.optim.AdamW``).
        hyperparameters: the keyword arguments given to the factory.
        adam_like: normalised steps with an Adam first moment and second moment (m / sqrt(v) fits).
        bias_correction: ``True``/``False`` for Adam-like optimizers, ``None`` otherwise.
        weight_decay: ``"decoupled"`` (with before/after the update when told apart), ``"coupled (L2)"``,
            ``"none"`` or ``"undetermined ..."``.
        eps_placement: ``"bias-corrected sqrt(v-hat) ..."``, ``"raw sqrt(v) ..."``, ``"undetermined"`` or
            ``"not applicable ..."``.
        betas: the effective (beta1, beta2) at the probed step, ``None`` when not Adam-like.
        evidence: the numbers: ``step_over_lr`` (steps 1..12 on a constant gradient, in units of lr),
            ``first_step_ratio``, ``bertadam_steps`` (what BERTAdam would take), ``scale_ratio`` (step ratio for a
            100x gradient), ``first_normalised_step``, ``flip_ratio``, ``fit_error``, ``zero_grad_shrink``,
            ``decay_factor``, ``effective_eps``, ``eps_ratio``, ``eps_estimate``, log residuals of both models.
        verdict: ``"bias-corrected"``, ``"bias correction omitted"`` or ``"not Adam-like"``.
        explanation: one paragraph for people.
        seconds: wall time of the audit.
    """

    optimizer: str
    hyperparameters: dict[str, Any]
    adam_like: bool
    bias_correction: bool | None
    weight_decay: str
    eps_placement: str
    betas: tuple[float, float] | None
    evidence: dict[str, Any]
    verdict: str
    explanation: str
    seconds: float

    def __repr__(self) -> str:
        """The verdict and the key findings in a few lines (`format()` or `print(report)` shows the evidence)."""
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        betas = None if self.betas is None else tuple(float(f"{b:.6g}") for b in self.betas)
        return (f"AuditReport(optimizer={self.optimizer!r}{f', {hp}' if hp else ''}, verdict={self.verdict!r}, "
                f"exit_code={self.exit_code},\n"
                f"  adam_like={self.adam_like}, bias_correction={self.bias_correction}, betas={betas},\n"
                f"  weight_decay={self.weight_decay!r}, eps_placement={self.eps_placement!r})")  # fmt: skip

    def __str__(self) -> str:
        return self.format()

    @property
    def exit_code(self) -> int:
        """1 when bias correction is omitted, else 0 (bias-corrected, or not Adam-like so it does not apply)."""
        return 1 if self.verdict == OMITTED else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite numbers become ``None``), with ``exit_code``."""
        out = {f.name: json_safe(getattr(self, f.name), default=repr) for f in dataclasses.fields(self)}
        return out | {"exit_code": self.exit_code}

    def format(self) -> str:
        """Human-readable report: one line per finding with its evidence, then the explanation."""
        ev, hp = self.evidence, ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        steps = ev.get("step_over_lr", [])
        flip = (
            f", sign-flip ratio {_g(ev['flip_ratio'])} (no first moment: -1), fit error {_g(ev['fit_error'])}"
            if "flip_ratio" in ev
            else ""
        )
        eps = (
            f"  effective eps ratio {_g(ev['eps_ratio'])} (on sqrt(v-hat): {_g(ev['eps_ratio_if_sqrt_vhat'])}, "
            f"on raw sqrt(v): 1), eps ~ {_g(ev.get('eps_estimate'))}"
            if "eps_ratio" in ev
            else ""
        )
        rows = [
            ("optimizer", f"{self.optimizer}({hp})  lr {_g(ev.get('lr'))}  {ev.get('dtype')}"
                          f"{'  (step needs a closure)' if ev.get('closure') else ''}"),
            ("verdict", f"{self.verdict}  (exit code {self.exit_code})"),
            ("Adam-like", f"{'yes' if self.adam_like else 'no'}  step ratio for a 100x gradient "
                          f"{_g(ev.get('scale_ratio_last'))} (SGD: 100), first normalised step "
                          f"{ev.get('first_normalised_step')}{flip}"),
            ("bias correction", f"{_yes_no(self.bias_correction)}  step/lr on a constant gradient, t=1..{len(steps)}: "
                                + " ".join(_g(s) for s in steps)),
            ("", "bias-corrected Adam: 1 each; BERTAdam: "
                 + " ".join(_g(s) for s in ev.get("bertadam_steps", [])) if self.adam_like else ""),
            ("weight decay", f"{self.weight_decay}  zero-gradient shrink per step of weights c and 10c: "
                             + " ".join(_g(s) for s in ev.get("zero_grad_shrink", []))),
            ("eps placement", f"{self.eps_placement}{eps}"),
            ("betas", "undetermined" if self.betas is None else f"{_g(self.betas[0])}, {_g(self.betas[1])}"),
            ("audit time", f"{self.seconds:.3f} s"),
        ]  # fmt: skip
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}".rstrip() for k, v in rows if v]
        return "\n".join([*lines, "", self.explanation])


def resolve_optimizer(spec: str) -> Callable[..., Any]:
    """Import ``module:Class`` or ``module.Class`` (e.g. ``torch.optim.AdamW``, ``steadytune.optim:BertAdam``).

    Without ``:`` the module is the longest dotted prefix that imports and the rest are attributes, so nested classes
    work (``pkg.mod.Outer.Inner``). Raises :class:`UserInputError` (one line) for a malformed spec, a module that is
    missing or raises while importing, a missing attribute, or a result that is not callable.
    """
    spec = spec.strip()
    if not _SPEC.fullmatch(spec) or ("." not in spec and ":" not in spec):
        raise UserInputError(f"optimizer spec {spec!r} is not module:Class or module.Class (e.g. torch.optim.AdamW)")
    try:
        obj = pkgutil.resolve_name(spec)
    except Exception as e:  # a user's module can fail to import in any way
        raise UserInputError(_unresolved(spec, e)) from None
    if not callable(obj):
        raise UserInputError(f"optimizer {spec!r} is a {type(obj).__name__}, not a class or callable")
    return obj


def _unresolved(spec: str, error: Exception) -> str:
    """Why ``pkgutil.resolve_name(spec)`` raised ``error``, in one line: the module that failed, or the attribute.

    resolve_name imports the module before ``:``; without ``:`` it imports each dotted prefix in turn until one
    raises ImportError and looks the rest up as attributes, while any other exception from a module's code
    propagates. A module that failed to import is not left in ``sys.modules``: the first prefix missing there is
    the one that failed.
    """
    module, colon, attrs = spec.partition(":")
    names = module.split(".")
    k = next((i for i in range(len(names)) if ".".join(names[: i + 1]) not in sys.modules), len(names))
    if k < len(names) and (colon or k == 0 or not isinstance(error, AttributeError)):
        return f"cannot import {'.'.join(names[: k + 1])!r} for optimizer {spec!r}: {first_line(error)}"
    path = ".".join(names[:k])
    obj: Any = sys.modules[path]
    for i, attr in enumerate(attrs.split(".") if colon else names[k:]):
        if not hasattr(obj, attr):
            if i == 0 and not colon:  # resolve_name met an ImportError importing `path.attr`: absent or failing?
                submodule = f"{path}.{attr}"
                try:
                    importlib.import_module(submodule)  # runs the failing module's code again, to show its error
                except Exception as e:
                    if not (isinstance(e, ModuleNotFoundError) and e.name == submodule):
                        return f"cannot import {submodule!r} for optimizer {spec!r}: {first_line(e)}"
            return f"{path!r} has no attribute {attr!r} (optimizer {spec!r})"
        obj, path = getattr(obj, attr), f"{path}.{attr}"
    return f"cannot resolve optimizer {spec!r}: {first_line(error)}"


def audit_optimizer(factory: Callable[..., Any], **hyperparameters: Any) -> AuditReport:
    """Probe ``factory(params, **hyperparameters)`` and report whether it is Adam with or without bias correction.

    Raises :class:`UserInputError` when the optimizer cannot be built, is not optimizer-like (``step`` and
    ``param_groups``), or fails in ``step()``.
    """
    start = time.perf_counter()
    name = _display_name(factory)
    if not callable(factory):
        raise UserInputError(f"optimizer {name} is a {type(factory).__name__}, not a class or callable")
    found = probe_optimizer(factory, hyperparameters, name)
    verdict = NOT_ADAM if not found.adam_like else CORRECTED if found.bias_correction else OMITTED
    explanation = _explain(name, verdict, found.evidence)
    seconds = time.perf_counter() - start
    return AuditReport(name, dict(hyperparameters), found.adam_like, found.bias_correction, found.weight_decay,
                       found.eps_placement, found.betas, found.evidence, verdict, explanation, seconds)  # fmt: skip


def _explain(name: str, verdict: str, ev: dict[str, Any]) -> str:
    """One paragraph for people: the verdict, and the measured steps (or the reason it is not Adam-like)."""
    s, t0, beta1 = ev["step_over_lr"], ev["first_normalised_step"], ev["inferred_betas"][0]
    n = len(s)  # constant-gradient steps probed
    if verdict == NOT_ADAM:
        if t0 is None:
            why = (f"its steps scale with the gradient ({_g(ev['scale_ratio_last'])}x for a 100x gradient at step "
                   f"{n}), as SGD's do")  # fmt: skip
        elif beta1 is not None and beta1 <= MIN_BETA1:
            why = (f"it has no first moment: after a sign flip its step mirrors the previous one (ratio "
                   f"{_g(ev.get('flip_ratio'))}), as RMSprop, Adagrad and sign methods like Lion do")  # fmt: skip
        else:
            why = f"its steps do not follow Adam's m / sqrt(v) (prediction error {_g(ev.get('fit_error'))})"
        return f"{name} is not Adam-like: bias correction does not apply; {why}."
    bert = ev["bertadam_steps"]
    warm = (f" Its first {t0 - 1} step(s) are not normalised (they scale with the gradient, like RAdam's "
            f"rectified start), so the verdict uses steps {t0}..{n}." if t0 and t0 > 1 else "")  # fmt: skip
    near = min(ev["log_residual_corrected"], ev["log_residual_uncorrected"])
    # Within 1.5x of a pattern counts as following it: NAdam's momentum schedule keeps it within 0.73..1.06 x lr.
    loose = " Its steps follow neither pattern closely; this is the nearer one." if near > math.log(1.5) else ""
    measured = (f"On a constant gradient it moves each weight by {_g(s[0])}, {_g(s[1])}, ..., {_g(s[-1])} x lr "
                f"over steps 1..{n}; bias-corrected Adam moves 1 x lr each step, BERTAdam with the measured betas "
                f"{_g(bert[0])}, {_g(bert[1])}, ..., {_g(bert[-1])} x lr.")  # fmt: skip
    if verdict == OMITTED:
        return f"{name}: {PAPER_ADVICE}. {measured}{warm}{loose}"
    return f"{name} applies Adam's bias correction. {measured}{warm}{loose}"


def _display_name(factory: Any) -> str:
    func = getattr(factory, "func", None)  # functools.partial
    if func is not None and hasattr(factory, "keywords"):
        return f"partial({_display_name(func)}, {format_kwargs(factory.keywords)})"
    qualname = getattr(factory, "__qualname__", None)
    if qualname is None:
        return type(factory).__name__
    parts = str(getattr(factory, "__module__", "") or "").split(".")
    for i in range(1, len(parts) + 1):  # the shortest already-imported package that exports it: torch.optim.AdamW
        if getattr(sys.modules.get(".".join(parts[:i])), qualname, None) is factory:
            return f"{'.'.join(parts[:i])}.{qualname}"
    return f"{'.'.join(parts)}.{qualname}" if parts[0] else qualname


def _g(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def _yes_no(x: bool | None) -> str:
    return "not applicable" if x is None else "applied" if x else "omitted"
