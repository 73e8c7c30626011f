"""Dynamic int8 quantization of an ONNX graph's weights, the one recipe the student and teacher exports share.

onnxruntime's dynamic quantization, weights signed int8 per output channel, activations unsigned int8 per
tensor at run time. Weights use 7 bits (``reduce_range``): x86 CPUs without VNNI multiply u8 x s8 with
VPMADDUBSW, which adds two products into a saturating int16; 255 x 127 x 2 = 64,770 overflows it, 255 x 64 x
2 = 32,640 does not. With 8-bit weights the test student's int8 embeddings kept a cosine of only 0.55 to
fp32 on an AVX2-only EPYC (over 0.95 on AVX-512 VNNI CPUs, whose VPDPBUSD adds in 32 bits); with 7 bits no
sum can saturate, so a graph quantized on one machine computes the same integers on any x86 CPU, at the
cost of one bit of weight precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from onnxruntime.quantization import QuantType, quantize_dynamic


def quantize_weights(fp32_file: Path, int8_file: Path, *, include: Sequence[str] | None = None,
                     exclude: Sequence[str] = (), op_types: Sequence[str] = ("MatMul",),
                     weight_bits: Literal[7, 8] = 7) -> None:
    """Write ``int8_file``: ``fp32_file`` with the weights of the ``op_types`` nodes quantized, only the
    nodes named in ``include`` when it is given, never those in ``exclude`` (8 ``weight_bits``: for
    comparison only, see the module doc)."""
    quantize_dynamic(str(fp32_file), str(int8_file), per_channel=True, reduce_range=weight_bits == 7,
                     weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                     nodes_to_quantize=list(include) if include is not None else None,
                     nodes_to_exclude=list(exclude))
