"""Explicit attention masks, and decoder layers run one by one on them (no mask builder of the base's)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn


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


def run_layers(body: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor, layers: range,
               both_ways: range = range(0), grad_from: int = 0) -> torch.Tensor:
    """Run ``body.layers[i]`` for i in ``layers`` over ``hidden`` (the first one's input, (B, T, H)) and
    return the last one's output. Layer i attends both ways (padding-only mask) when i is in ``both_ways``,
    causally otherwise; layers below ``grad_from`` run without autograd. Masks and rotary table are built
    here from ``attention_mask`` (B, T) alone, so nothing depends on the batch's shape (it traces to ONNX)."""
    positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    rotary = body.rotary_emb(hidden, positions)
    causal = additive_mask(attention_mask, hidden.dtype)
    read = additive_mask(attention_mask, hidden.dtype, causal=False) if len(both_ways) else causal
    for index in layers:
        with torch.no_grad() if index < grad_from else nullcontext():
            output = body.layers[index](hidden, attention_mask=read if index in both_ways else causal,
                                        position_ids=positions, position_embeddings=rotary)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden
