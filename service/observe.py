"""ASGI middleware around every route: the API key check, then request count and duration by route and
status (``flipkd_requests_total``, ``flipkd_request_duration_seconds``).

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which builds a task group, memory streams
and events for every request (their event-loop cost is measured in docs/benchmarks.md). A request
whose app raises is counted as 500 (the server's error middleware answers it).
"""

from __future__ import annotations

import time

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flipkd.service.errors import error_response
from flipkd.service.limits import check_api_key
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.settings import Settings

ROUTES = frozenset({"/match", "/embed", "/v1/embeddings", "/healthz", "/readyz", "/metrics", "/info",
                    "/docs", "/openapi.json"})


class ObserveRequests:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: ServiceMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTES else "other"
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            try:
                check_api_key(self.settings, path, scope["headers"])
            except HTTPException as error:
                refusal = error_response(path, error.status_code, error.detail, error.headers)
                await refusal(scope, receive, observed_send)
                return
            await self.app(scope, receive, observed_send)
        finally:
            metrics = self.metrics
            metrics.series(metrics.requests, route, str(status)).inc()
            metrics.series(metrics.request_duration, route).observe(time.perf_counter() - started)
