"""The SLM teacher as a bi-encoder: transformers encoder + mean pooling + L2 norm; similarity = cosine.

A trained teacher folder is an ordinary transformers folder (weights and tokenizer) or an adapter
teacher (a PEFT adapter over its pinned base), plus ``teacher.json`` (:mod:`flipkd.models.teacher_config`,
re-exported here for the training side); :func:`teacher_encoder` loads either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from flipkd.models.build_lock import MODEL_BUILD_LOCK
from flipkd.models.pooling import masked_mean
from flipkd.models.provision import base_identity, resolve_model
from flipkd.models.similarity import pair_cosines
from flipkd.models.teacher_config import TEACHER_CONFIG as TEACHER_CONFIG
from flipkd.models.teacher_config import TeacherConfig as TeacherConfig
from flipkd.models.teacher_config import is_adapter_teacher
from flipkd.models.text_encoder import with_progress


class PooledEncoder(nn.Module):
    """(input_ids, attention_mask) -> L2-normalized mean-pooled embeddings (B, D)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(masked_mean(hidden, attention_mask), dim=-1)


def length_sorted_batches(texts: Sequence[str], batch_size: int, progress: str | None = None
                          ) -> Iterable[list[int]]:
    """Indices of ``texts`` grouped into batches of similar length (longest first) to limit padding;
    with ``progress`` (a label) iterating them shows a progress bar on stderr."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return with_progress([order[start:start + batch_size] for start in range(0, len(order), batch_size)],
                         progress)


class TorchBiEncoder:
    """A tokenizer and a :class:`PooledEncoder` with the prefix and max length they are used with."""

    def __init__(self, model_path: str, query_prefix: str = "", max_length: int = 128) -> None:
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_path)
        with MODEL_BUILD_LOCK:
            encoder = AutoModel.from_pretrained(model_path, dtype=torch.float32, add_pooling_layer=False)
        self.model = PooledEncoder(encoder)
        self.query_prefix = query_prefix
        self.max_length = max_length

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Prefix, truncate to ``max_length`` and pad a batch of texts."""
        prefixed = [self.query_prefix + text for text in texts]
        return self.tokenizer(prefixed, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 64, bf16: bool = False,
              progress: str | None = None) -> np.ndarray:
        """L2-normalized embeddings (N, D) as float32, computed in length-sorted batches."""
        self.model.eval()
        out: np.ndarray | None = None
        for batch in length_sorted_batches(texts, batch_size, progress):
            encoded = self.tokenize([texts[i] for i in batch])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                vectors = self.model(encoded["input_ids"], encoded["attention_mask"]).float().numpy()
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[batch] = vectors
        assert out is not None, "embed() needs at least one text"
        return out

    def score_pairs(self, texts_a: Sequence[str], texts_b: Sequence[str], batch_size: int = 64,
                    bf16: bool = False, progress: str | None = None) -> np.ndarray:
        """Cosine similarity of each (a, b), embedding every distinct text once."""
        return pair_cosines(lambda texts: self.embed(texts, batch_size, bf16, progress), texts_a, texts_b)



def pinned_base(config: TeacherConfig) -> str:
    """The base folder an adapter teacher was trained on; ValueError when the provisioned base's weight
    hash is not the one ``teacher.json`` records."""
    recorded = base_identity(config.base).get("weight_sha256")
    if config.base_sha256 is not None and recorded != config.base_sha256:
        raise ValueError(f"teacher base {config.base!r}: weights sha256 {recorded}, the teacher was "
                         f"trained on {config.base_sha256}")
    return resolve_model(config.base)


def teacher_encoder(folder: Path, merged: bool = False) -> TorchBiEncoder:
    """A trained teacher folder in torch: a fine-tuned transformers folder as is, or an adapter teacher as
    its pinned base with the adapter (folded into the base weights when ``merged``, as for export)."""
    config = TeacherConfig.load(folder)
    if not is_adapter_teacher(folder):
        return TorchBiEncoder(str(folder), config.query_prefix, config.max_length)
    encoder = TorchBiEncoder(pinned_base(config), config.query_prefix, config.max_length)
    with MODEL_BUILD_LOCK:
        adapted = PeftModel.from_pretrained(encoder.model.encoder, str(folder))
    encoder.model.encoder = adapted.merge_and_unload() if merged else adapted
    return encoder
