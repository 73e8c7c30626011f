"""The dev-only cross-encoder analysis: order-free pair scores and a training curve that learns the pairs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from flipkd.training.data import Pair

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

from cross_encoder_dev import CrossEncoder, main  # noqa: E402

TOPICS = ["knee pain after running", "fever in a small child", "insulin dose at night",
          "rash after penicillin", "migraine with blurred vision", "cough that lasts weeks",
          "back pain when lifting", "itchy eyes in spring"]


def paired_rows() -> list[dict]:
    """Each topic against its own rewording (1) and against the next topic (0)."""
    rows = []
    for i, topic in enumerate(TOPICS):
        rows.append({"text_a": f"What helps with {topic}?", "text_b": f"How do I treat {topic}?", "label": 1})
        rows.append({"text_a": f"What helps with {topic}?",
                     "text_b": f"How do I treat {TOPICS[(i + 1) % len(TOPICS)]}?", "label": 0})
    return rows


@pytest.mark.slow
def test_scores_are_the_mean_logit_of_both_orders_and_leave_the_model_training(minilm_dir):
    encoder = CrossEncoder("all-MiniLM-L6-v2", max_length=64)
    pairs = [Pair(row["text_a"], row["text_b"], row["label"]) for row in paired_rows()[:4]]
    swapped = [Pair(p.text_b, p.text_a, p.label) for p in pairs]
    scores = encoder.score(pairs, batch_size=3)
    assert scores.shape == (4,) and np.array_equal(scores, encoder.score(swapped, batch_size=3))
    # another batch size may round differently (float32 kernels), so equal up to rounding
    np.testing.assert_allclose(scores, encoder.score(swapped, batch_size=2), atol=1e-6)
    one_order = encoder.logits([(p.text_a, p.text_b) for p in pairs]).detach().numpy()
    assert not np.allclose(scores, one_order, atol=1e-4)  # the other order is really read and averaged in
    assert encoder.model.training


@pytest.mark.slow
def test_training_writes_the_curve_and_learns_the_training_pairs(minilm_dir, tmp_path, monkeypatch):
    lines = "".join(json.dumps(row) + "\n" for row in paired_rows())
    for split in ("train", "dev"):
        (tmp_path / f"{split}.jsonl").write_text(lines)
    out = tmp_path / "curve.json"
    monkeypatch.setattr(sys, "argv", ["cross_encoder_dev.py", "--data", str(tmp_path), "--out", str(out),
                                      "--epochs", "24", "--batch-size", "8", "--lr", "1e-4",
                                      "--eval-every", "40"])
    main()
    result = json.loads(out.read_text())
    assert result["train_pairs"] == 16 and result["steps"] == 96  # 32 ordered examples / 8 * 24 epochs
    assert [row["step"] for row in result["curve"]] == [40, 80, 96]
    assert result["final"] == result["curve"][-1]
    assert result["final"]["dev_auc"] >= 0.9 and result["final"]["dev_best_f1"] >= 0.8
