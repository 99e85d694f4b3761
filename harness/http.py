"""HTTP plumbing: a lean HTTP/1.1 transport under the httpx API, and the per-loop client.

Why a transport of our own: httpx's default transport (httpcore) spends about 10 ms of CPU
per request when its pool holds 100 busy connections, because its pool bookkeeping grows
with the pool; the runner already bounds concurrency, so the transport needs no pool limits,
only keep-alive reuse. ``LeanTransport`` is an ``httpx.AsyncBaseTransport`` on asyncio's
``BufferedProtocol`` API: one socket per in-flight request, idle sockets kept per origin and
reused, responses handed to the providers as ``RawResponse``/``RawStream`` (or to httpx as
``httpx.Response`` objects). Everything above it (requests, ``respx``-style
``MockTransport`` in tests) is plain httpx.

Cancelling a request (race losers, timeouts) aborts its socket at once, so the server sees
the client disconnect. A request on a reused keep-alive socket that the server had already
closed is sent again once on a fresh socket, as httpcore and urllib3 do.

When a proxy is configured in the environment (``HTTPS_PROXY`` and friends), ``auto`` picks
httpx's own transport, which knows proxies.

Nothing a server sends can make a transport fail with anything but an httpx error, or grow
without bound: a malformed status line, ``Content-Length`` or chunk size is an
``httpx.RemoteProtocolError``; heads and chunk-size lines are capped; a body is read at most
to its request's ``max_response_bytes`` (the ``MAX_RESPONSE_BYTES_EXTENSION`` request
extension, ``DEFAULT_MAX_RESPONSE_BYTES`` without it), counted as it arrives, and a
``gzip``/``deflate`` body is decompressed at most to the same limit: past it,
``ResponseTooLarge`` is raised and the socket is closed, never reused. The same limit holds
on the httpx paths (injected transports and httpx's own), whose bodies are read raw and
decoded here. Other content codings are refused (``httpx.DecodingError``).

This module also owns ``ClientCache``: an ``httpx.AsyncClient`` per event loop, created
inside that loop (httpx clients must not cross loops) and closed when the loop is gone.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
import urllib.request
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_BYTES_EXTENSION",
    "STREAM_EXTENSION",
    "ClientCache",
    "LeanTransport",
    "RawResponse",
    "RawStream",
    "ResponseTooLarge",
    "TransportKind",
    "bounded_stream",
    "make_transport",
    "parse_chunk_size",
    "parse_content_length",
]

STREAM_EXTENSION = "harness.stream"
"""A request extension: when true, the lean transport streams the body instead of reading it."""

TransportKind = Literal["auto", "lean", "httpx"]

MAX_RESPONSE_BYTES_EXTENSION = "harness.max_response_bytes"
"""A request extension: the most bytes of response body to accept (an ``int``)."""

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""The body size limit of a request that does not set ``MAX_RESPONSE_BYTES_EXTENSION``."""

IDLE_TIMEOUT = 15.0
"""Seconds an idle keep-alive socket is kept before it is closed rather than reused."""

MAX_HEAD_BYTES = 64 * 1024
"""The most bytes of status line and headers (and of chunked trailers) accepted."""

MAX_LINE_BYTES = 4 * 1024
"""The longest chunk-size line (size and extensions) or trailer line accepted."""

MAX_INTERIM_RESPONSES = 16
"""The most ``1xx`` interim responses skipped before the final one."""

_HIGH_WATER = 1024 * 1024
"""Buffered bytes past which a socket stops reading until its reader asks for more."""

_ssl_context: ssl.SSLContext | None = None


def _get_ssl_context() -> ssl.SSLContext:
    # Creating a context loads the CA bundle (~20 ms): do it once per process, lazily.
    global _ssl_context
    if _ssl_context is None:
        ctx = httpx.create_ssl_context()
        ctx.set_alpn_protocols(["http/1.1"])
        _ssl_context = ctx
    return _ssl_context


@dataclass(slots=True)
class RawResponse:
    """Status, headers (lower-case names) and body of a response read in one go.

    The subset of ``httpx.Response`` that the providers use.
    """

    status_code: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)
    """Never shown in ``repr``: a server may echo a key into an error body."""


class ResponseTooLarge(httpx.DecodingError):
    """A response body went past its request's ``max_response_bytes``.

    Raised while reading, before more than the limit (plus one network read) is held in
    memory; the socket is closed rather than reused. ``limit`` is the limit in bytes.
    """

    def __init__(self, limit: int, *, decompressed: bool = False) -> None:
        self.limit = limit
        what = "decompressed response body" if decompressed else "response body"
        super().__init__(
            f"{what} exceeds max_response_bytes={limit} ({format_size(limit)}); "
            "raise it with max_response_bytes=<bytes> if answers this large are expected"
        )


