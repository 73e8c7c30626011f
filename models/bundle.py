"""The FlipKD bundle: a plain PEFT adapter plus ``flipkd.json``, with a sha256 for every file.

``flipkd.json`` holds: ``base_model`` (name or path, and weight sha256 when known), ``encoder`` (the
:class:`EncoderSpec`), ``threshold`` (decision on the student's cosine, calibrated on dev), ``teacher``
(identity: folder name, graph sha256, threshold), ``data`` (file and sha256), ``seed``, ``command``,
``metrics`` and ``files`` (relative path -> sha256 of every other file in the bundle, ``teacher/`` included).
``PeftModel.from_pretrained(base, bundle_dir)`` loads the adapter as is. A bundle may carry its teacher in
``teacher/``: an adapter teacher (:mod:`flipkd.models.teacher_config`), exported to ONNX into the model
cache on first use (:mod:`flipkd.models.teacher_cache`), or an ONNX teacher folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flipkd.models.encoder_spec import EncoderSpec
from flipkd.models.hashing import sha256_file, verify_sha256
from flipkd.models.onnx_teacher import ONNX_FILE
from flipkd.models.teacher_cache import onnx_teacher_dir
from flipkd.models.teacher_config import TEACHER_CONFIG

MANIFEST = "flipkd.json"
TEACHER_DIR = "teacher"
SHIPPED_BUNDLES = Path(__file__).parent / "bundles"
DEFAULT_BUNDLE = SHIPPED_BUNDLES / "atec"


def bundle_folder(name_or_folder: str | Path) -> Path:
    """The folder as given when it holds a bundle, else the shipped bundle of that name (``atec``,
    ``mqp``) when there is one, else the folder as given (for :func:`load_bundle` to refuse by name)."""
    given = Path(name_or_folder)
    shipped = SHIPPED_BUNDLES / given.name
    is_name = given.name == str(name_or_folder)
    if (given / MANIFEST).is_file() or not is_name or not (shipped / MANIFEST).is_file():
        return given
    return shipped


class BundleError(ValueError):
    """A bundle folder is incomplete or altered."""


@dataclass(frozen=True)
class Bundle:
    folder: Path
    manifest: dict

    @property
    def encoder(self) -> EncoderSpec:
        return EncoderSpec.from_json(self.manifest["encoder"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def base_model(self) -> str:
        return self.manifest["base_model"]["name"]

    @property
    def teacher_dir(self) -> Path | None:
        """The teacher folder the bundle carries (``teacher/``: adapter or ONNX teacher), if any."""
        folder = self.folder / TEACHER_DIR
        return folder if (folder / TEACHER_CONFIG).is_file() else None

    def teacher_source(self, explicit: Path | None = None) -> Path | None:
        """The teacher to compare with, as found (nothing is exported): ``explicit``, else the bundled one,
        else the folder the student was trained with if it is still there and its graph's sha256 is the
        one recorded; else None."""
        if explicit is not None:
            return explicit
        if self.teacher_dir is not None:
            return self.teacher_dir
        recorded = (self.manifest.get("teacher") or {}).get("onnx_sha256")
        trained_with = (self.manifest.get("config") or {}).get("teacher")
        if recorded and trained_with and (Path(trained_with) / ONNX_FILE).is_file() \
                and sha256_file(Path(trained_with) / ONNX_FILE) == recorded:
            return Path(trained_with)
        return None

    def find_teacher(self, explicit: Path | None = None) -> Path | None:
        """:meth:`teacher_source` as an ONNX teacher folder: an adapter teacher is exported into the model
        cache on the first call (minutes) and found there afterwards."""
        source = self.teacher_source(explicit)
        return None if source is None else onnx_teacher_dir(source)


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write ``flipkd.json`` with the sha256 of every other file under ``folder``."""
    files = {str(path.relative_to(folder)): sha256_file(path)
             for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST}
    text = json.dumps({**manifest, "files": files}, indent=2, ensure_ascii=False)
    (folder / MANIFEST).write_text(text + "\n")


def load_bundle(folder: Path, verify: bool = True) -> Bundle:
    """Read the manifest and (by default) check every listed file's sha256; BundleError names the file."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder}: not a FlipKD bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    for key in ("base_model", "encoder", "threshold", "files"):
        if key not in manifest:
            raise BundleError(f"{path}: missing {key!r}")
    if verify:
        for relative, digest in manifest["files"].items():
            file = folder / relative
            if not file.is_file():
                raise BundleError(f"{file}: listed in {MANIFEST} but missing")
            try:
                verify_sha256(file, digest)
            except RuntimeError as error:
                raise BundleError(str(error)) from None
    return Bundle(folder, manifest)
