"""Adapter teachers on real weights: plain PEFT files, one parity-checked ONNX export per machine, and a
bundle that carries its teacher (under its checksums, evaluated with no ``--teacher``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from flipkd.models import teacher_export
from flipkd.models.bi_encoder import teacher_encoder
from flipkd.models.bundle import BundleError, load_bundle
from flipkd.models.hashing import sha256_file
from flipkd.models.onnx_teacher import ONNX_FILE, OnnxTeacher
from flipkd.models.provision import PROVENANCE
from flipkd.models.teacher_cache import ensure_exported, teacher_cache_dir, teacher_digest
from flipkd.models.teacher_config import ADAPTER_TEACHER_FILES, TeacherConfig
from flipkd.training.bundle_build import build_bundle, publish_bundle
from flipkd.training.data import load_pairs
from flipkd.training.distill_config import load_config
from flipkd.training.metrics import classification_metrics

from .conftest import DATA, smoke_config_for

pytestmark = pytest.mark.slow  # trains, exports and distils on real weights


def test_an_adapter_teacher_is_plain_peft_over_its_pinned_base(adapter_teacher, minilm_dir):
    assert sorted(path.name for path in adapter_teacher.iterdir()) == sorted([*ADAPTER_TEACHER_FILES,
                                                                              "metrics.json"])
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(minilm_dir, add_pooling_layer=False),
                                      str(adapter_teacher))
    trained = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    assert trained and any(parameter.abs().sum() > 0 for parameter in trained)  # B starts at zero
    config = TeacherConfig.load(adapter_teacher)
    pinned = json.loads((minilm_dir / PROVENANCE).read_text())["weight_sha256"]
    assert (config.base, config.base_sha256) == ("all-MiniLM-L6-v2", pinned)
    adapter_config = json.loads((adapter_teacher / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "all-MiniLM-L6-v2"
    assert set(adapter_config["target_modules"]) == {"query", "key", "value", "dense"}
    metrics = json.loads((adapter_teacher / "metrics.json").read_text())
    assert metrics["mode"] == "adapter" and metrics["trainable_parameters"] < 1_000_000
    assert config.threshold == metrics["fine_tuned"]["dev"]["threshold"]


def test_the_export_is_made_once_and_matches_torch(adapter_teacher, cache_home, monkeypatch):
    exports = []
    export = teacher_export.export_checked
    monkeypatch.setattr(teacher_export, "export_checked",
                        lambda folder, out: exports.append(folder) or export(folder, out))
    first = ensure_exported(adapter_teacher)
    graph = first / ONNX_FILE
    stamp, digest = graph.stat().st_mtime_ns, sha256_file(graph)
    assert ensure_exported(adapter_teacher) == first == teacher_cache_dir(adapter_teacher)
    assert exports == [adapter_teacher]
    assert (graph.stat().st_mtime_ns, sha256_file(graph)) == (stamp, digest)
    assert [path.name for path in (cache_home / "teachers").iterdir()] == [first.name]  # nothing half-built
    assert json.loads((first / "export.json").read_text())["fp32_max_abs_cosine_gap"] < \
        teacher_export.PARITY_TOLERANCE
    pairs = load_pairs(DATA / "medical_question_pairs" / "dev.jsonl", limit=32)
    onnx = OnnxTeacher(first)
    teacher_export.parity_gap(teacher_encoder(adapter_teacher), onnx, [p.text_a for p in pairs],
                              [p.text_b for p in pairs])  # raises beyond the tolerance
    assert onnx.threshold == TeacherConfig.load(adapter_teacher).threshold


def test_a_bundle_carries_its_adapter_teacher(adapter_teacher, smollm_dir, cache_home, tmp_path):
    config = load_config(smoke_config_for(adapter_teacher, tmp_path),
                         ["train.train_limit=32", "train.dev_limit=32",
                          f"transfer.embedding_teachers=[{adapter_teacher}]"])
    assert (config.teacher, config.teacher_adapter) == (teacher_cache_dir(adapter_teacher), adapter_teacher)
    assert config.transfer.embedding_teachers == (str(teacher_cache_dir(adapter_teacher)),)
    build_bundle(config, tmp_path / "bundle", torch.float32)
    published = tmp_path / "published"
    manifest = publish_bundle(tmp_path / "bundle", published)
    assert {name for name in manifest["files"] if name.startswith("teacher/")} == \
        {f"teacher/{name}" for name in ADAPTER_TEACHER_FILES}
    assert manifest["teacher"]["adapter_sha256"] == teacher_digest(published / "teacher")

    data = tmp_path / "pairs.jsonl"
    lines = (DATA / "medical_question_pairs" / "test.jsonl").read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:32]))
    command = [sys.executable, "-m", "flipkd", "--threads", "1", "evaluate", "--bundle", str(published),
               "--data", str(data), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    pairs = load_pairs(data)
    teacher = OnnxTeacher(teacher_cache_dir(adapter_teacher))
    scores = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs])
    expected = classification_metrics(scores, np.array([p.label for p in pairs]), teacher.threshold)
    assert set(report) == {"n", "positives", "student", "teacher"} and report["n"] == 32
    assert report["teacher"] == pytest.approx(expected, abs=1e-6)

    with open(published / "teacher" / "adapter_model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="teacher/adapter_model.safetensors"):
        load_bundle(published)


def test_publish_can_carry_a_teacher_the_student_did_not_learn_from(student_bundle, adapter_teacher,
                                                                   cache_home, tmp_path):
    trained_with = load_bundle(student_bundle).manifest["teacher"]
    published = tmp_path / "published"
    manifest = publish_bundle(student_bundle, published, teacher=adapter_teacher)
    assert manifest["teacher"] == trained_with  # still the teacher the student learned from
    assert manifest["carried_teacher"]["adapter_sha256"] == teacher_digest(published / "teacher") \
        == teacher_digest(adapter_teacher)
    assert manifest["carried_teacher"]["threshold"] == TeacherConfig.load(adapter_teacher).threshold
    bundle = load_bundle(published)
    assert bundle.teacher_source() == bundle.teacher_dir == published / "teacher"
    assert bundle.find_teacher() == teacher_cache_dir(adapter_teacher)

    with pytest.raises(ValueError, match="not an adapter teacher: missing teacher.json"):
        publish_bundle(student_bundle, tmp_path / "refused", teacher=student_bundle)
    assert not (tmp_path / "refused").exists()  # nothing half-written
