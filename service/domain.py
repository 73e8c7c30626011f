"""One matching domain: a bundle's student, its teacher, and the policy that picks who answers.

:class:`Domain` builds, warms up and starts its engines (in the background, after start-up) and answers
with the student or the teacher:

- A/B (/match): with ``ab_share`` > 0 a request key goes to the arm :func:`ab_arm` gives it, so the
  same key always gets the same model.
- Fallback (/match): with ``fallback`` on, the teacher answers when the student raises, is not ready
  or misses ``deadline_s``, and the answer says why (``error``, ``not_ready``, ``deadline``).
- Shadow (/match): a ``shadow_share`` of the student's answers is also scored by the teacher
  (:mod:`flipkd.service.shadow`).

The domain serves once its student is warmed up. Until its teacher is attached it is "degraded": A/B,
fallback and shadow are off. A teacher that is missing or fails to load (an adapter teacher still being
exported, a folder still being written) is tried again every ``teacher_retry_s`` and attached when it
loads, without a restart.

Every answer carries its vectors, the model that served, the fallback reason, that model's threshold
and the tokens it read. Refusals are exceptions: :class:`ServiceUnavailable` (no model can answer now),
:class:`NoTeacher` (the domain has none), :class:`DeadlineMissed` (the student was late and nothing
covers it) and ``QueueFull``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flipkd.models.bundle import Bundle
from flipkd.models.teacher_cache import onnx_teacher_dir
from flipkd.service.batched_engine import BatchedEngine, warm_up_batches
from flipkd.service.batching import BatcherStopped, BatchPolicy, QueueFull
from flipkd.service.engines import Engine
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.pairs import TextPairs
from flipkd.service.schemas import ServedBy
from flipkd.service.settings import Settings
from flipkd.service.shadow import Shadow, ShadowLog
from flipkd.service.teacher_policy import ab_arm

LOG = logging.getLogger("flipkd.service")


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
class DomainReadiness:
    """Which engines are up (``teacher`` is None when none is configured), which are missing, and the
    last load failure of each engine that is not up."""

    student: bool
    teacher: bool | None
    degraded: list[str]
    load_errors: dict[str, str]


class ServiceUnavailable(Exception):
    """No model can answer now; ``reason`` (for example ``student_not_ready``) labels the refusal."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoTeacher(LookupError):
    """The teacher was asked for in a domain that has none configured."""


class DeadlineMissed(Exception):
    """The student missed the per-request deadline and no fallback covers it."""


def batch_policy(settings: Settings, workers: int) -> BatchPolicy:
    return BatchPolicy(max_batch_size=settings.max_batch_size, max_batch_tokens=settings.max_batch_tokens,
                       max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue, workers=workers)


