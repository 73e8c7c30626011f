import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from flipkd.models.bi_encoder import TeacherConfig, TorchBiEncoder
from flipkd.training.data import load_pairs
from flipkd.training.losses import cosent_loss

from .conftest import DATA


def mean_cosent(encoder: TorchBiEncoder, pairs) -> float:
    scores = encoder.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs])
    losses = [cosent_loss(torch.tensor(scores[i:i + 32]), torch.tensor([p.label for p in pairs[i:i + 32]]))
              for i in range(0, len(pairs), 32)]
    return float(np.mean([loss.item() for loss in losses]))


@pytest.mark.slow
def test_short_fine_tune_lowers_the_loss(minilm_dir, trained_teacher):
    train = load_pairs(DATA / "medical_question_pairs" / "train.jsonl", limit=64)
    before = mean_cosent(TorchBiEncoder(str(minilm_dir), max_length=64), train)
    after = mean_cosent(TorchBiEncoder(str(trained_teacher), max_length=64), train)
    assert after < before - 0.05, (before, after)


@pytest.mark.slow
def test_teacher_folder_records_threshold_and_metrics(trained_teacher):
    config = TeacherConfig.load(trained_teacher)
    metrics = json.loads((trained_teacher / "metrics.json").read_text())
    assert config.threshold == metrics["fine_tuned"]["dev"]["threshold"]
    assert metrics["fine_tuned"]["test"]["threshold"] == config.threshold
    for run in ("fine_tuned", "zero_shot"):
        for split in ("dev", "test"):
            assert set(metrics[run][split]) == {"f1", "accuracy", "auc", "threshold"}
            assert 0.5 < metrics[run][split]["auc"] <= 1.0
    assert metrics["train_pairs"] == 64 and metrics["train_seconds"] > 0


def test_cli_reports_bad_data_with_file_and_line(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.jsonl").write_text('{"text_a": "a", "text_b": "b", "label": 1}\n')
    (tmp_path / "train.jsonl").write_text('{"text_a": "a", "text_b": "b", "label": 1}\n{"text_a": "a"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "flipkd", "train-teacher", "--data", str(tmp_path), "--base",
         "all-MiniLM-L6-v2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"{tmp_path / 'train.jsonl'}:2: 'text_b' is missing" in result.stderr
    assert not (tmp_path / "out").exists()
