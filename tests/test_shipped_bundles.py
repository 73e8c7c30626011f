"""The shipped bundles on their real base model (Qwen2.5-Coder-0.5B): intact, loadable with PEFT alone,
and reproducing the dev figures recorded in their manifests."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flipkd.models.bundle import DEFAULT_BUNDLE, SHIPPED_BUNDLES, load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.training.data import load_pairs
from flipkd.training.metrics import classification_metrics
from flipkd.training.student_scores import student_scores

from .conftest import REPO

SHIPPED = sorted(path.name for path in SHIPPED_BUNDLES.iterdir() if path.is_dir())


def test_the_default_bundle_is_shipped():
    assert DEFAULT_BUNDLE.name in SHIPPED and {"atec", "mqp"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.slow
def test_shipped_bundle_reproduces_its_dev_metrics(name):
    bundle = load_bundle(SHIPPED_BUNDLES / name)
    assert bundle.base_model == "qwen2.5-coder-0.5b-instruct"
    assert bundle.manifest["teacher"]["onnx_sha256"]
    config = bundle.manifest["config"]
    dev = load_pairs(REPO / config["data"] / "dev.jsonl")[:config["train"].get("dev_limit")]
    labels = np.array([p.label for p in dev])
    measured = classification_metrics(student_scores(student_encoder(bundle), dev), labels, bundle.threshold)
    recorded = bundle.manifest["metrics"]["dev"]
    assert measured["auc"] == pytest.approx(recorded["auc"], abs=0.005)
    assert measured["f1"] == pytest.approx(recorded["f1"], abs=0.01)


@pytest.mark.slow
def test_export_teachers_puts_the_carried_mqp_teacher_into_the_cache(cache_home):
    result = subprocess.run([sys.executable, "-m", "flipkd", "export-teachers", "--bundle", "atec",
                             "--bundle", "mqp"], capture_output=True, text=True, timeout=600, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"bundle": "atec", "teacher": None}
    folder = Path(lines[1]["teacher"])
    assert lines[1]["bundle"] == "mqp" and folder.parent == cache_home / "teachers"
    mqp = load_bundle(SHIPPED_BUNDLES / "mqp")
    assert mqp.find_teacher() == folder  # the service finds it there, nothing exported again
    carried = json.loads((mqp.teacher_dir / "teacher.json").read_text())
    assert OnnxTeacher(folder).threshold == carried["threshold"]
