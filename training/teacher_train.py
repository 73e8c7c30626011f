"""Fine-tune the SLM teacher (bi-encoder, CoSENT) and calibrate its decision threshold on dev.

Two modes: ``full`` fine-tunes the encoder's weights and writes an ordinary transformers folder;
``adapter`` trains LoRA (peft) on ``lora_targets`` of the pinned base and writes a plain PEFT adapter
folder (an adapter teacher, :mod:`flipkd.models.teacher_config`: a few MB a bundle can carry). Both add
``teacher.json`` (base name and weight sha256, prefix, max length, pooling, dev-calibrated threshold) and
``metrics.json``: dev/test F1, accuracy, ROC-AUC, threshold, for the fine-tuned encoder and for the same
encoder before fine-tuning (threshold also calibrated on dev), training time and the command.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from tqdm import tqdm

from flipkd.models.adapter_files import save_plain_adapter
from flipkd.models.bi_encoder import TeacherConfig, TorchBiEncoder
from flipkd.models.precision import compute_dtype
from flipkd.models.provision import base_identity, query_prefix, resolve_model
from flipkd.training.data import Pair, file_sha256, load_pairs, split_path
from flipkd.training.folds import outside_fold
from flipkd.training.implied_pairs import implied_pairs
from flipkd.training.losses import cosent_loss
from flipkd.training.lr_schedule import warmup_linear_decay
from flipkd.training.metrics import dev_test_report


@dataclass
class TeacherTrainConfig:
    data: Path
    base: str
    out: Path
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 3e-5
    warmup: float = 0.1
    max_length: int = 64
    train_limit: int | None = None
    freeze_embeddings: bool = True
    bf16: bool = field(default_factory=lambda: compute_dtype("auto", "cpu") == torch.bfloat16)
    seed: int = 13
    folds: int = 1
    fold: int = 0
    mode: Literal["full", "adapter"] = "full"
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    implied_pairs: bool = False

    def recipe(self) -> dict:
        """Everything but the output folder: enough to train the same teacher again."""
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in asdict(self).items() if key != "out"}

    def lora(self) -> LoraConfig:
        """The adapter mode's LoRA: rank, alpha and the encoder's linear layers it adapts."""
        return LoraConfig(r=self.lora_rank, lora_alpha=self.lora_alpha,
                          target_modules=list(self.lora_targets))


def dev_and_test(encoder: TorchBiEncoder, dev: list[Pair], test: list[Pair]) -> dict[str, dict[str, float]]:
    """Calibrate on dev, report dev and test at that threshold."""
    dev_scores = encoder.score_pairs([p.text_a for p in dev], [p.text_b for p in dev], progress="dev")
    test_scores = encoder.score_pairs([p.text_a for p in test], [p.text_b for p in test], progress="test")
    return dev_test_report(dev_scores, np.array([p.label for p in dev]), test_scores,
                           np.array([p.label for p in test]))


def train_teacher(config: TeacherTrainConfig, zero_shot: bool = True) -> dict:
    """Fine-tune, calibrate, save; returns the metrics written to ``metrics.json``. ``zero_shot=False``
    skips scoring the encoder before fine-tuning (a reference figure only; ``"zero_shot": null``)."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    train_file = split_path(config.data, "train")
    train = outside_fold(load_pairs(train_file, config.train_limit), config.folds, config.fold)
    train = train + implied_pairs(train) if config.implied_pairs else train
    dev = load_pairs(split_path(config.data, "dev"))
    test = load_pairs(split_path(config.data, "test"))
    model_path = resolve_model(config.base)
    prefix = query_prefix(config.base)
    encoder = TorchBiEncoder(model_path, prefix, config.max_length)

    before = None
    if zero_shot:
        print(f"zero-shot {config.base} on dev/test", file=sys.stderr)
        before = dev_and_test(encoder, dev, test)

    if config.mode == "adapter":
        encoder.model.encoder = get_peft_model(encoder.model.encoder, config.lora())
    elif config.freeze_embeddings:
        encoder.model.encoder.get_input_embeddings().weight.requires_grad_(False)
    parameters = [p for p in encoder.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = max(1, int(steps_per_epoch * config.epochs))
    warmup_steps = max(1, int(total * config.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear_decay(step, total, warmup_steps))

    losses: list[float] = []
    encoder.model.train()
    started = time.perf_counter()
    order: list[int] = []
    with tqdm(range(total), desc="train-teacher", unit="step") as bar:
        for _ in bar:
            if not order:
                order = list(range(len(train)))
                random.shuffle(order)
            batch = [train[i] for i in order[:config.batch_size]]
            del order[:config.batch_size]
            texts_a = encoder.tokenize([p.text_a for p in batch])
            texts_b = encoder.tokenize([p.text_b for p in batch])
            labels = torch.tensor([p.label for p in batch])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                left = encoder.model(texts_a["input_ids"], texts_a["attention_mask"])
                right = encoder.model(texts_b["input_ids"], texts_b["attention_mask"])
            similarities = (left.float() * right.float()).sum(dim=-1)
            loss = cosent_loss(similarities, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    train_seconds = time.perf_counter() - started

    print("fine-tuned teacher on dev/test", file=sys.stderr)
    fine_tuned = dev_and_test(encoder, dev, test)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.mode == "adapter":
        save_plain_adapter(encoder.model.encoder, out, config.base)
    else:
        encoder.model.encoder.save_pretrained(out)
        encoder.tokenizer.save_pretrained(out)
    TeacherConfig(base=config.base, query_prefix=prefix, max_length=config.max_length,
                  threshold=fine_tuned["dev"]["threshold"],
                  base_sha256=base_identity(config.base).get("weight_sha256")).save(out)
    metrics = {
        "base": config.base,
        "mode": config.mode,
        "trainable_parameters": sum(p.numel() for p in parameters),
        "data": str(config.data),
        "train_sha256": file_sha256(train_file),
        "train_pairs": len(train),
        "steps": total,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "fine_tuned": fine_tuned,
        "zero_shot": before,
        "loss_first_50": float(np.mean(losses[:50])),
        "loss_last_50": float(np.mean(losses[-50:])),
        "loss_history": [round(v, 5) for v in losses],
        "command": " ".join(sys.argv),
        "recipe": config.recipe(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
