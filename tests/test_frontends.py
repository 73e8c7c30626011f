"""Several front-end processes on one port (``frontends`` > 1): connections reach every worker, /metrics
adds up all of them whichever answers, a killed worker is replaced while the others keep answering,
SIGTERM stops them all; and on real weights every worker answers the same as a single process."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flipkd.service.server import free_port, server_process
from flipkd.service.settings import Settings

from .conftest import REPO, THREADS

DIM = 8
PAIR = {"pair": {"text_a": "花呗怎么还款", "text_b": "花呗如何还钱"}}


def call(base: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """One request on a new connection (so the kernel picks a worker for each)."""
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def worker_and_answer(base: str, body: dict) -> tuple[int, dict]:
    """The pid of a worker and its answer to ``/match`` with ``body``, both over one connection."""
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    try:
        connection.request("GET", "/info")
        pid = json.loads(connection.getresponse().read())["runtime"]["pid"]
        connection.request("POST", "/match", json.dumps(body, ensure_ascii=False).encode(),
                           {"Content-Type": "application/json"})
        return pid, json.loads(connection.getresponse().read())
    finally:
        connection.close()


def answering_pids(base: str, calls: int) -> list[int]:
    return [json.loads(call(base, "/info")[1])["runtime"]["pid"] for _ in range(calls)]


def sample(exposition: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", exposition, re.MULTILINE)
    assert match is not None, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


def until(condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError("condition not met in time")


@pytest.fixture(autouse=True)
def bench_on_path(monkeypatch):
    """bench/instant_engine.py: the instant engines and the supervisor's worker pids."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))


def two_workers(supervisor: int, without: int | None = None) -> set[int] | None:
    """The supervisor's two worker pids once it has two (none of them ``without``), else None."""
    from instant_engine import frontend_workers  # bench/ is on the path (bench_on_path)

    pids = frontend_workers(supervisor)
    return pids if len(pids) == 2 and without not in pids else None


def test_two_front_ends_share_the_port_the_metrics_and_the_shutdown(tmp_path):
    from instant_engine import instant_server_process

    settings = Settings(frontends=2, teacher=tmp_path / "teacher", port=free_port(), torch_threads=THREADS,
                        heap_trim_interval_s=0)
    with instant_server_process(settings, DIM) as (base, process):
        workers = until(lambda: two_workers(process.pid))
        until(lambda: set(answering_pids(base, 10)) == workers)  # both workers take connections

        sent = 40
        assert all(call(base, "/match", PAIR)[0] == 200 for _ in range(sent))
        routes = 'route="/match",status="200"'
        for _ in range(6):  # whichever worker answers the scrape counts every worker's requests
            exposition = call(base, "/metrics")[1].decode()
            assert sample(exposition, "flipkd_requests_total", routes) == sent
            assert sample(exposition, "flipkd_ready", 'domain="atec",engine="student"') == 1
            assert "process_resident_memory_bytes" not in exposition  # it would describe one worker only

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        assert all(call(base, "/match", PAIR)[0] == 200 for _ in range(10))  # the other one answers
        replaced = until(lambda: two_workers(process.pid, without=killed))
        until(lambda: set(answering_pids(base, 10)) == replaced)
        exposition = call(base, "/metrics")[1].decode()
        # the dead worker's requests stay counted
        assert sample(exposition, "flipkd_requests_total", routes) == sent + 10
        assert sample(exposition, "flipkd_ready", 'domain="atec",engine="student"') == 1

        process.terminate()
        process.join(timeout=90)
        assert process.exitcode == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)


@pytest.mark.slow
def test_every_front_end_answers_as_one_process_does_on_real_weights(default_bundle_models, tmp_path):
    single = Settings(port=free_port(), torch_threads=THREADS, student_workers=1, heap_trim_interval_s=0)
    with server_process(single) as (base, _):
        expected = json.loads(call(base, "/match", PAIR)[1])
    double = single.model_copy(update={"port": free_port(), "frontends": 2})
    with server_process(double, log=tmp_path / "serve.log") as (base, process):
        workers = until(lambda: two_workers(process.pid))
        until(lambda: all(call(base, "/readyz")[0] == 200 for _ in range(10))
              and set(answering_pids(base, 10)) == workers, timeout=300)
        answers = {}
        until(lambda: answers.update([worker_and_answer(base, PAIR)]) or len(answers) == 2)
    for answer in answers.values():
        assert answer["served_by"] == expected["served_by"] == "student"
        similarity = expected["results"][0]["similarity"]
        assert answer["results"][0]["similarity"] == pytest.approx(similarity, abs=1e-5)
    assert process.returncode == 0
