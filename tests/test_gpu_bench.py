"""The GPU service benchmark's path, run on the CPU as far as it goes without a GPU: a base model with
random weights of the real shapes written where the service finds it, then bench/gpu_service.py (bare
student sweep, the service under load with one and two front ends and two generator processes) on a
bundle built on that base."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

from synthetic_base import TOKENIZER_FILES, write_synthetic_base  # noqa: E402


def pack_of(base_dir: Path, name: str, folder: Path) -> Path:
    """What scripts/gpu_pack.sh packs of a base: config, tokenizer files and its default-model name."""
    folder.mkdir()
    for file in ("config.json", *TOKENIZER_FILES):
        shutil.copy(base_dir / file, folder / file)
    (folder / "NAME").write_text(name + "\n")
    return folder


def test_synthetic_base_then_the_gpu_bench_run_on_cpu(smollm_dir, student_bundle, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    home = tmp_path / "home"
    monkeypatch.setenv("FLIPKD_HOME", str(home))
    pack = pack_of(smollm_dir, "smollm2-135m-instruct", tmp_path / "pack")
    target = write_synthetic_base(pack)
    assert target == home / "models" / "smollm2-135m-instruct"
    provenance = json.loads((target / "flipkd-provenance.json").read_text())
    assert provenance["upstream"].startswith("synthetic") and provenance["weight_sha256"] is None
    synthetic, real = load_file(target / "model.safetensors"), load_file(smollm_dir / "model.safetensors")
    shared = sorted(set(synthetic) & set(real))
    assert shared and all(synthetic[k].shape == real[k].shape for k in shared)
    assert not torch.equal(synthetic[shared[0]].float(), real[shared[0]].float())

    out = tmp_path / "out"
    command = [sys.executable, str(BENCH / "gpu_service.py"), "--bundle", str(student_bundle),
               "--data", str(REPO / "data" / "medical_question_pairs" / "dev.jsonl"), "--out", str(out),
               "--texts", "16", "--batch-sizes", "1", "8", "--frontends", "1", "2",
               "--concurrency", "1", "4", "--generators", "2", "--requests", "24", "--max-batch-size", "8"]
    subprocess.run(command, check=True, timeout=600, cwd=REPO, env={**os.environ, "FLIPKD_HOME": str(home)})
    results = json.loads((out / "results.json").read_text())
    assert results["device"] == "cpu" and results["base"]["upstream"].startswith("synthetic")
    assert set(results["bare"]["by_batch_size"]) == {"1", "8"}
    assert results["bare"]["by_batch_size"]["8"]["utilisation"] > 0
    for frontends in ("1", "2"):
        rows = results["service"][frontends]
        assert [row["concurrency"] for row in rows] == [1, 4]
        assert all(set(row["statuses"]) == {"200"} and row["requests"] >= 24 for row in rows)
    assert results["service"]["2"][1]["generators"] == 2
    assert results["share"] > 0 and (out / "gpu_service.png").is_file()


def test_a_real_base_is_never_overwritten_with_random_weights(smollm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FLIPKD_HOME", str(tmp_path / "home"))
    real = tmp_path / "home" / "models" / "smollm2-135m-instruct"
    real.mkdir(parents=True)
    (real / "flipkd-provenance.json").write_text(json.dumps({"upstream": "HuggingFaceTB/SmolLM2-135M"}))
    with pytest.raises(SystemExit, match="holds the real smollm2-135m-instruct"):
        write_synthetic_base(pack_of(smollm_dir, "smollm2-135m-instruct", tmp_path / "pack"))
    provenance = json.loads((real / "flipkd-provenance.json").read_text())
    assert provenance["upstream"] == "HuggingFaceTB/SmolLM2-135M"
