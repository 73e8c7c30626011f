"""Which layers of the student's base carry the teacher's notion of a match? A linear probe per layer set.

Usage: python bench/layer_probe.py --data data/medical_question_pairs --base qwen2.5-coder-0.5b-instruct \
           --teacher runs/teacher-mqp-minilm-onnx --out bench/results/mqp-layers/probe.json

The student reads z = normalize(concat_l pool_t(A_l x_{l,t})) where x_{l,t} is the input of layer l's
q/k/v projections (its input norm's output). Mean pooling commutes with A, so with the base frozen the
readout is a linear map of the pooled inputs u_l = mean_t x_{l,t}: this probe fits
z = normalize(concat_l W_l u_l), the W_l sharing ``--width`` rows evenly (the student's 3 modules x 4 layers
x rank 64 = 768), by MSE between cos(z_a, z_b) and the teacher's cosine on the labelled training pairs
plus each training text's ``--neighbours`` nearest training texts and one random text (teacher embedding),
AdamW, ``--steps`` minibatches of ``--batch`` pairs, one run per seed. Dev ROC-AUC of the probe's cosine
at the last step ranks the layer sets; the LoRA B updates of the real student (which change the layers
above the lowest read one) are not modelled. The same probe on "MLP intermediate" (act(gate) * up, what a
LoRA A on down_proj would read) asks whether the MLP's wider, nonlinear features read better. Base in fp32,
every layer (up to ``--max-layer``) computed once. Any base whose layers have ``self_attn.q_proj`` and
``mlp.down_proj`` (Qwen2, Llama, Gemma 3), so bases can be compared with ``--base``. Dev only.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from flipkd.models.base_models import causal_tokenizer, load_causal_lm
from flipkd.models.onnx_teacher import OnnxTeacher
from flipkd.models.pooling import masked_mean
from flipkd.models.provision import resolve_model
from flipkd.training.data import Pair, load_pairs, split_path
from flipkd.training.transfer_set import nearest_keys

KINDS = ("attention input", "MLP intermediate")


def last_copy_starts(tokenizer, texts: list[str], template: str) -> list[int]:
    """Token index where the last ``{text}`` of ``template`` starts, per text (0 when the template holds
    ``{text}`` once): the length of the template's tokenized prefix up to that copy, checked to be a prefix
    of the whole's tokens."""
    head, _, _ = template.rpartition("{text}")
    if "{text}" not in head:
        return [0] * len(texts)
    starts = []
    for text in texts:
        prefix = tokenizer(head.replace("{text}", text))["input_ids"]
        whole = tokenizer(template.replace("{text}", text))["input_ids"]
        if whole[:len(prefix)] != prefix:
            raise ValueError(f"the template's prefix does not tokenize as a prefix for {text!r}")
        starts.append(len(prefix))
    return starts


@torch.inference_mode()
def pooled_features(base: str, texts: list[str], max_length: int, batch_size: int = 32,
                    max_layer: int | None = None, template: str = "{text}",
                    last_copy: bool = False, bidirectional_from: int | None = None
                    ) -> dict[str, torch.Tensor]:
    """Per text, layer and kind, the token mean of what a LoRA A there would read: "attention input"
    (the input norm's output, read by q/k/v_proj; N x layers x hidden) and "MLP intermediate"
    (act(gate) * up, read by down_proj; N x layers x intermediate); only layers 0..``max_layer`` are run
    when it is given. Each text is put into ``template``; with ``last_copy`` the mean runs over the tokens
    of the template's last ``{text}`` only (echo embeddings: a template with the text twice lets every
    token of the second copy attend to the whole text). From layer ``bidirectional_from`` on, attention
    is bidirectional (every real token attends to every real token; the layers below stay causal)."""
    folder = resolve_model(base)
    tokenizer = causal_tokenizer(folder)
    starts = last_copy_starts(tokenizer, texts, template) if last_copy else [0] * len(texts)
    model = load_causal_lm(folder, torch.float32).eval()
    if max_layer is not None:
        model.model.layers = model.model.layers[:max_layer + 1]
    layers = model.model.layers
    config = model.config
    out = {KINDS[0]: torch.empty(len(texts), len(layers), config.hidden_size),
           KINDS[1]: torch.empty(len(texts), len(layers), config.intermediate_size)}
    captured: dict[tuple[str, int], torch.Tensor] = {}
    for index, layer in enumerate(layers):
        for kind, module in zip(KINDS, (layer.self_attn.q_proj, layer.mlp.down_proj), strict=True):
            module.register_forward_pre_hook(
                lambda _m, inputs, key=(kind, index): captured.__setitem__(key, inputs[0]))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in tqdm(range(0, len(texts), batch_size), desc="layer features"):
        rows = order[start:start + batch_size]
        batch = tokenizer([template.replace("{text}", texts[i]) for i in rows], padding=True,
                          truncation=True, max_length=max_length, return_tensors="pt")
        run_layers(model.model, batch["input_ids"], batch["attention_mask"], bidirectional_from)
        positions = torch.arange(batch["input_ids"].shape[1])
        read = batch["attention_mask"] * (positions >= torch.tensor([starts[i] for i in rows])[:, None])
        for (kind, index), value in captured.items():
            out[kind][rows, index] = masked_mean(value, read)
    return out


