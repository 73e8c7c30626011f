"""The FastAPI app: HTTP in and out of :class:`~flipkd.service.facade.MatchingService`, which decides
which domain and model answer; here live the request bounds, the error answers, health, readiness, metrics
and info.

Models load in the background after start-up: ``/healthz`` answers at once, ``/readyz`` turns 200 once
every domain's student has run its warm-up batches (teachers attach later; a domain without its teacher
is listed as degraded). ``domain`` in a body (``model`` on /v1/embeddings) picks the domain. Well-formed
requests to /match, /embed and /v1/embeddings are answered by :mod:`flipkd.service.hot_routes`, which
calls the same endpoint functions without FastAPI's per-request machinery; FastAPI documents those routes
and answers every other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from flipkd.service.batching import QueueFull
from flipkd.service.domain import DeadlineMissed, Domain, NoTeacher, ServiceUnavailable
from flipkd.service.errors import error_response
from flipkd.service.facade import EngineFactories, MatchingService, UnknownDomain, student_factory
from flipkd.service.heap_trim import trim_periodically
from flipkd.service.hot_routes import ErrorHandler, HotRoute, HotRoutes
from flipkd.service.limits import BodySizeLimit, bound_texts
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.observe import ObserveRequests
from flipkd.service.openai_embeddings import (
    check_dimensions,
    embeddings_response,
    model_name,
    requested_model,
    requested_texts,
)
from flipkd.service.runtime import runtime_info
from flipkd.service.schemas import (
    EmbedRequest,
    EmbedResponse,
    MatchRequest,
    MatchResponse,
    MatchResult,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
)
from flipkd.service.settings import Settings

RETRY_AFTER_S = 1
QUEUE_DEPTH_INTERVAL_S = 1.0  # with several front ends, how stale a scraped queue depth may be


def new_request_id() -> str:
    """A random UUID4 as 32 hex digits, as ``uuid.uuid4().hex`` gives it, without building a UUID."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def match_pairs(request: MatchRequest, settings: Settings) -> list[tuple[str, str]]:
    """The request's pairs (a query with each candidate), texts bounded by ``settings`` (413 past them)."""
    if request.query is not None:
        raw_pairs = [(request.query, candidate) for candidate in request.candidates]
    else:
        raw_pairs = [(p.text_a, p.text_b) for p in (request.pairs or [request.pair])]
    flat = bound_texts([text for pair in raw_pairs for text in pair], settings)
    return list(zip(flat[0::2], flat[1::2], strict=True))


def match_results(request: MatchRequest, pairs: list[tuple[str, str]], similarities: np.ndarray,
                  threshold: float) -> list[MatchResult]:
    """Pairs in request order; a query's candidates ranked by similarity (the first ``top_k``)."""
    results = [MatchResult(text_a=a, text_b=b, similarity=float(s), match=bool(s >= threshold))
               for (a, b), s in zip(pairs, similarities, strict=True)]
    if request.query is None:
        return results
    order = np.argsort(-similarities, kind="stable")[: request.top_k or len(results)]
    return [results[i].model_copy(update={"rank": rank + 1}) for rank, i in enumerate(order)]


def domain_info(domain: Domain) -> dict:
    """What /info tells of a domain: its bundle, base model, encoder, threshold, teacher and readiness."""
    manifest = domain.bundle.manifest
    return {"bundle": str(domain.bundle.folder), "base_model": manifest["base_model"],
            "encoder": manifest["encoder"], "threshold": domain.bundle.threshold,
            "teacher": manifest.get("teacher"), "teacher_folder": str(domain.teacher_folder or ""),
            **dataclasses.asdict(domain.readiness())}


def error_handlers(metrics: ServiceMetrics) -> dict[type[Exception], ErrorHandler]:
    """The service's answer to each refusal, for FastAPI and the hot routes alike (shapes:
    :mod:`flipkd.service.errors`)."""

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(request.url.path, error.status_code, error.detail, error.headers)

    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        metrics.rejected.labels(reason="invalid").inc()
        return error_response(request.url.path, 422, "invalid request body", detail=details)

    async def overloaded(request: Request, error: QueueFull) -> JSONResponse:
        metrics.rejected.labels(reason="queue_full").inc()
        return error_response(request.url.path, 429, f"overloaded: {error}",
                              {"Retry-After": str(RETRY_AFTER_S)})

    async def unavailable(request: Request, error: ServiceUnavailable) -> JSONResponse:
        metrics.rejected.labels(reason=error.reason).inc()
        return error_response(request.url.path, 503, f"unavailable: {error.reason}",
                              {"Retry-After": str(RETRY_AFTER_S)})

    async def late(request: Request, error: DeadlineMissed) -> JSONResponse:
        return error_response(request.url.path, 504, str(error))

    async def not_found(request: Request, error: LookupError) -> JSONResponse:
        return error_response(request.url.path, 404, str(error))

    return {HTTPException: http_error, RequestValidationError: invalid, QueueFull: overloaded,
            ServiceUnavailable: unavailable, DeadlineMissed: late, UnknownDomain: not_found,
            NoTeacher: not_found}


