"""A teacher folder's ``teacher.json``: what the teacher was trained from and how it reads and decides.

``{"base": str, "base_sha256": str | null, "query_prefix": str, "max_length": int, "threshold": float,
"pooling": "mean"}``, read by the training-side bi-encoder and the ONNX runtime alike (json only: no
torch). ``base_sha256`` is the pinned weight hash of a provisioned base (null for other bases).

A teacher folder is one of: an exported ONNX teacher (``teacher.onnx``, :mod:`flipkd.models.onnx_teacher`),
a fully fine-tuned transformers folder, or an *adapter teacher*: exactly :data:`ADAPTER_TEACHER_FILES`
(a plain PEFT LoRA adapter over ``base`` plus ``teacher.json``), which is what a bundle carries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

TEACHER_CONFIG = "teacher.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_TEACHER_FILES = (ADAPTER_CONFIG, "adapter_model.safetensors", TEACHER_CONFIG)


@dataclass
class TeacherConfig:
    base: str
    query_prefix: str = ""
    max_length: int = 128
    threshold: float = 0.5
    pooling: str = "mean"
    base_sha256: str | None = None

    def save(self, folder: Path) -> None:
        (Path(folder) / TEACHER_CONFIG).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TeacherConfig:
        path = Path(folder) / TEACHER_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a teacher folder (no {TEACHER_CONFIG})")
        return cls(**json.loads(path.read_text()))


def is_adapter_teacher(folder: Path) -> bool:
    """True when ``folder`` holds a PEFT adapter and ``teacher.json`` (an adapter teacher)."""
    return all((Path(folder) / name).is_file() for name in (ADAPTER_CONFIG, TEACHER_CONFIG))
