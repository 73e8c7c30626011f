"""Cross-fitting folds and the distillation settings that use them (no weights)."""

from __future__ import annotations

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
