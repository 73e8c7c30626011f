"""Token pooling under an attention mask."""

from __future__ import annotations

import torch


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean_t(h_t * m_t) = sum_t h_t m_t / max(sum_t m_t, 1); hidden (B, T, D), mask (B, T) -> (B, D)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
