"""Adapt a causal base to bidirectional attention with masked next-token prediction (MNTP, LLM2Vec).

LLM2Vec (BehnamGhader et al. 2024) makes a decoder attend both ways and trains LoRA so that, for each
masked token x_i (replaced by a blank), the output at position i - 1 predicts it:
    L = -mean_{i masked} log p(x_i | h_{i-1}),  p = softmax(lm_head(norm(h))).
Here only the layers the student reads are changed, as its encoder sees them: layers below ``--low``
stay causal and frozen (the student caches them), layers low..high attend both ways and carry LoRA on
every projection, and the layers above stay causal and frozen (they only carry the gradient down). The
LoRA is merged and the whole base saved as a model folder, which a distillation config names as its
``base``. Texts: ``FILE:FIELD`` specs (training splits and other in-domain text), minus every dev and test
text. With ``--held-out`` texts (dev), L is measured there for the base read causally, the base read both
ways, and the adapted base read both ways and causally (the same blanks each time). Writes ``OUT/``
(the adapted base), ``OUT/mntp.json`` (settings, losses, time) and ``OUT/mntp_loss.png``.

Usage: python bench/mntp_adapt.py --base qwen2.5-coder-0.5b-instruct --out runs/qwen-mntp \
           --texts data/medical_question_pairs/train.jsonl:text_a ... \
           --forbid data/medical_question_pairs/dev.jsonl data/medical_question_pairs/test.jsonl \
           --held-out data/medical_question_pairs/dev.jsonl:text_a
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tqdm import tqdm

from flipkd.models.attention_masks import run_layers
from flipkd.models.base_models import causal_tokenizer, load_causal_lm
from flipkd.models.provision import resolve_model
from flipkd.training.lr_schedule import warmup_linear_decay
from flipkd.training.transfer_set import extra_texts, load_forbidden

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def masked_batch(ids: list[list[int]], pad_id: int, blank_id: int, ratio: float, generator: random.Random
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, targets) right-padded; ``ratio`` of each row's tokens after the first
    (at least one) replaced by ``blank_id``; targets hold the original token there, -100 elsewhere."""
    length = max(len(row) for row in ids)
    inputs = torch.full((len(ids), length), pad_id)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    targets = torch.full((len(ids), length), -100)
    for row, tokens in enumerate(ids):
        inputs[row, :len(tokens)] = torch.tensor(tokens)
        mask[row, :len(tokens)] = 1
        candidates = list(range(1, len(tokens)))
        for position in generator.sample(candidates, max(1, round(ratio * len(candidates)))):
            targets[row, position] = tokens[position]
            inputs[row, position] = blank_id
    return inputs, mask, targets


def mntp_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor,
              low: int, high: int) -> torch.Tensor:
    """L above: layers [0, low) causal without gradient, [low, high] both ways, above causal."""
    body = model.base_model.model.model
    with torch.no_grad():
        embeds = body.embed_tokens(input_ids)
    hidden = run_layers(body, embeds, attention_mask, range(len(body.layers)), both_ways=range(low, high + 1),
                        grad_from=low)
    rows, columns = (targets[:, 1:] != -100).nonzero(as_tuple=True)
    predicting = body.norm(hidden[rows, columns])  # position i - 1 predicts token i
    logits = model.base_model.model.lm_head(predicting).float()
    return torch.nn.functional.cross_entropy(logits, targets[rows, columns + 1])


@torch.no_grad()
def held_out_loss(model, ids: list[list[int]], pad_id: int, blank_id: int, ratio: float, low: int, high: int,
                  batch_size: int = 32, seed: int = 0) -> float:
    """L over held-out texts, blanks drawn with ``seed`` (the same blanks for every model compared); with
    ``high < low`` every layer is causal (plain next-token prediction through the blanks)."""
    generator = random.Random(seed)
    total, count = 0.0, 0
    for start in range(0, len(ids), batch_size):
        batch = masked_batch(ids[start:start + batch_size], pad_id, blank_id, ratio, generator)
        blanks = int((batch[2] != -100).sum())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total += mntp_loss(model, *batch, low, high).item() * blanks
        count += blanks
    return total / count


