"""Run the app under uvicorn. SIGTERM stops intake and waits for the requests in flight (uvicorn's
graceful shutdown, bounded by ``graceful_timeout_s``); the engines then drain their queues.

``running_server`` runs one in a thread of this process (tests, embedding in a program);
``server_process`` runs ``flipkd serve`` as its own process, as deployed (benchmarks: a load generator
in the same process would compete with the server for the GIL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from flipkd.service.app import create_app
from flipkd.service.facade import EngineFactories
from flipkd.service.runtime import configure_torch
from flipkd.service.settings import Settings


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


def wait_ready(base: str, timeout: float = 240.0, path: str = "/readyz") -> None:
    """Poll ``{base}{path}`` until it answers 200; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base}{path} did not answer 200 within {timeout:.0f} s")


@contextmanager
def running_server(settings: Settings, factories: EngineFactories | None = None,
                   graceful_timeout_s: float = 10.0, until_ready: bool = True) -> Iterator[str]:
    """A real uvicorn serving the app in a thread of this process; yields its base URL once ready (once
    alive, while the models may still load, when ``until_ready`` is False)."""
    server = build_server(settings, factories, graceful_timeout_s)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.port}"
    try:
        wait_ready(base, path="/readyz" if until_ready else "/healthz")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_timeout_s + 30)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``FLIPKD_*`` environment that reproduces ``settings`` (unset fields left out)."""
    env = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, list):
            value = ",".join(map(str, value)) or None
        if value is not None:
            env[f"FLIPKD_{name.upper()}"] = str(value)
    return env


@contextmanager
def server_process(settings: Settings, timeout: float = 600.0, log: Path | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen]]:
    """``flipkd serve`` with ``settings`` as a child process; yields (base URL, process) once ready,
    then stops it with SIGTERM (graceful) and waits. Its output goes to ``log`` (else nowhere)."""
    sink = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "flipkd", "serve"],
                               env={**os.environ, **settings_env(settings)}, stdout=sink,
                               stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{settings.port}"
        wait_ready(base, timeout)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        if log is not None:
            sink.close()
