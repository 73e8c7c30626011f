"""Paired bootstrap of student minus teacher over pairs scored relative to each model's own threshold."""

from __future__ import annotations

import sys

import numpy as np

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

from paired_test import paired_bootstrap  # noqa: E402


def test_equal_models_differ_by_nothing_and_a_cleaner_student_leads():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    teacher = labels - 0.5 + rng.normal(0, 0.6, labels.size)
    same = paired_bootstrap(labels, teacher, teacher.copy(), resamples=50, seed=1)
    assert not same["f1"].any() and not same["auc"].any()
    student = labels - 0.5 + rng.normal(0, 0.2, labels.size)
    better = paired_bootstrap(labels, student, teacher, resamples=200, seed=1)
    assert (better["f1"] > 0).mean() > 0.95 and (better["auc"] > 0).mean() > 0.95

