"""The student exported to onnxruntime: parity with torch, int8, the model cache, the service running it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from flipkd.models.bundle import load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_student import (
    INT8_FILE,
    ONNX_FILE,
    OnnxStudent,
    ensure_student_onnx,
    student_cache_dir,
)
from flipkd.service.server import free_port, running_server, server_process
from flipkd.service.settings import Settings

from .conftest import THREADS

pytestmark = pytest.mark.slow  # the suite's SmolLM2 bundle

TEXTS = ["Can I drink alcohol on antibiotics?", "a", "How long does a fever last in adults with the flu?",
         "花呗怎么还款", "Is it safe to take ibuprofen and paracetamol together for a bad headache at night?"]


@pytest.fixture(scope="module")
def exported(student_bundle, tmp_path_factory) -> tuple[Path, Path]:
    """(model cache home, exported folder) of the suite's bundle."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLIPKD_HOME", str(home))
        folder = ensure_student_onnx(load_bundle(student_bundle))
    return home, folder


def test_export_is_cached_by_bundle_and_reused(exported, student_bundle, monkeypatch):
    home, folder = exported
    monkeypatch.setenv("FLIPKD_HOME", str(home))
    bundle = load_bundle(student_bundle)
    assert folder == student_cache_dir(bundle) and folder.parent == home / "students"
    names = {path.name for path in folder.iterdir()}
    assert {ONNX_FILE, INT8_FILE, "tokenizer.json", "student.json", "export.json"} <= names
    report = json.loads((folder / "export.json").read_text())
    assert report["fp32_max_abs_gap"] <= 1e-4
    stamp = (folder / ONNX_FILE).stat().st_mtime_ns
    key, _, version = folder.name.rpartition("-")
    stale, other_bundle = home / "students" / f"{key}-{int(version) - 1}", home / "students" / f"{'0' * 16}-1"
    for made in (stale, other_bundle):
        made.mkdir()
        (made / ONNX_FILE).write_bytes(b"an older export")
    assert ensure_student_onnx(bundle) == folder and (folder / ONNX_FILE).stat().st_mtime_ns == stamp
    assert not stale.exists() and other_bundle.is_dir()  # this bundle's older format only is dropped


def test_fp32_graph_embeds_like_torch_and_int8_close_to_it(exported, student_bundle):
    _, folder = exported
    reference = student_encoder(load_bundle(student_bundle), torch.float32, "cpu")
    with torch.inference_mode():
        expected = reference.embed(TEXTS, batch_size=len(TEXTS)).numpy()
    for batch_size in (1, 2, len(TEXTS)):
        fp32 = OnnxStudent(folder, THREADS).embed(TEXTS, batch_size=batch_size)
        np.testing.assert_allclose(fp32, expected, atol=1e-4)
    int8 = OnnxStudent(folder, THREADS, int8=True).embed(TEXTS, batch_size=len(TEXTS))
    assert int8.shape == expected.shape
    cosines = (int8 * expected).sum(axis=1)
    assert cosines.min() > 0.95, cosines
    assert not np.allclose(int8, expected, atol=1e-4)  # it did quantize


