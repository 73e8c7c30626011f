"""The service on a GPU: the bare student's throughput by batch size, then the service under load at each
concurrency with one and with several front ends, on the same device, with model-FLOP utilisation.

Usage (on the GPU machine; scripts/gpu_service_check.sh installs what it needs and runs it):
    python bench/gpu_service.py --data data/atec/test.jsonl --out OUT_DIR \
        [--frontends 1 4] [--concurrency 1 8 32 64 128 256] [--generators 4] [--requests 6000]
It runs on a CPU too (the tests run it small there), which checks everything but the speed.

- bare: the bundle's student as the service builds it (``StudentEngine``) embedding already tokenized
  texts in batches of each size; texts/s, tokens/s and utilisation = GFLOP/token x tokens/s / the
  device's measured bf16 matrix-multiply rate (GFLOP/token: 2 x parameters of the layers run; on a CPU
  without bf16 units the student runs fp32, and the share can pass 1).
- service: for each front-end count a fresh ``flipkd serve`` (``FLIPKD_FRONTENDS``; one student worker
  and ``--max-batch-size`` texts per batch in each), warmed up; at each concurrency ``--generators``
  processes (aiohttp) together keep that many one-pair ``/match`` requests in flight; rates are
  steady-state over all of them (:func:`service_load.summarise`).
- ``share``: the service's best texts/s over the bare student's best. The goal is at least 0.85.
Writes ``results.json`` and ``gpu_service.png`` (texts/s and p99 latency by concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matmul_rate import bf16_matmul_gflops, transformer_gflop_per_token  # noqa: E402
from service_load import BENCH_SETTINGS, summarise, timed_requests  # noqa: E402
from tqdm import tqdm  # noqa: E402

from flipkd.models.bundle import DEFAULT_BUNDLE, load_bundle  # noqa: E402
from flipkd.models.provision import base_identity  # noqa: E402
from flipkd.service.runtime import runtime_info  # noqa: E402
from flipkd.service.server import free_port, server_process  # noqa: E402
from flipkd.service.settings import Settings  # noqa: E402
from flipkd.service.torch_engine import StudentEngine  # noqa: E402
from flipkd.training.data import load_pairs  # noqa: E402

SHARE_GOAL = 0.85


def bare_student(engine: StudentEngine, texts: list[str], sizes: list[int], device: str) -> dict:
    """Texts/s, tokens/s and utilisation of the bare student by batch size (texts in length order, as the
    batcher sorts them; the median of 3 passes after a warm-up pass)."""
    ids = sorted(engine.token_ids(texts), key=len)
    gflop = transformer_gflop_per_token(list(engine.encoder.body.layers))
    rate = bf16_matmul_gflops(size=8192 if device.startswith("cuda") else 1024, device=device)
    rows = {}
    for size in tqdm(sizes, desc="bare student"):
        batches = [ids[i:i + size] for i in range(0, len(ids), size)]
        seconds = []
        for repeat in range(4):
            started = time.perf_counter()
            for batch in batches:
                engine.embed_ids(batch)  # returns numpy: the device is synchronised
            if repeat:
                seconds.append(time.perf_counter() - started)
        tokens_per_s = sum(map(len, ids)) / float(np.median(seconds))
        rows[size] = {"texts_per_s": len(ids) / float(np.median(seconds)), "tokens_per_s": tokens_per_s,
                      "utilisation": gflop * tokens_per_s / rate}
    best = max(rows, key=lambda size: rows[size]["texts_per_s"])
    return {"by_batch_size": rows, "best_batch_size": best, "best_texts_per_s": rows[best]["texts_per_s"],
            "dtype": str(engine.encoder.body.embed_tokens.weight.dtype).removeprefix("torch."),
            "gflop_per_token": gflop, "bf16_matmul_gflops": rate,
            "mean_tokens_per_text": float(np.mean([len(row) for row in ids]))}


def generate(job: tuple[str, list[tuple[str, str]], int]) -> dict:
    """One generator process's raw record (:func:`service_load.timed_requests`)."""
    base, pairs, concurrency = job
    return asyncio.run(timed_requests(base, pairs, concurrency))


