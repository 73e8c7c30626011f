"""Soak run: many requests against `flipkd serve` (a separate process, as deployed) and its resident
memory from start to end.

Usage: python bench/service_soak.py --data data/atec/train.jsonl --requests 20000 \
           --out bench/results/service_soak_atec     [--bundle DIR: default bundle] [--teacher DIR]

The server runs with the default settings plus ``FLIPKD_SHADOW_SHARE`` (0.1, as ``make serve``) and the
default embedding cache (10,000 texts), so the cache fills and then evicts. Pairs are taken in file
order (distinct texts), one pair per /match request, ``--concurrency`` in flight. The server's VmRSS is
read from /proc every ``--sample-s`` seconds. "start" is after the warm-up requests and "end" after the
last request, each once the server has been idle for one heap-trim interval plus a second, so both are
read in the same state; the largest value seen under load is reported beside them. Resident memory is
split as /proc reports it: anonymous (heaps, arenas: what a leak would grow) and file-backed (libraries
and the memory-mapped model weights). The server's settings come from ``FLIPKD_*`` variables as usual
(``FLIPKD_HEAP_TRIM_INTERVAL_S=0`` turns trimming off).
Writes ``results.json`` and ``rss.png``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from service_load import closed_loop, load_bench_parser, parse_load_bench_args  # noqa: E402
from tqdm import tqdm  # noqa: E402

from flipkd.service.server import free_port, server_process  # noqa: E402
from flipkd.service.settings import Settings  # noqa: E402
from flipkd.training.data import load_pairs  # noqa: E402

MEMORY_FIELDS = {"rss": "VmRSS", "anon": "RssAnon", "file": "RssFile"}


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` (MiB): all of it, anonymous (heaps, arenas) and file-backed (mapped
    files: libraries and the memory-mapped model weights)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[field].split()[0]) / 1024 for name, field in MEMORY_FIELDS.items()}


def heap_trims(base: str) -> dict:
    """How often the server trimmed its heap and the mean seconds a trim took, from its /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    values = {sample.name: sample.value for family in text_string_to_metric_families(text)
              for sample in family.samples if sample.name.startswith("flipkd_heap_trim_seconds_")}
    count = values.get("flipkd_heap_trim_seconds_count", 0.0)
    return {"count": int(count), "mean_s": values["flipkd_heap_trim_seconds_sum"] / count if count else None}


def main() -> None:
    parser = load_bench_parser(__doc__, requests=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=Settings.model_fields["torch_threads"].default,
                        help="torch threads per student batch")
    parser.add_argument("--workers", type=int, default=Settings.model_fields["student_workers"].default,
                        help="student batches run at once")
    parser.add_argument("--sample-s", type=float, default=2.0)
    args = parse_load_bench_args(parser)
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)]
    pairs = [pairs[i % len(pairs)] for i in range(args.requests)]
    settings = Settings(bundles=[str(args.bundle)], teacher=args.teacher, port=free_port(), shadow_share=0.1,
                        torch_threads=args.threads, student_workers=args.workers)
    samples: list[dict] = []
    answered = 0
    settle_s = settings.heap_trim_interval_s + 1.0  # idle long enough for one heap trim to pass
    with server_process(settings) as (base, server):
        asyncio.run(closed_loop(base, pairs[-64:], 8))  # warm-up
        time.sleep(settle_s)
        started = time.perf_counter()

        def record() -> dict:
            sample = {"seconds": time.perf_counter() - started, "answered": answered,
                      **memory_mib(server.pid)}
            samples.append(sample)
            return sample

        record()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(args.sample_s):
                record()

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
        under_load = record()
        time.sleep(settle_s)
        record()
        trims = heap_trims(base)
    start, end = samples[0], samples[-1]
    max_mib = max(s["rss"] for s in samples)
    result = {"bundle": str(args.bundle), "data": str(args.data), "threads": args.threads,
              "workers": args.workers,
              "concurrency": args.concurrency, "load": load,
              "heap_trim_interval_s": settings.heap_trim_interval_s,
              **{f"{name}_start_mib": round(start[name], 1) for name in MEMORY_FIELDS},
              **{f"{name}_end_mib": round(end[name], 1) for name in MEMORY_FIELDS},
              **{f"{name}_growth_percent": round(100 * (end[name] - start[name]) / start[name], 2)
                 for name in MEMORY_FIELDS},
              "rss_end_under_load_mib": round(under_load["rss"], 1), "rss_max_mib": round(max_mib, 1),
              "rss_max_over_start_percent": round(100 * (max_mib - start["rss"]) / start["rss"], 2),
              "heap_trims": trims, "server_exit_code": server.returncode,
              "samples": [{key: round(value, 1) for key, value in sample.items()} for sample in samples]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, label in (("rss", "all"), ("anon", "anonymous"), ("file", "file-backed")):
        axis.plot([s["answered"] for s in samples], [s[name] for s in samples], label=label)
    axis.legend(fontsize=7)
    axis.set_xlabel("requests answered")
    axis.set_ylabel("server resident memory (MiB)")
    axis.set_title(f"soak: {len(pairs)} requests, concurrency {args.concurrency}", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.out / "rss.png", dpi=120)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
