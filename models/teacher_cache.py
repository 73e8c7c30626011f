"""Adapter teachers as ONNX teachers: exported once per machine into the model cache.

An adapter teacher (:data:`ADAPTER_TEACHER_FILES`) is keyed by the sha256 of its files (each file's
name and sha256, in that order); its ONNX teacher folder is ``$FLIPKD_HOME/teachers/<first 16 hex>``.
:func:`ensure_exported` exports and parity-checks it there
(:func:`flipkd.models.teacher_export.export_checked`; the report goes to ``export.json``) in a temporary
folder renamed into place, so the folder exists only complete; later calls reuse it without exporting.
Importing this module loads no torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flipkd.models.atomic_dir import build_atomically
from flipkd.models.hashing import sha256_file
from flipkd.models.home import flipkd_home
from flipkd.models.teacher_config import ADAPTER_TEACHER_FILES, is_adapter_teacher

KEY_LENGTH = 16


def teacher_digest(folder: Path) -> str:
    """Hex sha256 over an adapter teacher's files: what makes two copies the same teacher."""
    digest = hashlib.sha256()
    for name in ADAPTER_TEACHER_FILES:
        digest.update(f"{name}\0{sha256_file(Path(folder) / name)}\n".encode())
    return digest.hexdigest()


def teacher_cache_dir(folder: Path) -> Path:
    """Where the adapter teacher in ``folder`` is (or will be) exported."""
    return flipkd_home() / "teachers" / teacher_digest(folder)[:KEY_LENGTH]


def ensure_exported(folder: Path) -> Path:
    """The adapter teacher's ONNX folder in the cache, exported and checked on the first call (minutes:
    loads torch, the base model and the adapter). Raises ExportCheckFailed when parity fails."""
    target = teacher_cache_dir(folder)
    if target.is_dir():
        return target
    from flipkd.models.teacher_export import export_checked  # torch only when exporting

    def export(building: Path) -> None:
        report = export_checked(folder, building)
        record = {**report, "source": str(Path(folder).resolve()), "teacher_sha256": teacher_digest(folder)}
        (building / "export.json").write_text(json.dumps(record, indent=2) + "\n")

    return build_atomically(target, export)


def onnx_teacher_dir(folder: Path) -> Path:
    """The ONNX teacher folder for a teacher folder: an adapter teacher's cached export
    (:func:`ensure_exported`), any other folder as given."""
    return ensure_exported(folder) if is_adapter_teacher(folder) else Path(folder)
