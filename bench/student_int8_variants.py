"""Which nodes the student's int8 graph may quantize: dev F1 (at the bundle's threshold) and ROC-AUC of
int8 graphs that leave more of the exported fp32 graph in fp32, each against the shipped recipe.

Usage: python bench/student_int8_variants.py --bundle atec --data data/atec/dev.jsonl \
           --out bench/results/student_runtimes/atec-int8-variants.jsonl

Variants, from the fp32 graph in the model cache (``ensure_student_onnx``): the recipe
(``student_export.int8_nodes``), the recipe plus the token-embedding Gather, and the recipe without the
attention output projections (``o_proj``). One JSON line per variant (nodes quantized, graph MiB, metrics),
and one for fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from flipkd.models.bundle import bundle_folder, load_bundle
from flipkd.models.onnx_student import INT8_FILE, ONNX_FILE, STUDENT_CONFIG, OnnxStudent, ensure_student_onnx
from flipkd.models.similarity import pair_cosines
from flipkd.models.student_export import int8_nodes
from flipkd.training.data import load_pairs
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
    variants = {"recipe": recipe, "recipe + token embeddings": recipe + embedding,
                "recipe without o_proj": [name for name in recipe if "o_proj" not in name]}

    def metrics(folder: Path, int8: bool) -> dict[str, float]:
        encoder = OnnxStudent(folder, 1, int8=int8)
        scores = pair_cosines(lambda texts: encoder.embed(texts, 32), [p.text_a for p in pairs],
                              [p.text_b for p in pairs])
        return classification_metrics(scores, labels, bundle.threshold)

    lines = [{"variant": "fp32", **metrics(exported, False)}]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in ("tokenizer.json", STUDENT_CONFIG):
            shutil.copy(exported / name, folder / name)
        (folder / ONNX_FILE).symlink_to(exported / ONNX_FILE)
        for label, nodes in variants.items():
            quantize_dynamic(str(exported / ONNX_FILE), str(folder / INT8_FILE), per_channel=True,
                             weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"],
                             nodes_to_quantize=nodes)
            lines.append({"variant": label, "nodes": len(nodes),
                          "mib": round((folder / INT8_FILE).stat().st_size / 2**20), **metrics(folder, True)})
            print(json.dumps(lines[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps({"bundle": args.bundle, **line}) + "\n" for line in lines))


if __name__ == "__main__":
    main()
