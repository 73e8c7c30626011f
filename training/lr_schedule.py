"""Learning-rate schedule shared by the training loops."""

from __future__ import annotations


def warmup_linear_decay(step: int, total: int, warmup_steps: int) -> float:
    """LR factor: linear warm-up to 1 over ``warmup_steps``, then linear decay to 0 at ``total``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total - step) / max(1, total - warmup_steps))
