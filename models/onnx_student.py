"""The student at inference in onnxruntime: a bundle's exported graph, fp32 or int8, with no torch.

An exported student folder (:mod:`flipkd.models.student_export`) holds ``student.onnx`` (inputs
``input_ids``, ``attention_mask``: int64 (batch, length); output ``embeddings``: float32 (batch, dim), unit
length), optionally ``student-int8.onnx``, the truncating ``tokenizer.json`` and ``student.json``
(``bundle_sha256``, ``encoder``: the bundle's encoder spec, ``pad_id``, ``dim``).
A bundle's export lives in the model cache at ``$FLIPKD_HOME/students/<first 16 hex of bundle_key>-<format>``:
:func:`ensure_student_onnx` exports and checks it there on first use (torch needed then only), in a
temporary folder renamed into place, and reuses it afterwards; the same bundle's exports of other formats are
removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tokenizers import Tokenizer

from flipkd.models.atomic_dir import build_atomically
from flipkd.models.bundle import MANIFEST, Bundle
from flipkd.models.encoder_spec import EncoderSpec
from flipkd.models.hashing import sha256_file
from flipkd.models.home import flipkd_home
from flipkd.models.onnx_encoder import OnnxEncoder
from flipkd.models.padding import STUDENT_CPU_OVERHEAD_TOKENS
from flipkd.models.text_encoder import echo_separator, ids_only

ONNX_FILE = "student.onnx"
INT8_FILE = "student-int8.onnx"
STUDENT_CONFIG = "student.json"
KEY_LENGTH = 16
EXPORT_FORMAT = 4  # raise when the exported graph or its quantization changes


def bundle_key(folder: Path) -> str:
    """sha256 of the bundle's ``flipkd.json``, which records the sha256 of every other file, the base
    model and the encoder spec: two bundles with one key embed alike."""
    return sha256_file(Path(folder) / MANIFEST)


class OnnxStudent(OnnxEncoder):
    """Embeds texts with an exported student (``int8``: the quantized graph): (N, ``dim``) float32 numpy
    arrays, unit length."""

    def __init__(self, folder: Path, threads: int = 1, int8: bool = False) -> None:
        folder = Path(folder)
        config = json.loads((folder / STUDENT_CONFIG).read_text())
        self.spec = EncoderSpec.from_json(config["encoder"])
        super().__init__(folder / (INT8_FILE if int8 else ONNX_FILE), threads)
        self.pad_id = config["pad_id"]
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.ids_tokenizer = ids_only(tokenizer, self.spec.max_length)
        self.echo_separator = echo_separator(self.ids_tokenizer, self.spec.echo)

    def format_text(self, text: str) -> str:
        return self.spec.format(text)

    def _overhead_tokens(self) -> int:
        return STUDENT_CPU_OVERHEAD_TOKENS


def student_cache_dir(bundle: Bundle) -> Path:
    """``<first 16 hex of bundle_key>-<EXPORT_FORMAT>``: a new export recipe never reuses an old graph."""
    return flipkd_home() / "students" / f"{bundle_key(bundle.folder)[:KEY_LENGTH]}-{EXPORT_FORMAT}"


def drop_other_formats(target: Path) -> None:
    """Remove the same bundle's exports of other formats (``<key>-<n>`` beside ``target``): no version of
    this code reads them again. A server already running on one keeps its graphs, loaded in memory."""
    key = target.name.rpartition("-")[0]
    for stale in target.parent.glob(f"{key}-*"):
        if stale != target and stale.name.rpartition("-")[2].isdigit():
            shutil.rmtree(stale, ignore_errors=True)


def ensure_student_onnx(bundle: Bundle) -> Path:
    """The bundle's exported student folder in the cache, exported (fp32 and int8) and parity-checked on
    the first call (a minute or more: loads torch and the base). Raises ExportCheckFailed on a parity miss."""
    target = student_cache_dir(bundle)
    drop_other_formats(target)
    if target.is_dir():
        return target
    from flipkd.models.student_export import export_student  # torch only when exporting

    def export(building: Path) -> None:
        report = export_student(bundle, building)
        record = {**report, "source": str(Path(bundle.folder).resolve())}
        (building / "export.json").write_text(json.dumps(record, indent=2) + "\n")

    return build_atomically(target, export)
