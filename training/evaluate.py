"""``flipkd evaluate``: student (and teacher) metrics of a bundle on a pair file.

Thresholds come from the bundle and the teacher folder, never from the evaluated file. Result:
``{"n", "positives", "student": {"f1", "accuracy", "auc", "threshold"}, "teacher": {same}}``, the
teacher present whenever one is available (``--teacher``, the bundle's ``teacher/`` folder, or the
teacher folder the bundle was trained with if it is still there and its graph hash matches).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.bundle import Bundle, load_bundle
from models.hashing import sha256_file
from models.lora_encoder import LoraEncoder
from models.onnx_teacher import ONNX_FILE, OnnxTeacher
from models.provision import resolve_model
from training.data import load_pairs
from training.metrics import classification_metrics
from training.student_scores import student_scores


def find_teacher(bundle: Bundle, explicit: Path | None = None) -> Path | None:
    """The teacher folder to compare with, or None when none is available."""
    if explicit is not None:
        return explicit
    if bundle.teacher_dir is not None:
        return bundle.teacher_dir
    identity = bundle.manifest.get("teacher") or {}
    trained_with = (bundle.manifest.get("config") or {}).get("teacher")
    if trained_with and (Path(trained_with) / ONNX_FILE).is_file() \
            and sha256_file(Path(trained_with) / ONNX_FILE) == identity.get("onnx_sha256"):
        return Path(trained_with)
    return None


def load_student(bundle: Bundle, dtype: torch.dtype = torch.bfloat16) -> LoraEncoder:
    return LoraEncoder(resolve_model(bundle.base_model), bundle.encoder, adapter=bundle.folder, dtype=dtype)


def evaluate_bundle(bundle_dir: Path, data_file: Path, teacher_dir: Path | None = None) -> dict:
    bundle = load_bundle(bundle_dir)
    pairs = load_pairs(data_file)
    labels = np.array([p.label for p in pairs])
    scores = student_scores(load_student(bundle), pairs)
    result: dict = {"n": len(pairs), "positives": int(labels.sum()),
                    "student": classification_metrics(scores, labels, bundle.threshold)}
    teacher_folder = find_teacher(bundle, teacher_dir)
    if teacher_folder is not None:
        teacher = OnnxTeacher(teacher_folder, threads=torch.get_num_threads())
        teacher_scores = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs])
        result["teacher"] = classification_metrics(teacher_scores, labels, teacher.threshold)
    return result
