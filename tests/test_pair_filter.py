import numpy as np
import pytest

from flipkd.training.pair_filter import choose_thresholds, dual_threshold_mask


def test_filter_drops_contradicted_pairs_and_counts_them():
    scores = np.array([0.9, 0.4, 0.8, 0.2, 0.85, 0.3])
    labels = np.array([1, 1, 1, 0, 0, 0])
    keep, report = dual_threshold_mask(scores, labels, tau_pos=0.5, tau_neg=0.7)
    assert keep.tolist() == [True, False, True, True, False, True]
    assert (report.positives_kept, report.positives_dropped) == (2, 1)
    assert (report.negatives_kept, report.negatives_dropped) == (2, 1)


def test_thresholds_come_from_class_quantiles_on_dev():
    dev_scores = np.concatenate([np.linspace(0.5, 1.0, 101), np.linspace(0.0, 0.6, 101)])
    dev_labels = np.array([1] * 101 + [0] * 101)
    tau_pos, tau_neg = choose_thresholds(dev_scores, dev_labels, quantile=0.1)
    assert tau_pos == pytest.approx(0.55)
    assert tau_neg == pytest.approx(0.54)
    assert choose_thresholds(dev_scores, dev_labels, quantile=0.0) == pytest.approx((0.5, 0.6))
    with pytest.raises(ValueError, match="quantile"):
        choose_thresholds(dev_scores, dev_labels, quantile=0.5)
