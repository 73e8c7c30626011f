"""Which model answers, on a real uvicorn on loopback with fake engines (tests/fakes.py): A/B by key, the
deadline and its fallback, a failing student, readiness, the shadow log, and the answers' shapes."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flipkd.models import teacher_cache
from flipkd.models.bundle import DEFAULT_BUNDLE, SHIPPED_BUNDLES, TEACHER_DIR, load_bundle, write_manifest
from flipkd.service.facade import EngineFactories, MatchingService
from flipkd.service.metrics import ServiceMetrics
from flipkd.service.server import free_port, running_server
from flipkd.service.settings import Settings

from .conftest import THREADS
from .fakes import FakeEngine, fake_adapter_teacher, fake_factories

STUDENT_THRESHOLD = load_bundle(DEFAULT_BUNDLE).threshold


def without_teacher(bundle: Path, out: Path) -> Path:
    """A copy of ``bundle`` (same folder name) with no teacher to find: none carried, none recorded."""
    out = out / bundle.name
    shutil.copytree(bundle, out, ignore=shutil.ignore_patterns(TEACHER_DIR))
    manifest = load_bundle(out, verify=False).manifest
    write_manifest(out, {key: value for key, value in manifest.items() if key != "files"} | {"teacher": None})
    return out


def settings_for(tmp_path: Path, **extra) -> Settings:
    """The shipped bundle with a teacher folder the fake teacher stands in for."""
    return Settings(teacher=tmp_path / "teacher", port=free_port(), torch_threads=THREADS,
                    heap_trim_interval_s=0, **extra)


@contextmanager
def serving(settings: Settings, student: FakeEngine, teacher: FakeEngine,
            student_gate: threading.Event | None = None, until_ready: bool = True) -> Iterator[httpx.Client]:
    """A client of the running service, once it is ready (alive, when ``until_ready`` is False); the
    student's factory waits for ``student_gate``, which is opened before the service stops."""
    factories = fake_factories(student, teacher, student_gate)
    with running_server(settings, factories, until_ready=until_ready) as base:
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                yield client
        finally:
            if student_gate is not None:
                student_gate.set()


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for work the service does in the background."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the service did not get there in time"
        time.sleep(0.05)


def metric(client: httpx.Client, name: str, domain: str = "atec", **labels: str) -> float:
    """One sample of ``domain``'s /metrics (0 when absent)."""
    labels = {"domain": domain, **labels}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def cosine(engine: FakeEngine, a: str, b: str) -> float:
    return float(engine.vector(a) @ engine.vector(b))


def expected_arm(key: str, share: float) -> str:
    """The documented assignment: the teacher when sha256(key)'s first 8 bytes / 2^64 < share."""
    return "teacher" if int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 < share \
        else "student"


def pair(a: str, b: str, **extra) -> dict:
    return {"pair": {"text_a": a, "text_b": b}, **extra}


@pytest.fixture
def student() -> FakeEngine:
    return FakeEngine("student", dim=16)


@pytest.fixture
def teacher() -> FakeEngine:
    return FakeEngine("teacher", dim=12, threshold=0.3)


def test_match_answers_with_the_students_similarities(tmp_path, student, teacher):
    with serving(settings_for(tmp_path), student, teacher) as client:
        one = client.post("/match", json=pair("Can I drink on antibiotics?", "Is alcohol safe with it?"))
        many = client.post("/match", json={"pairs": [{"text_a": "a cold", "text_b": "the flu"},
                                                     {"text_a": "the flu", "text_b": "knee pain"},
                                                     {"text_a": "knee pain", "text_b": "a cold"}]})
        candidates = ["knee pain while running", "stock prices", "running knee ache", "a cold"]
        ranked = client.post("/match", json={"query": "my knee hurts", "candidates": candidates, "top_k": 3})
    body = one.json()
    assert one.status_code == 200 and body["served_by"] == "student" and body["fallback_reason"] is None
    assert body["threshold"] == pytest.approx(STUDENT_THRESHOLD)
    (result,) = body["results"]
    expected = cosine(student, result["text_a"], result["text_b"])
    assert result["similarity"] == pytest.approx(expected, abs=1e-6)
    assert result["match"] == (result["similarity"] >= STUDENT_THRESHOLD)
    similarities = [r["similarity"] for r in many.json()["results"]]
    expected = [cosine(student, a, b) for a, b in [("a cold", "the flu"), ("the flu", "knee pain"),
                                                   ("knee pain", "a cold")]]
    np.testing.assert_allclose(similarities, expected, atol=1e-6)
    best_first = sorted(candidates, key=lambda c: -cosine(student, "my knee hurts", c))[:3]
    assert [(r["text_b"], r["rank"]) for r in ranked.json()["results"]] == list(zip(best_first, [1, 2, 3],
                                                                                        strict=True))


