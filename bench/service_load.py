"""Load benchmark of the service on loopback: throughput and latency by concurrency; batching on vs off;
student vs teacher; the embedding cache on repeated texts; tokens/s against the CPU's bf16 matmul rate.

Usage: python bench/service_load.py --data data/atec/test.jsonl --requests 600 \
           --out bench/results/service_load_atec   [--bundle DIR: default bundle] [--teacher DIR]

Each scenario starts a fresh ``flipkd serve`` process (real uvicorn, as deployed) and warms it up; a
bounded closed-loop generator in this process keeps ``concurrency`` requests in flight until
``--requests`` pairs are answered (one pair per /match request). Scenarios (cache off unless said):
- ``batched``: the dynamic batcher as configured; ``one_at_a_time``: ``max_batch_size=1``;
- ``teacher``: every request served by the ONNX teacher (``ab_share=1``; left out when there is none);
- ``repeated_cache_on`` / ``repeated_cache_off``: a workload drawing its pairs from 50 distinct pairs.
Also measured in the same run: the bare student's batched forward throughput on the same texts, already
tokenized (batch sizes 1..64; no HTTP, no queue, no tokenizing), and its tokens/s as a share of the bf16
matmul rate (2 x parameters of the layers run x tokens/s / rate). The goals at concurrency 32 come from
``--rounds`` paired rounds: each round measures the bare student at its best layout and batch size (the
share's reference) and at the service's own layout and ``max_batch_size`` (the latency bound's full
batch), then the batched service; the goals are medians over rounds, because this CPU's speed drifts by
up to 2x for seconds at a time and a single run compares two different machine states.
Writes ``results.json`` and ``latency_throughput.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matmul_rate import bf16_matmul_gflops, transformer_gflop_per_token  # noqa: E402
from tqdm import tqdm  # noqa: E402

from flipkd.models.bundle import DEFAULT_BUNDLE, load_bundle  # noqa: E402
from flipkd.service.runtime import configure_torch, runtime_info  # noqa: E402
from flipkd.service.server import free_port, server_process  # noqa: E402
from flipkd.service.settings import Settings  # noqa: E402
from flipkd.service.torch_engine import StudentEngine  # noqa: E402
from flipkd.training.data import load_pairs  # noqa: E402


async def timed_requests(base: str, pairs: list[tuple[str, str]], concurrency: int,
                         on_answer: Callable[[], None] | None = None, domains: Sequence[str] = ()) -> dict:
    """``concurrency`` workers each send one /match request at a time until every pair is answered;
    ``on_answer`` runs after each response. With ``domains``, pair i goes to domain i mod their number
    (else to the default domain). aiohttp (C HTTP parser) keeps the generator's own CPU use
    small on a machine it shares with the server. Returns the raw record: each request's send and answer
    time (``time.perf_counter``, one clock for every process of the machine), statuses, the run's wall
    time and this process's CPU seconds over it."""
    record: dict = {"sent_at": [], "answered_at": [], "statuses": {}}
    cursor = iter(range(len(pairs)))

    async def worker(session: aiohttp.ClientSession) -> None:
        for index in cursor:
            a, b = pairs[index]
            body = {"pair": {"text_a": a, "text_b": b}}
            if domains:
                body["domain"] = domains[index % len(domains)]
            started = time.perf_counter()
            async with session.post(f"{base}/match", json=body) as response:
                await response.read()
            record["sent_at"].append(started)
            record["answered_at"].append(time.perf_counter())
            record["statuses"][response.status] = record["statuses"].get(response.status, 0) + 1
            if on_answer is not None:
                on_answer()

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu_started, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        record["seconds"] = time.perf_counter() - started
        record["cpu_seconds"] = time.process_time() - cpu_started
    return record


