"""Dev-split sweep of FlipKD settings: one distillation per variant, compared on dev only.

Usage: python bench/dev_sweep.py --config configs/atec.yaml --runs runs/atec-sweep \
           --variant "layers 4-7=encoder.layers=[4,5,6,7]" \
           --variant "rank 8=encoder.rank=8;encoder.alpha=16" \
           --reference "base=runs/atec/flipkd" --out bench/results/atec-dev

A variant is ``NAME=OVERRIDE;OVERRIDE...`` with the ``--set`` syntax of ``flipkd distill``; a reference is an
already trained bundle (for example the configuration's own run). Variants whose bundle exists are not
trained again, so the sweep resumes. Each bundle's threshold and F1 come from the dev pairs the
configuration calibrates on; the test split is never read. Writes ``sweep.jsonl`` and ``sweep.md``
(sorted by dev F1) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def parse_named(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name:
        raise SystemExit(f"expected NAME=VALUE, got {value!r}")
    return name, rest


def folder_name(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "-" for char in name)


def train(config: Path, out: Path, overrides: list[str], threads: int, log: Path, fp32: bool) -> None:
    """Run ``flipkd distill`` for one variant unless its bundle exists; its output goes to ``log``."""
    if (out / "flipkd.json").is_file():
        return
    command = [str(Path(sys.executable).with_name("flipkd")), "--threads", str(threads), "distill",
               "--config", str(config), "--out", str(out), *(["--fp32"] if fp32 else [])]
    for override in overrides:
        command += ["--set", override]
    print(" ".join(command), file=sys.stderr, flush=True)
    with log.open("w") as sink:
        subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=True)


def record(name: str, overrides: list[str], bundle: Path) -> dict:
    manifest = json.loads((bundle / "flipkd.json").read_text())
    training = manifest["training"]
    metrics = manifest["metrics"]
    transfer = manifest.get("transfer") or {}
    return {"variant": name, "overrides": overrides, "bundle": str(bundle), "dev": metrics["dev"],
            "train_auc": metrics.get("train_fit", {}).get("auc"), "best_step": metrics.get("best_step"),
            "steps": training["steps"], "transfer_pairs": transfer.get("pairs", 0),
            "dtype": training["dtype"],
            "filter": manifest.get("filter"), "train_seconds": training["train_seconds"],
            "tokens_per_second": training["tokens_per_second"], "peak_rss_gib": training["peak_rss_gib"],
            "final_loss": training["final_loss"], "seed": manifest["seed"]}


def markdown(rows: list[dict]) -> str:
    lines = ["| variant | overrides | seed | dev F1 | dev accuracy | dev AUC | train-split AUC "
             "| best step / steps | transfer pairs | threshold | train s | peak RSS GiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda row: -row["dev"]["f1"]):
        dev = row["dev"]
        overrides = "; ".join(f"`{override}`" for override in row["overrides"]) or "(configuration as is)"
        train_auc = "-" if row.get("train_auc") is None else f"{row['train_auc']:.3f}"
        steps = f"{row.get('best_step') or '-'} / {row.get('steps', '-')}"
        lines.append(f"| {row['variant']} | {overrides} | {row['seed']} | {dev['f1']:.3f} "
                     f"| {dev['accuracy']:.3f} | {dev['auc']:.3f} | {train_auc} | {steps} "
                     f"| {row.get('transfer_pairs', 0)} "
                     f"| {dev['threshold']:.3f} | {row['train_seconds']:.0f} | {row['peak_rss_gib']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True, help="folder for the variants' bundles and logs")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE;...")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=BUNDLE")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fp32", action="store_true",
                        help="train in fp32 (faster than bf16 on CPUs without bf16 matrix instructions)")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [record(name, [], Path(folder)) for name, folder in map(parse_named, args.reference)]
    for name, spec in map(parse_named, args.variant):
        overrides = [override for override in spec.split(";") if override]
        bundle = args.runs / folder_name(name)
        train(args.config, bundle, overrides, args.threads, args.runs / f"{folder_name(name)}.log", args.fp32)
        rows.append(record(name, overrides, bundle))
        lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
        (args.out / "sweep.jsonl").write_text("".join(lines))
        (args.out / "sweep.md").write_text(markdown(rows))
        print(f"{name}: dev F1 {rows[-1]['dev']['f1']:.3f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
