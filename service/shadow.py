"""Shadow scoring: the teacher also scores a sampled share of the student's /match answers, off the hot
path.

Every pair counts once in ``flipkd_shadow_pairs_total{domain, agreement}`` (do both models decide alike,
each at its own threshold?) and its |student - teacher| similarity in ``flipkd_shadow_score_gap``. With a
log configured, each disagreeing pair becomes one JSONL line ``{"domain", "request_id", "text_a",
"text_b", "student", "teacher"}``, appended by a single writer thread shared by every domain: the event
loop never waits on the disk and lines never interleave. Shadow work never changes an answer; when the
teacher fails it is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from flipkd.service.batched_engine import BatchedEngine
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.pairs import TextPairs
from flipkd.service.teacher_policy import agreement, in_shadow


class ShadowLog:
    """Appends JSON lines to ``path`` from one writer thread; :meth:`close` waits for pending writes.

    Each batch of lines is one ``write`` on a file opened with ``O_APPEND``, so the front-end processes
    of one server can share the file without interleaving their lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-log")

    async def append(self, records: list[dict]) -> None:
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        await asyncio.get_running_loop().run_in_executor(self._writer, self._write, lines)

    def _write(self, lines: str) -> None:
        data = lines.encode("utf-8")
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while data:
                data = data[os.write(descriptor, data):]
        finally:
            os.close(descriptor)

    def close(self) -> None:
        self._writer.shutdown(wait=True)


class Shadow:
    """Samples ``share`` of ``domain``'s answers and scores them with its teacher in background tasks,
    writing disagreements to ``log`` (which its owner closes)."""

    def __init__(self, share: float, log: ShadowLog | None, metrics: ServiceMetrics, domain: str) -> None:
        self.share = share
        self.metrics = metrics
        self.log = log
        self.domain = domain
        self._tasks: set[asyncio.Task] = set()

    def sampled(self) -> bool:
        return in_shadow(self.share)

    def score(self, teacher: BatchedEngine, pairs: TextPairs, student_scores: np.ndarray,
              student_threshold: float, request_id: str) -> None:
        """Start scoring ``pairs`` with ``teacher``; returns at once."""
        task = asyncio.create_task(self._score(teacher, pairs, student_scores, student_threshold, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, teacher: BatchedEngine, pairs: TextPairs, student_scores: np.ndarray,
                     student_threshold: float, request_id: str) -> None:
        try:
            vectors, _ = await teacher.embed(pairs.texts)
        except Exception:  # shadow work never affects answers; it is simply skipped
            return
        teacher_scores = pairs.cosines(vectors)
        agrees = agreement(student_scores, student_threshold, teacher_scores, teacher.threshold)
        metrics, domain = self.metrics, self.domain
        for agree, gap in zip(agrees, np.abs(student_scores - teacher_scores), strict=True):
            metrics.series(metrics.shadow_pairs, domain, "agree" if agree else "disagree").inc()
            metrics.series(metrics.shadow_gap, domain).observe(float(gap))
        if self.log is not None and not agrees.all():
            rows = zip(pairs.pairs, student_scores, teacher_scores, agrees, strict=True)
            await self.log.append([{"domain": domain, "request_id": request_id, "text_a": a, "text_b": b,
                                    "student": float(s), "teacher": float(t)}
                                   for (a, b), s, t, agree in rows if not agree])

    async def drain(self) -> None:
        """Wait for the scoring in flight (and so for the log lines it hands over)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
