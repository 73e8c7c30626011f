"""FlipKD distillation: train the student's LoRA encoder to reproduce the teacher's similarities.

Per optimizer step: micro-batches holding both classes (stratified), the student's cosines s, the
teacher's t and labels y feed the configured loss (:mod:`flipkd.training.losses`); with a transfer set
(:mod:`flipkd.training.transfer_set`) each micro-batch also holds ``transfer.batch_size`` teacher-scored
unlabelled pairs and the loss gains ``transfer.weight * mean (s_u - t_u)^2`` over them (with
``transfer.confidence_weight`` > 0, t_u leans towards the student's own hardened decision:
:func:`~flipkd.training.losses.weak_to_strong_targets`; each transfer
term is gated by its own weight; with all three 0 the run trains on the labelled pairs alone), and with
``transfer.embedding_weight`` > 0 ``embedding_weight * L_embed(W z, e)`` over every text of the
micro-batch (W a training-only linear head onto the teacher's embedding e of the same text, or onto the
``transfer.embedding_teachers`` ensemble's, discarded with the run: the bundle's encoder is unchanged),
and with ``transfer.listwise_weight`` > 0 ``listwise_weight * L_list`` over the same texts (each text's
softmax ranking of the micro-batch's other texts, student against teacher embeddings).
Gradients accumulate over ``grad_accum`` micro-batches and, under ``torchrun``, are averaged across
processes by DDP. The frozen stage below the lowest LoRA layer is cached per text
(:mod:`flipkd.training.hidden_cache`). With ``eval_every`` the dev ROC-AUC is measured every that many
steps and the best adapter is kept (early stopping); with ``train.ema`` the moving average of the weights
is what is evaluated, kept and shipped (:func:`ema_decay`). Checkpoints every ``checkpoint_every`` steps
make a run resumable (the best-so-far adapter is saved beside them, the moving average inside them); the
same seed gives the same batches.
"""

from __future__ import annotations

