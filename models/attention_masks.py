"""Explicit attention masks for running decoder layers one by one (no mask builder of the base's)."""

from __future__ import annotations

import torch


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype, causal: bool = True) -> torch.Tensor:
    """(B, 1, T, T): 0 where query t may attend key s, else the dtype's min. Key s must be a real token
    (``attention_mask`` (B, T) is 1 there) and, when ``causal``, s <= t. Without ``causal`` every query,
    padding included, attends every real token, so no row is fully masked."""
    length = attention_mask.shape[1]
    allowed = attention_mask[:, None, None, :].bool().expand(-1, 1, length, -1)
    if causal:
        order = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
        allowed = allowed & order[None, None]
    return torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)
