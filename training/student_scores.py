"""Student similarities for pairs: cosine of the LoRA-encoder representations."""

from __future__ import annotations

import numpy as np

from flipkd.models.bi_encoder import pair_cosines
from flipkd.models.lora_encoder import LoraEncoder
from flipkd.training.data import Pair


def student_scores(student: LoraEncoder, pairs: list[Pair], batch_size: int = 32,
                   progress: str | None = "student") -> np.ndarray:
    """cos(z_a, z_b) for each pair, embedding each distinct text once (progress bar labelled ``progress``)."""
    return pair_cosines(lambda texts: student.embed(texts, batch_size, progress).numpy(),
                        [p.text_a for p in pairs], [p.text_b for p in pairs])
