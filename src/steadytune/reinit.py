"""Re-initialising the pooler and the top Transformer blocks (Zhang et al. 2021, §5 "Re-init").

The top layers of a pre-trained encoder are specialised to the pre-training task and transfer poorly; drawing them
afresh speeds up and stabilises few-sample fine-tuning. Weights get N(0, initializer_range²) as in BERT's own
initialisation (paper §5; Devlin et al. 2019: 0.02), biases 0, LayerNorm weight 1 and bias 0.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from .errors import UserInputError
from .layout import find_layout
from .models import init_new_parameters

__all__ = ["reinit_top_layers"]


def reinit_top_layers(
    model: nn.Module, num_layers: int, *, pooler: bool = True, generator: torch.Generator | None = None
) -> list[str]:
    """Re-initialise the top `num_layers` Transformer blocks of `model` and, with `pooler`, its pooler dense layer.

    Works for BERT, RoBERTa, ELECTRA, DeBERTa-v2/v3 and DistilBERT sequence classifiers (see `steadytune.layout`).
    Every other parameter and every buffer stays bit-identical, and `requires_grad` is never changed.
    `model._init_weights` is not used: in transformers 5 it leaves weights loaded by `from_pretrained` alone.

    `pooler=True` on a model without a pre-trained pooler (RoBERTa, ELECTRA and DistilBERT classifiers carry a new
    head instead) is a no-op for the pooler: the returned names say what was drawn.

    Args:
        model: a `*ForSequenceClassification` model.
        num_layers: how many blocks, counted from the top; 0 re-initialises only the pooler.
        pooler: also re-initialise the pooler's dense layer (the paper always did, `--reinit_pooler`).
        generator: the random stream; default a fresh `torch.Generator` seeded 0, so calls are reproducible.

    Returns:
        The names of the re-initialised parameters.

    Raises:
        UserInputError: `num_layers` negative or larger than the model's depth; ALBERT (shared layers).
    """
    layout = find_layout(model)
    depth = len(layout.blocks)
    if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) or not 0 <= num_layers <= depth:
        raise UserInputError(f"num_layers must be an integer from 0 to the model's depth {depth}, got {num_layers!r}")
    prefixes = [f"{b}." for b in layout.blocks[depth - int(num_layers) :]]
    if pooler and layout.pooler is not None:
        prefixes.append(f"{layout.pooler}.")
    names = {n for n, _ in model.named_parameters() if n.startswith(tuple(prefixes))} if prefixes else set()
    std = getattr(model.config, "initializer_range", 0.02)  # BERT's default (Devlin et al. 2019)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    return init_new_parameters(model, names, std=std, generator=generator)
