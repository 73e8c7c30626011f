"""Teacher similarities for every pair of a data file, cached on disk.

The cache key is sha256(data file) + sha256(teacher graph) (+ the line range when only part of the
file is scored), so a changed file or teacher never reuses stale scores. Scores are stored as
safetensors under ``$FLIPKD_HOME/teacher-scores/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from flipkd.models.hashing import sha256_file
from flipkd.models.home import flipkd_home
from flipkd.models.onnx_teacher import ONNX_FILE, OnnxTeacher
from flipkd.training.data import load_pairs

ALL = slice(None)


def score_cache_path(data_file: Path, teacher_dir: Path, selection: slice = ALL) -> Path:
    key = f"{sha256_file(data_file)[:16]}-{sha256_file(Path(teacher_dir) / ONNX_FILE)[:16]}"
    if (selection.start or 0, selection.stop) != (0, None):
        key += f"-{selection.start or 0}-{'' if selection.stop is None else selection.stop}"
    return flipkd_home() / "teacher-scores" / f"{key}.safetensors"


def teacher_scores(data_file: Path, teacher_dir: Path, threads: int = 2, selection: slice = ALL
                   ) -> np.ndarray:
    """Cosine of the ONNX teacher for the pairs ``selection`` of ``data_file`` (file order), computed once."""
    cache = score_cache_path(data_file, teacher_dir, selection)
    if cache.exists():
        return load_file(str(cache))["scores"]
    pairs = load_pairs(data_file)[selection]
    teacher = OnnxTeacher(teacher_dir, threads)
    scores = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs],
                                 progress=f"teacher {Path(data_file).name}").astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    save_file({"scores": scores}, str(partial))
    partial.rename(cache)
    return scores
