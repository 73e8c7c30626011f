"""Word-level variants of a text (EDA-style, no external lexicon), for the teacher-scored transfer set.

Units are whitespace-separated words, or characters for text without spaces (Chinese). One variant
applies one operation, chosen uniformly:
    delete:  drop each unit with probability 0.15 (at least one dropped, at least one kept)
    swap:    exchange two units
    repeat:  duplicate one unit in place
    crop:    drop a leading or trailing run of 1-3 units
Texts of fewer than 3 units get no variants; variants equal to the text are discarded.
"""

from __future__ import annotations

import random


def _units(text: str) -> tuple[list[str], str]:
    words = text.split()
    return (words, " ") if len(words) > 1 else (list(text.strip()), "")


def _delete(units: list[str], rng: random.Random) -> list[str]:
    kept = [u for u in units if rng.random() >= 0.15]
    if len(kept) == len(units):
        kept.pop(rng.randrange(len(kept)))
    return kept or [rng.choice(units)]


def _swap(units: list[str], rng: random.Random) -> list[str]:
    i, j = rng.sample(range(len(units)), 2)
    units = list(units)
    units[i], units[j] = units[j], units[i]
    return units


def _repeat(units: list[str], rng: random.Random) -> list[str]:
    i = rng.randrange(len(units))
    return units[:i + 1] + units[i:]


def _crop(units: list[str], rng: random.Random) -> list[str]:
    n = rng.randint(1, min(3, len(units) - 1))
    return units[n:] if rng.random() < 0.5 else units[:-n]


OPERATIONS = (_delete, _swap, _repeat, _crop)


def word_variants(text: str, count: int, rng: random.Random, attempts: int = 4) -> list[str]:
    """Up to ``count`` distinct variants of ``text`` (fewer if the text is short or repeats come up)."""
    units, joiner = _units(text)
    if len(units) < 3 or count < 1:
        return []
    variants: dict[str, None] = {}
    for _ in range(count * attempts):
        variant = joiner.join(rng.choice(OPERATIONS)(units, rng))
        if variant != text and variant.strip():
            variants.setdefault(variant, None)
        if len(variants) == count:
            break
    return list(variants)
