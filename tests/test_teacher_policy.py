import hashlib
import random

import numpy as np
import pytest

from flipkd.service.teacher_policy import ab_arm, agreement, in_shadow, unit_hash


def test_ab_assignment_is_deterministic_and_close_to_its_share():
    keys = [f"client-{i}" for i in range(20000)]
    arms = [ab_arm(key, 0.2) for key in keys]
    assert arms == [ab_arm(key, 0.2) for key in keys]
    assert arms.count("teacher") / len(keys) == pytest.approx(0.2, abs=0.01)
    assert {ab_arm(key, 0.0) for key in keys[:100]} == {"student"}
    assert {ab_arm(key, 1.0) for key in keys[:100]} == {"teacher"}
    # growing the share only moves keys from student to teacher, never back
    assert all(ab_arm(k, 0.5) == "teacher" for k, arm in zip(keys, arms, strict=True) if arm == "teacher")
    # the documented u(key), which replicas and clients may compute for themselves
    assert unit_hash("client-7") == int.from_bytes(hashlib.sha256(b"client-7").digest()[:8], "big") / 2**64


def test_shadow_sampling_and_agreement():
    rng = random.Random(0)
    sampled = sum(in_shadow(0.25, rng) for _ in range(10000))
    assert sampled / 10000 == pytest.approx(0.25, abs=0.02)
    assert not any(in_shadow(0.0, rng) for _ in range(100))
    agree = agreement(np.array([0.9, 0.2, 0.6]), 0.5, np.array([0.8, 0.7, 0.4]), 0.75)
    assert agree.tolist() == [True, True, False]
