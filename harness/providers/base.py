"""The provider interface and the pure helpers every adapter shares.

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
returns a ``ResponseStream``: an async iterator of chunks that measures time to first token
and exposes the assembled answer as ``.response`` once the stream is complete.

Every request carries its call's ``max_response_bytes`` as a request extension
(``harness.http.MAX_RESPONSE_BYTES_EXTENSION``), which the transports enforce while reading;
whatever a server sends, a call fails only with a ``HarnessError``: a body past the limit, a
body that does not decode, a stream answered with HTML or plain text, or stream bytes that
are not UTF-8 are ``InvalidResponseError``s naming what was wrong.

Retries, timeouts, concurrency and cost belong to the runner, never to a provider.
Adapters register themselves by family name (``openai``, ``anthropic``, …) when their
module is imported; ``get_provider`` imports them lazily.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import email.utils
import importlib
import json
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import httpx

from harness import http as _http
from harness.config import ModelSpec
from harness.errors import (
    APIConnectionError,
    BadRequestError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    TimeoutError,
    error_from_status,
)
from harness.providers.sse import SSEDecodeError, SSEDecoder, SSELineSplitter
from harness.types import (
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FinishReason,
    ModelResponse,
    StreamChunk,
    Usage,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Call",
    "Clock",
    "HTTPProvider",
    "PartialToolCall",
    "Provider",
    "ResponseStream",
    "Send",
    "SendStream",
    "StreamParser",
    "chunk_output",
    "collect",
    "content_text",
    "error_details",
    "get_provider",
    "json_request",
    "map_finish_reason",
    "new_id",
    "response_chunks",
    "retry_after_seconds",
    "split_words",
    "with_json_fields",
]

Send = _http.Send
"""Sends a request and returns the response with its body read (the runner's client): an
``httpx.Response`` or the lean transport's ``RawResponse`` (status, headers, content)."""

SendStream = _http.SendStream
"""Sends a request and returns the ``httpx.Response`` with its body *not* read yet
(``ClientCache.stream_sender()``); the caller iterates the body and closes the response."""

Clock = Callable[[], float]
"""Seconds from an arbitrary origin (``time.perf_counter``); tests inject a fake one."""

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
        request = self.build_request(call)
        request.extensions[_LIMIT_EXTENSION] = call.max_response_bytes
        try:
            response = await send(request)
        except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
            raise _transport_error(call, exc, streaming=False) from exc
        body = call.raw_body = response.content
        if response.status_code >= 400:
            raise self.parse_error(call, response.status_code, body, response.headers)
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise call.error(
                InvalidResponseError,
                _not_json(exc, body, response.headers),
                status=response.status_code,
                body=body,
            ) from None
        result = self._parse_checked(call, data, body, response.status_code, response.headers)
        result.harness.request_id = request_id(response.headers)
        return result

    def _parse_checked(
        self, call: Call, data: Any, body: bytes, status: int, headers: Mapping[str, str]
    ) -> Any:
        """``parse_response``, with an unexpected shape reported as ``InvalidResponseError``."""
        try:
            return self.parse_response(call, data, headers)
        except HarnessError:
            raise
        except _SHAPE_ERRORS as exc:
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
            return self._stream_chunks(call, send_stream, stream)

        return ResponseStream(produce, clock=clock)

    async def _stream_chunks(
        self, call: Call, send_stream: SendStream, stream: ResponseStream
    ) -> AsyncGenerator[StreamChunk, None]:
        n = call.params.get("n") or 1
        if n > 1 and not self.streams_n(call):
            raise call.error(
                BadRequestError,
                f"n={n} cannot be streamed from {call.spec.provider}: its API returns one "
                "choice per request; stream n separate calls instead",
            )
        parser = self.stream_parser(call)  # before sending: an adapter may refuse to stream
        stream.parser = parser
        request = self.build_stream_request(call)
        request.extensions[_LIMIT_EXTENSION] = call.max_response_bytes
        stream.mark_sent()
        try:
            response = await send_stream(request)
        except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
            raise _transport_error(call, exc) from exc
        if isinstance(response, httpx.Response):  # a sender handing httpx's response over
            response = _http.bounded_stream(response, call.max_response_bytes)
        try:
            stream.mark_headers()
            status, headers = response.status_code, response.headers
            if status >= 400:
                raise self.parse_error(call, status, await _read(call, response), headers)
            body: AsyncIterator[bytes] = response.aiter_bytes()
            ctype = headers.get("content-type", "")
            if not ctype.startswith("text/event-stream"):
                media = ctype.partition(";")[0].strip().lower()
                if media == "application/json":
                    content = await _read(call, response)
                    if stream.record:
                        stream.raw.append(content)
                    data = _json_or_none(content)
                    if isinstance(data, Mapping):  # the server ignored "stream": one answer
                        result = self._parse_checked(call, data, content, status, headers)
                        for chunk in _replayed(result, stream):
                            yield chunk
                        stream.complete(result, request_id(headers))
                        return
                    body = _once(content)  # labelled JSON but not JSON: read it as events
                elif media and media != "text/event-stream":
                    body = await _events_or_refuse(call, body, ctype, status)
            parser.headers = headers
            splitter, decoder = SSELineSplitter(), SSEDecoder()
            first: bytes | None = None
            try:
                async for raw in body:
                    if first is None:
                        first = raw
                    if stream.record:
                        stream.raw.append(raw)
                    chunks = _feed_lines(call, parser, decoder, splitter.feed(raw), stream)
                    for chunk in chunks:
                        yield chunk
                    if parser.done:
                        break
                else:  # end of body: its last line and event may lack their line ends
                    lines = [*splitter.flush(), ""]
                    for chunk in _feed_lines(call, parser, decoder, lines, stream):
                        yield chunk
            except (httpx.TransportError, OSError) as exc:
                # A connection that breaks after every choice has finished lost nothing of
                # the answer (only the terminal event); before that, the answer is cut off.
                if isinstance(exc, _TIMEOUTS) or not parser.finished():
                    raise _transport_error(call, exc) from exc
            except httpx.DecodingError as exc:
                raise _transport_error(call, exc) from exc
            except SSEDecodeError as exc:
                raise call.error(
                    InvalidResponseError, f"stream body is not UTF-8: {exc}", status=status
                ) from None
            stream.mark_end()
            if parser.done:
                await _drain(response, body)
            elif decoder.events == 0 and first is not None and not parser.finished():
                raise call.error(
                    InvalidResponseError,
                    f"the stream (content type {ctype or 'none'!r}) holds no server-sent "
                    f"events: {_excerpt(first)!r}",
                    status=status,
                    body=first,
                )
            try:
                result = parser.finish()
            except HarnessError:
                raise
            except _SHAPE_ERRORS as exc:
                raise call.error(
                    InvalidResponseError,
                    f"cannot assemble the streamed answer: {type(exc).__name__}: {exc}",
                ) from exc
            stream.complete(result, request_id(headers))
        finally:
            await response.aclose()


_SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError)
"""What a parser raises on data of an unexpected shape (reported as ``InvalidResponseError``)."""

