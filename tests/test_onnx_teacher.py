import numpy as np
import pytest
from tokenizers import Tokenizer

from flipkd.models.bi_encoder import TeacherConfig, TorchBiEncoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.teacher_export import PARITY_TOLERANCE, ExportCheckFailed
from flipkd.training.data import load_pairs
from flipkd.training.onnx_export import INT8_FILE, check_export

from .conftest import DATA

pytestmark = pytest.mark.slow  # a trained and exported teacher


def test_fp32_graph_matches_torch_on_real_pairs(trained_teacher, exported_teacher):
    pairs = load_pairs(DATA / "medical_question_pairs" / "dev.jsonl", limit=96)
    config = TeacherConfig.load(trained_teacher)
    reference = TorchBiEncoder(str(trained_teacher), config.query_prefix, config.max_length)
    onnx = OnnxTeacher(exported_teacher, threads=2)
    texts_a, texts_b = [p.text_a for p in pairs], [p.text_b for p in pairs]
    gap = np.abs(reference.score_pairs(texts_a, texts_b) - onnx.score_pairs(texts_a, texts_b))
    assert gap.max() < PARITY_TOLERANCE
    assert onnx.threshold == config.threshold


def test_graph_has_dynamic_batch_and_length(exported_teacher):
    onnx = OnnxTeacher(exported_teacher, threads=1)
    texts = ["short", "a much longer sentence about the side effects of antibiotics and alcohol", "mid size"]
    together = onnx.embed(texts, batch_size=3)
    alone = np.stack([onnx.embed([text], batch_size=1)[0] for text in texts])
    assert together.shape == (3, 384)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_tokenize_pads_like_the_tokenizer_itself(exported_teacher):
    onnx = OnnxTeacher(exported_teacher, threads=1)
    own = Tokenizer.from_file(str(exported_teacher / "tokenizer.json"))
    own.enable_truncation(max_length=onnx.config.max_length)
    own.enable_padding(pad_id=own.token_to_id("[PAD]"))
    texts = ["short", "fever " * 200, "a mid-size question about a rash"]
    encodings = own.encode_batch([onnx.config.query_prefix + text for text in texts])
    ours = onnx.tokenize(texts)
    np.testing.assert_array_equal(ours["input_ids"], [e.ids for e in encodings])
    np.testing.assert_array_equal(ours["attention_mask"], [e.attention_mask for e in encodings])
    assert ours["input_ids"].shape[1] == onnx.config.max_length


def test_export_check_passes_and_writes_int8(trained_teacher, exported_teacher):
    report = check_export(trained_teacher, exported_teacher, DATA / "medical_question_pairs", int8=True,
                          split="train")
    assert report["pairs"] == 2374
    assert report["fp32_max_abs_cosine_gap"] < PARITY_TOLERANCE
    assert abs(report["int8_f1"] - report["fp32_f1"]) <= 0.005
    assert report["int8_within_tolerance"] is True
    assert (exported_teacher / INT8_FILE).is_file()


def test_export_check_fails_when_the_graph_is_not_the_teacher(minilm_dir, exported_teacher, tmp_path):
    """Checking the export against a different model (the untuned base) must fail loudly."""
    for item in minilm_dir.iterdir():
        (tmp_path / item.name).symlink_to(item)
    TeacherConfig(base="all-MiniLM-L6-v2", max_length=64).save(tmp_path)
    with pytest.raises(ExportCheckFailed, match="differs from torch"):
        check_export(tmp_path, exported_teacher, DATA / "medical_question_pairs", int8=False)
