"""Training checkpoints without pickle: trainable tensors and AdamW state in safetensors, the rest JSON.

A checkpoint folder holds ``trainable.safetensors`` (name -> tensor: the parameters and any tensors kept
beside them, such as a weight average), ``optimizer.safetensors`` (``{index}.{exp_avg|exp_avg_sq}`` per
parameter), ``state.json`` (step, optimizer step counts, lr scheduler state, RNG seed material and the
loss history). It is written to a temporary folder and renamed, so an interrupted save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

Named = list[tuple[str, torch.Tensor]]
Scheduler = torch.optim.lr_scheduler.LRScheduler


def save_checkpoint(folder: Path, named_parameters: Named, optimizer: torch.optim.Optimizer,
                    scheduler: Scheduler, state: dict) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file({name: p.detach().cpu().contiguous() for name, p in named_parameters},
              str(partial / "trainable.safetensors"))
    moments, steps = {}, {}
    for index, (_, parameter) in enumerate(named_parameters):
        slot = optimizer.state.get(parameter, {})
        if slot:
            moments[f"{index}.exp_avg"] = slot["exp_avg"].cpu().contiguous()
            moments[f"{index}.exp_avg_sq"] = slot["exp_avg_sq"].cpu().contiguous()
            steps[str(index)] = float(slot["step"])
    save_file(moments, str(partial / "optimizer.safetensors"))
    payload = {**state, "optimizer_steps": steps, "scheduler": scheduler.state_dict()}
    (partial / "state.json").write_text(json.dumps(payload) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def load_checkpoint(folder: Path, named_parameters: Named, optimizer: torch.optim.Optimizer,
                    scheduler: Scheduler) -> dict:
    """Restore parameters, AdamW moments and scheduler; returns ``state.json``'s content."""
    tensors = load_file(str(folder / "trainable.safetensors"))
    moments = load_file(str(folder / "optimizer.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    with torch.no_grad():
        for index, (name, parameter) in enumerate(named_parameters):
            parameter.copy_(tensors[name])
            if str(index) in state["optimizer_steps"]:
                optimizer.state[parameter] = {
                    "step": torch.tensor(state["optimizer_steps"][str(index)]),
                    "exp_avg": moments[f"{index}.exp_avg"].to(parameter.device),
                    "exp_avg_sq": moments[f"{index}.exp_avg_sq"].to(parameter.device),
                }
    scheduler.load_state_dict(state["scheduler"])
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr  # the scheduler sets it only on its next step
    return state
