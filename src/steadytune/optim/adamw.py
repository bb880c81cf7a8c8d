r"""AdamW with switchable bias correction; ``bias_correction=False`` is BERT's original optimizer (BERTAdam).

Written in the style of ``torch/optim``: a functional core :func:`adamw` that dispatches to one of three
implementations, and a thin :class:`torch.optim.Optimizer` subclass :class:`AdamW` that owns the state.
:class:`BertAdam` is :class:`AdamW` with ``bias_correction=False`` and the original BERT defaults.

* ``_fused_adamw``: the ATen kernel behind ``torch.optim.AdamW(fused=True)`` (``torch._fused_adamw_``), one pass
  over each tensor. The default wherever every parameter is a float16/bfloat16/float32/float64 tensor on a device
  with fused kernels (CPU, CUDA, MPS, XPU, ...); on CPU it is 3.5-5x faster than the per-tensor loop.
* ``_single_tensor_adamw``: a per-tensor loop of ATen ops (``lerp_``, ``mul_``, ``addcmul_``, ``addcdiv_``).
* ``_multi_tensor_adamw``: the same ops as ``torch._foreach_*`` calls over the whole group.

With ``bias_correction=True`` each path performs the arithmetic of its ``torch.optim.AdamW`` counterpart in the same
order, so ours matches torch's *same* path bit for bit (fused with ``fused=True``, per-tensor with
``foreach=False``, multi-tensor with ``foreach=True``). Across paths the update is the same but rounded
differently (the fused kernel keeps intermediates in registers, uses fused multiply-adds and computes float16/bfloat16
parameters in float32), so trajectories of different paths agree only to floating-point noise, not bitwise.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

__all__ = ["AdamW", "BertAdam", "adamw"]

# Parameter dtypes the fused kernels implement (ATen dispatches them with AT_DISPATCH_FLOATING_TYPES_AND2(Half,
# BFloat16)); other floating types such as float8 pass ``torch.is_floating_point`` but have no kernel.
_FUSED_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)

# BERTAdam on the fused kernel. ``torch._fused_adamw_`` always bias-corrects: it reads step t from the step tensor
# it is given and computes step_size = lr / (1 - beta1**t) and denom = sqrt(v) / sqrt(1 - beta2**t) + eps, with
# beta**t evaluated by ``std::pow`` in double on CPU and CUDA (in float32 on MPS, which has no double). Handing it
# t = 2**64 instead of the real step (the state's ``step`` keeps counting real steps) makes beta**t exactly 0.0, so
# both corrections are exactly 1 and the kernel computes the uncorrected update, rounded like the fused AdamW.
# Why 2**64: beta**t underflows to 0.0 once t * ln(beta) < ln(2**-1075) ~ -745.1, i.e. t > 745.1 / (1 - beta) for
# beta near 1. A "large" t like 1e9 is not enough: 0.999**1e9 == 0.0, but 0.9999999999**1e9 ~ 0.905. The double
# closest to 1 from below is 1 - 2**-53, and with t = 2**64, t * ln(1 - 2**-53) ~ -2048, far below -745.1: every
# double beta in [0, 1) gives exactly 0.0. 2**64 is a power of two, exactly representable as the float32 the kernels
# read the step as (max ~3.4e38). In float32 (MPS) the same holds for every beta that rounds to a float32 below 1
# (then 1 - beta32 >= 2**-24 and t * ln(beta32) <= -2**40); betas within 2**-25 of 1 round to 1.0f, where no t
# works. ``_bias_correction_vanishes`` checks both precisions in Python for the betas actually used, and
# :func:`adamw` falls back to a non-fused path when the check fails, so the update is never silently corrected.
_NO_BIAS_CORRECTION_STEP = 2.0**64


def _validate_hyperparameters(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    # ``not 0.0 <= x`` (rather than ``x < 0``) also rejects NaN.
    if isinstance(lr, Tensor):
        raise TypeError(f"lr must be a float, not a Tensor: {lr!r}")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas}")
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta} (must be in [0, 1))")


class AdamW(Optimizer):
    r"""AdamW (decoupled weight decay) with optional bias correction.

    ``bias_correction=True`` (the default) is exactly ``torch.optim.AdamW`` (Loshchilov & Hutter, 2019):

    .. math::
       \begin{aligned}
            &\textbf{input}: \gamma \text{ (lr)},\ \beta_1, \beta_2 \text{ (betas)},\ \epsilon \text{ (eps)},
                \ \lambda \text{ (weight decay)},\ \theta_0 \text{ (params)}                                    \\
            &\textbf{initialize}: m_0 \leftarrow 0,\ v_0 \leftarrow 0                                           \\
            &\textbf{for}\ t = 1, 2, \ldots\ \textbf{do}                                                       \\
            &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})                                              \\
            &\quad \theta_t \leftarrow \theta_{t-1} (1 - \gamma \lambda)                                       \\
            &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t                                          \\
            &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2                                        \\
            &\quad \theta_t \leftarrow \theta_t - \frac{\gamma}{1 - \beta_1^t}
                \cdot \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}                                \\
       \end{aligned}

    ``bias_correction=False`` is BERTAdam, the optimizer of the original BERT release (Devlin et al., 2019;
    google-research/bert ``optimization.py``, ``AdamWeightDecayOptimizer``; HuggingFace's old ``BertAdam``):

    .. math::
       \begin{aligned}
            &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t                                          \\
            &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2                                        \\
            &\quad \theta_t \leftarrow \theta_{t-1}
                - \gamma \left( \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda \theta_{t-1} \right)              \\
       \end{aligned}

    i.e. no division by :math:`1 - \beta_1^t` or :math:`1 - \beta_2^t`, and the decay term uses the parameter
    *before* the update. Since :math:`m_t, v_t` do not depend on :math:`\theta`, this equals
    :math:`\theta_{t-1}(1 - \gamma\lambda) - \gamma\, m_t / (\sqrt{v_t} + \epsilon)`, which is how it is computed
    (sharing the code path of the corrected update).

    **Why bias correction matters for few-sample fine-tuning** (Zhang et al., "Revisiting Few-sample BERT
    Fine-tuning", ICLR 2021, §4 and Algorithm 1). :math:`m_t` and :math:`v_t` start at zero, so early in training
    they are biased towards zero; Adam divides them by :math:`1 - \beta_1^t` and :math:`1 - \beta_2^t`. Leaving that
    out multiplies the step by :math:`(1 - \beta_1^t) / \sqrt{1 - \beta_2^t}` relative to Adam. With the usual
    :math:`\beta_1 = 0.9, \beta_2 = 0.999` this factor is :math:`0.1 / \sqrt{0.001} \approx 3.16` at :math:`t = 1`
    (a constant gradient moves each weight by :math:`\approx 3.16\gamma` instead of :math:`\gamma`), peaks at
    :math:`\approx 6.6` around :math:`t \approx 12`, is still :math:`\approx 3.2` at :math:`t = 100` and only decays
    to :math:`\approx 1.26` by :math:`t = 1000`. A few-sample run (hundreds of steps) spends its whole budget in this
    regime: the uncorrected optimizer takes steps several times larger than intended right at the start, when the
    freshly initialised classifier head sends large, noisy gradients into the pre-trained encoder. Zhang et al.
    show this is a main source of the high variance and of the degenerate (chance-level) runs of BERT fine-tuning on
    small datasets, and that restoring bias correction reduces both.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr: learning rate :math:`\gamma` (a float).
        betas: coefficients :math:`(\beta_1, \beta_2)` of the running averages of the gradient and its square.
        eps: :math:`\epsilon` added to the denominator. The default ``1e-6`` is BERT's (google-research/bert
            ``optimization.py``), not torch's ``1e-8``.
        weight_decay: decoupled weight decay :math:`\lambda`.
        bias_correction: ``True`` for Adam(W) with bias correction, ``False`` for BERTAdam.
        prior_weight_decay: decay toward the pre-trained weights instead of toward zero ("pre-trained weight
            decay", Zhang et al. 2021 §6; Wiese et al. 2017): the decay line becomes
            :math:`\theta_t \leftarrow \theta_{t-1} - \gamma\lambda(\theta_{t-1} - \theta^{(0)})`, where
            :math:`\theta^{(0)}` (state ``prior``) is the parameter as it was at its first step under this
            optimizer, i.e. after any re-initialisation. Only groups with ``weight_decay > 0`` are affected (and
            only they keep a copy of their weights). With ``False``, plain decoupled decay toward zero applies as
            usual. (The paper's released code, ``prior_wd_optim.PriorWD``, sets every group's own decay to 0 when
            prior decay is on, and its intended exception, plain decay for the last group, tests
            ``i == len(param_groups)``, which is never true: that decay is silently dropped.)
        foreach: ``True`` for the multi-tensor (``torch._foreach_*``) implementation, ``False`` for the per-tensor
            loop. An explicit value also rules out the fused default (as in ``torch.optim``). With ``None`` and the
            fused path not taken, the multi-tensor one is used when every parameter is on a device with native
            foreach kernels (e.g. CUDA) and the per-tensor loop otherwise (CPU).
        fused: use the fused kernel of ``torch.optim.AdamW(fused=True)`` (``torch._fused_adamw_``). ``None`` (with
            ``foreach=None``) picks it when every parameter is a float16, bfloat16, float32 or float64 tensor on a
            device with fused optimizer kernels (CPU, CUDA, MPS, XPU, ...). ``True`` raises a ``RuntimeError`` at
            the step for any other parameter; ``True`` together with ``foreach=True`` is a ``ValueError``.

    **Implementations.** All three compute the update above; which one runs is decided per parameter group at every
    step: the fused kernel (``fused=True``, or ``fused=None`` and ``foreach=None`` with every parameter supported:
    the default on CPU and GPUs), else the multi-tensor one (``foreach=True``, or ``foreach=None`` on CUDA-like
    devices), else the per-tensor loop. The fused kernel rounds differently from the other two (single pass, fused
    multiply-adds, float32 arithmetic for float16/bfloat16 parameters), so the paths agree to floating-point noise
    (a few ulps per step), not bit for bit. With ``bias_correction=True`` each path is bit-identical to the same
    path of ``torch.optim.AdamW``. BERTAdam runs on the fused kernel by handing it a step count so large that both
    bias corrections are exactly 1 (see ``_NO_BIAS_CORRECTION_STEP``); for betas within ``2**-25`` of 1, where
    that cannot work in float32, it falls back to a non-fused path. Parameters whose gradient or state is not
    contiguous (the kernel ignores strides) go through the per-tensor loop even on the fused path. Prior weight
    decay is applied as a ``lerp_`` before the fused kernel, exactly as the other paths do it.

    State per parameter (same names as ``torch.optim.AdamW``): ``step`` (a float32 scalar tensor, created on the CPU
    by every implementation, so state dicts move freely between them), ``exp_avg`` (:math:`m`) and ``exp_avg_sq``
    (:math:`v`); with ``prior_weight_decay``, also ``prior`` (:math:`\theta^{(0)}`).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        bias_correction: bool = True,
        prior_weight_decay: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        _validate_hyperparameters(lr, betas, eps, weight_decay)
        _validate_implementation(foreach, fused)
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "bias_correction": bias_correction,
            "prior_weight_decay": prior_weight_decay,
            "foreach": foreach,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # State dicts saved before ``bias_correction``/``foreach``/``fused`` existed get this optimizer's defaults.
        defaults = getattr(self, "defaults", {})
        for group in self.param_groups:
            group.setdefault("bias_correction", defaults.get("bias_correction", True))
            group.setdefault("prior_weight_decay", defaults.get("prior_weight_decay", False))
            group.setdefault("foreach", defaults.get("foreach"))
            group.setdefault("fused", defaults.get("fused"))
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if len(p_state) != 0 and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=torch.float32)

    def _init_group(
        self,
        group: dict[str, Any],
        params_with_grad: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        state_steps: list[Tensor],
        priors: list[Tensor],
    ) -> None:
        name = type(self).__name__
        with_prior = group["prior_weight_decay"] and group["weight_decay"] != 0
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"{name} does not support sparse gradients; use torch.optim.SparseAdam for sparse parameters "
                    "(e.g. nn.Embedding(sparse=True)) or make the gradients dense"
                )
            if torch.is_complex(p):
                raise RuntimeError(
                    f"{name} does not support complex parameters; optimise torch.view_as_real(param) instead"
                )
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if len(state) == 0:
                # Like torch (non-capturable, non-fused): the step counter lives on the CPU so that reading it
                # for the bias correction does not synchronise with an accelerator. float32 counts exactly up
                # to 2**24 steps. Also on the fused path (torch keeps it on the parameter's device there), so
                # that state dicts are interchangeable between paths; _fused_adamw copies it to the device.
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if with_prior:
                if "prior" not in state:  # θ⁽⁰⁾: the weights at their first step under prior decay
                    state["prior"] = p.detach().clone(memory_format=torch.preserve_format)
                priors.append(state["prior"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            state_steps.append(state["step"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform a single optimisation step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss; it runs with gradients
                enabled.

        Returns:
            The closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            params_with_grad: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            state_steps: list[Tensor] = []
            priors: list[Tensor] = []
            self._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, state_steps, priors)
            beta1, beta2 = group["betas"]
            adamw(
                params_with_grad,
                grads,
                exp_avgs,
                exp_avg_sqs,
                state_steps,
                foreach=group["foreach"],
                fused=group["fused"],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                bias_correction=group["bias_correction"],
                priors=priors or None,
            )
        return loss


class BertAdam(AdamW):
    r"""BERTAdam: :class:`AdamW` with ``bias_correction=False`` and the original BERT defaults.

    The update (Devlin et al., 2019; google-research/bert ``optimization.py``, ``AdamWeightDecayOptimizer``) is

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \gamma \left( \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda \theta_{t-1} \right).

    Kept for reproducing the pre-2020 fine-tuning recipe and for comparison; Zhang et al. (ICLR 2021, §4) show the
    missing bias correction destabilises few-sample fine-tuning. See :class:`AdamW` for details.

    Defaults: ``betas=(0.9, 0.999)`` and ``eps=1e-6`` are the values of ``create_optimizer`` in google-research/bert
    ``optimization.py`` (``beta_1=0.9, beta_2=0.999, epsilon=1e-6``); ``weight_decay=0.01`` is its
    ``weight_decay_rate=0.01``. The original excludes ``LayerNorm`` and ``bias`` parameters from the decay: use
    :func:`steadytune.optim.param_groups` for that.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),  # google-research/bert optimization.py: beta_1, beta_2
        eps: float = 1e-6,  # google-research/bert optimization.py: epsilon=1e-6
        weight_decay: float = 0.01,  # google-research/bert optimization.py: weight_decay_rate=0.01
        *,
        prior_weight_decay: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, bias_correction=False,
                         prior_weight_decay=prior_weight_decay, foreach=foreach, fused=fused)  # fmt: skip


def _validate_implementation(foreach: bool | None, fused: bool | None) -> None:
    if fused and foreach:
        raise ValueError(
            f"fused={fused!r} and foreach={foreach!r} cannot be used together: the fused kernel and the multi-tensor "
            "implementation are alternatives (pass one of them, or None to let the optimizer choose)"
        )


def _fused_devices() -> list[str]:
    # torch's own list (the CPU is on it from torch 2.4); a torch without the helper gets no fused default.
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:
        return []
    return _get_fused_kernels_supported_devices()


def _default_fused(params: list[Tensor]) -> bool:
    # torch's ``_default_to_fused_or_foreach(use_fused=True)`` rule: fused when every tensor is a plain tensor on a
    # device with fused optimizer kernels (the CPU included) and of a dtype they implement. On CPU the fused kernel
    # beats both other paths by far (see _default_foreach); on CUDA it is also torch's fastest AdamW.
    if torch.jit.is_scripting():
        return False
    devices = _fused_devices()
    return all(
        type(p) in (Tensor, torch.nn.Parameter) and p.device.type in devices and p.dtype in _FUSED_DTYPES
        for p in params
    )


def _check_fused_supported(params: list[Tensor]) -> None:
    devices = _fused_devices()
    for p in params:
        if not (p.device.type in devices and p.dtype in _FUSED_DTYPES):
            dtypes = ", ".join(str(d).removeprefix("torch.") for d in _FUSED_DTYPES)
            raise RuntimeError(
                f"fused=True requires every parameter to be a {dtypes} tensor on one of the devices {devices}, "
                f"got a {str(p.dtype).removeprefix('torch.')} tensor on {p.device.type!r}; pass fused=None (or "
                "False) to use another implementation"
            )


def _default_foreach(params: list[Tensor]) -> bool:
    # Used when the fused path is not (fused=False, an explicit foreach, or a parameter the fused kernels do not
    # support). Same rule as torch's ``_default_to_fused_or_foreach``: foreach only when every tensor is on a
    # device with native foreach kernels (CUDA and friends). On CPU the _foreach_* ops fall back to a C++ loop over
    # the same per-tensor kernels and materialise a param-sized intermediate for the whole group at once (higher
    # peak memory). Measured on CPU (torch 2.13, 2 threads, float32, median of 15 steps, per-tensor vs foreach):
    # BERT-base shapes (201 tensors, 109M values) 202 vs 242 ms (BERTAdam 176 vs 196 ms); all-MiniLM-L6 shapes
    # (105 tensors, 22.7M values) 43 vs 44 ms (37 vs 41 ms). foreach only wins with many tiny tensors
    # (1000 x 16 values: 18 vs 11 ms), which is not what fine-tuned encoders look like, so without fused the CPU
    # stays per-tensor. (The fused kernel is faster than both: see the timings in ``_fused_adamw``.)
    if torch.jit.is_scripting():
        return False
    from torch.utils._foreach_utils import _get_foreach_kernels_supported_devices

    supported = _get_foreach_kernels_supported_devices()
    return all(type(p) in (Tensor, torch.nn.Parameter) and p.device.type in supported for p in params)


def _to_float32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _bias_correction_vanishes(beta: float, step: float | None = None) -> bool:
    """Whether ``beta**step`` is exactly 0.0 for ``beta`` as a double and rounded to float32, so that the fused
    kernels' bias corrections ``1 - beta**step`` are exactly 1 (see ``_NO_BIAS_CORRECTION_STEP``)."""
    if step is None:
        step = _NO_BIAS_CORRECTION_STEP
    # Python's float ** is C's pow() on doubles, as in the CPU/CUDA kernels; the float32 case (MPS) is judged on the
    # rounded beta (its double power is far below float32's smallest subnormal 2**-149 whenever it is 0.0).
    return beta**step == 0.0 and _to_float32(beta) ** step == 0.0


def adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    foreach: bool | None = None,
    fused: bool | None = None,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    priors: list[Tensor] | None = None,
) -> None:
    r"""Functional AdamW / BERTAdam step, updating ``params``, ``exp_avgs``, ``exp_avg_sqs`` and ``state_steps``
    in place. See :class:`AdamW` for the algorithm and for which implementation runs when.

    Args:
        params: parameters to update (only those that have a gradient).
        grads: their gradients (dense).
        exp_avgs: first-moment running averages, one per parameter.
        exp_avg_sqs: second-moment running averages, one per parameter.
        state_steps: per-parameter step counters (scalar tensors), incremented here.
        foreach: ``True`` for the ``torch._foreach_*`` implementation, ``False`` for the per-tensor loop;
            ``None`` decides as :class:`AdamW` does.
        fused: use the fused kernel (``torch._fused_adamw_``); ``None`` decides as :class:`AdamW` does.
        lr, beta1, beta2, eps, weight_decay: hyper-parameters (floats).
        bias_correction: ``True`` for Adam(W), ``False`` for BERTAdam.
        priors: with weight decay, decay toward these tensors (one per parameter) instead of toward zero:
            :math:`\theta \leftarrow \theta - \gamma\lambda(\theta - \theta^{(0)})`.

    Raises:
        ValueError: ``fused=True`` together with ``foreach=True``, or lists of different lengths.
        RuntimeError: ``fused=True`` with a parameter the fused kernels do not support (dtype or device).
    """
    _validate_implementation(foreach, fused)
    n = len(params)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(state_steps) == n):
        raise ValueError(
            "params, grads, exp_avgs, exp_avg_sqs and state_steps must have the same length, got "
            f"{n}, {len(grads)}, {len(exp_avgs)}, {len(exp_avg_sqs)}, {len(state_steps)}"
        )
    if priors is not None and len(priors) != n:
        raise ValueError(f"priors must have one tensor per parameter ({n}), got {len(priors)}")
    if not all(isinstance(t, Tensor) for t in state_steps):
        raise RuntimeError("state_steps must be a list of singleton tensors")
    if fused is None:
        # An explicit foreach (True or False) picks that implementation, as in torch.optim.
        fused = foreach is None and _default_fused(params)
    elif fused:
        _check_fused_supported(params)
    if fused and not bias_correction and not (_bias_correction_vanishes(beta1) and _bias_correction_vanishes(beta2)):
        fused = False  # a beta within 2**-25 of 1: the kernel cannot be made to skip the bias correction
    if fused:
        impl = _fused_adamw
    else:
        if foreach is None:
            foreach = _default_foreach(params)
        impl = _multi_tensor_adamw if foreach else _single_tensor_adamw
    impl(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        state_steps,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        bias_correction=bias_correction,
        priors=priors,
    )


def _single_tensor_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    priors: list[Tensor] | None = None,
) -> None:
    for i, (param, grad, exp_avg, exp_avg_sq, step_t) in enumerate(
        zip(params, grads, exp_avgs, exp_avg_sqs, state_steps, strict=True)
    ):
        step_t += 1

        # Decoupled weight decay. For BERTAdam, theta - lr * (u + wd * theta) == theta * (1 - lr * wd) - lr * u
        # because u does not depend on theta. Toward a prior: theta - lr*wd*(theta - prior), a lerp.
        if weight_decay != 0:
            if priors is not None:
                param.lerp_(priors[i], lr * weight_decay)
            else:
                param.mul_(1 - lr * weight_decay)

        # m <- beta1 * m + (1 - beta1) * g, written as a lerp (as torch does).
        exp_avg.lerp_(grad, 1 - beta1)
        # v <- beta2 * v + (1 - beta2) * g^2
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

        if bias_correction:
            step = step_t.item()
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            # ``** 0.5`` rather than math.sqrt to round exactly like torch.optim.AdamW.
            bias_correction2_sqrt = bias_correction2**0.5
            denom = exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(eps)  # one temporary, as below
        else:
            step_size = lr
            denom = exp_avg_sq.sqrt().add_(eps)

        param.addcdiv_(exp_avg, denom, value=-step_size)


