"""A fast fake OpenAI-compatible chat and embeddings server for the benchmarks (stdlib only).

Run it directly::

    python tests/benchmarks/fake_server.py --port 0 --latency-ms 50 \
        --model-latency fast=50,mid=200,slow=1000

It prints ``PORT <n>`` as its first stdout line and serves until killed (or until the
process that started it exits). Or import it and start it as a separate process, so the
client's CPU time never includes the server's::

    with fake_server(latency_ms=50) as server:
        ...  # server.port, server.base_url, server.stats(), server.reset()

Behaviour:

* ``POST /v1/chat/completions`` and ``POST /chat/completions`` answer a valid
  ``chat.completion`` after the model's latency (an asyncio timer per request, so
  thousands of concurrent requests cost nothing while they wait), with ``Content-Length``
  and keep-alive. The latency comes from ``--model-latency`` (model name to ms), else
  ``--latency-ms``.
* A request with ``"stream": true`` is answered with server-sent events (chunked, OpenAI's
  chunk format, usage then ``[DONE]``). With ``--ttft-ms T`` (below the latency) the head
  and the first content chunk go out after T ms and the rest at the model's latency;
  otherwise the whole stream is written at the latency.
* ``POST /v1/embeddings`` and ``POST /embeddings`` answer OpenAI's ``list`` of ``embedding``
  objects, one per input, after the model's latency; ``POST /v2/embed`` answers Cohere's
  ``embeddings_by_type`` (``{"embeddings": {"float": [...]}, "meta": {"billed_units"}}``).
  Every vector is the same fixed unit vector of ``--embedding-dims`` floats (default 256),
  serialised once; the body for k inputs is built once per k and reused, so the server
  costs little whatever the batch size. Usage counts 8 tokens per input. The body is read
  with ``json.loads`` (to count the inputs).
* A model named ``fail-<status>`` (e.g. ``fail-503``) is answered at once with that status
  and an OpenAI error body (chat and embeddings alike).
* ``GET /stats`` returns the counters as JSON: requests received and completed, client
  disconnects while a request was pending, in-flight and peak in-flight requests,
  connections, and the server's CPU seconds. ``GET /stats/reset`` (or POST) zeroes them and
  returns the zeroed counters. ``GET /health`` answers ``ok``.

The server is written on asyncio's ``Protocol`` API with minimal parsing: it finds the end
of the head, reads ``Content-Length`` and ``Connection``, and pulls ``"model"`` out of the
body with a byte search rather than ``json.loads`` (``--parse json`` switches to
``json.loads``, for comparison). Requests on one connection are handled one at a time in
order; bytes that arrive while a request is pending wait in the buffer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FakeServer",
    "fake_server",
    "fetch_stats",
    "reset_stats",
    "start_server_process",
    "stop_server_process",
]

_HEAD_LIMIT = 65536
_CHAT_PATHS = frozenset({b"/v1/chat/completions", b"/chat/completions"})
_EMBED_PATHS = frozenset({b"/v1/embeddings", b"/embeddings"})
_COHERE_EMBED_PATH = b"/v2/embed"
_EMBED_CACHE_LIMIT = 256
"""Distinct input counts whose ``data`` bytes are kept (a benchmark uses a handful)."""
_TOKENS_PER_INPUT = 8
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
    422: "Unprocessable Entity", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 529: "Overloaded",
}
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 429: "rate_limit_error", 503: "service_unavailable",
}
_HEAD_200 = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_HEAD_200_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n"
)
_HEAD_SSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
)


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


# --- the server ---------------------------------------------------------------------------


class Stats:
    """The server's counters (plain attributes: they are bumped on every request)."""

    __slots__ = ("received", "completed", "disconnects", "errors", "inflight", "peak_inflight",
                 "connections", "open_connections")

    def __init__(self) -> None:
        self.received = 0
        self.completed = 0
        self.disconnects = 0
        self.errors = 0
        self.inflight = 0
        self.peak_inflight = 0
        self.connections = 0
        self.open_connections = 0

    def reset(self) -> None:
        """Zero the counters (the open-connection and in-flight gauges stay true)."""
        for name in ("received", "completed", "disconnects", "errors", "connections"):
            setattr(self, name, 0)
        self.peak_inflight = self.inflight

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values, plus the server's CPU seconds."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["cpu_s"] = time.process_time()
        out["pid"] = os.getpid()
        return out