@pytest.mark.parametrize("reading", [{"echo": True}, {"bidirectional": True}], ids=["echo", "bidirectional"])
def test_student_read_another_way_exports_with_parity(reading, student_bundle, tmp_path, monkeypatch):
    """A bundle whose spec echoes (the graph pools the second copy) or reads bidirectionally (padding-only
    masks from the lowest read layer): the graph embeds as torch does, in any batch."""
    import shutil

    from flipkd.models.bundle import MANIFEST

    changed = tmp_path / "bundle"
    shutil.copytree(student_bundle, changed)
    manifest = json.loads((changed / MANIFEST).read_text())
    manifest["encoder"].update(reading)
    (changed / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    monkeypatch.setenv("FLIPKD_HOME", str(tmp_path / "home"))
    bundle = load_bundle(changed)
    folder = ensure_student_onnx(bundle)
    reference = student_encoder(bundle, torch.float32, "cpu")
    with torch.inference_mode():
        expected = reference.embed(TEXTS, batch_size=len(TEXTS)).numpy()
        plain = student_encoder(load_bundle(student_bundle), torch.float32, "cpu").embed(TEXTS).numpy()
    runtime = OnnxStudent(folder, THREADS)
    ids_of_a = runtime.token_ids(["a"])
    assert ids_of_a == reference.token_ids(["a"]) and len(ids_of_a[0]) == (3 if reading.get("echo") else 1)
    for batch_size in (1, len(TEXTS)):
        np.testing.assert_allclose(runtime.embed(TEXTS, batch_size=batch_size), expected, atol=1e-4)
    assert not np.allclose(expected, plain, atol=1e-3)


def test_int8_weights_use_seven_bits_so_no_cpu_saturates_their_products(exported):
    """u8 x s8 products summed in pairs fit int16 only when |w| <= 64 (CPUs without VNNI saturate)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(exported[1] / INT8_FILE)).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights, "no int8 weight in the int8 graph"
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64


def test_runtime_imports_no_torch(exported):
    code = ("import sys; from flipkd.models.onnx_student import OnnxStudent; "
            f"OnnxStudent({str(exported[1])!r}).embed(['a text']); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_service_serves_the_exported_student(exported, student_bundle, exported_teacher, monkeypatch,
                                             runtime):
    home, folder = exported
    monkeypatch.setenv("FLIPKD_HOME", str(home))
    settings = Settings(bundles=[str(student_bundle)], teacher=exported_teacher, port=free_port(),
                        torch_threads=THREADS, student_runtime=runtime)
    expected = OnnxStudent(folder, THREADS, int8=runtime == "onnx-int8").embed(TEXTS[:3])
    with running_server(settings) as base:
        vectors = httpx.post(f"{base}/embed", json={"texts": TEXTS[:3]}, timeout=60).json()["embeddings"]
        match = httpx.post(f"{base}/match", json={"pair": {"text_a": TEXTS[0], "text_b": TEXTS[2]}},
                           timeout=60).json()
    np.testing.assert_allclose(np.array(vectors), expected, atol=1e-5)
    assert match["served_by"] == "student" and len(match["results"]) == 1
    assert match["threshold"] == load_bundle(student_bundle).threshold


def test_service_with_the_onnx_student_runs_where_torch_cannot_be_imported(exported, student_bundle,
                                                                          exported_teacher, tmp_path,
                                                                          monkeypatch):
    home, _ = exported
    monkeypatch.setenv("FLIPKD_HOME", str(home))
    settings = Settings(bundles=[str(student_bundle)], teacher=exported_teacher, port=free_port(),
                        torch_threads=THREADS, student_runtime="onnx-int8", heap_trim_interval_s=0)
    without_torch = ("import sys; sys.modules['torch'] = None; from flipkd.main import main; "
                     "sys.argv[1:] = ['serve']; main()")
    with server_process(settings, timeout=300, log=tmp_path / "serve.log",
                        python_args=("-c", without_torch)) as (base, server):
        match = httpx.post(f"{base}/match", json={"pair": {"text_a": TEXTS[0], "text_b": TEXTS[2]}},
                           timeout=60).json()
        runtime = httpx.get(f"{base}/info", timeout=60).json()["runtime"]
    assert match["served_by"] == "student" and runtime["torch"] is None
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown


def test_export_student_command_reports_the_cached_export(exported, student_bundle, monkeypatch):
    home, folder = exported
    monkeypatch.setenv("FLIPKD_HOME", str(home))
    done = subprocess.run([sys.executable, "-m", "flipkd", "export-student", "--bundle", str(student_bundle)],
                          check=True, capture_output=True, text=True)
    report = json.loads(done.stdout)
    assert report["folder"] == str(folder) and report["fp32_max_abs_gap"] <= 1e-4
    missing = subprocess.run([sys.executable, "-m", "flipkd", "export-student", "--bundle", "no-such-bundle"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no-such-bundle" in missing.stderr
