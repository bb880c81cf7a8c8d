"""Where the parts of a Hugging Face encoder classifier live: embeddings, Transformer blocks, pooler, head.

Re-init and layer-wise learning-rate decay both need to know which parameters belong to which depth. The layout is
found from the model's structure, not from a table of architectures: the base model is `model.base_model`; its
blocks are the `nn.ModuleList` holding `config.num_hidden_layers` modules (`bert.encoder.layer`,
`distilbert.transformer.layer`, ...); the pooler is a pre-trained `pooler.dense` layer, in the base model (BERT) or
beside it (DeBERTa-v2's ContextPooler). Everything else in the base model counts as embeddings (ELECTRA's
`embeddings_project` and DeBERTa's relative-position embeddings included); everything outside it is the head.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import UserInputError

__all__ = ["EncoderLayout", "find_layout"]


@dataclass(frozen=True)
class EncoderLayout:
    """Module names (as in `model.named_modules()`) of an encoder classifier's parts."""

    base: str
    """The pre-trained encoder, e.g. "bert"."""
    blocks: tuple[str, ...]
    """The Transformer blocks, bottom to top, e.g. ("bert.encoder.layer.0", ...)."""
    pooler: str | None
    """The pooler's dense layer ("bert.pooler.dense", DeBERTa's "pooler.dense"), or None when there is none."""

    def block_of(self, param_name: str) -> int | None:
        """Index (0 = bottom) of the block a parameter belongs to, or None."""
        for i, block in enumerate(self.blocks):
            if param_name.startswith(block + "."):
                return i
        return None

    def part_of(self, param_name: str) -> str:
        """ "pooler", "block", "embeddings" (any other base-model parameter) or "head"."""
        if self.pooler is not None and param_name.startswith(self.pooler + "."):
            return "pooler"
        if self.block_of(param_name) is not None:
            return "block"
        if param_name.startswith(self.base + "."):
            return "embeddings"
        return "head"


def find_layout(model: nn.Module) -> EncoderLayout:
    """The layout of a `*ForSequenceClassification` model (BERT, RoBERTa, ELECTRA, DeBERTa-v2/v3, DistilBERT, ...).

    Raises:
        UserInputError: for ALBERT (one layer shared across depth, so "the top layers" do not exist) and for models
            whose stack of `num_hidden_layers` blocks cannot be found.
    """
    config = getattr(model, "config", None)
    kind = type(model).__name__
    if getattr(config, "model_type", None) == "albert":
        raise UserInputError(
            f"{kind} shares one Transformer layer across all depths (ALBERT), so its top layers cannot be "
            "re-initialised or given their own learning rates"
        )
    depth = getattr(config, "num_hidden_layers", None)
    base_model = getattr(model, "base_model", model)
    base = next((name for name, module in model.named_modules() if module is base_model), "")
    if depth is None or base_model is model:
        raise UserInputError(f"{kind} is not a Hugging Face encoder with a base model and config.num_hidden_layers")

    stacks = [(name, module) for name, module in base_model.named_modules()
              if isinstance(module, nn.ModuleList) and len(module) == depth]  # fmt: skip
    if not stacks:
        raise UserInputError(f"cannot find the {depth} Transformer blocks of {kind} (no ModuleList of that length)")
    # Several lists of that length (rare): the stack is the one holding the most parameters.
    name, _ = max(stacks, key=lambda s: sum(p.numel() for p in s[1].parameters()))
    prefix = f"{base}.{name}"
    blocks = tuple(f"{prefix}.{i}" for i in range(depth))

    pooler = None
    for owner, owner_name in ((base_model, base), (model, "")):
        dense = getattr(getattr(owner, "pooler", None), "dense", None)
        if isinstance(dense, nn.Linear):
            pooler = f"{owner_name}.pooler.dense" if owner_name else "pooler.dense"
            break
    return EncoderLayout(base=base, blocks=blocks, pooler=pooler)
