"""Make a bundle's teacher available on this machine.

A bundle records its teacher's identity (graph sha256, threshold) and, when known, its recipe: the
:class:`TeacherTrainConfig` fields it was trained with. ``ensure_teacher`` returns the teacher the
bundle can use as is (bundled, or the original folder with the recorded hash), or trains and exports a
new one from the recipe. A rebuilt teacher is the same recipe on the same data, not the same bytes
(threads and hardware change float rounding), so its graph hash differs and the report says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flipkd.models.bundle import Bundle
from flipkd.models.hashing import sha256_file
from flipkd.models.onnx_teacher import ONNX_FILE
from flipkd.models.teacher_export import export_onnx
from flipkd.training.onnx_export import check_export
from flipkd.training.teacher_train import TeacherTrainConfig, train_teacher


def trained_folder(onnx_dir: Path) -> Path:
    """The fine-tuned teacher an export folder came from, by the ``NAME`` / ``NAME-onnx`` convention."""
    return onnx_dir.with_name(onnx_dir.name.removesuffix("-onnx"))


def teacher_recipe(onnx_dir: Path) -> dict | None:
    """The recipe recorded in the fine-tuned teacher's ``metrics.json``, or None when unknown."""
    metrics = trained_folder(Path(onnx_dir)) / "metrics.json"
    return json.loads(metrics.read_text()).get("recipe") if metrics.is_file() else None


def ensure_teacher(bundle: Bundle, out: Path, int8: bool = True) -> dict:
    """The bundle's teacher folder, rebuilt under ``out`` (``out`` and ``out-trained``) if needed.

    Returns ``{"teacher": folder, "rebuilt": bool, "recorded_sha256", "sha256"}`` plus the export
    checks when rebuilt. Raises ValueError when the teacher is missing and the bundle has no recipe.
    """
    identity = bundle.manifest.get("teacher") or {}
    found = bundle.find_teacher()
    if found is not None:
        return {"teacher": str(found), "rebuilt": False, "recorded_sha256": identity.get("onnx_sha256"),
                "sha256": sha256_file(found / ONNX_FILE)}
    out = Path(out)
    if (out / ONNX_FILE).is_file() and (out / "export.json").is_file():
        print(f"{out}: already built", file=sys.stderr)
        report = json.loads((out / "export.json").read_text())
    else:
        recipe = identity.get("recipe")
        if not recipe:
            raise ValueError(f"{bundle.folder}: the teacher is not here and the bundle records no recipe")
        trained = trained_folder(out)
        train_teacher(TeacherTrainConfig(**{**recipe, "data": Path(recipe["data"]), "out": trained}),
                      zero_shot=False)
        export_onnx(trained, out)
        report = check_export(trained, out, Path(recipe["data"]), int8)
    return {"teacher": str(out), "rebuilt": True, "recorded_sha256": identity.get("onnx_sha256"),
            "sha256": sha256_file(out / ONNX_FILE), "export": report}
