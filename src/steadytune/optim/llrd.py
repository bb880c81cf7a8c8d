r"""Layer-wise learning-rate decay (LLRD; Howard & Ruder 2018, Zhang et al. 2021 §6): lower layers, smaller steps."""

from __future__ import annotations

from typing import Any

from torch import nn

from steadytune.layout import find_layout
from steadytune.optim.param_groups import trainable_parameters

__all__ = ["llrd_param_groups"]


def llrd_param_groups(model: nn.Module, lr: float, decay: float, *, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    r"""Parameter groups whose learning rate shrinks geometrically with depth below the top of the encoder.

    The convention of the paper's code (asappresearch/revisit-bert-finetuning, ``run_glue.py``
    ``get_optimizer_grouped_parameters``), for a model with :math:`L` Transformer blocks and decay :math:`\xi`:

    ================================  ========================  ===================================
    parameters                        learning rate             weight decay
    ================================  ========================  ===================================
    classifier head and pooler        :math:`\eta`              none
    top block (block :math:`L`)       :math:`\eta\xi`           ``weight_decay``
    block :math:`k` from the top      :math:`\eta\xi^k`         ``weight_decay``
    bottom block (:math:`k = L`)      :math:`\eta\xi^L`         ``weight_decay``
    embeddings                        :math:`\eta\xi^{L+1}`     ``weight_decay``
    ================================  ========================  ===================================

    Biases and normalisation-layer weights never get weight decay (decided by module type, see
    :func:`~steadytune.optim.param_groups`). "Embeddings" is every base-model parameter outside the blocks and the
    pooler (so ELECTRA's ``embeddings_project`` and DeBERTa's relative-position embeddings sit at the bottom), and
    "head" is everything outside the base model (see :mod:`steadytune.layout`). Every trainable parameter appears in
    exactly one group; frozen ones in none.

    Args:
        model: a ``*ForSequenceClassification`` encoder (BERT, RoBERTa, ELECTRA, DeBERTa-v2/v3, DistilBERT).
        lr: the base learning rate :math:`\eta`, used for the head and pooler.
        decay: :math:`\xi \in (0, 1]`; 1 gives every group the same rate.
        weight_decay: weight decay of the blocks' and embeddings' weight matrices.

    Returns:
        Groups with ``params``, ``param_names``, ``lr``, ``weight_decay`` and ``depth`` (0 for the head and pooler,
        :math:`k` for block :math:`k` from the top, :math:`L+1` for the embeddings), head first. Empty groups are
        left out.
    """
    if not lr > 0:
        raise ValueError(f"Invalid learning rate: {lr!r} (must be positive)")
    if not 0 < decay <= 1:
        raise ValueError(f"Invalid layer-wise decay: {decay!r} (must be in (0, 1])")
    if not weight_decay >= 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay!r}")
    layout = find_layout(model)
    num_blocks = len(layout.blocks)

    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param, exempt in trainable_parameters(model):
        part = layout.part_of(name)
        if part in ("head", "pooler"):
            depth, exempt = 0, True  # the paper's code: head and pooler at the base lr, no weight decay
        elif part == "block":
            depth = num_blocks - layout.block_of(name)  # type: ignore[operator]
        else:
            depth = num_blocks + 1
        group = groups.setdefault((depth, exempt), {
            "params": [], "param_names": [], "lr": lr * decay**depth,
            "weight_decay": 0.0 if exempt else weight_decay, "depth": depth,
        })  # fmt: skip
        group["params"].append(param)
        group["param_names"].append(name)
    # Head first, then down the stack; within a depth the decayed group first (as param_groups does).
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1]))]
