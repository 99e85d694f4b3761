"""The provider interface: ``Call``, ``Provider``, ``HTTPProvider`` and ``get_provider``.

A provider is one async method, ``generate(call, send)``, that turns a ``Call`` into a
``ModelResponse`` or raises a ``HarnessError``. HTTP adapters subclass ``HTTPProvider`` and
implement three pure, unit-testable pieces instead:

* ``build_request(call) -> httpx.Request``
* ``parse_response(call, data, headers) -> ModelResponse``
* ``parse_error(call, status, body, headers) -> HarnessError``

Streaming adds two more pure pieces, ``build_stream_request(call)`` and
``stream_parser(call, headers) -> StreamParser`` (fed the server-sent events one at a time;
it yields ``StreamChunk`` objects and finally assembles the ``ModelResponse``), and one
method that does the I/O for every HTTP adapter, ``stream(call, send_stream)``, which
returns a ``ResponseStream`` (``harness.providers.streams``): an async iterator of chunks
that measures time to first token and exposes the assembled answer as ``.response`` once
the stream is complete. The helpers adapters share for requests, error bodies and finish
reasons are in ``harness.providers.wire``.

Every request carries its call's ``max_response_bytes`` as a request extension
(``harness.http.MAX_RESPONSE_BYTES_EXTENSION``), which the transports enforce while reading;
whatever a server sends, a call fails only with a ``HarnessError``: a body past the limit, a
body that does not decode, a stream answered with HTML or plain text, or stream bytes that
are not UTF-8 are ``InvalidResponseError``s naming what was wrong.

Embeddings (``Harness.embedding``) take the same path with two more pure pieces,
``build_embedding_request(call)`` (the texts are ``call.params["input"]``, a list) and
``parse_embedding_response(call, data, headers) -> EmbeddingResponse``; ``embed(call,
send)`` sends them as ``generate`` does. ``supports_embeddings`` says whether an adapter
has them (the runner refuses before sending when not) and ``max_embedding_inputs`` how many
texts one request may carry (the runner splits longer inputs into batches).

Retries, timeouts, concurrency and cost belong to the runner, never to a provider.
Adapters register themselves by family name (``openai``, ``anthropic``, …) when their
module is imported; ``get_provider`` imports the module the provider table
(``harness.providers.registry``) names for a family on first use.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from harness import http as _http
from harness.config import ModelSpec
from harness.errors import (
    BadRequestError,
    HarnessError,
    InvalidResponseError,
    error_from_status,
)
from harness.providers import registry
from harness.providers.streams import (
    Clock,
    ResponseStream,
    StreamParser,
    http_stream_chunks,
)
from harness.providers.wire import (
    SHAPE_ERRORS,
    error_details,
    not_json_message,
    request_id,
    retry_after_seconds,
    transport_error,
    with_json_fields,
)
from harness.types import StreamChunk

if TYPE_CHECKING:
    from harness.embeddings import EmbeddingResponse

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Call",
    "HTTPProvider",
    "Provider",
    "Send",
    "SendStream",
    "get_provider",
    "no_embeddings",
]

Send = _http.Send
"""Sends a request and returns the response with its body read (the runner's client): an
``httpx.Response`` or the lean transport's ``RawResponse`` (status, headers, content)."""

SendStream = _http.SendStream
"""Sends a request and returns the ``httpx.Response`` with its body *not* read yet
(``ClientCache.stream_sender()``); the caller iterates the body and closes the response."""

DEFAULT_MAX_RESPONSE_BYTES = _http.DEFAULT_MAX_RESPONSE_BYTES
"""The largest response body a call accepts unless it says otherwise (32 MiB)."""

_LIMIT_EXTENSION = _http.MAX_RESPONSE_BYTES_EXTENSION


@dataclass(slots=True)
class Call:
    """Everything one attempt of one model call needs, already validated and resolved."""

    spec: ModelSpec
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    """OpenAI-named parameters (temperature, max_tokens, tools, …); harness-only keys removed."""
    api_key: str | None = None
    api_base: str | None = None
    """The base URL the runner resolved (``ModelSpec.resolve_api_base``); ``None``: the
    spec's, resolved by ``base_url()``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 0
    """0 for the first attempt; retries count up."""
    mock_response: Any = None
    """The per-call scripted answer for offline models (``mock_response=``)."""
    raw_body: bytes | None = field(default=None, repr=False)
    """The provider's raw answer body, set by ``HTTPProvider.generate`` (the response store
    keeps it beside the normalised answer); never shown in ``repr`` (a server may echo a
    key into it)."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    """The largest response body accepted, in bytes (the sum of a stream's bytes, and of a
    compressed body once decompressed); past it the call fails with
    ``ResponseTooLargeError``."""

    @property
    def provider(self) -> str:
        """The provider name (``openai``, ``groq``, …)."""
        return self.spec.provider

    def base_url(self) -> str | None:
        """The base URL to send to, without a trailing ``/``; ``None`` when none is known.

        The call's ``api_base`` (the runner puts the resolved one there), else the spec's
        (``ModelSpec.resolve_api_base``: config, environment, provider default).
        """
        base = self.api_base
        if base and base[-1] != "/":
            return base  # the runner's, resolved already (the hot path)
        return self.spec.resolve_api_base(base)

    def error(self, cls: type[HarnessError], message: str, **kw: Any) -> HarnessError:
        """Build an error of ``cls`` that carries this call's provider and model."""
        return cls(message, provider=self.spec.provider, model=self.spec.name, **kw)


