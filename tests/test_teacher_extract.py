"""A fully fine-tuned teacher carried as a low-rank adapter teacher: exact at full rank, truncated below,
and exported to ONNX like any adapter teacher (real MiniLM weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flipkd.models.bi_encoder import teacher_encoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.teacher_cache import ensure_exported
from flipkd.models.teacher_config import ADAPTER_TEACHER_FILES, TeacherConfig, is_adapter_teacher
from flipkd.training.data import load_pairs
from flipkd.training.teacher_extract import extract_adapter_teacher

from .conftest import DATA

pytestmark = pytest.mark.slow  # fine-tunes and exports real weights

TEXTS = load_pairs(DATA / "medical_question_pairs" / "dev.jsonl", limit=24)


def cosines(folder) -> np.ndarray:
    return teacher_encoder(folder).score_pairs([p.text_a for p in TEXTS], [p.text_b for p in TEXTS])


def test_full_rank_reproduces_the_fine_tuned_teacher(trained_teacher, tmp_path):
    out = tmp_path / "extracted"
    metrics = extract_adapter_teacher(trained_teacher, out, rank=384)
    assert is_adapter_teacher(out)
    assert {*ADAPTER_TEACHER_FILES, "metrics.json"} == {path.name for path in out.iterdir()}
    assert metrics["energy_kept"] == pytest.approx(1.0)
    assert np.abs(cosines(out) - cosines(trained_teacher)).max() < 1e-4
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "all-MiniLM-L6-v2" and adapter["bias"] == "all"
    assert "embeddings.word_embeddings" not in adapter["modules_to_save"]  # frozen in fine-tuning
    assert "encoder.layer.0.output.LayerNorm" in adapter["modules_to_save"]
    assert TeacherConfig.load(out).threshold == metrics["fine_tuned"]["dev"]["threshold"]
    assert metrics["recipe"] is None and metrics["source_recipe"]["base"] == "all-MiniLM-L6-v2"


def test_a_low_rank_teacher_is_smaller_and_exports_like_any_adapter_teacher(trained_teacher, tmp_path,
                                                                             cache_home):
    small = extract_adapter_teacher(trained_teacher, tmp_path / "r4", rank=4)
    full = extract_adapter_teacher(trained_teacher, tmp_path / "r384", rank=384)
    assert small["energy_kept"] < 1.0 and small["adapter_bytes"] < full["adapter_bytes"] / 4
    assert 0 < small["dev_cosine_gap"]["max"] < 0.2
    onnx = OnnxTeacher(ensure_exported(tmp_path / "r4"))
    exported = onnx.score_pairs([p.text_a for p in TEXTS], [p.text_b for p in TEXTS])
    assert np.abs(exported - cosines(tmp_path / "r4")).max() < 1e-4
    with pytest.raises(ValueError, match="already an adapter teacher"):
        extract_adapter_teacher(tmp_path / "r4", tmp_path / "again", rank=4)
