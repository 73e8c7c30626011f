"""Is a small cross-encoder a stronger source of pair scores than the bi-encoder teacher? Dev-only analysis.

Fine-tunes a pinned encoder (default all-MiniLM-L6-v2) as a cross-encoder: ``[CLS] a [SEP] b [SEP]``
through a fresh one-logit head, binary cross-entropy on the training pairs in both orders, AdamW
(weight decay 0.01), linear warm-up over 10% of the steps then linear decay, bf16 autocast where the
CPU has bf16 matrix instructions. Every ``--eval-every`` steps the dev pairs are scored (the mean logit of
both orders) and ROC-AUC and the best F1 over all thresholds (an upper bound) recorded. Nothing is saved
but the curve (JSON).

Usage: python bench/cross_encoder_dev.py --data data/medical_question_pairs \
           --out bench/results/mqp-implied/cross_encoder.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from flipkd.models.precision import compute_dtype
from flipkd.models.provision import query_prefix, resolve_model
from flipkd.training.data import Pair, load_pairs, split_path
from flipkd.training.lr_schedule import warmup_linear_decay
from flipkd.training.metrics import ranking_quality


class CrossEncoder:
    """A sequence-classification head on ``base``; :meth:`logits` reads (a, b) pairs as one input."""

    def __init__(self, base: str, max_length: int) -> None:
        path = resolve_model(base)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        self.prefix, self.max_length = query_prefix(base), max_length
        self.dtype = compute_dtype("auto", "cpu")

    def logits(self, rows: list[tuple[str, str]]) -> torch.Tensor:
        batch = self.tokenizer([self.prefix + a for a, _ in rows], [self.prefix + b for _, b in rows],
                               truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype == torch.bfloat16):
            return self.model(**batch).logits.float().squeeze(-1)

    @torch.no_grad()
    def score(self, pairs: list[Pair], batch_size: int = 64) -> np.ndarray:
        """Mean logit over both orders, per pair."""
        self.model.eval()
        orders = [[(p.text_a, p.text_b) for p in pairs], [(p.text_b, p.text_a) for p in pairs]]
        scores = np.mean([torch.cat([self.logits(rows[i:i + batch_size])
                                     for i in range(0, len(rows), batch_size)]).numpy()
                          for rows in orders], axis=0)
        self.model.train()
        return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--base", default="all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    train = load_pairs(split_path(args.data, "train"))
    dev = load_pairs(split_path(args.data, "dev"))
    labels = np.array([p.label for p in dev])
    examples = [(p.text_a, p.text_b, p.label) for p in train] + [(p.text_b, p.text_a, p.label) for p in train]
    encoder = CrossEncoder(args.base, args.max_length)
    total = int(len(examples) / args.batch_size * args.epochs)
    optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear_decay(step, total, max(1, total // 10)))
    curve, started, step = [], time.perf_counter(), 0
    encoder.model.train()
    with tqdm(total=total, desc="cross-encoder", unit="step") as progress:
        while step < total:
            random.shuffle(examples)
            for start in range(0, len(examples) - args.batch_size + 1, args.batch_size):
                rows = examples[start:start + args.batch_size]
                target = torch.tensor([float(label) for _, _, label in rows])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    encoder.logits([(a, b) for a, b, _ in rows]), target)
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                progress.update()
                if step % args.eval_every == 0 or step == total:
                    quality = ranking_quality(encoder.score(dev), labels)
                    curve.append({"step": step, "dev_auc": quality["auc"], "dev_best_f1": quality["best_f1"]})
                    progress.set_postfix(dev_auc=f"{curve[-1]['dev_auc']:.4f}")
                if step == total:
                    break
    result = {"base": args.base, "data": str(args.data), "train_pairs": len(train), "steps": total,
              "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
              "threads": torch.get_num_threads(), "train_seconds": round(time.perf_counter() - started, 1),
              "final": curve[-1], "best": max(curve, key=lambda row: row["dev_auc"]), "curve": curve}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("final", "best", "train_seconds")}))


if __name__ == "__main__":
    main()