def summarise(records: list[dict], concurrency: int) -> dict:
    """One row from the raw records of the generator processes that together kept ``concurrency``
    requests in flight. Rates are steady-state: answers between the ``concurrency``-th answer and the
    last request's send, over that time, while every worker has a request in flight (the ramp-up, and the
    drain in which fewer and fewer requests remain, are left out; ``overall_texts_per_s`` counts the whole
    run). A run too short for that window to hold ``concurrency`` answers reports its whole-run rate
    there (``steady_seconds`` 0). Latency percentiles are over every request; ``client_cpu`` is the
    generators' CPU use in cores."""
    sent_at = [t for record in records for t in record["sent_at"]]
    answered_at = [t for record in records for t in record["answered_at"]]
    statuses: dict[int, int] = {}
    for record in records:
        for status, count in record["statuses"].items():
            statuses[int(status)] = statuses.get(int(status), 0) + count
    elapsed = max(answered_at) - min(sent_at)
    full_from, full_to = sorted(answered_at)[min(concurrency, len(answered_at)) - 1], max(sent_at)
    steady = sum(full_from < t <= full_to for t in answered_at)
    steady_seconds = full_to - full_from if steady >= concurrency else 0.0
    pairs_per_s = steady / steady_seconds if steady_seconds else len(answered_at) / elapsed
    ms = (np.array(answered_at) - np.array(sent_at)) * 1000
    return {"concurrency": concurrency, "requests": len(answered_at), "seconds": round(elapsed, 2),
            "steady_seconds": round(steady_seconds, 2),
            "pairs_per_s": pairs_per_s, "texts_per_s": 2 * pairs_per_s,
            "overall_texts_per_s": 2 * len(answered_at) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "statuses": statuses,
            "client_cpu": sum(record["cpu_seconds"] for record in records) / elapsed}


async def closed_loop(base: str, pairs: list[tuple[str, str]], concurrency: int,
                      on_answer: Callable[[], None] | None = None, domains: Sequence[str] = ()) -> dict:
    """:func:`summarise` of one generator (this process) keeping ``concurrency`` requests in flight."""
    return summarise([await timed_requests(base, pairs, concurrency, on_answer, domains)], concurrency)


# Every benchmark server: no cache unless a scenario turns it on, a queue and deadline that never refuse,
# no teacher fallback (the student is what is measured).
BENCH_SETTINGS = {"cache_size": 0, "max_queue": 100_000, "deadline_s": 300.0, "fallback": False}


PAIRED_CONCURRENCY = 32


def median_row(rows: list[dict]) -> dict:
    """One row for repeated runs at one concurrency: the median of each rate and percentile, summed counts."""
    statuses: dict[int, int] = {}
    for row in rows:
        for status, count in row["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    medians = {key: float(np.median([row[key] for row in rows]))
               for key in ("pairs_per_s", "texts_per_s", "overall_texts_per_s", "p50_ms", "p95_ms", "p99_ms",
                           "client_cpu")}
    return {"concurrency": rows[0]["concurrency"], "requests": sum(row["requests"] for row in rows),
            "seconds": round(sum(row["seconds"] for row in rows), 2),
            "steady_seconds": round(sum(row["steady_seconds"] for row in rows), 2), **medians,
            "statuses": statuses}


def run_scenario(settings: Settings, pairs: list[tuple[str, str]], concurrencies: list[int], name: str,
                 reference: Callable[[], dict] | None = None, rounds: int = 1) -> list[dict]:
    """One row per concurrency from a fresh server. With ``reference``, concurrency 32 is measured in
    ``rounds`` rounds, each right after ``reference()`` (the bare model on the same cores, while the
    server idles), so the two are compared under the same machine state; that row is the median of the
    rounds and lists each round."""
    with server_process(settings) as (base, _):
        asyncio.run(closed_loop(base, pairs[-16:], 4))  # warm the HTTP path
        rows = []
        for concurrency in tqdm(concurrencies, desc=name):
            if reference is None or concurrency != PAIRED_CONCURRENCY:
                rows.append(asyncio.run(closed_loop(base, pairs, concurrency)))
                continue
            paired = [reference() | {"service": asyncio.run(closed_loop(base, pairs, concurrency))}
                      for _ in range(rounds)]
            rows.append(median_row([round_["service"] for round_ in paired]) | {"rounds": paired})
        return rows


def bare_forward(engine: StudentEngine, ids: list[list[int]], size: int, streams: int,
                 threads: int) -> tuple[float, float]:
    """(texts/s, tokens/s) of the student's own forward on batches of ``size`` tokenized texts (no HTTP,
    no queue, no tokenizing), with ``streams`` threads each running its share of the batches on
    ``threads`` torch threads."""
    torch.set_num_threads(threads)
    batches = [list(range(i, min(i + size, len(ids)))) for i in range(0, min(len(ids), 512), size)]
    shares = [batches[stream::streams] for stream in range(streams)]

    def run(share: list[list[int]]) -> None:
        for batch in share:
            engine.embed_ids([ids[i] for i in batch])

    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(run, shares))
    seconds = time.perf_counter() - started
    return sum(len(b) for b in batches) / seconds, sum(len(ids[i]) for b in batches for i in b) / seconds


