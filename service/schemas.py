"""Request and response bodies of the HTTP API (pydantic; they define the OpenAPI schema at /docs).

``/match`` takes exactly one of: ``pair`` ({text_a, text_b}), ``pairs`` (a list of those), or ``query``
with ``candidates`` (and optional ``top_k``). Texts must be non-empty; the per-request limits (texts,
characters) are enforced by the app from the settings, so they can change without a schema change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ServedBy = Literal["student", "teacher"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPair(Strict):
    text_a: str = Field(min_length=1)
    text_b: str = Field(min_length=1)


class MatchRequest(Strict):
    pair: TextPair | None = None
    pairs: list[TextPair] | None = Field(None, min_length=1)
    query: str | None = Field(None, min_length=1)
    candidates: list[str] | None = Field(None, min_length=1)
    top_k: int | None = Field(None, ge=1)
    domain: str | None = Field(None, description="bundle name; the default bundle when omitted")
    request_key: str | None = Field(None, max_length=256,
                                    description="stable key for A/B assignment (the request id otherwise)")

    @model_validator(mode="after")
    def one_shape(self) -> MatchRequest:
        shapes = [self.pair is not None, self.pairs is not None, self.query is not None]
        if sum(shapes) != 1:
            raise ValueError("give exactly one of 'pair', 'pairs' or 'query' (with 'candidates')")
        if (self.query is None) != (self.candidates is None):
            raise ValueError("'query' and 'candidates' go together")
        if self.top_k is not None and self.query is None:
            raise ValueError("'top_k' applies to 'query' with 'candidates' only")
        if self.candidates is not None and any(not text for text in self.candidates):
            raise ValueError("candidates must be non-empty strings")
        return self


class MatchResult(BaseModel):
    text_a: str
    text_b: str
    similarity: float
    match: bool
    rank: int | None = None


class MatchResponse(BaseModel):
    request_id: str
    served_by: ServedBy
    fallback_reason: str | None = None
    threshold: float
    results: list[MatchResult]


class EmbedRequest(Strict):
    texts: list[str] = Field(min_length=1)
    model: Literal["student", "teacher"] = "student"
    domain: str | None = None

    @model_validator(mode="after")
    def non_empty(self) -> EmbedRequest:
        if any(not text for text in self.texts):
            raise ValueError("texts must be non-empty strings")
        return self


class EmbedResponse(BaseModel):
    request_id: str
    served_by: ServedBy
    dimension: int
    embeddings: list[list[float]]


class OpenAIEmbeddingRequest(Strict):
    """The OpenAI embeddings request. Token-id arrays pass the schema so that they get a 400 saying they
    are not supported rather than a type error."""

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="a text or a list of texts; token-id arrays are refused (400)")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="the model's own dimension only")
    user: str | None = Field(None, description="accepted and ignored")


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="numbers, or base64 of little-endian float32 bytes")


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class ErrorBody(BaseModel):
    error: str
    detail: object | None = None
