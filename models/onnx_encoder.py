"""An exported encoder graph run by onnxruntime on CPU: the part the ONNX teacher and student share.

A graph takes ``input_ids`` and ``attention_mask`` (int64, (batch, length)) and returns ``embeddings``
(float32, (batch, dim), dim fixed at export). Batching and padding are
:mod:`flipkd.models.text_encoder`'s; subclasses set the tokenizer, ``pad_id`` and how a text is formatted.
No torch is imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from flipkd.models.text_encoder import TextEncoder


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


class OnnxEncoder(TextEncoder[np.ndarray]):
    """Runs ``model_file``: embeddings are (N, ``dim``) float32 numpy arrays; inputs int64 numpy arrays."""

    def __init__(self, model_file: Path, threads: int) -> None:
        self.session = make_session(model_file, threads)
        dim = self.session.get_outputs()[0].shape[-1]
        if not isinstance(dim, int):
            raise ValueError(f"{model_file}: the embeddings output has no fixed width ({dim!r})")
        self.dim = dim

    def _as_input(self, array: np.ndarray) -> np.ndarray:
        return array

    def _empty(self, rows: int) -> np.ndarray:
        return np.empty((rows, self.dim), dtype=np.float32)

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        (vectors,) = self.session.run(None, inputs)
        return vectors
