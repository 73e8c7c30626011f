"""The student in torch: the bundle's LoRA encoder (CUDA when present; bf16 where the hardware multiplies
it natively, else fp32: :func:`~flipkd.models.precision.compute_dtype`) with early exit. The service
imports this module only when it runs a torch student.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from flipkd.models.base_models import BaseModels
from flipkd.models.bundle import Bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.precision import compute_dtype


class StudentEngine:
    """The bundle's LoRA encoder (over ``bases``' shared weights when given); ``threshold`` is the bundle's
    calibrated decision."""

    name = "student"

    def __init__(self, bundle: Bundle, device: str | None = None, bases: BaseModels | None = None,
                 dtype: torch.dtype | None = None) -> None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = student_encoder(bundle, dtype or compute_dtype("auto", device), device, bases)
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
