"""LLM rewrites of the training texts: new in-domain text for the teacher-scored transfer set.

Every distinct training text t (both sides of the labelled pairs, in order of first appearance) is
rewritten ``per_text`` times by an instruction-tuned causal LM from the chat prompt :data:`SYSTEM` +
``PROMPTS[style]`` (kept short: the prompt is run once per rewrite and dominates the cost): style
``paraphrase`` asks for t in other words, style ``related`` for a different question on the same subject
that needs another answer (the near misses a matcher must reject). Sampled at
``temperature`` over the ``top_k`` likeliest tokens (seeded). A rewrite is kept when it is one line, not
empty, not equal to t (case and spacing ignored) and ended before ``max_new_tokens``. Written as JSONL
``{"text": rewrite, "source": t, "style": style}``, one line per rewrite, shortest sources first (texts
are batched by length, so little padding is run); a config names it as
``transfer.extra: [FILE:text]``, so the teacher scores each rewrite against its nearest training texts.
Only the training split is read: no dev or test text reaches the generator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from flipkd.models.base_models import causal_tokenizer, load_causal_lm
from flipkd.models.provision import resolve_model
from flipkd.training.data import distinct_texts, load_pairs

SYSTEM = "You rewrite questions."
PROMPTS = {
    "paraphrase": "Rewrite in other words, same language, same meaning; "
                  "answer with the rewrite only:\n{text}",
    "related": "Write a different question on the same subject that needs a different answer; same language; "
               "answer with the question only:\n{text}",
}


@dataclass(frozen=True)
class ParaphraseConfig:
    per_text: int = 1
    temperature: float = 0.8
    top_k: int = 40
    max_new_tokens: int = 64
    batch_size: int = 32
    seed: int = 13
    style: str = "paraphrase"


def _kept(source: str, rewrite: str) -> bool:
    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    return bool(rewrite) and "\n" not in rewrite and norm(rewrite) != norm(source)


def _batches(texts: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), size):
        yield texts[start:start + size]


def paraphrase(texts: Sequence[str], base: str, config: ParaphraseConfig, dtype: torch.dtype,
               ) -> list[dict[str, str]]:
    """``{"text", "source"}`` records, up to ``per_text`` kept rewrites per text (see the module doc)."""
    folder = resolve_model(base)
    tokenizer = causal_tokenizer(folder)
    tokenizer.padding_side = "left"  # generation continues every row from its last token
    model = load_causal_lm(folder, dtype).eval()
    torch.manual_seed(config.seed)
    records: list[dict[str, str]] = []
    progress = tqdm(total=len(texts), desc="paraphrase", unit="text")
    for batch in _batches(sorted(texts, key=len), config.batch_size):  # similar lengths: little padding
        prompt = PROMPTS[config.style]
        prompts = [tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM},
                                                  {"role": "user", "content": prompt.format(text=t)}],
                                                 tokenize=False, add_generation_prompt=True) for t in batch]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=True, temperature=config.temperature, top_k=config.top_k,
                                 max_new_tokens=config.max_new_tokens,
                                 num_return_sequences=config.per_text, pad_token_id=tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        finished = (new == tokenizer.eos_token_id).any(dim=1) | (new == tokenizer.pad_token_id).any(dim=1)
        for row, (tokens, done) in enumerate(zip(new, finished, strict=True)):
            source = batch[row // config.per_text]
            rewrite = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            if done and _kept(source, rewrite):
                records.append({"text": rewrite, "source": source, "style": config.style})
        progress.update(len(batch))
    progress.close()
    return records


def write_paraphrases(data_dir: Path, base: str, out: Path, config: ParaphraseConfig, dtype: torch.dtype,
                      limit: int | None = None, shard: tuple[int, int] = (0, 1)) -> dict:
    """Paraphrase the training texts of ``data_dir`` into ``out``: the first ``limit`` when given, and of
    those every ``shard[1]``-th from index ``shard[0]`` (shards run as separate processes)."""
    index, count = shard
    texts = distinct_texts(load_pairs(data_dir / "train.jsonl"))[:limit][index::count]
    records = paraphrase(texts, base, config, dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return {"texts": len(texts), "rewrites": len(records), "out": str(out), "base": base,
            "shard": f"{index}/{count}", "config": vars(config)}
