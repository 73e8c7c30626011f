"""Model runners behind the batchers: they take a list of texts and know nothing about HTTP.

Both return unit-length float32 embeddings (N, D) and count tokens the way they will truncate, so the
batcher's token budget matches the work. The student runs torch (bf16 on CPU, CUDA when present) with
early exit; the teacher runs onnxruntime with an explicit thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.bundle import Bundle
from models.lora_encoder import LoraEncoder
from models.onnx_teacher import OnnxTeacher
from models.provision import resolve_model


class Engine(Protocol):
    name: str
    threshold: float

    def token_counts(self, texts: Sequence[str]) -> list[int]: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class StudentEngine:
    """The bundle's LoRA encoder; ``threshold`` is the bundle's calibrated decision."""

    name = "student"

    def __init__(self, bundle: Bundle, device: str | None = None) -> None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = LoraEncoder(resolve_model(bundle.base_model), bundle.encoder, adapter=bundle.folder,
                                   dtype=torch.bfloat16, device=device)
        self.encoder.eval()
        self.threshold = bundle.threshold
        self._page_in_embeddings()

    @torch.inference_mode()
    def _page_in_embeddings(self) -> None:
        """Read the whole token-embedding table once. Weights stay memory-mapped from the safetensors
        file, so otherwise each token's row is read from disk the first time a text uses it, and resident
        memory creeps up by the rows traffic has touched instead of being known at start."""
        self.encoder.body.embed_tokens.weight.sum()

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self.encoder.token_counts(texts)  # thread-safe: runs on the event loop beside batches

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.embed(list(texts), batch_size=len(texts)).numpy()


class TeacherEngine:
    """The exported ONNX teacher; ``threshold`` is its own calibrated decision."""

    name = "teacher"

    def __init__(self, folder: Path, threads: int) -> None:
        self.teacher = OnnxTeacher(folder, threads)
        self.threshold = self.teacher.threshold

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        encodings = self.teacher.tokenizer.encode_batch([self.teacher.config.query_prefix + t for t in texts])
        return [sum(encoding.attention_mask) for encoding in encodings]  # the tokenizer pads

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.teacher.embed(list(texts), batch_size=len(texts))
