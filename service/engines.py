"""Model runners behind the batchers: they tokenize texts and embed token ids, and know nothing about HTTP.

A text is tokenized once, on the event loop, the way the engine truncates it: its ids are what the
batcher queues and counts against its token budget, and what the engine runs (padded per sub-batch).
Both return unit-length float32 embeddings (N, ``dim``). The student runs torch
(:class:`flipkd.service.torch_engine.StudentEngine`) or onnxruntime (:func:`onnx_student_engine`); the
teacher runs onnxruntime with an explicit thread count. This module imports no torch, so a service
with an onnxruntime student runs where torch is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from flipkd.models.bundle import Bundle
from flipkd.models.onnx_encoder import OnnxEncoder
from flipkd.models.onnx_student import OnnxStudent, ensure_student_onnx
from flipkd.models.onnx_teacher import OnnxTeacher


class Engine(Protocol):
    name: str
    threshold: float
    dim: int

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]: ...

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray: ...


class OnnxEngine:
    """An onnxruntime encoder behind the engine interface: the exported teacher, or the student's graph."""

    def __init__(self, name: str, encoder: OnnxEncoder, threshold: float) -> None:
        self.name = name
        self.encoder = encoder
        self.threshold = threshold
        self.dim = encoder.dim

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encoder.token_ids(texts)

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.encoder.embed_ids(ids, batch_size=len(ids))


def onnx_student_engine(bundle: Bundle, threads: int = 1, int8: bool = False) -> OnnxEngine:
    """The bundle's student as an onnxruntime graph (``int8``: quantized weights), exported into the
    model cache on first use; same vectors as the torch student in fp32 (parity-checked at export)."""
    return OnnxEngine("student", OnnxStudent(ensure_student_onnx(bundle), threads, int8), bundle.threshold)


def teacher_engine(folder: Path, threads: int) -> OnnxEngine:
    """The exported ONNX teacher; its threshold is its own calibrated decision."""
    teacher = OnnxTeacher(folder, threads)
    return OnnxEngine("teacher", teacher, teacher.threshold)
