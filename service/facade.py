"""The service layer: which model answers each request, knowing nothing of HTTP.

:class:`MatchingService` builds, warms up and starts the engines (in the background, after start-up),
and answers with the student or the teacher:

- A/B (/match): with ``ab_share`` > 0 a request key goes to the arm :func:`ab_arm` gives it, so the
  same key always gets the same model.
- Fallback (/match): with ``fallback`` on, the teacher answers when the student raises, is not ready
  or misses ``deadline_s``, and the answer says why (``error``, ``not_ready``, ``deadline``).
- Shadow (/match): a ``shadow_share`` of the student's answers is also scored by the teacher
  (:mod:`flipkd.service.shadow`).

Every answer carries its vectors, the model that served, the fallback reason, that model's threshold
and the tokens it read. Refusals are exceptions: :class:`ServiceUnavailable` (no model can answer now),
:class:`DeadlineMissed` (the student was late and nothing covers it) and ``QueueFull``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flipkd.models.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from flipkd.models.teacher_cache import onnx_teacher_dir
from flipkd.service.batched_engine import BatchedEngine, warm_up_batches
from flipkd.service.batching import BatcherStopped, BatchPolicy, QueueFull
from flipkd.service.engines import Engine, StudentEngine, TeacherEngine
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.pairs import TextPairs
from flipkd.service.schemas import ServedBy
from flipkd.service.settings import Settings
from flipkd.service.shadow import Shadow
from flipkd.service.teacher_policy import ab_arm

LOG = logging.getLogger("flipkd.service")


@dataclass
class EngineFactories:
    """How engines are built; tests pass their own (for example a student that fails)."""

    student: Callable[[Bundle], Engine] = StudentEngine
    teacher: Callable[[Path, int], Engine] = TeacherEngine


@dataclass(frozen=True)
class Answer:
    """Unit vectors (N, D) in request order, the model that computed them, why the teacher stood in for
    the student (None unless it did), that model's decision threshold and the tokens it read."""

    vectors: np.ndarray
    served_by: ServedBy
    fallback_reason: str | None
    threshold: float
    tokens: int


@dataclass(frozen=True)
class MatchAnswer(Answer):
    """An :class:`Answer` for the distinct texts of some pairs, plus each pair's similarity in order."""

    similarities: np.ndarray


@dataclass(frozen=True)
class Readiness:
    """Which engines are up; ``teacher`` is None when none is configured."""

    ready: bool
    student: bool
    teacher: bool | None
    degraded: list[str]
    load_error: str | None


