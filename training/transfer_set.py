"""A teacher-scored transfer set: unlabelled pairs over the training texts and new text (AugSBERT-style).

Text pool P = training texts T (both sides of every labelled pair) + extra in-domain texts E (fields of
other JSONL files) + word-level variants V of the training texts (:mod:`flipkd.training.augment`).
Every pool text is embedded once by the teacher (unit vectors e); pairs are
    variant:    each v in V with the training text it was made from
    hard:       each t in T with its ``neighbours`` nearest pool texts by e . e'
    extra:      each x in E with its ``extra_neighbours`` nearest training texts
    random:     ``random_per_text`` x |T| uniformly drawn pool pairs
deduplicated as unordered pairs (a pair keeps the first source above that names it), without
self-pairs and without the labelled pairs themselves, and scored t_ij = e_i . e_j (the teacher's
cosine). No dev or test text enters the pool. The pool's teacher embeddings are kept too: with
``embedding_weight`` > 0 the student also regresses them per text through a training-only linear head
(:func:`flipkd.training.losses.embedding_loss`). ``embedding_teachers`` (teacher folders; an adapter
teacher resolves to its ONNX export) replaces that target with an ensemble's:
e = [e_1; ...; e_k] / sqrt(k), the k teachers' unit embeddings concatenated, so e . e' = mean_k e_k . e'_k,
the ensemble's averaged cosine (:func:`ensemble_embeddings`). With ``listwise_weight`` > 0 the same
embeddings give each micro-batch text a teacher ranking of the batch's other texts, which the student's
cosines are trained to reproduce (:func:`flipkd.training.losses.listwise_loss`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.training.augment import word_variants
from flipkd.training.data import Pair, distinct_texts


@dataclass(frozen=True)
class TransferConfig:
    """How the transfer set is built and weighted. ``weight`` (the pair term), ``embedding_weight`` and
    ``listwise_weight`` each switch their own term; ``enabled`` false, or all three 0: labelled pairs only.
    ``confidence_weight`` > 0 lets the pair term's targets lean towards the student's own hardened
    decision (:func:`flipkd.training.losses.weak_to_strong_targets`), its weight ramped linearly from 0
    over the first ``confidence_ramp`` of the steps."""

    enabled: bool = False
    neighbours: int = 3
    variants: int = 2
    extra: tuple[str, ...] = ()
    extra_neighbours: int = 2
    extra_limit: int | None = None
    random_per_text: float = 1.0
    max_words: int = 64
    weight: float = 1.0
    embedding_weight: float = 0.0
    embedding_teachers: tuple[str, ...] = ()
    listwise_weight: float = 0.0
    listwise_temperature: float = 0.05
    confidence_weight: float = 0.0
    confidence_ramp: float = 0.2
    batch_size: int = 32
    seed: int = 13

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", tuple(self.extra))
        object.__setattr__(self, "embedding_teachers", tuple(str(t) for t in self.embedding_teachers))
        for spec in self.extra:
            if ":" not in spec:
                raise ValueError(f"transfer.extra entry {spec!r} must be FILE:FIELD "
                                 "(e.g. data/nfcorpus/train.jsonl:text_a)")


@dataclass
class TransferSet:
    """Pairs (indices into ``texts``) with the teacher's cosine, the teacher's unit embedding of every
    text (row i for ``texts[i]``), and where the pairs came from."""

    texts: list[str]
    a: np.ndarray
    b: np.ndarray
    teacher: np.ndarray
    embeddings: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.a)

    def report(self) -> dict:
        return {"pairs": len(self), "texts": len(self.texts), "sources": self.counts}


def extra_texts(specs: Sequence[str], max_words: int, limit: int | None) -> list[str]:
    """Distinct non-empty values of FIELD over the lines of FILE, for each ``FILE:FIELD``, at most
    ``max_words`` words each (longer values are cut), at most ``limit`` texts in all."""
    import json

    seen: dict[str, None] = {}
    for spec in specs:
        path, name = spec.rsplit(":", 1)
        with open(path, encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                record = json.loads(raw)
                value = record.get(name) if isinstance(record, dict) else None
                if not isinstance(value, str):
                    raise ValueError(f"{path}:{number}: field {name!r} is missing or not a string")
                text = " ".join(value.split()[:max_words])
                if text:
                    seen.setdefault(text, None)
    texts = list(seen)
    return texts if limit is None else texts[:limit]


def nearest_keys(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """Indices (len(queries), k) of the k keys with the largest dot product, self excluded if asked."""
    similarities = queries @ keys.T
    if exclude_self:
        np.fill_diagonal(similarities[:, :len(queries)], -np.inf)
    return np.argpartition(-similarities, kth=min(k, keys.shape[0] - 1) - 1, axis=1)[:, :k]


def build_transfer_set(config: TransferConfig, labelled: Sequence[Pair], teacher: OnnxTeacher,
                       forbidden: set[str] = frozenset()) -> TransferSet:
    """The pool, its teacher embeddings and the pairs described in the module docstring. Texts in
    ``forbidden`` (dev and test texts) are kept out of the pool."""
    rng = random.Random(config.seed)
    train = distinct_texts(labelled)
    train_set = set(train)
    extra = [t for t in extra_texts(config.extra, config.max_words, config.extra_limit)
             if t not in train_set and t not in forbidden]
    sources = {t: i for i, t in enumerate(train)}
    variant_of: list[tuple[str, int]] = []
    taken = train_set | set(extra) | set(forbidden)
    for index, text in enumerate(train):
        for variant in word_variants(text, config.variants, rng):
            if variant not in taken:
                taken.add(variant)
                variant_of.append((variant, index))
    texts = train + extra + [v for v, _ in variant_of]
    embeddings = teacher.embed(texts, progress="transfer set: teacher embeddings").astype(np.float32)

    n_train, n_extra = len(train), len(extra)
    chosen: dict[tuple[int, int], str] = {}
    labelled_keys = {tuple(sorted((sources[p.text_a], sources[p.text_b]))) for p in labelled}

    def add(i: int, j: int, source: str) -> None:
        key = (min(i, j), max(i, j))
        if i != j and key not in chosen and key not in labelled_keys:
            chosen[key] = source

    for offset, (_, source) in enumerate(variant_of):
        add(n_train + n_extra + offset, source, "variant")
    if config.neighbours:
        for i, row in enumerate(nearest_keys(embeddings[:n_train], embeddings, config.neighbours, True)):
            for j in row:
                add(i, int(j), "hard")
    if n_extra and config.extra_neighbours:
        extra_rows = embeddings[n_train:n_train + n_extra]
        nearest = nearest_keys(extra_rows, embeddings[:n_train], config.extra_neighbours, False)
        for offset, row in enumerate(nearest):
            for j in row:
                add(n_train + offset, int(j), "extra")
    for _ in range(int(config.random_per_text * n_train)):
        add(rng.randrange(len(texts)), rng.randrange(len(texts)), "random")

    keys = list(chosen)
    a = np.array([i for i, _ in keys], dtype=np.int64)
    b = np.array([j for _, j in keys], dtype=np.int64)
    scores = np.einsum("nd,nd->n", embeddings[a], embeddings[b]).astype(np.float32)
    counts: dict[str, int] = {}
    for source in chosen.values():
        counts[source] = counts.get(source, 0) + 1
    counts |= {"pool_train": n_train, "pool_extra": n_extra, "pool_variants": len(variant_of)}
    return TransferSet(texts, a, b, scores, embeddings, counts)


def ensemble_embeddings(texts: Sequence[str], teachers: Sequence[OnnxTeacher]) -> np.ndarray:
    """e = [e_1; ...; e_k] / sqrt(k) per text (unit rows): e . e' is the k teachers' mean cosine."""
    parts = [teacher.embed(list(texts), progress=f"transfer set: embedding teacher {i + 1}/{len(teachers)}")
             for i, teacher in enumerate(teachers)]
    return (np.concatenate(parts, axis=1) / math.sqrt(len(parts))).astype(np.float32)


def load_forbidden(paths: Sequence[Path]) -> set[str]:
    """Every text of the given pair files (dev and test), kept out of the transfer pool."""
    from flipkd.training.data import load_pairs

    return {t for path in paths for p in load_pairs(path) for t in (p.text_a, p.text_b)}
