"""Models are built one at a time per process: transformers sets torch's global default dtype while it
builds one, so a bf16 and an fp32 model built at once in two threads can leave the other's dtype behind."""

from __future__ import annotations

import threading

import pytest
import torch

from flipkd.models.base_models import load_causal_lm
from flipkd.models.bi_encoder import TorchBiEncoder
from flipkd.models.build_lock import MODEL_BUILD_LOCK


@pytest.mark.slow
def test_a_model_build_waits_for_the_build_lock_and_keeps_its_dtype(smollm_dir, minilm_dir):
    built: dict[str, object] = {}

    def student() -> None:
        built["student"] = load_causal_lm(str(smollm_dir), torch.bfloat16)

    def teacher() -> None:
        built["teacher"] = TorchBiEncoder(str(minilm_dir))

    builds = [threading.Thread(target=student), threading.Thread(target=teacher)]
    with MODEL_BUILD_LOCK:
        for thread in builds:
            thread.start()
        for thread in builds:
            thread.join(timeout=2)
        assert not built, "a model was built while another build held the lock"
    for thread in builds:
        thread.join(timeout=120)
    assert next(built["student"].parameters()).dtype == torch.bfloat16
    assert next(built["teacher"].model.parameters()).dtype == torch.float32
    assert torch.get_default_dtype() == torch.float32