class ServiceUnavailable(Exception):
    """No model can answer now; ``reason`` (for example ``student_not_ready``) labels the refusal."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeadlineMissed(Exception):
    """The student missed the per-request deadline and no fallback covers it."""


def _batch_policy(settings: Settings, workers: int) -> BatchPolicy:
    return BatchPolicy(max_batch_size=settings.max_batch_size, max_batch_tokens=settings.max_batch_tokens,
                       max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue, workers=workers)


class MatchingService:
    """The bundle's student and the configured teacher, and the policy that picks who answers. The bundle
    is read and verified at construction; the engines come with :meth:`load`."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.bundle = load_bundle(settings.bundle or DEFAULT_BUNDLE)
        self.teacher_folder = self.bundle.teacher_source(settings.teacher)  # load() exports an adapter
        self.load_error: str | None = None
        self._student: BatchedEngine | None = None
        self._teacher: BatchedEngine | None = None
        self._shadow = Shadow(settings.shadow_share, settings.shadow_log, metrics)
        metrics.model_info.info({"bundle": str(self.bundle.folder), "base_model": self.bundle.base_model,
                                 "encoder": json.dumps(self.bundle.manifest["encoder"], sort_keys=True),
                                 "threshold": f"{self.bundle.threshold:.6f}"})

    @property
    def domain(self) -> str:
        """The bundle's name, which requests may give as their ``domain``."""
        return self.bundle.folder.name

    @property
    def teacher_configured(self) -> bool:
        """A teacher folder was given or found (it may still be exporting or loading)."""
        return self.teacher_folder is not None

    @property
    def ready(self) -> bool:
        return self._student is not None and (self._teacher is not None or self.teacher_folder is None)

    def readiness(self) -> Readiness:
        wanted = (("student", self._student, True), ("teacher", self._teacher, self.teacher_configured))
        return Readiness(ready=self.ready, student=self._student is not None,
                         teacher=self._teacher is not None if self.teacher_configured else None,
                         degraded=[name for name, engine, needed in wanted if engine is None and needed],
                         load_error=self.load_error)

    async def load(self, factories: EngineFactories) -> None:
        """Build, warm up and start the student and (when configured) the teacher side by side, off the
        event loop; an adapter teacher is first exported to ONNX (once per machine: minutes) while its
        domain stays degraded. A failure is kept in ``load_error`` (health, readiness and the other
        engine keep answering)."""
        settings, bundle = self.settings, self.bundle

        async def student() -> None:
            self._student = await self._load(lambda: factories.student(bundle), settings.student_workers)

        async def teacher(source: Path, threads: int) -> None:
            self._teacher = await self._load(lambda: factories.teacher(onnx_teacher_dir(source), threads))

        teachers = [teacher(self.teacher_folder, settings.teacher_threads)] if self.teacher_folder else []
        await asyncio.gather(student(), *teachers)

    async def _load(self, make: Callable[[], Engine], workers: int = 1) -> BatchedEngine | None:
        """:meth:`_start`, or None with the failure kept in ``load_error``."""
        try:
            return await self._start(make, workers)
        except Exception as error:
            self.load_error = f"{type(error).__name__}: {error}"
            return None

    async def _start(self, make: Callable[[], Engine], workers: int = 1) -> BatchedEngine:
        settings = self.settings
        engine = await asyncio.to_thread(make)
        batched = BatchedEngine(engine, _batch_policy(settings, workers), settings.cache_size, self.metrics)
        await batched.warm_up(warm_up_batches(settings.max_batch_size))
        batched.start()
        self.metrics.ready.labels(engine=engine.name).set(1)
        return batched

    async def stop(self) -> None:
        """Finish the accepted work of both engines, then the shadow scoring and its log."""
        for engine in (self._student, self._teacher):
            if engine is not None:
                await engine.stop()
        await self._shadow.close()

    def record_queue_depths(self) -> None:
        """Bring ``flipkd_queue_depth`` up to date (before a scrape)."""
        for engine in (self._student, self._teacher):
            if engine is not None:
                self.metrics.queue_depth.labels(engine=engine.name).set(engine.depth)

    async def match(self, pairs: Sequence[tuple[str, str]], request_id: str,
                    key: str | None = None) -> MatchAnswer:
        """Similarities of ``pairs`` by the A/B arm of ``key`` (``request_id`` when None or empty); the
        student's answers fall back to the teacher and are sampled for shadow scoring."""
        texts = TextPairs.of(pairs)
        arm = ab_arm(key or request_id, self.settings.ab_share) if self._teacher is not None else "student"
        self.metrics.series(self.metrics.ab_arm, arm).inc()
        if arm == "teacher":
            answer = await self._embed("teacher", texts.texts)
        else:
            answer = await self._student_or_fallback(texts.texts)
        similarities = texts.cosines(answer.vectors)
        self.metrics.series(self.metrics.served, answer.served_by).inc()
        if answer.served_by == "student" and self._teacher is not None and self._shadow.sampled():
            self._shadow.score(self._teacher, texts, similarities, answer.threshold, request_id)
        return MatchAnswer(answer.vectors, answer.served_by, answer.fallback_reason, answer.threshold,
                           answer.tokens, similarities)

    async def embed(self, texts: list[str], model: ServedBy) -> Answer:
        """``model``'s embeddings of ``texts``, with no deadline, A/B or fallback."""
        answer = await self._embed(model, texts)
        self.metrics.series(self.metrics.served, model).inc()
        return answer

    def dimension(self, model: ServedBy) -> int:
        """The width of ``model``'s embeddings; ServiceUnavailable while it is not loaded."""
        return self._engine(model).dim

    def _engine(self, model: ServedBy) -> BatchedEngine:
        engine = self._student if model == "student" else self._teacher
        if engine is None:
            raise ServiceUnavailable(f"{model}_not_ready")
        return engine

    async def _embed(self, model: ServedBy, texts: list[str], fallback_reason: str | None = None) -> Answer:
        engine = self._engine(model)
        try:
            vectors, tokens = await engine.embed(texts)
        except BatcherStopped:
            raise ServiceUnavailable("shutting_down") from None
        threshold = self.bundle.threshold if model == "student" else engine.threshold
        return Answer(vectors, model, fallback_reason, threshold, tokens)

    async def _student_or_fallback(self, texts: list[str]) -> Answer:
        """The student's answer within the deadline, else (when allowed) the teacher's with the reason."""
        settings = self.settings
        try:
            if self._student is None:
                raise ServiceUnavailable("not_ready")
            async with asyncio.timeout(settings.deadline_s):  # a timer, where wait_for would add a task
                vectors, tokens = await self._student.embed(texts)
            return Answer(vectors, "student", None, self.bundle.threshold, tokens)
        except QueueFull:
            raise
        except Exception as error:
            reason = {TimeoutError: "deadline", ServiceUnavailable: "not_ready"}.get(type(error), "error")
            if reason == "error":
                LOG.error("student failed on %d texts", len(texts), exc_info=error)
            if not (settings.fallback and self._teacher is not None):
                if reason == "deadline":
                    raise DeadlineMissed(f"student missed its {settings.deadline_s} s deadline") from None
                raise ServiceUnavailable(f"student_{reason}") from None
            self.metrics.fallbacks.labels(reason=reason).inc()
            return await self._embed("teacher", texts, reason)
