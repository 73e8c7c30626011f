"""Student minus teacher on the same pairs: paired bootstrap intervals of the F1 and ROC-AUC differences.

Usage: python bench/paired_test.py --bundle models/bundles/mqp --data data/medical_question_pairs/test.jsonl \
           --out bench/results/mqp-paired
       python bench/paired_test.py --bundle B0 --data F0 --bundle B1 --data F1 ... --out DIR   (pooled)

Both models score every pair at their own dev-calibrated thresholds (the bundle's, and its teacher's as
``flipkd evaluate`` finds it); each of ``--resamples`` bootstrap resamples draws the pairs once and
scores both on them, so the interval is of the difference itself, narrower than comparing two
separate intervals. Several ``--bundle``/``--data`` groups (k-fold students, each with its own teacher and
held-out pairs) are pooled: every pair is predicted at its own group's thresholds, and each model's
scores are centred at its threshold (score - cut) so that one ROC-AUC ranks the pooled pairs (for a
single group this is the plain ROC-AUC). Writes ``paired.json`` (the differences, their 95% percentile
intervals, the share of resamples in which the student leads, the per-pair agreement counts and each
group's own figures) and ``paired.png``.
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


def paired_bootstrap(labels: np.ndarray, student: np.ndarray, teacher: np.ndarray, resamples: int,
                     seed: int) -> dict[str, np.ndarray]:
    """Per resample (pairs drawn with replacement, the same draw for both models): F1 (positive where the
    centred score is >= 0) and ROC-AUC of the student minus the teacher's."""
    rng = np.random.default_rng(seed)
    f1, auc = np.empty(resamples), np.empty(resamples)
    for k in range(resamples):
        index = rng.integers(0, len(labels), len(labels))
        y = labels[index]
        f1[k] = (f1_score(y, student[index] >= 0, zero_division=0)
                 - f1_score(y, teacher[index] >= 0, zero_division=0))
        auc[k] = roc_auc_score(y, student[index]) - roc_auc_score(y, teacher[index])
    return {"f1": f1, "auc": auc}


def group_scores(bundle: Path, data: Path, teacher_dir: Path | None) -> dict:
    """One group's labels and both models' scores centred at their own thresholds, with its own figures."""
    pairs = load_pairs(data)
    labels = np.array([p.label for p in pairs])
    scores = bundle_pair_scores(bundle, pairs, teacher_dir)
    if scores.teacher is None:
        raise SystemExit(f"{bundle}: no teacher found; pass --teacher")
    raw = {"student": scores.student, "teacher": scores.teacher}
    cuts = {"student": scores.student_threshold, "teacher": scores.teacher_threshold}
    report = {"bundle": str(bundle), "data": str(data), "n": len(pairs), "thresholds": cuts,
              **{model: classification_metrics(raw[model], labels, cuts[model]) for model in raw}}
    return {"labels": labels, "centred": {model: raw[model] - cuts[model] for model in raw}, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="pair file, one per --bundle, in the same order")
    parser.add_argument("--teacher", type=Path, help="teacher folder when a bundle does not find its own")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.bundle) != len(args.data):
        parser.error(f"{len(args.bundle)} --bundle but {len(args.data)} --data: one pair file per bundle")
    torch.set_num_threads(args.threads)
    inputs = list(zip(args.bundle, args.data, strict=True))
    groups = [group_scores(bundle, data, args.teacher) for bundle, data in inputs]
    labels = np.concatenate([g["labels"] for g in groups])
    student, teacher = (np.concatenate([g["centred"][model] for g in groups])
                        for model in ("student", "teacher"))
    deltas = paired_bootstrap(labels, student, teacher, args.resamples, args.seed)
    right_student = (student >= 0) == labels
    right_teacher = (teacher >= 0) == labels
    metrics = {"student": classification_metrics(student, labels, 0.0),
               "teacher": classification_metrics(teacher, labels, 0.0)}
    single = len(groups) == 1
    report = {
        "bundle": str(args.bundle[0]) if single else [str(b) for b in args.bundle],
        "data": str(args.data[0]) if single else [str(d) for d in args.data],
        "n": len(labels), "resamples": args.resamples,
        "thresholds": groups[0]["report"]["thresholds"] if single else "per group",
        "f1": {model: values["f1"] for model, values in metrics.items()},
        "accuracy": {model: values["accuracy"] for model, values in metrics.items()},
        "auc": {model: values["auc"] for model, values in metrics.items()},
        "pairs_only_student_right": int((right_student & ~right_teacher).sum()),
        "pairs_only_teacher_right": int((~right_student & right_teacher).sum()),
        "groups": [g["report"] for g in groups],
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
    names = ", ".join(f"{bundle.name} on {data.name}" for bundle, data in inputs)
    figure.suptitle(f"{names}: {len(labels)} pairs", fontsize=10 if single else 7)
    figure.tight_layout()
    figure.savefig(args.out / "paired.png", dpi=120)


if __name__ == "__main__":
    main()
