"""Anonymous memory of the ONNX teacher on batches of random size, with and without onnxruntime's CPU
arena, with and without ``malloc_trim``: why the teacher session runs without the arena.

Usage: python bench/teacher_memory.py --teacher runs/teacher-atec-e5-onnx --data data/atec/train.jsonl \
           --out bench/results/teacher_memory_atec.json

Each variant runs in its own process: one full batch of the longest texts (the server's warm-up), then
``--batches`` batches of 1-32 consecutive texts from random places in the data; RssAnon is read after
the warm-up and every ``--batches / 4`` batches (after a ``malloc_trim(0)`` in the trimmed variants).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

VARIANTS = {"arena": (True, False), "arena, trimmed": (True, True), "no arena": (False, False),
            "no arena, trimmed (served)": (False, True)}


def run_variant(teacher: Path, data: Path, batches: int, arena: bool, trim: bool) -> dict:
    """One variant in this process: anonymous MiB above the post-warm-up level at each checkpoint."""
    from service_soak import memory_mib

    import flipkd.models.onnx_encoder as onnx_encoder
    import flipkd.models.onnx_teacher as onnx_teacher
    from flipkd.service.batched_engine import warm_up_batches
    from flipkd.service.heap_trim import heap_trimmer
    from flipkd.training.data import load_pairs

    make_session = onnx_encoder.make_session

    def session(model_file: Path, threads: int):
        built = make_session(model_file, threads)
        if arena:  # rebuild with the arena, all else as served
            options = built.get_session_options()
            options.enable_cpu_mem_arena = True
            built = onnx_encoder.ort.InferenceSession(str(model_file), options,
                                                      providers=["CPUExecutionProvider"])
        return built

    onnx_encoder.make_session = session
    model = onnx_teacher.OnnxTeacher(teacher, 1)
    texts = [pair.text_a for pair in load_pairs(data)]
    for batch in warm_up_batches(32):
        model.embed(batch, batch_size=len(batch))
    trimmer = heap_trimmer() if trim else None
    if trimmer is not None:
        trimmer()
    def anon_mib() -> float:
        return memory_mib(os.getpid())["anon"]

    start, rng, growth = anon_mib(), random.Random(0), []
    started = time.perf_counter()
    for index in range(batches):
        size = rng.randint(1, 32)
        first = rng.randrange(len(texts) - size)
        model.embed(texts[first:first + size], batch_size=size)
        if (index + 1) % (batches // 4) == 0:
            if trimmer is not None:
                trimmer()
            growth.append(round(anon_mib() - start, 1))
    return {"anon_growth_mib": growth, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=600)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one child process
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.variant is not None:
        print(json.dumps(run_variant(args.teacher, args.data, args.batches, *VARIANTS[args.variant])))
        return
    results = {}
    for name in tqdm(VARIANTS, desc="variants"):
        command = [sys.executable, __file__, "--teacher", str(args.teacher), "--data", str(args.data),
                   "--batches", str(args.batches), "--variant", name]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    result = {"teacher": str(args.teacher), "data": str(args.data), "batches": args.batches,
              "variants": results}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
