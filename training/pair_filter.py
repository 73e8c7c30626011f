"""Dual-threshold filter: drop training pairs whose teacher score contradicts their label.

Keep a positive i only if t_i >= tau_pos and a negative j only if t_j <= tau_neg. The thresholds come
from dev: tau_pos is the ``quantile`` of the teacher's scores on dev positives and tau_neg the
``1 - quantile`` of its scores on dev negatives, so about that share of each class on dev would be
called contradicted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FilterReport:
    tau_pos: float
    tau_neg: float
    positives_kept: int
    positives_dropped: int
    negatives_kept: int
    negatives_dropped: int

    def to_json(self) -> dict:
        return asdict(self)


def choose_thresholds(dev_scores: np.ndarray, dev_labels: np.ndarray, quantile: float) -> tuple[float, float]:
    """(tau_pos, tau_neg) from the teacher's dev score distributions of each class."""
    if not 0.0 <= quantile < 0.5:
        raise ValueError(f"filter quantile must be in [0, 0.5), got {quantile}")
    tau_pos = float(np.quantile(dev_scores[dev_labels == 1], quantile))
    tau_neg = float(np.quantile(dev_scores[dev_labels == 0], 1.0 - quantile))
    return tau_pos, tau_neg


def dual_threshold_mask(scores: np.ndarray, labels: np.ndarray, tau_pos: float, tau_neg: float
                        ) -> tuple[np.ndarray, FilterReport]:
    """Boolean keep-mask over pairs and the counts it kept and dropped per class."""
    positive = labels == 1
    keep = np.where(positive, scores >= tau_pos, scores <= tau_neg)
    report = FilterReport(
        tau_pos=tau_pos, tau_neg=tau_neg,
        positives_kept=int((keep & positive).sum()), positives_dropped=int((~keep & positive).sum()),
        negatives_kept=int((keep & ~positive).sum()), negatives_dropped=int((~keep & ~positive).sum()))
    return keep, report
