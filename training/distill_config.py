"""Distillation run configuration: a YAML file plus ``section.key=value`` overrides.

Sections: ``data`` (dataset folder), ``base`` (student base model), ``teacher`` (exported ONNX teacher
folder, or an adapter teacher: :func:`load_config` puts its ONNX export from the model cache in
``teacher``, exporting on first use, and keeps the adapter in ``teacher_adapter``, which the bundle
carries), ``teacher_folds`` (optional cross-fitted teachers: the k teachers of
``flipkd train-teacher --folds k --fold i``, exported or adapters; each training pair is scored by the
one that left its fold out, see :mod:`flipkd.training.folds`), ``encoder`` (:class:`EncoderSpec`
fields), ``loss``, ``filter``, ``train`` and ``transfer``
(:class:`flipkd.training.transfer_set.TransferConfig`). ``train.eval_every`` > 0 scores dev every that
many steps and keeps the adapter with the best dev ROC-AUC (early stopping); ``train.ema`` > 0 evaluates
and keeps an exponential moving average of the trainable weights instead of the weights themselves
(:func:`flipkd.training.distill.ema_decay`); ``train.fit_pairs``
training pairs are scored at the end to report the train-split fit beside dev; ``train.implied_pairs``
adds the pairs the training labels imply (:mod:`flipkd.training.implied_pairs`). Unknown keys are errors
naming the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import yaml

from flipkd.models.encoder_spec import EncoderSpec
from flipkd.models.teacher_cache import onnx_teacher_dir
from flipkd.models.teacher_config import is_adapter_teacher
from flipkd.training.data import Pair, load_pairs, split_path
from flipkd.training.implied_pairs import implied_pairs
from flipkd.training.transfer_set import TransferConfig

LossKind = Literal["flipkd", "contrastive"]


@dataclass(frozen=True)
class LossConfig:
    """flipkd: w_dist * L_dist + w_mcl * MCL; contrastive: CoSENT on labels only (no teacher)."""

    kind: LossKind = "flipkd"
    dist_weight: float = 1.0
    mcl_weight: float = 1.0
    margin: float = 0.2
    gap_scale: float = 1.0


@dataclass(frozen=True)
class FilterConfig:
    enabled: bool = True
    quantile: float = 0.05


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1.0
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: float = 0.05
    train_offset: int = 0
    train_limit: int | None = None
    dev_limit: int | None = None
    seed: int = 13
    checkpoint_every: int = 100
    cache_hidden: bool = True
    eval_every: int = 0
    fit_pairs: int = 1000
    ema: float = 0.0
    implied_pairs: bool = False

    def selection(self, split: str) -> slice:
        """Pairs used of a split: train [train_offset, train_offset + train_limit), dev the first
        ``dev_limit`` (threshold calibration and the filter's thresholds), test all of it."""
        if split == "train":
            stop = None if self.train_limit is None else self.train_offset + self.train_limit
            return slice(self.train_offset, stop)
        return slice(None, self.dev_limit) if split == "dev" else slice(None)


@dataclass(frozen=True)
class DistillConfig:
    data: Path
    base: str
    teacher: Path | None = None
    teacher_folds: tuple[Path, ...] = ()
    teacher_adapter: Path | None = None
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    loss: LossConfig = field(default_factory=LossConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def pairs(self, split: str) -> list[Pair]:
        """The pairs of ``split`` this run uses (see :meth:`TrainConfig.selection`); for train with
        ``train.implied_pairs``, followed by the pairs their labels imply
        (:mod:`flipkd.training.implied_pairs`)."""
        pairs = load_pairs(split_path(self.data, split))[self.train.selection(split)]
        return pairs + implied_pairs(pairs) if split == "train" and self.train.implied_pairs else pairs

    def to_json(self) -> dict:
        teacher = str(self.teacher) if self.teacher else None
        return {"data": str(self.data), "base": self.base, "teacher": teacher,
                "teacher_folds": [str(folder) for folder in self.teacher_folds],
                "teacher_adapter": str(self.teacher_adapter) if self.teacher_adapter else None,
                "encoder": self.encoder.to_json(), "loss": vars(self.loss), "filter": vars(self.filter),
                "train": vars(self.train),
                "transfer": {**vars(self.transfer), "extra": list(self.transfer.extra),
                             "embedding_teachers": list(self.transfer.embedding_teachers)}}


_SECTIONS = {"encoder": EncoderSpec, "loss": LossConfig, "filter": FilterConfig, "train": TrainConfig,
             "transfer": TransferConfig}


def _section(kind: type, values: dict, where: str):
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    if kind is EncoderSpec:
        return EncoderSpec.from_json(values)
    return kind(**values)


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form section.key=value")
    key, value = text.split("=", 1)
    return key.split("."), yaml.safe_load(value)


def load_config(path: Path, overrides: list[str] = ()) -> DistillConfig:
    """Read the YAML at ``path``, apply overrides, and validate every section."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    for override in overrides:
        keys, value = parse_override(override)
        target = raw
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    top = {"data", "base", "teacher", "teacher_folds", *_SECTIONS}
    unknown = set(raw) - top
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)} (known: {sorted(top)})")
    for required in ("data", "base"):
        if required not in raw:
            raise ValueError(f"{path}: missing {required!r}")
    sections = {name: _section(kind, raw.get(name) or {}, f"{path}: {name}")
                for name, kind in _SECTIONS.items()}
    folds = raw.get("teacher_folds") or []
    if not isinstance(folds, list) or len(folds) == 1:
        raise ValueError(f"{path}: teacher_folds must be a list of at least two teacher folders")
    config = DistillConfig(data=Path(raw["data"]), base=str(raw["base"]),
                           teacher=Path(raw["teacher"]) if raw.get("teacher") else None,
                           teacher_folds=tuple(Path(folder) for folder in folds), **sections)
    if config.loss.kind == "flipkd" and config.teacher is None:
        raise ValueError(f"{path}: loss.kind 'flipkd' needs a teacher")
    if config.teacher_folds and config.teacher is None:
        raise ValueError(f"{path}: teacher_folds needs a teacher (it scores the transfer set and ships)")
    if config.transfer.enabled and config.teacher is None:
        raise ValueError(f"{path}: transfer.enabled needs a teacher to score the transfer pairs")
    # transfer.enabled=false over a config with an embedding term is the "no transfer set" ablation
    # switch, so only the listwise term (never ablated that way) is checked here.
    if config.transfer.listwise_weight and not config.transfer.enabled:
        raise ValueError(f"{path}: transfer.listwise_weight needs transfer.enabled (it ranks the texts of "
                         "a step's labelled and transfer batches)")
    return with_onnx_teachers(config)


def with_onnx_teachers(config: DistillConfig) -> DistillConfig:
    """``config`` with every adapter teacher (``teacher``, ``teacher_folds``,
    ``transfer.embedding_teachers``) replaced by its ONNX folder
    (:func:`flipkd.models.teacher_cache.onnx_teacher_dir`) and the adapter ``teacher`` kept in
    ``teacher_adapter``."""
    if config.teacher is None:
        return config
    adapter = config.teacher if is_adapter_teacher(config.teacher) else None
    targets = tuple(str(onnx_teacher_dir(Path(folder))) for folder in config.transfer.embedding_teachers)
    return replace(config, teacher=onnx_teacher_dir(config.teacher), teacher_adapter=adapter,
                   teacher_folds=tuple(onnx_teacher_dir(folder) for folder in config.teacher_folds),
                   transfer=replace(config.transfer, embedding_teachers=targets))
