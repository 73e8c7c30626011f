from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from flipkd.models.base_models import BaseModels
from flipkd.models.encoder_spec import EncoderSpec
from flipkd.models.lora_encoder import LoraEncoder
from flipkd.models.pooling import masked_mean

TEXTS = ["How do I repay my credit card bill?", "What are the side effects of ibuprofen?", "hi"]
SPEC = EncoderSpec(modules=("q_proj", "v_proj"), layers=(20, -1), rank=4, alpha=8, max_length=16)


@pytest.fixture(scope="module")
def student(smollm_dir):
    """A SmolLM2 LoRA encoder with non-zero B so lower LoRA layers change the inputs of higher ones."""
    encoder = LoraEncoder(str(smollm_dir), SPEC, dtype=torch.float32)
    torch.manual_seed(0)
    for name, parameter in encoder.peft.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.02)
    return encoder


@pytest.mark.slow
def test_representation_equals_hand_computation_on_the_full_model(smollm_dir, student, tmp_path):
    """z = normalize(concat_m mean_t(x_{m,t} A_m^T)) from module inputs of an ordinary full forward."""
    student.save_adapter(tmp_path)
    full = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm_dir, dtype=torch.float32),
                                     str(tmp_path))
    layers = full.base_model.model.model.layers
    inputs: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for layer in (20, 29):
        for module in SPEC.modules:
            target = getattr(layers[layer].self_attn, module)
            handles.append(target.register_forward_pre_hook(
                lambda _m, args, key=(layer, module): inputs.__setitem__(key, args[0])))
    batch = student.tokenize(TEXTS)
    with torch.inference_mode():
        full(**batch)
        ours = student(**batch)
    for handle in handles:
        handle.remove()
    parts = []
    for layer in (20, 29):
        for module in SPEC.modules:
            weight_a = getattr(layers[layer].self_attn, module).lora_A["default"].weight
            parts.append(masked_mean(inputs[(layer, module)] @ weight_a.T, batch["attention_mask"]))
    expected = torch.nn.functional.normalize(torch.cat(parts, dim=-1), dim=-1)
    assert ours.shape == (3, student.dim) == (3, 16)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_tokenize_pads_like_the_tokenizer_itself(student):
    """Ids are tokenized once without padding and padded per batch: the same tensors as the tokenizer's
    own truncation and right padding."""
    texts = [*TEXTS, "a text far longer than the sixteen tokens the spec keeps " * 3]
    own = student.tokenizer([SPEC.format(text) for text in texts], padding=True, truncation=True,
                            max_length=SPEC.max_length, return_tensors="pt")
    ours = student.tokenize(texts)
    assert torch.equal(ours["input_ids"], own["input_ids"])
    assert torch.equal(ours["attention_mask"], own["attention_mask"])
    assert ours["input_ids"].shape[1] == SPEC.max_length


