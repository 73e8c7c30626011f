"""Load benchmark of the service on loopback: throughput and latency by concurrency, batching on vs off.

Usage: python bench/service_load.py --bundle DIR --teacher DIR --data data/atec/test.jsonl \
           --requests 400 --out bench/results/service_load

For each scenario a fresh server (real uvicorn, this process) is started and warmed up; a bounded
closed-loop generator keeps ``concurrency`` requests in flight until ``--requests`` pairs have been
answered (one pair per /match request, texts from the data file, cache off so every text is embedded).
Also measured in the same run: the bare model's best batched forward throughput on the same texts
(batch sizes 1..64) and one-at-a-time serving (``max_batch_size=1``). Writes ``results.json`` and
``latency_throughput.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models.bundle import load_bundle  # noqa: E402
from service.engines import StudentEngine  # noqa: E402
from service.server import build_server  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.data import load_pairs  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def closed_loop(base: str, pairs: list[tuple[str, str]], concurrency: int, route: str) -> dict:
    """``concurrency`` workers each send one request at a time until every pair is answered."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cursor = iter(range(len(pairs)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for index in cursor:
            a, b = pairs[index]
            body = {"pair": {"text_a": a, "text_b": b}} if route == "/match" else {"texts": [a, b]}
            started = time.perf_counter()
            response = await client.post(f"{base}{route}", json=body)
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "seconds": elapsed,
            "pairs_per_s": len(latencies) / elapsed, "texts_per_s": 2 * len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "statuses": statuses}


def run_scenario(settings: Settings, pairs: list[tuple[str, str]], concurrencies: list[int],
                 route: str = "/match") -> list[dict]:
    server = build_server(settings, graceful_timeout_s=30)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.port}"
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    asyncio.run(closed_loop(base, pairs[:16], 4, route))  # warm the HTTP path
    rows = [asyncio.run(closed_loop(base, pairs, c, route)) for c in tqdm(concurrencies, desc="concurrency")]
    server.should_exit = True
    thread.join(timeout=60)
    return rows


def bare_model_throughput(bundle_dir: Path, texts: list[str]) -> dict:
    """Texts/s of the student's own batched forward (no HTTP, no queue), best over batch sizes."""
    engine = StudentEngine(load_bundle(bundle_dir))
    engine.embed(texts[:8])
    best = {}
    for size in (1, 8, 16, 32, 64):
        batches = [texts[i:i + size] for i in range(0, min(len(texts), 256), size)]
        started = time.perf_counter()
        for batch in batches:
            engine.embed(batch)
        best[size] = sum(len(b) for b in batches) / (time.perf_counter() - started)
    return {"texts_per_s_by_batch": best, "best_texts_per_s": max(best.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)][:args.requests]
    common = {"bundle": args.bundle, "teacher": args.teacher, "cache_size": 0, "max_queue": 100_000,
              "deadline_s": 120.0, "fallback": False}
    result: dict = {"data": str(args.data), "requests": len(pairs)}
    result["bare_model"] = bare_model_throughput(args.bundle, [t for pair in pairs for t in pair])
    result["batched"] = run_scenario(Settings(port=free_port(), **common), pairs, args.concurrency)
    result["one_at_a_time"] = run_scenario(Settings(port=free_port(), max_batch_size=1, **common), pairs,
                                           args.concurrency)
    result["teacher_ab"] = run_scenario(Settings(port=free_port(), ab_share=1.0, **common), pairs,
                                        args.concurrency)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("batched", "one_at_a_time", "teacher_ab"):
        rows = result[name]
        left.plot([r["concurrency"] for r in rows], [r["texts_per_s"] for r in rows], marker="o", label=name)
        right.plot([r["concurrency"] for r in rows], [r["p99_ms"] for r in rows], marker="o", label=name)
    left.axhline(result["bare_model"]["best_texts_per_s"], color="grey", ls="--", label="bare model")
    left.set_xlabel("concurrency")
    left.set_ylabel("texts / s")
    right.set_xlabel("concurrency")
    right.set_ylabel("p99 latency (ms)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out / "latency_throughput.png", dpi=120)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
