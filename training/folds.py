"""Cross-fitting folds: which of k folds a labelled pair belongs to.

fold(pair) = int(sha256(text_a)[:8], 16) mod k: pairs that share their first text (a question and its
rewrites) fall in the same fold, so a fold's teacher has seen neither the pair nor that question. The
assignment depends only on the text, never on file order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from flipkd.training.data import Pair


def fold_of(pair: Pair, folds: int) -> int:
    return int(hashlib.sha256(pair.text_a.encode("utf-8")).hexdigest()[:8], 16) % folds


def outside_fold(pairs: Sequence[Pair], folds: int, fold: int) -> list[Pair]:
    """The pairs a fold's teacher trains on: every pair not in ``fold`` (all of them when folds is 1)."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not in [0, {folds})")
    return list(pairs) if folds == 1 else [p for p in pairs if fold_of(p, folds) != fold]
