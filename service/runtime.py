"""torch's process-wide runtime settings for a server: threads and the matmul primitive caches. The
student's number format is :func:`flipkd.models.precision.compute_dtype`'s.

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
from typing import TYPE_CHECKING

from flipkd.models.precision import compute_dtype
from flipkd.service.settings import Settings

if TYPE_CHECKING:
    pass

PRIMITIVE_CACHE_CAPACITY = 16
PRIMITIVE_CACHE_VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")


def configure_torch(settings: Settings) -> None:
    """Cap the primitive caches and, for a torch student, set torch's thread count."""
    for variable in PRIMITIVE_CACHE_VARIABLES:
        os.environ.setdefault(variable, str(PRIMITIVE_CACHE_CAPACITY))
    if settings.student_runtime == "torch":
        import torch

        torch.set_num_threads(settings.torch_threads)


def runtime_info() -> dict:
    """What ``/info`` reports about the process: its id (which front end answered) and, where torch is
    loaded, its version, threads, primitive cache capacities and the student's number format under
    "auto"."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"pid": os.getpid(), "torch": None}
    return {"pid": os.getpid(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            **{variable: os.environ.get(variable) for variable in PRIMITIVE_CACHE_VARIABLES},
            "auto_student_dtype": str(compute_dtype()).removeprefix("torch.")}
