"""Student minus teacher on the same pairs: paired bootstrap intervals of the F1 and ROC-AUC differences.

Usage: python bench/paired_test.py --bundle models/bundles/mqp --data data/medical_question_pairs/test.jsonl \
           --out bench/results/mqp-paired

Both models score every pair at their own dev-calibrated thresholds (the bundle's, and its teacher's as
``flipkd evaluate`` finds it); each of ``--resamples`` bootstrap resamples draws the pairs once and
scores both on them, so the interval is of the difference itself, narrower than comparing two
separate intervals. Writes ``paired.json`` (the differences, their 95% percentile intervals, the share of
resamples in which the student leads, and the per-pair agreement counts) and ``paired.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score, roc_auc_score  # noqa: E402

from flipkd.training.data import load_pairs  # noqa: E402
from flipkd.training.evaluate import bundle_pair_scores  # noqa: E402
from flipkd.training.metrics import classification_metrics  # noqa: E402


def paired_bootstrap(labels: np.ndarray, student: np.ndarray, teacher: np.ndarray, student_cut: float,
                     teacher_cut: float, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per resample (pairs drawn with replacement, the same draw for both models): F1 and ROC-AUC of
    the student minus the teacher's."""
    rng = np.random.default_rng(seed)
    f1, auc = np.empty(resamples), np.empty(resamples)
    for k in range(resamples):
        index = rng.integers(0, len(labels), len(labels))
        y = labels[index]
        f1[k] = (f1_score(y, student[index] >= student_cut, zero_division=0)
                 - f1_score(y, teacher[index] >= teacher_cut, zero_division=0))
        auc[k] = roc_auc_score(y, student[index]) - roc_auc_score(y, teacher[index])
    return {"f1": f1, "auc": auc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, help="teacher folder when the bundle does not find its own")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.data)
    labels = np.array([p.label for p in pairs])
    scores = bundle_pair_scores(args.bundle, pairs, args.teacher)
    if scores.teacher is None:
        parser.error(f"{args.bundle}: no teacher found; pass --teacher")
    student, teacher = scores.student, scores.teacher
    cuts = (scores.student_threshold, scores.teacher_threshold)
    deltas = paired_bootstrap(labels, student, teacher, *cuts, args.resamples, args.seed)
    right_student = (student >= cuts[0]) == labels
    right_teacher = (teacher >= cuts[1]) == labels
    metrics = {"student": classification_metrics(student, labels, cuts[0]),
               "teacher": classification_metrics(teacher, labels, cuts[1])}
    report = {
        "bundle": str(args.bundle), "data": str(args.data), "n": len(pairs), "resamples": args.resamples,
        "thresholds": {"student": cuts[0], "teacher": cuts[1]},
        "f1": {model: values["f1"] for model, values in metrics.items()},
        "auc": {model: values["auc"] for model, values in metrics.items()},
        "pairs_only_student_right": int((right_student & ~right_teacher).sum()),
        "pairs_only_teacher_right": int((~right_student & right_teacher).sum()),
    }
    for metric, values in deltas.items():
        report[f"{metric}_difference"] = {
            "point": report[metric]["student"] - report[metric]["teacher"],
            "ci95": [float(v) for v in np.percentile(values, [2.5, 97.5])],
            "student_leads_share": float((values > 0).mean()),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paired.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, (metric, values) in zip(axes, deltas.items(), strict=True):
        axis.hist(values, bins=40, color="tab:blue", alpha=0.8)
        axis.axvline(0, color="black", linewidth=1)
        axis.axvline(report[f"{metric}_difference"]["point"], color="tab:red", linestyle="--",
                     label="measured")
        axis.set_xlabel(f"student - teacher {metric.upper()} (paired bootstrap)")
        axis.legend(fontsize=8)
    figure.suptitle(f"{args.bundle.name} on {args.data.name}, {len(pairs)} pairs", fontsize=10)
    figure.tight_layout()
    figure.savefig(args.out / "paired.png", dpi=120)


if __name__ == "__main__":
    main()