_TIMEOUTS = (httpx.TimeoutException, builtins.TimeoutError)

SNIFF_BYTES = 64
"""Bytes read, at most, to tell whether a stream answered with another content type holds
server-sent events all the same."""
EXCERPT_BYTES = 1024
"""Bytes read, at most, for the excerpt in the error about a body that is not a stream."""


async def _events_or_refuse(
    call: Call, body: AsyncIterator[bytes], ctype: str, status: int
) -> AsyncIterator[bytes]:
    """The body of a stream answered with another content type, if it holds events anyway.

    Some servers label a real event stream ``text/plain``; its first bytes tell. Anything
    else (an HTML page, a proxy's plain-text error) is refused with an excerpt.

    Raises:
        InvalidResponseError: the body does not start like server-sent events.
    """
    seen: list[bytes] = []
    size = 0
    try:
        async for raw in body:
            seen.append(raw)
            size += len(raw)
            if size >= SNIFF_BYTES or b"\n" in raw:
                break
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        raise _transport_error(call, exc) from exc
    head = b"".join(seen)
    if _looks_like_events(head):
        return _chain(seen, body)
    try:  # a little more, for a useful excerpt; the body is refused either way
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for raw in body:
                head += raw
                if len(head) >= EXCERPT_BYTES:
                    break
    except (builtins.TimeoutError, httpx.TransportError, httpx.DecodingError, OSError):
        pass
    shown = _excerpt(head)
    message = (
        f"the server answered a stream request with content type {ctype!r}, not "
        "text/event-stream"
    )
    message += f": {shown!r}" if shown else ", and an empty body"
    raise call.error(InvalidResponseError, message, status=status, body=head)


