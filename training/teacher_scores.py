"""Teacher similarities for a list of pairs, cached on disk.

The cache key is sha256 of the pairs' texts (in order) + sha256 of the teacher graph, so changed pairs
or a changed teacher never reuse stale scores. Scores are stored as safetensors under
``$FLIPKD_HOME/teacher-scores/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from flipkd.models.hashing import sha256_file
from flipkd.models.home import flipkd_home
from flipkd.models.onnx_teacher import ONNX_FILE, OnnxTeacher
from flipkd.training.data import Pair


def score_cache_path(pairs: Sequence[Pair], teacher_dir: Path) -> Path:
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps([pair.text_a, pair.text_b], ensure_ascii=False).encode() + b"\n")
    key = f"{digest.hexdigest()[:16]}-{sha256_file(Path(teacher_dir) / ONNX_FILE)[:16]}"
    return flipkd_home() / "teacher-scores" / f"{key}.safetensors"


def teacher_scores(pairs: Sequence[Pair], teacher_dir: Path, threads: int = 2, progress: str = "teacher"
                   ) -> np.ndarray:
    """The ONNX teacher's cosine for each pair (in order), computed once per pairs and teacher."""
    cache = score_cache_path(pairs, teacher_dir)
    if cache.exists():
        return load_file(str(cache))["scores"]
    teacher = OnnxTeacher(teacher_dir, threads)
    scores = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs],
                                 progress=progress).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    save_file({"scores": scores}, str(partial))
    partial.rename(cache)
    return scores
