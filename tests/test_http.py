"""The lean transport against a real socket on 127.0.0.1, and its parsing of any bytes.

The property tests at the end check the parsing alone: ``parse_chunk_size`` and
``parse_content_length`` against a reference rule; whole responses (status line, headers,
framing, content coding) made of arbitrary or half-plausible bytes go through the
transport's own reading code over a fake socket, and only ``httpx.HTTPError`` (which the
providers map to typed harness errors) may come out, never a ``ValueError``, ``IndexError``,
``UnicodeDecodeError``, a hang or an unbounded body.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import APIConnectionError, Harness, http
from harness.http import (
    ClientCache,
    LeanTransport,
    ResponseTooLarge,
    _Connection,
    _ConnectionClosed,
    _decode_whole,
    _Inflater,
    make_transport,
    parse_chunk_size,
    parse_content_length,
)
from tests.helpers.local_server import Reply, Request, chat_body
from tests.helpers.pieces import cut


@contextlib.asynccontextmanager
async def raw_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A one-off server on 127.0.0.1 whose every byte ``serve`` writes; yields its URL."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()

USER = [{"role": "user", "content": "hello"}]


async def post(client: httpx.AsyncClient, url: str, body: bytes = b"{}") -> httpx.Response:
    return await client.send(
        httpx.Request("POST", url, content=body, headers={"content-type": "application/json"})
    )


@pytest.mark.asyncio
async def test_keep_alive_reuses_one_socket_for_sequential_requests(local_server):
    server = local_server(lambda r: Reply(body={"n": len(r.body)}))
    transport = LeanTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        for i in range(5):
            response = await post(client, server.url + "/x", b"a" * i)
            assert response.json() == {"n": i}
    assert transport.connections_opened == 1
    assert server.connections == 1
    assert [r.path for r in server.requests] == ["/x"] * 5


@pytest.mark.asyncio
async def test_chunked_bodies_are_decoded(local_server):
    payload = {"text": "x" * 5000}
    server = local_server(lambda r: Reply(body=payload, chunked=True))
    async with httpx.AsyncClient(transport=LeanTransport()) as client:
        first = await post(client, server.url)
        second = await post(client, server.url)
    assert first.json() == payload and second.json() == payload
    assert server.connections == 1  # the socket survived a chunked body


@pytest.mark.asyncio
async def test_connection_close_is_honoured(local_server):
    server = local_server(lambda r: Reply(body=b"{}", close=True))
    transport = LeanTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            assert (await post(client, server.url)).status_code == 200
    assert transport.connections_opened == 3


@pytest.mark.asyncio
async def test_a_stale_keep_alive_socket_is_retried_once_on_a_new_one():
    # The server answers the first request on a connection with keep-alive, then treats
    # the connection as expired: a second request on it is read and the socket closed
    # without a byte of answer, as when a server's idle close crosses the client's reuse.
    # The client cannot tell before it sends, so only the retry on a new socket saves it.
    connections: list[int] = []  # requests answered, per connection

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        here = len(connections) - 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)  # the body, b"{}"
                if connections[here]:
                    return  # stale: close without answering
                connections[here] += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()

    transport = LeanTransport()
    async with raw_server(serve) as url, httpx.AsyncClient(transport=transport) as client:
        assert (await post(client, url)).text == "ok"
        assert (await post(client, url)).text == "ok"
    assert connections == [1, 1]  # the stale socket was reused, then a new one answered
    assert transport.connections_opened == 2


@pytest.mark.asyncio
async def test_a_fresh_socket_closed_without_an_answer_is_not_retried():
    # The retry is for reused sockets only: a new socket closed unanswered is an error.
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await reader.readuntil(b"\r\n\r\n")
        requests += 1
        writer.close()

    async with raw_server(serve) as url:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await post(client, url)
    assert requests == 1


@pytest.mark.asyncio
async def test_interim_100_continue_is_skipped():
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\nx-a: 1\r\n\r\ndone"
        )
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            response = await post(client, url)
    assert (response.status_code, response.text, response.headers["x-a"]) == (201, "done", "1")


@pytest.mark.asyncio
async def test_a_truncated_body_is_an_error_not_a_short_answer():
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await post(client, url)


def test_refused_connection_becomes_api_connection_error():
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [result] = Harness(retries=0).batch_completion(
        "openai/x", [USER], api_base=f"http://127.0.0.1:{port}/v1", api_key="k" * 10
    )
    assert isinstance(result, APIConnectionError)
    assert result.retryable and result.provider == "openai"


def test_timeout_cancels_the_request_and_the_server_sees_it(local_server):
    import threading

    release = threading.Event()
    try:
        server = local_server(lambda r: Reply(body=chat_body(), release=release))
        [result] = Harness(retries=0).batch_completion(
            "openai/x", [USER], api_base=server.url, api_key="k" * 10, timeout=0.2
        )
        assert server.disconnected.wait(10)
    finally:
        release.set()
    from harness import TimeoutError as HarnessTimeout

    assert isinstance(result, HarnessTimeout) and "0.2 s" in str(result)


def test_make_transport_falls_back_to_httpx_behind_a_proxy(monkeypatch):
    assert isinstance(make_transport("auto"), LeanTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert make_transport("auto") is None
    assert isinstance(make_transport("lean"), LeanTransport)
    with pytest.raises(ValueError, match="unknown transport"):
        make_transport("fast")  # type: ignore[arg-type]


def test_env_transport_is_validated(monkeypatch):
    monkeypatch.setenv("HARNESS_TRANSPORT", "bogus")
    with pytest.raises(ValueError, match="HARNESS_TRANSPORT='bogus'"):
        ClientCache.env_transport()


def test_httpx_transport_gives_the_same_answers(local_server):
    server = local_server(lambda r: Reply(body=chat_body("same")))
    for kind in ("lean", "httpx"):
        r = Harness(transport=kind).completion(
            "openai/x", USER, api_base=server.url, api_key="k" * 10
        )
        assert r.content == "same"


def test_each_event_loop_gets_its_own_client():
    cache = ClientCache("lean")

    async def get() -> httpx.AsyncClient:
        return cache.get()

    first = asyncio.run(get())
    second = asyncio.run(get())  # a new loop: the old client must not be reused
    assert first is not second
    cache.close_all()


_ = Request  # re-exported for type hints in handlers


# --- parsing any bytes (hypothesis) ---------------------------------------------------------

EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEX = b"0123456789abcdefABCDEF"
# Arbitrary bytes, and lines made of hex digits and the characters that trip parsers up.
hexish = st.lists(st.sampled_from(list(HEX + b" \t;-+x_,=\x00\xff")), max_size=24).map(bytes)
any_line = st.binary(max_size=40) | hexish


@EXAMPLES
@given(line=any_line)
def test_chunk_sizes_parse_or_raise_a_protocol_error(line: bytes) -> None:
    size = line.split(b";", 1)[0].strip(b" \t")
    valid = re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size) is not None
    try:
        result = parse_chunk_size(line)
    except httpx.RemoteProtocolError:
        assert not valid
    else:
        assert valid and result == int(size, 16) and result >= 0


digits = st.integers(0, 10**21).map(lambda n: str(n).encode())
length_value = digits | hexish | st.binary(max_size=30)


@EXAMPLES
@given(
    values=st.lists(
        length_value | st.lists(digits, min_size=2, max_size=3).map(b", ".join), max_size=3
    )
)
def test_content_lengths_parse_or_raise_a_protocol_error(values: list[bytes]) -> None:
    parts = [p.strip(b" \t") for v in values for p in v.split(b",")]
    valid = bool(parts) and all(re.fullmatch(rb"[0-9]{1,19}", p) for p in parts)
    valid = valid and len({int(p) for p in parts}) == 1
    try:
        result = parse_content_length(values)
    except httpx.RemoteProtocolError:
        assert not valid
    else:
        assert valid and result == int(parts[0])


def test_the_reference_cases() -> None:
    assert parse_chunk_size(b"1A;name=value") == 26
    assert parse_chunk_size(b"0") == 0
    assert parse_content_length([b"12", b" 12 ", b"12, 12"]) == 12
    for bad in (b"-5", b"0x10", b"1_0", b"+5", b"", b" ", b"g", b"1" * 17):
        with pytest.raises(httpx.RemoteProtocolError):
            parse_chunk_size(bad)
    for values in ([b"abc"], [b"-1"], [b"10", b"12"], [b"1, 2"], [b""], [], [b"1" * 20]):
        with pytest.raises(httpx.RemoteProtocolError):
            parse_content_length(values)


# --- whole responses over a fake socket ---------------------------------------------------


class FakeSocket:
    """Just enough of an ``asyncio.Transport`` for ``_Connection``."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


