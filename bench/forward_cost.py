"""What one forward costs on CPU as a function of its padded tokens, and what splitting a mixed batch by
length (``models.padding``) gains, for the student or the ONNX teacher.

Usage: python bench/forward_cost.py --data data/atec/test.jsonl --out bench/results/forward_cost_cpu.json
           [--bundle DIR: default bundle] [--threads 1]
       python bench/forward_cost.py --data data/atec/test.jsonl --teacher runs/teacher-atec-e5-onnx \
           --out bench/results/forward_cost_teacher_cpu.json

1. Forwards of ``size`` copies of a ``length``-token text for size 1..32 and lengths 16 and 32 (the
   median of ``--repeats`` interleaved runs each, padding and copying out included, as a sub-batch
   pays them); a least-squares line ``seconds = fixed + per_token x size x length`` over them gives the
   fixed cost of a forward in tokens of work, ``fixed / per_token``.
2. The data's texts in file order, in batches of ``--batch-size``, embedded as one padded forward per
   batch (``overhead=None``) and split by ``padding_aware_batches`` with each overhead in ``OVERHEADS``;
   texts/s of each, taking every batch through all of them in turn so the CPU's drifting speed hits all
   alike. Small sub-batches also run below the per-token rate of large ones, so the best overhead for the
   split can be above the fitted fixed cost; ``models.padding``'s overhead for the model is the one
   chosen here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from flipkd.models.bundle import DEFAULT_BUNDLE, load_bundle
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.padding import (
    STUDENT_CPU_OVERHEAD_TOKENS,
    TEACHER_CPU_OVERHEAD_TOKENS,
    padding_aware_batches,
)
from flipkd.service.torch_engine import StudentEngine
from flipkd.training.data import load_pairs

SIZES = (1, 2, 4, 8, 16, 32)
OVERHEADS = (0, 16, 32, 64, 96, 128, 192, 256)
LENGTHS = (16, 32)


class SubBatchModel(Protocol):
    """What the student's LoraEncoder and the OnnxTeacher share: token ids, and one forward per sub-batch."""

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]: ...

    def embed_in(self, ids: Sequence[Sequence[int]], batches: list[list[int]]) -> object: ...


def forward_seconds(model: SubBatchModel, size: int, length: int) -> float:
    started = time.perf_counter()
    model.embed_in([[100] * length] * size, [list(range(size))])
    return time.perf_counter() - started


def fixed_cost(model: SubBatchModel, repeats: int) -> dict:
    shapes = [(size, length) for length in LENGTHS for size in SIZES]
    for shape in shapes:
        forward_seconds(model, *shape)
    runs: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
    for _ in tqdm(range(repeats), desc="forward shapes"):
        for shape in shapes:
            runs[shape].append(forward_seconds(model, *shape))
    medians = {shape: statistics.median(times) for shape, times in runs.items()}
    design = np.array([[1.0, size * length] for size, length in shapes])
    fixed, per_token = np.linalg.lstsq(design, np.array([medians[s] for s in shapes]), rcond=None)[0]
    return {"shapes": [{"size": s, "length": n, "median_ms": round(1000 * medians[(s, n)], 2)}
                       for s, n in shapes],
            "fixed_ms": round(1000 * fixed, 2), "per_token_ms": round(1000 * per_token, 4),
            "overhead_tokens": round(fixed / per_token, 1)}


def split_gain(model: SubBatchModel, texts: list[str], batch_size: int, overhead_used: int) -> dict:
    """texts/s of one padded forward per batch and of the length-aware split at each overhead (each batch
    tokenized once, outside the timing)."""
    batches = [model.token_ids(texts[i:i + batch_size])
               for i in range(0, len(texts) - batch_size + 1, batch_size)]
    overheads = {"one_forward": None} | {str(overhead): overhead for overhead in OVERHEADS}
    seconds = dict.fromkeys(overheads, 0.0)
    for ids in tqdm(batches, desc="mixed batches"):
        lengths = [len(row) for row in ids]
        for name, overhead in overheads.items():
            started = time.perf_counter()
            model.embed_in(ids, padding_aware_batches(lengths, len(ids), overhead))
            seconds[name] += time.perf_counter() - started
    texts_per_s = {name: len(batches) * batch_size / s for name, s in seconds.items()}
    return {"batch_size": batch_size, "batches": len(batches),
            "mean_tokens_per_text": round(float(np.mean([len(row) for ids in batches for row in ids])), 2),
            "texts_per_s": {name: round(value, 1) for name, value in texts_per_s.items()},
            "speed_up_at_chosen_overhead": round(texts_per_s[str(overhead_used)] / texts_per_s["one_forward"],
                                                 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--teacher", type=Path, help="an exported ONNX teacher: measure it, not the student")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model: SubBatchModel
    if args.teacher is not None:
        model, overhead_used = OnnxTeacher(args.teacher, args.threads), TEACHER_CPU_OVERHEAD_TOKENS
    else:
        model = StudentEngine(load_bundle(args.bundle), device="cpu").encoder
        overhead_used = STUDENT_CPU_OVERHEAD_TOKENS
    texts = [t for p in load_pairs(args.data) for t in (p.text_a, p.text_b)][:args.texts]
    result = {"model": str(args.teacher or args.bundle), "data": str(args.data), "threads": args.threads,
              "overhead_used": overhead_used, "fit": fixed_cost(model, args.repeats),
              "mixed_batches": split_gain(model, texts, args.batch_size, overhead_used)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "fit"} | {"fit": {
        k: v for k, v in result["fit"].items() if k != "shapes"}}, indent=2))


if __name__ == "__main__":
    main()
