"""Distillation on real small weights: SmolLM2-135M student, the suite's fine-tuned MiniLM teacher."""

import json
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from flipkd.models.bundle import BundleError, load_bundle, write_manifest
from flipkd.models.lora_encoder import student_encoder
from flipkd.training.bundle_build import publish_bundle
from flipkd.training.data import Pair, load_pairs
from flipkd.training.distill import ema_decay, stratified_batches, train_student
from flipkd.training.distill_config import load_config
from flipkd.training.metrics import calibrated_threshold
from flipkd.training.student_scores import student_scores
from flipkd.training.teacher_rebuild import ensure_teacher
from flipkd.training.teacher_scores import score_cache_path, teacher_scores
from flipkd.training.teacher_train import TeacherTrainConfig

from .conftest import REPO


def test_batches_hold_both_classes():
    labels = np.array([1] * 20 + [0] * 80)
    batches = stratified_batches(labels, 10, random.Random(0))
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    assert all(0 < labels[batch].sum() < len(batch) for batch in batches)


@pytest.mark.slow
def test_config_selects_train_range_and_dev_prefix(smoke_config):
    overrides = ["train.train_offset=100", "train.train_limit=50", "train.dev_limit=40"]
    config = load_config(smoke_config, overrides)
    train = load_pairs(config.data / "train.jsonl")
    assert config.pairs("train") == train[100:150]
    assert config.pairs("dev") == load_pairs(config.data / "dev.jsonl")[:40]
    assert len(config.pairs("test")) == len(load_pairs(config.data / "test.jsonl"))


@pytest.mark.slow
def test_teacher_scores_are_cached_per_pairs_and_in_order(exported_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("FLIPKD_HOME", str(tmp_path))
    pairs = load_pairs(REPO / "data/medical_question_pairs/dev.jsonl")[:30]
    whole = teacher_scores(pairs, exported_teacher)
    part = teacher_scores(pairs[10:20], exported_teacher)
    np.testing.assert_allclose(part, whole[10:20], atol=1e-5)
    assert score_cache_path(pairs[10:20], exported_teacher) != score_cache_path(pairs, exported_teacher)
    swapped = [Pair(p.text_b, p.text_a, p.label) for p in pairs[:2]]
    assert score_cache_path(swapped, exported_teacher) != score_cache_path(pairs[:2], exported_teacher)
    assert len(list((tmp_path / "teacher-scores").glob("*.safetensors"))) == 2


@pytest.mark.slow
def test_bundle_is_plain_peft_with_manifest_and_checksums(student_bundle, smollm_dir):
    bundle = load_bundle(student_bundle)
    manifest = bundle.manifest
    assert set(manifest["files"]) == {"adapter_config.json", "adapter_model.safetensors", "loss_curve.png"}
    assert manifest["base_model"]["weight_sha256"]
    assert manifest["teacher"]["onnx_sha256"]
    assert manifest["filter"]["positives_kept"] + manifest["filter"]["negatives_kept"] == \
        manifest["training"]["pairs"]
    assert 0.0 < manifest["metrics"]["dev"]["auc"] <= 1.0
    assert not (student_bundle / "checkpoint").exists()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm_dir), str(student_bundle))
    assert any("lora_A" in name for name, _ in model.named_parameters())


