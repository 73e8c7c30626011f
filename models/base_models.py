"""One copy of each base model's weights per process, however many encoders read it.

:meth:`BaseModels.causal_lm` loads a base once per (folder, dtype, device) and hands each caller a new
module tree whose parameters and buffers *are* the loaded ones (``copy.deepcopy`` with those tensors in
its memo). Each encoder then wraps its own tree with its own LoRA layers and keeps only the layers it
reads, while the weights stay in memory once: a second domain over the same base costs its adapter, its
tokenizer and the module objects, not another copy of the model.
"""

from __future__ import annotations

import copy
import itertools
import threading

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel


def load_causal_lm(base: str, dtype: torch.dtype, device: str = "cpu") -> PreTrainedModel:
    """A fresh model of ``base`` (a folder) in ``dtype`` on ``device``: nothing shared."""
    return AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)


class BaseModels:
    """Loaded bases, shared by the encoders built from them; thread-safe."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, torch.dtype, str], PreTrainedModel] = {}
        self._lock = threading.Lock()

    def causal_lm(self, base: str, dtype: torch.dtype, device: str = "cpu") -> PreTrainedModel:
        """A module tree of ``base`` over the one loaded copy of its weights (loaded on the first call)."""
        key = (base, dtype, device)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._loaded[key] = load_causal_lm(base, dtype, device)
        shared = {id(tensor): tensor for tensor in itertools.chain(loaded.parameters(), loaded.buffers())}
        return copy.deepcopy(loaded, memo=shared)
