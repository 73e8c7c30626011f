"""The HTTP service on a real uvicorn on loopback, with the suite's SmolLM2 bundle and ONNX teacher."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flipkd.models.bi_encoder import TeacherConfig
from flipkd.models.bundle import load_bundle
from flipkd.service.batched_engine import WARM_UP_TEXT
from flipkd.service.facade import EngineFactories
from flipkd.service.server import free_port, running_server, server_process
from flipkd.service.settings import Settings
from flipkd.service.torch_engine import StudentEngine

from .conftest import THREADS

pytestmark = pytest.mark.slow  # the suite's SmolLM2 bundle and ONNX teacher

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def settings_for(bundle: Path, teacher: Path, **extra) -> Settings:
    return Settings(bundles=[str(bundle)], teacher=teacher, port=free_port(), torch_threads=THREADS, **extra)


@pytest.fixture(scope="module")
def server(student_bundle, exported_teacher, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("shadow") / "disagreements.jsonl"
    settings = settings_for(student_bundle, exported_teacher, api_key=KEY, shadow_share=1.0, shadow_log=log,
                            max_texts=8, max_text_chars=200, overlong="reject", max_body_bytes=20_000,
                            heap_trim_interval_s=0.5)
    with running_server(settings) as base:
        yield base, log


def post(base: str, path: str, body, headers=AUTH) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=60)


def student_vectors(base: str, texts: list[str]) -> dict[str, np.ndarray]:
    body = post(base, "/embed", {"texts": texts}).json()
    return dict(zip(texts, np.array(body["embeddings"]), strict=True))


def test_match_pair_pairs_and_ranked_candidates(server, student_bundle):
    base, _ = server
    a, b = "Can I drink alcohol on antibiotics?", "Is it safe to drink beer while taking amoxicillin?"
    one = post(base, "/match", {"pair": {"text_a": a, "text_b": b}})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["served_by"] == "student" and body["fallback_reason"] is None
    assert len(body["request_id"]) == 32
    assert body["threshold"] == load_bundle(student_bundle).threshold
    (result,) = body["results"]
    vectors = student_vectors(base, [a, b])
    assert result["similarity"] == pytest.approx(float(vectors[a] @ vectors[b]), abs=1e-4)
    assert result["match"] == (result["similarity"] >= body["threshold"])

    pairs = [("a cold", "the flu"), ("knee pain", "a cold"), ("the flu", "knee pain")]
    many = post(base, "/match", {"pairs": [{"text_a": x, "text_b": y} for x, y in pairs]}).json()
    assert [(r["text_a"], r["text_b"]) for r in many["results"]] == pairs
    vectors = student_vectors(base, ["a cold", "the flu", "knee pain"])
    np.testing.assert_allclose([r["similarity"] for r in many["results"]],
                               [vectors[x] @ vectors[y] for x, y in pairs], atol=1e-4)

    candidates = ["knee pain while running", "stock prices", "running knee ache"]
    ranked = post(base, "/match", {"query": "my knee hurts when I run", "top_k": 2, "candidates": candidates})
    results = ranked.json()["results"]
    assert [r["rank"] for r in results] == [1, 2]
    assert results[0]["similarity"] >= results[1]["similarity"]


def test_embed_routes_return_unit_vectors(server):
    base, _ = server
    student = post(base, "/embed", {"texts": ["fever and cough", "fever and cough", "rash"]}).json()
    vectors = np.array(student["embeddings"])
    assert student["served_by"] == "student" and vectors.shape == (3, student["dimension"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(vectors[0], vectors[1])
    teacher = post(base, "/embed", {"texts": ["fever"], "model": "teacher"}).json()
    assert teacher["served_by"] == "teacher" and teacher["dimension"] == 384
    openai = post(base, "/v1/embeddings", {"input": ["fever", "rash", "fever"]}).json()
    vectors = student_vectors(base, ["fever", "rash"])
    np.testing.assert_allclose([d["embedding"] for d in openai["data"]],
                               [vectors["fever"], vectors["rash"], vectors["fever"]], atol=1e-5)
    tokens = {text: post(base, "/v1/embeddings", {"input": text}).json()["usage"]["prompt_tokens"]
              for text in ("fever", "rash")}
    assert openai["usage"]["prompt_tokens"] == 2 * tokens["fever"] + tokens["rash"]


def test_operations_routes(server, student_bundle):
    base, _ = server
    assert httpx.get(f"{base}/healthz").json() == {"status": "alive"}
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["ready"] and ready["domains"][student_bundle.name]["degraded"] == []
    info = httpx.get(f"{base}/info", headers=AUTH).json()
    assert info["default_domain"] == student_bundle.name and "api_key" not in info["settings"]
    assert info["domains"][student_bundle.name]["threshold"] == load_bundle(student_bundle).threshold
    runtime = info["runtime"]  # the server caps torch's per-shape primitive caches (memory under load)
    assert runtime["torch_threads"] == THREADS
    assert runtime["LRU_CACHE_CAPACITY"] == runtime["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    assert httpx.get(f"{base}/openapi.json", headers=AUTH).json()["paths"].keys() >= {"/match", "/embed"}
    assert httpx.get(f"{base}/docs", headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"pair": {"text_a": "", "text_b": "x"}}, 422, "invalid request body"),
        ({"pair": {"text_a": 5, "text_b": "x"}}, 422, "invalid request body"),
        ({"pairs": []}, 422, "invalid request body"),
        ({"query": "q"}, 422, "invalid request body"),
        ({"pair": {"text_a": "a", "text_b": "b"}, "top_k": 2}, 422, "invalid request body"),
        ({"pairs": [{"text_a": "a", "text_b": "b"}] * 5}, 413, "10 texts in one request"),
        ({"pair": {"text_a": "x" * 201, "text_b": "b"}}, 413, "text 0 has 201 characters"),
        ({"pair": {"text_a": "a", "text_b": "b"}, "domain": "elsewhere"}, 404, "unknown domain"),
        ({"unknown": 1}, 422, "invalid request body"),
        ([1, 2], 422, "invalid request body"),
    ],
)
def test_bad_match_bodies_get_a_4xx_with_a_message(server, body, status, message):
    base, _ = server
    response = post(base, "/match", body)
    assert response.status_code == status, response.text
    assert message in str(response.json())


def test_body_limit_and_api_key(server):
    base, _ = server
    big = post(base, "/embed", {"texts": ["x" * 100] * 300})
    assert big.status_code == 413 and "larger than 20000 bytes" in big.json()["error"]
    assert post(base, "/match", {"pair": {"text_a": "a", "text_b": "b"}}, headers={}).status_code == 401
    wrong = post(base, "/match", {"pair": {"text_a": "a", "text_b": "b"}}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{base}/metrics").status_code == 200  # open without the key
    headers = {**AUTH, "content-type": "application/json"}
    not_json = httpx.post(f"{base}/match", content=b"{oops", headers=headers)
    assert not_json.status_code == 422


def test_schemathesis_finds_no_server_error(server, tmp_path):
    """Property-based requests generated from the OpenAPI schema never get a 5xx."""
    base, _ = server
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/openapi.json",
               "--header", f"Authorization: Bearer {KEY}", "--checks", "not_a_server_error",
               "--max-examples", "25", "--seed", "7", "--workers", "1", "--request-timeout", "120",
               "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_metrics_parse_and_add_up_and_the_shadow_log_holds_the_disagreements(server, student_bundle,
                                                                                exported_teacher):
    base, log = server
    domain = ("domain", student_bundle.name)
    before = scrape(base)
    pairs = [("sore throat", "throat pain"), ("knee pain", "stock prices"), ("a rash on my arm", "skin rash")]
    answers = []
    for text_a, text_b in pairs:
        response = post(base, "/match", {"pair": {"text_a": text_a, "text_b": text_b}})
        assert response.status_code == 200
        answers.append(response.json())
    time.sleep(1.0)  # shadow scoring runs off the hot path
    after = scrape(base)
    served = after[("flipkd_served_total", (domain, ("model", "student")))] - \
        before.get(("flipkd_served_total", (domain, ("model", "student"))), 0)
    requests = after[("flipkd_requests_total", (("route", "/match"), ("status", "200")))] - \
        before.get(("flipkd_requests_total", (("route", "/match"), ("status", "200"))), 0)
    assert served == requests == 3
    shadowed = sum(v for (name, _), v in after.items() if name == "flipkd_shadow_pairs_total") - \
        sum(v for (name, _), v in before.items() if name == "flipkd_shadow_pairs_total")
    assert shadowed == 3
    disagreed = after.get(("flipkd_shadow_pairs_total", (("agreement", "disagree"), domain)), 0) - \
        before.get(("flipkd_shadow_pairs_total", (("agreement", "disagree"), domain)), 0)
    similarity = {body["request_id"]: body["results"][0]["similarity"] for body in answers}
    logged = [json.loads(line) for line in (log.read_text().splitlines() if log.exists() else [])]
    logged = [record for record in logged if record["request_id"] in similarity]
    assert len(logged) == disagreed
    student_threshold = load_bundle(student_bundle).threshold
    teacher_threshold = TeacherConfig.load(exported_teacher).threshold
    for record in logged:
        assert (record["text_a"], record["text_b"]) in pairs and record["domain"] == student_bundle.name
        assert record["student"] == pytest.approx(similarity[record["request_id"]], abs=1e-6)
        assert (record["student"] >= student_threshold) != (record["teacher"] >= teacher_threshold)
    assert after[("flipkd_ready", (domain, ("engine", "student")))] == 1.0
    assert any(name == "flipkd_batch_size_count" for name, _ in after)
    assert after[("flipkd_heap_trim_seconds_count", ())] > 0  # trimmed every 0.5 s
    assert after[("process_resident_memory_bytes", ())] > 100e6


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{base}/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


class FailingStudent(StudentEngine):
    """A real student whose every batch raises after warm-up, as a broken model would."""

    def embed_ids(self, ids):
        if not all(WARM_UP_TEXT in text for text in self.encoder.tokenizer.batch_decode(ids)):
            raise RuntimeError("student broke")
        return super().embed_ids(ids)


def test_failing_student_is_covered_by_the_teacher(student_bundle, exported_teacher):
    settings = settings_for(student_bundle, exported_teacher)
    series = ("flipkd_fallbacks_total", (("domain", student_bundle.name), ("reason", "error")))
    with running_server(settings, EngineFactories(student=FailingStudent)) as base:
        before = scrape(base).get(series, 0)
        response = post(base, "/match", {"pair": {"text_a": "fever", "text_b": "high temperature"}})
        assert response.status_code == 200
        body = response.json()
        assert body["served_by"] == "teacher" and body["fallback_reason"] == "error"
        after = scrape(base)[series]
        assert after - before == 1


def test_full_queue_answers_429_with_retry_after(student_bundle, exported_teacher):
    settings = settings_for(student_bundle, exported_teacher, max_queue=2, max_batch_size=1, cache_size=0,
                            fallback=False)

    async def flood(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            bodies = [{"texts": [f"distinct text number {i} about symptoms"]} for i in range(40)]
            return await asyncio.gather(*(client.post(f"{base}/embed", json=b) for b in bodies))

    with running_server(settings) as base:
        responses = asyncio.run(flood(base))
    statuses = [r.status_code for r in responses]
    assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1" and "overloaded" in refused.json()["error"]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_no_accepted_request(student_bundle, exported_teacher, workers, tmp_path):
    settings = settings_for(student_bundle, exported_teacher, cache_size=0, student_workers=workers,
                            max_batch_size=8)
    log = tmp_path / "server.log"
    with server_process(settings, log=log) as (base, process):  # `flipkd serve`, settings via FLIPKD_*
        served = httpx.get(f"{base}/info", timeout=30).json()["settings"]
        assert served["student_workers"] == workers and served["max_batch_size"] == 8

        async def load() -> list:
            async with httpx.AsyncClient(timeout=120) as client:
                async def one(i: int):
                    try:
                        return await client.post(f"{base}/match", json={"pair": {
                            "text_a": f"question {i} about a headache", "text_b": f"headache question {i}"}})
                    except httpx.TransportError as error:  # refused after shutdown began: never accepted
                        return error

                tasks = [asyncio.create_task(one(i)) for i in range(30)]
                await asyncio.sleep(0.3)
                process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        outcomes = asyncio.run(load())
        process.wait(timeout=120)
    answered = [o for o in outcomes if isinstance(o, httpx.Response)]
    assert answered, "no request was accepted before the signal"
    assert all(o.status_code == 200 for o in answered), [o.status_code for o in answered]
    assert all(isinstance(o, httpx.ConnectError) for o in outcomes if not isinstance(o, httpx.Response))
    # uvicorn finishes its graceful shutdown, then re-raises the captured SIGTERM
    assert process.returncode in (0, -signal.SIGTERM)
    output = log.read_text()
    assert "Application shutdown complete" in output, output[-2000:]
