"""Baselines on real SmolLM2-135M weights."""

import numpy as np
import pytest
import torch

from flipkd.training.baselines import GenerativeMatcher, ZeroShotLLM
from flipkd.training.data import Pair, load_pairs

from .conftest import DATA

pytestmark = pytest.mark.slow  # SmolLM2-135M weights


def test_zero_shot_embeddings_are_unit_and_batch_invariant(smollm_dir):
    model = ZeroShotLLM(str(smollm_dir), max_length=32, dtype=torch.float32)
    texts = ["How do I repay my loan?", "What helps with a sore throat at night?", "ok"]
    together = model.embed(texts, batch_size=3)
    alone = np.stack([model.embed([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    scores = model.score_pairs([Pair(texts[0], texts[1], 0), Pair(texts[2], texts[0], 0)])
    np.testing.assert_allclose(scores, [alone[0] @ alone[1], alone[2] @ alone[0]], atol=1e-4)


def answer_loss(matcher: GenerativeMatcher, pairs: list[Pair]) -> float:
    targets = torch.tensor([matcher.yes_id if p.label else matcher.no_id for p in pairs])
    with torch.inference_mode():
        return torch.nn.functional.cross_entropy(matcher.answer_logits(pairs), targets).item()


def test_generative_sft_lowers_its_loss_and_scores_probabilities(smollm_dir):
    pairs = load_pairs(DATA / "medical_question_pairs" / "train.jsonl", limit=32)
    matcher = GenerativeMatcher(str(smollm_dir), rank=8, max_length=96, dtype=torch.float32)
    before = answer_loss(matcher, pairs)
    record = matcher.train(pairs, epochs=3, batch_size=16, lr=1e-3, seed=0)
    after = answer_loss(matcher, pairs)
    assert record["steps"] == 6
    assert after < before, (before, after)
    scores = matcher.score_pairs(pairs[:8], batch_size=4)  # batched by length, returned in pair order
    with torch.inference_mode():
        answers = matcher.answer_logits(pairs[:8])[:, [matcher.yes_id, matcher.no_id]]
    np.testing.assert_allclose(scores, torch.softmax(answers, dim=-1)[:, 0].numpy(), atol=1e-4)