class ServerState:
    """What every connection shares: latencies, response templates, counters."""

    def __init__(
        self,
        latency_ms: float,
        model_latency: Mapping[str, float],
        parse: str = "scan",
        ttft_ms: float | None = None,
        embedding_dims: int = 256,
    ) -> None:
        self.default_latency = latency_ms / 1000.0
        self.ttft = ttft_ms / 1000.0 if ttft_ms is not None else None
        self.latency = {k.encode(): v / 1000.0 for k, v in model_latency.items()}
        self.parse_json = parse == "json"
        self.stats = Stats()
        self.templates: dict[bytes, bytes] = {}
        self.counter = 0
        # One fixed unit vector, serialised once (floats with all their digits, as OpenAI's).
        raw = [math.sin(i * 0.7 + 0.3) for i in range(max(1, embedding_dims))]
        norm = math.sqrt(math.fsum(x * x for x in raw))
        self.vector = json.dumps([x / norm for x in raw], separators=(",", ":")).encode()
        self.openai_data: dict[int, bytes] = {}
        self.cohere_data: dict[int, bytes] = {}

    def embedding_body(self, path: bytes, model: bytes, count: int) -> bytes:
        """The embeddings answer for ``count`` inputs in the route's format."""
        tokens = count * _TOKENS_PER_INPUT
        if path == _COHERE_EMBED_PATH:
            data = self.cohere_data.get(count)
            if data is None:
                if len(self.cohere_data) >= _EMBED_CACHE_LIMIT:
                    self.cohere_data.clear()
                data = self.cohere_data[count] = b",".join([self.vector] * count)
            self.counter += 1
            return (
                b'{"id":"embed-fake%d","embeddings":{"float":[%s]},"meta":{"api_version":'
                b'{"version":"2"},"billed_units":{"input_tokens":%d}},'
                b'"response_type":"embeddings_by_type"}' % (self.counter, data, tokens)
            )
        data = self.openai_data.get(count)
        if data is None:
            if len(self.openai_data) >= _EMBED_CACHE_LIMIT:
                self.openai_data.clear()
            data = self.openai_data[count] = b",".join(
                b'{"object":"embedding","index":%d,"embedding":%s}' % (i, self.vector)
                for i in range(count)
            )
        return (
            b'{"object":"list","data":[%s],"model":"%s","usage":{"prompt_tokens":%d,'
            b'"total_tokens":%d}}' % (data, model, tokens, tokens)
        )

    def model_of(self, body: bytes) -> bytes:
        """The request's model name (raw JSON string content), or ``b""``."""
        if self.parse_json:
            try:
                return str(json.loads(body).get("model", "")).encode()
            except (ValueError, AttributeError):
                return b""
        i = body.find(b'"model"')
        if i < 0:
            return b""
        j = body.find(b'"', i + 7)
        k = body.find(b'"', j + 1)
        if j < 0 or k < 0:
            return b""
        return body[j + 1 : k]

    def completion(self, model: bytes) -> bytes:
        """A ``chat.completion`` body for ``model`` with a fresh id."""
        tmpl = self.templates.get(model)
        if tmpl is None:
            tmpl = self.templates[model] = (
                b'{"id":"chatcmpl-fake%d","object":"chat.completion","created":%d,"model":"'
                + model.replace(b"%", b"%%")
                + b'","system_fingerprint":null,"choices":[{"index":0,"message":'
                b'{"role":"assistant","content":"ok","refusal":null},"logprobs":null,'
                b'"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1,'
                b'"total_tokens":11}}'
            )
        self.counter += 1
        return tmpl % (self.counter, int(time.time()))

    @staticmethod
    def wants_stream(body: bytes) -> bool:
        """Whether the request asks for a stream (``"stream": true``)."""
        i = body.find(b'"stream"')
        return i >= 0 and body[i + 8 : i + 16].lstrip(b": ").startswith(b"true")

    def stream_parts(self, model: bytes) -> tuple[bytes, bytes]:
        """An SSE answer for ``model`` in two parts: the first content chunk, and the rest."""
        self.counter += 1
        head = b'{"id":"chatcmpl-fake%d","object":"chat.completion.chunk","created":%d,"model":"%s",' % (
            self.counter, int(time.time()), model
        )

        def event(choices: bytes, usage: bytes = b"") -> bytes:
            return _chunked(b"data: " + head + b'"choices":' + choices + usage + b"}\n\n")

        first = event(b'[{"index":0,"delta":{"role":"assistant","content":"o"},"finish_reason":null}]')
        rest = (
            event(b'[{"index":0,"delta":{"content":"k"},"finish_reason":"stop"}]')
            + event(b"[]", b',"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}')
            + _chunked(b"data: [DONE]\n\n")
            + b"0\r\n\r\n"
        )
        return first, rest


