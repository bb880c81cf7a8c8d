r"""Mixout (Lee et al., ICLR 2020; Zhang et al. 2021 §6): dropout that falls back to the pre-trained weights.

Where dropout zeroes a unit, Mixout swaps the unit's weights for their pre-trained values :math:`W_0`. In training a
Bernoulli mask :math:`M` (one draw per *input column*, shared by all output rows, as in Lee et al.'s code) keeps a
column of the current weights :math:`W` with probability :math:`1 - p` and otherwise takes :math:`W_0`'s, rescaled so
the expected weight is :math:`W`:

.. math::
    \tilde W = \frac{(1 - M) \odot W_0 + M \odot W - p\, W_0}{1 - p}, \qquad \mathbb{E}_M[\tilde W] = W.

In evaluation the layer is an ordinary linear layer with weight :math:`W`. This regularises toward :math:`W_0`,
which the paper found helps few-sample fine-tuning less once bias correction is fixed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MixLinear", "apply_mixout", "remove_mixout"]


class MixLinear(nn.Linear):
    """`nn.Linear` with Mixout toward `target` (a buffer: it follows `.to()` and is in the `state_dict`)."""

    target: Tensor

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, p: float, device=None, dtype=None
    ) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Invalid Mixout probability: {p!r} (must be in [0, 1))")
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.p = p
        self.register_buffer("target", self.weight.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, p: float) -> MixLinear:
        """A MixLinear sharing `linear`'s parameters (same tensors), with their current values as the target."""
        w = linear.weight
        mix = cls(linear.in_features, linear.out_features, linear.bias is not None, p=p, device="meta", dtype=w.dtype)
        mix.weight, mix.bias = linear.weight, linear.bias
        mix.target = w.detach().clone()
        mix.train(linear.training)
        return mix

    def mixed_weight(self) -> Tensor:
        """The weight this forward pass uses: :math:`W` in eval or at p = 0, else a fresh Mixout draw."""
        if not self.training or self.p == 0.0:
            return self.weight
        # One keep/swap draw per input column, broadcast over the output rows (Lee et al.'s mixout.py).
        keep = torch.empty(1, self.in_features, device=self.weight.device, dtype=self.weight.dtype)
        keep.bernoulli_(1.0 - self.p)
        target = self.target.to(self.weight.dtype)
        return ((1.0 - keep) * target + keep * self.weight - self.p * target) / (1.0 - self.p)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.mixed_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


# Attribute names under which modules keep a dropout rate as a plain float (see apply_mixout).
_DROPOUT_RATES = ("dropout", "dropout_prob", "dropout_p", "drop_prob")


def _select(model: nn.Module, modules: str | Callable[[str, nn.Linear], bool]) -> list[str]:
    if callable(modules):
        keep = modules
    elif modules == "all":
        keep = lambda name, module: True  # noqa: E731
    elif modules == "encoder":
        # the base model, and a pooler beside it (DeBERTa-v2's ContextPooler sits outside the base model)
        parts = [getattr(model, "base_model", model), getattr(model, "pooler", None)]
        inside = {id(m) for part in parts if isinstance(part, nn.Module) for m in part.modules()}
        keep = lambda name, module: id(module) in inside  # noqa: E731
    else:
        raise ValueError(f"Invalid modules: {modules!r} (use 'encoder', 'all' or a callable(name, module) -> bool)")
    return [name for name, m in model.named_modules() if type(m) is nn.Linear and name and keep(name, m)]


def apply_mixout(
    model: nn.Module,
    p: float,
    *,
    modules: str | Callable[[str, nn.Linear], bool] = "encoder",
    disable_dropout: bool = True,
) -> list[str]:
    """Replace `nn.Linear` layers of `model` by :class:`MixLinear` with their current weights as the target.

    Call it after any re-initialisation (the paper's code did: the target is then the re-drawn layer).

    Args:
        model: the model, changed in place; the parameters themselves are kept (same tensors).
        p: Mixout probability in [0, 1) (the paper's sample command: 0.1).
        modules: which Linear layers: ``"encoder"`` (default; every Linear of the pre-trained base model and of
            its pooler, also where the pooler sits beside it as in DeBERTa-v2), ``"all"`` (every Linear, the new
            classifier head too, which is what the paper's code did), or a callable ``(name, module) -> bool``.
        disable_dropout: set every dropout probability to 0, as the paper's code did, so Mixout is the only noise:
            ``nn.Dropout`` modules, and float attributes named ``*dropout``, ``*dropout_prob``, ``*dropout_p`` or
            ``drop_prob`` (the SDPA attention of transformers 4.x keeps its rate in ``dropout_prob``, DeBERTa's
            StableDropout in ``drop_prob``).

    Returns:
        The names of the replaced modules.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"Invalid Mixout probability: {p!r} (must be in [0, 1))")
    if any(isinstance(m, MixLinear) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} already has Mixout layers; call remove_mixout first")
    names = _select(model, modules)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, MixLinear.from_linear(getattr(parent, child), p))
    if disable_dropout:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
            for key, value in vars(m).items():
                if type(value) is float and key.endswith(_DROPOUT_RATES):
                    setattr(m, key, 0.0)
    return names


def remove_mixout(model: nn.Module) -> list[str]:
    """Turn every :class:`MixLinear` back into an `nn.Linear` with the same parameters (what evaluation uses).

    A model saved after this loads with plain `from_pretrained`, without Mixout's target buffers.
    """
    names = [name for name, m in model.named_modules() if isinstance(m, MixLinear)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        mix = getattr(parent, child)
        linear = nn.Linear(mix.in_features, mix.out_features, mix.bias is not None, device="meta")
        linear.weight, linear.bias = mix.weight, mix.bias
        linear.train(mix.training)
        setattr(parent, child, linear)
    return names
