"""Dev metrics of ONNX teachers alone and of the average of their cosines: is an ensemble a stronger
teacher signal than its best member?

Usage: python bench/teacher_ensemble.py --data data/medical_question_pairs/dev.jsonl \
           --teacher runs/teacher-mqp-minilm-onnx --teacher runs/teacher-mqp-e5-onnx \
           --out bench/results/mqp-e5/teacher_ensemble_dev.json

Each teacher scores the pairs (cosine of its embeddings); the ensemble's score is the mean of the
members' cosines. F1 and accuracy are at each score's best-F1 threshold on the same pairs (dev is the
calibration split), ROC-AUC is threshold-free. Dev only: the test split is not read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.training.data import load_pairs
from flipkd.training.metrics import best_f1_threshold, classification_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, action="append", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pairs = load_pairs(args.data)
    labels = np.array([pair.label for pair in pairs])
    scores = {str(folder): OnnxTeacher(folder, args.threads).score_pairs([p.text_a for p in pairs],
                                                                        [p.text_b for p in pairs])
              for folder in args.teacher}
    scores["mean of cosines"] = np.mean(list(scores.values()), axis=0)
    report = {"data": str(args.data), "pairs": len(pairs),
              "teachers": {name: classification_metrics(s, labels, best_f1_threshold(s, labels))
                           for name, s in scores.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
