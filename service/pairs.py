"""Text pairs to score, held as their distinct texts plus indices, so each text is embedded once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TextPairs:
    """``pairs`` in request order; ``texts`` the distinct texts, ``left``/``right`` each pair's indices."""

    pairs: list[tuple[str, str]]
    texts: list[str]
    left: list[int]
    right: list[int]

    @classmethod
    def of(cls, pairs: Sequence[tuple[str, str]]) -> TextPairs:
        texts = list(dict.fromkeys(text for pair in pairs for text in pair))
        index = {text: i for i, text in enumerate(texts)}
        return cls(list(pairs), texts, [index[a] for a, _ in pairs], [index[b] for _, b in pairs])

    def cosines(self, vectors: np.ndarray) -> np.ndarray:
        """The cosine of each pair, given unit vectors (one row per text of ``texts``)."""
        return np.einsum("nd,nd->n", vectors[self.left], vectors[self.right])
