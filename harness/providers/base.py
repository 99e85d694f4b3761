"""The provider interface and the pure helpers every adapter shares.

A provider is one async method, ``generate(call, send)``, that turns a ``Call`` into a
``ModelResponse`` or raises a ``HarnessError``. HTTP adapters subclass ``HTTPProvider`` and
implement three pure, unit-testable pieces instead:

* ``build_request(call) -> httpx.Request``
* ``parse_response(call, data, headers) -> ModelResponse``
* ``parse_error(call, status, body, headers) -> HarnessError``

Retries, timeouts, concurrency, timing and cost belong to the runner, never to a provider.
Adapters register themselves by family name (``openai``, ``anthropic``, …) when their
module is imported; ``get_provider`` imports them lazily.
"""

from __future__ import annotations

import email.utils
import importlib
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from harness import http as _http
from harness.config import ModelSpec
from harness.errors import (
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    ServiceUnavailableError,
    TimeoutError,
    error_from_status,
)
from harness.types import FinishReason

__all__ = [
    "Call",
    "HTTPProvider",
    "Provider",
    "Send",
    "content_text",
    "error_details",
    "get_provider",
    "json_request",
    "map_finish_reason",
    "new_id",
    "retry_after_seconds",
]

Send = _http.Send
"""Sends a request and returns the response with its body read (the runner's client): an
``httpx.Response`` or the lean transport's ``RawResponse`` (status, headers, content)."""


@dataclass(slots=True)
class Call:
    """Everything one attempt of one model call needs, already validated and resolved."""

    spec: ModelSpec
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    """OpenAI-named parameters (temperature, max_tokens, tools, …); harness-only keys removed."""
    api_key: str | None = None
    api_base: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 0
    """0 for the first attempt; retries count up."""
    mock_response: Any = None
    """The per-call scripted answer for offline models (``mock_response=``)."""

    @property
    def provider(self) -> str:
        """The provider name (``openai``, ``groq``, …)."""
        return self.spec.provider

    def error(self, cls: type[HarnessError], message: str, **kw: Any) -> HarnessError:
        """Build an error of ``cls`` that carries this call's provider and model."""
        return cls(message, provider=self.spec.provider, model=self.spec.name, **kw)


