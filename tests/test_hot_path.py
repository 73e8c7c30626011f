"""The cheap path of the hot routes (service/hot_routes.py): what it answers itself and what it passes on,
answers byte for byte equal to FastAPI's own on a real uvicorn with fake engines (a parameter in the
Content-Type sends a request down FastAPI's path), request ids, and the front-end benchmark's requests
against the instant engines of bench/instant_engine.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel
from starlette.responses import JSONResponse, PlainTextResponse

from flipkd.service.app import new_request_id
from flipkd.service.hot_routes import HotRoute, HotRoutes
from flipkd.service.limits import BodySizeLimit
from flipkd.service.server import free_port, running_server
from flipkd.service.settings import Settings

from .conftest import REPO, THREADS
from .fakes import FakeEngine, fake_factories

FASTAPI_PATH = {"Content-Type": "application/json; charset=utf-8"}


class Echo(BaseModel):
    text: str


class Refused(Exception):
    pass


async def echo(body: Echo) -> Echo:
    if body.text == "refuse":
        raise Refused
    if body.text == "crash":
        raise RuntimeError("unhandled")
    return Echo(text=body.text.upper())


def test_valid_bodies_are_answered_here_and_every_other_request_reaches_the_app_unchanged():
    reached: list[tuple[str, str, bytes]] = []

    async def app(scope, receive, send):
        reached.append((scope["method"], scope["path"], (await receive()).get("body", b"")))
        await PlainTextResponse("from the app")(scope, receive, send)

    async def refused(_request, _error) -> JSONResponse:
        return JSONResponse({"error": "refused"}, status_code=409)

    hot = HotRoutes(app, {"/echo": HotRoute(Echo, echo)}, {Refused: refused})
    transport = httpx.ASGITransport(app=BodySizeLimit(hot, 10_000))  # the body in one message, as served

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with pytest.raises(RuntimeError, match="unhandled"):  # no handler: left to the server
                await client.post("/echo", json={"text": "crash"})
            return [await client.post("/echo", json={"text": "hi"}),
                    await client.post("/echo", json={"text": "refuse"}),
                    await client.post("/echo", json={"text": 3}),
                    await client.post("/echo", content=b'{"text": "hi"}', headers=FASTAPI_PATH),
                    await client.post("/other", json={"text": "hi"}),
                    await client.get("/echo")]

    answered, refusal, *passed = asyncio.run(scenario())
    assert (answered.status_code, answered.content) == (200, b'{"text":"HI"}')
    assert answered.headers["content-type"] == "application/json"
    assert (refusal.status_code, refusal.json()) == (409, {"error": "refused"})
    assert all(response.text == "from the app" for response in passed)
    assert reached == [("POST", "/echo", b'{"text":3}'), ("POST", "/echo", b'{"text": "hi"}'),
                       ("POST", "/other", b'{"text":"hi"}'), ("GET", "/echo", b"")]


REQUESTS = [
    ("/match", {"pair": {"text_a": "fever", "text_b": "a high temperature"}}),
    ("/match", {"pairs": [{"text_a": "a cold", "text_b": "the flu"},
                          {"text_a": "the flu", "text_b": "花呗怎么还款"}]}),
    ("/match", {"query": "my knee hurts", "candidates": ["knee pain", "stocks", "a cold"], "top_k": 2}),
    ("/embed", {"texts": ["fever", "rash", "fever"]}),
    ("/v1/embeddings", {"input": ["fever", "rash"]}),
    ("/v1/embeddings", {"input": "rash", "encoding_format": "base64", "model": "teacher"}),
    ("/match", {"pair": {"text_a": "a", "text_b": "b"}, "domain": "elsewhere"}),  # 404
    ("/embed", {"texts": ["one", "two", "three", "four"]}),  # 413: past max_texts
    ("/match", {"pair": {"text_a": "", "text_b": "b"}}),  # 422: the hot path passes it on
    ("/v1/embeddings", {"input": [1, 2, 3]}),  # 400: token ids
]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[httpx.Client]:
    """A client of the service with fake engines, at most 3 texts a request."""
    settings = Settings(teacher=tmp_path_factory.mktemp("teacher"), port=free_port(), torch_threads=THREADS,
                        max_texts=3, heap_trim_interval_s=0)
    factories = fake_factories(FakeEngine("student", dim=16), FakeEngine("teacher", dim=12, threshold=0.3))
    with running_server(settings, factories) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


@pytest.mark.parametrize(("path", "body"), REQUESTS, ids=lambda value: str(value)[:40])
def test_the_hot_path_answers_byte_for_byte_as_fastapi(client, path, body):
    hot = client.post(path, json=body)
    plain = client.post(path, json=body, headers=FASTAPI_PATH)
    assert hot.status_code == plain.status_code
    assert hot.headers["content-type"] == plain.headers["content-type"]
    request_id = hot.json().get("request_id") if hot.status_code == 200 else None
    if request_id is not None:  # random: the other answer's id is put in its place
        assert plain.content.replace(plain.json()["request_id"].encode(), request_id.encode()) == hot.content
    else:
        assert plain.content == hot.content


def test_request_ids_are_uuid4_in_hex():
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(uuid.UUID(hex=value).version == 4 and uuid.UUID(hex=value).hex == value for value in ids)


def test_the_front_end_benchmarks_requests_get_answers_from_the_instant_engines(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    from frontend_ceiling import API_KEY, DIM, ENDPOINTS, closed_loop, encoded
    from instant_engine import instant_factories
    from tqdm import tqdm

    settings = Settings(api_key=API_KEY, teacher=tmp_path / "teacher", port=free_port(),
                        torch_threads=THREADS, heap_trim_interval_s=0)
    with running_server(settings, instant_factories(DIM)) as base, tqdm(disable=True) as progress:
        loads = {name: asyncio.run(closed_loop(base + path, encoded(make, 0, 8), 4, progress))
                 for name, (path, make) in ENDPOINTS.items()}
    assert {name: load["statuses"] for name, load in loads.items()} == {name: {200: 8} for name in ENDPOINTS}