async def record_queue_depths_every(service: MatchingService, interval_s: float) -> None:
    """Update ``flipkd_queue_depth`` every ``interval_s`` seconds until cancelled."""
    while True:
        service.record_queue_depths()
        await asyncio.sleep(interval_s)


def create_app(settings: Settings, factories: EngineFactories | None = None) -> BodySizeLimit:
    """The app for ``settings``; models start loading when the app starts."""
    factories = factories or EngineFactories(student=student_factory(settings))
    metrics = ServiceMetrics()
    service = MatchingService(settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        tasks = [asyncio.create_task(service.load(factories))]
        if settings.heap_trim_interval_s > 0:
            trimming = trim_periodically(settings.heap_trim_interval_s, metrics.heap_trim)
            tasks.append(asyncio.create_task(trimming))
        if metrics.multiprocess:  # a scrape reaches one front end: the others keep their depths current
            tasks.append(asyncio.create_task(record_queue_depths_every(service, QUEUE_DEPTH_INTERVAL_S)))
        yield
        for task in tasks:
            task.cancel()
        await service.stop()

    handlers = error_handlers(metrics)
    app = FastAPI(title="FlipKD matching service", version="0.1.0", lifespan=lifespan,
                  description="Text matching by an LLM student distilled from a small teacher.",
                  exception_handlers=handlers)

    @app.post("/match", response_model=MatchResponse, tags=["matching"])
    async def match(body: MatchRequest) -> MatchResponse:
        """Score a pair, a list of pairs, or one query against candidates (ranked, optionally top-k)."""
        domain = service.domain(body.domain)
        pairs = match_pairs(body, settings)
        request_id = new_request_id()
        answer = await domain.match(pairs, request_id, body.request_key)
        return MatchResponse(request_id=request_id, served_by=answer.served_by,
                             fallback_reason=answer.fallback_reason, threshold=answer.threshold,
                             results=match_results(body, pairs, answer.similarities, answer.threshold))

    @app.post("/embed", response_model=EmbedResponse, tags=["embeddings"])
    async def embed(body: EmbedRequest) -> EmbedResponse:
        """LoRA-encoder embeddings (unit length), or the teacher's with ``"model": "teacher"``."""
        domain = service.domain(body.domain)
        answer = await domain.embed(bound_texts(body.texts, settings), body.model)
        return EmbedResponse(request_id=new_request_id(), served_by=answer.served_by,
                             dimension=answer.vectors.shape[1], embeddings=answer.vectors.round(6).tolist())

    @app.post("/v1/embeddings", response_model=OpenAIEmbeddingResponse, tags=["embeddings"])
    async def openai_embeddings(body: OpenAIEmbeddingRequest) -> OpenAIEmbeddingResponse:
        """The OpenAI embeddings shape (:mod:`flipkd.service.openai_embeddings`): texts only, float or
        base64, ``dimensions`` only the model's own; ``model`` is a domain or ``<domain>-teacher``."""
        texts = bound_texts(requested_texts(body), settings)
        name, model = requested_model(body, service)
        domain = service.domain(name)
        check_dimensions(body.dimensions, domain.dimension(model), model)
        answer = await domain.embed(texts, model)
        return embeddings_response(answer, model_name(name, model), body.encoding_format)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict:
        """The process is alive (models may still be loading)."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """200 once every domain's student is loaded and warmed up; each domain's engines and errors."""
        readiness = service.readiness()
        return JSONResponse(dataclasses.asdict(readiness), status_code=200 if readiness.ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics_route() -> Response:
        service.record_queue_depths()
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/info", tags=["operations"])
    async def info() -> dict:
        """Each domain's bundle, base model, encoder spec, thresholds and teacher, and the settings that
        shape answers."""
        return {
            "default_domain": service.default.name, "ready": service.ready,
            "domains": {name: domain_info(domain) for name, domain in service.domains.items()},
            "settings": settings.model_dump(mode="json", exclude={"api_key"}),
            "runtime": runtime_info(),
        }

    hot = {"/match": HotRoute(MatchRequest, match), "/embed": HotRoute(EmbedRequest, embed),
           "/v1/embeddings": HotRoute(OpenAIEmbeddingRequest, openai_embeddings)}
    app.add_middleware(HotRoutes, routes=hot, handlers=handlers)
    app.add_middleware(ObserveRequests, settings=settings, metrics=metrics)  # the outer of the two
    return BodySizeLimit(app, settings.max_body_bytes)
