"""Markdown table of teacher results from ``metrics.json`` (and ``export.json`` of the ``-onnx`` folder).

Usage: python bench/teacher_table.py runs/teacher-atec-e5 runs/teacher-mqp-minilm ... --out FILE.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def teacher_rows(folder: Path) -> list[str]:
    """Rows (zero-shot when it was measured, fine-tuned) with test metrics at the dev-calibrated threshold."""
    metrics = json.loads((folder / "metrics.json").read_text())
    dataset = Path(metrics["data"]).name
    rows = []
    threads = metrics["torch_threads"]
    trained = f"{metrics['train_seconds']:.0f} s ({threads} thread{'s' if threads > 1 else ''})"
    variants = (("zero_shot", "no fine-tuning", "–"), ("fine_tuned", "fine-tuned", trained))
    for variant, label, seconds in variants:
        if metrics[variant] is None:
            continue
        test = metrics[variant]["test"]
        rows.append(f"| {dataset} | {metrics['base']} | {label} | {test['f1']:.4f} | {test['accuracy']:.4f} "
                    f"| {test['auc']:.4f} | {test['threshold']:.3f} | {seconds} |")
    return rows


def export_row(folder: Path) -> str | None:
    """Parity and int8 figures of the exported teacher, when it was exported with its int8 graph."""
    path = folder.with_name(folder.name + "-onnx") / "export.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    if "int8_f1" not in report:
        return None
    parity = f"{report['fp32_max_abs_cosine_gap']:.1e} ({report['parity_pairs']} pairs)"
    return (f"| {folder.name} | {parity} | {report['fp32_f1']:.4f} | {report['int8_f1']:.4f} "
            f"| {report['int8_mean_abs_cosine_gap']:.4f} / {report['int8_max_abs_cosine_gap']:.3f} "
            f"| {'yes' if report['int8_within_tolerance'] else 'no'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = ["| data | encoder | variant | test F1 | test accuracy | test ROC-AUC | threshold (dev) "
             "| train time |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for folder in args.teachers:
        lines += teacher_rows(folder)
    lines += ["", "| teacher | fp32 ONNX vs torch, max abs cosine gap | fp32 dev F1 | int8 dev F1 "
                  "| int8 vs fp32 cosine gap, mean / max | int8 within 0.5 F1 point |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [row for folder in args.teachers if (row := export_row(folder))]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