LIMIT = 4096


async def read_response(data: list[bytes], streaming: bool) -> bytes:
    """The body the transport reads from ``data`` (decoded, as ``send_raw`` would)."""
    loop = asyncio.get_running_loop()
    conn = _Connection(loop, ("http", "fake", 80))
    conn.connection_made(FakeSocket())  # type: ignore[arg-type]
    for piece in data:
        conn.data_received(piece)
    conn.eof_received()
    status, _, headers, body = await LeanTransport()._exchange(conn, b"", streaming, LIMIT)
    assert 200 <= status <= 999
    encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), None)
    if streaming:
        assert isinstance(body, http._Body)
        stream = await http._decoded_stream(body, encoding, LIMIT) if encoding else body
        try:
            out = b"".join([chunk async for chunk in stream])
        finally:
            await stream.aclose()
    else:
        assert isinstance(body, bytes)
        out = _decode_whole(body, encoding, LIMIT) if encoding else body
    assert len(out) <= LIMIT
    return out


status_lines = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 2000 X",
        b"HTTP/2 200",
        b"HTTP/1.1 20x OK",
        b"",
    ]
)
header_lines = st.sampled_from(
    [b"Content-Length: ", b"Transfer-Encoding: ", b"Content-Encoding: ", b"Connection: ", b"X-A: "]
).flatmap(
    lambda name: st.tuples(
        st.just(name),
        st.sampled_from(
            [
                b"chunked",
                b"gzip",
                b"deflate",
                b"br",
                b"close",
                b"5",
                b"0",
                b"-1",
                b"abc",
                b"4097",
                b"10, 12",
            ]
        )
        | st.binary(max_size=12),
    ).map(b"".join)
)
chunk_body = (
    st.lists(
        st.tuples(any_line, st.binary(max_size=20)).map(lambda t: t[0] + b"\r\n" + t[1] + b"\r\n")
        | st.binary(max_size=30).map(lambda b: b"%x\r\n%s\r\n" % (len(b), b)),
        max_size=5,
    )
    .map(b"".join)
    .map(lambda b: b + b"0\r\n\r\n")
)
gzip_body = st.binary(max_size=300).map(lambda b: zlib.compress(b, wbits=31))
bodies = st.binary(max_size=200) | chunk_body | gzip_body | st.just(b"\x00" * 5000)
responses = st.tuples(status_lines, st.lists(header_lines, max_size=4), bodies).map(
    lambda t: t[0] + b"\r\n" + b"".join(h + b"\r\n" for h in t[1]) + b"\r\n" + t[2]
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@EXAMPLES
@given(
    data=st.one_of(responses, responses, responses, st.binary(max_size=300)),
    sizes=st.lists(st.integers(1, 40), max_size=20),
    streaming=st.booleans(),
)
def test_any_response_bytes_give_a_body_or_an_httpx_error(
    loop: asyncio.AbstractEventLoop, data: bytes, sizes: list[int], streaming: bool
) -> None:
    try:
        body = loop.run_until_complete(
            asyncio.wait_for(read_response(list(cut(data, sizes)), streaming), 5)
        )
    except (httpx.HTTPError, _ConnectionClosed) as exc:  # _roundtrip makes the latter one
        event(type(exc).__name__)
    else:
        event("a body" if body else "an empty body")


# --- content decoding -----------------------------------------------------------------------


@EXAMPLES
@given(
    payload=st.binary(max_size=2000) | st.integers(0, 20000).map(bytes),
    encoding=st.sampled_from(["gzip", "deflate", "raw-deflate"]),
    corrupt=st.integers(-1, 60),
    sizes=st.lists(st.integers(1, 50), max_size=10),
    limit=st.integers(0, 8000),
)
def test_decoding_gives_the_payload_or_a_decoding_error(
    payload: bytes, encoding: str, corrupt: int, sizes: list[int], limit: int
) -> None:
    wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[encoding]
    z = zlib.compressobj(6, zlib.DEFLATED, wbits)
    data = bytearray(z.compress(payload) + z.flush())
    if 0 <= corrupt < len(data):
        data[corrupt] ^= 0x5A
    inflater = _Inflater("gzip" if encoding == "gzip" else "deflate", limit)
    try:
        out = b"".join(inflater.decode(piece) for piece in cut(bytes(data), sizes))
        inflater.finish()
    except ResponseTooLarge as exc:
        assert (len(payload) > limit or corrupt >= 0) and exc.limit == limit
    except httpx.DecodingError:
        assert corrupt >= 0 or len(payload) > limit
    else:
        assert len(out) <= limit
        if corrupt < 0:
            assert out == payload


# --- limits and framing, one case at a time -------------------------------------------------


def test_a_response_head_is_capped(loop: asyncio.AbstractEventLoop) -> None:
    data = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * (http.MAX_HEAD_BYTES + 10)
    with pytest.raises(httpx.RemoteProtocolError, match="response head longer than"):
        loop.run_until_complete(read_response([data], False))


def test_a_chunk_size_line_is_capped(loop: asyncio.AbstractEventLoop) -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"x" * 10_000
    with pytest.raises(httpx.RemoteProtocolError, match="line longer than"):
        loop.run_until_complete(read_response([data], False))


def test_a_chunk_announced_past_the_limit_is_refused_before_it_is_read(
    loop: asyncio.AbstractEventLoop,
) -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (LIMIT + 1)
    with pytest.raises(ResponseTooLarge, match=f"max_response_bytes={LIMIT} \\(4 KiB\\)"):
        loop.run_until_complete(read_response([data], True))


def test_no_content_has_no_body_whatever_the_headers_say(loop: asyncio.AbstractEventLoop) -> None:
    # Without the rule, a 204 without Content-Length would be read until the server closes.
    data = b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: identity\r\n\r\n"
    assert loop.run_until_complete(read_response([data], False)) == b""


def test_draining_never_loops_on_a_bad_chunk_size(loop: asyncio.AbstractEventLoop) -> None:
    # int(b"-5", 16) is -5: the old drain walked backwards to the same line forever.
    conn = _Connection(loop, ("http", "fake", 80))
    conn.connection_made(FakeSocket())  # type: ignore[arg-type]
    conn.data_received(b"-5\r\nabcdef\r\n0\r\n\r\n")
    body = http._Body(LeanTransport(), conn, None, True, True)
    assert body.drain_buffered() is False


def test_reading_pauses_while_the_buffer_is_full(loop: asyncio.AbstractEventLoop) -> None:
    class Recording(FakeSocket):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def pause_reading(self) -> None:
            self.calls.append("pause")

        def resume_reading(self) -> None:
            self.calls.append("resume")

    sock = Recording()
    conn = _Connection(loop, ("http", "fake", 80))
    conn.connection_made(sock)  # type: ignore[arg-type]
    conn.data_received(b"x" * (http._HIGH_WATER + 1))
    conn.data_received(b"x")
    assert sock.calls == ["pause"]
    conn.buf.clear()
    conn.eof_received()
    with pytest.raises(_ConnectionClosed):
        loop.run_until_complete(conn.fill())
    conn.eof = False
    task = loop.create_task(conn.fill())
    loop.call_soon(conn.data_received, b"y")
    loop.run_until_complete(task)
    assert sock.calls == ["pause", "resume"]


@pytest.mark.asyncio
async def test_a_gzipped_answer_is_decoded_and_its_encoding_dropped(local_server) -> None:
    body = zlib.compress(b'{"ok": true}', wbits=31)
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    server = local_server(lambda r: Reply(body=body, headers=headers))
    transport = LeanTransport()
    request = httpx.Request("POST", server.url, content=b"{}")
    raw = await transport.send_raw(request)
    assert raw.content == b'{"ok": true}' and "content-encoding" not in raw.headers
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await post(client, server.url)).json() == {"ok": True}
    await transport.aclose()