_EVENT_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


def _looks_like_events(head: bytes) -> bool:
    """Whether the first bytes of a body start like server-sent events."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(_EVENT_STARTS)


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for raw in first:
        yield raw
    async for raw in rest:
        yield raw


_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.S | re.I)
_SPACES = re.compile(r"\s+")


def _excerpt(body: bytes, limit: int = 200) -> str:
    """A short one-line excerpt of a body; an HTML page gives its title and text."""
    text = body[: limit * 8].decode("utf-8", "replace")
    if _is_html(text):
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


def _is_html(text: str) -> bool:
    start = text.lstrip()[:15].lower()
    return start.startswith(("<!doctype html", "<html", "<head", "<body", "<!--", "<title"))


def _not_json(exc: ValueError, body: bytes, headers: Mapping[str, str]) -> str:
    """The message for a (non-error) answer whose body is not JSON (the error has the status)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"response body is not valid UTF-8: {exc.reason} at byte {exc.start}"
    ctype = headers.get("content-type") or "none"
    shown = _excerpt(body)
    if not shown:
        return f"response body is empty, not JSON (content type {ctype!r})"
    return f"response body is not JSON (content type {ctype!r}): {shown!r}"


# --- streaming ---------------------------------------------------------------------------


class StreamParser(ABC):
    """Turns one stream's server-sent events into chunks and, at the end, the answer.

    Pure and stateful: ``feed`` takes each ``(event, data)`` pair in order and returns the
    OpenAI-shaped chunks it adds (often none), raising the mapped ``HarnessError`` for an
    in-stream error; ``finish`` assembles the ``ModelResponse``, or raises
    ``APIConnectionError`` if the stream ended before its finish signal.

    Attributes set by ``feed`` for the caller:
        done: the terminal event arrived; read no further.
        output_started: an event carried output (text, reasoning or a tool call), by the
            provider's rule in providers.md §5.5; the time to first token is taken then.
        text_started: an event carried visible text (not reasoning).
    """

    def __init__(
        self, provider: HTTPProvider, call: Call, headers: Mapping[str, str] | None = None
    ) -> None:
        self.provider = provider
        self.call = call
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.done = False
        self.output_started = False
        self.text_started = False
        self.id = ""
        self.model = ""
        self.created = now()

    @abstractmethod
    def feed(self, event: str | None, data: str) -> list[StreamChunk]:
        """The chunks that one event adds (pure but for this parser's state)."""

    @abstractmethod
    def finish(self) -> ModelResponse:
        """The assembled answer, once the stream has ended.

        Raises:
            APIConnectionError: the stream ended before its finish signal.
        """

    def finished(self) -> bool:
        """Whether the answer is complete, though the stream may not have ended yet.

        True once the terminal event arrived (``done``); adapters whose streams carry every
        choice's finish reason before the terminal event (OpenAI's ``finish_reason`` before
        ``[DONE]``, Anthropic's ``stop_reason`` before ``message_stop``) also say True
        then, so a stream that ends, or whose connection breaks, after the finish and
        before the terminal event is complete rather than truncated.
        """
        return self.done

    def usage_so_far(self) -> Usage | None:
        """The token counts the provider has reported so far, or ``None`` if none yet.

        What a stream broken off early (a race loser) is known to have consumed: Anthropic
        reports input tokens in ``message_start`` and Gemini sends running counts with
        every chunk, while OpenAI-compatible servers and Cohere report only at the end.
        """
        return None

    # helpers for subclasses ----------------------------------------------------------
    def load(self, data: str) -> Any:
        """The JSON of an event's data."""
        try:
            return json.loads(data)
        except ValueError:
            raise self.call.error(
                InvalidResponseError, "stream event data is not JSON", body=data
            ) from None

    def truncated(self) -> HarnessError:
        """The error of a stream that ended before the answer was complete."""
        return self.call.error(APIConnectionError, "stream ended before the answer was complete")

    def note_output(self, *, text: bool = False) -> None:
        """Record that output started (and visible text, when ``text``)."""
        self.output_started = True
        if text:
            self.text_started = True

    def chunk(
        self,
        index: int = 0,
        *,
        role: bool = False,
        content: str | None = None,
        reasoning: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: FinishReason | None = None,
        usage: Usage | None = None,
    ) -> StreamChunk:
        """A one-choice chunk of this stream (``tool_calls``: OpenAI-shaped fragment dicts)."""
        delta = Delta(
            role="assistant" if role else None,
            content=content,
            tool_calls=[DeltaToolCall.from_dict(t) for t in tool_calls] if tool_calls else None,
            reasoning_content=reasoning,
        )
        return self.chunk_of([ChunkChoice(index, delta, finish_reason)], usage)

    def chunk_of(self, choices: list[ChunkChoice], usage: Usage | None = None) -> StreamChunk:
        """A chunk of this stream with the given choices."""
        return StreamChunk(
            id=self.id or "",
            model=self.model or self.call.spec.model,
            choices=choices,
            created=self.created,
            usage=usage,
        )