def plot_curve(curve: list[float], held_out: dict[str, float | None], path: Path) -> None:
    """Training loss per step (and its 20-step mean) with the held-out losses as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(curve, color="0.8", linewidth=0.8, label="training batch")
    smooth = [sum(curve[max(0, i - 19):i + 1]) / len(curve[max(0, i - 19):i + 1]) for i in range(len(curve))]
    axis.plot(smooth, color="C0", label="training, mean of 20 steps")
    for index, (name, value) in enumerate(held_out.items()):
        if value is not None:
            label = f"held-out texts, {name.replace('_', ' ')}"
            axis.axhline(value, color=f"C{index + 1}", linestyle="--", label=label)
    axis.set(xlabel="step", ylabel="masked next-token loss", title="MNTP adaptation of the read layers")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--texts", nargs="+", required=True, help="FILE:FIELD, in-domain text")
    parser.add_argument("--forbid", nargs="*", type=Path, default=[], help="pair files kept out (dev, test)")
    parser.add_argument("--held-out", nargs="*", default=[],
                        help="FILE:FIELD, texts the loss is measured on before and after (dev)")
    parser.add_argument("--low", type=int, default=8, help="lowest adapted layer (both ways from here)")
    parser.add_argument("--high", type=int, default=11, help="highest adapted layer")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=0.2, help="share of tokens masked")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    folder = resolve_model(args.base)
    tokenizer = causal_tokenizer(folder)

    def token_rows(specs: list[str], forbidden: set[str]) -> list[list[int]]:
        """Token ids of the distinct texts of ``specs`` not in ``forbidden``, two tokens or more."""
        texts = [text for text in extra_texts(specs, max_words=args.max_length, limit=None)
                 if text not in forbidden]
        rows = tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"] if texts else []
        return [row for row in rows if len(row) > 1]

    ids, held_out = token_rows(args.texts, load_forbidden(args.forbid)), token_rows(args.held_out, set())
    blank = tokenizer.convert_tokens_to_ids("_")
    model = load_causal_lm(folder, torch.bfloat16)
    config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=PROJECTIONS,
                        layers_to_transform=list(range(args.low, args.high + 1)), bias="none")
    model = get_peft_model(model, config)

    def measured(high: int) -> float | None:
        """Held-out L with layers low..``high`` read both ways (none when high < low)."""
        if not held_out:
            return None
        model.eval()
        loss = held_out_loss(model, held_out, tokenizer.pad_token_id, blank, args.ratio, args.low, high)
        return round(loss, 4)

    losses = {"base_causal": measured(args.low - 1), "base_both_ways": measured(args.high)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.data = parameter.data.float()
    optimiser = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    steps = math.ceil(args.epochs * len(ids) / args.batch_size)
    warmup = max(1, round(0.05 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: warmup_linear_decay(step, steps, warmup))
    generator = random.Random(args.seed)
    order: list[int] = []
    curve = []
    model.train()
    for step in tqdm(range(steps), desc="MNTP"):
        if len(order) < args.batch_size:
            order += generator.sample(range(len(ids)), len(ids))
        rows, order = order[:args.batch_size], order[args.batch_size:]
        rows.sort(key=lambda row: len(ids[row]))
        batch = masked_batch([ids[row] for row in rows], tokenizer.pad_token_id, blank, args.ratio, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = mntp_loss(model, *batch, args.low, args.high)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        curve.append(round(loss.item(), 4))
        if (step + 1) % 20 == 0:
            tqdm.write(f"step {step + 1}: MNTP loss (last 20) {sum(curve[-20:]) / 20:.3f}")
    losses |= {"adapted_both_ways": measured(args.high), "adapted_causal": measured(args.low - 1)}
    merged = model.merge_and_unload()
    merged.to(torch.bfloat16).save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    report = {"base": args.base, "texts": args.texts, "forbid": [str(path) for path in args.forbid],
              "n_texts": len(ids), "tokens": sum(len(row) for row in ids), "low": args.low, "high": args.high,
              "rank": args.rank, "ratio": args.ratio, "epochs": args.epochs, "steps": steps,
              "batch_size": args.batch_size, "lr": args.lr, "max_length": args.max_length, "seed": args.seed,
              "threads": args.threads, "held_out_texts": len(held_out), "held_out_loss": losses,
              "seconds": round(time.perf_counter() - started, 1), "loss": curve}
    (args.out / "mntp.json").write_text(json.dumps(report) + "\n")
    plot_curve(curve, losses, args.out / "mntp_loss.png")
    print(json.dumps({key: value for key, value in report.items() if key != "loss"}, indent=2))


if __name__ == "__main__":
    main()
