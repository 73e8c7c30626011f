"""ASGI middleware that answers the hot routes' well-formed requests without FastAPI's per-request
machinery (route matching, dependency solving, exit stacks, response re-validation): for a one-pair
/match that machinery cost more event-loop CPU than the rest of the request (docs/benchmarks.md,
"Front-end ceiling").

A ``POST`` to a hot route with ``Content-Type: application/json`` whose body the route's request model
validates (``model_validate_json``) is answered by the route's endpoint function, the one FastAPI calls
too, and serialised by its response model (the bytes FastAPI writes for it). The endpoint's exceptions go
to the app's exception handlers, as in FastAPI. Every other request, one that does not validate
included, goes on to the app with its body replayed, so FastAPI answers it as it always has (error
bodies included); the routes stay registered with FastAPI, which documents them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flipkd.service.limits import replay

ErrorHandler = Callable[[Request, Any], Awaitable[Response]]


@dataclass(frozen=True)
class HotRoute:
    """A JSON ``POST`` route: its request model and the endpoint that answers a validated one."""

    request: type[BaseModel]
    endpoint: Callable[[Any], Awaitable[BaseModel]]


def is_plain_json(scope: Scope) -> bool:
    """The request says ``Content-Type: application/json`` (no parameters)."""
    return any(name == b"content-type" and value == b"application/json" for name, value in scope["headers"])


def validated(route: HotRoute, message: Message) -> BaseModel | None:
    """The route's request model of a whole body (BodySizeLimit sends one message) that validates."""
    if message["type"] != "http.request" or message.get("more_body", False):
        return None
    try:
        return route.request.model_validate_json(message.get("body", b""))
    except ValidationError:
        return None


class HotRoutes:
    """``routes`` by path, answered here when they can be; ``handlers`` map exception types to answers
    (the app's own, looked up along the exception's MRO as Starlette does)."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, HotRoute],
                 handlers: Mapping[type[Exception], ErrorHandler]) -> None:
        self.app = app
        self.routes = routes
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST" or not is_plain_json(scope):
            await self.app(scope, receive, send)
            return
        message = await receive()
        request = validated(route, message)
        if request is None:
            await self.app(scope, replay([message], receive), send)
            return
        try:
            body = (await route.endpoint(request)).model_dump_json().encode()
        except Exception as error:
            handler = next((self.handlers[kind] for kind in type(error).__mro__ if kind in self.handlers),
                           None)
            if handler is None:
                raise
            await (await handler(Request(scope, receive), error))(scope, receive, send)
            return
        # the messages, and headers in order, that Starlette's Response(body, media_type=...) sends
        headers = [(b"content-length", str(len(body)).encode("latin-1")),
                   (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
