"""HTTP plumbing: a lean HTTP/1.1 transport under the httpx API, and the per-loop client.

Why a transport of our own: httpx's default transport (httpcore) spends about 10 ms of CPU
per request when its pool holds 100 busy connections, because its pool bookkeeping grows
with the pool; the runner already bounds concurrency, so the transport needs no pool limits,
only keep-alive reuse. ``LeanTransport`` is an ``httpx.AsyncBaseTransport`` on asyncio's
``Protocol`` API: one socket per in-flight request, idle sockets kept per origin and reused,
responses streamed to httpx as ``httpx.Response`` objects. Everything above it (requests,
responses, decoding, ``respx``-style ``MockTransport`` in tests) is plain httpx.

Cancelling a request (race losers, timeouts) aborts its socket at once, so the server sees
the client disconnect. A request on a reused keep-alive socket that the server had already
closed is sent again once on a fresh socket, as httpcore and urllib3 do.

When a proxy is configured in the environment (``HTTPS_PROXY`` and friends), ``auto`` picks
httpx's own transport, which knows proxies.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

__all__ = [
    "STREAM_EXTENSION",
    "ClientCache",
    "LeanTransport",
    "RawResponse",
    "TransportKind",
    "make_transport",
]

STREAM_EXTENSION = "harness.stream"
"""A request extension: when true, the lean transport streams the body instead of reading it."""

TransportKind = Literal["auto", "lean", "httpx"]

IDLE_TIMEOUT = 15.0
"""Seconds an idle keep-alive socket is kept before it is closed rather than reused."""

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
    content: bytes


class _ConnectionClosed(Exception):
    """The peer closed the socket; ``got_bytes`` says whether any response had arrived."""

    def __init__(self, got_bytes: bool) -> None:
        super().__init__("server closed the connection")
        self.got_bytes = got_bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 socket: a byte buffer filled by the event loop, read by one request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int]) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.reused = False

    # asyncio.Protocol callbacks ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.got_bytes = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
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

    async def fill(self) -> None:
        """Wait until more bytes arrive; raise ``_ConnectionClosed`` at EOF."""
        if self.eof:
            raise _ConnectionClosed(self.got_bytes)
        fut = self.loop.create_future()
        self.waiter = fut
        try:
            await fut
        finally:
            self.waiter = None
        if not self.buf and self.eof:
            raise _ConnectionClosed(self.got_bytes)

    async def read_line(self) -> bytes:
        """One CRLF-terminated line, without the CRLF."""
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + 2]
                return line
            await self.fill()

    async def read_head(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, reason and headers of the next final (non-1xx) response."""
        while True:
            while True:
                idx = self.buf.find(b"\r\n\r\n")
                if idx >= 0:
                    break
                await self.fill()
            head = bytes(self.buf[:idx])
            del self.buf[: idx + 4]
            lines = head.split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
            status = int(code)
            if 100 <= status < 200:
                continue
            headers: list[tuple[bytes, bytes]] = []
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if sep:
                    headers.append((name.strip(), value.strip()))
            if version == b"HTTP/1.0":
                headers.append((b"connection", b"close"))  # no keep-alive unless asked
            return status, reason, headers


