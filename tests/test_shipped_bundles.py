"""The shipped bundles on their real base model (Qwen2.5-Coder-0.5B): intact, loadable with PEFT alone,
and reproducing the dev figures recorded in their manifests."""

import numpy as np
import pytest

from flipkd.models.bundle import DEFAULT_BUNDLE, SHIPPED_BUNDLES, load_bundle
from flipkd.models.lora_encoder import student_encoder
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
