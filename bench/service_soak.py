"""Soak run: many requests against `flipkd serve` (a separate process, as deployed) and its resident
memory from start to end.

Usage: python bench/service_soak.py --teacher runs/teacher-atec-e5-onnx --data data/atec/train.jsonl \
           --requests 20000 --out bench/results/service_soak_atec     [--bundle DIR: default bundle]

The server runs with the default settings plus ``FLIPKD_SHADOW_SHARE`` (0.1, as ``make serve``) and the
default embedding cache (10,000 texts), so the cache fills and then evicts. Pairs are taken in file
order (distinct texts), one pair per /match request, ``--concurrency`` in flight. The server's VmRSS is
read from /proc every ``--sample-s`` seconds. "start" is after the warm-up requests, "end" after the
last request. Writes ``results.json`` and ``rss.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from service_load import closed_loop  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models.bundle import DEFAULT_BUNDLE  # noqa: E402
from service.server import free_port, server_process  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.data import load_pairs  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=Settings.model_fields["torch_threads"].default,
                        help="torch threads per student batch")
    parser.add_argument("--workers", type=int, default=Settings.model_fields["student_workers"].default,
                        help="student batches run at once")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)]
    pairs = [pairs[i % len(pairs)] for i in range(args.requests)]
    settings = Settings(bundle=args.bundle, teacher=args.teacher, port=free_port(), shadow_share=0.1,
                        torch_threads=args.threads, student_workers=args.workers)
    samples: list[tuple[float, int, float]] = []
    answered = 0
    with server_process(settings) as (base, server):
        asyncio.run(closed_loop(base, pairs[-64:], 8))  # warm-up
        started = time.perf_counter()
        samples.append((0.0, 0, rss_mib(server.pid)))
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(args.sample_s):
                samples.append((time.perf_counter() - started, answered, rss_mib(server.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with tqdm(total=len(pairs), desc="soak", unit="req") as bar:
            def count() -> None:
                nonlocal answered
                answered += 1
                bar.update()

            load = asyncio.run(closed_loop(base, pairs, args.concurrency, count))
        stop.set()
        sampler.join()
        samples.append((time.perf_counter() - started, answered, rss_mib(server.pid)))
    start_mib, end_mib = samples[0][2], samples[-1][2]
    result = {"bundle": str(args.bundle), "data": str(args.data), "threads": args.threads,
              "workers": args.workers,
              "concurrency": args.concurrency, "load": load,
              "rss_start_mib": round(start_mib, 1), "rss_end_mib": round(end_mib, 1),
              "rss_max_mib": round(max(s[2] for s in samples), 1),
              "rss_growth_percent": round(100 * (end_mib - start_mib) / start_mib, 2),
              "server_exit_code": server.returncode,
              "samples": [{"seconds": round(t, 1), "answered": n, "rss_mib": round(r, 1)}
                          for t, n, r in samples]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([s[1] for s in samples], [s[2] for s in samples])
    axis.set_xlabel("requests answered")
    axis.set_ylabel("server resident memory (MiB)")
    axis.set_title(f"soak: {len(pairs)} requests, concurrency {args.concurrency}", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.out / "rss.png", dpi=120)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
