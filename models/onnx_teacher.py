"""The teacher at inference: an ONNX graph (encoder + mean pooling + L2 norm) run by onnxruntime.

An exported teacher folder holds ``teacher.onnx`` (inputs ``input_ids``, ``attention_mask``: int64
(batch, length); output ``embeddings``: float32 (batch, dim), unit length), ``tokenizer.json`` and
``teacher.json``. Tokenization uses the ``tokenizers`` library directly, so serving needs no torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from flipkd.models.bi_encoder import TeacherConfig, pair_cosines, with_progress
from flipkd.models.padding import TEACHER_CPU_OVERHEAD_TOKENS, padding_aware_batches, right_padded

ONNX_FILE = "teacher.onnx"


def make_session(model_file: Path, threads: int) -> ort.InferenceSession:
    """A CPU session with an explicit thread count (onnxruntime otherwise sizes it from the host), and
    without onnxruntime's CPU memory arena: the arena keeps whatever peak it once reached, while memory
    handed back to malloc goes back to the OS at the server's next ``malloc_trim`` (``service.heap_trim``;
    growth over random batches after warm-up: ``bench/teacher_memory.py``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


class OnnxTeacher:
    """Embeds texts and scores pairs with an exported teacher; ``threshold`` is its calibrated decision."""

    def __init__(self, folder: Path, threads: int = 1, model_file: str = ONNX_FILE) -> None:
        folder = Path(folder)
        self.config = TeacherConfig.load(folder)
        self.threshold = self.config.threshold
        self.session = make_session(folder / model_file, threads)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.config.max_length)
        self.pad_id = self.tokenizer.token_to_id(self.tokenizer.padding["pad_token"]) \
            if self.tokenizer.padding else self._pad_id()
        self.tokenizer.no_padding()  # batches are padded by :meth:`padded`, per sub-batch

    def _pad_id(self) -> int:
        for token in ("<pad>", "[PAD]"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prefixed text, truncated to the teacher's max length (no padding)."""
        return [encoding.ids for encoding in
                self.tokenizer.encode_batch([self.config.query_prefix + text for text in texts])]

    def padded(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """int64 ``input_ids`` and ``attention_mask``, right-padded to the longest row."""
        input_ids, attention_mask = right_padded(ids, self.pad_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """int64 ``input_ids`` and ``attention_mask`` for prefixed, truncated, padded texts."""
        return self.padded(self.token_ids(texts))

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: str | None = None) -> np.ndarray:
        """Unit-length embeddings (N, D) for ``texts`` (:meth:`embed_ids` of their token ids)."""
        return self.embed_ids(self.token_ids(texts), batch_size, progress)

    def embed_ids(self, ids: Sequence[Sequence[int]], batch_size: int = 32, progress: str | None = None
                  ) -> np.ndarray:
        """Unit-length embeddings (N, D) for tokenized texts (:meth:`token_ids`), in sub-batches of at
        most ``batch_size`` split by token count to limit padding (:mod:`flipkd.models.padding`)."""
        batches = padding_aware_batches([len(row) for row in ids], batch_size, TEACHER_CPU_OVERHEAD_TOKENS)
        return self.embed_in(ids, batches, progress)

    def embed_in(self, ids: Sequence[Sequence[int]], batches: list[list[int]], progress: str | None = None
                 ) -> np.ndarray:
        """Unit-length embeddings (N, D) for tokenized texts, one session run per sub-batch of indices."""
        out: np.ndarray | None = None
        for batch in with_progress(batches, progress):
            (vectors,) = self.session.run(None, self.padded([ids[i] for i in batch]))
            if out is None:
                out = np.empty((len(ids), vectors.shape[1]), dtype=np.float32)
            out[batch] = vectors
        assert out is not None, "embed() needs at least one text"
        return out

    def score_pairs(self, texts_a: Sequence[str], texts_b: Sequence[str], batch_size: int = 32,
                    progress: str | None = None) -> np.ndarray:
        """Cosine similarity of each (a, b)."""
        return pair_cosines(lambda texts: self.embed(texts, batch_size, progress), texts_a, texts_b)
