"""The number format torch computes in: bfloat16 where the hardware multiplies it natively (a GPU, or a CPU
with AVX512-BF16 or AMX), float32 elsewhere.

Without those instructions torch's CPU bf16 matmuls are emulated: ~5x slower than fp32 on one core of an
AVX-512 Xeon without BF16 (30 vs 140 GFLOP/s), ~45x slower on one core of an AVX2-only AMD EPYC (0.75 vs
35 GFLOP/s, 1024^3 products), where one e5-small teacher training step took 60-80 s instead of 9 s.
Serving, training and evaluation all resolve "auto" here. torch is imported only when a dtype is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "bfloat16", "float32"]

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags from ``cpuinfo`` (empty where it cannot be read)."""
    try:
        line = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split())


def cpu_multiplies_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """The CPU has native bf16 matrix instructions (its flags list one of ``BF16_CPU_FLAGS``)."""
    return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))


def compute_dtype(choice: Precision = "auto", device: str | None = None) -> torch.dtype:
    """``choice``, or for "auto" bfloat16 on CUDA or a CPU that multiplies bf16 natively, else float32
    (``device`` None: CUDA when available, else the CPU)."""
    import torch

    if choice != "auto":
        return {"bfloat16": torch.bfloat16, "float32": torch.float32}[choice]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.bfloat16 if device.startswith("cuda") or cpu_multiplies_bf16() else torch.float32
