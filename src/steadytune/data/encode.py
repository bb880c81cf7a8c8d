"""Tokenize once, pad per batch.

Each split is encoded with the model's fast tokenizer, truncated at `max_length` but not padded; batches are padded
to their own longest example (the paper's code padded everything to 128, which mostly multiplies pad tokens).
Encodings are cached per (tokenizer, split content, max_length), so every run in a process reuses them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from .splits import Split

__all__ = ["EncodedSplit", "clear_cache", "encode"]

_CACHE: OrderedDict[tuple, EncodedSplit] = OrderedDict()
_CACHE_SIZE = 64  # a study touches a few tasks × 3 splits; 64 entries is plenty and bounds memory


@dataclass(eq=False)
class EncodedSplit:
    """Token ids of every example (unpadded) and the labels as a tensor."""

    features: list[dict[str, list[int]]]
    labels: torch.Tensor
    lengths: np.ndarray
    split: Split

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, indices, tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
        """Pad the chosen examples to the longest among them; adds `labels`."""
        # transformers 4.x advises against pad() after a fast tokenizer's encode; padding features that were
        # tokenized once and cached is the point here, so mark that advice as already given.
        getattr(tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
        out = tokenizer.pad([self.features[i] for i in indices], padding="longest", return_tensors="pt")
        out["labels"] = self.labels[torch.as_tensor(indices, dtype=torch.long)]
        return dict(out)


def _tokenizer_key(tokenizer: PreTrainedTokenizerBase) -> tuple:
    return (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), tokenizer.padding_side)


def encode(split: Split, tokenizer: PreTrainedTokenizerBase, *, max_length: int = 128) -> EncodedSplit:
    """Encode a split (cached). Pairs are truncated longest-first, as BERT's GLUE processors did.

    A `max_length` beyond the model's position embeddings is refused here, before any training (the model is the
    tokenizer's own folder or hub id; a tokenizer from elsewhere is not checked)."""
    from ..models import check_max_length

    check_max_length(tokenizer.name_or_path, max_length, tokenizer)
    key = (_tokenizer_key(tokenizer), split.fingerprint, max_length)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        cached = _CACHE[key]
        return EncodedSplit(cached.features, cached.labels, cached.lengths, split)
    enc = tokenizer(*split.texts, truncation=True, max_length=max_length, padding=False)
    names = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    features = [{k: enc[k][i] for k in names} for i in range(len(split))]
    dtype = torch.float32 if split.is_regression else torch.long
    labels = torch.as_tensor(split.labels, dtype=dtype)
    lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(split))
    result = EncodedSplit(features, labels, lengths, split)
    _CACHE[key] = result
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def clear_cache() -> None:
    _CACHE.clear()
