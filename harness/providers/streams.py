"""Streams: the ``ResponseStream`` a caller iterates and the machinery that fills it.

``StreamParser`` is what an adapter implements to turn one stream's server-sent events
into ``StreamChunk`` objects and the final answer; ``http_stream_chunks`` does the I/O of
every HTTP stream (status, content-type sniffing, SSE decoding, draining the connection
after the terminal event); ``ResponseStream`` measures time to first token and holds the
assembled answer; ``response_chunks`` replays a whole answer as the chunks OpenAI would
send. The timing helpers (``output_speed``, ``chunk_output``) live here too.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from harness import http as _http
from harness.errors import (
    APIConnectionError,
    BadRequestError,
    HarnessError,
    InvalidResponseError,
)
from harness.errors import TimeoutError as HarnessTimeoutError
from harness.providers.sse import SSEDecodeError, SSEDecoder, SSELineSplitter
from harness.providers.wire import (
    SHAPE_ERRORS,
    TIMEOUTS,
    excerpt,
    now,
    request_id,
    transport_error,
)
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

if TYPE_CHECKING:
    from harness.providers.base import Call, HTTPProvider, SendStream

__all__ = [
    "Clock",
    "PartialToolCall",
    "ResponseStream",
    "StreamParser",
    "chunk_output",
    "collect",
    "http_stream_chunks",
    "output_speed",
    "response_chunks",
    "split_words",
]

Clock = Callable[[], float]
"""Seconds from an arbitrary origin (``time.perf_counter``); tests inject a fake one."""

_LIMIT_EXTENSION = _http.MAX_RESPONSE_BYTES_EXTENSION


async def http_stream_chunks(
    provider: HTTPProvider, call: Call, send_stream: SendStream, stream: ResponseStream
) -> AsyncGenerator[StreamChunk, None]:
    """The chunks of one HTTP stream of ``call`` (``HTTPProvider.stream`` documents it)."""
    n = call.params.get("n") or 1
    if n > 1 and not provider.streams_n(call):
        raise call.error(
            BadRequestError,
            f"n={n} cannot be streamed from {call.spec.provider}: its API returns one "
            "choice per request; stream n separate calls instead",
        )
    parser = provider.stream_parser(call)  # before sending: an adapter may refuse to stream
    stream.parser = parser
    request = provider.build_stream_request(call)
    request.extensions[_LIMIT_EXTENSION] = call.max_response_bytes
    stream.mark_sent()
    try:
        response = await send_stream(request)
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        raise transport_error(call, exc) from exc
    if isinstance(response, httpx.Response):  # a sender handing httpx's response over
        response = _http.bounded_stream(response, call.max_response_bytes)
    try:
        stream.mark_headers()
        status, headers = response.status_code, response.headers
        if status >= 400:
            raise provider.parse_error(call, status, await _read(call, response), headers)
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
                    result = provider.parse_checked(call, data, content, status, headers)
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
        said: dict[int, FinishReason | None] = {}  # each choice's last chunk's finish reason
        try:
            async for raw in body:
                if first is None:
                    first = raw
                if stream.record:
                    stream.raw.append(raw)
                chunks = _feed_lines(call, parser, decoder, splitter.feed(raw), stream)
                for chunk in chunks:
                    _note_finish(chunk, said)
                    yield chunk
                if parser.done:
                    break
            else:  # end of body: its last line and event may lack their line ends
                lines = [*splitter.flush(), ""]
                for chunk in _feed_lines(call, parser, decoder, lines, stream):
                    _note_finish(chunk, said)
                    yield chunk
        except (httpx.TransportError, OSError) as exc:
            # A connection that breaks after every choice has finished lost nothing of
            # the answer (only the terminal event); before that, the answer is cut off.
            if isinstance(exc, TIMEOUTS) or not parser.finished():
                raise transport_error(call, exc) from exc
        except httpx.DecodingError as exc:
            raise transport_error(call, exc) from exc
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
                f"events: {excerpt(first)!r}",
                status=status,
                body=first,
            )
        try:
            result = parser.finish()
        except HarnessError:
            raise
        except SHAPE_ERRORS as exc:
            raise call.error(
                InvalidResponseError,
                f"cannot assemble the streamed answer: {type(exc).__name__}: {exc}",
            ) from exc
        closing = _closing_chunk(parser, result, said)
        if closing is not None:
            yield closing
        stream.complete(result, request_id(headers))
    finally:
        await response.aclose()


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
        raise transport_error(call, exc) from exc
    head = b"".join(seen)
    if _looks_like_events(head):
        return _chain(seen, body)
    try:  # a little more, for a useful excerpt; the body is refused either way
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for raw in body:
                head += raw
                if len(head) >= EXCERPT_BYTES:
                    break
    except (TimeoutError, httpx.TransportError, httpx.DecodingError, OSError):
        pass
    shown = excerpt(head)
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


class StreamParser(ABC):
    """Turns one stream's server-sent events into chunks and, at the end, the answer.

    Pure and stateful: ``feed`` takes each ``(event, data)`` pair in order and returns the
    OpenAI-shaped chunks it adds (often none), raising the mapped ``HarnessError`` for an
    in-stream error; ``finish`` assembles the ``ModelResponse``, or raises
    ``APIConnectionError`` if the stream ended before its finish signal.

    Attributes set by ``feed`` for the caller:
        done: the terminal event arrived; read no further.
        output_started: an event carried output (text, reasoning or a tool call), by the
            provider's rule in docs/wire-formats.md §5.5; the time to first token is taken then.
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
        except TimeoutError:
            if not deadline.expired():
                raise  # raised by the stream itself, already the right error
            call = self.parser.call if self.parser is not None else None
            message = f"no chunk within {seconds:g} s"
            if call is None:
                raise HarnessTimeoutError(message) from None
            raise call.error(HarnessTimeoutError, message) from None

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
        except SHAPE_ERRORS as exc:
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


def _note_finish(chunk: StreamChunk, said: dict[int, FinishReason | None]) -> None:
    """Remember the finish reason of each choice's latest chunk (``None``: it had none)."""
    for choice in chunk.choices:
        said[choice.index] = choice.finish_reason


def _closing_chunk(
    parser: StreamParser, result: ModelResponse, said: Mapping[int, FinishReason | None]
) -> StreamChunk | None:
    """A last chunk with the assembled answer's finish reasons, where the chunks disagree.

    A stream that never sent a finish reason (``[DONE]`` right after the output, or ``""``
    on every chunk), sent one the answer reads otherwise, or sent more for a choice after
    its finish (OpenRouter's usage chunk repeats an empty delta) would leave a caller whose
    last chunk disagrees with ``stream.response``; this chunk makes the last word the
    answer's. ``None`` when every choice's last chunk already says it.
    """
    missing = [
        ChunkChoice(choice.index, Delta(), choice.finish_reason)
        for choice in result.choices
        if choice.finish_reason is not None and said.get(choice.index) != choice.finish_reason
    ]
    return parser.chunk_of(missing) if missing else None


def _replayed(response: ModelResponse, stream: ResponseStream) -> list[StreamChunk]:
    """The chunks of an answer that arrived whole, with its output noted on ``stream``."""
    chunks = response_chunks(response)
    for chunk in chunks:
        stream.observe_chunk(chunk)
    stream.mark_end()
    return chunks


async def _read(call: Call, response: httpx.Response | _http.RawStream) -> bytes:
    """The whole body of a streamed response (an error body, or a JSON answer)."""
    try:
        return await response.aread()
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        raise transport_error(call, exc) from exc


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
    except (TimeoutError, httpx.TransportError, httpx.DecodingError, OSError):
        return


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


