"""A misbehaving HTTP/1.1 server for tests: every byte on the wire under the test's control.

``FaultServer`` runs asyncio on 127.0.0.1 in a background thread (the ``fault_server``
fixture starts one per test session, like ``tests/helpers/local_server.py``, but writing raw bytes).
Each request picks its fault by the model name in its JSON body (``openai/reset-body`` sends
``"model": "reset-body"``) or by its path (``{url}/fault/reset-body/v1/chat/completions``);
``"stream": true`` in the body selects the streaming variant of the fault (server-sent
events in OpenAI's format) where there is one. An unknown name answers normally (``ok``).

``FAULTS`` lists every fault with what it does; the handlers never raise, and a client that
goes away ends any endless or hanging one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.helpers.local_server import read_request

ANSWER = "Hello world"
TRICKLE_INTERVAL = 0.005
"""Seconds between the bytes of a trickling answer."""
BOMB_BYTES = 64 * 1024 * 1024
"""Decompressed size of the gzip bomb (twice the default max_response_bytes)."""


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def stream(self) -> bool:
        return self.json.get("stream") is True

    @property
    def fault(self) -> str:
        parts = self.path.split("/")
        if len(parts) > 2 and parts[1] == "fault":
            return parts[2]
        return str(self.json.get("model") or "ok")


# --- bodies ---------------------------------------------------------------------------------


def chat_body(content: str = ANSWER) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "fault-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def event(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def chunk(content: str | None = None, *, finish: str | None = None, role: bool = False) -> bytes:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    return event(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": "fault-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


USAGE_EVENT = event(
    {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "fault-model",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
)
OPENING = chunk("", role=True) + chunk("Hello") + chunk(" world")
FINISH = chunk(finish="stop")
SSE_OK = OPENING + FINISH + USAGE_EVENT + b"data: [DONE]\n\n"

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title>\n"
    b"<style>body { width: 35em; }</style></head>\n<body>\n<h1>Welcome to nginx!</h1>\n"
    b"<p>If you see this page, the nginx web server is successfully installed.</p>\n"
    b"</body>\n</html>\n"
)
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
PLAIN_ERROR = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"

_bomb: bytes | None = None
_bomb_lock = threading.Lock()


def gzip_bomb() -> bytes:
    """``BOMB_BYTES`` zero bytes, gzipped (about 64 KiB), made once."""
    global _bomb
    with _bomb_lock:
        if _bomb is None:
            z = zlib.compressobj(6, zlib.DEFLATED, 31)
            block = bytes(1 << 20)
            _bomb = b"".join(z.compress(block) for _ in range(BOMB_BYTES >> 20)) + z.flush()
        return _bomb


def gzip(data: bytes) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    return z.compress(data) + z.flush()


# --- writing ----------------------------------------------------------------------------------


def head(status: int = 200, reason: str = "OK", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sized(
    body: bytes, status: int = 200, ctype: str = "application/json", *extra: tuple[str, str]
) -> bytes:
    reason = {200: "OK", 502: "Bad Gateway"}.get(status, "X")
    return (
        head(status, reason, [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra])
        + body
    )


def chunked_head(ctype: str, *extra: tuple[str, str]) -> bytes:
    return head(200, "OK", [("Content-Type", ctype), ("Transfer-Encoding", "chunked"), *extra])


def framed(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class Conn:
    """The server's side of one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> bool:
        """Write ``data``; False once the client has gone."""
        if self.writer.transport.is_closing():
            return False
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def flushed(self) -> None:
        """Wait until everything written has left for the socket."""
        transport = self.writer.transport
        for _ in range(200):
            if transport.is_closing() or transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.005)  # and give the client a moment to read it

    async def reset(self) -> None:
        """Abort the connection with a TCP reset (RST), after what was written."""
        await self.flushed()
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()

    async def close(self) -> None:
        """Close the connection cleanly (FIN), after what was written."""
        await self.flushed()
        self.writer.close()

    async def until_gone(self) -> None:
        """Wait until the client closes its side."""
        try:
            while await self.reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass

    async def trickle(self, data: bytes) -> None:
        """Send ``data`` forever, one byte at a time, until the client goes away."""
        i = 0
        while await self.send(data[i % len(data) : i % len(data) + 1]):
            i += 1
            await asyncio.sleep(TRICKLE_INTERVAL)


# --- the faults -------------------------------------------------------------------------------

Handler = Callable[[Conn, Request], Awaitable[bool]]
"""Answers one request; True keeps the connection for the next one."""


async def ok(conn: Conn, req: Request) -> bool:
    if req.stream:
        return await conn.send(chunked_head("text/event-stream") + framed(SSE_OK) + LAST_CHUNK)
    return await conn.send(sized(json.dumps(chat_body()).encode()))


async def reset_headers(conn: Conn, req: Request) -> bool:
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: applic")
    await conn.reset()
    return False


