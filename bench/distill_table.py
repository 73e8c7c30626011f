"""Results table for one domain: teacher, baselines, FlipKD and its ablations on the test split.

Usage: python bench/distill_table.py --data data/atec --teacher runs/teacher-atec-e5-onnx \
           --baseline "LLM zero-shot=runs/atec/zero-shot" --baseline "LLM SFT=runs/atec/sft" \
           --bundle "FlipKD=runs/atec/flipkd" --bundle "w/o MCL=runs/atec/no-mcl" ... \
           --out bench/results/atec

Every row is scored on ``test.jsonl`` at its own dev-calibrated threshold (never fitted on test); the
F1 interval is a 1000-resample percentile bootstrap. A bundle row may name several seeds' bundles,
comma-separated (``NAME=A,B,C``): its F1 is then ``mean ± sd`` over the seeds, its interval the
median-F1 seed's, accuracy, ROC-AUC and train time are means, peak RSS the largest; each seed's own
metrics are kept in ``rows.json``. ``--argmax-cut`` calibrates the teacher's and every bundle's cut
on dev by the plain best-F1 argmax instead (the rule of the tables made before the bagged one), so that
rows can join them. Writes ``table.md``, ``rows.json``, ``pr_curves.png`` and ``score_distributions.png``
(the first bundle vs the teacher, by label).
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
from safetensors.numpy import load_file  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from flipkd.models.bundle import load_bundle  # noqa: E402
from flipkd.models.lora_encoder import student_encoder  # noqa: E402
from flipkd.models.onnx_teacher import OnnxTeacher  # noqa: E402
from flipkd.models.teacher_cache import onnx_teacher_dir  # noqa: E402
from flipkd.models.teacher_config import is_adapter_teacher  # noqa: E402
from flipkd.training.data import load_pairs, split_path  # noqa: E402
from flipkd.training.metrics import (  # noqa: E402
    best_f1_threshold,
    bootstrap_f1_interval,
    calibrated_threshold,
    classification_metrics,
)
from flipkd.training.student_scores import student_scores  # noqa: E402


def named(values: list[str]) -> list[tuple[str, list[Path]]]:
    """``NAME=FOLDER[,FOLDER...]`` options as (name, folders)."""
    pairs = []
    for value in values:
        name, _, folders = value.partition("=")
        pairs.append((name, [Path(folder) for folder in folders.split(",")]))
    return pairs


def seed_row(runs: list[dict]) -> dict:
    """One table row from one or more seeds' rows: the median-F1 seed's row (threshold, folder, seed)
    with F1 / accuracy / ROC-AUC / train time averaged, the F1 sd and the largest peak RSS."""
    if len(runs) == 1:
        return runs[0]
    median = sorted(runs, key=lambda run: run["f1"])[len(runs) // 2]
    f1 = np.array([run["f1"] for run in runs])
    return median | {"seeds": runs, "seed": "/".join(str(run["seed"]) for run in runs),
                     "f1_median_seed": median["f1"], "f1": float(f1.mean()), "f1_sd": float(f1.std(ddof=1)),
                     "accuracy": float(np.mean([run["accuracy"] for run in runs])),
                     "auc": float(np.mean([run["auc"] for run in runs])),
                     "train_seconds": float(np.mean([run["train_seconds"] for run in runs])),
                     "peak_rss_gib": max(run["peak_rss_gib"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, required=True,
                        help="exported ONNX teacher, or an adapter teacher (exported on first use)")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=FOLDER")
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=FOLDER")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--recalibrate-teacher", action="store_true",
                     help="calibrate the teacher's threshold on dev with the current rule (bagged "
                          "best F1) instead of using the one it was exported with")
    rule.add_argument("--argmax-cut", action="store_true",
                     help="calibrate the teacher's and every bundle's threshold on dev by the plain "
                          "best-F1 argmax (the rule before the bagged one; baselines keep theirs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = load_pairs(split_path(args.data, "test"))
    labels = np.array([p.label for p in test])
    rows: list[dict] = []
    scores_of: dict[str, np.ndarray] = {}

    teacher = OnnxTeacher(onnx_teacher_dir(args.teacher), threads=args.threads)
    scores_of["teacher"] = teacher.score_pairs([p.text_a for p in test], [p.text_b for p in test],
                                               progress="teacher")
    teacher_metrics = args.teacher / "metrics.json" if is_adapter_teacher(args.teacher) else \
        args.teacher.with_name(args.teacher.name.removesuffix("-onnx")) / "metrics.json"
    teacher_info = json.loads(teacher_metrics.read_text()) if teacher_metrics.is_file() else {}
    threshold = teacher.threshold
    dev = load_pairs(split_path(args.data, "dev"))
    dev_labels = np.array([p.label for p in dev])
    if args.recalibrate_teacher or args.argmax_cut:
        dev_scores = teacher.score_pairs([p.text_a for p in dev], [p.text_b for p in dev],
                                         progress="teacher dev")
        rule = best_f1_threshold if args.argmax_cut else calibrated_threshold
        threshold = rule(dev_scores, dev_labels)
    rows.append({"row": "teacher", "threshold": threshold,
                 "train_seconds": teacher_info.get("train_seconds"), "steps": teacher_info.get("steps")})
    for name, folders in named(args.baseline):
        if len(folders) != 1:
            parser.error(f"--baseline {name}: one folder per baseline, got {len(folders)}")
        folder = folders[0]
        record = json.loads((folder / "metrics.json").read_text())
        scores_of[name] = load_file(str(folder / "scores.safetensors"))["test"]
        rows.append({"row": name, "threshold": record["test"]["threshold"],
                     "train_seconds": record.get("train_seconds"), "steps": record.get("steps"),
                     "seed": record.get("seed"), "peak_rss_gib": record.get("peak_rss_gib")})
    scored: dict[Path, tuple[np.ndarray, float]] = {}  # bundle folder -> (test scores, its cut)
    for name, folders in named(args.bundle):
        runs = []
        for folder in folders:
            bundle = load_bundle(folder)
            if folder not in scored:
                encoder = student_encoder(bundle)
                cut = (best_f1_threshold(student_scores(encoder, dev), dev_labels) if args.argmax_cut
                       else bundle.threshold)
                scored[folder] = (student_scores(encoder, test), cut)
            scores, cut = scored[folder]
            training = bundle.manifest["training"]
            runs.append(
                {"row": name, "folder": str(folder), "threshold": cut,
                 "train_seconds": training["train_seconds"], "steps": training["steps"],
                 "seed": bundle.manifest["seed"], "peak_rss_gib": training["peak_rss_gib"]}
                | classification_metrics(scores, labels, cut))
        rows.append(seed_row(runs))
        scores_of[name] = scored[Path(rows[-1]["folder"])][0]
    for row in rows:
        scores = scores_of[row["row"]]
        if "f1" not in row:
            row |= classification_metrics(scores, labels, row["threshold"])
        row["f1_ci95"] = bootstrap_f1_interval(scores, labels, row["threshold"])

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| model | test F1 [95% CI] | accuracy | ROC-AUC | threshold (dev) | steps | seed | train time "
             "| peak RSS |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        low, high = row["f1_ci95"]
        seconds = f"{row['train_seconds']:.0f} s" if row.get("train_seconds") else "–"
        rss = f"{row['peak_rss_gib']:.1f} GiB" if row.get("peak_rss_gib") else "–"
        f1 = (f"{row['f1']:.4f} ± {row['f1_sd']:.4f} (median seed {row['f1_median_seed']:.4f} [{low:.3f}, "
              f"{high:.3f}])" if "seeds" in row else f"{row['f1']:.4f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {row['row']} | {f1} | {row['accuracy']:.4f} "
                     f"| {row['auc']:.4f} | {row['threshold']:.3f} | {row.get('steps') or '–'} "
                     f"| {row.get('seed') or '–'} | {seconds} | {rss} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, scores in scores_of.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        axis.plot(recall, precision, label=name)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_title(f"PR curves, {args.data.name} test")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out / "pr_curves.png", dpi=120)
    plt.close(figure)

    if args.bundle:
        student_name = named(args.bundle)[0][0]
        figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
        for axis, name in zip(axes, ["teacher", student_name], strict=True):
            for label, colour in ((1, "tab:green"), (0, "tab:red")):
                axis.hist(scores_of[name][labels == label], bins=40, alpha=0.55, color=colour,
                          label="match" if label else "no match", density=True)
            axis.axvline(rows[[r["row"] for r in rows].index(name)]["threshold"], color="black", ls="--")
            axis.set_title(name)
            axis.set_xlabel("cosine")
        axes[0].legend()
        figure.tight_layout()
        figure.savefig(args.out / "score_distributions.png", dpi=120)
        plt.close(figure)


if __name__ == "__main__":
    main()
