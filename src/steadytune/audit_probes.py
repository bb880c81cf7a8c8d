r"""The probes behind :func:`steadytune.audit.audit_optimizer`, and what each measurement means.

Only how the parameters move is read: no state names, no class names, no ``param_groups`` keys except reading back
``lr``. Each probe uses a fresh 1-D parameter (float64 when the optimizer takes it) and a fresh optimizer, sets
``p.grad`` by hand (also inside a closure when ``step`` needs one) and writes a step as
:math:`s_t = (r\,\theta_{t-1} - \theta_t) / \gamma`, with :math:`r` the measured decoupled decay.

1. *Adam-like?* Adam's step is (i) invariant to the gradient's scale (SGD's grows with it) and (ii) after ``W``
   steps of a constant gradient ``G``, a coordinate given ``x G`` moves by :math:`\propto (\tau + x) /
   \sqrt{\sigma + x^2}` with :math:`\tau = \sum_{k=1}^{W} \beta_1^k`, :math:`\sigma = \sum_{k=1}^{W} \beta_2^k`
   (bias corrections, rectifiers and ``lr`` are common to all coordinates and cancel). ``x = \pm 1`` gives
   :math:`\tau`, ``x = 2`` gives :math:`\sigma`, ``x = 3, -2`` check the fit; the betas reported are these
   effective ones (NAdam's Nesterov step weighs the current gradient more: effective beta1 ~ 0.06). RMSprop,
   Adagrad and sign methods (Lion) mirror a sign flip exactly (:math:`\beta_1 = 0`: no first moment) and are
   "not Adam-like"; so is RMSprop with momentum (heavy ball on normalised steps: the fit fails).
2. *Bias correction.* On a constant gradient bias-corrected Adam moves each weight by :math:`s_t = 1` from step 1;
   BERTAdam by :math:`(1 - \beta_1^t) / \sqrt{1 - \beta_2^t}` (3.16 at ``t = 1`` and 6.6 at ``t = 12`` for
   0.9/0.999). The verdict is the nearer of the two (largest log ratio over the normalised steps). Steps that are
   not normalised are left out: RAdam's rectification makes steps 1..5 momentum SGD (bias-corrected first moment,
   no denominator) and later ones smaller than ``lr``, never inflated like BERTAdam's, so RAdam is
   "bias-corrected", judged from step 6 on.
3. *Weight decay.* Zero gradient, weights ``c`` and ``10 c`` for 12 steps: decoupled decay shrinks both by the
   same fraction, L2 decay passes through Adam's normalisation and moves both by about ``lr``. Before or after the
   update: with :math:`\theta_0 = 0`, decay after the update scales each step by :math:`r = 1 - \gamma\lambda`;
   told apart when the verdict's model (1, or BERTAdam's factor) fits one hypothesis to a quarter of :math:`1 - r`
   and misses the other by three quarters.
4. *eps placement.* ``t - 1`` zero-gradient steps (the weights stay 0), then gradients ``g = 1e-20 .. 1e3`` at
   step ``t``: eps measured in gradient units, :math:`g\,(u(G) / u(g) - 1)` for the step ``u``, is
   :math:`\epsilon / \sqrt{1 - \beta_2}` at every ``t`` when eps is added to the raw :math:`\sqrt{v}` (old HF/TF
   BERT; BERTAdam, which has no :math:`\hat v`, too) and grows like :math:`\sqrt{(1 - \beta_2^t) / (1 - \beta_2)}`
   when it is added to :math:`\sqrt{\hat v}` (torch). It is read at two steps ``_EPS_GAP`` apart.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import statistics
from collections.abc import Callable
from typing import Any

import torch

from .errors import UserInputError

__all__ = ["MIN_BETA1", "Findings", "first_line", "format_kwargs", "probe_optimizer"]

# Gradient of the main probes: eps (1e-8 .. 1e-6, times up to 1/sqrt(1 - beta2) ~ 32 when added to the raw sqrt(v))
# then changes a step by < 1e-10 relative, and L2 decay (lambda * theta with theta ~ lr * steps) by even less.
_G = 1e6
# Second gradient scale, 100x smaller, for the scale-invariance test: SGD's step shrinks 100x, Adam's does not.
_G_SMALL = 1e4
# Constant-gradient steps: BERTAdam's step/lr peaks near t = 12 (6.6 at 0.9/0.999) and RAdam's rectification
# makes its first <= 5 steps SGD-like; 12 steps show both.
_T = 12
# The sign-flip/magnitude probe: x = +-1 give beta1, 2 gives beta2, 3 and -2 check the fit (all |x| >= 1 so that
# AMSGrad's running max of v equals v).
_XS = (1.0, -1.0, 2.0, 3.0, -2.0)
# One more coordinate, unread, with gradient sqrt(14) G before and 0 at the probed step, keeps the gradient's norm
# the same at every step (5 + 14 = 1 + 1 + 4 + 9 + 4), so that an optimizer clipping the gradient norm inside
# step() (pytorch-pretrained-bert's BertAdam, max_grad_norm=1) scales every step alike and the ratios survive.
_BALANCE = math.sqrt(sum(x * x for x in _XS) - len(_XS))
# Gradient magnitudes scanned for eps: every decade where a user might put eps, and _G as the eps-free reference.
_EPS_SCAN = [_G] + [10.0**k for k in range(-20, 4)]
# The second eps probe comes 9 steps after the first: for beta2 = 0.999, eps on sqrt(v-hat) vs raw sqrt(v) then
# differ by sqrt((1 - 0.999**10) / 0.001) = 3.2x.
_EPS_GAP = 9
# lr for a factory that needs one and does not say: torch.optim's usual default.
_DEFAULT_LR = 1e-3
# Below this a first moment carries < 1% of the previous gradient: RMSprop, Adagrad and Lion measure exactly 0.
MIN_BETA1 = 0.01


@dataclasses.dataclass
class Findings:
    """What the probes measured, before it is worded: see :class:`steadytune.audit.AuditReport` for each field."""

    adam_like: bool
    bias_correction: bool | None
    weight_decay: str
    eps_placement: str
    betas: tuple[float, float] | None
    evidence: dict[str, Any]


def probe_optimizer(factory: Callable[..., Any], hyperparameters: dict[str, Any], name: str) -> Findings:
    """Run every probe on ``factory(params, **hyperparameters)`` (``name`` is for messages) and read the results.

    Raises :class:`UserInputError` when the optimizer cannot be built, is not optimizer-like (``step`` and
    ``param_groups``), or fails in ``step()``.
    """
    probe = _Prober(factory, hyperparameters, name)
    lr, exact = probe.lr, probe.dtype == torch.float64
    ev: dict[str, Any] = {"lr": lr, "dtype": str(probe.dtype).removeprefix("torch."), "closure": probe.closure}

    # Weight decay: zero gradient for _T steps (so that the last one is normalised even after an SGD-like start),
    # weights c and 10c. Decoupled decay shrinks both by the same fraction each step; L2 decay is a gradient that
    # Adam normalises into a move of about lr for both (a 10x smaller fraction for 10c). c keeps _T such moves
    # under 1% of the weight.
    c = max(1.0, 100 * _T * lr)
    wd = probe.run([c, 10 * c], [[0.0, 0.0]] * _T)
    shrink = ((wd[-2] - wd[-1]) / wd[-2]).tolist()
    ev["zero_grad_shrink"] = shrink
    # A zero-gradient step leaves a weight bit-identical without decay; float32 rounding of 10 * (1 - lr*wd) can
    # show up as ~1e-7 relative, hence the looser float32 threshold.
    none = all(abs(x) <= (1e-12 if exact else 1e-6) for x in (wd[-1] - wd[0]) / wd[0])
    # Same fraction within 2x (float32 cannot resolve small shrinks better) vs 10x apart.
    proportional = not none and 0.5 < _div(shrink[1], shrink[0]) < 2
    r = 1.0 - shrink[0] if proportional else 1.0
    ev["decay_factor"] = r

    # Constant gradient at two scales; the first step from which every step ignores the 100x scale is normalised.
    big, small = (probe.steps(probe.run([0.0], [[g]] * _T), r, lr)[:, 0] for g in (_G, _G_SMALL))
    scale = [_div(b, s) for b, s in zip(big.tolist(), small.tolist())]
    # 1e-3 absorbs L2 decay leaking into the gradient (lambda * theta / G); float32 steps are good to ~1e-5.
    normalised = [abs(x - 1) < 1e-3 for x in scale]
    t0 = next((t + 1 for t in range(_T) if all(normalised[t:])), None)
    s = big.tolist()
    ev |= {"step_over_lr": s, "first_step_ratio": s[0], "scale_ratio": scale, "scale_ratio_last": scale[-1],
           "first_normalised_step": t0}  # fmt: skip

    beta1 = beta2 = None
    if t0 is not None:  # sign flip and magnitude change after W constant steps, at a normalised step
        w = max(1, t0 - 1)
        history, probed = [_G] * len(_XS) + [_BALANCE * _G], [x * _G for x in _XS] + [0.0]
        u = probe.steps(probe.run([0.0] * len(history), [history] * w + [probed]), r, lr)[-1]
        u1, um1, u2, u3, um2 = u.tolist()[: len(_XS)]
        tau = _div(u1 + um1, u1 - um1)
        q = ((tau + 2) / (tau + 1) * _div(u1, u2)) ** 2
        sigma = _div(4 - q, q - 1)
        pred3 = (tau + 3) / (tau + 1) * math.sqrt(max((sigma + 1) / (sigma + 9), 0.0))
        predm2 = (tau - 2) / (tau + 1) * math.sqrt(max((sigma + 1) / (sigma + 4), 0.0))
        fit = max(abs(u3 - pred3 * u1), abs(um2 - predm2 * u1)) / abs(u1) if u1 else math.nan
        beta1, beta2 = _power_sum_root(tau, w), _power_sum_root(sigma, w)
        ev |= {"flip_ratio": _div(um1, u1), "fit_error": fit, "betas_probe_step": w + 1}
    else:
        fit = math.nan
    # Adam predicts the x = 3, -2 steps from beta1, beta2 to rounding; 1e-3 leaves room for L2 decay and float32.
    adam_like = beta1 is not None and beta1 > MIN_BETA1 and beta2 is not None and fit < 1e-3
    betas = (beta1, beta2) if adam_like else None
    ev["inferred_betas"] = [beta1, beta2]

    bias_correction, eps_placement, before_after = None, "not applicable (not Adam-like)", ""
    if adam_like:
        b1, b2 = betas  # type: ignore[misc]
        ev["bertadam_steps"] = [(1 - b1**t) / math.sqrt(1 - b2**t) for t in range(1, _T + 1)]
        window = range(t0 - 1, _T)  # type: ignore[operator]
        res_c = max(abs(_log(s[i])) for i in window)
        res_u = max(abs(_log(_div(s[i], ev["bertadam_steps"][i]))) for i in window)
        bias_correction = res_c <= res_u
        ev |= {"log_residual_corrected": res_c, "log_residual_uncorrected": res_u}
        if proportional:  # decay after the update scales the step by r: compare with the nearer model
            model = [1.0 if bias_correction else ev["bertadam_steps"][i] for i in window]
            rel_b = max(abs(_div(s[i], m) - 1) for i, m in zip(window, model))
            rel_a = max(abs(_div(s[i], r * m) - 1) for i, m in zip(window, model))
            gap = abs(1 - r)
            ev |= {"before_update_residual": rel_b, "after_update_residual": rel_a, "before_after_gap": gap}
            # The right hypothesis fits to rounding, the wrong one is off by the whole gap 1 - r.
            if rel_b < gap / 4 < 3 * gap / 4 < rel_a:
                before_after = ", applied before the update (uses theta_{t-1})"
            elif rel_a < gap / 4 < 3 * gap / 4 < rel_b:
                before_after = ", applied after the update (uses the updated theta)"
            else:
                before_after = ", before/after the update undetermined"
        eps_placement = _eps_probe(probe, t0, b2, ev)  # type: ignore[arg-type]

    if none:
        weight_decay = "none"
    elif proportional and t0 is not None:
        weight_decay = "decoupled" + before_after
    elif proportional:  # without normalisation L2 decay is proportional to the weight too
        weight_decay = "undetermined (shrinks weights proportionally; the step is not normalised, so L2 and "
        weight_decay += "decoupled decay look alike)"
    elif t0 is not None and _div(shrink[1], shrink[0]) < 0.2:  # 0.1 expected: the same move for a 10x larger weight
        weight_decay = "coupled (L2)"
    else:
        weight_decay = "undetermined"

    return Findings(adam_like, bias_correction, weight_decay, eps_placement, betas, ev)


class _Prober:
    """Builds fresh optimizers over fresh 1-D parameters and records trajectories under hand-set gradients."""

    def __init__(self, factory: Callable[..., Any], hyperparameters: dict[str, Any], name: str) -> None:
        self.factory, self.hp, self.name = factory, dict(hyperparameters), name
        self.dtype, self.closure = torch.float64, False
        opt = self._first_optimizer()
        lr = self.hp.get("lr", _read_lr(opt))
        if lr is None:  # cannot read it back: pass one, so that steps can be expressed in units of lr
            self.hp["lr"] = lr = _DEFAULT_LR
            opt = self.make([torch.nn.Parameter(torch.zeros(1, dtype=self.dtype))])
        if isinstance(lr, torch.Tensor):
            lr = lr.item()
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise UserInputError(f"auditing {name} needs a positive, finite learning rate, got lr={lr!r}")
        self.lr = float(lr)
        self._pick_dtype_and_closure(_needs_closure(opt))

    def _first_optimizer(self) -> Any:
        """Build one optimizer as given; if that fails without an lr, retry with lr=1e-3, else the first error."""
        try:
            return self.make([torch.nn.Parameter(torch.zeros(1, dtype=self.dtype))])
        except UserInputError as error:
            if "lr" in self.hp:
                raise
            self.hp["lr"] = _DEFAULT_LR
            try:
                return self.make([torch.nn.Parameter(torch.zeros(1, dtype=self.dtype))])
            except UserInputError:
                del self.hp["lr"]
                raise error from None

    def make(self, params: list[torch.nn.Parameter]) -> Any:
        try:
            opt = self.factory(params, **self.hp)
        except Exception as e:  # any constructor error is the user's to fix
            raise UserInputError(f"could not construct optimizer {self.name}({format_kwargs(self.hp)}): "
                                 f"{first_line(e)}") from None  # fmt: skip
        if not (callable(getattr(opt, "step", None)) and hasattr(opt, "param_groups")):
            raise UserInputError(f"{self.name}(params) returned a {type(opt).__name__}, not an optimizer "
                                 "(it needs step() and param_groups)")  # fmt: skip
        return opt

    def _pick_dtype_and_closure(self, needs_closure: bool) -> None:
        """float64 if the optimizer takes it; step() without a closure unless it needs one. Else the last error."""
        error: UserInputError | None = None
        for dtype in (torch.float64, torch.float32):
            for closure in (True,) if needs_closure else (False, True):
                self.dtype, self.closure = dtype, closure
                try:
                    self.run([0.0], [[_G]])
                    return
                except _StepError as e:
                    error = e
        raise error  # type: ignore[misc]

    def run(self, theta0: list[float], grads: list[list[float]]) -> torch.Tensor:
        """Trajectory (steps + 1, n) in float64 of a fresh parameter ``theta0`` under ``grads``, one per step."""
        p = torch.nn.Parameter(torch.tensor(theta0, dtype=self.dtype))
        opt = self.make([p])
        rows = [p.detach().double().clone()]
        for g in grads:
            grad = torch.tensor(g, dtype=self.dtype)

            def closure(grad: torch.Tensor = grad) -> torch.Tensor:
                p.grad = grad.clone()
                return (p.detach() * grad).sum()  # the linear loss whose gradient is ``grad``

            p.grad = grad.clone()  # also before step(): SAM-like wrappers read it before calling the closure
            try:
                opt.step(closure) if self.closure else opt.step()
            except Exception as e:
                raise _StepError(f"optimizer {self.name} failed in step(): {first_line(e)}") from None
            rows.append(p.detach().double().clone())
        return torch.stack(rows)

    @staticmethod
    def steps(traj: torch.Tensor, r: float, lr: float) -> torch.Tensor:
        """Per-step moves in units of lr, decoupled decay (factor r on theta_{t-1}) taken out."""
        return (r * traj[:-1] - traj[1:]) / lr


class _StepError(UserInputError):
    """step() raised: retried with a closure / float32 before it reaches the user."""


def _eps_probe(probe: _Prober, t0: int, beta2: float, ev: dict[str, Any]) -> str:
    """eps in gradient units at two normalised steps: constant if added to raw sqrt(v), growing if to sqrt(v-hat)."""
    effective = []
    for t in (t0, t0 + _EPS_GAP):
        n = len(_EPS_SCAN)
        u = -probe.run([0.0] * n, [[0.0] * n] * (t - 1) + [_EPS_SCAN])[-1]  # theta stays 0 until step t
        ref = u[0].item()
        # eps / sqrt(v-hat) per coordinate, times the gradient: the same number for every g; keep the well
        # conditioned coordinates (eps between a tenth and ten times sqrt(v-hat)).
        est = [g * (ref / x - 1) for g, x in zip(_EPS_SCAN[1:], u[1:].tolist()) if x and 0.1 < ref / x - 1 < 10]
        effective.append(statistics.median(est) if est else math.nan)
    ratio = _div(effective[1], effective[0])
    pred = math.sqrt((1 - beta2 ** (t0 + _EPS_GAP)) / (1 - beta2**t0))
    ev |= {"effective_eps": effective, "eps_probe_steps": [t0, t0 + _EPS_GAP], "eps_ratio": ratio,
           "eps_ratio_if_sqrt_vhat": pred}  # fmt: skip
    lp, lm = _log(pred), _log(ratio)
    if not (math.isfinite(lm) and abs(lp) > math.log(1.1)):  # under 10% apart: beta2 too small to tell
        return "undetermined"
    # Each placement predicts a ratio; accept the one within a quarter of the log distance between them.
    if abs(lm - lp) < abs(lp) / 4:
        ev["eps_estimate"] = effective[0] * math.sqrt((1 - beta2) / (1 - beta2**t0))
        return "bias-corrected sqrt(v-hat) (as torch)"
    if abs(lm) < abs(lp) / 4:
        ev["eps_estimate"] = effective[0] * math.sqrt(1 - beta2)
        return "raw sqrt(v) (as old HF/TF BERT)"
    return "undetermined"


def _power_sum_root(target: float, n: int) -> float | None:
    """beta in [0, 1) with beta + beta**2 + ... + beta**n == target, or None when there is none."""
    if math.isnan(target) or target >= n:
        return None
    if target <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(64):  # bisection: 64 halvings reach float64 resolution on [0, 1]
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(mid**k for k in range(1, n + 1)) < target else (lo, mid)
    return (lo + hi) / 2


def _needs_closure(opt: Any) -> bool:
    try:
        params = list(inspect.signature(opt.step).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].default is inspect.Parameter.empty and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)  # fmt: skip


def _read_lr(opt: Any) -> Any:
    try:
        return opt.param_groups[0]["lr"]
    except (KeyError, IndexError, TypeError):
        return None


def format_kwargs(hp: dict[str, Any]) -> str:
    """``k=v!r`` pairs as in a call: ``lr=2e-05, weight_decay=0.01``."""
    return ", ".join(f"{k}={v!r}" for k, v in hp.items())


def first_line(e: BaseException) -> str:
    """``Type: first line of the message``, for one-line errors about a user's code."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else '(no message)'}"


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


def _log(x: float) -> float:
    return math.log(x) if x > 0 else math.inf  # a non-positive or NaN step fits no Adam model
