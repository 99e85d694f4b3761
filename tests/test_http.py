"""The lean transport against a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from harness import APIConnectionError, Harness
from harness.http import ClientCache, LeanTransport, make_transport
from tests.local_server import LocalServer, Reply, Request, chat_body

USER = [{"role": "user", "content": "hello"}]


async def post(client: httpx.AsyncClient, url: str, body: bytes = b"{}") -> httpx.Response:
    return await client.send(
        httpx.Request("POST", url, content=body, headers={"content-type": "application/json"})
    )


@pytest.mark.asyncio
async def test_keep_alive_reuses_one_socket_for_sequential_requests():
    with LocalServer(lambda r: Reply(body={"n": len(r.body)})) as server:
        transport = LeanTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            for i in range(5):
                response = await post(client, server.url + "/x", b"a" * i)
                assert response.json() == {"n": i}
        assert transport.connections_opened == 1
        assert server.connections == 1
        assert [r.path for r in server.requests] == ["/x"] * 5


@pytest.mark.asyncio
async def test_chunked_bodies_are_decoded():
    payload = {"text": "x" * 5000}
    with LocalServer(lambda r: Reply(body=payload, chunked=True)) as server:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            first = await post(client, server.url)
            second = await post(client, server.url)
    assert first.json() == payload and second.json() == payload
    assert server.connections == 1  # the socket survived a chunked body


@pytest.mark.asyncio
async def test_connection_close_is_honoured():
    with LocalServer(lambda r: Reply(body=b"{}", close=True)) as server:
        transport = LeanTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(3):
                assert (await post(client, server.url)).status_code == 200
        assert transport.connections_opened == 3


@pytest.mark.asyncio
async def test_a_stale_keep_alive_socket_is_retried_once_on_a_new_one():
    # A server that answers one request per connection without saying "close", then hangs up.
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = LeanTransport()
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await post(client, f"http://127.0.0.1:{port}/")).text == "ok"
            await asyncio.sleep(0)  # let the loop see the server's FIN... or not: both must work
            assert (await post(client, f"http://127.0.0.1:{port}/")).text == "ok"
    finally:
        server.close()
        await server.wait_closed()
    assert served == 2


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

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            response = await post(client, f"http://127.0.0.1:{port}/")
    finally:
        server.close()
        await server.wait_closed()
    assert (response.status_code, response.text, response.headers["x-a"]) == (201, "done", "1")


@pytest.mark.asyncio
async def test_a_truncated_body_is_an_error_not_a_short_answer():
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await post(client, f"http://127.0.0.1:{port}/")
    finally:
        server.close()
        await server.wait_closed()


def test_refused_connection_becomes_api_connection_error():
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [result] = Harness(retries=0).batch_completion(
        "openai/x", [USER], api_base=f"http://127.0.0.1:{port}/v1", api_key="k" * 10
    )
    assert isinstance(result, APIConnectionError)
    assert result.retryable and result.provider == "openai"


def test_timeout_cancels_the_request_and_the_server_sees_it():
    import threading

    release = threading.Event()
    try:
        with LocalServer(lambda r: Reply(body=chat_body(), release=release)) as server:
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


def test_httpx_transport_gives_the_same_answers():
    with LocalServer(lambda r: Reply(body=chat_body("same"))) as server:
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
