"""Length-grouped training batches: every example once per epoch, reproducible from the seed, little padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steadytune.data import GROUP_BATCHES, epoch_batches, padding_fraction


def _lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    # a long-tailed spread like RTE's: many short pairs, some truncated at 128
    return np.minimum(np.random.default_rng(seed).lognormal(4.0, 0.6, n).astype(int) + 5, 128)


@pytest.mark.parametrize("group", [GROUP_BATCHES, 3, None])
@pytest.mark.parametrize("n, bs", [(1000, 32), (64, 10), (5, 32), (33, 1)])
def test_every_example_once_and_batch_sizes(n, bs, group):
    batches = epoch_batches(_lengths(n), bs, torch.Generator().manual_seed(0), group_batches=group)
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    assert len(batches) == math.ceil(n / bs)  # the step count per epoch does not change with grouping
    sizes = [len(b) for b in batches]
    assert sizes.count(bs) >= len(batches) - 1 and sum(s < bs for s in sizes) <= 1  # at most one short batch


def test_the_order_is_a_function_of_the_seed():
    lengths = _lengths()

    def run(seed: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(seed)
        return [b.tolist() for _ in range(3) for b in epoch_batches(lengths, 32, gen)]  # three epochs

    assert run(0) == run(0)
    assert run(0) != run(1)
    epochs = [run(0)[i * 32 : (i + 1) * 32] for i in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # each epoch draws a new order


def test_without_grouping_it_is_a_plain_shuffle():
    batches = epoch_batches(_lengths(100), 32, torch.Generator().manual_seed(5), group_batches=None)
    assert torch.cat(batches).tolist() == torch.randperm(100, generator=torch.Generator().manual_seed(5)).tolist()


def test_grouping_removes_most_padding_but_keeps_batches_random():
    lengths = _lengths()
    gen = torch.Generator().manual_seed(0)
    shuffled = np.mean([padding_fraction(lengths, epoch_batches(lengths, 32, gen, group_batches=None))
                        for _ in range(5)])  # fmt: skip
    grouped = np.mean([padding_fraction(lengths, epoch_batches(lengths, 32, gen)) for _ in range(5)])
    assert shuffled > 0.3 and grouped < shuffled / 3
    # batches are not simply consecutive runs of the sorted order: the batch order is shuffled, not by length
    maxima = [int(lengths[b.numpy()].max()) for b in epoch_batches(lengths, 32, torch.Generator().manual_seed(1))]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)
    # and the same example lands with different partners in different epochs
    gen = torch.Generator().manual_seed(2)
    partners = [{tuple(sorted(b.tolist())) for b in epoch_batches(lengths, 32, gen)} for _ in range(2)]
    assert not partners[0] & partners[1]


def test_padding_fraction_by_hand():
    lengths = np.array([10, 10, 5, 1])
    assert padding_fraction(lengths, [torch.tensor([0, 1]), torch.tensor([2, 3])]) == pytest.approx(1 - 26 / 30)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        epoch_batches(_lengths(10), 0, torch.Generator())
    with pytest.raises(ValueError, match="group_batches must be at least 1 or None, got 0"):
        epoch_batches(_lengths(10), 4, torch.Generator(), group_batches=0)


@pytest.mark.parametrize("batch_size,max_tokens", [(128, 4096), (4, 4096), (128, 100), (1, 4096), (128, 1)])
def test_eval_batches_cover_every_example_once_within_both_limits(batch_size, max_tokens):
    from steadytune.evaluate import _eval_batches

    lengths = np.random.default_rng(0).integers(3, 129, size=301)
    batches = _eval_batches(lengths, batch_size, max_tokens)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(301))
    assert np.all(np.diff(lengths[flat]) >= 0)  # sorted by length
    for b in batches:
        assert len(b) <= batch_size
        assert len(b) == 1 or len(b) * lengths[b].max() <= max_tokens  # a single over-long example still gets a batch
    # greedy: no batch could have taken the next example
    for b, nxt in zip(batches, batches[1:]):
        grown = len(b) + 1
        assert grown > batch_size or grown * lengths[nxt[0]] > max_tokens
