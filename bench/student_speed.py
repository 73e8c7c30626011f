"""Student speed on this machine: embedding with early exit vs an ordinary transformers forward, and
training tokens/s (forward + backward of the LoRA layers) against the CPU's measured bf16 matmul rate.

Usage: python bench/student_speed.py --base qwen2.5-coder-0.5b-instruct --data data/atec/dev.jsonl \
           --layers -4 -3 -2 -1 --out bench/results/student_speed_qwen.json

- "ordinary forward": ``AutoModelForCausalLM(...)(input_ids, attention_mask)`` (all layers + lm_head).
- "early exit": :class:`LoraEncoder` (layers up to the deepest read, no lm_head).
- Matmul rate: the best of a few bf16 2048^3 products on the same threads. Shares reported:
  embedding (2 x parameters run x tokens/s) / rate; training (4 x parameters of the layers trained
  through x tokens/s) / rate, since the frozen weights need input gradients (2) but no weight
  gradients, on top of the forward (2); LoRA's own FLOPs are negligible. The ``_padded`` shares count
  the padded positions too (the batch is padded to its longest text): that is the work the matmuls do.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from matmul_rate import bf16_matmul_gflops
from transformers import AutoModelForCausalLM

from flipkd.models.encoder_spec import EncoderSpec
from flipkd.models.lora_encoder import LoraEncoder
from flipkd.models.provision import resolve_model
from flipkd.training.data import load_pairs


def timed(function, repeats: int) -> float:
    function()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def layer_parameters(model: torch.nn.Module, layers: range) -> int:
    body = model.model if hasattr(model, "model") else model
    return sum(p.numel() for index in layers for p in body.layers[index].parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--layers", type=int, nargs="+", default=[-4, -3, -2, -1])
    parser.add_argument("--modules", nargs="+", default=["q_proj"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = resolve_model(args.base)
    texts = [p.text_a for p in load_pairs(args.data)][:args.batch_size]
    spec = EncoderSpec(modules=tuple(args.modules), layers=tuple(args.layers), max_length=args.max_length)
    student = LoraEncoder(base, spec, trainable=True)
    batch = student.tokenize(texts)
    tokens = int(batch["attention_mask"].sum())
    padded = batch["input_ids"].numel()  # what the matmuls actually process
    full = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).eval()
    num_layers = full.config.num_hidden_layers
    low, deep = student.layers_read[0], student.layers_read[-1]

    with torch.inference_mode():
        ordinary = timed(lambda: full(**batch, use_cache=False), args.repeats)
        student.eval()
        early = timed(lambda: student(**batch), args.repeats)
    student.train()
    hidden = student.frozen_hidden(batch["input_ids"], batch["attention_mask"])

    def train_step() -> None:
        z = student.encode_hidden(hidden, batch["attention_mask"])
        (z[: len(z) // 2] * z[len(z) // 2:]).sum().backward()

    training = timed(train_step, args.repeats)
    rate = bf16_matmul_gflops()
    run_params = layer_parameters(full, range(deep + 1))
    train_params = layer_parameters(full, range(low, deep + 1))
    result = {
        "base": args.base, "layers_read": list(student.layers_read), "num_layers": num_layers,
        "batch": len(texts), "tokens": tokens, "padded_tokens": padded, "threads": args.threads,
        "bf16_matmul_gflops": round(rate, 1),
        "ordinary_forward_tokens_per_s": round(tokens / ordinary, 1),
        "early_exit_tokens_per_s": round(tokens / early, 1),
        "early_exit_speedup": round(ordinary / early, 2),
        "embed_share_of_bf16_rate": round(2 * run_params * tokens / early / 1e9 / rate, 3),
        "embed_share_of_bf16_rate_padded": round(2 * run_params * padded / early / 1e9 / rate, 3),
        "train_tokens_per_s": round(tokens / training, 1),
        "train_share_of_bf16_rate": round(4 * train_params * tokens / training / 1e9 / rate, 3),
        "train_share_of_bf16_rate_padded": round(4 * train_params * padded / training / 1e9 / rate, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