@dataclass(slots=True)
class PartialToolCall:
    """A tool call being streamed: its id and name, and its argument fragments."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI tool call with the fragments joined."""
        function = {"name": self.name, "arguments": "".join(self.arguments)}
        return {"id": self.id, "type": "function", "function": function}


Producer = Callable[["ResponseStream"], AsyncGenerator[StreamChunk, None]]
"""Makes a stream's chunks; it reports timings and the final answer to the stream."""


class ResponseStream:
    """One streamed answer: an async iterator of ``StreamChunk`` with timings and the result.

    Iterate it (``async for chunk in stream``); nothing is sent before the first
    ``__anext__``. When the iteration ends normally, ``response`` holds the assembled
    ``ModelResponse`` and its ``harness`` carries ``ttft_ms``, ``first_text_ms`` and
    ``latency_ms``. Any failure is raised from the iteration. ``aclose()`` (or leaving an
    ``async with`` block) stops a stream early and closes its connection; so does
    cancelling the task that iterates it.

    Timings are milliseconds since just before the request was sent, from ``clock``:
    ``ttfb_ms`` when the response headers arrived, ``ttft_ms`` at the first event with
    output (role-only chunks and pings do not count), ``first_text_ms`` at the first visible
    text (reasoning does not count), ``latency_ms`` at the end of the stream.
    """

    def __init__(self, produce: Producer, *, clock: Clock = time.perf_counter) -> None:
        self._produce = produce
        self._clock = clock
        self._chunks: AsyncGenerator[StreamChunk, None] | None = None
        self._t0: float | None = None
        self._t_end: float | None = None
        self.response: ModelResponse | None = None
        """The assembled answer; ``None`` until the stream has ended successfully."""
        self.ttfb_ms: float | None = None
        self.ttft_ms: float | None = None
        self.first_text_ms: float | None = None
        self.latency_ms: float | None = None
        self.chunks_yielded = 0
        """How many chunks the consumer has received (a failure after the first one cannot
        be retried without repeating output)."""
        self.parser: StreamParser | None = None
        """The parser fed this stream's events (HTTP streams), set before sending."""
        self.record = False
        """Set before iterating to keep ``timeline`` and ``raw`` (for the response store)."""
        self.timeline: list[tuple[float, StreamChunk]] = []
        """With ``record``: each chunk with the milliseconds since sending when it arrived."""
        self.raw: list[bytes] = []
        """With ``record``: the body's bytes as they arrived (HTTP streams)."""
        self.gate: Callable[[], AbstractAsyncContextManager[Any]] | None = None
        """Entered before the request is sent and left when the stream ends, however it
        ends (the runner holds the model's concurrency slot with it)."""
        self._held: AbstractAsyncContextManager[Any] | None = None
        self.idle_timeout: float | None = None
        """Seconds to wait for each chunk before failing with ``TimeoutError`` (the
        runner sets the call's timeout on a caller's stream); ``None``: wait indefinitely."""
        self.on_complete: Callable[[ModelResponse], object] | None = None
        """Called with the assembled answer when the stream completes (the runner prices
        and stores it)."""
        self.include_usage = False
        """Hand out a usage chunk (no choices, the answer's usage) after the last chunk, as
        OpenAI does for ``stream_options={"include_usage": True}``. The usage the provider
        streams is never handed out otherwise: every other chunk has ``usage=None``."""
        self._usage_sent = False

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._chunks is None:
            if self.gate is not None:
                held = self.gate()
                await held.__aenter__()
                self._held = held
            self._chunks = self._produce(self)
        while True:
            try:
                if self.idle_timeout is None:
                    chunk = await self._chunks.__anext__()
                else:
                    chunk = await self._next_within(self._chunks, self.idle_timeout)
            except StopAsyncIteration as exc:
                await self._release(exc)
                if self.include_usage and not self._usage_sent and self.response is not None:
                    self._usage_sent = True
                    return self._usage_chunk(self.response)
                raise
            except BaseException as exc:
                await self._release(exc)
                raise
            if self.record:
                self.timeline.append((self._elapsed_ms(), chunk))
            if not chunk.choices:
                continue  # the provider's usage chunk: OpenAI's comes last, and only on request
            if chunk.usage is not None:  # usage on a content chunk (Gemini, Anthropic, Cohere)
                chunk = copy.copy(chunk)
                chunk.usage = None
            self.chunks_yielded += 1
            return chunk

    @staticmethod
    def _usage_chunk(response: ModelResponse) -> StreamChunk:
        return StreamChunk(
            id=response.id,
            model=response.model,
            choices=[],
            created=response.created,
            usage=response.usage,
            system_fingerprint=response.system_fingerprint,
        )

    async def _next_within(
        self, chunks: AsyncGenerator[StreamChunk, None], seconds: float
    ) -> StreamChunk:
        """The next chunk, or ``TimeoutError`` (the harness's) after ``seconds`` of silence."""
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await chunks.__anext__()
        except builtins.TimeoutError:
            if not deadline.expired():
                raise  # raised by the stream itself, already the right error
            call = self.parser.call if self.parser is not None else None
            message = f"no chunk within {seconds:g} s"
            if call is None:
                raise TimeoutError(message) from None
            raise call.error(TimeoutError, message) from None

    async def aclose(self) -> None:
        """Stop the stream and close its connection (a no-op once it has ended)."""
        if self._chunks is not None:
            await self._chunks.aclose()
        await self._release(None)

    async def _release(self, exc: BaseException | None) -> None:
        """Leave the gate (once), passing on how the stream ended."""
        held, self._held = self._held, None
        if held is None:
            return
        if exc is None or isinstance(exc, StopAsyncIteration):
            await held.__aexit__(None, None, None)
        else:
            await held.__aexit__(type(exc), exc, exc.__traceback__)

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def done(self) -> bool:
        """Whether the stream has ended successfully (``response`` is set)."""
        return self.response is not None

    def usage_so_far(self) -> Usage | None:
        """Token counts reported so far (``None``: none yet).

        The final usage once complete, else what the provider had reported before the
        stream stopped (see ``StreamParser.usage_so_far``).
        """
        if self.response is not None:
            return self.response.usage
        return self.parser.usage_so_far() if self.parser is not None else None

    # reported by producers -------------------------------------------------------------
    def mark_sent(self) -> None:
        """The request is about to be sent: the origin of every timing."""
        self._t0 = self._clock()

    def mark_headers(self) -> None:
        """The response headers arrived."""
        self.ttfb_ms = self._elapsed_ms()

    def mark_output(self, *, text: bool) -> None:
        """Output arrived now (visible text when ``text``); the first call of each counts."""
        if self.ttft_ms is None:
            self.ttft_ms = self._elapsed_ms()
        if text and self.first_text_ms is None:
            self.first_text_ms = self._elapsed_ms()

    def observe(self, parser: StreamParser) -> None:
        """Take the parser's output flags after it was fed an event."""
        if parser.output_started:
            self.mark_output(text=parser.text_started)

    def observe_chunk(self, chunk: StreamChunk) -> None:
        """Take the output of a chunk made without a parser (replayed or offline answers)."""
        output, text = chunk_output(chunk)
        if output:
            self.mark_output(text=text)

    def mark_end(self) -> None:
        """The last event arrived."""
        self._t_end = self._clock()

    def complete(self, response: ModelResponse, request_id: str | None = None) -> None:
        """The stream is complete: record the answer and put the timings in its metadata."""
        if self._t_end is None:
            self.mark_end()
        self.latency_ms = self._elapsed_ms(self._t_end)
        meta = response.harness
        meta.ttft_ms = self.ttft_ms
        meta.first_text_ms = self.first_text_ms
        meta.latency_ms = self.latency_ms
        completion = response.usage.completion_tokens
        meta.tokens_per_s = output_speed(completion, self.ttft_ms, self.latency_ms)
        if request_id is not None and meta.request_id is None:
            meta.request_id = request_id
        self.response = response
        if self.on_complete is not None:
            self.on_complete(response)

    def complete_replayed(self, response: ModelResponse) -> None:
        """Complete with a replayed answer, whose metadata keeps the recorded timings."""
        meta = response.harness
        self.ttft_ms, self.first_text_ms = meta.ttft_ms, meta.first_text_ms
        self.latency_ms = meta.latency_ms
        self.response = response

    def _elapsed_ms(self, at: float | None = None) -> float:
        if self._t0 is None:
            self._t0 = self._clock()
        return ((self._clock() if at is None else at) - self._t0) * 1000.0