def _multi_tensor_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    priors: list[Tensor] | None = None,
) -> None:
    if len(params) == 0:
        return

    # Without priors the list stands in for them (never read), so one grouping call serves both cases.
    tensors = [params, grads, exp_avgs, exp_avg_sqs, state_steps, priors if priors is not None else params]
    grouped = Optimizer._group_tensors_by_device_and_dtype(tensors)
    for (
        device_params_,
        device_grads_,
        device_exp_avgs_,
        device_exp_avg_sqs_,
        device_steps_,
        device_priors_,
    ), _ in grouped.values():
        device_params: list[Tensor] = list(device_params_)  # type: ignore[arg-type]
        device_grads: list[Tensor] = list(device_grads_)  # type: ignore[arg-type]
        device_exp_avgs: list[Tensor] = list(device_exp_avgs_)  # type: ignore[arg-type]
        device_exp_avg_sqs: list[Tensor] = list(device_exp_avg_sqs_)  # type: ignore[arg-type]
        device_steps: list[Tensor] = list(device_steps_)  # type: ignore[arg-type]

        # Steps live on the CPU; adding a CPU scalar tensor avoids re-wrapping the Python 1 for every tensor.
        if device_steps[0].is_cpu:
            torch._foreach_add_(device_steps, torch.tensor(1.0, device="cpu"), alpha=1.0)
        else:
            torch._foreach_add_(device_steps, 1)

        if weight_decay != 0:
            if priors is not None:
                torch._foreach_lerp_(device_params, list(device_priors_), lr * weight_decay)  # type: ignore[arg-type]
            else:
                torch._foreach_mul_(device_params, 1 - lr * weight_decay)

        torch._foreach_lerp_(device_exp_avgs, device_grads, 1 - beta1)
        torch._foreach_mul_(device_exp_avg_sqs, beta2)
        torch._foreach_addcmul_(device_exp_avg_sqs, device_grads, device_grads, 1 - beta2)

        denom = torch._foreach_sqrt(device_exp_avg_sqs)
        if bias_correction:
            steps = [s.item() for s in device_steps]
            step_sizes = [(lr / (1 - beta1**step)) * -1 for step in steps]
            bias_correction2_sqrt = [(1 - beta2**step) ** 0.5 for step in steps]
            torch._foreach_div_(denom, bias_correction2_sqrt)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(device_params, device_exp_avgs, denom, step_sizes)
        else:
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(device_params, device_exp_avgs, denom, -lr)


