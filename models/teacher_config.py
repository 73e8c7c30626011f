"""A teacher folder's ``teacher.json``: what the teacher was trained from and how it reads and decides.

``{"base": str, "query_prefix": str, "max_length": int, "threshold": float, "pooling": "mean"}``, read by
the training-side bi-encoder and the ONNX runtime alike (json only: no torch).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

TEACHER_CONFIG = "teacher.json"


@dataclass
class TeacherConfig:
    base: str
    query_prefix: str = ""
    max_length: int = 128
    threshold: float = 0.5
    pooling: str = "mean"

    def save(self, folder: Path) -> None:
        (Path(folder) / TEACHER_CONFIG).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TeacherConfig:
        path = Path(folder) / TEACHER_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a teacher folder (no {TEACHER_CONFIG})")
        return cls(**json.loads(path.read_text()))
