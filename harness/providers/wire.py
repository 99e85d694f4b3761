"""Wire helpers every adapter shares: building JSON requests and reading what comes back.

Pure functions, no state but two caches: a compact JSON ``POST`` built the cheap way
(``json_request``, ``with_json_fields``, ``parsed_url``), the message, code, request id and
``Retry-After`` of any provider's error answer (``error_details``, ``request_id``,
``retry_after_seconds``), the harness error of a transport failure (``transport_error``),
short excerpts of bodies that are not what was asked for, and the finish-reason machinery
(``FinishReasons``, ``map_finish_reason``): each adapter module declares its own table; and
the ``EmbeddingResponse`` of an embeddings call (``embedding_response``).
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from harness import http as _http
from harness.embeddings import Embedding, EmbeddingResponse
from harness.errors import (
    APIConnectionError,
    HarnessError,
    InvalidResponseError,
    ResponseTooLargeError,
)
from harness.errors import TimeoutError as HarnessTimeoutError
from harness.types import FinishReason, ResponseMeta, Usage

if TYPE_CHECKING:
    from harness.providers.base import Call

__all__ = [
    "SHAPE_ERRORS",
    "TIMEOUTS",
    "FinishReasons",
    "content_text",
    "embedding_response",
    "error_details",
    "excerpt",
    "is_html",
    "json_request",
    "map_finish_reason",
    "new_id",
    "not_json_message",
    "now",
    "parsed_url",
    "request_id",
    "retry_after_seconds",
    "transport_error",
    "with_json_fields",
]

SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError)
"""What a parser raises on data of an unexpected shape (reported as ``InvalidResponseError``)."""

TIMEOUTS = (httpx.TimeoutException, TimeoutError)
"""The exceptions of a read or connect that timed out."""

_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.S | re.I)
_SPACES = re.compile(r"\s+")


def excerpt(body: bytes, limit: int = 200) -> str:
    """A short one-line excerpt of a body; an HTML page gives its title and text."""
    text = body[: limit * 8].decode("utf-8", "replace")
    if is_html(text):
        title = _TITLE.search(text)
        plain = _SPACES.sub(" ", _TAGS.sub(" ", text)).strip()
        heading = _SPACES.sub(" ", title.group(1)).strip() if title else ""
        if heading:  # the title, then the text without its repeats (an <h1> often is one)
            rest = _SPACES.sub(" ", plain.replace(heading, " ")).strip()
            text = f"{heading}: {rest}" if rest else heading
        else:
            text = plain
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_html(text: str) -> bool:
    """Whether ``text`` starts like an HTML page (a proxy's error page, a login form)."""
    start = text.lstrip()[:15].lower()
    return start.startswith(("<!doctype html", "<html", "<head", "<body", "<!--", "<title"))


def not_json_message(exc: ValueError, body: bytes, headers: Mapping[str, str]) -> str:
    """The message for a (non-error) answer whose body is not JSON (the error has the status)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"response body is not valid UTF-8: {exc.reason} at byte {exc.start}"
    ctype = headers.get("content-type") or "none"
    shown = excerpt(body)
    if not shown:
        return f"response body is empty, not JSON (content type {ctype!r})"
    return f"response body is not JSON (content type {ctype!r}): {shown!r}"


def transport_error(call: Call, exc: BaseException, *, streaming: bool = True) -> HarnessError:
    """The harness error for an httpx/socket failure while sending or streaming."""
    if isinstance(exc, _http.ResponseTooLarge):
        error = call.error(ResponseTooLargeError, str(exc))
        error.limit = exc.limit  # type: ignore[attr-defined]
        return error
    if isinstance(exc, httpx.DecodingError):
        what = "stream" if streaming else "response body"
        return call.error(InvalidResponseError, f"cannot decode the {what}: {exc}")
    if isinstance(exc, TIMEOUTS):
        return call.error(HarnessTimeoutError, _described(exc))
    prefix = "stream broke: " if streaming else ""
    return call.error(APIConnectionError, prefix + _described(exc))


def _described(exc: BaseException) -> str:
    """``Type: message``; an exception without a message borrows its cause's."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    for _ in range(4):
        if text or cause is None:
            break
        text = f"{type(cause).__name__}: {cause}" if str(cause) else ""
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {text or '(no detail)'}"


_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""Compact JSON, built once (``json.dumps`` with ``separators`` builds an encoder per call)."""
_URLS: dict[str, httpx.URL] = {}
_URL_CACHE_LIMIT = 1024


def parsed_url(text: str) -> httpx.URL:
    """``httpx.URL(text)``, cached: parsing costs more than building the rest of a request."""
    url = _URLS.get(text)
    if url is None:
        if len(_URLS) >= _URL_CACHE_LIMIT:
            _URLS.clear()
        url = _URLS[text] = httpx.URL(text)
    return url


def json_request(url: str | httpx.URL, body: Any, headers: Mapping[str, str]) -> httpx.Request:
    """A ``POST`` of ``body`` as compact JSON, built the cheap way.

    Giving httpx the stream and the ``Host``/``Content-Length`` headers ready-made skips its
    content negotiation; the result is an ordinary, already-read ``httpx.Request``.
    """
    u = url if isinstance(url, httpx.URL) else parsed_url(url)
    payload = _ENCODER.encode(body).encode()
    raw = [(b"Host", u.netloc), (b"Content-Length", str(len(payload)).encode())]
    raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    request = httpx.Request("POST", u, headers=raw, stream=httpx.ByteStream(payload))
    request.read()
    return request


def new_id(prefix: str = "chatcmpl-") -> str:
    """A fresh id for APIs whose responses carry none."""
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    """Unix seconds, for ``created`` when the provider sends no timestamp."""
    return int(time.time())


def content_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or the text of its parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return str(content)


def error_details(body: bytes | str) -> tuple[str, str | None]:
    """Message and machine code from any provider's error body; ``("", None)`` if unknown.

    Understands OpenAI's ``{"error": {...}}``, the flat vLLM/Mistral shape, Anthropic's
    ``{"type": "error", "error": {...}}``, Google's RPC status (also wrapped in a list) and
    Cohere's ``{"message": ...}``.
    """
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        raw = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
        text = raw[:2400].decode("utf-8", "replace")
        if is_html(text):  # a proxy's or load balancer's error page
            return "HTML error page: " + excerpt(raw), None
        return text.strip()[:300], None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        data = data[0]
    if not isinstance(data, Mapping):
        return "", None
    err: Any = data.get("error", data)
    if isinstance(err, str):
        return err, None
    if not isinstance(err, Mapping):
        return "", None
    message = err.get("message") or data.get("message") or ""
    code = err.get("code") or err.get("status") or err.get("type")
    # Prefer the descriptive string code when the numeric one only repeats the status.
    if isinstance(code, int) or code is None:
        code = err.get("status") or err.get("type") or (str(code) if code is not None else None)
    return str(message), (str(code) if code is not None else None)


def request_id(headers: Mapping[str, str]) -> str | None:
    """The provider's request id header, for support tickets."""
    for name in ("x-request-id", "request-id", "apim-request-id", "x-goog-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def with_json_fields(request: httpx.Request, fields: Mapping[str, Any]) -> httpx.Request:
    """A copy of a JSON ``request`` with ``fields`` set in its body (same URL and headers).

    When none of the fields is already a key in the body, they are spliced onto the end of
    the encoded object instead of decoding and re-encoding it (the streaming requests add
    ``"stream": true`` this way to every call).
    """
    content = request.content
    if len(content) > 2 and content.endswith(b"}") and not any(
        b'"' + key.encode() + b'":' in content for key in fields
    ):
        payload = content[:-1] + b"," + _ENCODER.encode(dict(fields)).encode()[1:]
    else:
        body = json.loads(content)
        body.update(fields)
        payload = _ENCODER.encode(body).encode()
    raw = [(b"Host", request.url.netloc), (b"Content-Length", str(len(payload)).encode())]
    raw.extend(
        (name, value)
        for name, value in request.headers.raw
        if name.lower() not in (b"host", b"content-length")
    )
    copy = httpx.Request("POST", request.url, headers=raw, stream=httpx.ByteStream(payload))
    copy.read()
    return copy


@dataclass(frozen=True, slots=True)
class FinishReasons:
    """One API's finish reasons and what each means in OpenAI's terms.

    Adapter modules declare theirs (``FINISH_REASONS``) and pass it to ``map_finish_reason``;
    ``a | b`` is a table that knows both.
    """

    mapped: Mapping[str, FinishReason] = field(default_factory=dict)
    """Raw reason → OpenAI's finish reason."""
    filtered: frozenset[str] = frozenset()
    """Raw reasons that mean the output was blocked (``content_filter``)."""
    failed: Mapping[str, type[HarnessError]] = field(default_factory=dict)
    """Raw reasons that mean the generation failed, with the (retryable) error they raise."""
    flagged: frozenset[str] = frozenset()
    """Mapped reasons also kept as a flag on the answer (Anthropic's ``pause_turn``)."""

    def __or__(self, other: FinishReasons) -> FinishReasons:
        return FinishReasons(
            {**self.mapped, **other.mapped},
            self.filtered | other.filtered,
            {**self.failed, **other.failed},
            self.flagged | other.flagged,
        )


def map_finish_reason(
    raw: str | None, reasons: FinishReasons, call: Call | None = None
) -> tuple[FinishReason, list[str]]:
    """Map a provider's finish reason to OpenAI's by its table, with flags worth keeping.

    Reasons that mean the generation failed (``reasons.failed``: Cohere ``ERROR``/``TIMEOUT``,
    Mistral and OpenRouter ``error``, DeepSeek ``insufficient_system_resource``) raise the
    matching retryable error instead of pretending the answer ended normally. An unknown
    reason maps to ``stop`` and is flagged.
    """
    if raw is None:
        return "stop", []
    failed = reasons.failed.get(raw)
    if failed is not None:
        message = f"the provider ended the generation with finish reason {raw!r}"
        if call is not None:
            raise call.error(failed, message)
        raise failed(message)
    mapped = reasons.mapped.get(raw)
    if mapped is not None:
        return mapped, ([raw] if raw in reasons.flagged else [])
    if raw in reasons.filtered:
        return "content_filter", []
    return "stop", [f"unknown_finish_reason:{raw}"]


@functools.cache
def every_finish_reason() -> FinishReasons:
    """Every built-in adapter's finish reasons together.

    For answers that may use any vendor's words: scripted mock answers, and OpenAI-compatible
    servers (proxies and gateways pass other vendors' reasons through, ``end_turn`` or
    ``MAX_TOKENS``). The adapters are imported here, when first asked.
    """
    from harness.providers import anthropic, cohere, gemini, openai

    return (
        openai.FINISH_REASONS
        | anthropic.FINISH_REASONS
        | gemini.FINISH_REASONS
        | cohere.FINISH_REASONS
    )


def embedding_response(
    call: Call, vectors: list[list[float]], usage: Usage, model: str, flags: list[str] | None = None
) -> EmbeddingResponse:
    """The ``EmbeddingResponse`` of ``call`` from its vectors, in input order.

    Raises:
        InvalidResponseError: not one vector per text the call sent.
    """
    sent = len(call.params.get("input") or ())
    if len(vectors) != sent:
        raise call.error(
            InvalidResponseError,
            f"the response holds {len(vectors)} embedding(s) for {sent} input(s)",
        )
    return EmbeddingResponse(
        model=model,
        data=[Embedding(v, i) for i, v in enumerate(vectors)],
        usage=usage,
        harness=ResponseMeta(
            provider=call.spec.provider, model=call.spec.name, flags=list(flags or ())
        ),
    )
