"""torch's process-wide runtime settings for a server: threads and the matmul primitive caches.

torch's CPU matmuls keep a compiled primitive per input shape in two caches (ideep's, capacity
``LRU_CACHE_CAPACITY``, and oneDNN's, ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``; 1,024 each by default), and a
server meets a new shape with nearly every (batch size, padded length): with the defaults the student's
live heap kept growing on batches of varying shape. ``configure_torch`` caps both at
``PRIMITIVE_CACHE_CAPACITY`` (enough for the shapes of one forward pass) unless the environment sets
them. They are read when the first primitive is built, so it must run before the first forward.
"""

from __future__ import annotations

import os

import torch

from flipkd.service.settings import Settings

PRIMITIVE_CACHE_CAPACITY = 16
PRIMITIVE_CACHE_VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")


def configure_torch(settings: Settings) -> None:
    torch.set_num_threads(settings.torch_threads)
    for variable in PRIMITIVE_CACHE_VARIABLES:
        os.environ.setdefault(variable, str(PRIMITIVE_CACHE_CAPACITY))


def runtime_info() -> dict:
    """What ``/info`` reports about the process: torch version, threads, primitive cache capacities."""
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            **{variable: os.environ.get(variable) for variable in PRIMITIVE_CACHE_VARIABLES}}
