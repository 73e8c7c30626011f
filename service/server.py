"""Run the app under uvicorn. SIGTERM stops intake and waits for the requests in flight (uvicorn's
graceful shutdown, bounded by ``graceful_timeout_s``); the engines then drain their queues.

``running_server`` runs one in a thread of this process (benchmarks, tests, embedding in a program).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from service.app import EngineFactories, create_app
from service.runtime import configure_torch
from service.settings import Settings


def build_server(settings: Settings, factories: EngineFactories | None = None,
                 graceful_timeout_s: float = 30.0) -> uvicorn.Server:
    configure_torch(settings)
    app = create_app(settings, factories)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=graceful_timeout_s, access_log=False)
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    build_server(settings).run()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(base: str, timeout: float = 240.0) -> None:
    """Poll ``{base}/readyz`` until it answers 200; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base} did not become ready within {timeout:.0f} s")


@contextmanager
def running_server(settings: Settings, factories: EngineFactories | None = None,
                   graceful_timeout_s: float = 10.0) -> Iterator[str]:
    """A real uvicorn serving the app in a thread of this process; yields its base URL once ready."""
    server = build_server(settings, factories, graceful_timeout_s)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.port}"
    try:
        wait_ready(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_timeout_s + 30)
