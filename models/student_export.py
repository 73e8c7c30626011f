"""Export a bundle's student to ONNX (the early-exit LoRA encoder, pooling and normalisation inside the
graph) and check its parity with torch; optionally add a dynamically quantized int8 graph.

The graph is :class:`StudentGraph`: the read layers of the base with the adapter, run by
:meth:`LoraEncoder.explicit_pass` on explicit additive masks and rotary table so nothing in it depends on
the example batch, up to the deepest read LoRA A output, whose captured outputs are pooled and joined
exactly as :meth:`LoraEncoder.read_pass` does. Inputs ``input_ids`` and ``attention_mask`` (int64,
dynamic batch and length); output ``embeddings`` (float32, (batch, dim)). The folder
(:mod:`flipkd.models.onnx_student`) also gets the encoder's truncating ``tokenizer.json`` and
``student.json``.
int8: onnxruntime's dynamic quantization (:mod:`flipkd.models.int8`), of the base's projections but the MLP
down-projections (:func:`int8_nodes`).
This module imports torch; the runtime does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flipkd.models.bundle import Bundle
from flipkd.models.int8 import quantize_weights
from flipkd.models.lora_encoder import ADAPTER_NAME, LoraEncoder, student_encoder
from flipkd.models.onnx_student import INT8_FILE, ONNX_FILE, STUDENT_CONFIG, OnnxStudent, bundle_key
from flipkd.models.teacher_export import PARITY_SAMPLE, ExportCheckFailed

PARITY_TOLERANCE = 1e-4


class StudentGraph(nn.Module):
    """The student's forward as one traceable function of (input_ids, attention_mask) -> embeddings."""

    def __init__(self, encoder: LoraEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder.explicit_forward(input_ids, attention_mask)


def parity_gap(expected: np.ndarray, exported: OnnxStudent, texts: list[str]) -> float:
    """max |e_torch - e_onnx| over ``texts``' unit embeddings (``expected``: torch's), the graph's embedded
    all in one padded batch and one by one (lengths down to one token)."""
    together = exported.embed(texts, batch_size=len(texts))
    alone = np.concatenate([exported.embed([text], batch_size=1) for text in texts])
    return float(max(np.abs(expected - together).max(), np.abs(expected - alone).max()))


def export_student(bundle: Bundle, out_dir: Path, int8: bool = True) -> dict:
    """Write the fp32 graph (and the int8 one), tokenizer and ``student.json`` to ``out_dir``; raise
    ExportCheckFailed when the fp32 graph's :func:`parity_gap` is over PARITY_TOLERANCE. Returns
    ``{"parity_texts", "fp32_max_abs_gap", "int8_max_abs_gap"}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = student_encoder(bundle, torch.float32, "cpu")
    sample = encoder.tokenize(["query example one", "a second, somewhat longer example text"])
    dynamic = {0: "batch", 1: "length"}
    with torch.inference_mode():
        torch.onnx.export(
            StudentGraph(encoder), (sample["input_ids"], sample["attention_mask"]), str(out_dir / ONNX_FILE),
            input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "embeddings": {0: "batch"}},
            opset_version=17, dynamo=False)
    encoder.ids_tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {"bundle_sha256": bundle_key(bundle.folder), "base_model": bundle.base_model,
              "encoder": encoder.spec.to_json(), "pad_id": encoder.pad_id, "dim": encoder.dim}
    (out_dir / STUDENT_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    texts = [text for pair in PARITY_SAMPLE for text in pair]
    with torch.inference_mode():
        expected = encoder.embed(texts, batch_size=len(texts)).numpy()
    gap = parity_gap(expected, OnnxStudent(out_dir), texts)
    if gap > PARITY_TOLERANCE:
        raise ExportCheckFailed(f"fp32 ONNX student differs from torch by {gap:.2e} > {PARITY_TOLERANCE}")
    report = {"parity_texts": len(texts), "fp32_max_abs_gap": gap}
    if int8:
        quantize_int8(out_dir / ONNX_FILE, out_dir / INT8_FILE)
        report["int8_max_abs_gap"] = parity_gap(expected, OnnxStudent(out_dir, int8=True), texts)
    return report


def int8_nodes(graph) -> list[str]:
    """The nodes int8 quantizes: the base's weight MatMuls except the MLP down-projections (their inputs,
    SiLU(gate) * up, carry outliers that per-tensor dynamic int8 activations clip: the ATEC student's
    embeddings kept a cosine of 0.95 to fp32 with them quantized, 0.997 without) and the LoRA matrices
    (rank-r products that cost nothing; the A outputs are the embedding itself). The token-embedding table
    stays fp32: it is a lookup with no arithmetic to save, and quantizing it cost 0.6 ATEC dev F1 point."""
    weights = {initializer.name for initializer in graph.initializer}

    def chosen(node) -> bool:
        if node.op_type != "MatMul" or not weights & set(node.input):
            return False
        parts = node.name.split("/")
        return ADAPTER_NAME not in {part.split("_")[0] for part in parts} and "down_proj" not in parts

    return [node.name for node in graph.node if chosen(node)]


def quantize_int8(fp32_file: Path, int8_file: Path) -> None:
    """Dynamic int8 (:func:`flipkd.models.int8.quantize_weights`) of :func:`int8_nodes`."""
    import onnx

    graph = onnx.load(str(fp32_file), load_external_data=False).graph
    quantize_weights(fp32_file, int8_file, include=int8_nodes(graph))
