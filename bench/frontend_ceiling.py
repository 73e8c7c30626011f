"""The front end's ceiling: event-loop CPU per request and requests/s of the real app with instant engines.

Usage: python bench/frontend_ceiling.py --name after [--requests 3000] [--concurrency 32] [--rounds 3]
           [--note "what else ran on the machine"]

A fresh ``uvicorn`` process serves the app with default settings (input validation, metrics, embedding
cache) plus an API key, and with instant engines (bench/instant_engine.py: no model or tokenizer time),
a student and a teacher, so the teacher policy runs as deployed. For each endpoint a closed loop in this
process keeps ``--concurrency`` requests in flight until ``--requests`` are answered, ``--rounds`` times,
after a warm-up; every text is new, so each one goes through the batcher. The server's main thread runs
the event loop (HTTP, validation, routing, batching, metrics, JSON): its CPU seconds per request, read
from ``/proc/PID/task/PID/stat``, are the primary figure, since they hold when other jobs share the cores;
requests/s are secondary (lower bounds on a shared machine). Medians over rounds, each round listed.
``--frontends N`` serves through the front-end supervisor with N worker processes: the CPU figures are
then the sums over the workers. Writes ``bench/results/frontend_ceiling/<name>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import numpy as np
from instant_engine import frontend_workers, instant_server_process
from service_threads import thread_cpu_seconds
from tqdm import tqdm

import flipkd.service
from flipkd.service.server import free_port
from flipkd.service.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "frontend_ceiling"
API_KEY = "frontend-ceiling-key"
DIM = 192  # the shipped ATEC student's embedding width


def text(request: int, slot: int) -> str:
    """A text no other request of the run sends (so the embedding cache never answers it)."""
    return f"花呗怎么还款，第{request}个问题的第{slot}段"


ENDPOINTS = {
    "match_1_pair": ("/match", lambda i: {"pair": {"text_a": text(i, 0), "text_b": text(i, 1)}}),
    "match_10_pairs": ("/match", lambda i: {"pairs": [{"text_a": text(i, 2 * j), "text_b": text(i, 2 * j + 1)}
                                                      for j in range(10)]}),
    "match_query_20_candidates": ("/match", lambda i: {"query": text(i, 0),
                                                       "candidates": [text(i, j) for j in range(1, 21)]}),
    "embeddings_4_texts": ("/v1/embeddings", lambda i: {"input": [text(i, j) for j in range(4)],
                                                        "model": "atec"}),
}


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, progress: tqdm) -> dict:
    """POST every body to ``url`` with ``concurrency`` in flight; wall seconds, statuses, latencies."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    cursor = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in cursor:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] += 1
            progress.update()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"wall_s": wall, "statuses": dict(statuses), "p50_ms": 1000 * float(np.median(latencies))}


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """CPU seconds so far of the main threads of ``pids`` and of all their threads, each summed."""
    readings = {pid: thread_cpu_seconds(pid) for pid in pids}
    main = sum(next(cpu for (tid, _), cpu in threads.items() if tid == pid)
               for pid, threads in readings.items())
    return main, sum(sum(threads.values()) for threads in readings.values())


def server_pids(pid: int, frontends: int) -> list[int]:
    """The serving processes: ``pid`` itself, or the front-end workers its supervisor started."""
    if frontends == 1:
        return [pid]
    workers = sorted(frontend_workers(pid))
    if len(workers) != frontends:
        raise RuntimeError(f"expected {frontends} front-end workers under {pid}, found {workers}")
    return workers


def measured_round(url: str, bodies: list[bytes], concurrency: int, pids: list[int], progress: tqdm) -> dict:
    """One closed loop with the server's CPU seconds around it: its main threads' and all threads'."""
    loop_before, process_before = cpu_seconds(pids)
    load = asyncio.run(closed_loop(url, bodies, concurrency, progress))
    loop_after, process_after = cpu_seconds(pids)
    loop_s, process_s = loop_after - loop_before, process_after - process_before
    if set(load["statuses"]) != {200}:
        raise RuntimeError(f"{url} answered {load['statuses']}")
    return {"requests": len(bodies), "requests_per_s": len(bodies) / load["wall_s"],
            "event_loop_cpu_ms_per_request": 1000 * loop_s / len(bodies),
            "process_cpu_ms_per_request": 1000 * process_s / len(bodies),
            "wall_s": load["wall_s"], "p50_ms": load["p50_ms"]}


def encoded(make: Callable[[int], dict], start: int, count: int) -> list[bytes]:
    """The JSON bodies of requests ``start`` .. ``start + count - 1``."""
    return [json.dumps(make(i), ensure_ascii=False).encode() for i in range(start, start + count)]


def endpoint_rows(base: str, pids: list[int], args: argparse.Namespace) -> dict[str, dict]:
    """Per endpoint: a warm-up, then ``args.rounds`` measured rounds and their medians."""
    rows, sent = {}, 0
    total = len(args.endpoints) * (args.warm_up + args.rounds * args.requests)
    with tqdm(total=total, desc="requests", unit="req") as progress:
        for name in args.endpoints:
            path, make = ENDPOINTS[name]
            progress.set_postfix_str(name)
            warm_up = encoded(make, sent, args.warm_up)
            asyncio.run(closed_loop(base + path, warm_up, args.concurrency, progress))
            sent += args.warm_up
            rounds = []
            for _ in range(args.rounds):
                bodies = encoded(make, sent, args.requests)
                rounds.append(measured_round(base + path, bodies, args.concurrency, pids, progress))
                sent += args.requests
            medians = {key: float(np.median([r[key] for r in rounds])) for key in
                       ("event_loop_cpu_ms_per_request", "process_cpu_ms_per_request", "requests_per_s",
                        "p50_ms")}
            rows[name] = {"path": path, **medians, "rounds": rounds}
    return rows


def machine_note(extra: str) -> dict:
    """What the figures depend on: CPU, cores, load average at the end, Python, and ``extra``."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1_5_15": os.getloadavg(),
            "python": platform.python_version(), "note": extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="results file name (without .json)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per endpoint and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", type=int, default=300, help="requests per endpoint before measuring")
    parser.add_argument("--endpoints", nargs="+", choices=list(ENDPOINTS), default=list(ENDPOINTS))
    parser.add_argument("--frontends", type=int, default=1, help="front-end worker processes")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # the teacher folder is never read: the instant factories stand in for it
    settings = Settings(api_key=API_KEY, teacher=Path("instant-teacher"), port=free_port(),
                        frontends=args.frontends)
    with instant_server_process(settings, DIM) as (base, process):
        rows = endpoint_rows(base, server_pids(process.pid, args.frontends), args)
    result = {"command": shlex.join([Path(sys.executable).name, *sys.argv]),
              "machine": machine_note(args.note), "service_code": str(Path(flipkd.service.__file__).parent),
              "frontends": args.frontends,
              "concurrency": args.concurrency, "requests_per_round": args.requests, "rounds": args.rounds,
              "embedding_dim": DIM, "endpoints": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for name, row in rows.items():
        print(f"{name:28s} {row['event_loop_cpu_ms_per_request']:.3f} ms loop CPU/request  "
              f"{row['requests_per_s']:.0f} requests/s")


if __name__ == "__main__":
    main()
