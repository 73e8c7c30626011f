"""Run the app under uvicorn. SIGTERM stops intake and waits for the requests in flight (uvicorn's
graceful shutdown, bounded by ``graceful_timeout_s``); the engines then drain their queues.

``running_server`` runs one in a thread of this process (tests, embedding in a program);
``server_process`` runs ``flipkd serve`` as its own process, as deployed (benchmarks: a load generator
in the same process would compete with the server for the GIL).

With ``frontends`` = N > 1, ``serve`` runs uvicorn's worker supervisor (:func:`serve_frontends`): N
worker processes, each a whole server with its own engines (one model copy each), share the listening
socket, and the kernel hands each new connection to one of them. One event loop spends ~0.37 ms of CPU
per one-pair ``/match`` (docs/benchmarks.md), so one process cannot feed an engine faster than that; N
front ends lift the ceiling where N cores are free. The supervisor gives the workers their settings as
``FLIPKD_*`` variables and a fresh ``PROMETHEUS_MULTIPROC_DIR`` (one exposition over all of them: see
:mod:`flipkd.service.metrics`), restarts a worker that dies and retires its live gauges, and on SIGTERM
stops every worker gracefully.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from flipkd.service.app import create_app
from flipkd.service.facade import EngineFactories
from flipkd.service.metrics import MULTIPROCESS_DIR_VARIABLE
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
    if settings.frontends > 1:
        serve_frontends(settings)
    else:
        build_server(settings).run()


APP_FACTORY = "flipkd.service.server:app_from_environment"
# The supervisor pings each worker and replaces one that does not answer in time; a worker answers once
# it has imported the service (torch among it), which took over uvicorn's default 5 s on a busy machine.
WORKER_HEALTHCHECK_S = 60.0


def app_from_environment():
    """The app for the settings in the environment (each front-end worker's entry point)."""
    settings = Settings()
    configure_torch(settings)
    return create_app(settings)


class FrontEndSupervisor(Multiprocess):
    """uvicorn's worker supervisor that also retires the live gauges of each worker that exits."""

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            mark_process_dead(pid)

    @property
    def failed_to_start(self) -> bool:
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)


def serve_frontends(settings: Settings, app_factory: str = APP_FACTORY, graceful_timeout_s: float = 30.0
                    ) -> None:
    """Serve ``app_factory`` (an importable ``module:function`` returning the app for ``Settings()``) from
    ``settings.frontends`` worker processes on ``settings.host:port`` until SIGTERM or SIGINT."""
    os.environ.update(settings_env(settings))
    with tempfile.TemporaryDirectory(prefix="flipkd-metrics-") as folder:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = folder
        config = uvicorn.Config(app_factory, factory=True, host=settings.host, port=settings.port,
                                workers=settings.frontends, log_level="info", access_log=False,
                                timeout_graceful_shutdown=graceful_timeout_s,
                                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S)
        supervisor = FrontEndSupervisor(config, sockets=[config.bind_socket()])
        supervisor.run()
    if supervisor.failed_to_start:
        raise SystemExit(STARTUP_FAILURE)


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


SERVE_ARGS = ("-m", "flipkd", "serve")


@contextmanager
def server_process(settings: Settings, timeout: float = 600.0, log: Path | None = None,
                   python_args: tuple[str, ...] = SERVE_ARGS) -> Iterator[tuple[str, subprocess.Popen]]:
    """``flipkd serve`` (``python_args`` to this interpreter) with ``settings`` as a child process; yields
    (base URL, process) once ready, then stops it with SIGTERM (graceful) and waits. Its output goes to
    ``log`` (else nowhere)."""
    sink = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, *python_args],
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
