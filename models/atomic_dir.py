"""A folder that appears complete or not at all."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def build_atomically(target: Path, build: Callable[[Path], object]) -> Path:
    """Run ``build`` on a fresh temporary folder beside ``target``, then rename it to ``target``.

    On failure the temporary folder is removed and the error raised; ``target`` is never left half
    written. When another builder finished ``target`` first, its folder is kept and ours discarded.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f".{target.name}.{os.getpid()}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        build(building)
        building.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target
