"""Streaming sha256 of files and a check that refuses a mismatch."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


class ChecksumMismatch(RuntimeError):
    """A file's sha256 differs from the pinned one."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ChecksumMismatch naming the file and both hashes unless sha256(path) == expected."""
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatch(
            f"refusing {path}: sha256 is {actual}, expected {expected} (the file was altered or is not "
            "the pinned release)"
        )