def format_size(n: int) -> str:
    """``n`` bytes for people: ``32 MiB``, ``64 KiB``, ``1.5 MiB``, ``100 bytes``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} byte" if n == 1 else f"{n} bytes"


def parse_content_length(values: Sequence[bytes]) -> int:
    """The body length that the ``Content-Length`` header values (one or more) state.

    Each value is one or more comma-separated decimal lengths (RFC 9110 §8.6); all of them
    must agree.

    Raises:
        httpx.RemoteProtocolError: no value, a value that is not a non-negative decimal
            number of at most 19 digits, or values that differ.
    """
    length: int | None = None
    for value in values:
        parts = value.split(b",") if b"," in value else (value,)
        for part in parts:
            digits = part.strip(b" \t")
            if not digits.isdigit() or len(digits) > 19:  # bytes.isdigit: ASCII digits only
                raise httpx.RemoteProtocolError(f"invalid Content-Length {value[:40]!r}")
            n = int(digits)
            if length is not None and n != length:
                raise httpx.RemoteProtocolError(
                    f"conflicting Content-Length values {length} and {n}"
                )
            length = n
    if length is None:
        raise httpx.RemoteProtocolError("empty Content-Length")
    return length


_NOT_HEX = bytes(c for c in range(256) if c not in b"0123456789abcdefABCDEF")


def parse_chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (without the CRLF); extensions are ignored.

    Raises:
        httpx.RemoteProtocolError: the size is not 1 to 16 hexadecimal digits (no sign,
            no ``0x``, no underscores).
    """
    size = line.split(b";", 1)[0].strip(b" \t")
    if not size or len(size) > 16 or size.translate(None, _NOT_HEX) != size:
        raise httpx.RemoteProtocolError(f"bad chunk size {line[:40]!r}")
    return int(size, 16)


_CHUNK_SIZES: dict[bytes, int] = {}
"""Chunk-size lines seen before and their sizes: a stream's chunks mostly repeat a few
sizes, and one dict lookup is cheaper than validating the line again."""
_CHUNK_SIZES_KEPT = 4096


def _chunk_size(line: bytes) -> int:
    """``parse_chunk_size``, remembering the answer for a line without extensions."""
    size = parse_chunk_size(line)
    if len(_CHUNK_SIZES) < _CHUNK_SIZES_KEPT and len(line) <= 16:
        _CHUNK_SIZES[line] = size
    return size


class _Inflater:
    """Bounded ``gzip``/``deflate`` decoding of a body fed piece by piece.

    ``decode`` never returns more than ``limit`` bytes in all: it asks zlib for at most one
    byte past what is left, so a compression bomb stops at the limit.
    """

    __slots__ = ("_fed", "_probe", "_z", "encoding", "limit", "produced")

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        self.produced = 0
        self._fed = False
        # deflate is meant to be zlib-wrapped, but servers send raw deflate too (as httpx
        # and browsers accept): the first two bytes tell which.
        self._probe: bytes | None = b"" if encoding == "deflate" else None
        self._z = zlib.decompressobj(
            16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
        )

    def decode(self, data: bytes) -> bytes:
        """The decoded bytes of ``data`` (the next piece of the encoded body).

        Raises:
            ResponseTooLarge: the decoded body would exceed ``limit``.
            httpx.DecodingError: the data is not valid for the encoding.
        """
        if not data:
            return b""
        self._fed = True
        raw_fallback = False
        if self._probe is not None:
            data = self._probe + data
            if len(data) < 2:
                self._probe = data
                return b""
            self._probe = None
            cmf, flg = data[0], data[1]
            if cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0:
                raw_fallback = True  # a zlib header, or raw deflate that looks like one
            else:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        room = self.limit - self.produced
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error as exc:
            if raw_fallback:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise httpx.DecodingError(
                f"cannot decode the {self.encoding} response body: {exc}"
            ) from None
        if len(out) > room:
            raise ResponseTooLarge(self.limit, decompressed=True)
        self.produced += len(out)
        return out

    def finish(self) -> None:
        """Check that the encoded body was complete.

        Raises:
            httpx.DecodingError: it ended before its end-of-stream marker.
        """
        if self._fed and not self._z.eof:
            raise httpx.DecodingError(f"the {self.encoding} response body ends early")


def _inflater(value: str, limit: int) -> _Inflater | None:
    """The decoder for a ``Content-Encoding`` value; ``None`` for none/``identity``.

    Raises:
        httpx.DecodingError: an encoding other than ``gzip`` and ``deflate`` (we never ask
            for one), or several stacked.
    """
    codings = [
        c for c in (p.strip().lower() for p in value.split(",")) if c not in ("", "identity")
    ]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflater("gzip" if codings[0] == "x-gzip" else codings[0], limit)
    raise httpx.DecodingError(
        f"unsupported Content-Encoding {value.strip()[:40]!r} (only gzip and deflate are "
        "decoded; the request did not ask for any)"
    )


def _limit_of(request: httpx.Request) -> int:
    """The request's ``max_response_bytes`` (the extension, else the default)."""
    return request.extensions.get(MAX_RESPONSE_BYTES_EXTENSION) or DEFAULT_MAX_RESPONSE_BYTES