class _Body(httpx.AsyncByteStream):
    """The response body, read from the socket as the caller iterates it.

    An async iterator object rather than a generator: a streamed answer passes through it
    once per network read, and generators cost the event loop's bookkeeping per stream.
    """

    def __init__(
        self,
        pool: LeanTransport,
        conn: _Connection,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.pool = pool
        self.conn = conn
        self.chunked = chunked
        self.remaining = None if chunked else length
        """Bytes left of a ``Content-Length`` body; ``None`` when chunked or read to EOF."""
        self.keep_alive = keep_alive and (chunked or length is not None)
        self.done = length == 0 and not chunked
        self.closed = False

    async def read_all(self) -> bytes:
        """The whole body; the common case (all of it already buffered) costs one slice."""
        conn = self.conn
        length = self.remaining
        if length is not None and len(conn.buf) >= length:
            body = bytes(conn.buf[:length])
            del conn.buf[:length]
            self.remaining = 0
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
            raise httpx.RemoteProtocolError("server closed the connection mid-body") from None
        if chunk is None:
            self.done = True
            raise StopAsyncIteration
        return chunk

    async def _next_chunk(self) -> bytes | None:
        conn = self.conn
        size_line = await conn.read_line()
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while await conn.read_line():  # trailers, then the blank line
                pass
            return None
        while len(conn.buf) < size + 2:
            await conn.fill()
        chunk = bytes(conn.buf[:size])
        del conn.buf[: size + 2]
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
        self.remaining = remaining - take
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
                try:
                    size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return False
                if size == 0:
                    if buf[eol + 2 : eol + 4] != b"\r\n":
                        return False  # trailers, or not all here yet: the slow path
                    del buf[: eol + 4]
                    break
                pos = eol + 2 + size + 2
                if pos > len(buf):
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


class RawStream:
    """A streamed response from the lean transport, without httpx's decoder layers.

    The subset of ``httpx.Response`` that the streaming code uses. ``headers`` has
    lower-case names. Iterate ``aiter_bytes()``; always ``aclose()``.
    """

    def __init__(self, status_code: int, headers: Mapping[str, str], body: _Body) -> None:
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


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with keep-alive reuse and no pool limits (the runner limits).

    Bound to the event loop it is first used in; ``ClientCache`` makes one per loop.
    """

    def __init__(self, *, connect_timeout: float = 10.0) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._connect_timeout = connect_timeout
        self._closed = False
        self.connections_opened = 0
        """How many sockets this transport has opened (for tests and benchmarks)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the body is read at once unless the request asks to stream.

        A request whose extensions set ``STREAM_EXTENSION`` gets a response that streams
        its body from the socket.
        """
        streaming = bool(request.extensions.get(STREAM_EXTENSION))
        status, reason, headers, body = await self._roundtrip(request, streaming)
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": reason}
        if isinstance(body, _Body):
            return httpx.Response(status, headers=headers, stream=body, extensions=extensions)
        return httpx.Response(status, headers=headers, content=body, extensions=extensions)

    async def send_raw(self, request: httpx.Request) -> RawResponse | httpx.Response:
        """Send ``request`` and return a ``RawResponse`` with the whole body read.

        The fast path for API calls: it skips building an ``httpx.Response`` (headers model,
        decoder pipeline), which costs more CPU than the rest of a call. A compressed body is
        the exception: it comes back as an ``httpx.Response``, which decodes it.
        """
        status, reason, headers, body = await self._roundtrip(request, False)
        assert isinstance(body, bytes)
        names = {name.lower(): value for name, value in headers}
        if b"content-encoding" in names:
            return httpx.Response(
                status,
                headers=headers,
                content=body,
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
            )
        return RawResponse(
            status, {k.decode("latin-1"): v.decode("latin-1") for k, v in names.items()}, body
        )

    async def send_stream_raw(self, request: httpx.Request) -> RawStream | httpx.Response:
        """Send ``request`` and return a ``RawStream`` whose body is read as it is iterated.

        A compressed body comes back as a streaming ``httpx.Response``, which decodes it.
        """
        status, reason, headers, body = await self._roundtrip(request, True)
        assert isinstance(body, _Body)
        names = {name.lower(): value for name, value in headers}
        if b"content-encoding" in names:
            extensions = {"http_version": b"HTTP/1.1", "reason_phrase": reason}
            response = httpx.Response(status, headers=headers, stream=body, extensions=extensions)
            response.request = request
            return response
        decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in names.items()}
        return RawStream(status, decoded, body)

    async def _roundtrip(
        self, request: httpx.Request, streaming: bool
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
                return await self._exchange(conn, payload, streaming)
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
        self, conn: _Connection, payload: bytes, streaming: bool
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes | _Body]:
        assert conn.transport is not None
        conn.transport.write(payload)
        status, reason, raw_headers = await conn.read_head()
        length: int | None = None
        chunked = False
        keep_alive = True
        for name, value in raw_headers:
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                keep_alive = keep_alive and b"close" not in value.lower()
        if chunked:
            length = None
        stream = _Body(self, conn, length, chunked, keep_alive)
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
                return conn
            self._discard(conn)
        loop = asyncio.get_running_loop()
        scheme, host, port = key
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, key),
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


async def _send_lean(
    transport: LeanTransport, request: httpx.Request
) -> RawResponse | httpx.Response:
    return await transport.send_raw(request)


async def _send_direct(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> httpx.Response:
    # Straight to the transport: the client layer only adds cookies, auth flows, redirects
    # and event hooks, none of which an API call uses, at ~0.1 ms of CPU per request.
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


SendStream = Callable[[httpx.Request], Awaitable["RawStream | httpx.Response"]]
"""Sends a request and returns the response with its body *not* read: iterate
``response.aiter_bytes()`` / ``aiter_lines()`` and always ``await response.aclose()``."""


async def _send_stream_direct(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> httpx.Response:
    request.extensions[STREAM_EXTENSION] = True
    response = await transport.handle_async_request(request)
    response.request = request
    return response


class _LoopClient:
    """The client of one event loop and the ``send`` that the providers use."""

    def __init__(
        self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.client = client
        if transport is None:  # httpx's own transport (proxies): go through the client
            self.send: Send = client.send
            self.send_stream: SendStream = functools.partial(client.send, stream=True)
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
