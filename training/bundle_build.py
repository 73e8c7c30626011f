"""``flipkd distill``: train the student, calibrate its threshold on dev, write the bundle.

The bundle (see :mod:`flipkd.models.bundle`) gets the plain PEFT adapter, ``loss_curve.png``, the
teacher's files in ``teacher/`` when the run's teacher is an adapter teacher, and ``flipkd.json`` with
the base model's identity, encoder spec, threshold, teacher identity, data hash, seed, command, filter
report and training figures (steps, wall time, tokens/s, peak resident memory).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from flipkd.models.bundle import TEACHER_DIR, load_bundle, write_manifest
from flipkd.models.hashing import sha256_file
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_teacher import ONNX_FILE
from flipkd.models.precision import compute_dtype
from flipkd.models.provision import base_identity
from flipkd.models.teacher_cache import teacher_digest
from flipkd.models.teacher_config import ADAPTER_TEACHER_FILES
from flipkd.training.data import file_sha256, load_pairs, split_path
from flipkd.training.distill import train_student
from flipkd.training.distill_config import DistillConfig
from flipkd.training.metrics import calibrated_threshold, classification_metrics
from flipkd.training.plots import plot_loss_curve
from flipkd.training.student_scores import student_scores
from flipkd.training.teacher_rebuild import teacher_recipe

ADAPTER_FILE = "adapter_model.safetensors"
BUNDLE_FILES = ("adapter_config.json", ADAPTER_FILE, "loss_curve.png")


def teacher_identity(teacher: Path, adapter: Path | None = None) -> dict:
    """Folder name, graph hash, threshold and (when known) the recipe it was trained with; for an adapter
    teacher (``adapter``, exported to ``teacher``) its folder's name and the sha256 of its files."""
    config = json.loads((teacher / "teacher.json").read_text())
    trained = adapter or teacher
    identity = {"folder": trained.name, "onnx_sha256": sha256_file(teacher / ONNX_FILE), **config,
                "recipe": teacher_recipe(trained)}
    if adapter is not None:
        identity["adapter_sha256"] = teacher_digest(adapter)
    return identity


def bundle_teacher(adapter: Path, out: Path) -> None:
    """Copy an adapter teacher's files into the bundle's ``teacher/``."""
    target = Path(out) / TEACHER_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_TEACHER_FILES:
        shutil.copy2(Path(adapter) / name, target / name)


def build_bundle(config: DistillConfig, out: Path, dtype: torch.dtype | None = None) -> dict | None:
    """Train and write the bundle in ``dtype`` (None: :func:`~flipkd.models.precision.compute_dtype`'s
    choice); returns the manifest on rank 0 (None on other ranks)."""
    out = Path(out)
    dtype = dtype or compute_dtype()
    result = train_student(config, out, dtype)
    if dist.is_initialized() and dist.get_rank() != 0:
        return None
    dev = config.pairs("dev")
    dev_scores = student_scores(result.student, dev)
    dev_labels = np.array([p.label for p in dev])
    threshold = calibrated_threshold(dev_scores, dev_labels)
    result.student.save_adapter(out, config.base)
    plot_loss_curve(result.losses, out / "loss_curve.png", f"{config.loss.kind} on {config.data.name}")
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    if config.teacher_adapter is not None:
        bundle_teacher(config.teacher_adapter, out)
    report = result.data.filter_report
    manifest = {
        "format": 1,
        "base_model": base_identity(config.base),
        "encoder": config.encoder.to_json(),
        "threshold": threshold,
        "teacher": teacher_identity(config.teacher, config.teacher_adapter) if config.teacher else None,
        "data": {"folder": str(config.data), "train_sha256": file_sha256(split_path(config.data, "train"))},
        "seed": config.train.seed,
        "command": " ".join(sys.argv),
        "config": config.to_json(),
        "filter": report.to_json() if report else None,
        "metrics": {"dev": classification_metrics(dev_scores, dev_labels, threshold),
                    "train_fit": {"auc": result.train_auc, "pairs": min(config.train.fit_pairs,
                                                                        len(result.data.pairs))},
                    "dev_curve": result.dev_curve, "best_step": result.best_step},
        "transfer": result.data.transfer.report() if result.data.transfer is not None else None,
        "training": {
            "pairs": len(result.data.pairs), "steps": result.steps, "world_size": result.world_size,
            "train_seconds": round(result.train_seconds, 1),
            "tokens_per_second": round(result.tokens / max(result.train_seconds, 1e-9), 1),
            "peak_rss_gib": round(result.peak_rss_gib, 2), "final_loss": float(np.mean(result.losses[-20:])),
            "device": str(result.student.device), "dtype": str(dtype).removeprefix("torch."),
        },
    }
    write_manifest(out, manifest)
    return manifest


