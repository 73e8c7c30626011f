"""Baselines the student is compared with.

- ``zero_shot``: the base LLM as is; representation = mean over tokens of the last hidden state (after
  the final norm), similarity = cosine.
- ``sft``: the LLM fine-tuned the ordinary way: LoRA on ``q_proj``/``v_proj`` of every layer, trained
  generatively on a pair prompt whose answer is " yes" or " no" (cross-entropy over the whole vocabulary
  at the answer position); score = P(yes) / (P(yes) + P(no)) at that position.
Both calibrate their threshold on dev (bagged best F1) and report dev and test.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from tqdm import tqdm

from flipkd.models.base_models import causal_tokenizer, load_causal_lm
from flipkd.models.bi_encoder import length_sorted_batches, pair_cosines
from flipkd.models.lora_encoder import last_token
from flipkd.models.pooling import masked_mean
from flipkd.training.data import Pair
from flipkd.training.distill import stratified_batches

PROMPT = ("Do the following two customer questions ask the same thing?\n"
          "Question 1: {a}\nQuestion 2: {b}\nAnswer (yes or no):")


class ZeroShotLLM:
    """Mean-pooled last hidden state of the unmodified LLM (no ``lm_head``)."""

    def __init__(self, base: str, max_length: int = 64, dtype: torch.dtype = torch.bfloat16) -> None:
        self.tokenizer = causal_tokenizer(base)
        self.body = load_causal_lm(base, dtype).model.eval()
        self.max_length = max_length

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: str | None = "zero-shot"
              ) -> np.ndarray:
        out = np.empty((len(texts), self.body.config.hidden_size), dtype=np.float32)
        for batch in length_sorted_batches(texts, batch_size, progress):
            encoded = self.tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
            hidden = self.body(**encoded, use_cache=False).last_hidden_state.float()
            out[batch] = torch.nn.functional.normalize(masked_mean(hidden, encoded["attention_mask"]), dim=-1)
        return out

    def score_pairs(self, pairs: list[Pair]) -> np.ndarray:
        return pair_cosines(self.embed, [p.text_a for p in pairs], [p.text_b for p in pairs])


class GenerativeMatcher:
    """The LLM with a LoRA adapter answering PROMPT with " yes" / " no"."""

    def __init__(self, base: str, rank: int = 16, max_length: int = 160, dtype: torch.dtype = torch.bfloat16
                 ) -> None:
        self.tokenizer = causal_tokenizer(base)
        model = load_causal_lm(base, dtype)
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], bias="none")
        self.model = get_peft_model(model, config)
        self.max_length = max_length
        self.yes_id = self.tokenizer.encode(" yes", add_special_tokens=False)[0]
        self.no_id = self.tokenizer.encode(" no", add_special_tokens=False)[0]

    def answer_logits(self, pairs: Sequence[Pair]) -> torch.Tensor:
        """Vocabulary logits (B, V) at the answer position; ``lm_head`` runs on that position only."""
        prompts = [PROMPT.format(a=p.text_a, b=p.text_b) for p in pairs]
        encoded = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        causal_lm = self.model.base_model.model
        hidden = causal_lm.model(**encoded, use_cache=False).last_hidden_state
        return causal_lm.lm_head(last_token(hidden, encoded["attention_mask"])).float()

    @torch.inference_mode()
    def score_pairs(self, pairs: list[Pair], batch_size: int = 16) -> np.ndarray:
        """P(yes) / (P(yes) + P(no)) per pair."""
        self.model.eval()
        scores = np.empty(len(pairs), dtype=np.float32)
        lengths = [f"{p.text_a}{p.text_b}" for p in pairs]
        for batch in length_sorted_batches(lengths, batch_size, progress="sft score"):
            logits = self.answer_logits([pairs[i] for i in batch])
            scores[batch] = torch.softmax(logits[:, [self.yes_id, self.no_id]], dim=-1)[:, 0].numpy()
        return scores

    def train(self, pairs: list[Pair], epochs: float, batch_size: int, lr: float, seed: int) -> dict:
        """Generative fine-tuning: cross-entropy of the " yes"/" no" answer token."""
        torch.manual_seed(seed)
        labels = np.array([p.label for p in pairs])
        batches = stratified_batches(labels, batch_size, random.Random(seed))
        total = max(1, math.ceil(len(batches) * epochs))
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=lr)
        targets_of = torch.tensor([self.no_id, self.yes_id])
        losses, started = [], time.perf_counter()
        self.model.train()
        with tqdm(range(total), desc="sft", unit="step") as bar:
            for step in bar:
                batch = [pairs[i] for i in batches[step % len(batches)]]
                logits = self.answer_logits(batch)
                loss = torch.nn.functional.cross_entropy(logits, targets_of[[p.label for p in batch]])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        return {"steps": total, "train_seconds": round(time.perf_counter() - started, 1), "losses": losses}

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))
