"""A bundle's student in each runtime the service offers, side by side in one run: torch fp32, torch bf16,
onnxruntime fp32 and onnxruntime int8 (FLIPKD_STUDENT_RUNTIME / FLIPKD_STUDENT_DTYPE), plus torch fp32
with its deepest read layer run whole (what the in-layer exit saves).

Usage: python bench/student_runtimes.py --bundle atec --data data/atec/dev.jsonl \
           [--part speed|quality] --out bench/results/student_runtimes/atec.json

- Speed: texts/s at the service's batch sizes (default 1, 8, 32) on ``--threads`` threads (the service
  runs each batch on one), dev texts in a fixed order; every runtime is timed in turn, round after round,
  and the median round is kept, so drift on the machine hits all alike.
- Quality on the dev pairs: F1 and accuracy at the bundle's threshold and ROC-AUC, for torch fp32 and
  onnxruntime int8 (fp32 ONNX equals torch fp32 to 1e-4 by its export check), and the int8 F1's change.
- Size: the graphs' bytes, and the bundle's export report (parity gaps).
The ONNX graphs are exported into the model cache first if missing (``ensure_student_onnx``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from whole_layer import WholeDeepestLayer

from flipkd.models.bundle import bundle_folder, load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_student import INT8_FILE, ONNX_FILE, OnnxStudent, ensure_student_onnx
from flipkd.models.provision import resolve_model
from flipkd.models.similarity import pair_cosines
from flipkd.models.text_encoder import TextEncoder
from flipkd.training.data import distinct_texts, load_pairs
from flipkd.training.metrics import classification_metrics


def texts_per_second(encoder: TextEncoder, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        encoder.embed(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started)


def as_numpy(vectors) -> np.ndarray:
    return vectors.numpy() if isinstance(vectors, torch.Tensor) else vectors


def dev_quality(encoder: TextEncoder, pairs, threshold: float) -> dict[str, float]:
    def embed(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return as_numpy(encoder.embed(texts, batch_size=32, progress="dev"))

    scores = pair_cosines(embed, [p.text_a for p in pairs], [p.text_b for p in pairs])
    return classification_metrics(scores, np.array([p.label for p in pairs]), threshold)


def speed(runtimes: dict[str, TextEncoder], texts: list[str], batch_sizes: list[int], rounds: int
          ) -> dict[str, object]:
    """Median texts/s of each runtime per batch size, the runtimes taking turns round after round."""
    rates: dict[str, dict[str, float]] = {name: {} for name in runtimes}
    for batch_size in batch_sizes:
        measured: dict[str, list[float]] = {name: [] for name in runtimes}
        for encoder in runtimes.values():  # warm-up
            texts_per_second(encoder, texts[:batch_size * 2], batch_size)
        for _ in range(rounds):
            for name, encoder in runtimes.items():
                measured[name].append(texts_per_second(encoder, texts, batch_size))
        for name in runtimes:
            rates[name][str(batch_size)] = round(statistics.median(measured[name]), 1)
        print(f"batch {batch_size}:", {name: rates[name][str(batch_size)] for name in runtimes}, flush=True)

    def ratio(name: str, against: str) -> dict[str, float]:
        return {b: round(rates[name][b] / rates[against][b], 2) for b in rates[name]}

    return {"texts_per_round": len(texts), "rounds": rounds, "texts_per_second": rates,
            "onnx_int8_speedup_vs_torch_bf16": ratio("onnx int8", "torch bf16"),
            "onnx_int8_speedup_vs_torch_fp32": ratio("onnx int8", "torch fp32"),
            "in_layer_exit_speedup": ratio("torch fp32", "torch fp32, deepest layer whole")}


def quality(runtimes: dict[str, TextEncoder], pairs, threshold: float) -> dict[str, object]:
    """Dev metrics at the bundle's threshold, torch fp32 against onnxruntime int8."""
    dev = {name: dev_quality(runtimes[name], pairs, threshold) for name in ("torch fp32", "onnx int8")}
    change = 100 * (dev["onnx int8"]["f1"] - dev["torch fp32"]["f1"])
    return {"dev": dev, "int8_f1_change_points": round(change, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", type=Path, required=True, help="dev pairs (jsonl)")
    parser.add_argument("--part", choices=["speed", "quality", "both"], default="both")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--texts", type=int, default=256, help="texts per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(bundle_folder(args.bundle))
    exported = ensure_student_onnx(bundle)
    runtimes: dict[str, TextEncoder] = {
        "torch fp32": student_encoder(bundle, torch.float32, "cpu"),
        "onnx int8": OnnxStudent(exported, args.threads, int8=True),
    }
    if args.part != "quality":
        runtimes |= {
            "torch fp32, deepest layer whole": WholeDeepestLayer(resolve_model(bundle.base_model),
                                                                 bundle.encoder, bundle.folder,
                                                                 torch.float32).eval(),
            "torch bf16": student_encoder(bundle, torch.bfloat16, "cpu"),
            "onnx fp32": OnnxStudent(exported, args.threads),
        }
    pairs = load_pairs(args.data)
    result: dict[str, object] = {"bundle": args.bundle, "data": str(args.data), "pairs": len(pairs),
                                 "threads": args.threads}
    if args.part != "quality":
        texts = distinct_texts(pairs)[:args.texts]
        result |= speed(runtimes, texts, args.batch_sizes, args.rounds)
    if args.part != "speed":
        result |= quality(runtimes, pairs, bundle.threshold)
    result |= {"graph_mib": {name: round((exported / name).stat().st_size / 2**20)
                             for name in (ONNX_FILE, INT8_FILE)},
               "export": json.loads((exported / "export.json").read_text())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