def _fused_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    priors: list[Tensor] | None = None,
) -> None:
    # As torch.optim.adam's _fused_adam: group by device and dtype, increment the steps (the kernel only reads
    # them), one torch._fused_adamw_ call per group. The kernel makes one pass over param, grad, m and v instead of
    # one per op. Measured on CPU (torch 2.13, 2 threads, float32, median of 15 steps, all-MiniLM-L6 shapes: 105
    # tensors, 22.7M values, one run): fused 17.8 ms vs per-tensor 94.3 ms (BERTAdam 17.2 vs 62.2 ms);
    # torch.optim.AdamW(fused=True) 16.6 ms, torch.optim.AdamW(foreach=True) 80.9 ms.
    if len(params) == 0:
        return

    # The CPU kernel walks param, grad, exp_avg and exp_avg_sq as flat arrays from data_ptr(), ignoring strides
    # (torch 2.13; torch.optim.AdamW(fused=True) has the same limitation): a transposed gradient would be applied
    # to the wrong elements. Autograd lays gradients out like their parameters, so this is rare; such tensors take
    # the per-tensor loop.
    strided = [
        i
        for i, tensors in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs))
        if not all(t.is_contiguous() for t in tensors)
    ]
    if strided:
        _single_tensor_adamw(
            [params[i] for i in strided],
            [grads[i] for i in strided],
            [exp_avgs[i] for i in strided],
            [exp_avg_sqs[i] for i in strided],
            [state_steps[i] for i in strided],
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            priors=[priors[i] for i in strided] if priors is not None else None,
        )
        flat = sorted(set(range(len(params))) - set(strided))
        params = [params[i] for i in flat]
        grads = [grads[i] for i in flat]
        exp_avgs = [exp_avgs[i] for i in flat]
        exp_avg_sqs = [exp_avg_sqs[i] for i in flat]
        state_steps = [state_steps[i] for i in flat]
        priors = [priors[i] for i in flat] if priors is not None else None
        if len(params) == 0:
            return

    # Without priors the list stands in for them (never read), so one grouping call serves both cases.
    tensors = [params, grads, exp_avgs, exp_avg_sqs, state_steps, priors if priors is not None else params]
    grouped = Optimizer._group_tensors_by_device_and_dtype(tensors)
    for (
        device_params_,
        device_grads_,
        device_exp_avgs_,
        device_exp_avg_sqs_,
        device_steps_,
        device_priors_,
    ), _ in grouped.values():
        device_params: list[Tensor] = list(device_params_)  # type: ignore[arg-type]
        device_grads: list[Tensor] = list(device_grads_)  # type: ignore[arg-type]
        device_exp_avgs: list[Tensor] = list(device_exp_avgs_)  # type: ignore[arg-type]
        device_exp_avg_sqs: list[Tensor] = list(device_exp_avg_sqs_)  # type: ignore[arg-type]
        device_steps: list[Tensor] = list(device_steps_)  # type: ignore[arg-type]
        device = device_params[0].device

        # The state's step counts real steps on every path (it is saved in state dicts).
        if device_steps[0].is_cpu:
            torch._foreach_add_(device_steps, torch.tensor(1.0, device="cpu"), alpha=1.0)
        else:
            torch._foreach_add_(device_steps, 1)

        kernel_steps: list[Tensor] | tuple[Tensor, ...]
        if not bias_correction:
            # BERTAdam: a step count at which both bias corrections are exactly 1 (see _NO_BIAS_CORRECTION_STEP;
            # adamw() has checked the betas). One read-only tensor serves the whole group.
            no_correction = torch.full((), _NO_BIAS_CORRECTION_STEP, dtype=torch.float32, device=device)
            kernel_steps = [no_correction] * len(device_params)
        elif device.type == "cpu" or all(s.device == device and s.dtype == torch.float32 for s in device_steps):
            kernel_steps = device_steps  # the CPU kernel reads each step with .item<float>(), wherever it is
        elif all(s.is_cpu for s in device_steps):
            # Accelerator kernels read the steps as float32 in device memory; ours live on the CPU: one copy.
            kernel_steps = (
                torch.stack(device_steps).to(device=device, dtype=torch.float32, non_blocking=True).unbind(0)
            )
        else:
            kernel_steps = [s.to(device=device, dtype=torch.float32, non_blocking=True) for s in device_steps]

        # Decay toward the priors: the same lerp as the other paths, then the kernel without decay.
        if weight_decay != 0 and priors is not None:
            torch._foreach_lerp_(device_params, list(device_priors_), lr * weight_decay)  # type: ignore[arg-type]
            kernel_weight_decay = 0.0
        else:
            kernel_weight_decay = weight_decay

        torch._fused_adamw_(
            device_params,
            device_grads,
            device_exp_avgs,
            device_exp_avg_sqs,
            [],  # max_exp_avg_sqs: no amsgrad
            kernel_steps,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=kernel_weight_decay,
            eps=eps,
            amsgrad=False,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
