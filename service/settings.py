"""Service settings, read from ``FLIPKD_*`` environment variables (pydantic-settings).

Every bound the service enforces lives here: body size, texts per request, characters per text (with
``truncate`` or reject), queue depth, per-request deadline, batching limits, and the teacher policy
(shadow share, A/B share, fallback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flipkd.models.precision import Precision


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLIPKD_", extra="ignore")

    bundles: Annotated[list[str], NoDecode] = Field(
        [], description="domains served: shipped bundle names or bundle folders, comma-separated; the first "
                        "is the default domain; the shipped ATEC bundle if unset")
    teacher: Path | None = Field(None, description="the default domain's teacher folder (ONNX or adapter); "
                                 "the bundle's own teacher if unset")
    teacher_enabled: bool = Field(True, description="attach teachers at all; off: every domain serves its "
                                  "student alone (no shadow, A/B or fallback)")
    teacher_retry_s: float = Field(30.0, gt=0, description="seconds between attempts to attach a teacher "
                                   "that is missing or failed to load")
    host: str = Field("127.0.0.1", description="address the server binds to")
    port: int = Field(8000, description="port the server listens on")
    frontends: int = Field(1, ge=1, description="server processes sharing the port, each with its own "
                           "engines (one model copy each; see docs/service.md on sizing them)")
    api_key: str | None = Field(None, description="when set, every route but health and metrics needs it")
    # Cores used by the student = torch_threads x student_workers. On CPU, one single-threaded batch per
    # core served 16% more texts/s than one batch on all cores (2-core benchmark in docs/benchmarks.md).
    torch_threads: int = Field(1, ge=1, description="threads per student batch (torch or onnxruntime)")
    student_workers: int = Field(2, ge=1, description="student batches run at once, each in its own thread")
    teacher_threads: int = Field(1, ge=1, description="onnxruntime threads of the teacher")
    student_dtype: Precision = Field(
        "auto", description="the student's number format; auto: bfloat16 on a GPU or on a CPU with "
                            "AVX512-BF16 or AMX, else float32 (emulated bf16 is ~5x slower)")
    student_runtime: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch", description="torch, or onnxruntime on CPU with the bundle's student graph (fp32, or int8 "
                             "weights), exported into the model cache on first use")

    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body (413 above it)")
    max_texts: int = Field(256, ge=1, description="texts (or pairs) per request")
    max_text_chars: int = Field(2000, ge=1, description="characters per text; see overlong")
    overlong: Literal["truncate", "reject"] = Field(
        "truncate", description="a text over max_text_chars is truncated, or its request refused (413)")
    deadline_s: float = Field(10.0, gt=0, description="per-request deadline")

    max_batch_size: int = Field(32, ge=1, description="texts per batch")
    max_batch_tokens: int = Field(4096, ge=1, description="tokens per batch")
    # 20 ms gathers the requests a finished batch's callers send back (they arrive over ~10-20 ms on
    # loopback at 32 in flight); 5 and 10 ms left batches cycling through sizes such as 32, 24, 8.
    max_wait_ms: float = Field(20.0, ge=0, description="how long a batch stays open for more texts "
                               "when no other worker is free and another batch runs or texts were waiting")
    max_queue: int = Field(1024, ge=1, description="texts waiting per engine before 429")
    heap_trim_interval_s: float = Field(10.0, ge=0, description="seconds between returns of the C heap's "
                                        "free pages to the OS (0: never)")
    cache_size: int = Field(10_000, ge=0, description="embeddings kept for repeated texts (0: off)")

    shadow_share: float = Field(0.0, ge=0, le=1, description="share of requests also scored by the teacher")
    shadow_log: Path | None = Field(None, description="JSONL file for shadow disagreements")
    ab_share: float = Field(0.0, ge=0, le=1, description="share of request keys served by the teacher")
    fallback: bool = Field(True, description="answer with the teacher when the student fails or is late")

    @field_validator("bundles", mode="before")
    @classmethod
    def split_bundles(cls, value: object) -> object:
        """``FLIPKD_BUNDLES=atec,mqp`` as the list ``["atec", "mqp"]``."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value
