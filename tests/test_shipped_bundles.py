"""The shipped bundles on their real base model (Qwen2.5-Coder-0.5B): intact, loadable with PEFT alone,
and reproducing the dev figures recorded in their manifests."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from flipkd.models.bundle import DEFAULT_BUNDLE, SHIPPED_BUNDLES, load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.teacher_cache import teacher_digest
from flipkd.training.data import load_pairs
from flipkd.training.metrics import classification_metrics
from flipkd.training.student_scores import student_scores

from .conftest import REPO

SHIPPED = sorted(path.name for path in SHIPPED_BUNDLES.iterdir() if path.is_dir())


def test_the_default_bundle_is_shipped():
    assert DEFAULT_BUNDLE.name in SHIPPED and {"atec", "mqp"} <= set(SHIPPED)


def test_every_file_of_the_shipped_bundles_is_installed_with_the_package():
    """A non-editable install (the image) copies only the package-data globs: a bundle file they miss would
    make that bundle fail its checksums there."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = SHIPPED_BUNDLES.parent
    installed = {path for pattern in patterns["flipkd.models"] for path in package.glob(pattern)}
    shipped = {path for path in SHIPPED_BUNDLES.rglob("*") if path.is_file()}
    assert shipped - installed == set()
    assert any(path.parent.name == "teacher" for path in shipped)


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
def test_every_shipped_bundle_carries_a_teacher_export_teachers_puts_into_the_cache(cache_home):
    bundles = sum((["--bundle", name] for name in SHIPPED), [])
    result = subprocess.run([sys.executable, "-m", "flipkd", "export-teachers", *bundles],
                            capture_output=True, text=True, timeout=900, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["bundle"] for line in lines] == SHIPPED
    for line in lines:
        bundle = load_bundle(SHIPPED_BUNDLES / line["bundle"])
        folder = Path(line["teacher"])
        assert folder.parent == cache_home / "teachers"
        assert bundle.find_teacher() == folder  # the service finds it there, nothing exported again
        assert OnnxTeacher(folder).threshold == \
            json.loads((bundle.teacher_dir / "teacher.json").read_text())["threshold"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_bundle_carries_the_very_teacher_its_student_learned_from(name):
    """The teacher the service runs is byte for byte the one the student was distilled from: the adapter in
    ``teacher/`` hashes to what the manifest recorded at training time, and no other build is carried."""
    bundle = load_bundle(SHIPPED_BUNDLES / name)
    assert "carried_teacher" not in bundle.manifest
    assert teacher_digest(bundle.teacher_dir) == bundle.manifest["teacher"]["adapter_sha256"]
