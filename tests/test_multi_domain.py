"""Both shipped bundles in one real server (Qwen2.5-Coder-0.5B, shared): each domain answers with its own
student and threshold, an unknown domain is a 404, and a broken student in one domain leaves the other
answering."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from flipkd.models.base_models import BaseModels
from flipkd.models.bundle import SHIPPED_BUNDLES, Bundle, load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.precision import compute_dtype
from flipkd.service.batched_engine import WARM_UP_TEXT
from flipkd.service.facade import EngineFactories
from flipkd.service.server import free_port, running_server
from flipkd.service.settings import Settings
from flipkd.service.torch_engine import StudentEngine

from .conftest import THREADS

pytestmark = pytest.mark.slow

DOMAINS = ("atec", "mqp")
PAIRS = {"atec": ("花呗怎么还款", "花呗如何还钱"), "mqp": ("Can I take ibuprofen with a cold?",
                                                      "Is ibuprofen safe when I have a cold?")}


class BreakableStudent(StudentEngine):
    """A real student that raises on every batch but its warm-up once ``broken`` is set."""

    broken = False

    def embed_ids(self, ids):
        if self.broken and not all(WARM_UP_TEXT in text for text in self.encoder.tokenizer.batch_decode(ids)):
            raise RuntimeError("student broke")
        return super().embed_ids(ids)


def test_both_shipped_bundles_served_by_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no training-time teacher folder resolves
    bases, students = BaseModels(), {}

    def make_student(bundle: Bundle) -> BreakableStudent:
        students[bundle.folder.name] = BreakableStudent(bundle, bases=bases)
        return students[bundle.folder.name]

    bundles = {name: load_bundle(SHIPPED_BUNDLES / name) for name in DOMAINS}
    expected = {name: student_encoder(bundle, compute_dtype()).embed(list(PAIRS[name])).numpy()
                for name, bundle in bundles.items()}
    # teachers off: a broken student then has nobody to fall back to (both bundles carry one)
    settings = Settings(bundles=list(DOMAINS), port=free_port(), torch_threads=THREADS,
                        heap_trim_interval_s=0, teacher_enabled=False)
    with running_server(settings, EngineFactories(student=make_student)) as base, \
            httpx.Client(base_url=base, timeout=120) as client:
        vectors = {name: np.array(client.post("/embed", json={"texts": list(PAIRS[name]), "domain": name})
                                  .json()["embeddings"]) for name in DOMAINS}
        matches = {name: client.post("/match", json={"pair": dict(zip(("text_a", "text_b"), PAIRS[name],
                                                                        strict=True)), "domain": name}).json()
                   for name in DOMAINS}
        unknown = client.post("/match", json={"pair": {"text_a": "a", "text_b": "b"}, "domain": "legal"})
        readiness = client.get("/readyz").json()
        students["atec"].broken = True
        atec_broken = client.post("/match", json={"pair": {"text_a": "花呗", "text_b": "借呗"},
                                                  "domain": "atec"})
        mqp_after = client.post("/match", json={"pair": {"text_a": "fever", "text_b": "cough"},
                                                "domain": "mqp"})
    shared = [engine.encoder.body.embed_tokens.weight.data_ptr() for engine in students.values()]
    assert shared[0] == shared[1]  # one copy of the base's embedding table for both domains
    for name in DOMAINS:
        cosines = (vectors[name] * expected[name]).sum(axis=1)
        assert cosines.min() > 0.999, (name, cosines)  # each domain is answered by its own student
        body = matches[name]
        assert body["served_by"] == "student" and body["threshold"] == pytest.approx(bundles[name].threshold)
        similarity = float(expected[name][0] @ expected[name][1])
        assert body["results"][0]["similarity"] == pytest.approx(similarity, abs=0.01)
    assert unknown.status_code == 404 and "loaded: 'atec', 'mqp'" in unknown.json()["error"]
    assert readiness["ready"] and set(readiness["domains"]) == set(DOMAINS)
    assert all(domain["teacher"] is None for domain in readiness["domains"].values())
    assert atec_broken.status_code == 503 and atec_broken.json() == {"error": "unavailable: student_error"}
    assert mqp_after.status_code == 200 and mqp_after.json()["served_by"] == "student"