@pytest.mark.slow
def test_two_stage_training_pass_equals_the_one_pass_forward(student):
    """Training reads encode_hidden(frozen_hidden(x)); serving reads forward(x): the same function."""
    batch = student.tokenize(TEXTS)
    with torch.inference_mode():
        staged = student.encode_hidden(student.frozen_hidden(**batch), batch["attention_mask"])
        torch.testing.assert_close(student(**batch), staged, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_training_pairs_in_length_groups_score_as_one_padded_batch_with_less_padding(student):
    """The training step embeds its texts in sub-batches of similar length: same cosines, fewer positions."""
    from flipkd.training.distill import PairCosine
    from flipkd.training.hidden_cache import HiddenCache

    long = [f"question {i}: does {'a long list of medicines ' * 3}interact" for i in range(12)]
    short = [f"q{i}" for i in range(12)]
    texts = [*long[:6], *short[:6], *short[6:], *long[6:]]  # pairs (long, short) and (short, long)
    cache = HiddenCache(student)
    groups = cache.groups(texts)
    assert len(groups) > 1
    assert sorted(torch.cat([rows for rows, _, _ in groups]).tolist()) == list(range(len(texts)))
    hidden, mask = cache.batch(texts)
    assert sum(group_mask.numel() for _, _, group_mask in groups) < mask.numel()
    with torch.inference_mode():
        grouped = PairCosine(student)(groups)[0]
        z = student.encode_hidden(hidden, mask)
    half = len(texts) // 2
    torch.testing.assert_close(grouped, (z[:half] * z[half:]).sum(dim=-1), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_threads_embedding_at_once_get_their_own_results(student):
    texts = [f"question number {i} about {'card ' * (i % 5)}fees" for i in range(24)]
    groups = [texts[i::4] for i in range(4)]
    alone = [student.embed(group, batch_size=len(group)) for group in groups]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda group: student.embed(group, batch_size=len(group)), groups * 3))
    for index, result in enumerate(together):
        torch.testing.assert_close(result, alone[index % 4], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_early_exit_skips_upper_layers_and_lm_head(smollm_dir):
    encoder = LoraEncoder(str(smollm_dir), EncoderSpec(layers=(10,), rank=4), dtype=torch.float32)
    assert len(encoder.body.layers) == 11
    assert isinstance(encoder.peft.base_model.model.lm_head, torch.nn.Identity)


@pytest.mark.slow
def test_pass_stops_inside_the_deepest_layer_once_its_lora_outputs_are_read(student):
    """Layer 29's attention output and MLP change nothing read: they never run, in serving or training,
    while layer 20 (read, below) runs whole; gradients still reach every LoRA matrix."""
    calls: dict[str, int] = {"o_proj 29": 0, "mlp 29": 0, "mlp 20": 0}
    layers = student.body.layers
    handles = [module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
               for name, module in (("o_proj 29", layers[29].self_attn.o_proj), ("mlp 29", layers[29].mlp),
                                    ("mlp 20", layers[20].mlp))]
    batch = student.tokenize(TEXTS)
    try:
        with torch.inference_mode():
            student(**batch)
        student.train()
        for name, parameter in student.peft.named_parameters():
            parameter.requires_grad_("lora_" in name)
        hidden = student.frozen_hidden(**batch)
        student.encode_hidden(hidden, batch["attention_mask"]).sum().backward()
        grads = {name: parameter.grad for name, parameter in student.peft.named_parameters()
                 if "lora_" in name}
    finally:
        for handle in handles:
            handle.remove()
        student.peft.zero_grad(set_to_none=True)
        for parameter in student.peft.parameters():
            parameter.requires_grad_(False)
        student.eval()
    assert calls == {"o_proj 29": 0, "mlp 29": 0, "mlp 20": 2}
    lora_a_read = [name for name in grads if "lora_A" in name]
    assert lora_a_read
    assert all(grads[name] is not None and grads[name].abs().sum() > 0 for name in lora_a_read)
    # layer 20's B shapes what layer 29 reads; layer 29's B feeds nothing read, so it gets no gradient
    assert all(grads[name] is not None for name in grads if "lora_B" in name and ".20." in name)
    assert all(grads[name] is None for name in grads if "lora_B" in name and ".29." in name)


@pytest.mark.slow
def test_saved_adapter_reloads_to_the_same_embeddings(smollm_dir, student, tmp_path):
    student.save_adapter(tmp_path)
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "adapter_model.safetensors").is_file()
    reloaded = LoraEncoder(str(smollm_dir), SPEC, adapter=tmp_path, dtype=torch.float32)
    torch.testing.assert_close(reloaded.embed(TEXTS), student.embed(TEXTS))


@pytest.mark.slow
def test_encoders_over_one_base_share_its_weights_and_embed_as_alone(smollm_dir, student, tmp_path):
    student.save_adapter(tmp_path)
    bases = BaseModels()
    shallow = LoraEncoder(str(smollm_dir), EncoderSpec(layers=(3,), rank=4), dtype=torch.float32, bases=bases)
    shared = LoraEncoder(str(smollm_dir), SPEC, adapter=tmp_path, dtype=torch.float32, bases=bases)

    def base_storage(encoder: LoraEncoder) -> set[int]:
        return {p.data_ptr() for name, p in encoder.body.named_parameters() if "lora_" not in name}

    assert base_storage(shallow) < base_storage(shared)  # layers 0-3 and the embeddings: one copy
    assert base_storage(shared).isdisjoint(base_storage(student))  # built without ``bases``: its own
    assert (len(shallow.body.layers), len(shared.body.layers)) == (4, len(student.body.layers))
    torch.testing.assert_close(shared.embed(TEXTS), student.embed(TEXTS))