def run_layers(body: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor,
               bidirectional_from: int | None) -> None:
    """The body's layers over a batch: causal throughout, or causal below ``bidirectional_from`` and from
    there on with a padding-only mask (B, 1, T, T), True where both tokens are real."""
    if bidirectional_from is None:
        body(input_ids=input_ids, attention_mask=mask, use_cache=False)
        return
    layers = body.layers
    try:
        body.layers = layers[:bidirectional_from]
        hidden = body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        body.layers = layers[bidirectional_from:]
        real = mask.bool()
        full = {"full_attention": (real[:, None, :, None] & real[:, None, None, :])}
        body(inputs_embeds=hidden, attention_mask=full, use_cache=False)
    finally:
        body.layers = layers


def probe_auc(train_u: dict[str, torch.Tensor], pairs: np.ndarray, targets: np.ndarray,
              dev_u: dict[str, torch.Tensor], dev_pairs: np.ndarray, dev_labels: np.ndarray,
              read: list[tuple[str, int]], width: int, steps: int, batch: int, seed: int) -> float:
    """Dev ROC-AUC of the probe reading ``read`` ((kind, layer) each, ``width`` rows shared evenly; see the
    module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    per_read = width // len(read)
    weights = [torch.nn.Parameter(torch.empty(per_read, train_u[kind].shape[-1])) for kind, _ in read]
    for weight in weights:  # LoRA A's initialisation
        torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    optimiser = torch.optim.AdamW(weights, lr=1e-3, weight_decay=0.01)

    def embed(u: dict[str, torch.Tensor], rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        parts = [u[kind][rows, layer] @ weight.T for (kind, layer), weight in zip(read, weights, strict=True)]
        return torch.nn.functional.normalize(torch.cat(parts, dim=-1), dim=-1)

    pair_t, target_t = torch.from_numpy(pairs), torch.from_numpy(targets)
    for _ in range(steps):
        pick = torch.randint(len(pairs), (batch,), generator=generator)
        z_a, z_b = embed(train_u, pair_t[pick, 0]), embed(train_u, pair_t[pick, 1])
        loss = torch.nn.functional.mse_loss((z_a * z_b).sum(-1), target_t[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        z_a, z_b = embed(dev_u, dev_pairs[:, 0]), embed(dev_u, dev_pairs[:, 1])
        scores = (z_a * z_b).sum(-1).numpy()
    return float(roc_auc_score(dev_labels, scores))


def plot_probe(report: dict, path: Path) -> None:
    """Dev ROC-AUC of the single-layer probes by layer, one line per kind, the groups as horizontal bars."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for kind, colour in zip(KINDS, ("tab:blue", "tab:orange"), strict=True):
        singles = [(r["read"][0][1], r["mean"]) for name, r in report["probes"].items()
                   if name.startswith(f"{kind}, layer ")]
        if singles:
            axis.plot(*zip(*singles, strict=True), marker="o", color=colour, label=f"{kind}, one layer")
        for name, r in report["probes"].items():
            if name.startswith(f"{kind}, layers "):
                layers = [layer for _, layer in r["read"]]
                axis.hlines(r["mean"], layers[0] - 0.4, layers[-1] + 0.4, color=colour, linewidth=3,
                            alpha=0.5, label=None if singles else f"{kind}, 4-layer group")
    axis.axhline(report["teacher_dev_auc"], color="grey", linestyle="--", label="teacher")
    axis.set_xlabel("layer (bars: the 4-layer groups)")
    axis.set_ylabel("probe dev ROC-AUC")
    axis.set_title(f"Linear probe of frozen {report['base']} features ({report['width']} dims)")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def index_pairs(pairs: list[Pair], index: dict[str, int]) -> np.ndarray:
    """(len(pairs), 2) positions of each pair's two texts in ``index``."""
    return np.array([[index[p.text_a], index[p.text_b]] for p in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--base", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--width", type=int, default=768, help="readout width, split over the layers")
    parser.add_argument("--neighbours", type=int, default=4)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14],
                        help="seeds of the group probes (the single-layer scans use the first)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--group", type=int, default=4, help="consecutive layers per group probed")
    parser.add_argument("--max-layer", type=int, default=None, help="run and probe layers 0..N only")
    parser.add_argument("--no-scan", action="store_true", help="probe layer groups only, no single layers")
    parser.add_argument("--template", default="{text}", help="text template; {text} may appear twice (echo)")
    parser.add_argument("--last-copy", action="store_true",
                        help="pool over the template's last {text} only (echo embeddings)")
    parser.add_argument("--bidirectional-from", type=int, default=None,
                        help="attention is bidirectional from this layer on (causal below)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, dev = load_pairs(split_path(args.data, "train")), load_pairs(split_path(args.data, "dev"))
    train_texts = sorted({t for p in train for t in (p.text_a, p.text_b)})
    dev_texts = sorted({t for p in dev for t in (p.text_a, p.text_b)})
    teacher = OnnxTeacher(args.teacher, args.threads)
    e = np.asarray(teacher.embed(train_texts, progress="teacher"))
    rng = np.random.default_rng(13)
    count = len(train_texts)
    nearest = nearest_keys(e, e, args.neighbours, exclude_self=True)
    pairs = np.concatenate([
        index_pairs(train, {t: i for i, t in enumerate(train_texts)}),
        np.stack([np.repeat(np.arange(count), args.neighbours), nearest.ravel()], axis=1),
        np.stack([np.arange(count), rng.integers(count, size=count)], axis=1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    targets = np.einsum("nd,nd->n", e[pairs[:, 0]], e[pairs[:, 1]]).astype(np.float32)
    dev_pairs = index_pairs(dev, {t: i for i, t in enumerate(dev_texts)})
    dev_labels = np.array([p.label for p in dev])
    teacher_dev = teacher.score_pairs([p.text_a for p in dev], [p.text_b for p in dev])
    features = {"max_layer": args.max_layer, "template": args.template, "last_copy": args.last_copy,
                "bidirectional_from": args.bidirectional_from}
    train_u = pooled_features(args.base, train_texts, args.max_length, **features)
    dev_u = pooled_features(args.base, dev_texts, args.max_length, **features)
    layers = train_u[KINDS[0]].shape[1]
    starts = range(0, layers - args.group + 1, args.group)
    groups = [list(range(start, start + args.group)) for start in starts]
    probes = {f"{kind}, layers {g[0]}-{g[-1]}": ([(kind, layer) for layer in g], args.seeds)
              for kind in KINDS for g in groups}
    probes |= {f"both, layers {g[0]}-{g[-1]}": ([(kind, layer) for layer in g for kind in KINDS], args.seeds)
               for g in groups[1:4]}
    if not args.no_scan:
        probes |= {f"{KINDS[0]}, layer {layer}": ([(KINDS[0], layer)], args.seeds[:1])
                   for layer in range(layers)}
        probes |= {f"{KINDS[1]}, layer {layer}": ([(KINDS[1], layer)], args.seeds[:1])
                   for layer in range(0, layers, 3)}
    results = {}
    for name, (read, seeds) in tqdm(probes.items(), desc="probes"):
        aucs = [probe_auc(train_u, pairs, targets, dev_u, dev_pairs, dev_labels, read, args.width,
                          args.steps, args.batch, seed) for seed in seeds]
        results[name] = {"read": read, "dev_auc": aucs, "mean": float(np.mean(aucs))}
        tqdm.write(f"{name}: dev AUC {np.mean(aucs):.4f} {aucs}")
    report = {"data": str(args.data), "base": args.base, "teacher": str(args.teacher),
              "teacher_dev_auc": float(roc_auc_score(dev_labels, teacher_dev)),
              "template": args.template, "last_copy": args.last_copy,
              "bidirectional_from": args.bidirectional_from,
              "max_length": args.max_length, "train_texts": len(train_texts), "probe_pairs": len(pairs),
              "width": args.width,
              "steps": args.steps, "batch": args.batch, "seeds": args.seeds, "probes": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot_probe(report, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
