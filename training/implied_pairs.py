"""Pairs the labels imply, one hop through a shared text.

Paraphrase labels are (near) an equivalence: if a ~ b and a ~ c then b ~ c, and if a ~ b and a !~ c then
b !~ c. For every text t, with P(t) its positives and N(t) its negatives in the labelled pairs,

    implied positives:  (p, q, 1)  for p != q in P(t)
    implied negatives:  (p, n, 0)  for p in P(t), n in N(t)

Medical Question Pairs is built this way (each question has one paraphrase and one question with a
different answer), so each group yields a negative between its paraphrase and its other question,
two texts on one topic.
Only pairs the labelled set does not hold (in either order) are returned; a pair implied with both
labels (contradicting labels somewhere) is dropped. Two negatives imply nothing. Order is deterministic:
the order texts first appear in the labelled pairs; each pair reads as first implied (positive side first).
"""

from __future__ import annotations

from collections import defaultdict

from flipkd.training.data import Pair


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def implied_pairs(pairs: list[Pair]) -> list[Pair]:
    """The pairs ``pairs`` imply (module docstring), none of them already labelled."""
    positives: dict[str, list[str]] = defaultdict(list)
    negatives: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        side = positives if pair.label == 1 else negatives
        side[pair.text_a].append(pair.text_b)
        side[pair.text_b].append(pair.text_a)
    labelled = {_key(p.text_a, p.text_b) for p in pairs}
    implied: dict[tuple[str, str], tuple[str, str, set[int]]] = {}
    for text in dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)):
        same, other = positives.get(text, []), negatives.get(text, [])
        candidates = [(p, q, 1) for i, p in enumerate(same) for q in same[i + 1:]]
        candidates += [(p, n, 0) for p in same for n in other]
        for a, b, label in candidates:
            key = _key(a, b)
            if a != b and key not in labelled:
                implied.setdefault(key, (a, b, set()))[2].add(label)
    return [Pair(a, b, labels.pop()) for a, b, labels in implied.values() if len(labels) == 1]
