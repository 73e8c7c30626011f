"""``flipkd baseline``: run a baseline on a distillation config's data, base model and training budget.

Writes ``metrics.json``: dev and test metrics (threshold calibrated on dev), pairs, steps, wall time,
peak resident memory, seed and command, and ``scores.safetensors`` (``dev`` and ``test`` scores, for
bootstrap intervals and plots); the SFT baseline also saves its adapter in the same folder.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from flipkd.models.provision import resolve_model
from flipkd.training.baselines import GenerativeMatcher, ZeroShotLLM
from flipkd.training.data import load_pairs, split_path
from flipkd.training.distill_config import DistillConfig
from flipkd.training.metrics import dev_test_report


def run_baseline(kind: str, config: DistillConfig, out: Path, dtype: torch.dtype) -> dict:
    base = resolve_model(config.base)
    dev = config.pairs("dev")
    test = load_pairs(split_path(config.data, "test"))
    started = time.perf_counter()
    record: dict = {"kind": kind, "base": config.base, "data": str(config.data), "seed": config.train.seed,
                    "dtype": str(dtype).removeprefix("torch."), "command": " ".join(sys.argv)}
    if kind == "zero-shot":
        model = ZeroShotLLM(base, config.encoder.max_length, dtype)
        dev_scores, test_scores = model.score_pairs(dev), model.score_pairs(test)
    else:
        train = config.pairs("train")
        matcher = GenerativeMatcher(base, rank=config.encoder.rank, dtype=dtype)
        training = matcher.train(train, config.train.epochs, config.train.batch_size, config.train.lr,
                                 config.train.seed)
        dev_scores, test_scores = matcher.score_pairs(dev), matcher.score_pairs(test)
        record |= {"pairs": len(train), "steps": training["steps"],
                   "train_seconds": training["train_seconds"],
                   "final_loss": sum(training["losses"][-20:]) / len(training["losses"][-20:])}
        Path(out).mkdir(parents=True, exist_ok=True)
        matcher.save(Path(out))
    record |= dev_test_report(dev_scores, np.array([p.label for p in dev]), test_scores,
                              np.array([p.label for p in test]))
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    record["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file({"dev": dev_scores.astype(np.float32), "test": test_scores.astype(np.float32)},
              str(Path(out) / "scores.safetensors"))
    (Path(out) / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
