"""Engines that answer at once, for measuring the service's own cost (HTTP, validation, batching, metrics).

:class:`InstantEngine` follows the service's engine interface (``flipkd.service.engines.Engine``): a
text's token ids are its UTF-8 bytes (at most ``max_length``), and every text gets the same unit vector of
``dim`` floats, so no model time and next to no tokenizing time is spent. ``instant_server_process`` runs
the real app under uvicorn with such engines as a child process (its main thread is the event loop), or
with ``settings.frontends`` > 1 the real front-end supervisor over that many such servers.
Benchmarks import this module from bench/; tests load it with ``monkeypatch.syspath_prepend``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np

from flipkd.models.bundle import Bundle
from flipkd.service.app import create_app
from flipkd.service.facade import EngineFactories
from flipkd.service.server import build_server, serve_frontends, wait_ready
from flipkd.service.settings import Settings

DIM_VARIABLE = "INSTANT_ENGINE_DIM"


class InstantEngine:
    """``name``'s engine at no cost: (N, ``dim``) float32 rows, each the same unit vector."""

    def __init__(self, name: str, dim: int, threshold: float = 0.5, max_length: int = 64) -> None:
        self.name = name
        self.dim = dim
        self.threshold = threshold
        self.max_length = max_length
        self._row = np.full((1, dim), dim ** -0.5, dtype=np.float32)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(text.encode("utf-8")[: self.max_length]) for text in texts]

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return np.repeat(self._row, len(ids), axis=0)


def instant_factories(dim: int) -> EngineFactories:
    """Factories giving the service an instant student (with the bundle's threshold) and teacher."""

    def student(bundle: Bundle) -> InstantEngine:
        return InstantEngine("student", dim, bundle.threshold)

    def teacher(_folder: Path, _threads: int) -> InstantEngine:
        return InstantEngine("teacher", dim)

    return EngineFactories(student=student, teacher=teacher)


def instant_app():
    """The app for ``Settings()`` with instant engines of ``$INSTANT_ENGINE_DIM`` floats (the entry point
    of each front-end worker)."""
    return create_app(Settings(), instant_factories(int(os.environ[DIM_VARIABLE])))


def serve_instant(settings: Settings, dim: int) -> None:
    """Serve the app for ``settings`` with instant engines until SIGTERM (a child process's target)."""
    if settings.frontends > 1:
        os.environ[DIM_VARIABLE] = str(dim)
        sys.stdin = None  # uvicorn passes stdin's descriptor to its workers; a spawned child has none to pass
        serve_frontends(settings, "instant_engine:instant_app")
    else:
        build_server(settings, instant_factories(dim)).run()


def frontend_workers(supervisor: int) -> set[int]:
    """The worker pids of a front-end supervisor (its children but multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children
            if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()}


@contextmanager
def instant_server_process(settings: Settings, dim: int, timeout: float = 120.0
                           ) -> Iterator[tuple[str, BaseProcess]]:
    """:func:`serve_instant` in a fresh (spawned) process; yields (base URL, process) once ready, then
    stops it with SIGTERM (uvicorn's graceful shutdown) and waits."""
    process = multiprocessing.get_context("spawn").Process(target=serve_instant, args=(settings, dim),
                                                           name="instant-server")
    process.start()
    try:
        wait_ready(f"http://127.0.0.1:{settings.port}", timeout)
        yield f"http://127.0.0.1:{settings.port}", process
    finally:
        process.terminate()
        process.join(timeout=60)
