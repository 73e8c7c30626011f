"""Text pairs from JSONL: one ``{"text_a": str, "text_b": str, "label": 0|1}`` per line.

Every malformed line is an error naming the file and the 1-based line number; nothing is skipped.
A dataset folder holds ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flipkd.models.hashing import sha256_file

SPLITS = ("train", "dev", "test")


class PairFileError(ValueError):
    """A line of a pair file is not a valid pair; the message names file and line."""


@dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str
    label: int


def _parse_line(raw: str, where: str) -> Pair:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as error:
        raise PairFileError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise PairFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in ("text_a", "text_b"):
        value = record.get(key)
        if not isinstance(value, str):
            raise PairFileError(f"{where}: {key!r} is missing or not a string")
        if not value.strip():
            raise PairFileError(f"{where}: {key!r} is empty")
    label = record.get("label")
    if isinstance(label, bool) or label not in (0, 1):
        raise PairFileError(f"{where}: 'label' must be 0 or 1, got {label!r}")
    return Pair(record["text_a"], record["text_b"], int(label))


def load_pairs(path: Path, limit: int | None = None) -> list[Pair]:
    """All pairs of a JSONL file (the first ``limit`` if given); raises PairFileError on a bad line."""
    pairs: list[Pair] = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and len(pairs) >= limit:
                break
            if not raw.strip():
                raise PairFileError(f"{path}:{number}: empty line")
            pairs.append(_parse_line(raw, f"{path}:{number}"))
    if not pairs:
        raise PairFileError(f"{path}: no pairs")
    return pairs


def distinct_texts(pairs: Iterable[Pair]) -> list[str]:
    """Every text of ``pairs`` (``text_a`` then ``text_b`` of each) once, in order of first appearance."""
    return list(dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)))


def split_path(dataset_dir: Path, split: str) -> Path:
    """``<dataset_dir>/<split>.jsonl``; raises FileNotFoundError naming it when absent."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such split file")
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a data file's bytes, for recording which data a model saw."""
    return sha256_file(Path(path))
