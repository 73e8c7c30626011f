"""K-fold dataset folders for an estimate over more held-out pairs than one test split has.

Usage: python bench/kfold_split.py --data data/medical_question_pairs --folds 3 --out runs/mqp-kfold

The pool is the dataset's train and dev splits (its test split is never read). Each pair falls in one of
2k slots by the hash of its first text (``flipkd.training.folds.fold_of`` with 2k folds), so a question
and its rewrites stay together: slot r belongs to fold r mod k, and within the fold to its dev half
(r < k) or its test half (r >= k). Fold f's folder ``<out>/fold<f>/`` holds ``train.jsonl`` (every pair
outside fold f), ``dev.jsonl`` (for early stopping and thresholds) and ``test.jsonl`` (scored once), so
each of the k trainings sees about (k-1)/k of the pool and every pool pair is held out exactly once.
Writes ``<out>/folds.json`` with the counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flipkd.training.data import Pair, load_pairs, split_path
from flipkd.training.folds import fold_of


def kfold_splits(pool: list[Pair], folds: int) -> list[dict[str, list[Pair]]]:
    """Per fold, its train / dev / test pairs as the module docstring says."""
    slot = [fold_of(p, 2 * folds) for p in pool]
    return [{"train": [p for p, r in zip(pool, slot, strict=True) if r % folds != f],
             "dev": [p for p, r in zip(pool, slot, strict=True) if r == f],
             "test": [p for p, r in zip(pool, slot, strict=True) if r == f + folds]}
            for f in range(folds)]


def write_pairs(path: Path, pairs: list[Pair]) -> None:
    path.write_text("".join(json.dumps({"text_a": p.text_a, "text_b": p.text_b, "label": p.label},
                                       ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder with train/dev.jsonl")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    pool = load_pairs(split_path(args.data, "train")) + load_pairs(split_path(args.data, "dev"))
    counts = []
    for fold, splits in enumerate(kfold_splits(pool, args.folds)):
        folder = args.out / f"fold{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        for split, pairs in splits.items():
            write_pairs(folder / f"{split}.jsonl", pairs)
        counts.append({split: {"pairs": len(pairs), "positives": sum(p.label for p in pairs)}
                       for split, pairs in splits.items()})
    report = {"data": str(args.data), "pool": len(pool), "folds": args.folds, "per_fold": counts}
    (args.out / "folds.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
