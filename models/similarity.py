"""Pair similarity from unit-length embeddings: cos(a, b) = e(a) . e(b)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def pair_cosines(embed: Callable[[list[str]], np.ndarray], texts_a: Sequence[str], texts_b: Sequence[str]
                 ) -> np.ndarray:
    """cos(e(a_i), e(b_i)) for normalized embeddings from ``embed``; distinct texts are embedded once."""
    unique = list(dict.fromkeys([*texts_a, *texts_b]))
    index = {text: i for i, text in enumerate(unique)}
    vectors = embed(unique)
    left = vectors[[index[t] for t in texts_a]]
    right = vectors[[index[t] for t in texts_b]]
    return np.einsum("nd,nd->n", left, right)