def output_speed(
    completion_tokens: int, ttft_ms: float | None, latency_ms: float | None
) -> float | None:
    """Completion tokens per second after the first token; ``None`` if not measurable.

    The time is ``latency − TTFT`` (generation after the first output arrived), as output
    speed is usually defined; an answer that arrived in one piece (under a millisecond
    between first and last output) has no meaningful interval.
    """
    if not completion_tokens or ttft_ms is None or latency_ms is None:
        return None
    generating_ms = latency_ms - ttft_ms
    if generating_ms < 1.0:
        return None
    return completion_tokens / (generating_ms / 1000.0)


async def collect(stream: ResponseStream) -> ModelResponse:
    """Drain ``stream`` and return its assembled answer (closing it on any failure)."""
    async with stream:
        async for _ in stream:
            pass
    assert stream.response is not None  # a stream that ends normally always has one
    return stream.response


def chunk_output(chunk: StreamChunk) -> tuple[bool, bool]:
    """Whether ``chunk`` carries output (text, reasoning, refusal, tool calls) and visible text."""
    output = text = False
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.refusal:
            output = text = True
        elif delta.reasoning_content or delta.tool_calls:
            output = True
    return output, text


_WORDS = re.compile(r"\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """``text`` in word-sized pieces (each with its trailing space) that join back to it."""
    return _WORDS.findall(text)


def response_chunks(
    response: ModelResponse, split: Callable[[str], list[str]] | None = None
) -> list[StreamChunk]:
    """The chunks that stream ``response``, as OpenAI would send them.

    A role-only chunk, then per choice its reasoning, its text (in the pieces ``split``
    makes; whole by default), each tool call whole, and its finish reason; last a usage
    chunk without choices. Joined, they assemble back into ``response``.
    """
    pieces = split or (lambda text: [text] if text else [])

    def make(choices: list[ChunkChoice], usage: Usage | None = None) -> StreamChunk:
        return StreamChunk(
            id=response.id,
            model=response.model,
            choices=choices,
            created=response.created,
            usage=usage,
            system_fingerprint=response.system_fingerprint,
        )

    roles = [ChunkChoice(c.index, Delta(role="assistant", content="")) for c in response.choices]
    chunks = [make(roles)]
    for choice in response.choices:
        message = choice.message
        for part in pieces(message.reasoning_content or ""):
            chunks.append(make([ChunkChoice(choice.index, Delta(reasoning_content=part))]))
        for part in pieces(message.content or ""):
            chunks.append(make([ChunkChoice(choice.index, Delta(content=part))]))
        if message.refusal:
            chunks.append(make([ChunkChoice(choice.index, Delta(refusal=message.refusal))]))
        for position, tool in enumerate(message.tool_calls or []):
            fn = DeltaFunction(tool.function.name, tool.function.arguments)
            partial = DeltaToolCall(position, tool.id, tool.type, fn)
            chunks.append(make([ChunkChoice(choice.index, Delta(tool_calls=[partial]))]))
        chunks.append(make([ChunkChoice(choice.index, Delta(), choice.finish_reason)]))
    chunks.append(make([], response.usage))
    return chunks


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


def _feed_lines(
    call: Call,
    parser: StreamParser,
    decoder: SSEDecoder,
    lines: list[str],
    stream: ResponseStream,
) -> list[StreamChunk]:
    """Feed SSE lines through ``decoder`` into ``parser``; stop at the terminal event."""
    out: list[StreamChunk] = []
    for line in lines:
        event = decoder.feed(line)
        if event is None:
            continue
        name, data = event
        try:
            out.extend(parser.feed(name, data))
        except HarnessError:
            raise
        except _SHAPE_ERRORS as exc:
            raise call.error(
                InvalidResponseError,
                f"unexpected stream event shape: {type(exc).__name__}: {exc}",
                body=data,
            ) from exc
        stream.observe(parser)
        if parser.done:
            stream.mark_end()
            break
    return out


def _replayed(response: ModelResponse, stream: ResponseStream) -> list[StreamChunk]:
    """The chunks of an answer that arrived whole, with its output noted on ``stream``."""
    chunks = response_chunks(response)
    for chunk in chunks:
        stream.observe_chunk(chunk)
    stream.mark_end()
    return chunks


def _transport_error(call: Call, exc: BaseException, *, streaming: bool = True) -> HarnessError:
    """The harness error for an httpx/socket failure while sending or streaming."""
    if isinstance(exc, _http.ResponseTooLarge):
        error = call.error(ResponseTooLargeError, str(exc))
        error.limit = exc.limit  # type: ignore[attr-defined]
        return error
    if isinstance(exc, httpx.DecodingError):
        what = "stream" if streaming else "response body"
        return call.error(InvalidResponseError, f"cannot decode the {what}: {exc}")
    if isinstance(exc, _TIMEOUTS):
        return call.error(TimeoutError, _described(exc))
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


async def _read(call: Call, response: httpx.Response | _http.RawStream) -> bytes:
    """The whole body of a streamed response (an error body, or a JSON answer)."""
    try:
        return await response.aread()
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        raise _transport_error(call, exc) from exc


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


DRAIN_LIMIT = 64 * 1024
"""Bytes read past a stream's terminal event, at most, to keep its connection alive."""
DRAIN_TIMEOUT = 0.25
"""Seconds waited, at most, for the end of the body after a stream's terminal event."""


async def _drain(response: httpx.Response | _http.RawStream, body: AsyncIterator[bytes]) -> None:
    """Read the rest of a finished stream's body, so its connection can be reused.

    After the terminal event a server sends little or nothing more (OpenAI's ``[DONE]`` is
    followed only by the end of the chunked body), so this usually returns at once, and
    without waiting when the lean transport already holds the end of the body. A server
    that keeps talking is cut off after ``DRAIN_LIMIT`` bytes or ``DRAIN_TIMEOUT`` seconds;
    its connection is then closed rather than reused. Never raises.
    """
    if isinstance(response, _http.RawStream) and response.drain_buffered():
        return
    read = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for raw in body:
                read += len(raw)
                if read > DRAIN_LIMIT:
                    return
    except (builtins.TimeoutError, httpx.TransportError, httpx.DecodingError, OSError):
        return


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


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
        raw = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
        text = raw[:2400].decode("utf-8", "replace")
        if _is_html(text):  # a proxy's or load balancer's error page
            return "HTML error page: " + _excerpt(raw), None
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
