"""What cross-fitting changes before any student trains: the teacher scores of the labelled pairs and
the dual-threshold filter's decisions, with one teacher trained on every pair vs the fold teachers.

Usage: python bench/crossfit_filter.py --config configs/mqp-transfer.yaml \
           --set "teacher_folds=[runs/teacher-mqp-minilm-fold0-onnx,runs/teacher-mqp-minilm-fold1-onnx]" \
           --out bench/results/mqp-transfer/crossfit_filter.json

For the configuration as given and for the same configuration without ``teacher_folds``: the teacher's
ROC-AUC on the training pairs it scores (how much it has memorised them) and the filter's report (how
many pairs of each class it drops). Runs only :func:`flipkd.training.distill.prepare_data` (the transfer
set is switched off); no student is trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.metrics import roc_auc_score
from teacher_agreement import save_rows

from flipkd.training.distill import prepare_data
from flipkd.training.distill_config import load_config


def report(config_path: Path, overrides: list[str]) -> dict:
    config = load_config(config_path, [*overrides, "transfer.enabled=false", "filter.enabled=false"])
    unfiltered = prepare_data(config)
    filtered = prepare_data(load_config(config_path, [*overrides, "transfer.enabled=false"]))
    return {"overrides": overrides, "pairs": len(unfiltered.pairs),
            "teacher_train_auc": float(roc_auc_score(unfiltered.labels, unfiltered.teacher)),
            "filter": filtered.filter_report.to_json() if filtered.filter_report else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = [report(args.config, []), report(args.config, args.set)]
    save_rows(rows, args.out)


if __name__ == "__main__":
    main()
