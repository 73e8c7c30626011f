"""GGUF file -> plain transformers causal-LM folder (bf16 safetensors + tokenizer).

transformers dequantizes GGUF on load but tags the config with a GGUF quantizer, which blocks
``save_pretrained`` and training. We rebuild a clean model from the config without that tag and copy the
dequantized weights in, keeping a separately stored output layer untied from the embeddings.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def convert_gguf(gguf_path: Path, out_dir: Path, dtype: torch.dtype = torch.bfloat16) -> None:
    """Write a transformers folder at ``out_dir`` holding the GGUF model's weights in ``dtype``."""
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = quantized.state_dict()
    embed = quantized.get_input_embeddings().weight
    head = quantized.get_output_embeddings().weight
    config.tie_word_embeddings = bool(torch.equal(embed, head))
    del quantized
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(state, strict=True)
    clean.to(dtype).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
