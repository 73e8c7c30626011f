"""Export a trained teacher to ONNX (pooling and normalization inside the graph) and check its parity.

``export_onnx`` writes an ONNX teacher folder (:mod:`flipkd.models.onnx_teacher`) from a fine-tuned
transformers folder or from an adapter teacher (base + adapter, merged first). ``export_checked`` also
compares the graph's cosines with the torch teacher's (an adapter teacher unmerged, as trained) on
:data:`PARITY_SAMPLE` and raises :class:`ExportCheckFailed` beyond :data:`PARITY_TOLERANCE`
(:func:`parity_gap`). This module imports torch; the runtime (:mod:`flipkd.models.onnx_teacher`) does not.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from flipkd.models.bi_encoder import TorchBiEncoder, teacher_encoder
from flipkd.models.build_lock import MODEL_BUILD_LOCK
from flipkd.models.onnx_teacher import ONNX_FILE, OnnxTeacher
from flipkd.models.teacher_config import TEACHER_CONFIG

PARITY_TOLERANCE = 1e-4
PARITY_SAMPLE = (
    ("Can I take ibuprofen with a cold?", "Is it safe to take ibuprofen when I have a cold?"),
    ("What causes a rash on the arms?", "How long does the flu last?"),
    ("花呗怎么还款", "花呗如何还钱"),
    ("a", "a much longer text about the side effects of antibiotics, alcohol and sleep during recovery"),
)


class ExportCheckFailed(RuntimeError):
    """The exported graph disagrees with torch beyond tolerance."""


def export_onnx(teacher_dir: Path, out_dir: Path) -> None:
    """Write ``teacher.onnx`` (dynamic batch and length), tokenizer and ``teacher.json`` to ``out_dir``."""
    encoder = teacher_encoder(Path(teacher_dir), merged=True)
    encoder.model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = encoder.tokenize(["query example one", "a second, somewhat longer example text"])
    dynamic = {0: "batch", 1: "length"}
    torch.onnx.export(
        encoder.model,
        (sample["input_ids"], sample["attention_mask"]),
        str(out_dir / ONNX_FILE),
        input_names=["input_ids", "attention_mask"],
        output_names=["embeddings"],
        dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "embeddings": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    encoder.tokenizer.save_pretrained(out_dir)
    shutil.copy(Path(teacher_dir) / TEACHER_CONFIG, out_dir / TEACHER_CONFIG)


def parity_gap(reference: TorchBiEncoder, exported: OnnxTeacher, texts_a: Sequence[str],
               texts_b: Sequence[str]) -> float:
    """max |cos_torch(a, b) - cos_onnx(a, b)| over the pairs; ExportCheckFailed beyond PARITY_TOLERANCE."""
    gaps = np.abs(reference.score_pairs(texts_a, texts_b) - exported.score_pairs(texts_a, texts_b))
    gap = float(gaps.max())
    if gap > PARITY_TOLERANCE:
        raise ExportCheckFailed(f"fp32 ONNX cosine differs from torch by {gap:.2e} > {PARITY_TOLERANCE}")
    return gap


def export_checked(teacher_dir: Path, out_dir: Path) -> dict:
    """:func:`export_onnx`, then :func:`parity_gap` on :data:`PARITY_SAMPLE`; returns
    ``{"parity_pairs", "fp32_max_abs_cosine_gap"}``."""
    with MODEL_BUILD_LOCK:  # the trace reads the default dtype
        export_onnx(teacher_dir, out_dir)
        reference = teacher_encoder(Path(teacher_dir))
    texts_a, texts_b = zip(*PARITY_SAMPLE, strict=True)
    gap = parity_gap(reference, OnnxTeacher(out_dir), texts_a, texts_b)
    return {"parity_pairs": len(PARITY_SAMPLE), "fp32_max_abs_cosine_gap": gap}