READ_SIZE = 256 * 1024
"""Bytes read from a socket at most at once (asyncio's own read size)."""


def _read_buffer() -> memoryview:
    return memoryview(bytearray(READ_SIZE))


class _ConnectionClosed(Exception):
    """The peer closed the socket; ``got_bytes`` says whether any response had arrived."""

    def __init__(self, got_bytes: bool) -> None:
        super().__init__("server closed the connection")
        self.got_bytes = got_bytes


class _Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 socket: a byte buffer filled by the event loop, read by one request.

    A ``BufferedProtocol``: the event loop reads into ``read_buffer`` (one per transport,
    shared by its sockets: each read is copied out before the next one starts), where a
    plain ``Protocol`` would get a fresh 256 KiB ``bytes`` per read, whose allocation and
    release cost more than the rest of a read (glibc serves blocks that large with
    ``mmap``, depending on the heap's history). Reading pauses while more than
    ``_HIGH_WATER`` bytes wait in the buffer (a reader that is slower than the server must
    not make the buffer grow without bound) and resumes when the reader asks for more.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, str, int],
        read_buffer: memoryview | None = None,
    ) -> None:
        self.loop = loop
        self.key = key
        self.read_buffer = read_buffer if read_buffer is not None else _read_buffer()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.reused = False
        self.paused = False
        self.lost: Exception | None = None
        """Why the socket was lost, when it was not a clean close (a reset)."""

    # asyncio.BufferedProtocol callbacks ----------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        buf = self.buf
        buf += self.read_buffer[:nbytes]
        self.got_bytes = True
        if len(buf) > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        """Take ``data`` as if it had been read (for tests that have no socket)."""
        for start in range(0, len(data), READ_SIZE):
            piece = data[start : start + READ_SIZE]
            self.read_buffer[: len(piece)] = piece
            self.buffer_updated(len(piece))

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self._closed()

    def _closed(self) -> None:
        self.eof = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # reading -------------------------------------------------------------------------
    @property
    def reusable(self) -> bool:
        """Open, idle, not expired, and with no unexpected bytes waiting."""
        t = self.transport
        return (
            not self.eof
            and t is not None
            and not t.is_closing()
            and not self.buf
            and time.monotonic() - self.idle_since < IDLE_TIMEOUT
        )

    def resume(self) -> None:
        """Read from the socket again if the buffer had filled up."""
        if self.paused:
            self.paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    async def fill(self) -> None:
        """Wait until more bytes arrive; raise ``_ConnectionClosed`` at EOF."""
        if self.eof:
            raise _ConnectionClosed(self.got_bytes)
        if self.paused:
            self.resume()
        fut = self.loop.create_future()
        self.waiter = fut
        try:
            await fut
        finally:
            self.waiter = None
        if not self.buf and self.eof:
            raise _ConnectionClosed(self.got_bytes)

    async def read_line(self) -> bytes:
        """One CRLF-terminated line, without the CRLF (at most ``MAX_LINE_BYTES``)."""
        start = 0
        while True:
            idx = self.buf.find(b"\r\n", start)
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + 2]
                return line
            if len(self.buf) > MAX_LINE_BYTES:
                raise httpx.RemoteProtocolError(
                    f"line longer than {MAX_LINE_BYTES} bytes in the chunked body"
                )
            start = max(len(self.buf) - 1, 0)
            await self.fill()

    async def read_head(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, reason and headers of the next final (non-1xx) response."""
        interim = 0
        while True:
            start = 0
            while True:
                idx = self.buf.find(b"\r\n\r\n", start)
                if idx >= 0:
                    break
                size = len(self.buf)
                if size > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError(
                        f"response head longer than {MAX_HEAD_BYTES} bytes"
                    )
                if size > 3:
                    start = size - 3  # where the next search may find the end of the head
                await self.fill()
            if idx > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
            head = bytes(self.buf[:idx])
            del self.buf[: idx + 4]
            lines = head.split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
            status = int(code)
            if 100 <= status < 200:
                interim += 1
                if interim > MAX_INTERIM_RESPONSES:
                    raise httpx.RemoteProtocolError(
                        f"more than {MAX_INTERIM_RESPONSES} interim responses"
                    )
                continue
            headers: list[tuple[bytes, bytes]] = []
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if sep:
                    headers.append((name.strip(), value.strip()))
            if version == b"HTTP/1.0":
                headers.append((b"connection", b"close"))  # no keep-alive unless asked
            return status, reason, headers


class _Reader(Protocol):
    """What ``RawStream`` reads a body through (the lean ``_Body`` or a wrapper)."""

    def __aiter__(self) -> _Reader: ...  # pragma: no cover

    async def __anext__(self) -> bytes: ...  # pragma: no cover

    async def read_all(self) -> bytes: ...  # pragma: no cover

    def drain_buffered(self) -> bool: ...  # pragma: no cover

    async def aclose(self) -> None: ...  # pragma: no cover


class _Body(httpx.AsyncByteStream):
    """The response body, read from the socket as the caller iterates it.

    An async iterator object rather than a generator: a streamed answer passes through it
    once per network read, and generators cost the event loop's bookkeeping per stream.
    At most ``limit`` bytes of body are accepted (``ResponseTooLarge`` past it): a
    ``Content-Length`` is checked before reading, chunks as they arrive.
    """

    def __init__(
        self,
        pool: LeanTransport,
        conn: _Connection,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
        limit: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.pool = pool
        self.conn = conn
        self.chunked = chunked
        self.remaining = None if chunked else length
        """Bytes left of a ``Content-Length`` body; ``None`` when chunked or read to EOF."""
        self.keep_alive = keep_alive and (chunked or length is not None)
        self.done = length == 0 and not chunked
        self.closed = False
        self.limit = limit
        self.received = 0
        """Body bytes handed out so far (chunked framing excluded)."""

    async def read_all(self) -> bytes:
        """The whole body; the common case (all of it already buffered) costs one slice."""
        conn = self.conn
        length = self.remaining
        if length is not None and len(conn.buf) >= length:
            body = bytes(conn.buf[:length])
            del conn.buf[:length]
            self.remaining = 0
            self.received += length
            self.done = True
            return body
        return b"".join([chunk async for chunk in self])

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if self.done:
            raise StopAsyncIteration
        try:
            if self.chunked:
                chunk = await self._next_chunk()
            elif self.remaining is not None:
                chunk = await self._next_sized()
            else:
                chunk = await self._next_until_eof()
        except _ConnectionClosed:
            lost = self.conn.lost
            if lost is None:
                raise httpx.RemoteProtocolError("server closed the connection mid-body") from None
            raise httpx.ReadError(f"connection lost mid-body: {lost!r}") from None
        if chunk is None:
            self.done = True
            raise StopAsyncIteration
        return chunk

    async def _next_chunk(self) -> bytes | None:
        conn = self.conn
        line = await conn.read_line()
        size = _CHUNK_SIZES.get(line)
        if size is None:
            size = _chunk_size(line)
        if size == 0:
            trailers = 0
            while line := await conn.read_line():  # trailers, then the blank line
                trailers += len(line) + 2
                if trailers > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError(
                        f"chunked trailers longer than {MAX_HEAD_BYTES} bytes"
                    )
            return None
        received = self.received + size
        if received > self.limit:
            raise ResponseTooLarge(self.limit)  # before buffering a chunk that is too big
        self.received = received
        buf = conn.buf
        while len(buf) < size + 2:
            await conn.fill()
        if buf[size] != 13 or buf[size + 1] != 10:  # CR LF
            raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
        chunk = bytes(buf[:size])
        del buf[: size + 2]
        return chunk

    async def _next_sized(self) -> bytes | None:
        remaining = self.remaining
        assert remaining is not None
        if remaining <= 0:
            return None
        conn = self.conn
        if not conn.buf:
            await conn.fill()
        take = min(remaining, len(conn.buf))
        chunk = bytes(conn.buf[:take])
        del conn.buf[:take]
        self.remaining = remaining - take  # never past the limit: checked from the header
        return chunk

    async def _next_until_eof(self) -> bytes | None:
        conn = self.conn
        while not conn.buf:
            if conn.eof:
                return None
            try:
                await conn.fill()
            except _ConnectionClosed:
                return None
        chunk = bytes(conn.buf)
        conn.buf.clear()
        received = self.received = self.received + len(chunk)
        if received > self.limit:
            raise ResponseTooLarge(self.limit)
        return chunk

    def drain_buffered(self) -> bool:
        """Discard the rest of the body if all of it has already arrived; True if so.

        Synchronous: after a stream's terminal event the end of the body is usually in the
        buffer already, and this finishes it without a trip through the event loop.
        """
        if self.done:
            return True
        buf = self.conn.buf
        if self.remaining is not None:
            if len(buf) < self.remaining:
                return False
            del buf[: self.remaining]
            self.remaining = 0
        elif self.chunked:
            pos = 0
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return False
                line = bytes(buf[pos:eol])
                size = _CHUNK_SIZES.get(line)
                if size is None:
                    try:
                        size = _chunk_size(line)
                    except httpx.RemoteProtocolError:
                        return False  # the slow path reports it
                if size == 0:
                    if buf[eol + 2 : eol + 4] != b"\r\n":
                        return False  # trailers, or not all here yet: the slow path
                    del buf[: eol + 4]
                    break
                pos = eol + 2 + size + 2
                if pos > len(buf) or buf[pos - 2 : pos] != b"\r\n":
                    return False
        else:
            return False  # read to EOF: never reusable
        self.done = True
        return True

    async def aclose(self) -> None:
        """Hand the socket back for reuse if the body was read to its end, else close it."""
        if self.closed:
            return
        self.closed = True
        if self.done and self.keep_alive:
            self.pool._release(self.conn)
        else:
            self.pool._discard(self.conn)


class _Decoded(httpx.AsyncByteStream):
    """A body decoded (``gzip``/``deflate``) as it is read, within the size limit."""

    def __init__(self, body: _Reader, inflater: _Inflater) -> None:
        self.body = body
        self.inflater = inflater
        self.finished = False

    def __aiter__(self) -> _Decoded:
        return self

    async def __anext__(self) -> bytes:
        while True:
            try:
                raw = await self.body.__anext__()
            except StopAsyncIteration:
                if not self.finished:
                    self.finished = True
                    self.inflater.finish()
                raise
            out = self.inflater.decode(raw)
            if out:
                return out

    async def read_all(self) -> bytes:
        """The whole (rest of the) decoded body."""
        return b"".join([chunk async for chunk in self])

    def drain_buffered(self) -> bool:
        """Discard the rest of the encoded body if it has all arrived (see ``_Body``)."""
        return self.body.drain_buffered()

    async def aclose(self) -> None:
        """Close the underlying body."""
        await self.body.aclose()


class _HttpxBody:
    """The body of an ``httpx.Response``, read raw and decoded here, within the size limit.

    A response whose content was read already (a mock answer built from bytes) is handed
    out as it is, after the size check.
    """

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.received = 0
        self.read_before = False
        """The response's content had been read before (it is handed out unchanged)."""
        self._chunks: AsyncIterator[bytes] | None = None
        self._inflater: _Inflater | None = None
        self._finished = False

    def __aiter__(self) -> _HttpxBody:
        return self

    def _open(self) -> AsyncIterator[bytes]:
        response = self.response
        try:
            content = response.content
        except httpx.ResponseNotRead:
            encoding = response.headers.get("content-encoding")
            if encoding:
                self._inflater = _inflater(encoding, self.limit)
            return response.aiter_raw()
        self.read_before = True
        return _once(content)

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = self._open()
        while True:
            try:
                raw = await chunks.__anext__()
            except StopAsyncIteration:
                if self._inflater is not None and not self._finished:
                    self._finished = True
                    self._inflater.finish()
                raise
            self.received += len(raw)
            if self.received > self.limit:
                raise ResponseTooLarge(self.limit)
            if self._inflater is not None:
                raw = self._inflater.decode(raw)
                if not raw:
                    continue
            return raw

    async def read_all(self) -> bytes:
        """The whole (rest of the) body."""
        return b"".join([chunk async for chunk in self])

    def drain_buffered(self) -> bool:
        """Never: httpx's buffers are not ours to look into."""
        return False

    async def aclose(self) -> None:
        """Close the response (and the raw iterator, if it was started)."""
        chunks = self._chunks
        if chunks is not None and hasattr(chunks, "aclose"):
            await chunks.aclose()
        await self.response.aclose()


async def _once(content: bytes) -> AsyncIterator[bytes]:
    if content:
        yield content


class RawStream:
    """A streamed response without httpx's decoder layers, its body read within its limit.

    The subset of ``httpx.Response`` that the streaming code uses. ``headers`` has
    lower-case names (or is an ``httpx.Headers``). Iterate ``aiter_bytes()``; always
    ``aclose()``.
    """

    def __init__(self, status_code: int, headers: Mapping[str, str], body: _Reader) -> None:
        self.status_code = status_code
        self.headers = headers
        self._body = body

    async def aread(self) -> bytes:
        """The whole (rest of the) body."""
        return await self._body.read_all()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        return self._body

    def drain_buffered(self) -> bool:
        """Finish the body without waiting if the rest of it has arrived (see ``_Body``)."""
        return self._body.drain_buffered()

    async def aclose(self) -> None:
        """Release the connection (kept alive only if the body was read to its end)."""
        await self._body.aclose()


def bounded_stream(response: httpx.Response, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> RawStream:
    """A ``RawStream`` over a streaming ``httpx.Response`` that enforces ``limit``.

    The body is read raw (``aiter_raw``) and decoded here, so a compressed body cannot
    expand past the limit either.
    """
    return RawStream(response.status_code, response.headers, _HttpxBody(response, limit))


async def _read_bounded(response: httpx.Response, limit: int) -> httpx.Response:
    """``response`` with its body read within ``limit`` (a new response if it was decoded)."""
    body = _HttpxBody(response, limit)
    try:
        content = await body.read_all()
    finally:
        await body.aclose()
    if body.read_before:
        return response
    headers = [
        (name, value)
        for name, value in response.headers.raw
        if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
    ]
    read = httpx.Response(
        response.status_code, headers=headers, content=content, extensions=response.extensions
    )
    read.request = response.request
    return read


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with keep-alive reuse and no pool limits (the runner limits).

    Bound to the event loop it is first used in; ``ClientCache`` makes one per loop.
    """

    def __init__(self, *, connect_timeout: float = 10.0) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._connect_timeout = connect_timeout
        self._closed = False
        self._read_buffer = _read_buffer()
        self.connections_opened = 0
        """How many sockets this transport has opened (for tests and benchmarks)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the body is read at once unless the request asks to stream.

        A request whose extensions set ``STREAM_EXTENSION`` gets a response that streams
        its body from the socket. A ``gzip``/``deflate`` body is decoded here (within the
        size limit), so the response carries no ``Content-Encoding``.
        """
        streaming = bool(request.extensions.get(STREAM_EXTENSION))
        limit = request.extensions.get(MAX_RESPONSE_BYTES_EXTENSION) or DEFAULT_MAX_RESPONSE_BYTES
        status, reason, headers, body = await self._roundtrip(request, streaming, limit)
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": reason}
        encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), None)
        if encoding is not None:
            headers = [(k, v) for k, v in headers if k.lower() not in _ENCODING_HEADERS]
        if isinstance(body, _Body):
            stream: _Body | _Decoded = body
            if encoding is not None:
                stream = await _decoded_stream(body, encoding, limit)
            return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)
        if encoding is not None:
            body = _decode_whole(body, encoding, limit)
        return httpx.Response(status, headers=headers, content=body, extensions=extensions)

    async def send_raw(self, request: httpx.Request) -> RawResponse:
        """Send ``request`` and return a ``RawResponse`` with the whole body read.

        The fast path for API calls: it skips building an ``httpx.Response`` (headers model,
        decoder pipeline), which costs more CPU than the rest of a call. A ``gzip`` or
        ``deflate`` body is decoded here, within the request's size limit.
        """
        limit = request.extensions.get(MAX_RESPONSE_BYTES_EXTENSION) or DEFAULT_MAX_RESPONSE_BYTES
        status, reason, headers, body = await self._roundtrip(request, False, limit)
        assert isinstance(body, bytes)
        names = {name.lower(): value for name, value in headers}
        if b"content-encoding" in names:
            body = _decode_whole(body, names[b"content-encoding"], limit)
            for name in _ENCODING_HEADERS:
                names.pop(name, None)
        return RawResponse(
            status, {k.decode("latin-1"): v.decode("latin-1") for k, v in names.items()}, body
        )

    async def send_stream_raw(self, request: httpx.Request) -> RawStream:
        """Send ``request`` and return a ``RawStream`` whose body is read as it is iterated.

        A ``gzip`` or ``deflate`` body is decoded as it is read, within the size limit.
        """
        limit = request.extensions.get(MAX_RESPONSE_BYTES_EXTENSION) or DEFAULT_MAX_RESPONSE_BYTES
        status, reason, headers, body = await self._roundtrip(request, True, limit)
        assert isinstance(body, _Body)
        names = {name.lower(): value for name, value in headers}
        reader: _Body | _Decoded = body
        if b"content-encoding" in names:
            reader = await _decoded_stream(body, names[b"content-encoding"], limit)
            for name in _ENCODING_HEADERS:
                names.pop(name, None)
        decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in names.items()}
        return RawStream(status, decoded, reader)

    async def _roundtrip(
        self, request: httpx.Request, streaming: bool, limit: int = DEFAULT_MAX_RESPONSE_BYTES
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes | _Body]:
        if self._closed:
            raise RuntimeError("LeanTransport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, url.host, port)
        head = self._head(request)
        body = (
            request.content
            if isinstance(request.stream, httpx.ByteStream)
            else await request.aread()
        )
        payload = head + body
        for _ in range(2):
            conn = await self._acquire(key)
            try:
                return await self._exchange(conn, payload, streaming, limit)
            except _ConnectionClosed as exc:
                self._discard(conn)
                if conn.reused and not exc.got_bytes:
                    continue  # a stale keep-alive socket: send once more on a new one
                raise httpx.RemoteProtocolError(
                    "server disconnected without sending a complete response"
                ) from None
            except BaseException:
                # Cancelled (race loser, timeout) or failed: abort the socket so the
                # server sees the client go away.
                self._discard(conn)
                raise
        raise httpx.RemoteProtocolError("server disconnected without sending a response")

    @staticmethod
    def _head(request: httpx.Request) -> bytes:
        url = request.url
        lines = [request.method.encode("ascii") + b" " + url.raw_path + b" HTTP/1.1"]
        lines.extend(name + b": " + value for name, value in request.headers.raw)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(
        self, conn: _Connection, payload: bytes, streaming: bool, limit: int
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes | _Body]:
        assert conn.transport is not None
        conn.transport.write(payload)
        status, reason, raw_headers = await conn.read_head()
        declared: bytes | None = None
        lengths: list[bytes] | None = None  # only when Content-Length comes more than once
        coding: bytes | None = None
        keep_alive = True
        for name, value in raw_headers:
            lname = name.lower()
            if lname == b"content-length":
                if declared is None:
                    declared = value
                else:
                    lengths = [declared, value] if lengths is None else [*lengths, value]
            elif lname == b"transfer-encoding":
                coding = value
            elif lname == b"connection":
                keep_alive = keep_alive and b"close" not in value.lower()
        length: int | None = None
        chunked = coding == b"chunked" or (
            coding is not None and coding.lower().rstrip(b" \t").endswith(b"chunked")
        )
        if coding is not None:
            # RFC 9112 §6.3: Transfer-Encoding wins over Content-Length; a body framed by
            # another coding ends when the connection does. Either way, do not reuse it.
            if declared is not None or not chunked:
                keep_alive = False
        elif status == 204 or status == 304:
            length = 0  # no body, whatever the headers say
        elif declared is not None:
            length = -1
            if lengths is None and declared.isdigit():
                try:
                    length = int(declared)  # the usual case, without a call
                except ValueError:  # more digits than int() converts
                    pass
            if length < 0:
                length = parse_content_length(lengths or [declared])
            if length > limit:
                raise ResponseTooLarge(limit)
        stream = _Body(self, conn, length, chunked, keep_alive, limit)
        if streaming:
            return status, reason, raw_headers, stream
        try:
            content = await stream.read_all()
        finally:
            await stream.aclose()  # hands the socket back to the pool
        return status, reason, raw_headers, content

    async def _acquire(self, key: tuple[str, str, int]) -> _Connection:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable:
                conn.reused = True
                conn.got_bytes = False  # bytes of this request's answer, not the last one's
                return conn
            self._discard(conn)
        loop = asyncio.get_running_loop()
        scheme, host, port = key
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, key, self._read_buffer),
                    host,
                    port,
                    ssl=_get_ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        self.connections_opened += 1
        return conn

    def _release(self, conn: _Connection) -> None:
        if self._closed:
            self._discard(conn)
            return
        if conn.paused:
            conn.resume()
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)

    @staticmethod
    def _discard(conn: _Connection) -> None:
        if conn.transport is not None:
            try:
                conn.transport.abort()
            except RuntimeError:  # its loop is already closed; nothing more can be done
                pass

    def close_now(self) -> None:
        """Close every idle socket without awaiting (safe when the loop is gone)."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                self._discard(conn)
        self._idle.clear()

    async def aclose(self) -> None:
        """Close every idle socket."""
        self.close_now()


_ENCODING_HEADERS = (b"content-encoding", b"content-length")
"""Headers that no longer describe a body once it has been decoded."""


def _decode_whole(body: bytes, encoding: bytes, limit: int) -> bytes:
    """A whole body decoded per its ``Content-Encoding``, within ``limit``."""
    inflater = _inflater(encoding.decode("latin-1"), limit)
    if inflater is None:
        return body
    out = inflater.decode(body)
    inflater.finish()
    return out


async def _decoded_stream(body: _Body, encoding: bytes, limit: int) -> _Body | _Decoded:
    """``body`` decoded as it is read; the socket is closed if the encoding is refused."""
    try:
        inflater = _inflater(encoding.decode("latin-1"), limit)
    except BaseException:
        await body.aclose()
        raise
    return body if inflater is None else _Decoded(body, inflater)


def _proxy_configured() -> bool:
    return any(k in ("http", "https", "all") for k in urllib.request.getproxies_environment())


def make_transport(kind: TransportKind = "auto") -> httpx.AsyncBaseTransport | None:
    """The transport for ``kind``: ``lean``, ``httpx`` (None: httpx's default), or ``auto``."""
    if kind == "httpx" or (kind == "auto" and _proxy_configured()):
        return None
    if kind not in ("auto", "lean"):
        raise ValueError(f"unknown transport {kind!r}; expected auto, lean or httpx")
    return LeanTransport()


async def _close_at_loop_shutdown(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """An async generator whose ``finally`` closes ``client``.

    Event loops close every live async generator when they shut down
    (``loop.shutdown_asyncgens()``, which ``asyncio.run`` and pytest-asyncio call) while the
    loop still runs, so this is where a loop's keep-alive sockets get closed cleanly.
    """
    try:
        yield
    finally:
        await _aclose_client(client)


async def _aclose_client(client: httpx.AsyncClient) -> None:
    transport = client._transport  # noqa: SLF001 - our own transport
    if isinstance(transport, LeanTransport):
        transport.close_now()
    else:
        await client.aclose()


_closing: set[asyncio.Future[None]] = set()


def _close_soon(client: httpx.AsyncClient) -> None:
    task = asyncio.ensure_future(_aclose_client(client))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _close_clients(clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient]) -> None:
    for loop, client in list(clients.items()):
        transport = client._transport  # noqa: SLF001
        if loop.is_closed():
            if isinstance(transport, LeanTransport):
                transport.close_now()
            continue
        try:
            loop.call_soon_threadsafe(_close_soon, client)
        except RuntimeError:  # closed in the meantime
            pass
    clients.clear()


Send = Callable[[httpx.Request], Awaitable["RawResponse | httpx.Response"]]


async def _send_lean(transport: LeanTransport, request: httpx.Request) -> RawResponse:
    return await transport.send_raw(request)


async def _send_direct(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> httpx.Response:
    # Straight to the transport: the client layer only adds cookies, auth flows, redirects
    # and event hooks, none of which an API call uses, at ~0.1 ms of CPU per request.
    response = await transport.handle_async_request(request)
    response.request = request
    return await _read_bounded(response, _limit_of(request))


async def _send_client(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    # httpx's own transport (proxies): through the client, the body read within the limit.
    response = await client.send(request, stream=True)
    return await _read_bounded(response, _limit_of(request))


SendStream = Callable[[httpx.Request], Awaitable["RawStream | httpx.Response"]]
"""Sends a request and returns the response with its body *not* read: iterate
``response.aiter_bytes()`` / ``aiter_lines()`` and always ``await response.aclose()``."""


async def _send_stream_direct(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> RawStream:
    request.extensions[STREAM_EXTENSION] = True
    response = await transport.handle_async_request(request)
    response.request = request
    return bounded_stream(response, _limit_of(request))


async def _send_stream_client(client: httpx.AsyncClient, request: httpx.Request) -> RawStream:
    response = await client.send(request, stream=True)
    return bounded_stream(response, _limit_of(request))


class _LoopClient:
    """The client of one event loop and the ``send`` that the providers use."""

    def __init__(
        self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.client = client
        if transport is None:  # httpx's own transport (proxies): go through the client
            self.send: Send = functools.partial(_send_client, client)
            self.send_stream: SendStream = functools.partial(_send_stream_client, client)
        elif isinstance(transport, LeanTransport):
            self.send = functools.partial(_send_lean, transport)
            self.send_stream = transport.send_stream_raw
        else:
            self.send = functools.partial(_send_direct, transport)
            self.send_stream = functools.partial(_send_stream_direct, transport)
        self.sentinel = _close_at_loop_shutdown(client)
        try:  # run it to its ``yield``; this registers it with the loop
            self.sentinel.__anext__().send(None)  # type: ignore[attr-defined]
        except StopIteration:
            pass


class ClientCache:
    """One ``httpx.AsyncClient`` per running event loop, created inside that loop.

    ``transport`` is either a kind (``auto``/``lean``/``httpx``) or a ready transport
    instance (tests pass ``httpx.MockTransport``); an instance is shared by every loop.
    ``sender()`` gives the running loop's ``send``: straight to the transport for the lean
    transport and for injected ones, through ``AsyncClient.send`` for httpx's own (which
    applies the environment's proxy settings).
    """

    def __init__(self, transport: TransportKind | httpx.AsyncBaseTransport = "auto") -> None:
        self._transport = transport
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        # When the owner is garbage collected, close the sockets it leaves behind.
        weakref.finalize(self, _close_clients, self._clients)

    def _entry(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            self._prune()
            if isinstance(self._transport, str):
                transport = make_transport(self._transport)
            else:
                transport = self._transport
            client = httpx.AsyncClient(
                transport=transport,
                timeout=None,  # the runner bounds each attempt with asyncio.timeout
                trust_env=transport is None,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            )
            entry = self._loops[loop] = _LoopClient(client, transport)
            self._clients[loop] = client
        return entry

    def get(self) -> httpx.AsyncClient:
        """The client of the running loop (made on first use; closed loops' clients dropped)."""
        return self._entry().client

    def sender(self) -> Send:
        """The running loop's ``send``: returns the response with its body read."""
        return self._entry().send

    def stream_sender(self) -> SendStream:
        """The running loop's streaming ``send``: the body is read as the caller iterates."""
        return self._entry().send_stream

    def _prune(self) -> None:
        for loop in list(self._loops):
            if loop.is_closed():
                del self._loops[loop]
                client = self._clients.pop(loop)
                transport = client._transport  # noqa: SLF001 - our own transport
                if isinstance(transport, LeanTransport):
                    transport.close_now()

    async def aclose(self) -> None:
        """Close the running loop's client."""
        loop = asyncio.get_running_loop()
        self._loops.pop(loop, None)
        client = self._clients.pop(loop, None)
        if client is not None and isinstance(self._transport, str):
            await client.aclose()

    def close_all(self) -> None:
        """Drop every client; close the sockets of lean transports (no awaiting needed)."""
        _close_clients(self._clients)
        self._loops.clear()

    @staticmethod
    def env_transport() -> TransportKind:
        """The transport kind from ``HARNESS_TRANSPORT``, default ``auto``."""
        value = os.environ.get("HARNESS_TRANSPORT", "auto")
        if value not in ("auto", "lean", "httpx"):
            raise ValueError(f"HARNESS_TRANSPORT={value!r}: expected auto, lean or httpx")
        return value  # type: ignore[return-value]
