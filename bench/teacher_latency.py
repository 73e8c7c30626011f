"""Teacher latency: torch fp32 vs ONNX fp32 vs ONNX int8, one pair and a batch of 32 pairs.

Usage: python bench/teacher_latency.py --teacher runs/teacher-atec-e5 --onnx runs/teacher-atec-e5-onnx \
           --data data/atec/dev.jsonl --threads 2 --out bench/results/teacher_latency_atec.json

Each figure is the median (and p90) wall time over ``--repeats`` runs after ``--warmup`` runs, scoring
real dev pairs (a pair = two texts embedded + one cosine). Threads are set explicitly for both runtimes.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from flipkd.models.bi_encoder import TeacherConfig, TorchBiEncoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.training.data import load_pairs
from flipkd.training.onnx_export import INT8_FILE

Scorer = Callable[[list[str], list[str]], np.ndarray]


def time_scorer(score: Scorer, batches: list[tuple[list[str], list[str]]], warmup: int) -> dict[str, float]:
    """Median and p90 milliseconds of ``score`` over ``batches`` (the first ``warmup`` are not counted)."""
    timings = []
    for index, (texts_a, texts_b) in enumerate(batches):
        started = time.perf_counter()
        score(texts_a, texts_b)
        if index >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
    return {"median_ms": float(np.median(timings)), "p90_ms": float(np.percentile(timings, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pairs = load_pairs(args.data)
    config = TeacherConfig.load(args.teacher)
    torch_encoder = TorchBiEncoder(str(args.teacher), config.query_prefix, config.max_length)
    engines: dict[str, Scorer] = {
        "torch fp32": torch_encoder.score_pairs,
        "onnx fp32": OnnxTeacher(args.onnx, args.threads).score_pairs,
        "onnx int8": OnnxTeacher(args.onnx, args.threads, INT8_FILE).score_pairs,
    }
    rows = []
    for batch_size in (1, 32):
        count = args.repeats + args.warmup
        chunks = [pairs[i * batch_size:(i + 1) * batch_size] for i in range(count)]
        batches = [([p.text_a for p in chunk], [p.text_b for p in chunk]) for chunk in chunks]
        for name, score in tqdm(engines.items(), desc=f"batch {batch_size}"):
            timing = time_scorer(score, batches, args.warmup)
            rows.append({"engine": name, "pairs_per_call": batch_size, **timing})
    result = {"teacher": str(args.teacher), "data": str(args.data), "threads": args.threads,
              "repeats": args.repeats, "cpu": platform.processor() or platform.machine(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"{row['engine']:<11} {row['pairs_per_call']:>3} pairs  median {row['median_ms']:8.2f} ms"
              f"  p90 {row['p90_ms']:8.2f} ms")


if __name__ == "__main__":
    main()
