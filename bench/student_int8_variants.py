"""Which nodes the student's int8 graph may quantize, and with how many weight bits: dev F1 (at the
bundle's threshold), ROC-AUC and cosine to fp32 of int8 variants of the exported fp32 graph.

Usage: python bench/student_int8_variants.py --bundle atec --data data/atec/dev.jsonl \
           --out bench/results/student_runtimes/atec-int8-variants.jsonl

Variants, from the fp32 graph in the model cache (``ensure_student_onnx``): the recipe
(``student_export.int8_nodes``), the recipe plus the token-embedding Gather, and the recipe without the
attention output projections (``o_proj``), all with 7-bit weights as the export makes them
(:mod:`flipkd.models.int8`); and the recipe with 8-bit weights, which saturate on CPUs without VNNI (the line
records whether this CPU has it). Every distinct dev text is embedded once (sorted, batches of 32). One JSON
line per variant (nodes quantized, weight bits, graph MiB, cosine of its embeddings to fp32's, metrics), and
one for fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from flipkd.models.bundle import bundle_folder, load_bundle
from flipkd.models.int8 import quantize_weights
from flipkd.models.onnx_student import INT8_FILE, ONNX_FILE, STUDENT_CONFIG, OnnxStudent, ensure_student_onnx
from flipkd.models.precision import cpu_flags
from flipkd.models.student_export import int8_nodes
from flipkd.training.data import distinct_texts, load_pairs
from flipkd.training.metrics import classification_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", type=Path, required=True, help="dev pairs (jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    bundle = load_bundle(bundle_folder(args.bundle))
    exported = ensure_student_onnx(bundle)
    pairs = load_pairs(args.data)
    labels = np.array([p.label for p in pairs])
    graph = onnx.load(str(exported / ONNX_FILE), load_external_data=False).graph
    recipe = int8_nodes(graph)
    embedding = [node.name for node in graph.node if node.op_type == "Gather"
                 and {i.name for i in graph.initializer} & set(node.input)]
    variants = {"recipe": (recipe, 7), "recipe + token embeddings": (recipe + embedding, 7),
                "recipe without o_proj": ([name for name in recipe if "o_proj" not in name], 7),
                "recipe, 8-bit weights": (recipe, 8)}
    texts = sorted(distinct_texts(pairs))
    row = {t: i for i, t in enumerate(texts)}
    a, b = [row[p.text_a] for p in pairs], [row[p.text_b] for p in pairs]
    fp32 = OnnxStudent(exported, 1).embed(texts, 32)
    vnni = bool(cpu_flags() & {"avx512_vnni", "avx_vnni"})

    def metrics(vectors: np.ndarray) -> dict[str, float]:
        cosines = (vectors * fp32).sum(axis=1)
        return {"cosine_to_fp32_min": float(cosines.min()), "cosine_to_fp32_mean": float(cosines.mean()),
                **classification_metrics((vectors[a] * vectors[b]).sum(axis=1), labels, bundle.threshold)}

    lines = [{"variant": "fp32", "cpu_vnni": vnni, **metrics(fp32)}]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in ("tokenizer.json", STUDENT_CONFIG):
            shutil.copy(exported / name, folder / name)
        (folder / ONNX_FILE).symlink_to(exported / ONNX_FILE)
        for label, (nodes, bits) in variants.items():
            quantize_weights(exported / ONNX_FILE, folder / INT8_FILE, include=nodes,
                             op_types=("MatMul", "Gather"), weight_bits=bits)
            vectors = OnnxStudent(folder, 1, int8=True).embed(texts, 32)
            lines.append({"variant": label, "nodes": len(nodes), "weight_bits": bits,
                          "mib": round((folder / INT8_FILE).stat().st_size / 2**20), **metrics(vectors)})
            print(json.dumps(lines[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps({"bundle": args.bundle, **line}) + "\n" for line in lines))


if __name__ == "__main__":
    main()
