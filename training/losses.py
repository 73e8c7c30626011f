"""Pair losses. Every loss takes (similarities (N,), labels or targets (N,)) and returns a scalar.

Conventions: ``s_i`` is a model's cosine similarity for pair i, ``y_i`` in {0, 1} its label.
"""

from __future__ import annotations

import torch


def cosent_loss(similarities: torch.Tensor, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su, 2022): L = log(1 + sum_{(i,j): y_i > y_j} exp(scale * (s_j - s_i))).

    Every pair ranked above another by its label must have the larger cosine. With no ordered pairs
    in the batch (one class only) the loss is log(1) = 0.
    """
    differences = scale * (similarities[None, :] - similarities[:, None])
    ordered = labels[:, None] > labels[None, :]
    masked = differences.masked_fill(~ordered, float("-inf")).flatten()
    zero = torch.zeros(1, dtype=masked.dtype, device=masked.device)
    return torch.logsumexp(torch.cat([zero, masked]), dim=0)
