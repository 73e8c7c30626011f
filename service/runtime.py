"""torch's process-wide runtime settings for a server: threads, the matmul primitive caches, and the
student's number format.

The student runs in bfloat16 where the hardware multiplies it natively (a GPU, or a CPU with AVX512-BF16
or AMX) and in float32 elsewhere: without those instructions torch's CPU bf16 matmuls are emulated and ran
~5x slower than fp32 here (30 vs 140 GFLOP/s on one core of an AVX-512 Xeon without BF16).

torch's CPU matmuls keep a compiled primitive per input shape in two caches (ideep's, capacity
``LRU_CACHE_CAPACITY``, and oneDNN's, ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``; 1,024 each by default), and a
server meets a new shape with nearly every (batch size, padded length): with the defaults the student's
live heap kept growing on batches of varying shape. ``configure_torch`` caps both at
``PRIMITIVE_CACHE_CAPACITY`` (enough for the shapes of one forward pass) unless the environment sets
them. They are read when the first primitive is built, so it must run before the first forward.

torch is imported only where a torch student runs: a service with an onnxruntime student never loads it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flipkd.service.settings import Settings, StudentDtype

if TYPE_CHECKING:
    import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

PRIMITIVE_CACHE_CAPACITY = 16
PRIMITIVE_CACHE_VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")


def configure_torch(settings: Settings) -> None:
    """Cap the primitive caches and, for a torch student, set torch's thread count."""
    for variable in PRIMITIVE_CACHE_VARIABLES:
        os.environ.setdefault(variable, str(PRIMITIVE_CACHE_CAPACITY))
    if settings.student_runtime == "torch":
        import torch

        torch.set_num_threads(settings.torch_threads)


def cpu_multiplies_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """The CPU has native bf16 matrix instructions (its flags list one of ``BF16_CPU_FLAGS``)."""
    try:
        flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def student_dtype(choice: StudentDtype = "auto", device: str | None = None) -> torch.dtype:
    """``choice``, or for "auto" bfloat16 on CUDA or a CPU that multiplies bf16 natively, else float32."""
    import torch

    if choice != "auto":
        return {"bfloat16": torch.bfloat16, "float32": torch.float32}[choice]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.bfloat16 if device.startswith("cuda") or cpu_multiplies_bf16() else torch.float32


def runtime_info() -> dict:
    """What ``/info`` reports about the process: its id (which front end answered) and, where torch is
    loaded, its version, threads, primitive cache capacities and the student's number format under
    "auto"."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"pid": os.getpid(), "torch": None}
    return {"pid": os.getpid(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            **{variable: os.environ.get(variable) for variable in PRIMITIVE_CACHE_VARIABLES},
            "auto_student_dtype": str(student_dtype()).removeprefix("torch.")}
