"""Which model answers, and which requests the teacher also scores.

- A/B: a request key goes to the teacher when u(key) < ``ab_share``, u(key) = first 8 bytes of
  sha256(key) / 2^64: deterministic, so a client keeps its arm across requests and replicas.
- Shadow: an independent random share of requests is also scored by the teacher off the hot path.
- Fallback (:mod:`flipkd.service.facade`): when the student raises, is not ready, or misses the deadline.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def unit_hash(key: str) -> float:
    """u(key) in [0, 1): the first 8 bytes of sha256(key) as an unsigned integer over 2^64."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def ab_arm(key: str, ab_share: float) -> str:
    """``"teacher"`` for the ``ab_share`` of keys with the smallest u(key), else ``"student"`` (with no
    hashing when the share is 0)."""
    return "teacher" if ab_share > 0 and unit_hash(key) < ab_share else "student"


_SAMPLER = random.Random()


def in_shadow(shadow_share: float, rng: random.Random = _SAMPLER) -> bool:
    """Sample this request for shadow scoring with probability ``shadow_share``."""
    return shadow_share > 0 and rng.random() < shadow_share


def agreement(student_scores: np.ndarray, student_threshold: float, teacher_scores: np.ndarray,
              teacher_threshold: float) -> np.ndarray:
    """Per pair: do both models make the same decision (each at its own threshold)?"""
    return (student_scores >= student_threshold) == (teacher_scores >= teacher_threshold)
