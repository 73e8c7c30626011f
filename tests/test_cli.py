"""The ``flipkd`` command without weights: a light parser, the health check against a fake-engine
server, and the refusal of a repeated option."""

from __future__ import annotations

import os
import subprocess
import sys

from flipkd.service.server import free_port, running_server
from flipkd.service.settings import Settings

from .conftest import THREADS
from .fakes import FakeEngine, fake_factories


def flipkd(*args: str, port: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"FLIPKD_PORT": str(port)} if port is not None else {})}
    return subprocess.run([sys.executable, "-m", "flipkd", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_building_the_parser_imports_neither_torch_nor_model_code():
    probe = "import sys; from flipkd.main import build_parser; build_parser(); " \
            "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_healthcheck_passes_against_a_live_server_and_fails_without_one(tmp_path):
    settings = Settings(teacher=tmp_path / "teacher", port=free_port(), torch_threads=THREADS,
                        heap_trim_interval_s=0)
    factories = fake_factories(FakeEngine("student"), FakeEngine("teacher"))
    with running_server(settings, factories):
        alive = flipkd("healthcheck", port=settings.port)
    nobody = free_port()
    down = flipkd("healthcheck", "--timeout", "1", port=nobody)
    assert alive.returncode == 0, alive.stderr
    assert down.returncode == 2 and f"http://127.0.0.1:{nobody}/healthz" in down.stderr


def test_a_repeated_single_valued_option_is_refused():
    result = flipkd("serve", "--port", "8001", "--port", "8002")
    assert result.returncode == 2 and "--port given more than once" in result.stderr
