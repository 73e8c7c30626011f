"""``flipkd baseline``: run a baseline on a distillation config's data, base model and training budget.

Writes ``metrics.json``: dev and test metrics (threshold calibrated on dev), pairs, steps, wall time,
seed and command; the SFT baseline also saves its adapter in the same folder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from models.provision import resolve_model
from training.baselines import GenerativeMatcher, ZeroShotLLM, dev_test_metrics
from training.data import load_pairs, split_path
from training.distill_config import DistillConfig


def run_baseline(kind: str, config: DistillConfig, out: Path) -> dict:
    base = resolve_model(config.base)
    dev = load_pairs(split_path(config.data, "dev"))
    test = load_pairs(split_path(config.data, "test"))
    started = time.perf_counter()
    record: dict = {"kind": kind, "base": config.base, "data": str(config.data), "seed": config.train.seed,
                    "command": " ".join(sys.argv)}
    if kind == "zero-shot":
        model = ZeroShotLLM(base, config.encoder.max_length)
        record |= dev_test_metrics(model.score_pairs(dev), dev, model.score_pairs(test), test)
    else:
        train = load_pairs(split_path(config.data, "train"), config.train.train_limit)
        matcher = GenerativeMatcher(base, rank=config.encoder.rank)
        training = matcher.train(train, config.train.epochs, config.train.batch_size, config.train.lr,
                                 config.train.seed)
        record |= dev_test_metrics(matcher.score_pairs(dev), dev, matcher.score_pairs(test), test)
        record |= {"pairs": len(train), "steps": training["steps"],
                   "train_seconds": training["train_seconds"],
                   "final_loss": sum(training["losses"][-20:]) / len(training["losses"][-20:])}
        Path(out).mkdir(parents=True, exist_ok=True)
        matcher.save(Path(out))
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
