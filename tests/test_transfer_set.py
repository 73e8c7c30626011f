"""The teacher-scored transfer set and its word-level variants (no weights: a hashing teacher)."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

from flipkd.training.augment import word_variants
from flipkd.training.data import Pair
from flipkd.training.transfer_set import TransferConfig, build_transfer_set, ensemble_embeddings, extra_texts


class HashingTeacher:
    """Unit vectors from a hash of each word: texts sharing words get a higher cosine."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def embed(self, texts, progress=None) -> np.ndarray:
        rows = []
        for text in texts:
            vector = np.zeros(self.dim, dtype=np.float32)
            for word in text.split() or [text]:
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            rows.append(vector / np.linalg.norm(vector))
        return np.stack(rows)


LABELLED = [
    Pair("how do I treat a mild fever at home", "what helps a mild fever at home", 1),
    Pair("how do I treat a mild fever at home", "is a fever of 39 dangerous for a baby", 0),
    Pair("can I take ibuprofen with coffee", "is it safe to drink coffee after ibuprofen", 1),
    Pair("can I take ibuprofen with coffee", "which painkiller is best for a headache", 0),
]


def test_variants_differ_from_the_text_and_from_each_other():
    rng = random.Random(0)
    text = "can I take ibuprofen with coffee in the morning"
    variants = word_variants(text, 3, rng)
    assert len(variants) == 3
    assert text not in variants
    assert len(set(variants)) == 3
    words = set(text.split())
    assert all(set(v.split()) <= words for v in variants)


def test_variants_of_text_without_spaces_work_on_characters():
    variants = word_variants("花呗怎么还款", 2, random.Random(1))
    assert variants and all(set(v) <= set("花呗怎么还款") for v in variants)
    assert word_variants("ok", 2, random.Random(1)) == []


def test_transfer_set_pairs_are_new_scored_and_free_of_dev_text(tmp_path):
    extra = tmp_path / "extra.jsonl"
    lines = [{"text_a": "fever in children at night", "text_b": "x"},
             {"text_a": "coffee and painkillers together", "text_b": "y"},
             {"text_a": "a dev question about fever", "text_b": "z"}]
    extra.write_text("".join(json.dumps(line) + "\n" for line in lines))
    forbidden = {"a dev question about fever"}
    config = TransferConfig(enabled=True, neighbours=5, variants=2, extra=(f"{extra}:text_a",),
                            extra_neighbours=1, random_per_text=1.0, seed=3)
    transfer = build_transfer_set(config, LABELLED, HashingTeacher(), forbidden)

    assert "a dev question about fever" not in transfer.texts
    assert "fever in children at night" in transfer.texts
    pairs = {(transfer.texts[i], transfer.texts[j]) for i, j in zip(transfer.a, transfer.b, strict=True)}
    labelled = {(p.text_a, p.text_b) for p in LABELLED} | {(p.text_b, p.text_a) for p in LABELLED}
    assert not pairs & labelled
    assert all(a != b for a, b in pairs)
    assert len(pairs) == len(transfer)
    embeddings = HashingTeacher().embed(transfer.texts)
    expected = np.einsum("nd,nd->n", embeddings[transfer.a], embeddings[transfer.b])
    np.testing.assert_allclose(transfer.teacher, expected, atol=1e-6)
    report = transfer.report()
    assert report["sources"]["pool_train"] == 6
    assert report["sources"]["pool_extra"] == 2
    assert {"hard", "variant", "extra"} <= set(report["sources"])


def test_ensemble_embeddings_are_unit_rows_whose_dot_products_average_the_teachers_cosines():
    texts = [p.text_a for p in LABELLED] + [p.text_b for p in LABELLED]
    teachers = [HashingTeacher(64), HashingTeacher(48)]
    ensemble = ensemble_embeddings(texts, teachers)
    assert ensemble.shape == (len(texts), 112)
    np.testing.assert_allclose(np.linalg.norm(ensemble, axis=1), 1.0, atol=1e-6)
    mean_cosine = np.mean([t.embed(texts) @ t.embed(texts).T for t in teachers], axis=0)
    np.testing.assert_allclose(ensemble @ ensemble.T, mean_cosine, atol=1e-6)
    assert not np.allclose(mean_cosine, teachers[0].embed(texts) @ teachers[0].embed(texts).T)


def test_extra_texts_names_file_and_line_on_a_missing_field(tmp_path):
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"text_a": "one"}\n{"other": 1}\n')
    with pytest.raises(ValueError, match=r"extra.jsonl:2: field 'text_a'"):
        extra_texts([f"{extra}:text_a"], max_words=8, limit=None)


def test_extra_entry_without_field_is_rejected():
    with pytest.raises(ValueError, match="FILE:FIELD"):
        TransferConfig(extra=("data/nfcorpus/train.jsonl",))