class Provider(ABC):
    """One API family. Subclasses set ``family`` and are registered by it."""

    family: ClassVar[str] = ""
    needs_network: ClassVar[bool] = True
    supports_n: ClassVar[bool] = True
    """Whether the API returns several choices for ``n``; otherwise the runner fans out."""
    supports_embeddings: ClassVar[bool] = False
    """Whether the API has an embeddings endpoint (``embed``)."""
    max_embedding_inputs: ClassVar[int | None] = None
    """The most texts one embeddings request may carry (``None``: no limit)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            registry.register_adapter(cls.family, cls)

    @abstractmethod
    async def generate(self, call: Call, send: Send) -> Any:
        """Make one attempt of ``call`` and return its ``ModelResponse``."""

    async def embed(self, call: Call, send: Send) -> EmbeddingResponse:
        """Make one attempt of an embeddings ``call`` (texts in ``call.params["input"]``).

        This default refuses: adapters with an embeddings API override it.
        """
        raise no_embeddings(call)

    def stream(
        self, call: Call, send_stream: SendStream, *, clock: Clock = time.perf_counter
    ) -> ResponseStream:
        """Stream one attempt of ``call``: a ``ResponseStream`` of ``StreamChunk`` objects.

        Nothing is sent until the stream is iterated; every error (bad input, HTTP status,
        in-stream error, truncation) is raised from the iteration. This default refuses:
        adapters that can stream override it.
        """

        async def refuse(_stream: ResponseStream) -> AsyncGenerator[StreamChunk, None]:
            raise call.error(BadRequestError, f"{call.spec.provider} models cannot stream")
            yield  # pragma: no cover - makes this an async generator

        return ResponseStream(refuse, clock=clock)


class HTTPProvider(Provider):
    """A provider spoken over HTTP with a JSON body: build, send, parse."""

    @abstractmethod
    def build_request(self, call: Call) -> httpx.Request:
        """The request for ``call`` (pure: no I/O)."""

    @abstractmethod
    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> Any:
        """Normalise a successful JSON body into a ``ModelResponse`` (pure)."""

    def parse_error(
        self, call: Call, status: int | None, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map an error response to the error tree (pure). Adapters refine this.

        ``status`` is ``None`` for an error that came without an error status (an error
        event inside a 200 stream): the class then comes from the body's code or type.
        """
        message, code = error_details(body)
        return error_from_status(
            status,
            message,
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
        return await self._exchange(call, send, self.build_request(call), self.parse_response)

    def build_embedding_request(self, call: Call) -> httpx.Request:
        """The embeddings request for ``call`` (pure); adapters with embeddings override it.

        Raises:
            BadRequestError: this adapter has no embeddings API.
        """
        raise no_embeddings(call)

    def parse_embedding_response(
        self, call: Call, data: Any, headers: Mapping[str, str]
    ) -> EmbeddingResponse:
        """Normalise a successful embeddings body into an ``EmbeddingResponse`` (pure)."""
        raise no_embeddings(call)

    async def embed(self, call: Call, send: Send) -> EmbeddingResponse:
        """Build the embeddings request, send it, and parse the answer or the error."""
        response: EmbeddingResponse = await self._exchange(
            call, send, self.build_embedding_request(call), self.parse_embedding_response
        )
        return response

    async def _exchange(
        self,
        call: Call,
        send: Send,
        request: httpx.Request,
        parse: Callable[[Call, Any, Mapping[str, str]], Any],
    ) -> Any:
        """Send ``request``; parse the answer with ``parse``, or the error status."""
        request.extensions[_LIMIT_EXTENSION] = call.max_response_bytes
        try:
            response = await send(request)
        except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
            raise transport_error(call, exc, streaming=False) from exc
        body = call.raw_body = response.content
        if response.status_code >= 400:
            raise self.parse_error(call, response.status_code, body, response.headers)
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise call.error(
                InvalidResponseError,
                not_json_message(exc, body, response.headers),
                status=response.status_code,
                body=body,
            ) from None
        result = self.parse_checked(call, data, body, response.status_code, response.headers, parse)
        result.harness.request_id = request_id(response.headers)
        return result

    def parse_checked(
        self,
        call: Call,
        data: Any,
        body: bytes,
        status: int,
        headers: Mapping[str, str],
        parse: Callable[[Call, Any, Mapping[str, str]], Any] | None = None,
    ) -> Any:
        """Run ``parse`` (default ``parse_response``); a bad shape is ``InvalidResponseError``."""
        try:
            return (parse or self.parse_response)(call, data, headers)
        except HarnessError:
            raise
        except SHAPE_ERRORS as exc:
            raise call.error(
                InvalidResponseError,
                f"unexpected response shape: {type(exc).__name__}: {exc}",
                status=status,
                body=body,
            ) from exc

    # --- streaming ----------------------------------------------------------------------

    def build_stream_request(self, call: Call) -> httpx.Request:
        """The streaming request for ``call`` (pure): ``build_request`` plus ``"stream": true``.

        Adapters override this where the URL or the body differs.
        """
        return with_json_fields(self.build_request(call), {"stream": True})

    def stream_parser(self, call: Call, headers: Mapping[str, str] | None = None) -> StreamParser:
        """A fresh parser for one stream of ``call`` (pure).

        ``headers`` are the response's (for request ids in errors); ``stream`` makes the
        parser before sending and sets its ``headers`` when the response arrives.

        Raises:
            BadRequestError: this adapter cannot stream.
        """
        raise call.error(BadRequestError, f"{call.spec.provider} models cannot stream")

    def streams_n(self, call: Call) -> bool:
        """Whether one stream can carry ``n > 1`` choices for ``call``."""
        return self.supports_n

    def stream(
        self, call: Call, send_stream: SendStream, *, clock: Clock = time.perf_counter
    ) -> ResponseStream:
        """Stream one attempt of ``call`` over HTTP (server-sent events).

        Iterating the returned ``ResponseStream`` sends ``build_stream_request(call)``,
        checks the status before reading the body (an error status raises
        ``parse_error``), feeds every event to ``stream_parser`` and yields its chunks until
        the terminal event (or the end of the body), then sets ``.response`` to the
        assembled answer. The response is closed however the iteration ends: finished,
        broken off (``aclose()``), failed or cancelled. A 200 answer with a JSON body (a
        server that ignored ``stream``) is parsed as a whole and replayed as chunks.

        Raises (from the iteration):
            HarnessError: the mapped error of an error status or an in-stream error event;
                ``APIConnectionError`` when the connection breaks or the stream ends before
                its finish signal; ``TimeoutError`` when httpx times out reading;
                ``InvalidResponseError`` for events that do not parse; ``BadRequestError``
                for ``n > 1`` where one stream cannot carry several choices.
        """

        def produce(stream: ResponseStream) -> AsyncGenerator[StreamChunk, None]:
            return http_stream_chunks(self, call, send_stream, stream)

        return ResponseStream(produce, clock=clock)


def no_embeddings(call: Call) -> HarnessError:
    """The error of an embeddings call to a provider without an embeddings API."""
    return call.error(
        BadRequestError,
        f"the {call.spec.provider} API has no embeddings endpoint (model {call.spec.name!r}); "
        "use an openai, azure, gemini, cohere, mock or echo model",
    )


def get_provider(family: str) -> Provider:
    """The adapter instance for a family, importing its module on first use.

    Raises:
        KeyError: no adapter of ``family`` is defined or declared in the provider table.
    """
    provider = _instances.get(family)
    if provider is None:
        provider = _instances[family] = registry.adapter_class(family)()
    return provider


_instances: dict[str, Provider] = {}