@pytest.mark.slow
def test_last_token_pooling_reads_the_last_real_token(smollm_dir):
    spec = EncoderSpec(layers=(3,), rank=4, pooling="last")
    encoder = LoraEncoder(str(smollm_dir), spec, dtype=torch.float32)
    alone = encoder.embed(["hi"])
    padded = encoder.embed(["hi", "a much longer text that forces padding of the short one"], batch_size=2)
    torch.testing.assert_close(padded[:1], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_echo_reads_each_text_twice_and_pools_its_second_copy(smollm_dir):
    """Echo: ids + [newline] + ids, and z = mean over the second copy of x A^T (normalisation off, one
    module read); padding in a batch changes nothing."""
    spec = EncoderSpec(modules=("q_proj",), layers=(3,), rank=4, normalize=False, echo=True, max_length=16)
    echoing = LoraEncoder(str(smollm_dir), spec, dtype=torch.float32)
    plain = LoraEncoder(str(smollm_dir), replace(spec, echo=False), dtype=torch.float32)
    separator = echoing.echo_separator
    assert echoing.tokenizer.decode([separator]) == "\n" and plain.echo_separator is None
    once = plain.token_ids(TEXTS)
    assert echoing.token_ids(TEXTS) == [row + [separator] + row for row in once]
    lora_a = echoing._find(3, "q_proj").lora_A["default"]
    inputs = []
    handle = lora_a.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    batch = echoing.tokenize(TEXTS)
    with torch.inference_mode():
        ours = echoing(**batch)
    handle.remove()
    read = inputs[0] @ lora_a.weight.T
    expected = torch.stack([read[row, len(ids) + 1:2 * len(ids) + 1].mean(dim=0)
                            for row, ids in enumerate(once)])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    alone = torch.cat([echoing.embed([text]) for text in TEXTS])
    torch.testing.assert_close(echoing.embed(TEXTS, batch_size=len(TEXTS)), alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(ours, plain.embed(TEXTS), atol=1e-3)


@pytest.mark.slow
def test_bidirectional_read_layers_see_the_tokens_ahead_and_train_as_they_serve(smollm_dir):
    """From the lowest read layer on every token attends to the whole text: the first token's read input
    in the next layer changes with the words after it (it cannot in the causal encoder); the two-stage
    training pass, the one-pass forward and padded batches agree."""
    spec = EncoderSpec(modules=("q_proj",), layers=(3, 4), rank=4, bidirectional=True, max_length=16)
    bidirectional = LoraEncoder(str(smollm_dir), spec, dtype=torch.float32)
    causal = LoraEncoder(str(smollm_dir), replace(spec, bidirectional=False), dtype=torch.float32)
    texts = ["the cat sat on the mat", "the cat ran off at night"]

    def first_token_inputs(encoder: LoraEncoder) -> torch.Tensor:
        inputs = []
        handle = encoder._find(4, "q_proj").lora_A["default"].register_forward_pre_hook(
            lambda _m, args: inputs.append(args[0][:, 0]))
        with torch.inference_mode():
            encoder(**encoder.tokenize(texts))
        handle.remove()
        return inputs[0]

    seen_by_causal, seen_by_bidirectional = first_token_inputs(causal), first_token_inputs(bidirectional)
    torch.testing.assert_close(seen_by_causal[0], seen_by_causal[1])
    assert not torch.allclose(seen_by_bidirectional[0], seen_by_bidirectional[1], atol=1e-3)
    batch = bidirectional.tokenize(TEXTS)
    with torch.inference_mode():
        staged = bidirectional.encode_hidden(bidirectional.frozen_hidden(**batch), batch["attention_mask"])
        torch.testing.assert_close(bidirectional(**batch), staged, atol=1e-5, rtol=1e-4)
    alone = torch.cat([bidirectional.embed([text]) for text in TEXTS])
    torch.testing.assert_close(bidirectional.embed(TEXTS, batch_size=len(TEXTS)), alone, atol=1e-5, rtol=1e-4)


def test_spec_validation():
    with pytest.raises(ValueError, match="template"):
        EncoderSpec(template="no placeholder")
    with pytest.raises(ValueError, match="out of range"):
        EncoderSpec(layers=(40,)).resolved_layers(30)
    assert EncoderSpec(layers=(-1, 0, -1)).resolved_layers(30) == (0, 29)
    spec = EncoderSpec(modules=("q_proj", "k_proj"), layers=(1, 2, 3), rank=8, echo=True)
    assert EncoderSpec.from_json(spec.to_json()) == spec
    written_before_echo = {key: value for key, value in spec.to_json().items() if key != "echo"}
    assert EncoderSpec.from_json(written_before_echo).echo is False
    assert EncoderSpec.from_json(written_before_echo).bidirectional is False


@pytest.mark.slow
def test_two_stage_pass_keeps_each_layers_attention_type(smollm_dir, tmp_path):
    """A base whose layers differ by type (Gemma 3: sliding-window or global attention, each with its own
    rotary base) looks the type up by position: the read layers run alone must keep their own types."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                              num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                              sliding_window=3, pad_token_id=tokenizer.pad_token_id,
                              layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                           "sliding_attention"])
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    spec = EncoderSpec(modules=("q_proj", "v_proj"), layers=(2, 3), rank=4, alpha=8, max_length=16)
    encoder = LoraEncoder(str(tmp_path), spec, dtype=torch.float32)
    for name, parameter in encoder.peft.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.02)
    batch = encoder.tokenize(TEXTS)
    with torch.inference_mode():
        staged = encoder.encode_hidden(encoder.frozen_hidden(**batch), batch["attention_mask"])
        torch.testing.assert_close(encoder(**batch), staged, atol=1e-5, rtol=1e-4)
    assert encoder.body.config.layer_types == config.layer_types
