"""Would averaging several students' cosines (seeds of one recipe) beat each alone? Dev-only analysis.

For every bundle alone and for their mean cosine: ROC-AUC and the best F1 over all thresholds (an upper
bound: the threshold is chosen on the same pairs); and the Pearson correlation of each two bundles'
scores (near 1: they make the same mistakes, and averaging cannot help much).

Usage: python bench/student_ensemble.py --data data/medical_question_pairs/dev.jsonl \
           --bundle runs/mqp-echo/echo--seed-13 --bundle runs/mqp-echo/echo--seed-14 \
           --bundle runs/mqp-echo/echo--seed-15 --out bench/results/mqp-implied/seed_ensemble.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from flipkd.models.bundle import load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.training.data import load_pairs
from flipkd.training.metrics import ranking_quality
from flipkd.training.student_scores import student_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pairs = load_pairs(args.data)
    labels = np.array([p.label for p in pairs])
    scores = np.stack([student_scores(student_encoder(load_bundle(folder)), pairs) for folder in args.bundle])
    rows = [{"bundle": str(folder), **ranking_quality(folder_scores, labels)}
            for folder, folder_scores in zip(args.bundle, scores, strict=True)]
    rows.append({"bundle": "mean cosine of all", **ranking_quality(scores.mean(axis=0), labels)})
    for row in rows:
        print(f"{row['bundle']}: ROC-AUC {row['auc']:.4f}  best F1 {row['best_f1']:.4f}")
    correlation = np.corrcoef(scores)
    print("score correlation:\n" + np.array2string(correlation, precision=3))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": str(args.data), "n": len(pairs), "rows": rows,
                                    "score_correlation": correlation.round(4).tolist()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
