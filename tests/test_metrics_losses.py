import math

import numpy as np
import pytest
import torch

from flipkd.training.losses import (
    cosent_loss,
    distillation_loss,
    embedding_loss,
    listwise_loss,
    margin_contrastive_loss,
    weak_to_strong_targets,
)
from flipkd.training.metrics import (
    best_f1_threshold,
    bootstrap_f1_interval,
    calibrated_threshold,
    classification_metrics,
)


def test_cosent_matches_hand_computation():
    similarities = torch.tensor([0.9, 0.2, 0.5], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    # ordered pairs (pos, neg): (0,1) and (0,2): exp(20*(0.2-0.9)) + exp(20*(0.5-0.9))
    expected = math.log(1 + math.exp(20 * -0.7) + math.exp(20 * -0.4))
    assert cosent_loss(similarities, labels).item() == pytest.approx(expected, rel=1e-5)


def test_cosent_is_zero_without_both_classes_and_grows_when_misordered():
    assert cosent_loss(torch.tensor([0.1, 0.8]), torch.tensor([1, 1])).item() == 0.0
    right = cosent_loss(torch.tensor([0.9, 0.1]), torch.tensor([1, 0]))
    wrong = cosent_loss(torch.tensor([0.1, 0.9]), torch.tensor([1, 0]))
    assert wrong.item() == pytest.approx(math.log(1 + math.exp(16)), rel=1e-5)
    assert right < wrong


def test_best_threshold_separates_and_metrics_follow():
    scores = np.array([0.1, 0.3, 0.35, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1])
    threshold = best_f1_threshold(scores, labels)
    assert threshold == pytest.approx(0.325)  # halfway between 0.3 (negative) and 0.35 (positive)
    metrics = classification_metrics(scores, labels, threshold)
    assert metrics["f1"] == 1.0 and metrics["accuracy"] == 1.0 and metrics["auc"] == 1.0
    shifted = classification_metrics(scores, labels, 0.85)
    assert shifted["f1"] == pytest.approx(0.5)
    assert shifted["accuracy"] == pytest.approx(0.6)


def test_calibrated_threshold_is_a_deterministic_midpoint_between_neighbouring_scores():
    scores = np.array([0.1, 0.3, 0.35, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1])
    assert calibrated_threshold(scores, labels) == pytest.approx(0.325)  # separable: no resample disagrees
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 0.2 + rng.normal(0.5, 0.15, 300), 3)  # overlapping classes, tied scores
    threshold = calibrated_threshold(scores, labels)
    assert threshold == calibrated_threshold(scores, labels)
    distinct = np.unique(scores)
    upper = distinct[np.searchsorted(distinct, threshold)]
    lower = distinct[np.searchsorted(distinct, threshold) - 1]
    assert lower < threshold < upper and threshold == pytest.approx((lower + upper) / 2)
    assert calibrated_threshold(scores, labels, seed=1) == pytest.approx(threshold, abs=0.03)  # a median


def test_distillation_loss_is_mean_squared_gap():
    student = torch.tensor([0.5, 0.9, 0.1])
    teacher = torch.tensor([0.7, 0.9, 0.4])
    expected = (0.2**2 + 0 + 0.3**2) / 3
    assert distillation_loss(student, torch.tensor([1, 1, 0]), teacher).item() == pytest.approx(expected)


def test_embedding_loss_is_twice_one_minus_cosine_and_ignores_the_projection_length():
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    projected = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # aligned (any length), then 45 degrees off
    expected = (0.0 + 2 * (1 - math.cos(math.pi / 4))) / 2
    assert embedding_loss(projected, targets).item() == pytest.approx(expected)
    assert embedding_loss(-targets, targets).item() == pytest.approx(4.0)


def unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


