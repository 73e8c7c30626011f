"""A base model folder with random weights of a real model's shapes, for speed measurements only.

Usage: python bench/synthetic_base.py --base build/gpu-pack/base [--home $FLIPKD_HOME]

``--base`` holds the real model's ``config.json`` and tokenizer files and a ``NAME`` file (the default
model name, as written by scripts/gpu_pack.sh). The folder is written where ``flipkd`` looks for that
default model (``$FLIPKD_HOME/models/NAME``), so bundles built on it load unchanged. Weights are drawn
from N(0, initializer_range) in bf16: a forward costs what the real model's costs, and its vectors mean
nothing. The provenance file says so (``upstream`` begins with ``synthetic``, no ``weight_sha256``),
so nothing measured on it can pass for a quality figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from flipkd.models.home import models_dir
from flipkd.models.provision import PROVENANCE

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def write_synthetic_base(base: Path, seed: int = 0) -> Path:
    """Write the random-weight copy of ``base`` (config + tokenizer + NAME) into the model cache."""
    name = (base / "NAME").read_text().strip()
    target = models_dir() / name
    if (target / PROVENANCE).is_file() and not json.loads((target / PROVENANCE).read_text()).get(
            "upstream", "").startswith("synthetic"):
        raise SystemExit(f"{target} holds the real {name}; refusing to overwrite it with random weights")
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(base)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    shutil.rmtree(target, ignore_errors=True)
    model.save_pretrained(target)
    for file in TOKENIZER_FILES:
        shutil.copy(base / file, target / file)
    provenance = {"name": name, "upstream": f"synthetic: random weights of {name}'s shapes (speed only)",
                  "weight_sha256": None, "source_kind": "synthetic", "query_prefix": "", "seed": seed}
    (target / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_synthetic_base(args.base, args.seed))


if __name__ == "__main__":
    main()