class Provider(ABC):
    """One API family. Subclasses set ``family`` and are registered by it."""

    family: ClassVar[str] = ""
    needs_network: ClassVar[bool] = True
    supports_n: ClassVar[bool] = True
    """Whether the API returns several choices for ``n``; otherwise the runner fans out."""

    _registry: ClassVar[dict[str, type[Provider]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            Provider._registry[cls.family] = cls

    @abstractmethod
    async def generate(self, call: Call, send: Send) -> Any:
        """Make one attempt of ``call`` and return its ``ModelResponse``."""


class HTTPProvider(Provider):
    """A provider spoken over HTTP with a JSON body: build, send, parse."""

    @abstractmethod
    def build_request(self, call: Call) -> httpx.Request:
        """The request for ``call`` (pure: no I/O)."""

    @abstractmethod
    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> Any:
        """Normalise a successful JSON body into a ``ModelResponse`` (pure)."""

    def parse_error(
        self, call: Call, status: int, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map an error response to the error tree (pure). Adapters refine this."""
        message, code = error_details(body)
        return error_from_status(
            status,
            message or f"HTTP {status}",
            code=code,
            provider=call.spec.provider,
            model=call.spec.name,
            body=body,
            retry_after=retry_after_seconds(headers),
            request_id=request_id(headers),
        )

    async def generate(self, call: Call, send: Send) -> Any:
        """Build the request, send it, and parse the answer or the error.

        For APIs without ``n`` (``supports_n = False``), ``n > 1`` sends ``n`` requests at
        once and merges their choices, re-indexed, with usage summed.
        """
        n = call.params.get("n") or 1
        if n > 1 and not self.supports_n:
            import asyncio
            from dataclasses import replace

            one = replace(call, params={k: v for k, v in call.params.items() if k != "n"})
            parts = await asyncio.gather(*(self._generate_one(one, send) for _ in range(n)))
            merged = parts[0]
            for i, part in enumerate(parts[1:], start=1):
                for choice in part.choices:
                    choice.index = i
                    merged.choices.append(choice)
                meta, usage = merged.harness, merged.usage
                meta.raw_finish_reasons.extend(part.harness.raw_finish_reasons)
                meta.flags.extend(f for f in part.harness.flags if f not in meta.flags)
                usage.prompt_tokens += part.usage.prompt_tokens
                usage.completion_tokens += part.usage.completion_tokens
                usage.total_tokens += part.usage.total_tokens
                if part.usage.cached_tokens is not None:
                    usage.cached_tokens = (usage.cached_tokens or 0) + part.usage.cached_tokens
            return merged
        return await self._generate_one(call, send)

    async def _generate_one(self, call: Call, send: Send) -> Any:
        response = await send(self.build_request(call))
        body = response.content
        if response.status_code >= 400:
            raise self.parse_error(call, response.status_code, body, response.headers)
        try:
            data = json.loads(body)
        except ValueError:
            raise call.error(
                InvalidResponseError,
                f"response body is not JSON (HTTP {response.status_code})",
                status=response.status_code,
                body=body,
            ) from None
        try:
            result = self.parse_response(call, data, response.headers)
        except HarnessError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise call.error(
                InvalidResponseError,
                f"unexpected response shape: {type(exc).__name__}: {exc}",
                status=response.status_code,
                body=body,
            ) from exc
        result.harness.request_id = request_id(response.headers)
        return result


def get_provider(family: str) -> Provider:
    """The adapter instance for a family, importing its module on first use."""
    cls = Provider._registry.get(family)
    if cls is None:
        module = {"echo": "offline", "mock": "offline", "azure": "openai"}.get(family, family)
        importlib.import_module(f"harness.providers.{module}")
        cls = Provider._registry[family]
    return _instances.setdefault(family, cls())


_instances: dict[str, Provider] = {}


# --- pure helpers ------------------------------------------------------------------------

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
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
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


_FINISH: dict[str, FinishReason] = {
    # OpenAI and compatibles
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "eos": "stop",
    "model_length": "length",
    # Anthropic
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    # Gemini
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "MALFORMED_FUNCTION_CALL": "stop",
    "UNEXPECTED_TOOL_CALL": "stop",
    "TOO_MANY_TOOL_CALLS": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    # Cohere
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "TOOL_CALL": "tool_calls",
}
_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "LANGUAGE",
    "OTHER",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "IMAGE_OTHER",
    "NO_IMAGE",
}
_FAILED: dict[str, type[HarnessError]] = {
    "ERROR": InternalServerError,
    "error": InternalServerError,
    "TIMEOUT": TimeoutError,
    "insufficient_system_resource": ServiceUnavailableError,
}


def map_finish_reason(raw: str | None, call: Call | None = None) -> tuple[FinishReason, list[str]]:
    """Map a provider's finish reason to OpenAI's, with flags worth keeping.

    Reasons that mean the generation failed (Cohere ``ERROR``/``TIMEOUT``, Mistral and
    OpenRouter ``error``, DeepSeek ``insufficient_system_resource``) raise the matching
    retryable error instead of pretending the answer ended normally. An unknown reason maps
    to ``stop`` and is flagged.
    """
    if raw is None:
        return "stop", []
    if raw in _FAILED:
        message = f"the provider ended the generation with finish reason {raw!r}"
        if call is not None:
            raise call.error(_FAILED[raw], message)
        raise _FAILED[raw](message)
    if raw in _FINISH:
        return _FINISH[raw], (["pause_turn"] if raw == "pause_turn" else [])
    if raw in _FILTERED:
        return "content_filter", []
    return "stop", [f"unknown_finish_reason:{raw}"]