def bare_model(engine: StudentEngine, texts: list[str], rate_gflops: float, threads: int,
               workers: int) -> dict:
    """The bare student's batched forward by batch size in every layout of the same ``threads x workers``
    cores: one stream on all of them, one single-threaded stream per core, and the service's own
    ``workers`` streams of ``threads`` threads. The best of all is the reference the service is held to."""
    ids = engine.token_ids(texts)
    engine.embed_ids(ids[:8])
    gflop = transformer_gflop_per_token(list(engine.encoder.body.layers))
    cores = threads * workers
    shapes = ((1, cores), (cores, 1), (workers, threads))
    layouts = {f"{streams}x{per}": (streams, per) for streams, per in shapes}
    by_layout: dict[str, dict[int, dict]] = {name: {} for name in layouts}
    cells = [(name, size) for name in layouts for size in (1, 8, 16, 32, 64)]
    for name, size in tqdm(cells, desc="bare student"):
        streams, layout_threads = layouts[name]
        texts_per_s, tokens_per_s = bare_forward(engine, ids, size, streams, layout_threads)
        by_layout[name][size] = {"texts_per_s": texts_per_s, "tokens_per_s": tokens_per_s,
                                 "share_of_bf16_rate": gflop * tokens_per_s / rate_gflops}
    torch.set_num_threads(threads)
    best_layout, best_size = max(((layout, size) for layout in by_layout for size in by_layout[layout]),
                                 key=lambda key: by_layout[key[0]][key[1]]["texts_per_s"])
    return {"by_layout_and_batch_size": by_layout, "service_layout": f"{workers}x{threads}",
            "best_layout": best_layout, "best_streams_and_threads": layouts[best_layout],
            "best_batch_size": best_size,
            "best_texts_per_s": by_layout[best_layout][best_size]["texts_per_s"],
            "mean_tokens_per_text": float(np.mean([len(row) for row in ids])), "gflop_per_token": gflop}


def load_bench_parser(doc: str, requests: int) -> argparse.ArgumentParser:
    """The arguments of every loopback load benchmark: bundle, teacher, pairs, how many, where to write."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher folder (ONNX or adapter); default: the one the bundle carries, as the "
                             "service finds it (exported into the model cache on first use)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def parse_load_bench_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, then resolve ``--teacher`` to the ONNX teacher folder the service would run for the bundle
    (``Bundle.find_teacher``: the explicit one, else the bundle's own); None when there is none."""
    args = parser.parse_args()
    args.teacher = load_bundle(args.bundle).find_teacher(args.teacher)
    return args


