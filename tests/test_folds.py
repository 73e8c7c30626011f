"""Cross-fitting folds and the distillation settings that use them (no weights)."""

from __future__ import annotations

import sys

import pytest

from flipkd.training.data import load_pairs
from flipkd.training.distill_config import load_config
from flipkd.training.folds import fold_of, outside_fold

from .conftest import DATA, REPO


def test_folds_partition_the_pairs_and_keep_a_question_in_one_fold():
    pairs = load_pairs(DATA / "medical_question_pairs" / "train.jsonl")
    kept = [outside_fold(pairs, 2, fold) for fold in (0, 1)]
    assert len(kept[0]) + len(kept[1]) == len(pairs)
    assert 0.4 < len(kept[0]) / len(pairs) < 0.6
    first_texts = [{p.text_a for p in part} for part in kept]
    assert not first_texts[0] & first_texts[1]
    assert all(fold_of(p, 2) == 1 for p in kept[0])
    assert outside_fold(pairs, 1, 0) == pairs
    with pytest.raises(ValueError, match="fold 2"):
        outside_fold(pairs, 2, 2)


def test_config_reads_teacher_folds_and_rejects_a_single_one(tmp_path):
    text = (REPO / "configs" / "mqp-transfer.yaml").read_text()
    two = tmp_path / "two.yaml"
    two.write_text(text + "teacher_folds: [runs/fold0, runs/fold1]\n")
    config = load_config(two)
    assert [str(folder) for folder in config.teacher_folds] == ["runs/fold0", "runs/fold1"]
    assert config.transfer.enabled and config.transfer.extra == ("data/nfcorpus/train.jsonl:text_a",)
    one = tmp_path / "one.yaml"
    one.write_text(text + "teacher_folds: [runs/fold0]\n")
    with pytest.raises(ValueError, match="one.yaml: teacher_folds"):
        load_config(one)


def test_kfold_splits_hold_out_every_pool_pair_once_and_keep_questions_apart():
    sys.path.insert(0, str(REPO / "bench"))
    from kfold_split import kfold_splits

    pool = load_pairs(DATA / "medical_question_pairs" / "train.jsonl")
    splits = kfold_splits(pool, 3)
    held_out = [p for fold in splits for p in fold["dev"] + fold["test"]]
    assert sorted(map(repr, held_out)) == sorted(map(repr, pool))
    for fold in splits:
        assert len(fold["train"]) + len(fold["dev"]) + len(fold["test"]) == len(pool)
        questions = {split: {p.text_a for p in pairs} for split, pairs in fold.items()}
        assert not questions["train"] & (questions["dev"] | questions["test"])
        assert not questions["dev"] & questions["test"]
        assert 0.1 < len(fold["test"]) / len(pool) < 0.25