@pytest.mark.slow
def test_altered_bundle_file_is_refused(student_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(student_bundle, copy)
    with open(copy / "adapter_model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="adapter_model.safetensors"):
        load_bundle(copy)


@pytest.mark.slow
def test_evaluate_prints_one_json_object(student_bundle, exported_teacher):
    data = REPO / "data" / "medical_question_pairs" / "test.jsonl"
    command = [sys.executable, "-m", "flipkd", "--threads", "2", "evaluate", "--bundle",
               str(student_bundle), "--data", str(data), "--teacher", str(exported_teacher), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 196 and report["positives"] == 98
    for model in ("student", "teacher"):
        assert set(report[model]) == {"f1", "accuracy", "auc", "threshold"}
    assert report["student"]["threshold"] == load_bundle(student_bundle).threshold


@pytest.mark.slow
def test_evaluate_names_the_bad_line(student_bundle, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text_a": "a", "text_b": "b", "label": 1}\n{"text_a": "a", "text_b": "b", "label": 7}\n')
    command = [sys.executable, "-m", "flipkd", "evaluate", "--bundle", str(student_bundle), "--data",
               str(bad), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(smoke_config, smollm_dir, tmp_path):
    """A run leaves a checkpoint at step 2 of 4; a second run in the same folder resumes there and ends
    with the same weights and loss history as the uninterrupted run."""
    overrides = ["train.train_limit=64", "train.batch_size=16", "train.checkpoint_every=2"]
    config = load_config(smoke_config, overrides)
    first = train_student(config, tmp_path, torch.float32)
    assert first.steps == 4 and (tmp_path / "checkpoint" / "state.json").is_file()
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 2
    resumed = train_student(config, tmp_path, torch.float32)
    assert resumed.losses[:2] == first.losses[:2]
    np.testing.assert_allclose(resumed.losses, first.losses, rtol=1e-4)
    weights = dict(first.student.named_parameters())
    for name, parameter in resumed.student.named_parameters():
        if parameter.requires_grad:
            torch.testing.assert_close(parameter, weights[name], rtol=1e-4, atol=1e-6)


def test_ema_decay_warms_up_to_its_target():
    assert ema_decay(0.99, 0) == pytest.approx(0.1)
    assert ema_decay(0.99, 8) == pytest.approx(0.5)
    assert ema_decay(0.99, 10_000) == 0.99


@pytest.mark.slow
def test_weight_average_is_evaluated_kept_and_resumed_without_touching_training(smoke_config, smollm_dir,
                                                                                tmp_path):
    """With ``train.ema`` the dev evaluations and the shipped adapter use the fp32 moving average, while
    the training itself is the plain run's to the last loss (the average is swapped in and back out);
    the checkpoint carries the average, so a resumed run ends where the uninterrupted one does."""
    # 96 dev pairs: ROC-AUC on fewer is too coarse to tell the average from the plain weights on every CPU
    small = ["train.train_limit=64", "train.batch_size=16", "train.checkpoint_every=2", "train.eval_every=2",
             "train.dev_limit=96"]
    plain = train_student(load_config(smoke_config, small), tmp_path / "plain", torch.float32)
    config = load_config(smoke_config, [*small, "train.ema=0.9"])
    first = train_student(config, tmp_path / "ema", torch.float32)
    np.testing.assert_allclose(first.losses, plain.losses, rtol=1e-6)
    assert [step for step, _ in first.dev_curve] == [2, 4]
    assert [auc for _, auc in first.dev_curve] != [auc for _, auc in plain.dev_curve]
    kept = load_file(str(tmp_path / "ema" / "checkpoint" / "trainable.safetensors"))
    averages = {name: tensor for name, tensor in kept.items() if name.startswith("ema.")}
    assert averages and len(averages) * 2 == len(kept)
    assert all(tensor.dtype == torch.float32 for tensor in averages.values())
    assert any(not torch.equal(tensor, kept[name.removeprefix("ema.")]) for name, tensor in averages.items())
    weights = dict(plain.student.named_parameters())
    trained = [(name, p) for name, p in first.student.named_parameters() if p.requires_grad]
    assert any(not torch.allclose(p, weights[name]) for name, p in trained)
    resumed = train_student(config, tmp_path / "ema", torch.float32)
    np.testing.assert_allclose(resumed.losses, first.losses, rtol=1e-4)
    np.testing.assert_allclose(resumed.dev_curve, first.dev_curve, rtol=1e-4)
    resumed_weights = dict(resumed.student.named_parameters())
    for name, parameter in trained:
        torch.testing.assert_close(resumed_weights[name], parameter, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_transfer_set_with_embedding_term_trains_resumes_and_ships_no_head(smoke_config, smollm_dir,
                                                                           tmp_path):
    """The transfer set and the embedding term (onto an ensemble target) change the run's losses; the
    training-only head is part of the checkpoint (a resumed run ends where the uninterrupted one does)
    and never reaches the adapter. The listwise term trains too, without the head, and so does the
    confidence term."""
    small = ["train.train_limit=64", "train.batch_size=16", "train.checkpoint_every=2",
             "transfer.enabled=true", "transfer.neighbours=1", "transfer.variants=1",
             "transfer.random_per_text=0.5", "transfer.batch_size=8"]
    plain = train_student(load_config(smoke_config, small), tmp_path / "plain", torch.float32)
    teacher = load_config(smoke_config).teacher
    config = load_config(smoke_config, [*small, "transfer.embedding_weight=1.0",
                                        f"transfer.embedding_teachers=[{teacher}, {teacher}]"])
    first = train_student(config, tmp_path / "embed", torch.float32)
    assert first.steps == 4 and len(first.data.transfer) > 0
    targets = first.data.transfer.embeddings  # a two-teacher ensemble target: [e; e] / sqrt(2)
    assert targets.shape == (len(first.data.transfer.texts), 768)
    np.testing.assert_allclose(np.linalg.norm(targets, axis=1), 1.0, atol=1e-5)
    assert first.losses[0] > plain.losses[0] + 0.5  # L_embed starts near 2 (1 - cos) with a fresh head
    no_pair_term = train_student(load_config(smoke_config, [*small, "transfer.weight=0", "train.epochs=0.5",
                                                            "transfer.embedding_weight=1.0"]),
                                 tmp_path / "no-pair-term", torch.float32)
    assert no_pair_term.losses[0] > plain.losses[0] + 0.5  # the pair term off, the embedding term still on
    resumed = train_student(config, tmp_path / "embed", torch.float32)
    np.testing.assert_allclose(resumed.losses, first.losses, rtol=1e-4)
    assert not [name for name, _ in resumed.student.named_parameters() if "embedding_head" in name]
    listwise = train_student(load_config(smoke_config, [*small, "transfer.listwise_weight=1.0"]),
                             tmp_path / "listwise", torch.float32)
    assert np.isfinite(listwise.losses).all() and listwise.losses[0] > plain.losses[0]  # KL > 0 added
    confident = train_student(load_config(smoke_config, [*small, "transfer.confidence_weight=0.5"]),
                              tmp_path / "confident", torch.float32)
    assert confident.losses[0] == pytest.approx(plain.losses[0])  # its weight ramps up from 0
    assert not np.allclose(confident.losses[1:], plain.losses[1:])


@pytest.mark.slow
def test_publish_copies_a_verified_bundle_without_its_checkpoint(student_bundle, tmp_path):
    published = publish_bundle(student_bundle, tmp_path / "published")
    assert set(published["files"]) <= {"adapter_config.json", "adapter_model.safetensors", "loss_curve.png"}
    assert "adapter_model.safetensors" in published["files"]
    assert load_bundle(tmp_path / "published").threshold == load_bundle(student_bundle).threshold


@pytest.mark.slow
def test_publish_bf16_halves_the_adapter_and_recalibrates_on_the_stored_weights(student_bundle, tmp_path):
    published = publish_bundle(student_bundle, tmp_path / "bf16", bf16=True)
    stored = load_file(str(tmp_path / "bf16" / "adapter_model.safetensors"))
    assert {tensor.dtype for tensor in stored.values()} == {torch.bfloat16}
    source = student_bundle / "adapter_model.safetensors"
    assert (tmp_path / "bf16" / "adapter_model.safetensors").stat().st_size < 0.6 * source.stat().st_size
    assert published["adapter_dtype"] == "bfloat16"
    assert published["metrics"]["dev_before_bf16"] == load_bundle(student_bundle).manifest["metrics"]["dev"]
    dev = load_pairs(REPO / "data/medical_question_pairs/dev.jsonl")
    bundle = load_bundle(tmp_path / "bf16")
    scores = student_scores(student_encoder(bundle), dev)
    assert bundle.threshold == pytest.approx(calibrated_threshold(scores, np.array([p.label for p in dev])))


@pytest.mark.slow
def test_publish_recalibrate_replaces_an_old_threshold_and_keeps_the_weights(student_bundle, tmp_path):
    """A bundle whose threshold came from another rule gets today's on dev; its adapter is untouched."""
    old = tmp_path / "old"
    shutil.copytree(student_bundle, old)
    manifest = {k: v for k, v in load_bundle(old).manifest.items() if k != "files"}
    write_manifest(old, {**manifest, "threshold": 0.99})
    command = [sys.executable, "-m", "flipkd", "--threads", "2", "publish", "--bundle", str(old), "--out",
               str(tmp_path / "new"), "--recalibrate"]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    published = load_bundle(tmp_path / "new")
    assert published.manifest["metrics"]["dev_before_recalibration"] == manifest["metrics"]["dev"]
    assert "adapter_dtype" not in published.manifest
    assert (tmp_path / "new" / "adapter_model.safetensors").read_bytes() == \
        (student_bundle / "adapter_model.safetensors").read_bytes()
    dev = load_pairs(REPO / "data/medical_question_pairs/dev.jsonl")
    scores = student_scores(student_encoder(published), dev)
    labels = np.array([p.label for p in dev])
    assert published.threshold == pytest.approx(calibrated_threshold(scores, labels))
    assert published.threshold != 0.99


@pytest.mark.slow
def test_a_missing_teacher_is_rebuilt_from_the_recorded_recipe(student_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(student_bundle, folder)
    manifest = {k: v for k, v in load_bundle(folder).manifest.items() if k != "files"}
    manifest["config"] = {**manifest["config"], "teacher": str(tmp_path / "gone-onnx")}
    manifest["teacher"] = {**manifest["teacher"], "recipe": TeacherTrainConfig(
        data=REPO / "data/medical_question_pairs", base="all-MiniLM-L6-v2", out=tmp_path,
        epochs=1, batch_size=16, train_limit=32).recipe()}
    write_manifest(folder, manifest)
    bundle = load_bundle(folder)
    assert bundle.find_teacher() is None
    first = ensure_teacher(bundle, tmp_path / "rebuilt-onnx", int8=False)
    assert first["rebuilt"] and first["sha256"] != first["recorded_sha256"]
    assert (tmp_path / "rebuilt-onnx" / "export.json").is_file()
    rebuilt = json.loads((tmp_path / "rebuilt" / "metrics.json").read_text())
    assert rebuilt["train_pairs"] == 32
    assert rebuilt["zero_shot"] is None and rebuilt["fine_tuned"]["dev"]["f1"] > 0  # served, not a report
    again = ensure_teacher(bundle, tmp_path / "rebuilt-onnx", int8=False)
    assert again["sha256"] == first["sha256"]


@pytest.mark.slow
def test_a_missing_teacher_without_recipe_is_a_clear_error(student_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(student_bundle, folder)
    manifest = {k: v for k, v in load_bundle(folder).manifest.items() if k != "files"}
    manifest["config"] = {**manifest["config"], "teacher": str(tmp_path / "gone-onnx")}
    manifest["teacher"] = {**manifest["teacher"], "recipe": None}
    write_manifest(folder, manifest)
    with pytest.raises(ValueError, match="no recipe"):
        ensure_teacher(load_bundle(folder), tmp_path / "rebuilt-onnx")
