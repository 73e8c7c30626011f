"""FlipKD distillation: train the student's LoRA encoder to reproduce the teacher's similarities.

Per optimizer step: micro-batches holding both classes (stratified), the student's cosines s, the
teacher's t and labels y feed the configured loss (:mod:`flipkd.training.losses`); gradients accumulate over
``grad_accum`` micro-batches and, under ``torchrun``, are averaged across processes by DDP. The frozen
stage below the lowest LoRA layer is cached per text (:mod:`flipkd.training.hidden_cache`). Checkpoints every
``checkpoint_every`` steps make a run resumable; the same seed gives the same batches.
"""

from __future__ import annotations

import math
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from flipkd.models.lora_encoder import LoraEncoder
from flipkd.models.provision import resolve_model
from flipkd.training.checkpoint import load_checkpoint, save_checkpoint
from flipkd.training.data import Pair, split_path
from flipkd.training.distill_config import DistillConfig, LossConfig
from flipkd.training.hidden_cache import HiddenCache
from flipkd.training.losses import cosent_loss, distillation_loss, margin_contrastive_loss
from flipkd.training.lr_schedule import warmup_linear_decay
from flipkd.training.pair_filter import FilterReport, choose_thresholds, dual_threshold_mask
from flipkd.training.teacher_scores import teacher_scores


def stratified_batches(labels: np.ndarray, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle each class, spread it evenly over the epoch, and cut batches: each batch holds both
    classes in about the dataset's proportion."""
    keyed = []
    for label in (0, 1):
        members = [int(i) for i in np.flatnonzero(labels == label)]
        rng.shuffle(members)
        keyed += [((k + rng.random()) / len(members), i) for k, i in enumerate(members)]
    order = [i for _, i in sorted(keyed)]
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def pair_loss(config: LossConfig, s: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """contrastive: CoSENT(s, y); flipkd: w_dist * L_dist(s, t) + w_mcl * MCL(s, y, t)."""
    if config.kind == "contrastive":
        return cosent_loss(s, y)
    total = s.new_zeros(())
    if config.dist_weight:
        total = total + config.dist_weight * distillation_loss(s, y, t)
    if config.mcl_weight:
        total = total + config.mcl_weight * margin_contrastive_loss(s, y, t, config.margin, config.gap_scale)
    return total


class PairCosine(nn.Module):
    """(hidden, mask) of 2B texts [a_1..a_B, b_1..b_B] -> cos(z_a, z_b) (B,). The module DDP wraps."""

    def __init__(self, student: LoraEncoder) -> None:
        super().__init__()
        self.student = student

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = self.student.encode_hidden(hidden, mask)
        half = z.shape[0] // 2
        return (z[:half] * z[half:]).sum(dim=-1)


@dataclass
class TrainingData:
    pairs: list[Pair]
    labels: np.ndarray
    teacher: np.ndarray
    filter_report: FilterReport | None = None


def prepare_data(config: DistillConfig) -> TrainingData:
    """Training pairs (the config's selection), their teacher scores, and the dual-threshold filter."""
    selection = config.train.selection("train")
    pairs = config.pairs("train")
    labels = np.array([p.label for p in pairs])
    if config.teacher is None:
        return TrainingData(pairs, labels, np.zeros(len(pairs), dtype=np.float32))
    scores = teacher_scores(split_path(config.data, "train"), config.teacher, selection=selection)
    if not config.filter.enabled:
        return TrainingData(pairs, labels, scores)
    dev_scores = teacher_scores(split_path(config.data, "dev"), config.teacher,
                                selection=config.train.selection("dev"))
    dev_labels = np.array([p.label for p in config.pairs("dev")])
    keep, report = dual_threshold_mask(scores, labels,
                                       *choose_thresholds(dev_scores, dev_labels, config.filter.quantile))
    kept = [pair for pair, k in zip(pairs, keep, strict=True) if k]
    return TrainingData(kept, labels[keep], scores[keep], report)


@dataclass
class RunResult:
    student: LoraEncoder
    data: TrainingData
    losses: list[float]
    steps: int
    train_seconds: float
    tokens: int
    peak_rss_gib: float
    world_size: int


def _distributed() -> tuple[int, int, int]:
    """(rank, local rank, world size) under torchrun, else (0, 0, 1)."""
    environ = os.environ
    return int(environ.get("RANK", 0)), int(environ.get("LOCAL_RANK", 0)), int(environ.get("WORLD_SIZE", 1))


def train_student(config: DistillConfig, out: Path, dtype: torch.dtype = torch.bfloat16) -> RunResult:
    """Run (or resume) distillation; every process returns the trained student."""
    rank, local_rank, world = _distributed()
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = f"cuda:{local_rank}" if cuda else "cpu"
    torch.manual_seed(config.train.seed)
    data = prepare_data(config)
    student = LoraEncoder(resolve_model(config.base), config.encoder, dtype=dtype, device=device,
                          trainable=True)
    scorer: nn.Module = PairCosine(student)
    if world > 1:
        scorer = DistributedDataParallel(scorer, find_unused_parameters=True)
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for _, p in named], lr=config.train.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(data.pairs) / config.train.batch_size)
    micro_per_step = config.train.grad_accum * world
    total = max(1, math.ceil(per_epoch * config.train.epochs / micro_per_step))
    warmup_steps = max(1, int(total * config.train.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda s: warmup_linear_decay(s, total, warmup_steps))

    checkpoint = Path(out) / "checkpoint"
    state = {"step": 0, "losses": [], "train_seconds": 0.0, "tokens": 0}
    if checkpoint.is_dir():
        state = load_checkpoint(checkpoint, named, optimizer, scheduler)
        print(f"resuming from step {state['step']} of {total}", file=sys.stderr)

    cache = HiddenCache(student, config.train.cache_hidden)
    batches: list[list[int]] = []
    for epoch in range(math.ceil(config.train.epochs) + 1):
        rng = random.Random(config.train.seed + epoch)
        batches += stratified_batches(data.labels, config.train.batch_size, rng)
    started = time.perf_counter() - state["train_seconds"]
    scorer.train()
    with tqdm(range(state["step"], total), desc="distill", unit="step", disable=rank != 0,
              initial=state["step"], total=total) as bar:
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for k in range(config.train.grad_accum):
                batch = batches[(step * micro_per_step + rank * config.train.grad_accum + k) % len(batches)]
                texts = [data.pairs[i].text_a for i in batch] + [data.pairs[i].text_b for i in batch]
                hidden, mask = cache.batch(texts)
                s = scorer(hidden, mask)
                y = torch.tensor(data.labels[batch], device=s.device)
                t = torch.tensor(data.teacher[batch], device=s.device, dtype=s.dtype)
                loss = pair_loss(config.loss, s, y, t) / config.train.grad_accum
                loss.backward()
                step_loss += loss.item()
                state["tokens"] += int(mask.sum()) * world
            torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            optimizer.step()
            scheduler.step()
            state["losses"].append(step_loss)
            state["step"] = step + 1
            bar.set_postfix(loss=f"{np.mean(state['losses'][-20:]):.4f}", cached=len(cache))
            if rank == 0 and (step + 1) % config.train.checkpoint_every == 0 and step + 1 < total:
                state["train_seconds"] = time.perf_counter() - started
                save_checkpoint(checkpoint, named, optimizer, scheduler, state)
    train_seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return RunResult(student, data, state["losses"], total, train_seconds, state["tokens"], peak, world)
