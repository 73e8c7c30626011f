"""The teacher at inference: an ONNX graph (encoder + mean pooling + L2 norm) run by onnxruntime.

An exported teacher folder holds ``teacher.onnx`` (inputs ``input_ids``, ``attention_mask``: int64
(batch, length); output ``embeddings``: float32 (batch, dim), dim fixed, unit length), ``tokenizer.json``
and ``teacher.json``. Tokenization uses the ``tokenizers`` library directly and batching is
:mod:`flipkd.models.text_encoder`'s, so serving needs no torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from flipkd.models.onnx_encoder import OnnxEncoder
from flipkd.models.padding import TEACHER_CPU_OVERHEAD_TOKENS
from flipkd.models.similarity import pair_cosines
from flipkd.models.teacher_config import TeacherConfig
from flipkd.models.text_encoder import ids_only

ONNX_FILE = "teacher.onnx"


class OnnxTeacher(OnnxEncoder):
    """Embeds texts and scores pairs with an exported teacher; ``threshold`` is its calibrated decision.
    Embeddings are unit length, (N, ``dim``) float32 numpy arrays; inputs are int64 numpy arrays."""

    def __init__(self, folder: Path, threads: int = 1, model_file: str = ONNX_FILE) -> None:
        folder = Path(folder)
        self.config = TeacherConfig.load(folder)
        self.threshold = self.config.threshold
        super().__init__(folder / model_file, threads)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.pad_id = tokenizer.token_to_id(tokenizer.padding["pad_token"]) if tokenizer.padding \
            else self._pad_id(tokenizer)
        self.ids_tokenizer = ids_only(tokenizer, self.config.max_length)

    @staticmethod
    def _pad_id(tokenizer: Tokenizer) -> int:
        """The id of ``<pad>`` or ``[PAD]``, whichever the vocabulary has first, else 0."""
        for token in ("<pad>", "[PAD]"):
            token_id = tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    def format_text(self, text: str) -> str:
        return self.config.query_prefix + text

    def _overhead_tokens(self) -> int:
        return TEACHER_CPU_OVERHEAD_TOKENS

    def score_pairs(self, texts_a: Sequence[str], texts_b: Sequence[str], batch_size: int = 32,
                    progress: str | None = None) -> np.ndarray:
        """Cosine similarity of each (a, b)."""
        return pair_cosines(lambda texts: self.embed(texts, batch_size, progress), texts_a, texts_b)
