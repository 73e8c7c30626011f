"""Adapter teachers in the model cache and in bundles, without weights: the cache key, the atomic folder,
reuse of an export, and a bundle's ``teacher/`` under its checksums (export itself: test_adapter_teacher)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flipkd.models.atomic_dir import build_atomically
from flipkd.models.bundle import BundleError, load_bundle, write_manifest
from flipkd.models.teacher_cache import onnx_teacher_dir, teacher_cache_dir, teacher_digest

from .fakes import fake_adapter_teacher


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FLIPKD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_cache_key_is_the_teacher_files_only(tmp_path, home):
    teacher = fake_adapter_teacher(tmp_path / "a")
    copy = fake_adapter_teacher(tmp_path / "b")
    (copy / "metrics.json").write_text('{"other": "run notes"}\n')
    changed = fake_adapter_teacher(tmp_path / "c", weights=b"other weights")
    assert teacher_digest(teacher) == teacher_digest(copy) != teacher_digest(changed)
    assert teacher_cache_dir(teacher) == home / "teachers" / teacher_digest(teacher)[:16]


def test_a_folder_appears_complete_or_not_at_all(tmp_path):
    def write(folder: Path) -> None:
        (folder / "part").write_text("done")

    def fail(folder: Path) -> None:
        (folder / "part").write_text("half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        build_atomically(tmp_path / "failed", fail)
    assert build_atomically(tmp_path / "built", write) == tmp_path / "built"
    assert (tmp_path / "built" / "part").read_text() == "done"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["built"]


def test_a_folder_another_builder_finished_first_is_kept(tmp_path):
    def race(folder: Path) -> None:
        (folder / "part").write_text("ours")
        (tmp_path / "target").mkdir()
        (tmp_path / "target" / "part").write_text("theirs")

    build_atomically(tmp_path / "target", race)
    assert (tmp_path / "target" / "part").read_text() == "theirs"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["target"]


def test_an_exported_teacher_is_reused_and_other_folders_pass_through(tmp_path, home):
    teacher = fake_adapter_teacher(tmp_path / "adapter")
    teacher_cache_dir(teacher).mkdir(parents=True)  # an earlier export (these fake weights cannot export)
    assert onnx_teacher_dir(teacher) == teacher_cache_dir(teacher)
    assert onnx_teacher_dir(tmp_path / "onnx-teacher") == tmp_path / "onnx-teacher"


def test_a_bundled_teacher_is_under_the_checksums(tmp_path, home):
    bundle_dir = tmp_path / "bundle"
    fake_adapter_teacher(bundle_dir / "teacher").joinpath("metrics.json").unlink()
    (bundle_dir / "adapter_model.safetensors").write_bytes(b"student")
    write_manifest(bundle_dir, {"base_model": {"name": "base"}, "encoder": {}, "threshold": 0.5})
    bundle = load_bundle(bundle_dir)
    assert set(bundle.manifest["files"]) == {"adapter_model.safetensors", "teacher/adapter_config.json",
                                             "teacher/adapter_model.safetensors", "teacher/teacher.json"}
    assert bundle.teacher_source() == bundle.teacher_dir == bundle_dir / "teacher"
    teacher_cache_dir(bundle.teacher_dir).mkdir(parents=True)
    assert bundle.find_teacher() == teacher_cache_dir(bundle.teacher_dir)
    assert bundle.find_teacher(tmp_path / "explicit") == tmp_path / "explicit"
    (bundle_dir / "teacher" / "teacher.json").write_text('{"base": "altered"}\n')
    with pytest.raises(BundleError, match="teacher/teacher.json"):
        load_bundle(bundle_dir)
