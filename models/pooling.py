"""Token pooling under an attention mask."""

from __future__ import annotations

import torch


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean_t(h_t * m_t) = sum_t h_t m_t / max(sum_t m_t, 1); hidden (B, T, D), mask (B, T) -> (B, D)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def second_copy_mask(mask: torch.Tensor) -> torch.Tensor:
    """The tokens of an echoed row's second copy (:func:`flipkd.models.text_encoder.echoed`): for a row
    of L = 2n + 1 real tokens, positions j with 2j >= L + 1 (n + 1 <= j < L); mask (B, T) -> (B, T)."""
    lengths = mask.sum(dim=1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return mask * (2 * positions >= lengths + 1).to(mask.dtype)
