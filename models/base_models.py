"""A base model's weights and tokenizer, once per process however many encoders read them.

:meth:`BaseModels.causal_lm` loads a base once per (folder, dtype, device) and hands each caller a new
module tree whose parameters and buffers *are* the loaded ones (``copy.deepcopy`` with those tensors in
its memo). Each encoder then wraps its own tree with its own LoRA layers and keeps only the layers it
reads, while the weights stay in memory once; :meth:`BaseModels.tokenizer` is shared the same way (a
Qwen tokenizer holds ~130 MB). A second domain over the same base costs its adapter, its id tokenizer
and the module objects, plus the pages of any base layers only it reads.
"""

from __future__ import annotations

import copy
import itertools
import threading
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from flipkd.models.build_lock import MODEL_BUILD_LOCK

TOKENIZER_FILE = "tokenizer.json"


def causal_tokenizer(base: str) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, right-padding, with EOS as padding where it has no pad token."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def backend_copy(base: str, tokenizer: PreTrainedTokenizerBase) -> Tokenizer:
    """A tokenizer backend of its own for ``tokenizer``: read from the base's ``tokenizer.json`` when it
    has one (a third of the memory of a copy made through its JSON string), else copied."""
    file = Path(base) / TOKENIZER_FILE
    if file.is_file():
        return Tokenizer.from_file(str(file))
    return Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())


def load_causal_lm(base: str, dtype: torch.dtype | str, device: str = "cpu") -> PreTrainedModel:
    """A fresh model of ``base`` (a folder) in ``dtype`` ("auto": as stored) on ``device``: nothing
    shared."""
    with MODEL_BUILD_LOCK:
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)


class BaseModels:
    """Bases loaded once (in the dtype they are stored in, memory-mapped), shared by the encoders built
    from them; a tensor another dtype is asked for in is cast once and that copy shared too. Thread-safe."""

    def __init__(self) -> None:
        self._stored: dict[tuple[str, str], PreTrainedModel] = {}
        self._cast: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        self._tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        self._lock = threading.Lock()

    def tokenizer(self, base: str) -> PreTrainedTokenizerBase:
        """:func:`causal_tokenizer` of ``base``, loaded once (callers must not change it)."""
        with self._lock:
            if base not in self._tokenizers:
                self._tokenizers[base] = causal_tokenizer(base)
            return self._tokenizers[base]

    def causal_lm(self, base: str, dtype: torch.dtype, device: str = "cpu", layers: int | None = None
                  ) -> PreTrainedModel:
        """A module tree of ``base`` in ``dtype`` over the one loaded copy of its weights. ``layers``: how
        many leading transformer layers the caller runs (None: all); the tensors of the others and of
        ``lm_head`` are left as stored, uncast, for the caller to drop."""
        with self._lock:
            stored = self._stored.get((base, device))
            if stored is None:
                stored = self._stored[(base, device)] = load_causal_lm(base, "auto", device)
            memo = {id(tensor): self._as(tensor, dtype) if runs(name, layers) else tensor
                    for name, tensor in itertools.chain(stored.named_parameters(), stored.named_buffers())}
        return copy.deepcopy(stored, memo=memo)

    def _as(self, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``tensor`` in ``dtype`` (itself when it already is, or is not floating point), cast once."""
        if tensor.dtype == dtype or not tensor.is_floating_point():
            return tensor
        key = (id(tensor), dtype)
        if key not in self._cast:
            cast = tensor.detach().to(dtype)
            self._cast[key] = nn.Parameter(cast, requires_grad=False) if isinstance(tensor, nn.Parameter) \
                else cast
        return self._cast[key]


def runs(name: str, layers: int | None) -> bool:
    """Whether the tensor ``name`` of a causal LM is used when only its first ``layers`` layers run."""
    parts = name.split(".")
    if parts[0] == "lm_head":
        return layers is None
    if layers is not None and len(parts) > 2 and parts[:2] == ["model", "layers"]:
        return int(parts[2]) < layers
    return True
