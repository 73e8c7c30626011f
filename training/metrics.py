"""Binary matching metrics from similarity scores: F1 of the positive class, accuracy, ROC-AUC.

The decision is ``score >= threshold``. ``best_f1_threshold`` picks the threshold that maximizes F1 on a
calibration split (dev); ``calibrated_threshold``, what bundles, teachers and baselines ship, bags it over
bootstrap resamples of that split. Neither may be fitted on the split being reported.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve, roc_auc_score


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """argmax_t F1(labels, scores >= t), placed halfway between the best score cut and the next lower
    score, so that a tiny numerical difference (ONNX vs torch, bf16 vs fp32) does not flip a pair."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return halfway_below(float(thresholds[int(np.argmax(f1[:-1]))]), scores)


def halfway_below(cut: float, scores: np.ndarray) -> float:
    """``cut`` moved halfway down to the next lower score (unchanged when no score is lower): the same
    decisions on ``scores``, with room on both sides for numerical noise."""
    below = scores[scores < cut]
    return (cut + float(below.max())) / 2 if below.size else cut


def calibrated_threshold(scores: np.ndarray, labels: np.ndarray, resamples: int = 200,
                         seed: int = 0) -> float:
    """Bagged best-F1 threshold: the median of :func:`best_f1_threshold` over ``resamples`` bootstrap
    resamples (fixed ``seed``) of the calibration pairs, placed halfway between the two neighbouring
    calibration scores around it. A single argmax follows any lone spike of a few hundred pairs' F1
    curve; the median follows the plateau (bench/threshold_rules.py measures both on held-out halves)."""
    rng = np.random.default_rng(seed)
    picks = []
    for _ in range(resamples):
        index = rng.integers(0, len(labels), len(labels))
        if 0 < labels[index].sum() < len(index):
            picks.append(best_f1_threshold(scores[index], labels[index]))
    if not picks:
        return best_f1_threshold(scores, labels)
    at_or_above = scores[scores >= np.median(picks)]
    return halfway_below(float(at_or_above.min()) if at_or_above.size else float(scores.max()), scores)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """F1 (positive class), accuracy, precision, recall at ``threshold`` and the threshold-free ROC-AUC."""
    predicted = (scores >= threshold).astype(int)
    positives = int(labels.sum())
    return {
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "auc": float(roc_auc_score(labels, scores)) if 0 < positives < len(labels) else float("nan"),
        "threshold": float(threshold),
    }


def bootstrap_f1_interval(scores: np.ndarray, labels: np.ndarray, threshold: float, resamples: int = 1000,
                          seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of F1 at a fixed threshold (pairs resampled with replacement)."""
    rng = np.random.default_rng(seed)
    predicted = scores >= threshold
    values = np.empty(resamples)
    for k in range(resamples):
        index = rng.integers(0, len(labels), len(labels))
        values[k] = f1_score(labels[index], predicted[index], zero_division=0)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def dev_test_report(dev_scores: np.ndarray, dev_labels: np.ndarray, test_scores: np.ndarray,
                    test_labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Calibrate the threshold on dev (:func:`calibrated_threshold`), report dev and test at it."""
    threshold = calibrated_threshold(dev_scores, dev_labels)
    return {"dev": classification_metrics(dev_scores, dev_labels, threshold),
            "test": classification_metrics(test_scores, test_labels, threshold)}


def ranking_quality(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Threshold-free ROC-AUC and the best F1 over all thresholds (an upper bound: the cut is chosen on
    the same pairs), for dev-only analyses."""
    best = classification_metrics(scores, labels, best_f1_threshold(scores, labels))
    return {"auc": float(roc_auc_score(labels, scores)), "best_f1": best["f1"]}
