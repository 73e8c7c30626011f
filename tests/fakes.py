"""Engines without weights, for the fast tier: the service's engine interface with deterministic vectors.

A text's token ids are its UTF-8 bytes (at most ``max_length``); its vector is a unit vector drawn from
a generator seeded by a hash of the engine's ``seed`` and the ids. Equal texts get equal vectors, the
student and the teacher (different seeds) get different ones, and a test computes the expected answer
with :meth:`FakeEngine.vector`. ``delay_s`` and ``failing`` act on every batch and can change while the
service runs. :func:`fake_adapter_teacher` writes an adapter teacher's files with stand-in contents.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flipkd.models.bundle import Bundle
from flipkd.models.teacher_config import TeacherConfig
from flipkd.service.facade import EngineFactories


class FakeEngine:
    def __init__(self, name: str = "student", dim: int = 16, threshold: float = 0.5, max_length: int = 64,
                 seed: str | None = None, delay_s: float = 0.0, failing: bool = False) -> None:
        self.name = name
        self.dim = dim
        self.threshold = threshold
        self.max_length = max_length
        self.seed = seed or name
        self.delay_s = delay_s
        self.failing = failing

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(text.encode("utf-8"))[: self.max_length] for text in texts]

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """(len(ids), dim) float32 unit rows, after ``delay_s``; RuntimeError while ``failing``."""
        time.sleep(self.delay_s)
        if self.failing:
            raise RuntimeError(f"fake {self.name} failed")
        return np.stack([self._vector(row) for row in ids])

    def vector(self, text: str) -> np.ndarray:
        """The vector this engine gives ``text``."""
        return self._vector(self.token_ids([text])[0])

    def _vector(self, ids: Sequence[int]) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}:{','.join(map(str, ids))}".encode()).digest()
        vector = np.random.default_rng(int.from_bytes(digest[:8], "big")).standard_normal(self.dim)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def fake_factories(student: FakeEngine | dict[str, FakeEngine], teacher: FakeEngine | None = None,
                   student_gate: threading.Event | None = None) -> EngineFactories:
    """Factories handing the service these engines: ``student`` for every domain, or each domain's own
    by bundle name; the students wait for ``student_gate`` when given (the service stays not ready until
    it is set)."""

    def make_student(bundle: Bundle) -> FakeEngine:
        if student_gate is not None:
            student_gate.wait()
        return student[bundle.folder.name] if isinstance(student, dict) else student

    def make_teacher(_folder: Path, _threads: int) -> FakeEngine:
        if teacher is None:
            raise RuntimeError("no fake teacher was given")
        return teacher

    return EngineFactories(student=make_student, teacher=make_teacher)


def fake_adapter_teacher(folder: Path, weights: bytes = b"adapter weights") -> Path:
    """An adapter teacher's files (plus a ``metrics.json``, which is not one of them) without real weights:
    enough for hashing, caching and bundling, not for export."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}\n')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    TeacherConfig(base="all-MiniLM-L6-v2", max_length=64, threshold=0.7).save(folder)
    (folder / "metrics.json").write_text("{}\n")
    return folder
