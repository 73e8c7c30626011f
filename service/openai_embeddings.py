"""``POST /v1/embeddings`` in the OpenAI shape, so that the official ``openai`` client works unchanged.

- ``input``: a string or a list of strings, none empty (422 otherwise). Token-id arrays (a list of
  ints, or of lists of ints) are refused with 400: ids mean something only to the tokenizer that made
  them, clients that send ids usually send those of OpenAI's tokenizers (tiktoken), and ours would
  read them as other tokens and embed them without complaint. Send the texts instead.
- ``encoding_format``: ``float`` (JSON numbers rounded to 6 decimals, as ``/embed``) or ``base64``
  (each vector's little-endian float32 bytes, base64-encoded, exact; the client's default).
- ``dimensions``: the model's own dimension only (400 naming it otherwise). The vectors are
  L2-normalised concatenations of LoRA-A outputs, not trained to be truncated (Matryoshka), so a
  prefix would be an untested representation rather than a smaller version of this one.
- ``user``: accepted and ignored.
- ``model``: a domain's name (its student) or ``<domain>-teacher`` (its teacher); ``student`` or
  ``teacher``, or none, for the default domain. Any other name is a 404 listing the served ones, so a
  mistyped domain never gets another domain's vectors. The answer's ``model`` is the full name.
"""

from __future__ import annotations

import base64

import numpy as np
from fastapi import HTTPException

from flipkd.service.domain import Answer
from flipkd.service.facade import MatchingService, UnknownDomain
from flipkd.service.schemas import (
    OpenAIEmbedding,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    OpenAIUsage,
    ServedBy,
)


def requested_texts(request: OpenAIEmbeddingRequest) -> list[str]:
    """``input`` as a list of texts; 422 when it or a text is empty, 400 for token ids."""
    texts = [request.input] if isinstance(request.input, str) else request.input
    if texts and not isinstance(texts[0], str):  # the schema keeps a list's items of one kind
        raise HTTPException(400, "token-id input is not supported: token ids depend on the tokenizer that "
                                 "made them; send the texts instead")
    if not texts or any(not text for text in texts):
        raise HTTPException(422, "input must be a non-empty string or a list of non-empty strings")
    return texts


TEACHER_SUFFIX = "-teacher"


def requested_model(request: OpenAIEmbeddingRequest, service: MatchingService) -> tuple[str, ServedBy]:
    """(domain name, model) named by ``model``; UnknownDomain for a name that is not served."""
    name = request.model
    if name in (None, "student", "teacher"):
        return service.default.name, "teacher" if name == "teacher" else "student"
    if name in service.domains:
        return name, "student"
    if name.endswith(TEACHER_SUFFIX) and name.removesuffix(TEACHER_SUFFIX) in service.domains:
        return name.removesuffix(TEACHER_SUFFIX), "teacher"
    served = ", ".join(repr(model_name(domain, model)) for domain in service.domains
                       for model in ("student", "teacher"))
    raise UnknownDomain(f"unknown model {name!r}; served: {served}")


def model_name(domain: str, model: ServedBy) -> str:
    """The name :func:`requested_model` reads as (``domain``, ``model``)."""
    return domain + (TEACHER_SUFFIX if model == "teacher" else "")


def check_dimensions(requested: int | None, dimension: int, model: ServedBy) -> None:
    """400 unless ``requested`` is None or the model's own ``dimension``."""
    if requested is not None and requested != dimension:
        raise HTTPException(400, f"dimensions must be {dimension}, the {model}'s embedding dimension: its "
                                 f"embeddings are not trained to be truncated, so no other size is served")


def encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """``vector`` as JSON numbers (6 decimals) or as base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.round(6).tolist()


def embeddings_response(answer: Answer, model: str, encoding_format: str) -> OpenAIEmbeddingResponse:
    """The answer's vectors in request order, with the tokens read as usage; ``model`` is the full name."""
    data = [OpenAIEmbedding(index=i, embedding=encoded(vector, encoding_format))
            for i, vector in enumerate(answer.vectors)]
    usage = OpenAIUsage(prompt_tokens=answer.tokens, total_tokens=answer.tokens)
    return OpenAIEmbeddingResponse(data=data, model=model, usage=usage)
