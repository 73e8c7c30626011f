"""Masked next-token prediction adapts the read layers of a causal base to bidirectional attention."""

from __future__ import annotations

import json
import random
import sys

import pytest
import torch
from safetensors.torch import load_file

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

from mntp_adapt import main, masked_batch, mntp_loss  # noqa: E402


def test_masked_batch_blanks_a_share_of_tokens_after_the_first_and_targets_them():
    ids = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [21, 22]]
    inputs, mask, targets = masked_batch(ids, pad_id=0, blank_id=99, ratio=0.2, generator=random.Random(0))
    assert mask.tolist() == [[1] * 11, [1, 1] + [0] * 9]
    for row, tokens in enumerate(ids):
        blanked = (inputs[row] == 99).nonzero().flatten().tolist()
        assert len(blanked) == max(1, round(0.2 * (len(tokens) - 1))) and 0 not in blanked
        assert [targets[row, i].item() for i in blanked] == [tokens[i] for i in blanked]
        assert (targets[row] != -100).sum().item() == len(blanked)
    assert inputs[1].tolist() == [21, 99] + [0] * 9


@pytest.mark.slow
def test_loss_without_bidirectional_layers_is_the_shifted_cross_entropy_of_the_plain_model(smollm_dir):
    """low > high: every layer causal, so L is the model's own next-token cross-entropy at the blanks."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm_dir, dtype=torch.float32),
                           LoraConfig(r=4, target_modules=["q_proj"], layers_to_transform=[3]))
    ids = tokenizer(["Is it safe to take ibuprofen with a cold?", "Knee pain after running"])["input_ids"]
    inputs, mask, targets = masked_batch(ids, tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("_"),
                                         0.3, random.Random(1))
    with torch.no_grad():
        ours = mntp_loss(model, inputs, mask, targets, low=2, high=1)
        logits = model(input_ids=inputs, attention_mask=mask).logits
        expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten())
        both_ways = mntp_loss(model, inputs, mask, targets, low=2, high=5)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    assert abs(both_ways.item() - ours.item()) > 1e-3


@pytest.mark.slow
def test_adapted_base_changes_only_the_adapted_layers_and_loads_as_a_base(smollm_dir, tmp_path, monkeypatch):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": f"question {i} about knee pain and fever"}) + "\n"
                             for i in range(8)))
    forbid = tmp_path / "dev.jsonl"
    forbid.write_text(json.dumps({"text_a": "question 0 about knee pain and fever", "text_b": "x",
                                  "label": 1}) + "\n")
    out = tmp_path / "adapted"
    monkeypatch.setattr(sys, "argv", ["mntp_adapt.py", "--base", str(smollm_dir), "--out", str(out),
                                      "--texts", f"{texts}:text", "--forbid", str(forbid),
                                      "--held-out", f"{forbid}:text_a", "--low", "2",
                                      "--high", "3", "--rank", "4", "--epochs", "2", "--batch-size", "4",
                                      "--lr", "0.01", "--threads", "1"])
    main()
    report = json.loads((out / "mntp.json").read_text())
    assert (out / "mntp_loss.png").stat().st_size > 0
    assert report["n_texts"] == 7 and report["steps"] == 4 and len(report["loss"]) == 4
    losses = report["held_out_loss"]
    assert report["held_out_texts"] == 1 and losses["base_causal"] > 0 and losses["adapted_causal"] > 0
    assert losses["adapted_both_ways"] < losses["base_both_ways"]  # it learned to read the text both ways
    before, after = load_file(smollm_dir / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name.split(".")[2] for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"2", "3"}

    from flipkd.models.encoder_spec import EncoderSpec
    from flipkd.models.lora_encoder import LoraEncoder

    spec = EncoderSpec(layers=(2, 3), rank=4, bidirectional=True)
    encoder = LoraEncoder(str(out), spec, dtype=torch.float32)
    assert encoder.embed(["knee pain"]).shape == (1, 8)
