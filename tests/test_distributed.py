"""Distillation under torchrun: two CPU processes (gloo) on a tiny randomly initialised Llama."""

import json
import math
import shutil
import subprocess
import sys

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from flipkd.service.server import free_port

from .conftest import REPO

pytestmark = pytest.mark.slow  # a tiny Llama from SmolLM2 files and the suite's teacher


@pytest.fixture(scope="module")
def tiny_llama(smollm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(smollm_dir / name, folder / name)
    return folder


def test_two_gloo_processes_train_one_bundle(tiny_llama, exported_teacher, tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(
        f"data: {REPO / 'data' / 'medical_question_pairs'}\nbase: {tiny_llama}\nteacher: {exported_teacher}\n"
        "encoder: {layers: [2, 3], rank: 4, max_length: 32}\n"
        "train: {train_limit: 128, batch_size: 16, epochs: 1, checkpoint_every: 100}\n")
    out = tmp_path / "bundle"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), "-m", "flipkd", "--threads", "1",
               "distill", "--config", str(config), "--out", str(out), "--fp32"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "flipkd.json").read_text())
    assert manifest["training"]["world_size"] == 2
    batches = math.ceil(manifest["training"]["pairs"] / 16)
    assert manifest["training"]["steps"] == math.ceil(batches / 2)  # each step consumes one batch per process
    assert (out / "adapter_model.safetensors").is_file()
