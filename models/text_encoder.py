"""Texts to embeddings, shared by every runtime: tokenize once, split by length, pad per sub-batch, embed.

A text becomes token ids once (:meth:`TextEncoder.token_ids`: formatted, truncated, unpadded). A batch of
ids is split into sub-batches by token count (:mod:`flipkd.models.padding`), each right-padded to its own
longest row and run through the runtime's forward; row i of the (N, dim) float32 result is text i's
embedding. A runtime supplies its tokenizer, pad id, dim, text format, tensor type, forward and
per-forward overhead. An echoing runtime (``echo_separator`` set) reads every text twice,
``ids + [separator] + ids`` (:func:`echoed`), and pools over the second copy only
(:func:`flipkd.models.pooling.second_copy_mask`). Imports neither torch nor transformers.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from flipkd.models.padding import padding_aware_batches, right_padded

Tensor = TypeVar("Tensor")


def with_progress(batches: list[list[int]], progress: str | None) -> Iterable[list[int]]:
    """``batches`` as they are, or behind a progress bar on stderr labelled ``progress``."""
    return batches if progress is None else tqdm(batches, desc=progress, unit="batch", file=sys.stderr)


def ids_only(tokenizer: Tokenizer, max_length: int) -> Tokenizer:
    """``tokenizer`` set, in place, to truncate to ``max_length`` and not pad (padding is per sub-batch)."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def echoed(ids: Sequence[int], separator: int) -> list[int]:
    """``ids + [separator] + ids``: 2n + 1 tokens for n, the second copy at positions n + 1 .. 2n."""
    return [*ids, separator, *ids]


def echo_separator(tokenizer: Tokenizer, echo: bool, text: str = "\n") -> int | None:
    """The one token that separates an echoed text's two copies (``text`` without special tokens), or None
    when ``echo`` is off. Raises ValueError where ``text`` is not exactly one token."""
    if not echo:
        return None
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) != 1:
        raise ValueError(f"the echo separator {text!r} must be one token, got {ids}")
    return ids[0]


class TextEncoder(ABC, Generic[Tensor]):
    """Embeds texts, or their token ids, in sub-batches; ``Tensor`` is the runtime's array type (inputs
    on its device, results on the host). A subclass sets ``ids_tokenizer`` (from :func:`ids_only`),
    ``pad_id`` and ``dim`` before use. Thread-safe where the forward is."""

    ids_tokenizer: Tokenizer
    pad_id: int
    dim: int
    echo_separator: int | None = None

    @abstractmethod
    def format_text(self, text: str) -> str:
        """The text the model reads for ``text`` (template or prefix applied)."""

    @abstractmethod
    def _as_input(self, array: np.ndarray) -> Tensor:
        """An int64 (B, T) array as a forward input on the runtime's device."""

    @abstractmethod
    def _empty(self, rows: int) -> Tensor:
        """An uninitialised float32 (rows, dim) result on the host."""

    @abstractmethod
    def _forward(self, inputs: dict[str, Tensor]) -> Tensor:
        """Embeddings (B, dim), float32 on the host, of one padded sub-batch (:meth:`padded`)."""

    @abstractmethod
    def _overhead_tokens(self) -> int | None:
        """One forward's fixed cost in padded tokens (:mod:`flipkd.models.padding`); None where a forward
        costs far more than padding (GPU)."""

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each formatted text, truncated to the encoder's max length (no padding), and
        :func:`echoed` when the runtime echoes."""
        ids = [encoding.ids for encoding in
               self.ids_tokenizer.encode_batch([self.format_text(text) for text in texts])]
        if self.echo_separator is None:
            return ids
        return [echoed(row, self.echo_separator) for row in ids]

    def padded(self, ids: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """int64 ``input_ids`` and ``attention_mask`` (B, longest), right-padded with ``pad_id``."""
        input_ids, attention_mask = right_padded(ids, self.pad_id)
        return {"input_ids": self._as_input(input_ids), "attention_mask": self._as_input(attention_mask)}

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """:meth:`padded` of the texts' :meth:`token_ids`: one batch, padded to its longest text."""
        return self.padded(self.token_ids(texts))

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: str | None = None) -> Tensor:
        """Embeddings (N, dim) in float32 for ``texts`` (:meth:`embed_ids` of their token ids)."""
        return self.embed_ids(self.token_ids(texts), batch_size, progress)

    def embed_ids(self, ids: Sequence[Sequence[int]], batch_size: int = 32, progress: str | None = None
                  ) -> Tensor:
        """Embeddings (N, dim) in float32 for tokenized texts (:meth:`token_ids`), in sub-batches of at
        most ``batch_size`` split by token count to limit padding (:mod:`flipkd.models.padding`)."""
        batches = padding_aware_batches([len(row) for row in ids], batch_size, self._overhead_tokens())
        return self.embed_in(ids, batches, progress)

    def embed_in(self, ids: Sequence[Sequence[int]], batches: list[list[int]], progress: str | None = None
                 ) -> Tensor:
        """Embeddings (N, dim) in float32 for tokenized texts, one forward per sub-batch of indices."""
        out = self._empty(len(ids))
        for batch in with_progress(batches, progress):
            out[batch] = self._forward(self.padded([ids[i] for i in batch]))
        return out