async def reset_body(conn: Conn, req: Request) -> bool:
    if req.stream:  # one event, then a reset: before any finish_reason
        await conn.send(chunked_head("text/event-stream") + framed(OPENING))
    else:
        body = json.dumps(chat_body("x" * 2000)).encode()
        await conn.send(sized(body)[: len(body) // 2])
    await conn.reset()
    return False


async def early_close(conn: Conn, req: Request) -> bool:
    if req.stream:  # events, then a clean FIN in the middle of the chunked body
        await conn.send(chunked_head("text/event-stream") + framed(OPENING))
    else:
        body = json.dumps(chat_body()).encode()
        await conn.send(sized(body)[:-10])
    await conn.close()
    return False


def _bad_chunks(size_line: bytes, tail: bytes = b"") -> Handler:
    async def handler(conn: Conn, req: Request) -> bool:
        ctype = "text/event-stream" if req.stream else "application/json"
        first = chunk("", role=True) if req.stream else b'{"id": '
        await conn.send(chunked_head(ctype) + framed(first) + size_line + b"\r\n" + tail)
        await conn.close()
        return False

    return handler


def _content_length(*values: str) -> Handler:
    async def handler(conn: Conn, req: Request) -> bool:
        body = SSE_OK if req.stream else json.dumps(chat_body()).encode()
        ctype = "text/event-stream" if req.stream else "application/json"
        lengths = [("Content-Length", v) for v in values]
        await conn.send(head(200, "OK", [("Content-Type", ctype), *lengths]) + body)
        await conn.close()
        return False

    return handler


async def endless(conn: Conn, req: Request) -> bool:
    """A chunked body that never ends, as fast as the client reads."""
    if req.stream:
        await conn.send(chunked_head("text/event-stream") + framed(chunk("", role=True)))
        piece = framed(chunk("x" * 16000) * 4)
    else:
        await conn.send(chunked_head("application/json") + framed(b'{"id": "'))
        piece = framed(b"x" * 65536)
    while await conn.send(piece):
        pass
    return False


async def endless_eof(conn: Conn, req: Request) -> bool:
    """A body without length that never ends (read until the server closes: never)."""
    ctype = "text/event-stream" if req.stream else "application/json"
    await conn.send(head(200, "OK", [("Content-Type", ctype), ("Connection", "close")]))
    piece = chunk("x" * 16000) * 4 if req.stream else b"x" * 65536
    while await conn.send(piece):
        pass
    return False


async def huge_length(conn: Conn, req: Request) -> bool:
    """A ``Content-Length`` of a terabyte, then data until the client gives up."""
    await conn.send(
        head(200, "OK", [("Content-Type", "application/json"), ("Content-Length", str(10**12))])
    )
    while await conn.send(b"x" * 65536):
        pass
    return False


async def gzip_bomb_fault(conn: Conn, req: Request) -> bool:
    ctype = "text/event-stream" if req.stream else "application/json"
    bomb = gzip_bomb()
    await conn.send(
        head(
            200,
            "OK",
            [
                ("Content-Type", ctype),
                ("Content-Encoding", "gzip"),
                ("Content-Length", str(len(bomb))),
            ],
        )
        + bomb
    )
    await conn.until_gone()
    return False


async def gzip_ok(conn: Conn, req: Request) -> bool:
    """A well-formed gzip answer (never asked for, but decoded)."""
    body = gzip(SSE_OK) if req.stream else gzip(json.dumps(chat_body()).encode())
    ctype = "text/event-stream" if req.stream else "application/json"
    return await conn.send(sized(body, 200, ctype, ("Content-Encoding", "gzip")))


async def brotli(conn: Conn, req: Request) -> bool:
    """A content coding we do not decode."""
    return await conn.send(
        sized(b"\x1b\x03\x00\xf8\x0f", 200, "application/json", ("Content-Encoding", "br"))
    )


async def hang(conn: Conn, req: Request) -> bool:
    await conn.until_gone()
    return False


async def trickle(conn: Conn, req: Request) -> bool:
    """Headers, then one byte every few milliseconds, forever (never a whole event)."""
    if req.stream:
        await conn.send(
            head(200, "OK", [("Content-Type", "text/event-stream"), ("Connection", "close")])
        )
        await conn.trickle(b": still thinking... ")
    else:
        await conn.send(
            head(200, "OK", [("Content-Type", "application/json"), ("Content-Length", "100000")])
        )
        await conn.trickle(b'{"id": "x", "pad": "' + b"x" * 64)
    return False


async def trickle_head(conn: Conn, req: Request) -> bool:
    """A status line, then header bytes one at a time, forever."""
    await conn.send(b"HTTP/1.1 200 OK\r\n")
    await conn.trickle(b"X-Padding: aaaaaaaaaaaaaaaa\r\n")
    return False


async def html_200(conn: Conn, req: Request) -> bool:
    return await conn.send(sized(HTML_PAGE, 200, "text/html; charset=utf-8"))


async def html_502(conn: Conn, req: Request) -> bool:
    return await conn.send(sized(HTML_502, 502, "text/html"))


async def text_plain(conn: Conn, req: Request) -> bool:
    return await conn.send(sized(PLAIN_ERROR, 200, "text/plain"))


async def sse_as_text_plain(conn: Conn, req: Request) -> bool:
    """A real event stream mislabelled ``text/plain`` (some proxies do this)."""
    body = SSE_OK if req.stream else json.dumps(chat_body()).encode()
    return await conn.send(sized(body, 200, "text/plain; charset=utf-8"))


async def bad_utf8(conn: Conn, req: Request) -> bool:
    if req.stream:
        body = OPENING.replace(b"world", b"w\xffrld") + FINISH + b"data: [DONE]\n\n"
        return await conn.send(chunked_head("text/event-stream") + framed(body) + LAST_CHUNK)
    body = json.dumps(chat_body()).encode().replace(b"world", b"w\xffrld")
    return await conn.send(sized(body))


async def garbage_sse(conn: Conn, req: Request) -> bool:
    body = b"lorem ipsum dolor\n\n\x00\x01 sit amet\n\nconsectetur: adipiscing\n\n"
    ctype = "text/event-stream" if req.stream else "application/json"
    return await conn.send(sized(body, 200, ctype))


async def sse_bad_json(conn: Conn, req: Request) -> bool:
    body = chunk("", role=True) + b"data: {not json\n\n" + b"data: [DONE]\n\n"
    return await conn.send(chunked_head("text/event-stream") + framed(body) + LAST_CHUNK)


async def no_done(conn: Conn, req: Request) -> bool:
    """The finish_reason (and usage), then the chunked body ends cleanly: no ``[DONE]``."""
    body = OPENING + FINISH + USAGE_EVENT
    return await conn.send(chunked_head("text/event-stream") + framed(body) + LAST_CHUNK)


async def no_done_close(conn: Conn, req: Request) -> bool:
    """The finish_reason, then the server closes (a body read to EOF): no ``[DONE]``."""
    await conn.send(
        head(200, "OK", [("Content-Type", "text/event-stream"), ("Connection", "close")])
        + OPENING
        + FINISH
    )
    await conn.close()
    return False


async def no_done_reset(conn: Conn, req: Request) -> bool:
    """The finish_reason, then a reset in the middle of the chunked body: no ``[DONE]``."""
    await conn.send(chunked_head("text/event-stream") + framed(OPENING + FINISH))
    await conn.reset()
    return False


async def early_close_no_finish(conn: Conn, req: Request) -> bool:
    """Some output, then the chunked body ends cleanly, with no finish_reason."""
    return await conn.send(chunked_head("text/event-stream") + framed(OPENING) + LAST_CHUNK)


FAULTS: dict[str, Handler] = {
    "ok": ok,
    "reset-headers": reset_headers,
    "reset-body": reset_body,
    "early-close": early_close,
    "early-close-no-finish": early_close_no_finish,
    "bad-chunk-size": _bad_chunks(b"zz"),
    "bad-chunk-negative": _bad_chunks(b"-5", b"abc"),
    "bad-chunk-prefixed": _bad_chunks(b"0x10", b"0123456789abcdef"),
    "bad-chunk-huge": _bad_chunks(b"fffffffffffffffffff", b"abc"),
    "bad-chunk-no-crlf": _bad_chunks(b"3", b"abcXY"),
    "cl-abc": _content_length("abc"),
    "cl-negative": _content_length("-20"),
    "cl-duplicate": _content_length("10", "12"),
    "cl-list": _content_length("10, 12"),
    "endless": endless,
    "endless-eof": endless_eof,
    "huge-length": huge_length,
    "gzip-bomb": gzip_bomb_fault,
    "gzip-ok": gzip_ok,
    "brotli": brotli,
    "hang": hang,
    "trickle": trickle,
    "trickle-head": trickle_head,
    "html-200": html_200,
    "html-502": html_502,
    "text-plain": text_plain,
    "sse-as-text-plain": sse_as_text_plain,
    "bad-utf8": bad_utf8,
    "garbage-sse": garbage_sse,
    "sse-bad-json": sse_bad_json,
    "no-done": no_done,
    "no-done-close": no_done_close,
    "no-done-reset": no_done_reset,
}


class FaultServer:
    """The server: ``with FaultServer() as server: ... server.url ...``."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-server", daemon=True
        )
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._loop.set_exception_handler(lambda loop, context: None)
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for _ in range(3):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer)
        try:
            while True:
                parts = await read_request(reader)
                if parts is None:
                    return
                request = Request(*parts)
                self.requests.append(request)
                handler = FAULTS.get(request.fault, ok)
                if not await handler(conn, request):
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            return
        finally:
            if not writer.transport.is_closing():
                writer.close()