def bf16_adapter(folder: Path) -> None:
    """Store the student adapter's weights in bfloat16 (half the bytes; the served base runs in bf16)."""
    path = Path(folder) / ADAPTER_FILE
    save_file({name: tensor.to(torch.bfloat16) for name, tensor in load_file(str(path)).items()}, str(path))


def carried_teacher_identity(adapter: Path) -> dict:
    """Identity of an adapter teacher a bundle carries beside (not as) the teacher its student learned
    from: folder name, sha256 of its files, ``teacher.json`` and, when it has a ``metrics.json`` (for
    example from ``flipkd extract-teacher``), how it was made and its dev metrics."""
    missing = [name for name in ADAPTER_TEACHER_FILES if not (Path(adapter) / name).is_file()]
    if missing:
        raise ValueError(f"{adapter} is not an adapter teacher: missing {', '.join(missing)}")
    identity = {"folder": Path(adapter).name, "adapter_sha256": teacher_digest(adapter),
                **json.loads((Path(adapter) / "teacher.json").read_text())}
    metrics_file = Path(adapter) / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        identity.update({key: metrics[key] for key in ("mode", "rank", "source_sha256", "energy_kept",
                                                       "dev_cosine_gap", "recipe", "source_recipe")
                         if key in metrics})
        if "fine_tuned" in metrics:
            identity["dev"] = metrics["fine_tuned"]["dev"]
    return identity


def publish_bundle(source: Path, out: Path, bf16: bool = False, teacher: Path | None = None,
                   recalibrate: bool = False) -> dict:
    """Copy a verified bundle's files (no checkpoint; its ``teacher/`` when it carries one) to ``out`` and
    rewrite its manifest there, with the teacher identity of an unbundled teacher refreshed from its
    folder when it is still present (adds its recipe). With ``bf16`` the student adapter is stored in
    bfloat16 and the threshold and dev metrics are computed again from the stored weights
    (``adapter_dtype`` and the full-precision ``dev_before_bf16`` are recorded); ``recalibrate`` computes
    them again without converting (``dev_before_recalibration`` recorded), so a bundle calibrated by an
    older rule gets :func:`~flipkd.training.metrics.calibrated_threshold`'s. With ``teacher`` (an
    adapter teacher folder) the bundle carries that teacher in ``teacher/`` instead: ``teacher`` in the
    manifest stays the one the student learned from and ``carried_teacher`` names the one shipped, so a
    teacher that is not byte-for-byte the student's is never passed off as it."""
    bundle = load_bundle(source)
    carried = None if teacher is None else carried_teacher_identity(teacher)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        if (bundle.folder / name).is_file():
            shutil.copy2(bundle.folder / name, out / name)
    if teacher is not None:
        shutil.rmtree(out / TEACHER_DIR, ignore_errors=True)
        bundle_teacher(teacher, out)
    elif bundle.teacher_dir is not None:
        shutil.copytree(bundle.teacher_dir, out / TEACHER_DIR, dirs_exist_ok=True)
    manifest = {key: value for key, value in bundle.manifest.items() if key != "files"}
    trained_with = bundle.teacher_source()
    if trained_with is not None and trained_with != bundle.teacher_dir:
        manifest["teacher"] = teacher_identity(trained_with)
    if carried is not None:
        manifest["carried_teacher"] = carried
    if bf16:
        bf16_adapter(out)
        manifest["adapter_dtype"] = "bfloat16"
    if bf16 or recalibrate:
        write_manifest(out, manifest)
        dev_limit = manifest["config"]["train"].get("dev_limit")
        dev = load_pairs(split_path(Path(manifest["data"]["folder"]), "dev"))[:dev_limit]
        scores = student_scores(student_encoder(load_bundle(out)), dev)
        labels = np.array([p.label for p in dev])
        manifest["threshold"] = calibrated_threshold(scores, labels)
        before = "dev_before_bf16" if bf16 else "dev_before_recalibration"
        manifest["metrics"] = {**manifest["metrics"], before: manifest["metrics"]["dev"],
                               "dev": classification_metrics(scores, labels, manifest["threshold"])}
    write_manifest(out, manifest)
    return load_bundle(out).manifest
