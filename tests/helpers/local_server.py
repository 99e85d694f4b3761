"""A small HTTP/1.1 server on 127.0.0.1 for tests: scripted answers, and it notices disconnects.

It runs its own event loop in a background thread, so tests can drive it from sync or async
code. Each route is a function ``(request) -> Reply``; a reply may be delayed (``delay``)
or withheld until ``release`` is set, which lets a test hold a request open and watch the
client cancel it without sleeping.

One server serves a whole test session (the ``local_server`` fixture in ``tests/conftest.py``):
``reset(handler)`` closes every connection of the previous test and clears what it recorded,
so each test sees a fresh server on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


async def read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """Read one request: method, path, lower-case headers and body; ``None`` at the end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, path, headers, body


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    release: threading.Event | None = None
    chunked: bool = False
    close: bool = False
    unfinished: bool = False  # chunked, but the closing chunk is never sent
    pieces: list[int] | None = None  # chunked, one HTTP chunk per piece of these sizes


def chat_body(content: str = "hi", model: str = "test-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1767225600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


class LocalServer:
    def __init__(self, handler: Callable[[Request], Reply]) -> None:
        self.handler = handler
        self.on_reply: Callable[[Request, Reply], None] | None = None
        """Called as each reply is about to be written (the request is then over)."""
        self.requests: list[Request] = []
        self.disconnects = 0
        self.connections = 0
        self.disconnected = threading.Event()
        self._changed = threading.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet_cancellations)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def __enter__(self) -> LocalServer:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            # Handlers cancelled below make asyncio's stream protocol log their
            # CancelledError; a server being stopped has nothing to report.
            self._loop.set_exception_handler(_quiet_cancellations)
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for _ in range(3):  # let the transports' close callbacks run
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, handler: Callable[[Request], Reply]) -> None:
        """Close every open connection, forget what was recorded, and answer with ``handler``."""

        async def close_connections() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close_connections(), self._loop).result(timeout=10)
        with self._changed:
            self.handler = handler
            self.on_reply = None
            self.requests = []
            self.disconnects = 0
            self.connections = 0
            self.disconnected.clear()

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``condition()`` holds (checked whenever a request or disconnect is
        recorded); ``False`` if it still does not after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def _record_disconnect(self) -> None:
        with self._changed:
            self.disconnects += 1
            self.disconnected.set()
            self._changed.notify_all()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                parts = await read_request(reader)
                if parts is None:
                    return
                request = Request(*parts)
                with self._changed:
                    self.requests.append(request)
                    self._changed.notify_all()
                reply = self.handler(request)
                if not await self._wait(reply, reader):
                    self._record_disconnect()
                    return
                if self.on_reply is not None:
                    self.on_reply(request, reply)
                if reply.pieces is not None:
                    await self._write_pieces(writer, reply)
                else:
                    self._write(writer, reply)
                await writer.drain()
                if reply.unfinished:  # hold the body open until the client goes away
                    await reader.read(1)
                    self._record_disconnect()
                    return
                if reply.close:
                    return
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _wait(self, reply: Reply, reader: asyncio.StreamReader) -> bool:
        """Wait for the reply's delay or release; False if the client went away first."""
        waits = []
        if reply.delay:
            waits.append(asyncio.ensure_future(asyncio.sleep(reply.delay)))
        if reply.release is not None:
            waits.append(asyncio.ensure_future(asyncio.to_thread(reply.release.wait, 30)))
        if not waits:
            return True
        gone = asyncio.ensure_future(reader.read(1))
        try:
            done, _ = await asyncio.wait([*waits, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            pending = [task for task in (*waits, gone) if not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return gone not in done

    @staticmethod
    async def _write_pieces(writer: asyncio.StreamWriter, reply: Reply) -> None:
        """The body as HTTP chunks of the reply's piece sizes, each sent on its own."""
        body = reply.body
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        headers = {"content-type": "application/json", **reply.headers}
        headers["transfer-encoding"] = "chunked"
        head = f"HTTP/1.1 {reply.status} X\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write((head + "\r\n").encode())
        start = 0
        for size in [*reply.pieces, len(body)] if reply.pieces else [len(body)]:
            part = body[start : start + size]
            if not part:
                break
            start += len(part)
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0)  # let the client read this piece before the next
        writer.write(b"0\r\n\r\n")

    @staticmethod
    def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
        body = reply.body
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        status_line = f"HTTP/1.1 {reply.status} X\r\n"
        headers = {"content-type": "application/json", **reply.headers}
        if reply.close:
            headers["connection"] = "close"
        if reply.chunked or reply.unfinished:
            headers["transfer-encoding"] = "chunked"
            half = len(body) // 2
            payload = (
                b"".join(
                    f"{len(part):x}\r\n".encode() + part + b"\r\n"
                    for part in (body[:half], body[half:])
                    if part
                )
                + (b"" if reply.unfinished else b"0\r\n\r\n")
            )
        else:
            headers["content-length"] = str(len(body))
            payload = body
        head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode() + payload)