def test_raw_deflate_is_accepted_like_zlib_deflate() -> None:
    payload = b"hello " * 100
    for wbits in (15, -15):
        z = zlib.compressobj(6, zlib.DEFLATED, wbits)
        data = z.compress(payload) + z.flush()
        inflater = _Inflater("deflate", 10_000)
        out = b"".join(inflater.decode(data[i : i + 1]) for i in range(len(data)))
        inflater.finish()
        assert out == payload
    assert _decode_whole(b"", b"identity", 10) == b""


@pytest.mark.asyncio
async def test_both_framings_given_means_the_socket_is_not_reused() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n2\r\nok\r\n0\r\n\r\n"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    transport = LeanTransport()
    async with raw_server(serve) as url, httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            assert (await post(client, url)).text == "ok"
    assert transport.connections_opened == 2


@pytest.mark.asyncio
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_bodies_and_streams_read_through_the_shared_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lean transport reads into one buffer per transport (a BufferedProtocol); over TLS
    # asyncio's SSL layer fills it, and a body larger than the buffer takes several reads.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    big = b"y" * (http.READ_SIZE * 2 + 123)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big) + big)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(http, "_ssl_context", client_ctx)
    transport = LeanTransport()
    try:
        for _ in range(2):
            request = httpx.Request("POST", f"https://localhost:{port}/", content=b"{}")
            assert (await transport.send_raw(request)).content == big
        request = httpx.Request("POST", f"https://localhost:{port}/", content=b"{}")
        stream = await transport.send_stream_raw(request)
        assert await stream.aread() == big
        await stream.aclose()
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
    assert transport.connections_opened == 1  # kept alive over TLS, as over TCP
