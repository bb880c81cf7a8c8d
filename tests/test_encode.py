"""Tokenization: fast tokenizer, truncation at max_length, padding per batch, one encoding per process."""

from __future__ import annotations

import numpy as np

from steadytune.data import Split, clear_cache, encode
from steadytune.models import load_tokenizer


def _split(texts_a, texts_b=None, name="train"):
    cols = (list(texts_a),) if texts_b is None else (list(texts_a), list(texts_b))
    return Split(cols, np.arange(len(texts_a)) % 2, name)


def test_encoded_once_and_reused(tiny_model_dir):
    clear_cache()
    tok = load_tokenizer(str(tiny_model_dir))
    split = _split(["the cat sat", "a dog", "good movie"])
    first = encode(split, tok, max_length=128)
    again = encode(_split(["the cat sat", "a dog", "good movie"]), tok, max_length=128)  # same content, new object
    assert again.features is first.features
    other = encode(split, tok, max_length=4)
    assert other.features is not first.features
    assert load_tokenizer(str(tiny_model_dir)).is_fast


def test_truncation_and_per_batch_padding(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    long = " ".join(["movie"] * 300)
    enc = encode(_split(["the cat", long, "a"], ["sat on the mat", long, "dog"]), tok, max_length=16)
    assert enc.lengths.max() == 16 and enc.lengths[0] == 9  # [CLS] the cat [SEP] sat on the mat [SEP]
    batch = enc.batch([0, 2], tok)
    assert batch["input_ids"].shape == (2, 9)  # padded to the longest in the batch, not to max_length
    assert batch["attention_mask"].sum().item() == 9 + 5
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert batch["labels"].tolist() == [0, 0]
