"""Optimizers for few-sample fine-tuning.

:class:`AdamW` (bias-corrected, identical to ``torch.optim.AdamW``) and :class:`BertAdam` (the original BERT update
without bias correction), their functional core :func:`adamw`, and :func:`param_groups` / :func:`create_optimizer`
for the usual no-decay-on-biases-and-norms split.
"""

from steadytune.optim.adamw import AdamW, BertAdam, adamw
from steadytune.optim.param_groups import create_optimizer, param_groups

__all__ = ["AdamW", "BertAdam", "adamw", "create_optimizer", "param_groups"]
