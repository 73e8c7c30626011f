"""How well does a dev-calibrated threshold carry to new pairs? Repeated split-half of dev, per rule.

Usage: python bench/threshold_rules.py --data data/medical_question_pairs/dev.jsonl \
           --bundle "echo, seed 13=runs/mqp-echo/echo--seed-13" ... [--teacher FOLDER] \
           --out bench/results/mqp-threshold

Each model's dev scores are computed once (kept in ``scores.json`` in ``--out`` and reused). Then, for
``--splits`` random label-stratified halves (A, B) of dev, each rule picks a threshold on A and is
scored by F1 on B; the oracle is B's own best F1 (an upper bound no rule can reach). Rules:

- ``best``: argmax F1 on A (:func:`flipkd.training.metrics.best_f1_threshold`);
- ``bagged``: the median of ``best`` over ``--resamples`` bootstrap resamples of A
  (:func:`flipkd.training.metrics.calibrated_threshold`, what bundles ship);
- ``plateau``: the midpoint of the scores whose F1 on A is within ``--tolerance`` of A's best.

Writes ``rules.json`` (per model and rule: mean and sd of held-out F1, mean threshold) and ``rules.png``.
Calibration halves hold half of dev, so every rule is noisier here than on all of dev; the comparison
between rules is the point.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score, precision_recall_curve  # noqa: E402

from flipkd.models.bundle import load_bundle  # noqa: E402
from flipkd.models.lora_encoder import student_encoder  # noqa: E402
from flipkd.models.onnx_teacher import OnnxTeacher  # noqa: E402
from flipkd.models.teacher_cache import onnx_teacher_dir  # noqa: E402
from flipkd.training.data import Pair, load_pairs  # noqa: E402
from flipkd.training.metrics import best_f1_threshold, calibrated_threshold  # noqa: E402
from flipkd.training.student_scores import student_scores  # noqa: E402

Rule = Callable[[np.ndarray, np.ndarray], float]


def plateau(tolerance: float) -> Rule:
    """Midpoint of the score cuts whose F1 is within ``tolerance`` of the best F1."""
    def rule(scores: np.ndarray, labels: np.ndarray) -> float:
        precision, recall, thresholds = precision_recall_curve(labels, scores)
        f1 = (2 * precision * recall / np.clip(precision + recall, 1e-12, None))[:-1]
        near = thresholds[f1 >= f1.max() - tolerance]
        return float((near.min() + near.max()) / 2)
    return rule


def model_scores(args: argparse.Namespace, pairs: list[Pair]) -> dict[str, list[float]]:
    """Dev scores per model, computed once and kept in ``OUT/scores.json``."""
    cache = args.out / "scores.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    if args.teacher and "teacher" not in scores:
        teacher = OnnxTeacher(onnx_teacher_dir(args.teacher), threads=args.threads)
        scores["teacher"] = teacher.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs],
                                                progress="teacher").tolist()
        cache.write_text(json.dumps(scores) + "\n")
    for value in args.bundle:
        name, _, folder = value.partition("=")
        if name not in scores:
            scores[name] = student_scores(student_encoder(load_bundle(Path(folder))), pairs).tolist()
            cache.write_text(json.dumps(scores) + "\n")
    return scores


def split_halves(labels: np.ndarray, splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``splits`` label-stratified random halves (A, B) of range(len(labels))."""
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(splits):
        a, b = [], []
        for label in (0, 1):
            index = rng.permutation(np.flatnonzero(labels == label))
            a.append(index[: len(index) // 2])
            b.append(index[len(index) // 2:])
        halves.append((np.concatenate(a), np.concatenate(b)))
    return halves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the calibration split (dev.jsonl)")
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=FOLDER")
    parser.add_argument("--teacher", type=Path, help="exported ONNX teacher or adapter teacher")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--splits", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs(args.data)
    labels = np.array([p.label for p in pairs])
    rules: dict[str, Rule] = {
        "best": best_f1_threshold,
        "bagged": partial(calibrated_threshold, resamples=args.resamples, seed=args.seed),
        "plateau": plateau(args.tolerance),
        "oracle (B's own best)": best_f1_threshold,
    }
    halves = split_halves(labels, args.splits, args.seed)
    report: dict[str, dict] = {}
    for name, values in model_scores(args, pairs).items():
        scores = np.array(values)
        held_out = {rule: [] for rule in rules}
        chosen = {rule: [] for rule in rules}
        for a, b in halves:
            for rule, pick in rules.items():
                threshold = pick(scores[b], labels[b]) if rule.startswith("oracle") else \
                    pick(scores[a], labels[a])
                chosen[rule].append(threshold)
                held_out[rule].append(f1_score(labels[b], scores[b] >= threshold, zero_division=0))
        report[name] = {rule: {"f1_mean": float(np.mean(held_out[rule])),
                               "f1_sd": float(np.std(held_out[rule])),
                               "threshold_mean": float(np.mean(chosen[rule])),
                               "threshold_sd": float(np.std(chosen[rule])),
                               "threshold_all_dev": float(pick(scores, labels))}
                        for rule, pick in rules.items()}
        print(name, {rule: round(values["f1_mean"], 4) for rule, values in report[name].items()})
    (args.out / "rules.json").write_text(json.dumps(
        {"splits": args.splits, "resamples": args.resamples, "tolerance": args.tolerance, "models": report},
        indent=2) + "\n")
    figure, axis = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(rules)
    for k, rule in enumerate(rules):
        means = [report[name][rule]["f1_mean"] for name in report]
        sds = [report[name][rule]["f1_sd"] for name in report]
        axis.bar(np.arange(len(report)) + k * width, means, width, yerr=sds, label=rule, capsize=2)
    axis.set_xticks(np.arange(len(report)) + width * (len(rules) - 1) / 2, list(report), rotation=20,
                    ha="right", fontsize=8)
    axis.set_ylim(0.6, 0.95)
    axis.set_ylabel("held-out half F1 (mean ± sd over splits)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out / "rules.png", dpi=120)


if __name__ == "__main__":
    main()
