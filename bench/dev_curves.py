"""Dev ROC-AUC against training step for several bundles, one line each, from their manifests
(``metrics.dev_curve``), with the teacher's dev ROC-AUC as a horizontal line when given.

Usage: python bench/dev_curves.py --bundle "no transfer, seed 13=runs/mqp-transfer/no-transfer-set--seed-13" \
           --bundle ... --teacher-auc 0.930 --out bench/results/mqp-long/dev_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from flipkd.models.bundle import MANIFEST  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", required=True, help="LABEL=FOLDER")
    parser.add_argument("--teacher-auc", type=float, default=None)
    parser.add_argument("--title", default="Dev ROC-AUC during training")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for entry in args.bundle:
        label, _, folder = entry.partition("=")
        curve = json.loads((Path(folder) / MANIFEST).read_text())["metrics"]["dev_curve"]
        steps, aucs = zip(*curve, strict=True)
        axis.plot(steps, aucs, marker="o", label=label)
    if args.teacher_auc is not None:
        axis.axhline(args.teacher_auc, color="black", linestyle="--", label="teacher")
    axis.set_xlabel("training step (32 labelled pairs each)")
    axis.set_ylabel("dev ROC-AUC")
    axis.set_title(args.title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
