"""The FastAPI app: routes, teacher policy (shadow, A/B, fallback), bounds, health and metrics.

Models load in the background after start-up: ``/healthz`` answers at once, ``/readyz`` turns 200 once
every engine has embedded a warm-up text. Engines sit behind their own batcher and cache
(:mod:`flipkd.service.batched_engine`); this module decides which engine answers and shapes the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flipkd.models.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from flipkd.service.batched_engine import BatchedEngine
from flipkd.service.batching import BatcherStopped, BatchPolicy, QueueFull
from flipkd.service.engines import Engine, StudentEngine, TeacherEngine
from flipkd.service.heap_trim import trim_periodically
from flipkd.service.limits import BodySizeLimit, bound_texts
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.observe import ObserveRequests, error_response
from flipkd.service.runtime import runtime_info
from flipkd.service.schemas import (
    EmbedRequest,
    EmbedResponse,
    MatchRequest,
    MatchResponse,
    MatchResult,
    OpenAIEmbedding,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    OpenAIUsage,
)
from flipkd.service.settings import Settings
from flipkd.service.teacher_policy import ab_arm, agreement, in_shadow

LOG = logging.getLogger("flipkd.service")

RETRY_AFTER_S = 1
WARM_UP_TEXT = "warm-up"


def warm_up_batches(max_batch_size: int) -> list[list[str]]:
    """What an engine runs before it is ready: a full batch of the longest texts first (truncated to the
    engine's max length), so the heap and the runtime's arenas reach their working size before the first
    request instead of during the first thousand, then a full batch of short texts and a single text."""
    longest = " ".join([WARM_UP_TEXT] * 512)
    return [[longest] * max_batch_size, [WARM_UP_TEXT] * max_batch_size, [WARM_UP_TEXT]]


@dataclass
class EngineFactories:
    """How engines are built; tests pass their own (for example a student that fails)."""

    student: Callable[[Bundle], Engine] = StudentEngine
    teacher: Callable[[Path, int], Engine] = TeacherEngine


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    bundle: Bundle
    teacher_folder: Path | None = None
    student: BatchedEngine | None = None
    teacher: BatchedEngine | None = None
    load_error: str | None = None
    shadow_tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def ready(self) -> bool:
        return self.student is not None and (self.teacher is not None or self.teacher_folder is None)


class ServiceUnavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _policy(settings: Settings, workers: int) -> BatchPolicy:
    return BatchPolicy(max_batch_size=settings.max_batch_size, max_batch_tokens=settings.max_batch_tokens,
                       max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue, workers=workers)


async def _load_engines(state: ServiceState, factories: EngineFactories) -> None:
    """Build, warm up and start the engines off the event loop; record a failure instead of dying."""
    settings, metrics = state.settings, state.metrics

    async def build(make: Callable[[], Engine], workers: int = 1) -> BatchedEngine:
        engine = await asyncio.to_thread(make)
        batched = BatchedEngine(engine, _policy(settings, workers), settings.cache_size, metrics)
        await batched.warm_up(warm_up_batches(settings.max_batch_size))
        batched.start()
        metrics.ready.labels(engine=engine.name).set(1)
        return batched

    try:
        if state.teacher_folder is not None:
            folder = state.teacher_folder
            state.teacher = await build(lambda: factories.teacher(folder, settings.teacher_threads))
        state.student = await build(lambda: factories.student(state.bundle), settings.student_workers)
    except Exception as error:  # keep serving health, readiness and the teacher fallback
        state.load_error = f"{type(error).__name__}: {error}"


def _cosines(vectors: np.ndarray, left: list[int], right: list[int]) -> np.ndarray:
    return np.einsum("nd,nd->n", vectors[left], vectors[right])


class MatchJob:
    """The distinct texts of a /match request and the pairs (by index) to score."""

    def __init__(self, request: MatchRequest, settings: Settings) -> None:
        if request.query is not None:
            raw_pairs = [(request.query, candidate) for candidate in request.candidates]
        else:
            raw_pairs = [(p.text_a, p.text_b) for p in (request.pairs or [request.pair])]
        flat = bound_texts([text for pair in raw_pairs for text in pair], settings)
        self.pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        self.texts = list(dict.fromkeys(flat))
        index = {text: i for i, text in enumerate(self.texts)}
        self.left = [index[a] for a, _ in self.pairs]
        self.right = [index[b] for _, b in self.pairs]
        self.ranked = request.query is not None
        self.top_k = request.top_k

    def results(self, scores: np.ndarray, threshold: float) -> list[MatchResult]:
        """Pairs in request order; a query's candidates ranked by similarity (the first ``top_k``)."""
        results = [MatchResult(text_a=a, text_b=b, similarity=float(s), match=bool(s >= threshold))
                   for (a, b), s in zip(self.pairs, scores, strict=True)]
        if not self.ranked:
            return results
        order = np.argsort(-scores, kind="stable")[: self.top_k or len(results)]
        return [results[i].model_copy(update={"rank": rank + 1}) for rank, i in enumerate(order)]


def create_app(settings: Settings, factories: EngineFactories | None = None) -> FastAPI:
    """The app for ``settings``; models start loading when the app starts."""
    factories = factories or EngineFactories()
    bundle = load_bundle(settings.bundle or DEFAULT_BUNDLE)
    metrics = ServiceMetrics()
    state = ServiceState(settings, metrics, bundle, bundle.find_teacher(settings.teacher))
    metrics.model_info.info({"bundle": str(bundle.folder), "base_model": bundle.base_model,
                             "encoder": json.dumps(bundle.manifest["encoder"], sort_keys=True),
                             "threshold": f"{bundle.threshold:.6f}"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        loader = asyncio.create_task(_load_engines(state, factories))
        trimmer = (asyncio.create_task(trim_periodically(settings.heap_trim_interval_s, metrics.heap_trim))
                   if settings.heap_trim_interval_s > 0 else None)
        yield
        loader.cancel()
        if trimmer is not None:
            trimmer.cancel()
        for engine in (state.student, state.teacher):
            if engine is not None:
                await engine.stop()
        if state.shadow_tasks:
            await asyncio.gather(*state.shadow_tasks, return_exceptions=True)

    app = FastAPI(title="FlipKD matching service", version="0.1.0", lifespan=lifespan,
                  description="Text matching by an LLM student distilled from a small teacher.")
    app.state.service = state

    app.add_middleware(ObserveRequests, settings=settings, metrics=metrics)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        metrics.rejected.labels(reason="invalid").inc()
        return JSONResponse({"error": "invalid request body", "detail": details}, status_code=422)

    @app.exception_handler(QueueFull)
    async def overloaded(_request: Request, error: QueueFull) -> JSONResponse:
        metrics.rejected.labels(reason="queue_full").inc()
        return JSONResponse({"error": f"overloaded: {error}"}, status_code=429,
                            headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(_request: Request, error: ServiceUnavailable) -> JSONResponse:
        metrics.rejected.labels(reason=error.reason).inc()
        return JSONResponse({"error": f"unavailable: {error.reason}"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})

    async def embed_with(engine: BatchedEngine | None, texts: list[str], reason: str) -> np.ndarray:
        if engine is None:
            raise ServiceUnavailable(reason)
        try:
            return await engine.embed(texts)
        except BatcherStopped:
            raise ServiceUnavailable("shutting_down") from None

    async def student_or_fallback(texts: list[str]) -> tuple[np.ndarray, str, str | None]:
        """Student embeddings within the deadline, else (if allowed) the teacher's with the reason."""
        try:
            if state.student is None:
                raise ServiceUnavailable("not_ready")
            vectors = await asyncio.wait_for(state.student.embed(texts), settings.deadline_s)
            return vectors, "student", None
        except QueueFull:
            raise
        except Exception as error:
            reason = {TimeoutError: "deadline", ServiceUnavailable: "not_ready"}.get(type(error), "error")
            if reason == "error":
                LOG.error("student failed on %d texts", len(texts), exc_info=error)
            if not (settings.fallback and state.teacher is not None):
                if reason == "deadline":
                    raise HTTPException(504, f"student missed its {settings.deadline_s} s deadline") from None
                raise ServiceUnavailable(f"student_{reason}") from None
            metrics.fallbacks.labels(reason=reason).inc()
            return await embed_with(state.teacher, texts, "teacher_not_ready"), "teacher", reason

    async def shadow(job: MatchJob, student_scores: np.ndarray, request_id: str) -> None:
        try:
            vectors = await state.teacher.embed(job.texts)
        except Exception:  # shadow work never affects answers; it is simply skipped
            return
        teacher_scores = _cosines(vectors, job.left, job.right)
        agrees = agreement(student_scores, state.bundle.threshold, teacher_scores,
                           state.teacher.engine.threshold)
        for agree, gap in zip(agrees, np.abs(student_scores - teacher_scores), strict=True):
            metrics.shadow_pairs.labels(agreement="agree" if agree else "disagree").inc()
            metrics.shadow_gap.observe(float(gap))
        if settings.shadow_log is not None and not agrees.all():
            with open(settings.shadow_log, "a", encoding="utf-8") as log:
                rows = zip(job.pairs, student_scores, teacher_scores, agrees, strict=True)
                for (a, b), s, t, agree in rows:
                    if not agree:
                        record = {"request_id": request_id, "text_a": a, "text_b": b, "student": float(s),
                                  "teacher": float(t)}
                        log.write(json.dumps(record, ensure_ascii=False) + "\n")

    @app.post("/match", response_model=MatchResponse, tags=["matching"])
    async def match(body: MatchRequest) -> MatchResponse:
        """Score a pair, a list of pairs, or one query against candidates (ranked, optionally top-k)."""
        if body.domain is not None and body.domain != state.bundle.folder.name:
            raise HTTPException(404, f"unknown domain {body.domain!r}; loaded: {state.bundle.folder.name!r}")
        job = MatchJob(body, settings)
        request_id = uuid.uuid4().hex
        arm = ab_arm(body.request_key or request_id, settings.ab_share) if state.teacher else "student"
        metrics.ab_arm.labels(arm=arm).inc()
        if arm == "teacher":
            vectors = await embed_with(state.teacher, job.texts, "teacher_not_ready")
            served_by, reason = "teacher", None
        else:
            vectors, served_by, reason = await student_or_fallback(job.texts)
        scores = _cosines(vectors, job.left, job.right)
        threshold = state.bundle.threshold if served_by == "student" else state.teacher.engine.threshold
        metrics.served.labels(model=served_by).inc()
        if served_by == "student" and state.teacher is not None and in_shadow(settings.shadow_share):
            task = asyncio.create_task(shadow(job, scores, request_id))
            state.shadow_tasks.add(task)
            task.add_done_callback(state.shadow_tasks.discard)
        return MatchResponse(request_id=request_id, served_by=served_by, fallback_reason=reason,
                             threshold=threshold, results=job.results(scores, threshold))

    async def embeddings_of(texts: list[str], model: str) -> tuple[np.ndarray, BatchedEngine]:
        engine = state.student if model == "student" else state.teacher
        vectors = await embed_with(engine, bound_texts(texts, settings), f"{model}_not_ready")
        return vectors, engine

    @app.post("/embed", response_model=EmbedResponse, tags=["embeddings"])
    async def embed(body: EmbedRequest) -> EmbedResponse:
        """LoRA-encoder embeddings (unit length), or the teacher's with ``"model": "teacher"``."""
        if body.model == "teacher" and state.teacher_folder is None:
            raise HTTPException(404, "no teacher is configured")
        vectors, _ = await embeddings_of(body.texts, body.model)
        metrics.served.labels(model=body.model).inc()
        return EmbedResponse(request_id=uuid.uuid4().hex, served_by=body.model, dimension=vectors.shape[1],
                             embeddings=vectors.round(6).tolist())

    @app.post("/v1/embeddings", response_model=OpenAIEmbeddingResponse, tags=["embeddings"])
    async def openai_embeddings(body: OpenAIEmbeddingRequest) -> OpenAIEmbeddingResponse:
        """The OpenAI embeddings shape; ``model`` "teacher" selects the teacher, anything else the student."""
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or any(not text for text in texts):
            raise HTTPException(422, "input must be a non-empty string or a list of non-empty strings")
        model = "teacher" if body.model == "teacher" else "student"
        vectors, engine = await embeddings_of(texts, model)
        tokens = sum(len(ids) for ids in engine.engine.token_ids(texts))
        return OpenAIEmbeddingResponse(
            data=[OpenAIEmbedding(index=i, embedding=v.round(6).tolist()) for i, v in enumerate(vectors)],
            model=f"flipkd-{model}", usage=OpenAIUsage(prompt_tokens=tokens, total_tokens=tokens))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict:
        """The process is alive (models may still be loading)."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """200 once the student (and the configured teacher) are loaded and warmed up."""
        wanted = (("student", state.student, True), ("teacher", state.teacher, state.teacher_folder))
        body = {"ready": state.ready, "student": state.student is not None,
                "teacher": None if state.teacher_folder is None else state.teacher is not None,
                "degraded": [name for name, engine, needed in wanted if engine is None and needed],
                "load_error": state.load_error}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics_route() -> Response:
        for engine in (state.student, state.teacher):
            if engine is not None:
                metrics.queue_depth.labels(engine=engine.name).set(engine.depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/info", tags=["operations"])
    async def info() -> dict:
        """Bundle, base model, encoder spec, thresholds and the settings that shape answers."""
        manifest = state.bundle.manifest
        return {
            "domain": state.bundle.folder.name, "base_model": manifest["base_model"],
            "encoder": manifest["encoder"], "threshold": state.bundle.threshold,
            "teacher": manifest.get("teacher"), "teacher_folder": str(state.teacher_folder or ""),
            "ready": state.ready,
            "settings": settings.model_dump(mode="json", exclude={"api_key"}),
            "runtime": runtime_info(),
        }

    return BodySizeLimit(app, settings.max_body_bytes)