import math
import os
import random
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from flipkd.models.lora_encoder import LoraEncoder
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.precision import compute_dtype
from flipkd.models.provision import resolve_model
from flipkd.models.teacher_config import TeacherConfig
from flipkd.training.checkpoint import load_checkpoint, save_checkpoint
from flipkd.training.data import Pair, distinct_texts, split_path
from flipkd.training.distill_config import DistillConfig, LossConfig
from flipkd.training.folds import fold_of
from flipkd.training.hidden_cache import HiddenCache
from flipkd.training.losses import (
    cosent_loss,
    distillation_loss,
    embedding_loss,
    listwise_loss,
    margin_contrastive_loss,
    weak_to_strong_targets,
)
from flipkd.training.lr_schedule import warmup_linear_decay
from flipkd.training.metrics import classification_metrics
from flipkd.training.pair_filter import FilterReport, choose_thresholds, dual_threshold_mask
from flipkd.training.teacher_scores import teacher_scores
from flipkd.training.transfer_set import TransferSet, build_transfer_set, ensemble_embeddings, load_forbidden


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
    """2B texts [a_1..a_B, b_1..b_B] as :meth:`HiddenCache.groups` sub-batches (rows, hidden, mask) ->
    (cos(z_a, z_b) (B,), head(z) (2B, k) in text order; z itself without a head). The module DDP wraps,
    the training-only head inside it so its gradients are averaged too."""

    def __init__(self, student: LoraEncoder, head: nn.Module | None = None) -> None:
        super().__init__()
        self.student = student
        self.head = head if head is not None else nn.Identity()

    def forward(self, groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pair cosines (first half of the texts against the second), the head's projection and the
        texts' representations z, in the order the texts were given."""
        rows = torch.cat([group_rows for group_rows, _, _ in groups])
        z = torch.cat([self.student.encode_hidden(hidden, mask) for _, hidden, mask in groups])
        z = z[torch.argsort(rows)]
        half = z.shape[0] // 2
        return (z[:half] * z[half:]).sum(dim=-1), self.head(z), z


@dataclass
class TrainingData:
    """The labelled pairs a run trains on, each with its label and teacher score (same order), the
    filter's report, and the transfer set."""

    pairs: list[Pair]
    labels: np.ndarray
    teacher: np.ndarray
    filter_report: FilterReport | None = None
    transfer: TransferSet | None = None


def labelled_teacher_scores(config: DistillConfig, pairs: list[Pair]) -> np.ndarray:
    """The teacher's score of each labelled pair: from ``teacher``, or cross-fitted, from the fold
    teacher that did not train on the pair's fold."""
    if not config.teacher_folds:
        return teacher_scores(pairs, config.teacher, progress="teacher train")
    folds = np.array([fold_of(p, len(config.teacher_folds)) for p in pairs])
    scores = np.empty(len(pairs), dtype=np.float32)
    for fold, folder in enumerate(config.teacher_folds):
        members = np.flatnonzero(folds == fold)
        scores[members] = teacher_scores([pairs[i] for i in members], folder, progress=f"teacher fold {fold}")
    return scores


def prepare_data(config: DistillConfig) -> TrainingData:
    """Read the training pairs once; score them with the teacher (or its cross-fitted folds); build the
    transfer set over all of them; then apply the dual-threshold filter (thresholds from the dev scores
    of the same teacher, or the folds' mean)."""
    pairs = config.pairs("train")
    labels = np.array([p.label for p in pairs])
    if config.teacher is None:
        return TrainingData(pairs, labels, np.zeros(len(pairs), dtype=np.float32))
    scores = labelled_teacher_scores(config, pairs)
    transfer = None
    if config.transfer.enabled:
        forbidden = load_forbidden([split_path(config.data, split) for split in ("dev", "test")])
        transfer = build_transfer_set(config.transfer, pairs, OnnxTeacher(config.teacher, 2), forbidden)
        if config.transfer.embedding_weight and config.transfer.embedding_teachers:
            targets = [OnnxTeacher(Path(folder), 2) for folder in config.transfer.embedding_teachers]
            transfer.embeddings = ensemble_embeddings(transfer.texts, targets)
    if not config.filter.enabled:
        return TrainingData(pairs, labels, scores, transfer=transfer)
    dev = config.pairs("dev")
    dev_scores = np.mean([teacher_scores(dev, folder, progress="teacher dev")
                          for folder in config.teacher_folds or (config.teacher,)], axis=0)
    thresholds = choose_thresholds(dev_scores, np.array([p.label for p in dev]), config.filter.quantile)
    keep, report = dual_threshold_mask(scores, labels, *thresholds)
    kept = [pair for pair, k in zip(pairs, keep, strict=True) if k]
    return TrainingData(kept, labels[keep], scores[keep], report, transfer)


@torch.no_grad()
def cached_cosines(student: LoraEncoder, cache: HiddenCache, pairs: list[Pair], chunk: int = 64
                   ) -> np.ndarray:
    """cos(z_a, z_b) per pair in eval mode, from the cached frozen stage (each distinct text once)."""
    student.eval()
    texts = distinct_texts(pairs)
    vectors = {}
    for start in range(0, len(texts), chunk):
        part = texts[start:start + chunk]
        z = student.encode_hidden(*cache.batch(part)).float().cpu()
        vectors.update(zip(part, z, strict=True))
    student.train()
    return np.array([float(vectors[p.text_a] @ vectors[p.text_b]) for p in pairs])


def fit_auc(student: LoraEncoder, cache: HiddenCache, pairs: list[Pair]) -> float:
    """ROC-AUC of the student's cosine on ``pairs``."""
    labels = np.array([p.label for p in pairs])
    return classification_metrics(cached_cosines(student, cache, pairs), labels, 0.0)["auc"]


def confidence_levels(config: DistillConfig, transfer: TransferSet | None
                      ) -> tuple[float, float, float] | None:
    """(teacher threshold, mean t_u below it, mean t_u at or above it) over the transfer set: the cut and
    the two hardened targets of the confidence term; None when the term is off."""
    if transfer is None or not (config.transfer.confidence_weight and config.transfer.weight):
        return None
    threshold = TeacherConfig.load(config.teacher).threshold
    above = transfer.teacher >= threshold
    if above.all() or not above.any():
        raise ValueError(f"transfer.confidence_weight: every transfer pair falls on one side of the "
                         f"teacher's threshold {threshold:.3f}")
    return threshold, float(transfer.teacher[~above].mean()), float(transfer.teacher[above].mean())


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
    dev_curve: list[tuple[int, float]]
    best_step: int
    train_auc: float | None


def _distributed() -> tuple[int, int, int]:
    """(rank, local rank, world size) under torchrun, else (0, 0, 1)."""
    environ = os.environ
    return int(environ.get("RANK", 0)), int(environ.get("LOCAL_RANK", 0)), int(environ.get("WORLD_SIZE", 1))


def ema_decay(target: float, step: int) -> float:
    """Decay of the weight average after optimizer step ``step`` (0-based): ``min(target, (1 + step) /
    (10 + step))``, so the early average follows the weights closely; the average is then
    ``ema <- decay * ema + (1 - decay) * weights``, kept in fp32 whatever the training dtype."""
    return min(target, (1 + step) / (10 + step))


@contextmanager
def swapped_in(named: list[tuple[str, torch.Tensor]], values: dict[str, torch.Tensor]) -> Iterator[None]:
    """Within the block the parameters hold ``values`` (none given: unchanged); restored afterwards."""
    if not values:
        yield
        return
    saved = {name: parameter.detach().clone() for name, parameter in named}
    with torch.no_grad():
        for name, parameter in named:
            parameter.copy_(values[name])
    try:
        yield
    finally:
        with torch.no_grad():
            for name, parameter in named:
                parameter.copy_(saved[name])


def train_student(config: DistillConfig, out: Path, dtype: torch.dtype | None = None) -> RunResult:
    """Run (or resume) distillation in ``dtype`` (None: :func:`~flipkd.models.precision.compute_dtype`'s
    choice for the device); every process returns the trained student."""
    rank, local_rank, world = _distributed()
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = f"cuda:{local_rank}" if cuda else "cpu"
    torch.manual_seed(config.train.seed)
    data = prepare_data(config)
    dtype = dtype or compute_dtype("auto", device)
    student = LoraEncoder(resolve_model(config.base), config.encoder, dtype=dtype, device=device,
                          trainable=True)
    terms = (config.transfer.weight, config.transfer.embedding_weight, config.transfer.listwise_weight)
    transfer = data.transfer if data.transfer is not None and any(terms) else None
    head = None
    pool_row = {text: i for i, text in enumerate(transfer.texts)} if transfer is not None else {}
    if transfer is not None and config.transfer.embedding_weight:
        head = nn.Linear(student.dim, transfer.embeddings.shape[1], bias=False, device=device)
    listwise = config.transfer.listwise_weight if transfer is not None else 0.0
    confidence = confidence_levels(config, transfer)
    scorer: nn.Module = PairCosine(student, head)
    if world > 1:
        scorer = DistributedDataParallel(scorer, find_unused_parameters=True)
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    named += [(f"embedding_head.{n}", p) for n, p in (head.named_parameters() if head is not None else ())]
    optimizer = torch.optim.AdamW([p for _, p in named], lr=config.train.lr,
                                  weight_decay=config.train.weight_decay)
    per_epoch = math.ceil(len(data.pairs) / config.train.batch_size)
    micro_per_step = config.train.grad_accum * world
    total = max(1, math.ceil(per_epoch * config.train.epochs / micro_per_step))
    warmup_steps = max(1, int(total * config.train.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda s: warmup_linear_decay(s, total, warmup_steps))

    ema = {name: p.detach().float().clone() for name, p in named} if config.train.ema else {}
    tracked = named + [(f"ema.{name}", average) for name, average in ema.items()]
    checkpoint = Path(out) / "checkpoint"
    best_file = checkpoint.with_name("best.safetensors")
    state = {"step": 0, "losses": [], "train_seconds": 0.0, "tokens": 0, "dev_curve": [], "best_step": 0}
    best: dict[str, torch.Tensor] = {}
    if checkpoint.is_dir():
        restored = load_checkpoint(checkpoint, tracked, optimizer, scheduler)
        state = {"dev_curve": [], "best_step": 0, **restored}
        best = load_file(str(best_file)) if best_file.is_file() else {}
        print(f"resuming from step {state['step']} of {total}", file=sys.stderr)

    cache = HiddenCache(student, config.train.cache_hidden)
    batches: list[list[int]] = []
    for epoch in range(math.ceil(config.train.epochs) + 1):
        rng = random.Random(config.train.seed + epoch)
        batches += stratified_batches(data.labels, config.train.batch_size, rng)
    transfer_order = (np.random.default_rng(config.train.seed).permutation(len(transfer))
                      if transfer is not None else None)
    dev = config.pairs("dev") if config.train.eval_every else []
    started = time.perf_counter() - state["train_seconds"]
    scorer.train()
    with tqdm(range(state["step"], total), desc="distill", unit="step", disable=rank != 0,
              initial=state["step"], total=total) as bar:
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for k in range(config.train.grad_accum):
                micro = step * micro_per_step + rank * config.train.grad_accum + k
                batch = batches[micro % len(batches)]
                texts_a = [data.pairs[i].text_a for i in batch]
                texts_b = [data.pairs[i].text_b for i in batch]
                unlabelled = np.array([], dtype=np.int64)
                if transfer is not None:
                    size = config.transfer.batch_size
                    unlabelled = transfer_order[np.arange(micro * size, (micro + 1) * size) % len(transfer)]
                    texts_a += [transfer.texts[i] for i in transfer.a[unlabelled]]
                    texts_b += [transfer.texts[i] for i in transfer.b[unlabelled]]
                groups = cache.groups(texts_a + texts_b)
                s, projected, z = scorer(groups)
                labelled = s[:len(batch)]
                y = torch.tensor(data.labels[batch], device=s.device)
                t = torch.tensor(data.teacher[batch], device=s.device, dtype=s.dtype)
                loss = pair_loss(config.loss, labelled, y, t)
                if len(unlabelled) and config.transfer.weight:
                    t_u = torch.tensor(transfer.teacher[unlabelled], device=s.device, dtype=s.dtype)
                    if confidence is not None:
                        alpha = config.transfer.confidence_weight * min(
                            1.0, step / max(1.0, config.transfer.confidence_ramp * total))
                        t_u = weak_to_strong_targets(s[len(batch):], t_u, *confidence, alpha)
                    loss = loss + config.transfer.weight * torch.mean((s[len(batch):] - t_u) ** 2)
                if head is not None or listwise:
                    rows = [pool_row[text] for text in texts_a + texts_b]
                    e = torch.from_numpy(transfer.embeddings[rows]).to(projected.device, projected.dtype)
                if head is not None:
                    loss = loss + config.transfer.embedding_weight * embedding_loss(projected, e)
                if listwise:
                    texts = torch.tensor(rows, device=z.device)
                    loss = loss + listwise * listwise_loss(z, e, texts, config.transfer.listwise_temperature)
                loss = loss / config.train.grad_accum
                loss.backward()
                step_loss += loss.item()
                state["tokens"] += sum(int(mask.sum()) for _, _, mask in groups) * world
            torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            optimizer.step()
            scheduler.step()
            if ema:
                decay = ema_decay(config.train.ema, step)
                with torch.no_grad():
                    for name, parameter in named:
                        ema[name].lerp_(parameter.detach().float(), 1 - decay)
            state["losses"].append(step_loss)
            state["step"] = step + 1
            bar.set_postfix(loss=f"{np.mean(state['losses'][-20:]):.4f}", cached=len(cache))
            evaluate = bool(dev) and ((step + 1) % config.train.eval_every == 0 or step + 1 == total)
            if rank == 0 and evaluate:
                with swapped_in(named, ema):
                    auc = fit_auc(student, cache, dev)
                state["dev_curve"].append([step + 1, auc])
                if auc >= max(a for _, a in state["dev_curve"]):
                    state["best_step"] = step + 1
                    best = {n: (ema[n] if ema else p).detach().cpu().clone() for n, p in named}
                bar.write(f"step {step + 1}: dev AUC {auc:.4f} (best at step {state['best_step']})")
            if rank == 0 and (step + 1) % config.train.checkpoint_every == 0 and step + 1 < total:
                state["train_seconds"] = time.perf_counter() - started
                save_checkpoint(checkpoint, tracked, optimizer, scheduler, state)
                if best:
                    save_file(best, str(best_file))
    train_seconds = time.perf_counter() - started
    final = best or ema
    if final:
        with torch.no_grad():
            for name, parameter in named:
                parameter.copy_(final[name])
        best_file.unlink(missing_ok=True)
    fit = data.pairs[:config.train.fit_pairs] if config.train.fit_pairs else []
    train_auc = fit_auc(student, cache, fit) if rank == 0 and fit else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return RunResult(student, data, state["losses"], total, train_seconds, state["tokens"], peak, world,
                     [tuple(point) for point in state["dev_curve"]], state["best_step"] or total, train_auc)
