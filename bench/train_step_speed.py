"""Distillation step time, new against old, step by step in one process on the same texts: the step's
texts embedded in length groups (``HiddenCache.groups``) against one padded batch, and the pass stopping
inside the deepest read layer against running that layer whole.

Usage: python bench/train_step_speed.py --config configs/mqp-transfer.yaml --steps 12 --threads 1 \
           --out bench/results/train_step_speed_mqp.json

Each step takes the next labelled batch and transfer batch as training does (stratified batches, seed
from the config), embeds the a and b texts, and runs forward and backward of a cosine loss through the
LoRA layers on cached frozen states (cached before timing); the variants run in turn on the same texts,
and the median step time of each is kept. fp32 (``--bf16`` for bf16). Padded positions are counted too.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from whole_layer import WholeDeepestLayer

from flipkd.models.lora_encoder import LoraEncoder
from flipkd.models.provision import resolve_model
from flipkd.training.distill import PairCosine, prepare_data, stratified_batches
from flipkd.training.distill_config import load_config
from flipkd.training.hidden_cache import HiddenCache


def one_group(cache: HiddenCache, texts: list[str]):
    hidden, mask = cache.batch(texts)
    return [(torch.arange(len(texts)), hidden, mask)]


def step_seconds(scorer: PairCosine, groups) -> float:
    started = time.perf_counter()
    scorer(groups)[0].sum().backward()
    scorer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    data = prepare_data(config)
    base = resolve_model(config.base)
    students = {"exit": LoraEncoder(base, config.encoder, dtype=dtype, trainable=True),
                "whole": WholeDeepestLayer(base, config.encoder, dtype=dtype, trainable=True)}
    batches = stratified_batches(data.labels, config.train.batch_size, random.Random(config.train.seed))
    transfer = data.transfer
    order = np.random.default_rng(config.train.seed).permutation(len(transfer)) if transfer else None
    cache = HiddenCache(students["exit"])
    times: dict[str, list[float]] = {}
    positions = {"groups": 0, "one batch": 0, "tokens": 0}
    for step in range(args.steps + 1):
        batch = batches[step % len(batches)]
        texts_a = [data.pairs[i].text_a for i in batch]
        texts_b = [data.pairs[i].text_b for i in batch]
        if transfer is not None:
            size = config.transfer.batch_size
            picked = order[np.arange(step * size, (step + 1) * size) % len(transfer)]
            texts_a += [transfer.texts[i] for i in transfer.a[picked]]
            texts_b += [transfer.texts[i] for i in transfer.b[picked]]
        texts = texts_a + texts_b
        grouped, single = cache.groups(texts), one_group(cache, texts)
        for name, student in students.items():
            scorer = PairCosine(student).train()
            for layout, groups in (("groups", grouped), ("one batch", single)):
                seconds = step_seconds(scorer, groups)
                if step:  # the first step warms up
                    layer = "in-layer exit" if name == "exit" else "deepest layer whole"
                    times.setdefault(f"{layout}, {layer}", []).append(seconds)
        if step:
            positions["groups"] += sum(mask.numel() for _, _, mask in grouped)
            positions["one batch"] += single[0][2].numel()
            positions["tokens"] += int(single[0][2].sum())
        print(f"step {step}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    median = {name: round(statistics.median(values), 3) for name, values in times.items()}
    before = median["one batch, deepest layer whole"]
    result = {
        "config": str(args.config), "steps": args.steps, "threads": args.threads, "dtype": str(dtype),
        "texts_per_step": len(texts), "median_step_seconds": median,
        "speedup_vs_one_batch_whole_layer": {name: round(before / seconds, 2)
                                             for name, seconds in median.items()},
        "positions_per_step": {k: round(v / args.steps) for k, v in positions.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