def load_row(pool, base: str, pairs: list[tuple[str, str]], concurrency: int, generators: int) -> dict:
    """The service at ``concurrency`` requests in flight, spread over up to ``generators`` processes,
    each sending its own share of ``pairs``."""
    used = min(generators, concurrency)
    shares = [concurrency // used + (g < concurrency % used) for g in range(used)]
    jobs = [(base, pairs[g::used], share) for g, share in enumerate(shares)]
    return summarise(pool.map(generate, jobs), concurrency) | {"generators": used}


def service_rows(settings: Settings, pairs: list[tuple[str, str]], concurrencies: list[int],
                 generators: int, requests: int) -> list[dict]:
    """One row per concurrency from a fresh server with ``settings``."""
    rows = []
    with server_process(settings) as (base, _), \
            multiprocessing.get_context("spawn").Pool(generators) as pool:
        load_row(pool, base, pairs[:64], 8, generators)  # warm every front end's HTTP path and batcher
        for concurrency in tqdm(concurrencies, desc=f"{settings.frontends} front end(s)"):
            count = max(20 * concurrency, min(requests, 500 * concurrency))  # c=1: 500 (seconds, not minutes)
            workload = [pairs[i % len(pairs)] for i in range(count)]
            rows.append(load_row(pool, base, workload, concurrency, generators))
    return rows


def plot(results: dict, out: Path) -> None:
    figure, (rates, tails) = plt.subplots(1, 2, figsize=(11, 4))
    for frontends, rows in results["service"].items():
        concurrency = [row["concurrency"] for row in rows]
        rates.plot(concurrency, [row["texts_per_s"] for row in rows], marker="o",
                   label=f"service, {frontends} front end(s)")
        tails.plot(concurrency, [row["p99_ms"] for row in rows], marker="o",
                   label=f"{frontends} front end(s)")
    rates.axhline(results["bare"]["best_texts_per_s"], color="black", linestyle="--",
                  label="bare student, best")
    rates.axhline(SHARE_GOAL * results["bare"]["best_texts_per_s"], color="grey", linestyle=":",
                  label=f"{SHARE_GOAL:.0%} of bare")
    for axis, label in ((rates, "texts/s (2 per /match)"), (tails, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("requests in flight")
        axis.set_ylabel(label)
        axis.legend(fontsize=8)
    figure.suptitle(f"{results['device']}: service vs bare student")
    figure.tight_layout()
    figure.savefig(out / "gpu_service.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--texts", type=int, default=2048, help="texts of the bare sweep")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64, 128, 256])
    parser.add_argument("--frontends", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64, 128, 256])
    parser.add_argument("--generators", type=int, default=4, help="load-generator processes")
    parser.add_argument("--requests", type=int, default=6000,
                        help="requests per concurrency (at most 500 x it, at least 20 x it)")
    parser.add_argument("--max-batch-size", type=int, default=256)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)]
    texts = [text for pair in pairs for text in pair][: args.texts]
    bundle = load_bundle(args.bundle)
    engine = StudentEngine(bundle)
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "base": base_identity(bundle.base_model), "runtime": runtime_info(),
               "bare": bare_student(engine, texts, args.batch_sizes, device), "service": {}}
    del engine
    if device == "cuda":
        torch.cuda.empty_cache()
    for frontends in args.frontends:
        settings = Settings(**BENCH_SETTINGS, bundles=[str(args.bundle)], port=free_port(),
                            frontends=frontends, student_workers=1, max_batch_size=args.max_batch_size,
                            max_batch_tokens=args.max_batch_size * 128, heap_trim_interval_s=0)
        results["service"][frontends] = service_rows(settings, pairs, args.concurrency, args.generators,
                                                     args.requests)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    best = max(row["texts_per_s"] for rows in results["service"].values() for row in rows)
    results["share"] = best / results["bare"]["best_texts_per_s"]
    results["share_goal_met"] = results["share"] >= SHARE_GOAL
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out)
    summary = {"device": results["device"], "service_best_texts_per_s": best,
               "bare_best_texts_per_s": results["bare"]["best_texts_per_s"], "share": results["share"]}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
