"""Give the C heap's free pages back to the operating system now and then.

glibc's malloc keeps what torch, onnxruntime and Python free inside its arenas (one per thread that
allocates), and batches of varying shape leave free chunks scattered between live ones, so a server's
resident memory climbs over its first thousands of requests while its live heap does not.
``malloc_trim(0)`` walks every arena and releases the whole free pages inside it (``MADV_DONTNEED``).
:func:`trim_periodically` calls it every ``interval_s`` seconds in a worker thread (ctypes releases the
GIL for the call, so requests keep flowing). Where the C library has no ``malloc_trim`` (musl, macOS)
:func:`heap_trimmer` returns None and nothing is trimmed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable

from prometheus_client import Histogram


def heap_trimmer() -> Callable[[], int] | None:
    """``malloc_trim(0)`` of this process's C library (returns 1 when memory was released), or None."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    malloc_trim = getattr(ctypes.CDLL(library), "malloc_trim", None)
    if malloc_trim is None:
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return lambda: malloc_trim(0)


async def trim_periodically(interval_s: float, seconds: Histogram) -> None:
    """Trim the heap every ``interval_s`` seconds until cancelled; each trim's duration -> ``seconds``."""
    trim = heap_trimmer()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        started = time.perf_counter()
        await asyncio.to_thread(trim)
        seconds.observe(time.perf_counter() - started)
