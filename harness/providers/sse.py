r"""Server-sent events: the wire format of every provider's streaming API.

This module owns the two layers below the adapters' stream parsers:

* splitting a byte stream into lines the way the SSE specification does: only ``\r\n``,
  ``\n`` and ``\r`` end a line (a ``\r\n`` split across two network chunks is one line
  end). httpx's ``aiter_lines()`` also splits on ``\x85``, ``\u2028``, ``\u2029`` and other
  characters that JSON strings may hold unescaped, which would cut an event in two, so the
  streaming path reads bytes and splits them here. Bytes that are not UTF-8 raise
  ``SSEDecodeError`` (the specification would replace them with U+FFFD, which would let a
  corrupted answer pass for a good one);
* turning lines into ``(event, data)`` pairs (docs/wire-formats.md §5.5): comment lines
  (``:``) such as keep-alives are ignored, several ``data:`` lines of one event are joined
  with ``\n``, a blank line ends an event, an event without data is dropped, and an event
  left without its closing blank line at the end of the stream is still delivered.

``iter_sse`` / ``iter_sse_lines`` are sync twins of the async functions, for pure tests.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

__all__ = [
    "SSEDecodeError",
    "SSEDecoder",
    "SSELineSplitter",
    "aiter_sse",
    "aiter_sse_bytes",
    "aiter_sse_lines",
    "iter_sse",
    "iter_sse_lines",
]

ServerSentEvent = tuple[str | None, str]
"""``(event, data)``: the ``event:`` name (``None`` when the event has none) and its data."""

_LINE_END = re.compile(r"\r\n|\r|\n")


class SSEDecodeError(ValueError):
    """The bytes of an event stream are not valid UTF-8.

    The only error the splitter raises: any bytes either split into lines or raise this.
    ``position`` is the offset in the stream of the first byte that is not UTF-8, when known.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class SSELineSplitter:
    """Incrementally splits text (or UTF-8 bytes) into SSE lines, without their line ends.

    Bytes that are not UTF-8 raise ``SSEDecodeError`` (``errors="replace"`` substitutes
    U+FFFD instead, as the SSE specification has it).
    """

    __slots__ = ("_consumed", "_decoder", "_pending", "_skip_lf", "_started")

    def __init__(self, errors: str = "strict") -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
        self._pending: list[str] = []
        self._skip_lf = False
        self._started = False
        self._consumed = 0

    def _error(self, exc: UnicodeDecodeError) -> SSEDecodeError:
        held = len(self._decoder.getstate()[0])  # bytes of the previous chunk's tail
        where = self._consumed - held + exc.start
        return SSEDecodeError(
            f"invalid UTF-8 at byte {where} of the stream: "
            f"{bytes(exc.object[exc.start : exc.start + 8])!r}",
            where,
        )

    def feed(self, chunk: bytes | str) -> list[str]:
        """The lines completed by ``chunk``; a partial last line waits for the next chunk.

        Raises:
            SSEDecodeError: ``chunk`` holds bytes that are not UTF-8.
        """
        if isinstance(chunk, bytes):
            try:
                text = self._decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise self._error(exc) from None
            self._consumed += len(chunk)
        else:
            text = chunk
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the stream
        if self._skip_lf:
            self._skip_lf = False
            text = text[1:] if text.startswith("\n") else text
        if "\n" not in text and "\r" not in text:
            if text:
                self._pending.append(text)
            return []
        self._skip_lf = text.endswith("\r")  # its "\n" may be the next chunk's first byte
        self._pending.append(text)
        lines = _LINE_END.split("".join(self._pending))
        last = lines.pop()
        self._pending = [last] if last else []
        return lines

    def flush(self) -> list[str]:
        """The unterminated last line, if the stream ended without a line end.

        Raises:
            SSEDecodeError: the stream ended inside a UTF-8 sequence.
        """
        try:
            tail = self._decoder.decode(b"", True)
        except UnicodeDecodeError as exc:
            raise self._error(exc) from None
        if tail:
            self._pending.append(tail)
        text = "".join(self._pending)
        self._pending = []
        return [text] if text else []


class SSEDecoder:
    """Turns SSE lines into events, one line at a time; ``events`` counts those delivered."""

    __slots__ = ("_data", "_event", "events")

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self.events = 0

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line end); return the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alives, ": OPENROUTER PROCESSING"
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id", "retry" and unknown fields carry nothing the providers use.
        return None

    def flush(self) -> ServerSentEvent | None:
        """The event still open when the stream ended (no closing blank line), if any."""
        return self._dispatch()

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event, self._data
        self._event, self._data = None, []
        if not data:
            return None
        self.events += 1
        return event, "\n".join(data)


async def aiter_sse_lines(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[str]:
    """The SSE lines of a stream of byte (or text) chunks, e.g. ``response.aiter_bytes()``."""
    splitter = SSELineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.flush():
        yield line


def iter_sse_lines(chunks: Iterable[bytes | str]) -> Iterator[str]:
    """Sync twin of ``aiter_sse_lines``."""
    splitter = SSELineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.flush()


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """The ``(event, data)`` pairs of a stream of SSE lines (line ends already removed)."""
    decoder = SSEDecoder()
    async for line in lines:
        event = decoder.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Sync twin of ``aiter_sse``."""
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last


def aiter_sse_bytes(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[ServerSentEvent]:
    """The events of a raw body stream: ``aiter_sse(aiter_sse_lines(chunks))``."""
    return aiter_sse(aiter_sse_lines(chunks))
