"""Model runners behind the batchers: they tokenize texts and embed token ids, and know nothing about HTTP.

A text is tokenized once, on the event loop, the way the engine truncates it: its ids are what the
batcher queues and counts against its token budget, and what the engine runs (padded per sub-batch).
Both return unit-length float32 embeddings (N, ``dim``). The student runs torch (CUDA when present; bf16
where the hardware multiplies it natively, else fp32: :func:`~flipkd.service.runtime.student_dtype`) with
early exit, or onnxruntime (:class:`OnnxStudentEngine`); the teacher runs onnxruntime with an explicit
thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from flipkd.models.base_models import BaseModels
from flipkd.models.bundle import Bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_student import OnnxStudent, ensure_student_onnx
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.service.runtime import student_dtype


class Engine(Protocol):
    name: str
    threshold: float
    dim: int

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]: ...

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray: ...


class StudentEngine:
    """The bundle's LoRA encoder (over ``bases``' shared weights when given); ``threshold`` is the bundle's
    calibrated decision."""

    name = "student"

    def __init__(self, bundle: Bundle, device: str | None = None, bases: BaseModels | None = None,
                 dtype: torch.dtype | None = None) -> None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = student_encoder(bundle, dtype or student_dtype("auto", device), device, bases)
        self.threshold = bundle.threshold
        self.dim = self.encoder.dim
        self._page_in_embeddings()

    @torch.inference_mode()
    def _page_in_embeddings(self) -> None:
        """Read the whole token-embedding table once. Weights stay memory-mapped from the safetensors
        file, so otherwise each token's row is read from disk the first time a text uses it, and resident
        memory creeps up by the rows traffic has touched instead of being known at start."""
        self.encoder.body.embed_tokens.weight.sum()

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encoder.token_ids(texts)  # thread-safe: runs on the event loop beside batches

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.encoder.embed_ids(ids, batch_size=len(ids)).numpy()


class OnnxStudentEngine:
    """The bundle's student as an onnxruntime graph (``int8``: quantized weights), exported into the
    model cache on first use; same vectors as :class:`StudentEngine` in fp32 (parity-checked at export)."""

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
