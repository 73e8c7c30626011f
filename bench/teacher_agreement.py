"""How closely a student follows its teacher on pairs it never trained on.

Usage: python bench/teacher_agreement.py --bundle runs/mqp-transfer/transfer-set--seed-13 \
           --data data/medical_question_pairs/dev.jsonl [--bundle ...] --out bench/results/x.json

For each bundle: the student's and the teacher's cosine on every pair of ``--data``, their Pearson and
Spearman correlation, the mean absolute gap, and each side's ROC-AUC on the labels. A student trained to
copy the teacher on more text should correlate better with it on unseen pairs; whether that also lifts
its ROC-AUC says whether copying the teacher is what limits it. Thresholds play no part.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from flipkd.models.bundle import load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.training.data import load_pairs
from flipkd.training.student_scores import student_scores


def agreement(bundle_dir: Path, data: Path) -> dict:
    bundle = load_bundle(bundle_dir)
    pairs = load_pairs(data)
    labels = np.array([p.label for p in pairs])
    student = student_scores(student_encoder(bundle), pairs)
    teacher = OnnxTeacher(bundle.find_teacher(), threads=1).score_pairs(
        [p.text_a for p in pairs], [p.text_b for p in pairs], progress="teacher")
    return {"bundle": str(bundle_dir), "data": str(data), "pairs": len(pairs),
            "pearson": float(pearsonr(student, teacher).statistic),
            "spearman": float(spearmanr(student, teacher).statistic),
            "mean_abs_gap": float(np.mean(np.abs(student - teacher))),
            "student_auc": float(roc_auc_score(labels, student)),
            "teacher_auc": float(roc_auc_score(labels, teacher))}


def save_rows(rows: list[dict], out: Path) -> None:
    """Write ``rows`` to ``out`` as one JSON list and print each as a line."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = [agreement(bundle, args.data) for bundle in args.bundle]
    save_rows(rows, args.out)


if __name__ == "__main__":
    main()
