"""Would averaging the student's and its bundled teacher's scores beat the teacher? Dev-only analysis.

fused_w = w * z(s_student) + (1 - w) * z(s_teacher), z standardising each model's scores over the pairs
read; for each w the ROC-AUC and the best F1 over all thresholds (an upper bound: the threshold is chosen
on the same pairs). w = 0 is the teacher alone, w = 1 the student alone.

Usage: python bench/score_fusion.py --bundle models/bundles/mqp \
           --data data/medical_question_pairs/dev.jsonl --out bench/results/mqp-fusion/dev.json
``--teacher FOLDER`` (an ONNX or adapter teacher) fuses a bundle that carries none, for example a student
trained on labels alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from flipkd.models.bundle import load_bundle
from flipkd.models.lora_encoder import student_encoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.teacher_cache import onnx_teacher_dir
from flipkd.training.data import load_pairs
from flipkd.training.metrics import ranking_quality
from flipkd.training.student_scores import student_scores

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def standardised(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean()) / scores.std()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, help="teacher to fuse with (default: the bundle's own)")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    pairs = load_pairs(args.data)
    labels = np.array([p.label for p in pairs])
    student = standardised(student_scores(student_encoder(bundle), pairs))
    teacher_source = bundle.teacher_source(args.teacher)
    if teacher_source is None:
        raise SystemExit(f"{args.bundle} has no teacher to fuse with")
    teacher_folder = onnx_teacher_dir(teacher_source)
    teacher = OnnxTeacher(teacher_folder, threads=torch.get_num_threads())
    teacher_scores = standardised(np.asarray(teacher.score_pairs([p.text_a for p in pairs],
                                                                 [p.text_b for p in pairs])))
    rows = []
    for weight in WEIGHTS:
        fused = weight * student + (1 - weight) * teacher_scores
        rows.append({"student_weight": weight, **ranking_quality(fused, labels)})
        print(f"w={weight:.2f}  ROC-AUC {rows[-1]['auc']:.4f}  best F1 {rows[-1]['best_f1']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bundle": str(args.bundle), "teacher": str(teacher_source),
                                    "data": str(args.data), "n": len(pairs),
                                    "score_correlation": float(np.corrcoef(student, teacher_scores)[0, 1]),
                                    "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
