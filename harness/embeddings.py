"""Embeddings: the answer type in OpenAI's shape, the offline vectorizer, cosine similarity.

This module owns ``EmbeddingResponse`` and ``Embedding`` (OpenAI's ``list`` of
``embedding`` objects, with LiteLLM's idioms: attribute and dict access, ``model_dump()``,
``_hidden_params["response_cost"]``, and the harness metadata in ``harness``), the input
check (``embedding_inputs``: one text or a list of texts), ``hashed_embedding`` (the
deterministic vectors of the ``mock/`` and ``echo/`` models), ``cosine`` and
``decode_base64_embedding``. It is pure and imports no HTTP code; the calls are
``Harness.embedding``/``aembedding`` (``harness.runner``) and the wire formats are each
adapter's (see ``docs/wire-formats.md``).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.errors import BadRequestError
from harness.types import ResponseMeta, Usage, _Mapping, _plain, hidden_params

__all__ = [
    "DEFAULT_OFFLINE_DIMENSIONS",
    "MAX_DIMENSIONS",
    "Embedding",
    "EmbeddingResponse",
    "check_dimensions",
    "cosine",
    "decode_base64_embedding",
    "embedding_inputs",
    "hashed_embedding",
    "merge_responses",
]

DEFAULT_OFFLINE_DIMENSIONS = 256
"""The length of a ``mock/``/``echo/`` vector when the call gives no ``dimensions``."""
MAX_DIMENSIONS = 65_536
"""The most ``dimensions`` a call may ask for."""


@dataclass(slots=True)
class Embedding(_Mapping):
    """One input's vector: ``{"object": "embedding", "index": i, "embedding": [...]}``.

    ``e.embedding`` and ``e["embedding"]`` both work, as on LiteLLM's ``Embedding``.
    """

    embedding: list[float]
    index: int
    object: Literal["embedding"] = "embedding"

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's JSON shape of one embedding."""
        return {"object": self.object, "index": self.index, "embedding": list(self.embedding)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Embedding:
        """The inverse of ``to_dict``."""
        return cls([float(x) for x in data.get("embedding") or ()], int(data.get("index") or 0))


@dataclass(slots=True, repr=False, init=False)
class EmbeddingResponse(_Mapping):
    """The embeddings of one call in OpenAI's shape, plus ``harness`` metadata.

    ``data`` holds one ``Embedding`` per input, in input order (``data[i].index == i``);
    ``usage`` counts prompt tokens (``completion_tokens`` is 0). ``harness`` carries the
    provider, model, latency, attempts, cost and whether the answer was replayed from the
    response store, as on a ``ModelResponse``.
    """

    model: str
    data: list[Embedding]
    usage: Usage
    object: Literal["list"]
    harness: ResponseMeta

    def __init__(
        self,
        model: str = "",
        data: Sequence[Embedding | Mapping[str, Any]] | None = None,
        usage: Usage | Mapping[str, Any] | None = None,
        object: Literal["list"] = "list",
        harness: ResponseMeta | None = None,
        **_ignored: Any,
    ) -> None:
        self.model = model
        self.data = [
            d if isinstance(d, Embedding) else Embedding.from_dict(_plain(d)) for d in data or ()
        ]
        if usage is None:
            usage = Usage()
        elif not isinstance(usage, Usage):
            usage = Usage(**_plain(usage))
        self.usage = usage
        self.object = object
        self.harness = harness if harness is not None else ResponseMeta()

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        # ``harness`` is reachable as an attribute but is not an OpenAI key.
        return ("object", "data", "model", "usage")

    @property
    def vectors(self) -> list[list[float]]:
        """The vectors alone, in input order."""
        return [d.embedding for d in self.data]

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """LiteLLM's side channel: ``response_cost`` (USD) and ``custom_llm_provider``."""
        return hidden_params(self.harness, self.model)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``CreateEmbeddingResponse`` data (no harness metadata), JSON-able."""
        return {
            "object": self.object,
            "data": [d.to_dict() for d in self.data],
            "model": self.model,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "total_tokens": self.usage.total_tokens,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingResponse:
        """The inverse of ``to_dict``: the OpenAI fields, with empty ``harness`` metadata."""
        return cls(
            model=str(data.get("model") or ""),
            data=list(data.get("data") or ()),
            usage=Usage.from_dict(dict(data.get("usage") or {})),
        )

    def __repr__(self) -> str:
        dims = len(self.data[0].embedding) if self.data else 0
        return (
            f"<EmbeddingResponse {self.harness.model or self.model}: {len(self.data)} "
            f"vector(s) of {dims} tokens={self.usage.total_tokens} "
            f"{self.harness.latency_ms:.0f}ms>"
        )


def embedding_inputs(
    value: Any, *, provider: str | None = None, model: str | None = None
) -> list[str]:
    """The call's ``input`` as a non-empty list of texts (one text becomes a list of one).

    Raises:
        BadRequestError: ``input`` is not a string or a non-empty list of strings; the
            message names the first bad item.
    """
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not value:
        raise BadRequestError(
            f"input: expected a string or a non-empty list of strings, got {_kind(value)}",
            provider=provider,
            model=model,
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise BadRequestError(
                f"input[{i}]: expected a string, got {_kind(item)}",
                provider=provider,
                model=model,
            )
    return list(value)


def _kind(value: Any) -> str:
    if isinstance(value, list | tuple) and not value:
        return "an empty list"
    return type(value).__name__


def check_dimensions(value: Any, *, provider: str | None = None, model: str | None = None) -> None:
    """Refuse a ``dimensions`` that is not an integer from 1 to ``MAX_DIMENSIONS``.

    Raises:
        BadRequestError: naming the value.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise BadRequestError(
            f"dimensions: expected an integer from 1 to {MAX_DIMENSIONS}, got {value!r}",
            provider=provider,
            model=model,
        )


# --- the offline vectorizer ----------------------------------------------------------------

_WORD_RE = re.compile(r"\w+")
_CHAR_WEIGHT = 0.5
"""Character trigrams weigh half a word: they make near spellings close without drowning
the words."""


def _features(text: str) -> list[tuple[str, float]]:
    lowered = text.lower()
    words = _WORD_RE.findall(lowered)
    feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
    feats.extend(("b:" + a + " " + b, 1.0) for a, b in zip(words, words[1:], strict=False))
    for word in words:
        padded = f" {word} "
        feats.extend(("c:" + padded[i : i + 3], _CHAR_WEIGHT) for i in range(len(padded) - 2))
    return feats


def hashed_embedding(text: str, dimensions: int = DEFAULT_OFFLINE_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``text`` (the ``mock/`` and ``echo/`` embeddings).

    Signed feature hashing (Weinberger et al., 2009) of the lower-cased word unigrams, word
    bigrams and character trigrams of each word: each feature's BLAKE2b digest picks a
    coordinate and a sign, and the sum is L2-normalised. BLAKE2b (not Python's ``hash()``,
    which is salted per process) makes the vector the same in every process and on every
    machine. Texts sharing words score a higher cosine than unrelated ones; a text without
    any word gets the first basis vector.
    """
    if dimensions < 1:
        raise ValueError(f"dimensions must be at least 1, got {dimensions}")
    vector = [0.0] * dimensions
    for feature, weight in _features(text):
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        number = int.from_bytes(digest, "little")
        slot = (number >> 1) % dimensions
        vector[slot] += weight if number & 1 else -weight
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [x / norm for x in vector]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors, in [-1, 1]; 0.0 when either is all zeros.

    Raises:
        ValueError: the vectors differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"cannot compare vectors of {len(a)} and {len(b)} dimensions")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / (na * nb)))


def decode_base64_embedding(text: str) -> list[float]:
    """The floats of an ``encoding_format: base64`` embedding (little-endian float32).

    Raises:
        ValueError: the text is not base64 of a whole number of float32 values.
    """
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"base64 embedding of {len(raw)} bytes is not a float32 array")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def merge_responses(parts: Sequence[EmbeddingResponse], model: str) -> EmbeddingResponse:
    """One response from the responses of consecutive batches of one call's inputs.

    Indices are re-numbered in order, usage and cost are summed, the latency is the
    slowest batch's (they run at once), ``attempts`` the most any batch needed, and the
    answer counts as replayed only when every batch was.
    """
    if len(parts) == 1:
        return parts[0]
    data: list[Embedding] = []
    prompt = total = 0
    cost: float | None = None
    saved: float | None = None
    for part in parts:
        for item in part.data:
            data.append(Embedding(item.embedding, len(data)))
        prompt += part.usage.prompt_tokens
        total += part.usage.total_tokens
        if part.harness.cost_usd is not None:
            cost = (cost or 0.0) + part.harness.cost_usd
        if part.harness.saved_cost_usd is not None:
            saved = (saved or 0.0) + part.harness.saved_cost_usd
    first = parts[0].harness
    meta = ResponseMeta(
        provider=first.provider,
        model=model,
        latency_ms=max(p.harness.latency_ms for p in parts),
        attempts=max(p.harness.attempts for p in parts),
        cost_usd=cost,
        flags=sorted({f for p in parts for f in p.harness.flags}),
        request_id=first.request_id,
        replayed=all(p.harness.replayed for p in parts),
        saved_cost_usd=saved,
    )
    return EmbeddingResponse(
        model=parts[0].model, data=data, usage=Usage(prompt, 0, total), harness=meta
    )