def _error_body(status: int, message: str) -> bytes:
    error = {
        "message": message,
        "type": _ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        ),
        "param": None,
        "code": None,
    }
    return json.dumps({"error": error}).encode()


def _response(
    status: int, body: bytes, close: bool, content_type: bytes = b"application/json"
) -> bytes:
    reason = _REASONS.get(status, "Unknown").encode()
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        status, reason, content_type, len(body),
    )
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


class _HTTPConnection(asyncio.Protocol):
    """One client socket: parse a request, answer it (maybe after a timer), repeat."""

    __slots__ = ("state", "transport", "buf", "pending", "closing")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.pending: asyncio.TimerHandle | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        stats = self.state.stats
        stats.connections += 1
        stats.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        stats = self.state.stats
        stats.open_connections -= 1
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
            stats.inflight -= 1
            stats.disconnects += 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if self.pending is None and not self.closing:
            self._process()

    def _process(self) -> None:
        """Handle every complete request in the buffer until one must wait."""
        while self.pending is None and not self.closing:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _HEAD_LIMIT:
                    self._send(431, _error_body(431, "request head too large"), True)
                return
            head = buf[:end].lower()
            if b"\r\ntransfer-encoding:" in head:
                self._send(501, _error_body(501, "chunked request bodies are not supported"), True)
                return
            i = head.find(b"\r\ncontent-length:")
            length = 0
            if i >= 0:
                j = head.find(b"\r\n", i + 17)
                try:
                    length = int(head[i + 17 : j] if j >= 0 else head[i + 17 :])
                except ValueError:
                    self._send(400, _error_body(400, "bad Content-Length"), True)
                    return
            total = end + 4 + length
            if len(buf) < total:
                return
            body = buf[end + 4 : total]
            self.buf = buf[total:]
            line_end = head.find(b"\r\n")
            method, _, rest = (head[:line_end] if line_end >= 0 else head).partition(b" ")
            target, _, version = rest.partition(b" ")
            if version == b"http/1.0":
                close = b"\r\nconnection: keep-alive" not in head
            else:
                close = b"\r\nconnection: close" in head
            self._dispatch(method, target.partition(b"?")[0], body, close)

    def _dispatch(self, method: bytes, path: bytes, body: bytes, close: bool) -> None:
        state = self.state
        if path in _EMBED_PATHS or path == _COHERE_EMBED_PATH:
            self._embed(method, path, body, close)
        elif path in _CHAT_PATHS:
            if method != b"post":
                self._send(405, _error_body(405, "use POST"), close)
                return
            stats = state.stats
            stats.received += 1
            model = state.model_of(body)
            if model.startswith(b"fail-"):
                status = int(model[5:]) if model[5:].isdigit() else 500
                stats.completed += 1
                stats.errors += 1
                message = f"fake failure {status} for model {model.decode(errors='replace')}"
                self._send(status, _error_body(status, message), close)
                return
            latency = state.latency.get(model, state.default_latency)
            stats.inflight += 1
            if stats.inflight > stats.peak_inflight:
                stats.peak_inflight = stats.inflight
            loop = asyncio.get_running_loop()
            if state.wants_stream(body):
                ttft = state.ttft if state.ttft is not None and state.ttft < latency else latency
                self.pending = loop.call_later(ttft, self._stream, model, close, latency - ttft)
            elif latency <= 0:
                self._answer(model, close)
            else:
                self.pending = loop.call_later(latency, self._answer, model, close)
        elif path == b"/stats":
            self._send(200, json.dumps(state.stats.as_dict()).encode(), close)
        elif path == b"/stats/reset":
            state.stats.reset()
            self._send(200, json.dumps(state.stats.as_dict()).encode(), close)
        elif path == b"/health":
            self._send(200, b"ok", close, b"text/plain")
        else:
            self._send(404, _error_body(404, f"no route {path.decode(errors='replace')}"), close)

    def _embed(self, method: bytes, path: bytes, body: bytes, close: bool) -> None:
        """An embeddings request: count the inputs, answer after the model's latency."""
        state = self.state
        if method != b"post":
            self._send(405, _error_body(405, "use POST"), close)
            return
        stats = state.stats
        stats.received += 1
        try:
            request = json.loads(body)
            texts = request.get("texts" if path == _COHERE_EMBED_PATH else "input")
            model = str(request.get("model", "")).encode()
        except (ValueError, AttributeError):
            texts, model = None, b""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            stats.completed += 1
            stats.errors += 1
            self._send(400, _error_body(400, "input: expected a non-empty list"), close)
            return
        if model.startswith(b"fail-"):
            status = int(model[5:]) if model[5:].isdigit() else 500
            stats.completed += 1
            stats.errors += 1
            message = f"fake failure {status} for model {model.decode(errors='replace')}"
            self._send(status, _error_body(status, message), close)
            return
        answer = state.embedding_body(path, model.replace(b'"', b""), len(texts))
        latency = state.latency.get(model, state.default_latency)
        stats.inflight += 1
        if stats.inflight > stats.peak_inflight:
            stats.peak_inflight = stats.inflight
        if latency <= 0:
            self._reply(answer, close)
        else:
            self.pending = asyncio.get_running_loop().call_later(
                latency, self._reply, answer, close
            )

    def _reply(self, body: bytes, close: bool) -> None:
        """Send a prepared 200 body: the request leaves the in-flight count, counted completed."""
        self.pending = None
        stats = self.state.stats
        stats.inflight -= 1
        stats.completed += 1
        transport = self.transport
        if transport is None:
            return
        transport.write((_HEAD_200_CLOSE if close else _HEAD_200) % len(body) + body)
        if close:
            self.closing = True
            transport.close()
        elif self.buf:
            self._process()

    def _answer(self, model: bytes, close: bool) -> None:
        """The timer fired: send the completion (the hot path)."""
        self._reply(self.state.completion(model), close)

    def _stream(self, model: bytes, close: bool, rest_after: float) -> None:
        """Time to first token: send the head and the first chunk; the rest follows."""
        transport = self.transport
        if transport is None:
            return
        first, rest = self.state.stream_parts(model)
        head = _HEAD_SSE + (b"Connection: close\r\n" if close else b"") + b"\r\n"
        if rest_after <= 0:
            self.pending = None
            transport.write(head + first)
            self._end_stream(rest, close)
            return
        transport.write(head + first)
        loop = asyncio.get_running_loop()
        self.pending = loop.call_later(rest_after, self._finish_stream, rest, close)

    def _finish_stream(self, rest: bytes, close: bool) -> None:
        self.pending = None
        if self.transport is not None:
            self._end_stream(rest, close)

    def _end_stream(self, rest: bytes, close: bool) -> None:
        stats = self.state.stats
        stats.inflight -= 1
        stats.completed += 1
        transport = self.transport
        assert transport is not None
        transport.write(rest)
        if close:
            self.closing = True
            transport.close()
        elif self.buf:
            self._process()

    def _send(
        self, status: int, body: bytes, close: bool, ctype: bytes = b"application/json"
    ) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(_response(status, body, close, ctype))
        if close:
            self.closing = True
            transport.close()


