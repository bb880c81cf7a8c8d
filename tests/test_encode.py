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


def test_length_groups_are_the_cheapest_grouping_by_exhaustive_search():
    """Against every way of splitting the rows into groups (each costing its rows × its longest row, plus the call
    cost): sorted contiguous runs are enough, and the dynamic programme finds the cheapest."""
    from itertools import product

    from steadytune.data.encode import length_groups

    def cost(groups, lengths, call_cost):
        return sum(len(g) * lengths[g].max() + call_cost for g in groups)

    rng = np.random.default_rng(0)
    for _ in range(25):
        lengths = rng.integers(2, 60, size=int(rng.integers(1, 7)))
        call_cost = float(rng.choice([0, 10, 40, 1e9]))
        groups = length_groups(lengths, call_cost=call_cost)
        assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))  # each row once
        best = min(  # every assignment of rows to labelled groups: all partitions, sorted or not
            cost([np.flatnonzero(np.array(a) == k) for k in set(a)], lengths, call_cost)
            for a in product(range(len(lengths)), repeat=len(lengths))
        )
        assert cost(groups, lengths, call_cost) == best, (lengths, call_cost)
    assert len(length_groups(np.array([5, 9, 30]), call_cost=1e9)) == 1
    assert [len(g) for g in length_groups(np.array([7, 3, 7, 3]), call_cost=0)] == [2, 2]