def test_embed_routes_return_the_chosen_models_vectors(tmp_path, student, teacher):
    texts = ["fever", "rash", "fever"]
    with serving(settings_for(tmp_path), student, teacher) as client:
        by_student = client.post("/embed", json={"texts": texts}).json()
        by_teacher = client.post("/embed", json={"texts": texts, "model": "teacher", "domain": "atec"}).json()
        elsewhere = client.post("/embed", json={"texts": texts, "domain": "elsewhere"})
        openai = client.post("/v1/embeddings", json={"input": ["fever", "rash", "fever"]}).json()
        openai_teacher = client.post("/v1/embeddings", json={"input": "rash", "model": "teacher"}).json()
    for body, engine in ((by_student, student), (by_teacher, teacher)):
        assert body["served_by"] == engine.name and body["dimension"] == engine.dim
        np.testing.assert_allclose(body["embeddings"], [engine.vector(t) for t in texts], atol=1e-6)
    assert elsewhere.status_code == 404
    assert elsewhere.json() == {"error": "unknown domain 'elsewhere'; loaded: 'atec'"}
    assert openai["model"] == "atec"
    np.testing.assert_allclose([d["embedding"] for d in openai["data"]],
                               [student.vector(t) for t in ("fever", "rash", "fever")], atol=1e-6)
    tokens = len("fever") + len("rash") + len("fever")  # the fakes' tokens are bytes
    assert openai["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert openai_teacher["model"] == "atec-teacher"
    np.testing.assert_allclose(openai_teacher["data"][0]["embedding"], teacher.vector("rash"), atol=1e-6)


def test_ab_share_of_keys_goes_to_the_teacher_and_a_key_keeps_its_arm(tmp_path, student, teacher):
    share, keys = 0.25, [f"client-{i}" for i in range(120)]
    expected = [expected_arm(key, share) for key in keys]
    assert 10 < expected.count("teacher") < 50
    with serving(settings_for(tmp_path, ab_share=share), student, teacher) as client:
        served = [client.post("/match", json=pair("card fees", "annual fee", request_key=key)).json()
                  for key in keys]
        again = [client.post("/match", json=pair("refund", "money back", request_key=key)).json()["served_by"]
                 for key in keys[:40]]
        unkeyed = [client.post("/match", json=pair("refund", "money back")).json() for _ in range(20)]
        assignments = metric(client, "flipkd_ab_assignments_total", arm="teacher")
    assert [body["served_by"] for body in served] == expected
    assert again == expected[:40]
    assert [body["served_by"] for body in unkeyed] == [expected_arm(b["request_id"], share) for b in unkeyed]
    assert assignments == sum(arm == "teacher" for arm in expected + expected[:40]) + \
        sum(body["served_by"] == "teacher" for body in unkeyed)
    for body in served:
        engine = teacher if body["served_by"] == "teacher" else student
        assert body["fallback_reason"] is None
        threshold = teacher.threshold if engine is teacher else STUDENT_THRESHOLD
        assert body["threshold"] == pytest.approx(threshold)
        assert body["results"][0]["similarity"] == pytest.approx(cosine(engine, "card fees", "annual fee"),
                                                                 abs=1e-6)


@pytest.mark.parametrize(("trouble", "reason", "fallback", "status", "error"), [
    ("late", "deadline", True, 200, None),
    ("late", "deadline", False, 504, "student missed its 0.5 s deadline"),
    ("failing", "error", True, 200, None),
    ("failing", "error", False, 503, "unavailable: student_error"),
])
def test_a_late_or_failing_student(tmp_path, student, teacher, trouble, reason, fallback, status, error):
    settings = settings_for(tmp_path, deadline_s=0.5, fallback=fallback)  # the first answer has slack
    with serving(settings, student, teacher) as client:
        before = client.post("/match", json=pair("fever", "high temperature")).json()
        if trouble == "late":
            student.delay_s = 1.0
        else:
            student.failing = True
        response = client.post("/match", json=pair("fever", "a rash"))
        fallbacks = metric(client, "flipkd_fallbacks_total", reason=reason)
    assert before["served_by"] == "student"
    assert response.status_code == status, response.text
    assert fallbacks == (1 if fallback else 0)
    if error is not None:
        assert response.json() == {"error": error}
        assert response.headers.get("Retry-After") == ("1" if status == 503 else None)
        return
    body = response.json()
    assert (body["served_by"], body["fallback_reason"]) == ("teacher", reason)
    assert body["threshold"] == teacher.threshold
    assert body["results"][0]["similarity"] == pytest.approx(cosine(teacher, "fever", "a rash"), abs=1e-6)


@pytest.mark.parametrize("fallback", [False, True])
def test_while_the_student_loads_the_service_answers_503_or_falls_back(tmp_path, student, teacher, fallback):
    gate = threading.Event()
    settings = settings_for(tmp_path, fallback=fallback)
    with serving(settings, student, teacher, gate, until_ready=False) as client:
        assert client.get("/healthz").status_code == 200
        until(lambda: client.get("/readyz").json()["domains"]["atec"]["teacher"])  # the student waits
        readiness = client.get("/readyz")
        match = client.post("/match", json=pair("fever", "a rash"))
        embed = client.post("/embed", json={"texts": ["fever"]})
        gate.set()
        until(lambda: client.get("/readyz").status_code == 200)
        served = client.post("/match", json=pair("fever", "a rash")).json()["served_by"]
    assert readiness.status_code == 503
    assert readiness.json() == {"ready": False, "default_domain": "atec", "domains": {"atec": {
        "student": False, "teacher": True, "degraded": ["student"], "load_errors": {}}}}
    assert embed.status_code == 503 and embed.json() == {"error": "unavailable: student_not_ready"}
    if fallback:
        assert match.status_code == 200
        assert (match.json()["served_by"], match.json()["fallback_reason"]) == ("teacher", "not_ready")
    else:
        assert match.status_code == 503 and match.headers["Retry-After"] == "1"
        assert match.json() == {"error": "unavailable: student_not_ready"}
    assert served == "student"


def test_a_student_that_fails_to_load_leaves_the_teacher_answering(tmp_path, teacher):
    broken = FakeEngine("student", failing=True)  # fails its warm-up
    with serving(settings_for(tmp_path), broken, teacher, until_ready=False) as client:
        until(lambda: client.get("/readyz").json()["domains"]["atec"]["load_errors"])
        readiness = client.get("/readyz").json()["domains"]["atec"]
        match = client.post("/match", json=pair("fever", "a rash")).json()
    assert readiness["load_errors"] == {"student": "RuntimeError: fake student failed"}
    assert readiness["degraded"] == ["student"]
    assert (match["served_by"], match["fallback_reason"]) == ("teacher", "not_ready")


def test_an_adapter_teacher_exports_in_the_background_while_the_student_serves(tmp_path, monkeypatch,
                                                                                 student, teacher):
    adapter = fake_adapter_teacher(tmp_path / "adapter-teacher")
    exported, loaded_from, gate = tmp_path / "exported", [], threading.Event()

    def slow_export(folder: Path) -> Path:  # stands in for minutes of ONNX export, off the event loop
        assert folder == adapter
        gate.wait()
        return exported

    def make_teacher(folder: Path, _threads: int) -> FakeEngine:
        loaded_from.append(folder)
        return teacher

    monkeypatch.setattr(teacher_cache, "ensure_exported", slow_export)
    factories = EngineFactories(student=lambda _bundle: student, teacher=make_teacher)
    settings = settings_for(tmp_path).model_copy(update={"teacher": adapter})
    with running_server(settings, factories, until_ready=False) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        try:
            until(lambda: client.get("/readyz").status_code == 200)  # ready: the student serves
            exporting = client.get("/readyz").json()["domains"]["atec"]
            served = client.post("/match", json=pair("fever", "a rash")).json()["served_by"]
        finally:
            gate.set()
        until(lambda: client.get("/readyz").json()["domains"]["atec"]["teacher"])
    assert exporting == {"student": True, "teacher": False, "degraded": ["teacher"], "load_errors": {}}
    assert served == "student" and loaded_from == [exported]


def test_shadow_scoring_counts_agreement_and_logs_each_disagreement(tmp_path, student):
    teacher = FakeEngine("teacher", threshold=-1.0)  # calls every pair a match
    log = tmp_path / "shadow.jsonl"
    pairs = [("sore throat", "throat pain"), ("knee pain", "knee pain"), ("fever", "rash")]
    student_scores = [cosine(student, a, b) for a, b in pairs]
    assert [s >= STUDENT_THRESHOLD for s in student_scores] == [False, True, False]  # so 0 and 2 disagree
    settings = settings_for(tmp_path, shadow_share=1.0, shadow_log=log)
    with serving(settings, student, teacher) as client:
        body = client.post("/match", json={"pairs": [{"text_a": a, "text_b": b} for a, b in pairs]}).json()
        until(lambda: log.exists() and log.read_text().count("\n") == 2)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        agreeing = client.post("/match", json=pair("knee pain", "knee pain")).json()
        until(lambda: metric(client, "flipkd_shadow_pairs_total", agreement="agree") == 2)
        counts = {agreement: metric(client, "flipkd_shadow_pairs_total", agreement=agreement)
                  for agreement in ("agree", "disagree")}
        gaps = metric(client, "flipkd_shadow_score_gap_count")
    assert body["served_by"] == agreeing["served_by"] == "student"
    assert counts == {"agree": 2, "disagree": 2} and gaps == 4
    assert log.read_text().count("\n") == 2  # the agreeing request added no line
    assert [(r["request_id"], r["text_a"], r["text_b"]) for r in records] == \
        [(body["request_id"], *pairs[0]), (body["request_id"], *pairs[2])]
    for record, index in zip(records, (0, 2), strict=True):
        assert record["student"] == pytest.approx(student_scores[index], abs=1e-6)
        assert record["teacher"] == pytest.approx(cosine(teacher, *pairs[index]), abs=1e-6)


def test_two_domains_each_answer_with_their_own_student_threshold_and_teacher(tmp_path, monkeypatch, teacher):
    monkeypatch.chdir(tmp_path)  # the MQP bundle's training-time teacher path must not resolve here
    students = {"atec": FakeEngine("student", seed="atec"), "mqp": FakeEngine("student", seed="mqp")}
    thresholds = {name: load_bundle(SHIPPED_BUNDLES / name).threshold for name in students}
    mqp = without_teacher(SHIPPED_BUNDLES / "mqp", tmp_path / "copy")  # a domain with no teacher at all
    settings = settings_for(tmp_path, bundles=["atec", str(mqp)], fallback=True)
    with serving(settings, students, teacher) as client:
        answers = {name: client.post("/match", json=pair("fever", "a rash", domain=name)).json()
                   for name in students}
        default = client.post("/match", json=pair("fever", "a rash")).json()
        unknown = client.post("/match", json=pair("fever", "a rash", domain="legal"))
        mqp_vectors = client.post("/v1/embeddings", json={"input": ["fever"], "model": "mqp"}).json()
        no_teacher = client.post("/v1/embeddings", json={"input": ["fever"], "model": "mqp-teacher"})
        no_teacher_embed = client.post("/embed", json={"texts": ["fever"], "model": "teacher",
                                                       "domain": "mqp"})
        mistyped = client.post("/v1/embeddings", json={"input": ["fever"], "model": "mpq"})
        readiness = client.get("/readyz").json()
        info = client.get("/info").json()
        students["atec"].failing = True  # one domain's student breaks: the other is untouched
        atec_broken = client.post("/match", json=pair("fever", "a cough", domain="atec")).json()
        mqp_after = client.post("/match", json=pair("fever", "a cough", domain="mqp")).json()
        served = {name: metric(client, "flipkd_served_total", domain=name, model="student")
                  for name in students}
        fallbacks = {name: metric(client, "flipkd_fallbacks_total", domain=name, reason="error")
                     for name in students}
    for name, body in answers.items():
        assert body["served_by"] == "student" and body["threshold"] == pytest.approx(thresholds[name])
        assert body["results"][0]["similarity"] == pytest.approx(cosine(students[name], "fever", "a rash"),
                                                                 abs=1e-6)
    assert thresholds["atec"] != pytest.approx(thresholds["mqp"])
    assert default == {**answers["atec"], "request_id": default["request_id"]}
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown domain 'legal'; loaded: 'atec', 'mqp'"}
    assert mqp_vectors["model"] == "mqp"
    np.testing.assert_allclose(mqp_vectors["data"][0]["embedding"], students["mqp"].vector("fever"),
                               atol=1e-6)
    assert (no_teacher.status_code, no_teacher_embed.status_code, mistyped.status_code) == (404, 404, 404)
    assert no_teacher_embed.json() == {"error": "domain 'mqp' has no teacher configured"}
    assert no_teacher.json()["error"]["message"] == "domain 'mqp' has no teacher configured"
    assert mistyped.json()["error"] == {
        "message": "unknown model 'mpq'; served: 'atec', 'atec-teacher', 'mqp', 'mqp-teacher'",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}
    assert readiness == {"ready": True, "default_domain": "atec", "domains": {
        "atec": {"student": True, "teacher": True, "degraded": [], "load_errors": {}},
        "mqp": {"student": True, "teacher": None, "degraded": [], "load_errors": {}}}}
    assert info["default_domain"] == "atec" and list(info["domains"]) == ["atec", "mqp"]
    assert info["domains"]["mqp"]["threshold"] == pytest.approx(thresholds["mqp"])
    assert (atec_broken["served_by"], atec_broken["fallback_reason"]) == ("teacher", "error")
    assert mqp_after["served_by"] == "student"
    assert mqp_after["results"][0]["similarity"] == pytest.approx(cosine(students["mqp"], "fever", "a cough"),
                                                                  abs=1e-6)
    assert served == {"atec": 2, "mqp": 3} and fallbacks == {"atec": 1, "mqp": 0}


def test_teachers_switched_off_leave_every_domain_to_its_student(tmp_path, student, teacher):
    settings = settings_for(tmp_path, bundles=["atec", "mqp"], teacher_enabled=False, fallback=True,
                            shadow_share=1.0)
    assert load_bundle(SHIPPED_BUNDLES / "mqp").teacher_dir is not None  # carried, and still not attached
    with serving(settings, student, teacher) as client:
        readiness = client.get("/readyz").json()
        answer = client.post("/match", json=pair("fever", "a rash", domain="mqp")).json()
        asked = client.post("/v1/embeddings", json={"input": ["fever"], "model": "mqp-teacher"})
    assert {name: domain["teacher"] for name, domain in readiness["domains"].items()} == \
        {"atec": None, "mqp": None}
    assert answer["served_by"] == "student"
    assert asked.status_code == 404 and "no teacher configured" in asked.json()["error"]["message"]


def test_bundles_with_one_name_are_refused_at_start(tmp_path):
    copy = tmp_path / "atec"
    shutil.copytree(SHIPPED_BUNDLES / "atec", copy)
    with pytest.raises(ValueError, match="distinct folder names.*repeated: atec"):
        MatchingService(settings_for(tmp_path, bundles=["atec", str(copy)]), ServiceMetrics())


def test_a_missing_teacher_leaves_the_service_ready_and_attaches_when_it_appears(tmp_path, student, teacher):
    teacher_folder = tmp_path / "teacher"

    def make_teacher(folder: Path, _threads: int) -> FakeEngine:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist")
        return teacher

    factories = EngineFactories(student=lambda _bundle: student, teacher=make_teacher)
    settings = settings_for(tmp_path, teacher_retry_s=0.1, ab_share=1.0)
    with running_server(settings, factories) as base, httpx.Client(base_url=base, timeout=30) as client:
        until(lambda: client.get("/readyz").json()["domains"]["atec"]["load_errors"])
        waiting = client.get("/readyz")
        before = client.post("/match", json=pair("fever", "a rash")).json()
        teacher_folder.mkdir()
        until(lambda: client.get("/readyz").json()["domains"]["atec"]["teacher"])
        after = client.post("/match", json=pair("fever", "a rash")).json()
        attached = client.get("/readyz").json()["domains"]["atec"]
    assert waiting.status_code == 200
    assert waiting.json()["domains"]["atec"] == {
        "student": True, "teacher": False, "degraded": ["teacher"],
        "load_errors": {"teacher": f"FileNotFoundError: {teacher_folder} does not exist"}}
    assert before["served_by"] == "student"  # A/B is off while the teacher is missing
    assert after["served_by"] == "teacher"  # ab_share 1: every key goes to the attached teacher
    assert attached == {"student": True, "teacher": True, "degraded": [], "load_errors": {}}