async def serve(
    host: str, port: int, state: ServerState, announce: bool = True
) -> None:
    """Serve until SIGTERM/SIGINT or until the parent process goes away."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _HTTPConnection(state), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if announce:
        sys.stdout.write(f"PORT {bound}\n")
        sys.stdout.flush()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    parent = os.getppid()

    def watch_parent() -> None:
        if os.getppid() != parent:
            request_stop()  # orphaned: the benchmark that started us is gone
        else:
            loop.call_later(1.0, watch_parent)

    loop.call_later(1.0, watch_parent)
    async with server:
        await stop


def _parse_model_latency(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, ms = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected model=ms, got {item!r}")
        out[name.strip()] = float(ms)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--model-latency", type=_parse_model_latency, default={},
                        help="per-model latency, e.g. fast=50,mid=200,slow=1000")
    parser.add_argument("--parse", choices=("scan", "json"), default="scan",
                        help="how to find the model name in the body")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    parser.add_argument("--ttft-ms", type=float, default=None,
                        help="streamed answers: send the first chunk after this many ms")
    parser.add_argument("--embedding-dims", type=int, default=256,
                        help="the length of every embedding vector")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    state = ServerState(
        args.latency_ms, args.model_latency, args.parse, args.ttft_ms, args.embedding_dims
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, state))


# --- starting and talking to it from a benchmark -------------------------------------------


def start_server_process(
    latency_ms: float = 50.0,
    model_latency: Mapping[str, float] | None = None,
    *,
    host: str = "127.0.0.1",
    parse: str = "scan",
    cpu: int | None = None,
    ttft_ms: float | None = None,
    embedding_dims: int | None = None,
    startup_timeout: float = 10.0,
) -> tuple[subprocess.Popen[str], int]:
    """Launch the server as a separate process and wait for its port.

    Returns:
        The process (stop it with ``stop_server_process``) and the port it listens on.
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--host", host, "--port", "0",
           "--latency-ms", str(latency_ms), "--parse", parse]
    if model_latency:
        cmd += ["--model-latency", ",".join(f"{k}={v}" for k, v in model_latency.items())]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if ttft_ms is not None:
        cmd += ["--ttft-ms", str(ttft_ms)]
    if embedding_dims is not None:
        cmd += ["--embedding-dims", str(embedding_dims)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], startup_timeout)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake server did not start (first line {line!r})")
        return proc, int(line.split()[1])
    except BaseException:
        stop_server_process(proc)
        raise


def stop_server_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Terminate the server process (kill it if it does not exit in ``timeout`` s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()


def _get(host: str, port: int, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        data: dict[str, Any] = json.loads(response.read())
        return data
    finally:
        conn.close()


def fetch_stats(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """The server's counters (``GET /stats``)."""
    return _get(host, port, "/stats")


def reset_stats(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """Zero the server's counters (``GET /stats/reset``)."""
    return _get(host, port, "/stats/reset")


@dataclass
class FakeServer:
    """A running fake server process."""

    proc: subprocess.Popen[str]
    port: int
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        """The server's counters."""
        return fetch_stats(self.port, self.host)

    def reset(self) -> dict[str, Any]:
        """Zero the server's counters."""
        return reset_stats(self.port, self.host)


@contextlib.contextmanager
def fake_server(
    latency_ms: float = 50.0, model_latency: Mapping[str, float] | None = None, **kw: Any
) -> Iterator[FakeServer]:
    """Run the server in a separate process for the ``with`` block; always stop it."""
    proc, port = start_server_process(latency_ms, model_latency, **kw)
    try:
        yield FakeServer(proc, port, kw.get("host", "127.0.0.1"))
    finally:
        stop_server_process(proc)


if __name__ == "__main__":
    main()
