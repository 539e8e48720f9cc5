import itertools

import pytest

from graphfuse.encoder.micro_batches import length_groups


def cost(lengths, sizes, overhead):
    total, start = 0, 0
    for size in sizes:
        total += overhead + size * lengths[start + size - 1]
        start += size
    return total


def test_similar_lengths_share_one_pass():
    assert length_groups([8, 8, 9, 9, 10], budget=2048, overhead=64) == [5]


def test_a_jump_in_length_costing_more_than_a_pass_is_cut():
    lengths = [5] * 32 + [24] * 8
    sizes = length_groups(lengths, budget=2048, overhead=64)
    assert sizes == [32, 8]  # one pass pads 32 texts by 19 tokens each: 608 tokens against 64
    assert cost(lengths, sizes, 64) < cost(lengths, [40], 64)


def test_no_overhead_free_cuts_and_huge_overhead_one_pass():
    lengths = [3, 4, 4, 7, 9]
    assert length_groups(lengths, budget=2048, overhead=0) == [1, 2, 1, 1]
    assert length_groups(lengths, budget=2048, overhead=10**9) == [5]


def test_every_pass_stays_within_the_budget():
    lengths = sorted([3] * 50 + [30] * 20 + [200])
    sizes = length_groups(lengths, budget=96, overhead=8)
    assert sum(sizes) == len(lengths)
    start = 0
    for size in sizes:
        assert size == 1 or size * lengths[start + size - 1] <= 96  # a text over the budget goes alone
        start += size


@pytest.mark.parametrize("lengths", [[2, 5, 5, 6, 11, 12, 30], [1, 1, 9, 9, 9, 10, 40, 41]])
def test_the_cut_is_the_cheapest_contiguous_one(lengths):
    best = min(
        cost(lengths, sizes, 16)
        for cuts in itertools.product([0, 1], repeat=len(lengths) - 1)
        for sizes in [_sizes(cuts)]
    )
    assert cost(lengths, length_groups(lengths, budget=4096, overhead=16), 16) == best


def _sizes(cuts):
    sizes, size = [], 1
    for cut in cuts:
        if cut:
            sizes.append(size)
            size = 1
        else:
            size += 1
    return [*sizes, size]


def test_lengths_out_of_order_are_refused():
    with pytest.raises(ValueError, match="ascending"):
        length_groups([5, 3], budget=100, overhead=1)


def test_nothing_to_cut():
    assert length_groups([], budget=100, overhead=1) == []