def main() -> None:
    parser = load_bench_parser(__doc__, requests=600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--threads", type=int, default=Settings.model_fields["torch_threads"].default,
                        help="torch threads per student batch")
    parser.add_argument("--workers", type=int, default=Settings.model_fields["student_workers"].default,
                        help="student batches run at once")
    parser.add_argument("--max-batch-size", type=int, default=Settings.model_fields["max_batch_size"].default)
    parser.add_argument("--rounds", type=int, default=15,
                        help="paired rounds (bare model, then service) at concurrency 32")
    args = parse_load_bench_args(parser)
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)][:args.requests]
    common = {"bundles": [str(args.bundle)], "teacher": args.teacher, **BENCH_SETTINGS,
              "torch_threads": args.threads, "student_workers": args.workers,
              "max_batch_size": args.max_batch_size}
    configure_torch(Settings(**common))  # the bare reference runs with the server's primitive-cache caps
    torch.set_num_threads(args.threads * args.workers)  # the rate of every core the student uses
    rate = bf16_matmul_gflops()
    torch.set_num_threads(args.threads)
    result: dict = {"bundle": str(args.bundle), "teacher": args.teacher and str(args.teacher),
                    "data": str(args.data), "requests": len(pairs),
                    "threads": args.threads, "workers": args.workers, "bf16_matmul_gflops": rate,
                    "bare_runtime": runtime_info()}
    texts = [text for pair in pairs for text in pair]
    engine = StudentEngine(load_bundle(args.bundle))
    result["bare_model"] = bare = bare_model(engine, texts, rate, args.threads, args.workers)
    defaults = Settings(**common)
    result["batching"] = {"max_batch_size": defaults.max_batch_size, "max_wait_ms": defaults.max_wait_ms,
                          "max_batch_tokens": defaults.max_batch_tokens}
    ids = engine.token_ids(texts)

    def reference() -> dict:
        """The bare student at its best layout and batch size, and at the service's own layout and
        ``max_batch_size`` (the full batch of the latency bound)."""
        best_streams, best_threads = bare["best_streams_and_threads"]
        best = bare_forward(engine, ids, bare["best_batch_size"], best_streams, best_threads)[0]
        full = bare_forward(engine, ids, defaults.max_batch_size, args.workers, args.threads)[0]
        torch.set_num_threads(args.threads)
        return {"bare_best_texts_per_s": best, "bare_full_batch_texts_per_s": full}

    scenarios = {
        "batched": ({}, pairs),
        "one_at_a_time": ({"max_batch_size": 1}, pairs),  # overrides --max-batch-size
        **({"teacher": ({"ab_share": 1.0}, pairs)} if args.teacher is not None else {}),
        "repeated_cache_off": ({}, random.Random(0).choices(pairs[:50], k=len(pairs))),
        "repeated_cache_on": ({"cache_size": 10_000}, random.Random(0).choices(pairs[:50], k=len(pairs))),
    }
    for name, (overrides, workload) in scenarios.items():
        settings = Settings(**(common | overrides | {"port": free_port()}))
        concurrencies = args.concurrency if name in ("batched", "one_at_a_time", "teacher") else [32]
        paired = {"reference": reference, "rounds": args.rounds} if name == "batched" else {}
        result[name] = run_scenario(settings, workload, concurrencies, name, **paired)
    at = {name: {r["concurrency"]: r for r in result[name]} for name in ("batched", "one_at_a_time")}
    rounds = at["batched"][PAIRED_CONCURRENCY]["rounds"]
    shares = [r["service"]["texts_per_s"] / r["bare_best_texts_per_s"] for r in rounds]
    # one full batch in the service's layout: each of the ``workers`` streams finishes one in this time
    bounds = [2000 * (defaults.max_wait_ms / 1000
                      + defaults.max_batch_size * args.workers / r["bare_full_batch_texts_per_s"])
              for r in rounds]
    p99s = [r["service"]["p99_ms"] for r in rounds]
    result["goals"] = {
        "c32_share_of_bare_best": float(np.median(shares)),
        "c32_share_of_bare_best_by_round": shares,
        "c32_batched_over_one_at_a_time": at["batched"][32]["texts_per_s"]
        / at["one_at_a_time"][32]["texts_per_s"],
        "p99_bound_ms": float(np.median(bounds)),
        "c32_p99_ms": float(np.median(p99s)),
        "c32_p99_by_round": p99s,
        "p99_bound_by_round": bounds,
        "cache_speedup_on_repeats": result["repeated_cache_on"][0]["texts_per_s"]
        / result["repeated_cache_off"][0]["texts_per_s"],
    }
    bare_best = float(np.median([r["bare_best_texts_per_s"] for r in rounds]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("batched", "one_at_a_time", "teacher"):
        rows = result.get(name, [])
        left.plot([r["concurrency"] for r in rows], [r["texts_per_s"] for r in rows], marker="o", label=name)
        right.plot([r["concurrency"] for r in rows], [r["p99_ms"] for r in rows], marker="o", label=name)
    left.axhline(bare_best, color="grey", ls="--", label="bare student, best batch")
    right.axhline(result["goals"]["p99_bound_ms"], color="grey", ls="--", label="2 x (max wait + full batch)")
    for axis, label in ((left, "texts / s"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent requests")
        axis.set_ylabel(label)
        axis.legend(fontsize=7)
    right.set_yscale("log")
    figure.suptitle(f"{args.bundle.name} bundle, {args.workers} x {args.threads} threads, {args.data}",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(args.out / "latency_throughput.png", dpi=120)
    print(json.dumps(result["goals"], indent=2))


if __name__ == "__main__":
    main()
