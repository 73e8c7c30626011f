"""Per-text cache of the frozen stage's output (hidden states entering the lowest LoRA layer).

Nothing below the lowest LoRA layer trains, so h0(text) never changes: it is computed once (in the
student's dtype, unpadded, on CPU) and re-padded into batches. With right padding and causal attention
a real token's state does not depend on the padding, so the cached rows equal any batched forward's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flipkd.models.lora_encoder import LoraEncoder
from flipkd.models.padding import padding_aware_batches


class HiddenCache:
    def __init__(self, student: LoraEncoder, enabled: bool = True) -> None:
        self.student = student
        self.enabled = enabled
        self._store: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    def _compute(self, texts: Sequence[str]) -> list[torch.Tensor]:
        batch = self.student.tokenize(texts)
        hidden = self.student.frozen_hidden(batch["input_ids"], batch["attention_mask"])
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        return [hidden[row, :length].cpu() for row, length in enumerate(lengths)]

    def _sequences(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Each text's unpadded (T_i, D) states, computing the missing ones (kept when enabled)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._store))
        computed = dict(zip(missing, self._compute(missing), strict=True)) if missing else {}
        if self.enabled:
            self._store.update(computed)
        return [computed[t] if t in computed else self._store[t] for t in texts]

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, T, D) in the student's dtype and device, attention mask (B, T)) for ``texts``."""
        return self._pad(self._sequences(texts))

    def groups(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``texts`` split into sub-batches of similar length that waste little work on padding
        (:func:`~flipkd.models.padding.padding_aware_batches` at the student's per-forward overhead; one
        length-sorted batch where padding is cheap, as on a GPU): (rows into ``texts``, hidden, mask) each.
        A row's states are the same in any sub-batch (right padding, causal attention)."""
        sequences = self._sequences(texts)
        overhead = self.student._overhead_tokens()
        split = padding_aware_batches([len(sequence) for sequence in sequences], len(texts), overhead)
        device = self.student.device
        return [(torch.tensor(rows, device=device), *self._pad([sequences[r] for r in rows]))
                for rows in split]

    def _pad(self, sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(s) for s in sequences)
        hidden = torch.zeros(len(sequences), longest, sequences[0].shape[-1], dtype=sequences[0].dtype)
        mask = torch.zeros(len(sequences), longest, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            hidden[row, :len(sequence)] = sequence
            mask[row, :len(sequence)] = 1
        device = self.student.device
        return hidden.to(device), mask.to(device)
