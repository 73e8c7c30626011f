"""A fully fine-tuned teacher as an adapter teacher: its weight change from the pinned base, compressed.

For every adapted linear layer (``targets``) the fine-tuning delta is cut to rank r by its SVD,
    dW = W_ft - W_base = U S V^T  ~  B A,   B = U_r S_r (out x r),   A = V_r^T (r x in),
stored as a PEFT LoRA with ``lora_alpha = r`` (scaling 1), so base + adapter computes W_base + B A x.
Every bias is carried whole (PEFT ``bias="all"``), and so is every other module whose weights changed
(LayerNorms, position and token-type embeddings: PEFT ``modules_to_save``); unchanged modules (the
frozen word embeddings) are not stored. The result is an ordinary adapter teacher
(:mod:`flipkd.models.teacher_config`) a bundle can carry, with its threshold calibrated again on dev and
``metrics.json`` recording the rank, the share of the delta's energy kept and the cosine gap to the full
teacher on dev.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModel

from flipkd.models.adapter_files import save_plain_adapter
from flipkd.models.bi_encoder import pinned_base, teacher_encoder
from flipkd.models.hashing import sha256_file
from flipkd.models.teacher_config import TeacherConfig, is_adapter_teacher
from flipkd.training.data import load_pairs, split_path
from flipkd.training.metrics import dev_test_report

TARGETS = ("query", "key", "value", "dense")
_PEFT_PARTS = re.compile(r"^base_model\.model\.|\.base_layer|\.original_module|\.modules_to_save\.default")


def plain_name(peft_name: str) -> str:
    """The fine-tuned model's parameter name behind a PEFT-wrapped one."""
    return _PEFT_PARTS.sub("", peft_name)


def changed_modules(base: torch.nn.Module, tuned: torch.nn.Module, targets: tuple[str, ...]) -> list[str]:
    """Names of the modules, other than the adapted linear layers, whose own weights differ."""
    tuned_parameters = dict(tuned.named_parameters())
    changed = []
    for name, module in base.named_modules():
        if name.split(".")[-1] in targets:
            continue
        own = dict(module.named_parameters(recurse=False))
        if any(not torch.equal(value, tuned_parameters[f"{name}.{key}"]) for key, value in own.items()
               if key != "bias"):
            changed.append(name)
    return changed


@torch.no_grad()
def low_rank_adapter(full: Path, rank: int, targets: tuple[str, ...] = TARGETS):
    """(PEFT model over the pinned base holding ``full``'s change at ``rank``, kept energy share)."""
    config = TeacherConfig.load(full)
    tuned = teacher_encoder(full).model.encoder
    base = AutoModel.from_pretrained(pinned_base(config), dtype=torch.float32, add_pooling_layer=False)
    modules = changed_modules(base, tuned, targets)
    lora = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), bias="all",
                      modules_to_save=modules or None)
    model = get_peft_model(base, lora)
    tuned_parameters = dict(tuned.named_parameters())
    kept = total = 0.0
    for name, module in model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        weight = plain_name(f"{name}.weight")
        delta = tuned_parameters[weight] - module.base_layer.weight
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        module.lora_B["default"].weight.copy_(u[:, :rank] * s[:rank])
        module.lora_A["default"].weight.copy_(vh[:rank])
        kept += float((s[:rank] ** 2).sum())
        total += float((s ** 2).sum())
    for name, parameter in model.named_parameters():
        if "lora_" not in name:
            parameter.copy_(tuned_parameters[plain_name(name)])
    return model, kept / total if total else 1.0


def extract_adapter_teacher(full: Path, out: Path, rank: int, targets: tuple[str, ...] = TARGETS) -> dict:
    """Write the rank-``rank`` adapter teacher of the fully fine-tuned teacher ``full`` to ``out`` and
    return its ``metrics.json`` (dev-calibrated threshold, dev/test metrics, cosine gap to ``full``)."""
    full, out = Path(full), Path(out)
    if is_adapter_teacher(full):
        raise ValueError(f"{full}: already an adapter teacher")
    if rank < 1:
        raise ValueError(f"rank must be positive, got {rank}")
    source = json.loads((full / "metrics.json").read_text())
    config = TeacherConfig.load(full)
    model, energy = low_rank_adapter(full, rank, targets)
    out.mkdir(parents=True, exist_ok=True)
    save_plain_adapter(model, out, config.base)
    config.save(out)
    data = Path(source["data"])
    dev = load_pairs(split_path(data, "dev"))
    test = load_pairs(split_path(data, "test"))
    adapter = teacher_encoder(out)
    dev_scores, test_scores = (adapter.score_pairs([p.text_a for p in pairs], [p.text_b for p in pairs])
                               for pairs in (dev, test))
    report = dev_test_report(dev_scores, np.array([p.label for p in dev]),
                             test_scores, np.array([p.label for p in test]))
    config.threshold = report["dev"]["threshold"]
    config.save(out)
    full_dev = teacher_encoder(full).score_pairs([p.text_a for p in dev], [p.text_b for p in dev])
    gap = np.abs(dev_scores - full_dev)
    metrics = {"base": config.base, "mode": "extracted", "source": str(full),
               "source_sha256": sha256_file(full / "model.safetensors"), "data": str(data),
               "rank": rank, "targets": list(targets), "energy_kept": round(energy, 4),
               "carried_whole": sorted(getattr(model, "modules_to_save", None) or []),
               "adapter_bytes": (out / "adapter_model.safetensors").stat().st_size,
               "dev_cosine_gap": {"max": float(gap.max()), "mean": float(gap.mean())},
               "fine_tuned": report, "source_fine_tuned": source["fine_tuned"],
               "recipe": None, "source_recipe": source.get("recipe"), "source_command": source.get("command")}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
