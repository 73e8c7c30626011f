"""Teacher similarities for every pair of a data file, cached on disk.

The cache key is sha256(data file) + sha256(teacher graph), so a changed file or teacher never reuses
stale scores. Scores are stored as safetensors under ``$FLIPKD_HOME/teacher-scores/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from models.hashing import sha256_file
from models.home import flipkd_home
from models.onnx_teacher import ONNX_FILE, OnnxTeacher
from training.data import Pair, load_pairs


def score_cache_path(data_file: Path, teacher_dir: Path) -> Path:
    key = f"{sha256_file(data_file)[:16]}-{sha256_file(Path(teacher_dir) / ONNX_FILE)[:16]}"
    return flipkd_home() / "teacher-scores" / f"{key}.safetensors"


def teacher_scores(data_file: Path, teacher_dir: Path, threads: int = 2,
                   pairs: list[Pair] | None = None) -> np.ndarray:
    """Cosine of the ONNX teacher for each pair of ``data_file`` (in file order), computed once."""
    cache = score_cache_path(data_file, teacher_dir)
    if cache.exists():
        return load_file(str(cache))["scores"]
    pairs = pairs if pairs is not None else load_pairs(data_file)
    teacher = OnnxTeacher(teacher_dir, threads)
    scores = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs]).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    save_file({"scores": scores}, str(partial))
    partial.rename(cache)
    return scores
