"""Weight-decay parameter groups decided by module type, and a one-call optimizer factory.

The usual recipe (BERT, HuggingFace ``Trainer``) applies no weight decay to biases and to normalisation-layer
weights. Matching on parameter-name substrings such as ``"LayerNorm"`` breaks as soon as a model names its norms
differently (``ln_1``, ``norm``, ``input_layernorm``) or names something else ``LayerNorm``; here the decision is
made from the type of the module that owns each parameter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from steadytune.optim.adamw import AdamW

__all__ = ["create_optimizer", "is_norm_module", "param_groups", "trainable_parameters"]


def _norm_types() -> tuple[type[nn.Module], ...]:
    # _NormBase covers BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm1d/2d/3d and their lazy variants.
    types: list[type[nn.Module]] = [nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase]
    rms_norm = getattr(nn, "RMSNorm", None)  # torch >= 2.4
    if rms_norm is not None:
        types.append(rms_norm)
    return tuple(types)


_NORM_TYPES = _norm_types()
# Fallback for custom norm classes that do not subclass a torch norm (HF DebertaLayerNorm, T5LayerNorm,
# LlamaRMSNorm, ...): matched on the class name, never on the attribute name.
_NORM_CLASS_NAME_SUFFIXES = ("LayerNorm", "RMSNorm")


def is_norm_module(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (by type, or by a class name ending in LayerNorm/RMSNorm)."""
    return isinstance(module, _NORM_TYPES) or type(module).__name__.endswith(_NORM_CLASS_NAME_SUFFIXES)


def _is_bias_name(local_name: str) -> bool:
    # The parameter's own attribute name on its module: ``bias`` (Linear, Conv, LayerNorm, ...) or ``*_bias``
    # (e.g. nn.MultiheadAttention.in_proj_bias). A module *path* containing "bias" does not count.
    return local_name == "bias" or local_name.endswith("_bias")


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter, bool]]:
    """``(name, parameter, exempt from weight decay)`` for each trainable parameter of ``model``, each once.

    A parameter shared by several modules (tied weights) appears once, under its first name in
    ``model.named_parameters()``, and is exempt if *any* of its owners makes it a bias or a norm parameter.
    """
    names: dict[int, str] = {}
    params: dict[int, nn.Parameter] = {}
    exempt: set[int] = set()
    # remove_duplicate=False visits a shared module once per path, so every (owner module, attribute) pair of a
    # tied parameter is seen; the first visit fixes its name and its position (same order as named_parameters()).
    for module_name, module in model.named_modules(remove_duplicate=False):
        for local_name, param in module.named_parameters(recurse=False):
            key = id(param)
            if key not in params:
                params[key] = param
                names[key] = f"{module_name}.{local_name}" if module_name else local_name
            if _is_bias_name(local_name) or is_norm_module(module):
                exempt.add(key)
    return [(names[k], p, k in exempt) for k, p in params.items() if p.requires_grad]


def param_groups(model: nn.Module, *, weight_decay: float, lr: float | None = None) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into a decay and a no-decay group.

    No weight decay for biases (parameters whose own attribute name is ``bias`` or ends in ``_bias``) and for all
    parameters of normalisation modules (``nn.LayerNorm``, ``nn.GroupNorm``, batch/instance norms, ``nn.RMSNorm``,
    and custom classes whose name ends in ``LayerNorm``/``RMSNorm``). Everything else, embeddings included, is
    decayed.

    Only parameters with ``requires_grad`` are included, each exactly once: a parameter shared by several modules
    (tied weights) appears once, under its first name in ``model.named_parameters()``, and is put in the no-decay
    group if *any* of its owners makes it a bias or a norm parameter. Empty groups are omitted (a model without
    trainable parameters gives ``[]``).

    Args:
        model: the model.
        weight_decay: weight decay for the decay group (the no-decay group gets ``0.0``).
        lr: if given, set as ``"lr"`` on both groups; otherwise the optimizer's default applies.

    Returns:
        Parameter-group dicts for a ``torch.optim.Optimizer``: ``"params"``, ``"weight_decay"``, ``"param_names"``
        (the parameters' names, kept by torch in ``param_groups`` and ``state_dict()`` for debugging) and ``"lr"``
        when given. The decay group comes first.
    """
    decay_group: dict[str, Any] = {"params": [], "param_names": [], "weight_decay": weight_decay}
    no_decay_group: dict[str, Any] = {"params": [], "param_names": [], "weight_decay": 0.0}
    for name, param, exempt in trainable_parameters(model):
        group = no_decay_group if exempt else decay_group
        group["params"].append(param)
        group["param_names"].append(name)

    groups = [g for g in (decay_group, no_decay_group) if g["params"]]
    if lr is not None:
        for g in groups:
            g["lr"] = lr
    return groups


def create_optimizer(
    model: nn.Module,
    optimizer_cls: type[torch.optim.Optimizer] = AdamW,
    *,
    lr: float,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build ``optimizer_cls`` over :func:`param_groups` of ``model``.

    Biases and normalisation weights get no weight decay; every other trainable parameter gets ``weight_decay``
    (note the default ``0.0``: ``create_optimizer(model, BertAdam, lr=...)`` does *not* inherit BertAdam's
    ``weight_decay=0.01``; pass it explicitly to reproduce BERT).

    Args:
        model: the model whose trainable parameters are optimised.
        optimizer_cls: any ``torch.optim.Optimizer`` class accepting parameter groups and ``lr``.
        lr: learning rate.
        weight_decay: weight decay of the decay group.
        **kwargs: further keyword arguments for ``optimizer_cls`` (e.g. ``betas``, ``eps``, ``bias_correction``).

    Raises:
        ValueError: if ``model`` has no trainable parameters.
    """
    groups = param_groups(model, weight_decay=weight_decay)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (all have requires_grad=False)")
    return optimizer_cls(groups, lr=lr, **kwargs)
