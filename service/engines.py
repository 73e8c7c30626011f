"""Model runners behind the batchers: they tokenize texts and embed token ids, and know nothing about HTTP.

A text is tokenized once, on the event loop, the way the engine truncates it: its ids are what the
batcher queues and counts against its token budget, and what the engine runs (padded per sub-batch).
Both return unit-length float32 embeddings (N, ``dim``). The student runs torch
(:class:`flipkd.service.torch_engine.StudentEngine`) or onnxruntime (:class:`OnnxStudentEngine`); the
teacher runs onnxruntime with an explicit thread count. This module imports no torch, so a service
with an onnxruntime student runs where torch is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from flipkd.models.bundle import Bundle
from flipkd.models.onnx_student import OnnxStudent, ensure_student_onnx
from flipkd.models.onnx_teacher import OnnxTeacher


class Engine(Protocol):
    name: str
    threshold: float
    dim: int

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]: ...

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray: ...


class OnnxStudentEngine:
    """The bundle's student as an onnxruntime graph (``int8``: quantized weights), exported into the
    model cache on first use; same vectors as the torch student in fp32 (parity-checked at export)."""

    name = "student"

    def __init__(self, bundle: Bundle, threads: int = 1, int8: bool = False) -> None:
        self.encoder = OnnxStudent(ensure_student_onnx(bundle), threads, int8)
        self.threshold = bundle.threshold
        self.dim = self.encoder.dim

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encoder.token_ids(texts)

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.encoder.embed_ids(ids, batch_size=len(ids))


class TeacherEngine:
    """The exported ONNX teacher; ``threshold`` is its own calibrated decision."""

    name = "teacher"

    def __init__(self, folder: Path, threads: int) -> None:
        self.teacher = OnnxTeacher(folder, threads)
        self.threshold = self.teacher.threshold
        self.dim = self.teacher.dim

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.teacher.token_ids(texts)

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.teacher.embed_ids(ids, batch_size=len(ids))
