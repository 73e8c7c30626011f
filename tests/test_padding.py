import itertools
import random

import numpy as np
import pytest

from flipkd.models.padding import padding_aware_batches, right_padded


def padded_work(lengths: list[int], batches: list[list[int]], overhead: int) -> int:
    return sum(overhead + len(batch) * max(lengths[i] for i in batch) for batch in batches)


def brute_force_work(lengths: list[int], max_size: int, overhead: int) -> int:
    """The cheapest split of the length-sorted order into contiguous runs, by trying every cut set."""
    ordered = sorted(lengths, reverse=True)
    best = None
    for cuts in itertools.product((False, True), repeat=len(ordered) - 1):
        runs, current = [], [ordered[0]]
        for length, cut in zip(ordered[1:], cuts, strict=True):
            if cut:
                runs.append(current)
                current = []
            current.append(length)
        runs.append(current)
        if max(len(run) for run in runs) <= max_size:
            work = sum(overhead + len(run) * run[0] for run in runs)
            best = work if best is None else min(best, work)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_split_is_a_partition_within_the_size_cap_and_optimal(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(3, 20), rng.randint(20, 120)]) for _ in range(rng.randint(1, 11))]
    max_size, overhead = rng.randint(1, 8), rng.choice([0, 16, 64, 500])
    batches = padding_aware_batches(lengths, max_size, overhead)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= max_size for batch in batches)
    assert padded_work(lengths, batches, overhead) == brute_force_work(lengths, max_size, overhead)


def test_one_long_text_gets_its_own_forward():
    lengths = [12] * 31 + [400]
    batches = padding_aware_batches(lengths, 32, 64)
    assert batches == [[31], list(range(31))]
    assert padded_work(lengths, batches, 64) < padded_work(lengths, [list(range(32))], 64) / 5


def test_equal_lengths_stay_in_full_batches():
    assert [len(batch) for batch in padding_aware_batches([10] * 64, 32, 64)] == [32, 32]


def test_without_overhead_consecutive_longest_first_batches_of_max_size():
    assert padding_aware_batches([5, 1, 3, 9, 2], 2, None) == [[3, 0], [2, 4], [1]]


def test_right_padded_rows_keep_their_ids_then_the_pad_id_with_mask_zero():
    input_ids, attention_mask = right_padded([[5, 6, 7], [8], [9, 10]], pad_id=0)
    np.testing.assert_array_equal(input_ids, [[5, 6, 7], [8, 0, 0], [9, 10, 0]])
    np.testing.assert_array_equal(attention_mask, [[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    assert input_ids.dtype == attention_mask.dtype == np.int64
