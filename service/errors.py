"""The body of every refusal, in the shape its route's clients read.

The service's own routes answer ``{"error": message}`` (``"detail"`` beside it for a body that does not
validate). Routes under ``/v1/`` answer as the OpenAI API does, ``{"error": {"message", "type", "param",
"code"}}``, so the official clients raise their typed exceptions with ``.type`` and ``.code`` set.
"""

from __future__ import annotations

import json

from fastapi.responses import JSONResponse

OPENAI_PREFIX = "/v1/"

OPENAI_CODES = {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large",
                429: "overloaded", 503: "unavailable", 504: "deadline_exceeded"}
"""OpenAI-shaped ``code`` by status; other statuses carry ``code: null``."""


def openai_type(status: int) -> str:
    """OpenAI's error ``type``: ``rate_limit_error`` (429), ``server_error`` (5xx), else
    ``invalid_request_error``."""
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def field_name(loc: list) -> str:
    """A validation error's location in the body, dotted (``["body", "input", 0]`` -> ``input.0``)."""
    return ".".join(str(part) for part in loc if part != "body")


def error_body(path: str, status: int, message: str, detail: list[dict] | None = None) -> dict:
    """The refusal's JSON body for a request to ``path``; ``detail`` lists a body's validation errors
    (``loc``, ``msg``): beside the message on the service's routes, in it and in ``param`` on ``/v1/``."""
    if not path.startswith(OPENAI_PREFIX):
        return {"error": message} if detail is None else {"error": message, "detail": detail}
    param = None
    if detail:
        param = field_name(detail[0]["loc"]) or None
        message += ": " + "; ".join(f"{field_name(d['loc'])}: {d['msg']}" for d in detail)
    return {"error": {"message": message, "type": openai_type(status), "param": param,
                      "code": OPENAI_CODES.get(status)}}


def error_response(path: str, status: int, message: str, headers: dict[str, str] | None = None,
                   detail: list[dict] | None = None) -> JSONResponse:
    """:func:`error_body` as a JSON response with ``status`` and ``headers``."""
    return JSONResponse(error_body(path, status, message, detail), status_code=status, headers=headers)


def error_bytes(path: str, status: int, message: str) -> bytes:
    """:func:`error_body` serialised, for middleware that writes its own ASGI messages."""
    return json.dumps(error_body(path, status, message)).encode()