class Domain:
    """``bundle``'s student and the teacher from ``teacher_folder`` (None: no teacher) under ``name``; the
    student's batches take ``student_slots`` when given (shared by the domains of one process)."""

    def __init__(self, name: str, bundle: Bundle, teacher_folder: Path | None, settings: Settings,
                 metrics: ServiceMetrics, shadow_log: ShadowLog | None,
                 student_slots: asyncio.Semaphore | None = None) -> None:
        self.name = name
        self.bundle = bundle
        self.teacher_folder = teacher_folder
        self.settings = settings
        self.metrics = metrics
        self.load_errors: dict[str, str] = {}
        self._student_slots = student_slots
        self._student: BatchedEngine | None = None
        self._teacher: BatchedEngine | None = None
        self._shadow = Shadow(settings.shadow_share, shadow_log, metrics, name)

    @property
    def teacher_configured(self) -> bool:
        """A teacher folder was given or found (it may still be exporting, loading or missing)."""
        return self.teacher_folder is not None

    @property
    def serving(self) -> bool:
        """The student is warmed up and answering."""
        return self._student is not None

    def readiness(self) -> DomainReadiness:
        wanted = (("student", self._student, True), ("teacher", self._teacher, self.teacher_configured))
        missing = [name for name, engine, needed in wanted if engine is None and needed]
        return DomainReadiness(student=self._student is not None,
                               teacher=self._teacher is not None if self.teacher_configured else None,
                               degraded=missing, load_errors=dict(self.load_errors))

    async def load(self, make_student: Callable[[Bundle], Engine],
                   make_teacher: Callable[[Path, int], Engine]) -> None:
        """Build, warm up and start the student and (when configured) the teacher side by side, off the
        event loop; an adapter teacher is first exported to ONNX (once per machine: minutes). A student
        failure is kept in ``load_errors``; the teacher is retried until it attaches."""
        settings, bundle, folder = self.settings, self.bundle, self.teacher_folder
        for engine in ("student", *(["teacher"] if folder is not None else [])):
            self.metrics.series(self.metrics.ready, self.name, engine).set(0)

        async def student() -> None:
            try:
                self._student = await self._start(lambda: make_student(bundle), settings.student_workers,
                                                  self._student_slots)
            except Exception as error:
                self._failed("student", error)

        async def teacher() -> None:
            while True:
                try:
                    self._teacher = await self._start(
                        lambda: make_teacher(onnx_teacher_dir(folder), settings.teacher_threads))
                    self.load_errors.pop("teacher", None)
                    return
                except Exception as error:
                    self._failed("teacher", error)
                await asyncio.sleep(settings.teacher_retry_s)

        await asyncio.gather(student(), *([teacher()] if folder is not None else []))

    def _failed(self, engine: str, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"
        if self.load_errors.get(engine) != message:
            LOG.error("domain %s: the %s did not load: %s", self.name, engine, message)
        self.load_errors[engine] = message

    async def _start(self, make: Callable[[], Engine], workers: int = 1,
                     slots: asyncio.Semaphore | None = None) -> BatchedEngine:
        settings = self.settings
        engine = await asyncio.to_thread(make)
        batched = BatchedEngine(engine, batch_policy(settings, workers), settings.cache_size, self.metrics,
                                self.name, slots)
        try:
            await batched.warm_up(warm_up_batches(settings.max_batch_size))
        except BaseException:
            await batched.stop()
            raise
        batched.start()
        self.metrics.series(self.metrics.ready, self.name, engine.name).set(1)
        return batched

    async def stop(self) -> None:
        """Finish the accepted work of both engines, then the shadow scoring."""
        for engine in (self._student, self._teacher):
            if engine is not None:
                await engine.stop()
        await self._shadow.drain()

    def record_queue_depths(self) -> None:
        """Bring ``flipkd_queue_depth`` up to date (before a scrape)."""
        for engine in (self._student, self._teacher):
            if engine is not None:
                self.metrics.series(self.metrics.queue_depth, self.name, engine.name).set(engine.depth)

    async def match(self, pairs: Sequence[tuple[str, str]], request_id: str,
                    key: str | None = None) -> MatchAnswer:
        """Similarities of ``pairs`` by the A/B arm of ``key`` (``request_id`` when None or empty); the
        student's answers fall back to the teacher and are sampled for shadow scoring."""
        metrics = self.metrics
        texts = TextPairs.of(pairs)
        arm = ab_arm(key or request_id, self.settings.ab_share) if self._teacher is not None else "student"
        metrics.series(metrics.ab_arm, self.name, arm).inc()
        if arm == "teacher":
            answer = await self._embed("teacher", texts.texts)
        else:
            answer = await self._student_or_fallback(texts.texts)
        similarities = texts.cosines(answer.vectors)
        metrics.series(metrics.served, self.name, answer.served_by).inc()
        if answer.served_by == "student" and self._teacher is not None and self._shadow.sampled():
            self._shadow.score(self._teacher, texts, similarities, answer.threshold, request_id)
        return MatchAnswer(answer.vectors, answer.served_by, answer.fallback_reason, answer.threshold,
                           answer.tokens, similarities)

    async def embed(self, texts: list[str], model: ServedBy) -> Answer:
        """``model``'s embeddings of ``texts``, with no deadline, A/B or fallback."""
        answer = await self._embed(model, texts)
        self.metrics.series(self.metrics.served, self.name, model).inc()
        return answer

    def dimension(self, model: ServedBy) -> int:
        """The width of ``model``'s embeddings; ServiceUnavailable while it is not loaded."""
        return self._engine(model).dim

    def _engine(self, model: ServedBy) -> BatchedEngine:
        if model == "teacher" and not self.teacher_configured:
            raise NoTeacher(f"domain {self.name!r} has no teacher configured")
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
                LOG.error("domain %s: student failed on %d texts", self.name, len(texts), exc_info=error)
            if not (settings.fallback and self._teacher is not None):
                if reason == "deadline":
                    raise DeadlineMissed(f"student missed its {settings.deadline_s} s deadline") from None
                raise ServiceUnavailable(f"student_{reason}") from None
            self.metrics.series(self.metrics.fallbacks, self.name, reason).inc()
            return await self._embed("teacher", texts, reason)