def test_listwise_loss_is_zero_for_the_teachers_order_and_counts_only_other_texts():
    teacher = unit([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    texts = torch.tensor([0, 1, 2])
    assert listwise_loss(teacher, teacher, texts, 0.05).item() == pytest.approx(0.0, abs=1e-9)
    swapped = unit([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])  # text 0's nearest is now text 2, not text 1
    assert listwise_loss(swapped, teacher, texts, 0.05).item() > 1.0
    # text 0 twice: were its repeat a neighbour (cosine 1), both rankings would sit on it and hide the swap
    repeat = torch.tensor([0, 1, 2, 0])
    with_repeat = listwise_loss(swapped[[0, 1, 2, 0]], teacher[[0, 1, 2, 0]], repeat, 0.05)
    assert with_repeat.item() > 1.0


def test_listwise_loss_by_hand_for_two_neighbours():
    teacher = unit([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    student = unit([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    temperature = 0.5
    texts = torch.tensor([0, 1, 2])
    # row 0: teacher logits over texts 1, 2 = (2, 0), student (0, 0); KL(p || uniform)
    p = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    row_0 = float(np.sum(p * np.log(p / 0.5)))
    rows = [row_0]
    # row 1: teacher (2, 0) over texts 0, 2; student (0, 2): KL(p || reversed p)
    rows.append(float(np.sum(p * np.log(p / p[::-1]))))
    # row 2: teacher (0, 0) over texts 0, 1; student (0, 2)
    q = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
    rows.append(float(np.sum(0.5 * np.log(0.5 / q))))
    assert listwise_loss(student, teacher, texts, temperature).item() == pytest.approx(np.mean(rows))


def test_weak_to_strong_targets_lean_towards_the_students_hardened_decision():
    teacher = torch.tensor([0.9, 0.7, 0.3, 0.2])  # two at or above the cut 0.5: k = 2
    student = torch.tensor([0.8, 0.1, 0.6, 0.0], requires_grad=True)  # its top two: pairs 0 and 2
    targets = weak_to_strong_targets(student, teacher, 0.5, low=0.25, high=0.85, alpha=0.5)
    hardened = torch.tensor([0.85, 0.25, 0.85, 0.25])
    torch.testing.assert_close(targets, 0.5 * teacher + 0.5 * hardened)
    assert not targets.requires_grad  # the student's decision is a target, not a path for gradients
    torch.testing.assert_close(weak_to_strong_targets(student, teacher, 0.5, 0.25, 0.85, 0.0), teacher)
    none_above = weak_to_strong_targets(student, teacher, 0.95, 0.25, 0.85, 1.0)
    torch.testing.assert_close(none_above, torch.full((4,), 0.25))


def test_margin_contrastive_loss_by_hand():
    student = torch.tensor([0.8, 0.7, 0.75, 0.2], dtype=torch.float64)
    labels = torch.tensor([1, 1, 0, 0])
    teacher = torch.tensor([0.9, 0.6, 0.5, 0.3], dtype=torch.float64)
    # inter (m = 0.2): pos {0, 1} x neg {2, 3}: s_i - s_j = 0.05, 0.6, -0.05, 0.5 -> hinge 0.15, 0, 0.25, 0
    inter = (0.15 + 0.25) / 4
    # intra (g = 1): positives (0 over 1): t gap 0.3, s gap 0.1 -> 0.2; negatives (2 over 3): t gap 0.2,
    # s gap 0.55 -> 0
    intra = (0.2 + 0.0) / 2
    loss = margin_contrastive_loss(student, labels, teacher, margin=0.2, gap_scale=1.0)
    assert loss.item() == pytest.approx(inter + intra)


def test_margin_contrastive_loss_is_zero_when_orders_and_margins_hold():
    student = torch.tensor([0.95, 0.7, 0.4, 0.1])
    teacher = torch.tensor([0.9, 0.8, 0.5, 0.3])
    labels = torch.tensor([1, 1, 0, 0])
    assert margin_contrastive_loss(student, labels, teacher, margin=0.2, gap_scale=1.0).item() == 0.0
    single_class = margin_contrastive_loss(student[:2], labels[:2], teacher[:2], margin=0.2)
    assert single_class.item() == 0.0


def test_bootstrap_interval_brackets_the_point_estimate_and_narrows_with_data():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = labels * 0.3 + rng.normal(0.4, 0.2, 2000)
    point = classification_metrics(scores, labels, 0.55)["f1"]
    low, high = bootstrap_f1_interval(scores, labels, 0.55)
    small_low, small_high = bootstrap_f1_interval(scores[:200], labels[:200], 0.55)
    assert low < point < high
    assert high - low < small_high - small_low
