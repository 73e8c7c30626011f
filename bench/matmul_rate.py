"""The bf16 matrix-multiply rate of the CPU or a GPU, the yardstick for model throughput figures."""

from __future__ import annotations

import time

import torch


def bf16_matmul_gflops(size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Best GFLOP/s (2 n^3 / t) of a few bf16 n x n products on ``device`` (on the CPU: torch's current
    threads; on CUDA each product is synchronised)."""
    a = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    b = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def transformer_gflop_per_token(layers: list[torch.nn.Module]) -> float:
    """Forward GFLOP per token of a stack of transformer layers: 2 x their parameters (attention scores
    over short texts are negligible next to the projections)."""
    return 2 * sum(p.numel() for layer in layers for p in layer.parameters()) / 1e9
