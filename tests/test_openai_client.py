"""The official ``openai`` client against ``/v1/embeddings`` on a real uvicorn on loopback with fake engines
(tests/fakes.py): base64 (its default) and float answers equal to ``/embed``'s vectors in input order,
``dimensions``, token ids refused, OpenAI-shaped refusals, and the API key with the bearer scheme in any
case."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest

from flipkd.service.server import free_port, running_server
from flipkd.service.settings import Settings

from .conftest import THREADS
from .fakes import FakeEngine, fake_factories

KEY = "test-key"
TEXTS = ["fever", "a rash on my arm", "花呗怎么还款", "fever"]


def serve(tmp_path_factory: pytest.TempPathFactory, api_key: str | None = None) -> Iterator[str]:
    """The base URL of the service with a fake student (16 wide) and teacher (12 wide), once ready."""
    settings = Settings(teacher=tmp_path_factory.mktemp("teacher"), port=free_port(), torch_threads=THREADS,
                        heap_trim_interval_s=0, api_key=api_key)
    factories = fake_factories(FakeEngine("student", dim=16), FakeEngine("teacher", dim=12, threshold=0.3))
    with running_server(settings, factories) as base:
        yield base


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    yield from serve(tmp_path_factory)


@pytest.fixture(scope="module")
def keyed_base(tmp_path_factory) -> Iterator[str]:
    yield from serve(tmp_path_factory, api_key=KEY)


def client_of(base: str, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=api_key, max_retries=0)


def embed(base: str, texts: list[str], model: str = "student", headers: dict | None = None) -> np.ndarray:
    """``/embed``'s vectors of ``texts``."""
    response = httpx.post(f"{base}/embed", json={"texts": texts, "model": model}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return np.array(response.json()["embeddings"])


def vectors(answer) -> np.ndarray:
    assert [d.index for d in answer.data] == list(range(len(answer.data)))
    return np.array([d.embedding for d in answer.data])


def test_the_default_client_gets_base64_vectors_equal_to_embeds(base):
    raw = client_of(base).embeddings.with_raw_response.create(model="atec", input=TEXTS, user="someone")
    answer = raw.parse()
    assert json.loads(raw.http_request.content)["encoding_format"] == "base64"
    assert all(isinstance(d["embedding"], str) for d in raw.http_response.json()["data"])
    np.testing.assert_allclose(vectors(answer), embed(base, TEXTS), atol=1e-6)
    assert answer.model == "atec"
    assert answer.usage.prompt_tokens > 0 and answer.usage.total_tokens == answer.usage.prompt_tokens


def test_float_and_explicit_base64_answer_in_the_format_asked(base):
    client = client_of(base)
    floats = client.embeddings.create(model="atec", input=TEXTS, encoding_format="float")
    packed = client.embeddings.create(model="teacher", input=TEXTS, encoding_format="base64")
    one = client.embeddings.create(model="atec", input="fever", encoding_format="float")
    assert all(isinstance(d.embedding, list) for d in floats.data)
    np.testing.assert_allclose(vectors(floats), embed(base, TEXTS), atol=1e-6)
    decoded = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in packed.data]
    assert packed.model == "atec-teacher"
    np.testing.assert_allclose(np.stack(decoded), embed(base, TEXTS, "teacher"), atol=1e-6)
    np.testing.assert_allclose(vectors(one), embed(base, ["fever"]), atol=1e-6)
    assert floats.usage.prompt_tokens > one.usage.prompt_tokens > 0


def test_dimensions_is_served_only_at_the_models_own(base):
    client = client_of(base)
    student = client.embeddings.create(model="atec", input=TEXTS, dimensions=16)
    teacher = client.embeddings.create(model="teacher", input=TEXTS, dimensions=12)
    assert vectors(student).shape == (len(TEXTS), 16) and vectors(teacher).shape == (len(TEXTS), 12)
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="atec", input=TEXTS, dimensions=8)
    assert refused.value.status_code == 400 and refused.value.type == "invalid_request_error"
    message = refused.value.body["message"]
    assert message.startswith("dimensions must be 16, the student's embedding dimension")
    assert "not trained to be truncated" in message
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="teacher", input=TEXTS, dimensions=16)
    assert refused.value.body["message"].startswith("dimensions must be 12, the teacher's")


@pytest.mark.parametrize("token_ids", [[101, 2023, 102], [[101, 2023], [102]]])
def test_token_id_input_is_refused_with_a_message(base, token_ids):
    with pytest.raises(openai.BadRequestError) as refused:
        client_of(base).embeddings.create(model="atec", input=token_ids)
    response = httpx.post(f"{base}/v1/embeddings", json={"input": token_ids}, timeout=30)
    message = "token-id input is not supported: token ids depend on the tokenizer that made them; send the " \
              "texts instead"
    assert refused.value.body["message"] == message  # the client's exception keeps the body's "error"
    assert response.status_code == 400
    assert response.json() == {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                         "code": None}}


def test_refusals_have_openai_shape_and_typed_client_exceptions(base):
    client = client_of(base)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.embeddings.create(model="no-such-domain", input=TEXTS)
    assert unknown.value.code == "model_not_found" and "no-such-domain" in unknown.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.embeddings.create(model="atec", input=TEXTS, encoding_format="bits")  # type: ignore[arg-type]
    assert invalid.value.param == "encoding_format" and invalid.value.type == "invalid_request_error"
    assert invalid.value.body["message"].startswith("invalid request body: encoding_format: ")
    oversized = httpx.post(f"{base}/v1/embeddings", json={"input": ["x" * 2_000_000]}, timeout=30)
    assert oversized.status_code == 413 and oversized.json()["error"]["code"] == "request_too_large"
    plain = httpx.post(f"{base}/embed", json={"texts": ["fever"], "domain": "no-such-domain"}, timeout=30)
    assert plain.status_code == 404 and isinstance(plain.json()["error"], str)  # the service's own shape


def test_with_an_api_key_the_bearer_scheme_is_case_insensitive(keyed_base):
    answer = client_of(keyed_base, KEY).embeddings.create(model="atec", input=TEXTS)
    expected = embed(keyed_base, TEXTS, headers={"X-API-Key": KEY})
    np.testing.assert_allclose(vectors(answer), expected, atol=1e-6)
    lower = httpx.post(f"{keyed_base}/v1/embeddings", json={"input": TEXTS, "encoding_format": "float"},
                       headers={"authorization": f"bearer {KEY}"}, timeout=30)
    assert lower.status_code == 200, lower.text
    np.testing.assert_allclose([d["embedding"] for d in lower.json()["data"]], expected, atol=1e-6)
    with pytest.raises(openai.AuthenticationError) as refused:
        client_of(keyed_base, "wrong").embeddings.create(model="atec", input=TEXTS)
    assert refused.value.code == "invalid_api_key"
    for header in ("bearer wrong", f"Basic {KEY}", KEY):
        wrong = httpx.post(f"{keyed_base}/v1/embeddings", json={"input": TEXTS},
                           headers={"authorization": header}, timeout=30)
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "missing or wrong API key"
