"""Bare student-encoder throughput by batch size, on the CPU or a CUDA GPU: what batching can buy.

Usage: python bench/encoder_batching.py --bundle models/bundles/atec --data data/atec/test.jsonl \
           --texts 512 --batch-sizes 1 8 32 64 128 --out bench/results/encoder_batching_cpu.json

Texts are taken in file order (text_a then text_b of each pair) and embedded in length-sorted batches
(as the server does), ``--repeats`` times after one warm-up per batch size; throughput = texts / median
wall time of a pass (CUDA is synchronised: ``embed`` returns the embeddings on the CPU).
``ratio`` = best texts/s over the batch-size-1 texts/s: the ceiling on what a batching server gains
over one-at-a-time serving on this device, before HTTP, queueing and tokenization overheads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from flipkd.models.bundle import load_bundle
from flipkd.models.lora_encoder import LoraEncoder
from flipkd.service.torch_engine import StudentEngine
from flipkd.training.data import load_pairs


def texts_from(data: Path, count: int) -> list[str]:
    texts = [text for pair in load_pairs(data) for text in (pair.text_a, pair.text_b)]
    return texts[:count]


def pass_seconds(encoder: LoraEncoder, texts: list[str], batch_size: int, repeats: int) -> float:
    """Median wall time of embedding all ``texts`` in length-sorted batches of ``batch_size``."""
    encoder.embed(texts[: batch_size * 2], batch_size=batch_size)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        encoder.embed(texts, batch_size=batch_size)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    encoder = StudentEngine(bundle).encoder  # bf16, on CUDA when present, as the server runs it
    texts = texts_from(args.data, args.texts)
    rows = []
    for batch_size in args.batch_sizes:
        with torch.inference_mode():
            seconds = pass_seconds(encoder, texts, batch_size, args.repeats)
        rows.append({"batch_size": batch_size, "seconds": round(seconds, 4),
                     "texts_per_second": round(len(texts) / seconds, 1)})
        print(f"batch {batch_size:4d}: {rows[-1]['texts_per_second']:9.1f} texts/s", flush=True)
    single = next((row["texts_per_second"] for row in rows if row["batch_size"] == 1), None)
    best = max(rows, key=lambda row: row["texts_per_second"])
    on_cuda = encoder.device.type == "cuda"
    device_name = torch.cuda.get_device_name() if on_cuda else f"cpu, {args.threads} threads"
    result = {"device": device_name, "bundle": str(args.bundle), "encoder": bundle.encoder.to_json(),
              "data": str(args.data), "texts": len(texts), "repeats": args.repeats, "rows": rows,
              "best_batch_size": best["batch_size"],
              "ratio": round(best["texts_per_second"] / single, 2) if single else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({"device": device_name, "ratio": result["ratio"], "best": best}))


if __name__ == "__main__":
    main()
