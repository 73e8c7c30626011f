"""Split a batch of texts into sub-batches that waste little work on padding.

A forward over ``size`` texts padded to the longest, ``longest`` tokens, costs about
``overhead + size x longest`` token-steps: padding is computed like real tokens, and each forward has a
fixed cost on top (on CPU, streaming the layers' weights from memory), and small sub-batches run below
the per-token rate of large ones. ``STUDENT_CPU_OVERHEAD_TOKENS`` and ``TEACHER_CPU_OVERHEAD_TOKENS``
are the overheads that split mixed batches of 32 ATEC texts fastest on one thread, for the 8-layer
student (torch, bf16) and the e5-small ONNX teacher (fp32) (``bench/forward_cost.py``, which also fits
the fixed cost alone). With the lengths sorted longest first, the cheapest split into contiguous
sub-batches of at most ``max_size`` is exact by dynamic programming:

    best[0] = 0,   best[i] = min over i - max_size <= j < i of  best[j] + overhead + (i - j) x length[j]

so one long text among short ones gets a forward of its own instead of padding all of them to its length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STUDENT_CPU_OVERHEAD_TOKENS = 128
TEACHER_CPU_OVERHEAD_TOKENS = 16


def right_padded(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``(input_ids, attention_mask)`` of shape (len(ids), longest): each row's ids, then
    ``pad_id`` with mask 0 up to the longest row."""
    longest = max(len(row) for row in ids)
    input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(ids), longest), dtype=np.int64)
    for index, row in enumerate(ids):
        input_ids[index, :len(row)] = row
        attention_mask[index, :len(row)] = 1
    return input_ids, attention_mask


def padding_aware_batches(lengths: Sequence[int], max_size: int, overhead: int | None) -> list[list[int]]:
    """Indices into ``lengths`` grouped into sub-batches (longest first) minimising the padded work
    above; ``overhead=None`` (one forward costs far more than padding, as on a GPU) keeps consecutive
    sub-batches of ``max_size`` in the same order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    if overhead is None:
        return [order[start:start + max_size] for start in range(0, len(order), max_size)]
    best = [0] + [0] * len(order)
    start_of = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        candidates = ((best[start] + overhead + (end - start) * lengths[order[start]], start)
                      for start in range(max(0, end - max_size), end))
        best[end], start_of[end] = min(candidates)
    batches: list[list[int]] = []
    end = len(order)
    while end > 0:
        batches.append(order[start_of[end]:end])
        end = start_of[end]
    return batches[::-1]
