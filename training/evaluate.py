"""``flipkd evaluate``: student (and teacher) metrics of a bundle on a pair file.

Thresholds come from the bundle and the teacher folder, never from the evaluated file. Result:
``{"n", "positives", "student": {"f1", "accuracy", "auc", "threshold"}, "teacher": {same}}``, the
teacher present whenever one is available (``--teacher``, the bundle's ``teacher/`` folder, or the
teacher folder the bundle was trained with if it is still there and its graph hash matches); an adapter
teacher is scored by its ONNX export from the model cache, exported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flipkd.models.bundle import load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.training.data import Pair, load_pairs
from flipkd.training.metrics import classification_metrics
from flipkd.training.student_scores import student_scores


@dataclass(frozen=True)
class PairScores:
    """A bundle's student and (when found) teacher scores for the same pairs, with their thresholds."""
    student: np.ndarray
    student_threshold: float
    teacher: np.ndarray | None = None
    teacher_threshold: float | None = None


def bundle_pair_scores(bundle_dir: Path, pairs: list[Pair], teacher_dir: Path | None = None) -> PairScores:
    """Score ``pairs`` with the bundle's student and with its teacher (found as the module docstring says)."""
    bundle = load_bundle(bundle_dir)
    student = student_scores(student_encoder(bundle), pairs)
    teacher_folder = bundle.find_teacher(teacher_dir)
    if teacher_folder is None:
        return PairScores(student, bundle.threshold)
    teacher = OnnxTeacher(teacher_folder, threads=torch.get_num_threads())
    scores = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs], progress="teacher")
    return PairScores(student, bundle.threshold, scores, teacher.threshold)


def evaluate_bundle(bundle_dir: Path, data_file: Path, teacher_dir: Path | None = None) -> dict:
    pairs = load_pairs(data_file)
    labels = np.array([p.label for p in pairs])
    scores = bundle_pair_scores(bundle_dir, pairs, teacher_dir)
    result: dict = {"n": len(pairs), "positives": int(labels.sum()),
                    "student": classification_metrics(scores.student, labels, scores.student_threshold)}
    if scores.teacher is not None:
        result["teacher"] = classification_metrics(scores.teacher, labels, scores.teacher_threshold)
    return result
