"""The layer probe reads what a LoRA A would read, and its probe tells a signal feature from noise."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

from layer_probe import KINDS, pooled_features, probe_auc  # noqa: E402

TEXTS = ["How do I treat a sore throat?", "Is it safe to take ibuprofen with a cold?", "Knee pain"]


@pytest.mark.slow
def test_features_are_the_pooled_inputs_of_q_proj_and_down_proj(smollm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    features = pooled_features(str(smollm_dir), TEXTS, max_length=32)
    model = AutoModelForCausalLM.from_pretrained(smollm_dir, dtype=torch.float32).eval()
    config = model.config
    assert features[KINDS[0]].shape == (3, config.num_hidden_layers, config.hidden_size)
    assert features[KINDS[1]].shape == (3, config.num_hidden_layers, config.intermediate_size)
    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    layers = (0, 7, config.num_hidden_layers - 1)
    mlp_inputs: dict[int, torch.Tensor] = {}
    for layer in layers:  # the MLP's own input, from a hook on the MLP (not on down_proj)
        model.model.layers[layer].mlp.register_forward_hook(
            lambda _m, inputs, _out, layer=layer: mlp_inputs.__setitem__(layer, inputs[0]))
    for row, text in enumerate(TEXTS):  # one text at a time: no padding at all
        batch = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            hidden = model.model(**batch, output_hidden_states=True).hidden_states
            for layer in layers:
                mlp = model.model.layers[layer].mlp
                attention_input = model.model.layers[layer].input_layernorm(hidden[layer])
                intermediate = mlp.act_fn(mlp.gate_proj(mlp_inputs[layer])) * mlp.up_proj(mlp_inputs[layer])
                torch.testing.assert_close(features[KINDS[0]][row, layer], attention_input[0].mean(0),
                                           rtol=1e-4, atol=1e-4)
                torch.testing.assert_close(features[KINDS[1]][row, layer], intermediate[0].mean(0),
                                           rtol=1e-4, atol=1e-4)


def test_the_probe_finds_the_feature_the_teacher_agrees_with():
    rng = np.random.default_rng(0)
    texts, dims = 400, 32
    topic = rng.integers(8, size=texts)
    centres = rng.normal(size=(8, dims))
    signal = centres[topic] + 0.3 * rng.normal(size=(texts, dims))
    features = {"signal": torch.tensor(signal[:, None], dtype=torch.float32),
                "noise": torch.tensor(rng.normal(size=(texts, 1, dims)), dtype=torch.float32)}
    pairs = rng.integers(texts, size=(3000, 2))
    targets = (topic[pairs[:, 0]] == topic[pairs[:, 1]]).astype(np.float32)
    dev_pairs = rng.integers(texts, size=(300, 2))
    dev_labels = (topic[dev_pairs[:, 0]] == topic[dev_pairs[:, 1]]).astype(int)
    auc = {kind: probe_auc(features, pairs, targets, features, dev_pairs, dev_labels, [(kind, 0)], 8,
                           steps=200, batch=128, seed=13) for kind in features}
    assert auc["signal"] > 0.95
    assert auc["noise"] < 0.7
