"""Request bounds that need no model: body size (ASGI middleware), API key, texts and characters.

The body limit counts bytes as they arrive, so a chunked body without Content-Length is bounded too.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import HTTPException

from flipkd.service.errors import error_bytes
from flipkd.service.settings import Settings

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class BodySizeLimit:
    """ASGI middleware: 413 when a request body passes ``max_bytes`` (declared or streamed).

    The body is read up front (at most ``max_bytes`` + one chunk) and replayed to the app.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, replay([body], receive), send)

    async def _refuse(self, scope, send) -> None:
        body = error_bytes(scope["path"], 413, f"request body larger than {self.max_bytes} bytes")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def replay(messages: list[dict], receive):
    """A receive callable that returns ``messages`` first, then defers to ``receive``."""
    pending = list(messages)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer KEY`` header, the scheme in any case (RFC 9110)."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip(" ") or None) if scheme.lower() == "bearer" else None


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI servers give names) among raw ``headers``."""
    return next((value.decode("latin-1") for key, value in headers if key == name), None)


def check_api_key(settings: Settings, path: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
    """401 unless the key matches (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``), when one is set;
    ``headers`` are the request's raw ASGI headers."""
    if settings.api_key is None or path in OPEN_PATHS:
        return
    offered = header(headers, b"x-api-key") or bearer_token(header(headers, b"authorization"))
    if offered is None or not hmac.compare_digest(offered.encode(), settings.api_key.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong API key",
                            headers={"WWW-Authenticate": "Bearer"})


def bound_texts(texts: list[str], settings: Settings) -> list[str]:
    """413 past ``max_texts`` texts; overlong texts are truncated to ``max_text_chars`` or refused (413)."""
    if len(texts) > settings.max_texts:
        raise HTTPException(status_code=413,
                            detail=f"{len(texts)} texts in one request (limit {settings.max_texts})")
    bounded = []
    for index, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            if settings.overlong == "reject":
                raise HTTPException(status_code=413, detail=f"text {index} has {len(text)} characters "
                                                            f"(limit {settings.max_text_chars})")
            text = text[:settings.max_text_chars]
        bounded.append(text)
    return bounded
