"""Streaming machinery shared by every adapter: ResponseStream, collect, chunk types, offline
models, and real-socket streaming through the lean transport (with cancellation).

The helpers (``sse``, ``Pieces``, ``FakeClock``, ``run_stream``, ...) live in
``tests/helpers/streaming.py``, shared with the per-provider streaming tests.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from harness import errors
from harness.config import parse_model_string
from harness.http import ClientCache
from harness.providers.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Call,
    HTTPProvider,
    Provider,
    get_provider,
)
from harness.providers.offline import EchoProvider, MockProvider, _build
from harness.providers.openai import OpenAIProvider
from harness.providers.streams import collect, response_chunks, split_words
from harness.providers.wire import with_json_fields
from harness.types import (
    ChunkChoice,
    Delta,
    ResponseMeta,
    StreamChunk,
    Usage,
)
from tests.helpers.local_server import LocalServer, Reply, Request
from tests.helpers.streaming import (
    FakeClock,
    Pieces,
    Ticking,
    assert_chunks_valid,
    joined_text,
    make_call,
    plain,
    run_stream,
    split_events,
    sse,
)

# --- types --------------------------------------------------------------------------------


def test_stream_chunk_validates_as_openai_chunk_and_reads_like_a_dict() -> None:
    tool = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}
    chunk = StreamChunk(
        id="chatcmpl-1",
        model="gpt-4o-mini",
        created=1767225600,
        choices=[
            ChunkChoice(0, Delta(role="assistant", content="")),
            ChunkChoice(1, Delta(tool_calls=[tool], reasoning_content="hmm"), "tool_calls"),
        ],
        usage=Usage(3, 4, 7, cached_tokens=1),
    )
    parsed = ChatCompletionChunk.model_validate(json.loads(json.dumps(chunk.to_dict())))
    assert parsed.object == "chat.completion.chunk"
    assert parsed.choices[1].delta.tool_calls is not None
    assert parsed.choices[1].delta.tool_calls[0].function is not None
    assert parsed.choices[1].delta.tool_calls[0].function.name == "get_weather"
    assert parsed.usage is not None and parsed.usage.total_tokens == 7
    assert chunk["choices"][0]["delta"]["role"] == "assistant"
    assert chunk.choices[1].delta["reasoning_content"] == "hmm"
    assert list(chunk.keys())[:2] == ["id", "object"]
    assert chunk.content == ""
    assert chunk.to_dict()["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "no choices" in repr(StreamChunk("x", "m", []))


def test_response_meta_carries_stream_timings() -> None:
    meta = ResponseMeta(ttft_ms=12.34567, first_text_ms=20.0)
    data = meta.to_dict()
    assert data["ttft_ms"] == 12.346
    assert data["first_text_ms"] == 20.0
    assert ResponseMeta().to_dict()["ttft_ms"] is None


def test_response_chunks_reassemble_the_answer() -> None:
    answer = _build(make_call("mock/demo", key=None, n=2), {"content": "The capital is Stockholm."})
    chunks = response_chunks(answer, split_words)
    assert_chunks_valid(chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert joined_text(chunks, 0) == joined_text(chunks, 1) == "The capital is Stockholm."
    assert [c.delta.content for c in chunks[1].choices] == ["The "]
    assert chunks[-1].choices == [] and chunks[-1].usage == answer.usage


def test_split_words_keeps_every_character() -> None:
    for text in ("", " ", "a", "  lead and trail  ", "one\ntwo\tthree"):
        assert "".join(split_words(text)) == text


def test_with_json_fields_keeps_url_and_headers() -> None:
    call = make_call("openai/gpt-4o-mini")
    request = OpenAIProvider().build_request(call)
    changed = with_json_fields(request, {"stream": True})
    assert changed.url == request.url
    assert changed.headers["authorization"] == request.headers["authorization"]
    body = json.loads(changed.content)
    assert body["stream"] is True and body["messages"] == call.messages
    assert int(changed.headers["content-length"]) == len(changed.content)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@given(
    body=st.dictionaries(st.sampled_from(["model", "stream", "messages", "n", "x"]), _json),
    fields=st.dictionaries(st.sampled_from(["stream", "stream_options", "n"]), _json, min_size=1),
)
def test_with_json_fields_equals_a_decoded_update(body: dict[str, Any], fields: dict[str, Any]) -> None:
    request = httpx.Request("POST", "http://h/v1", json=body, headers={"x-key": "v"})
    changed = with_json_fields(request, fields)
    assert json.loads(changed.content) == {**body, **fields}
    assert int(changed.headers["content-length"]) == len(changed.content)
    assert changed.headers["x-key"] == "v" and changed.url == request.url


async def _no_send(request: httpx.Request) -> httpx.Response:
    raise AssertionError("offline models must not send")


# --- ResponseStream -----------------------------------------------------------------------

TEXT_SSE = sse(
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "Stock"}}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "holm"}, "finish_reason": "stop"}]},
    "[DONE]",
)


@pytest.mark.asyncio
async def test_nothing_is_sent_before_iteration_and_response_is_set_at_the_end() -> None:
    call = make_call("openai/gpt-4o-mini")
    provider = OpenAIProvider()
    url = str(provider.build_stream_request(call).url)
    with respx.mock(assert_all_called=False) as router:
        route = router.post(url).mock(
            return_value=httpx.Response(200, content=TEXT_SSE,
                                        headers={"content-type": "text/event-stream"})
        )
        async with httpx.AsyncClient() as client:
            stream = provider.stream(call, functools.partial(client.send, stream=True))
            assert route.call_count == 0
            first = await stream.__anext__()
            assert route.call_count == 1
            assert first.choices[0].delta.role == "assistant"
            assert stream.response is None and not stream.done
            assert stream.chunks_yielded == 1
            rest = [chunk async for chunk in stream]
    assert [c.content for c in rest] == ["Stock", "holm"]
    assert stream.chunks_yielded == 3
    assert stream.done and stream.response is not None
    assert stream.response.content == "Stockholm"
    meta = stream.response.harness
    assert meta.ttft_ms is not None and meta.first_text_ms is not None
    assert meta.ttft_ms <= meta.latency_ms
    assert meta.ttft_ms == stream.ttft_ms and meta.latency_ms == stream.latency_ms
    assert stream.ttfb_ms is not None and stream.ttfb_ms <= meta.ttft_ms


@pytest.mark.asyncio
async def test_collect_returns_the_assembled_answer() -> None:
    call = make_call("openai/gpt-4o-mini")
    provider = OpenAIProvider()
    url = str(provider.build_stream_request(call).url)
    with respx.mock(assert_all_called=False) as router:
        router.post(url).mock(return_value=httpx.Response(200, content=TEXT_SSE))
        async with httpx.AsyncClient() as client:
            stream = provider.stream(call, functools.partial(client.send, stream=True))
            response = await collect(stream)
    assert response.content == "Stockholm"
    assert response.harness.request_id is None


@pytest.mark.asyncio
async def test_breaking_off_closes_the_response() -> None:
    call = make_call("openai/gpt-4o-mini")
    body = Pieces(TEXT_SSE, size=len(TEXT_SSE) // 4)
    provider = OpenAIProvider()
    url = str(provider.build_stream_request(call).url)
    with respx.mock(assert_all_called=False) as router:
        router.post(url).mock(return_value=httpx.Response(200, stream=body))
        async with httpx.AsyncClient() as client:
            async with provider.stream(call, functools.partial(client.send, stream=True)) as s:
                async for _ in s:
                    break
                assert not body.closed
            assert body.closed
            assert s.response is None


@pytest.mark.asyncio
async def test_error_status_is_raised_before_parsing_and_closes_the_response() -> None:
    call = make_call("openai/gpt-4o-mini")
    body = Pieces(b'{"error": {"message": "slow down", "type": "requests", '
                  b'"code": "rate_limit_exceeded"}}')
    with pytest.raises(errors.RateLimitError) as info:
        await run_stream(OpenAIProvider(), call, body, status=429,
                         headers={"retry-after": "7", "content-type": "application/json"})
    assert info.value.retry_after == 7.0
    assert "slow down" in str(info.value)
    assert body.closed


@pytest.mark.asyncio
async def test_a_server_that_ignores_stream_is_replayed_from_its_json_answer() -> None:
    call = make_call("openai/gpt-4o-mini")
    answer = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1767225600,
              "model": "gpt-4o-mini",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Stockholm"}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
    chunks, stream, _ = await run_stream(
        OpenAIProvider(), call, json.dumps(answer).encode(),
        headers={"content-type": "application/json", "x-request-id": "req-9"},
    )
    assert_chunks_valid(chunks)
    assert joined_text(chunks) == "Stockholm"
    assert stream.response is not None
    assert stream.response.to_dict() == OpenAIProvider().parse_response(call, answer, {}).to_dict()
    assert stream.response.harness.request_id == "req-9"
    assert stream.ttft_ms is not None


@pytest.mark.asyncio
async def test_a_connection_that_breaks_mid_body_is_a_connection_error() -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield TEXT_SSE[:60]
            raise httpx.RemoteProtocolError("peer closed connection")

    with pytest.raises(errors.APIConnectionError, match="stream broke"):
        await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"), Broken())


@pytest.mark.asyncio
async def test_a_read_timeout_is_a_timeout_error() -> None:
    class Stalled(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield TEXT_SSE[:60]
            raise httpx.ReadTimeout("no bytes for 300 s")

    with pytest.raises(errors.TimeoutError):
        await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"), Stalled())


@pytest.mark.asyncio
async def test_send_failure_is_a_connection_error() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    stream = OpenAIProvider().stream(make_call("openai/gpt-4o-mini"), refuse)
    with pytest.raises(errors.APIConnectionError, match="ConnectError"):
        await collect(stream)


@pytest.mark.asyncio
async def test_bad_input_is_raised_from_the_iteration_not_from_stream() -> None:
    call = make_call("anthropic/claude-sonnet-4-5", messages=[{"role": "narrator", "content": "x"}])
    stream = get_provider("anthropic").stream(call, _no_send)
    with pytest.raises(errors.BadRequestError, match="unsupported role"):
        await collect(stream)


@pytest.mark.asyncio
async def test_n_is_refused_where_one_stream_cannot_carry_several_choices() -> None:
    for model in ("anthropic/claude-sonnet-4-5", "cohere/command-a-03-2025", "ollama/llama3.2"):
        family = parse_model_string(model).family
        stream = get_provider(family).stream(make_call(model, n=2), _no_send)
        with pytest.raises(errors.BadRequestError, match="n=2 cannot be streamed"):
            await collect(stream)


@pytest.mark.asyncio
async def test_providers_without_streaming_refuse() -> None:
    class Plain(HTTPProvider):
        family = ""

        def build_request(self, call: Call) -> httpx.Request:
            return httpx.Request("POST", "https://x.test/")

        def parse_response(self, call: Call, data: Any, headers: Any) -> Any:
            return None

    with pytest.raises(errors.BadRequestError, match="cannot stream"):
        await collect(Plain().stream(make_call("openai/gpt-4o-mini"), _no_send))

    class Bare(Provider):
        async def generate(self, call: Call, send: Any) -> Any:
            return None

    with pytest.raises(errors.BadRequestError, match="cannot stream"):
        await collect(Bare().stream(make_call("openai/gpt-4o-mini"), _no_send))


@pytest.mark.asyncio
async def test_ttft_uses_the_injected_clock_and_skips_the_role_chunk() -> None:
    clock = FakeClock()
    body = Ticking(split_events(TEXT_SSE), clock)
    _, stream, _ = await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"), body,
                                    clock=clock)
    # Event 1 (clock 1 s) is role-only; event 2 (2 s) has the first text; [DONE] is event 4.
    assert stream.ttft_ms == 2000.0
    assert stream.first_text_ms == 2000.0
    assert stream.latency_ms == 4000.0
    assert stream.ttfb_ms == 0.0


# --- offline models -----------------------------------------------------------------------


@pytest.fixture
def fake_sleep(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeClock, list[float]]:
    """Replace the offline models' sleep: it records the delay and moves a fake clock."""
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr("harness.providers.offline.asyncio.sleep", sleep)
    return clock, slept


@pytest.mark.asyncio
async def test_mock_streams_words_after_its_ttft(fake_sleep: tuple[FakeClock, list[float]]) -> None:
    clock, slept = fake_sleep
    call = make_call("mock/demo", key=None,
                     mock_response={"content": "Stockholm is the capital.", "ttft_ms": 50,
                                    "latency_ms": 200})
    stream = MockProvider().stream(call, _no_send, clock=clock)
    chunks = [chunk async for chunk in stream]
    assert_chunks_valid(chunks)
    assert [c.content for c in chunks[1:5]] == ["Stockholm ", "is ", "the ", "capital."]
    assert slept[0] == 0.05
    assert stream.ttft_ms == 50.0 and stream.first_text_ms == 50.0
    assert stream.latency_ms == pytest.approx(200.0)
    assert stream.response is not None
    plain_answer = await MockProvider().generate(call, _no_send)
    assert plain(stream.response) | {"id": ""} == plain(plain_answer) | {"id": ""}
    assert {chunk.id for chunk in chunks} == {stream.response.id}


@pytest.mark.asyncio
async def test_mock_latency_comes_before_the_first_chunk(
    fake_sleep: tuple[FakeClock, list[float]],
) -> None:
    clock, slept = fake_sleep
    call = make_call("mock/demo", key=None, mock_response="ok", mock_latency_ms=30)
    stream = MockProvider().stream(call, _no_send, clock=clock)
    response = await collect(stream)
    assert response.content == "ok"
    assert slept == [0.03]
    assert stream.ttft_ms == 30.0 and response.harness.latency_ms == 30.0


@pytest.mark.asyncio
async def test_mock_stream_raises_its_simulated_error_before_any_chunk() -> None:
    call = make_call("mock/demo", key=None, mock_response={"error": 503})
    stream = MockProvider().stream(call, _no_send)
    with pytest.raises(errors.ServiceUnavailableError):
        await stream.__anext__()


@pytest.mark.asyncio
async def test_mock_streams_tool_calls_and_n_choices() -> None:
    tool = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    call = make_call("mock/demo", key=None, n=2, mock_response={"tool_calls": [tool]})
    stream = MockProvider().stream(call, _no_send)
    chunks = [chunk async for chunk in stream]
    assert_chunks_valid(chunks)
    assert stream.response is not None
    assert [c.finish_reason for c in stream.response.choices] == ["tool_calls", "tool_calls"]
    assert stream.response.choices[1].message.tool_calls is not None
    assert stream.response.choices[1].message.tool_calls[0].to_dict() == tool
    streamed = [t.to_dict() for ch in chunks for c in ch.choices if c.index == 1
                for t in c.delta.tool_calls or []]
    assert streamed == [{"index": 0, **tool}]
    assert stream.ttft_ms is not None and stream.first_text_ms is None


@pytest.mark.asyncio
async def test_mock_stream_is_cancellable_while_waiting() -> None:
    call = make_call("mock/demo", key=None, mock_response={"content": "late", "latency_ms": 60000})
    stream = MockProvider().stream(call, _no_send)
    task = asyncio.ensure_future(collect(stream))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.response is None


@pytest.mark.asyncio
async def test_echo_streams_the_last_user_message() -> None:
    call = make_call("echo/x", key=None, messages=[{"role": "user", "content": "say this back"}])
    stream = EchoProvider().stream(call, _no_send)
    chunks = [chunk async for chunk in stream]
    assert joined_text(chunks) == "say this back"
    assert stream.response is not None and stream.response.content == "say this back"
    ChatCompletion.model_validate(stream.response.to_dict())


# --- real sockets: the lean transport ------------------------------------------------------

SOCKET_HEAD = sse(
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "Stock"}}]},
)
SOCKET_TAIL = sse(
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "holm"}, "finish_reason": "stop"}]},
    "[DONE]",
)


class HoldingServer(LocalServer):
    """The local server, answering every request with a chunked event stream that sends
    ``head``, then holds until ``release`` is set (or the client goes away), then ``tail``.

    A server of its own rather than the session's: it writes its answer in two parts, with
    its own ``_serve``, which a handler's ``Reply`` cannot express.
    """

    def __init__(self, head: bytes, tail: bytes) -> None:
        super().__init__(lambda request: Reply())
        self.head, self.tail = head, tail
        self.release = threading.Event()

    def __enter__(self) -> HoldingServer:
        super().__enter__()
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in lines[1:]) if k}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            method, path, _ = lines[0].split(" ", 2)
            self.requests.append(Request(method, path, headers, body))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n" + _chunk(self.head))
            await writer.drain()
            if not await self._wait(Reply(release=self.release), reader):
                self.disconnects += 1
                self.disconnected.set()
                return
            writer.write(_chunk(self.tail) + b"0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.asyncio
async def test_lean_transport_streams_a_chunked_event_stream(local_server) -> None:
    server = local_server(lambda r: Reply(body=SOCKET_HEAD + SOCKET_TAIL, chunked=True,
                                          headers={"content-type": "text/event-stream"}))
    cache = ClientCache("lean")
    call = make_call("openai/gpt-4o-mini", api_base=server.url)
    stream = OpenAIProvider().stream(call, cache.stream_sender())
    response = await collect(stream)
    cache.close_all()
    assert response.content == "Stockholm"
    assert json.loads(server.requests[0].body)["stream"] is True
    assert server.requests[0].path == "/chat/completions"


@pytest.mark.asyncio
async def test_chunks_arrive_before_the_server_has_finished() -> None:
    with HoldingServer(SOCKET_HEAD, SOCKET_TAIL) as server:
        cache = ClientCache("lean")
        call = make_call("openai/gpt-4o-mini", api_base=server.url)
        stream = OpenAIProvider().stream(call, cache.stream_sender())
        seen = []
        async for chunk in stream:
            seen.append(chunk.content)
            if chunk.content == "Stock":
                assert not server.release.is_set()  # the tail has not been sent yet
                server.release.set()
        cache.close_all()
    assert seen == ["", "Stock", "holm"]
    assert stream.response is not None and stream.response.content == "Stockholm"
    assert not server.disconnected.is_set()


@pytest.mark.asyncio
async def test_cancelling_the_iteration_closes_the_socket() -> None:
    with HoldingServer(SOCKET_HEAD, SOCKET_TAIL) as server:
        cache = ClientCache("lean")
        call = make_call("openai/gpt-4o-mini", api_base=server.url)
        stream = OpenAIProvider().stream(call, cache.stream_sender())
        got_text = asyncio.Event()

        async def consume() -> None:
            async for chunk in stream:
                if chunk.content:
                    got_text.set()

        task = asyncio.ensure_future(consume())
        await got_text.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(server.disconnected.wait, 10)
        cache.close_all()
    assert server.disconnects == 1
    assert not server.release.is_set()
    assert stream.response is None


@pytest.mark.asyncio
async def test_aclose_after_a_break_closes_the_socket() -> None:
    with HoldingServer(SOCKET_HEAD, SOCKET_TAIL) as server:
        cache = ClientCache("lean")
        call = make_call("openai/gpt-4o-mini", api_base=server.url)
        async with OpenAIProvider().stream(call, cache.stream_sender()) as stream:
            async for chunk in stream:
                if chunk.content:
                    break
        assert await asyncio.to_thread(server.disconnected.wait, 10)
        cache.close_all()
    assert stream.ttft_ms is not None and stream.response is None


@pytest.mark.asyncio
async def test_a_gzipped_event_stream_is_decoded() -> None:
    import gzip

    _, stream, _ = await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"),
                                    Pieces(gzip.compress(TEXT_SSE), 5),
                                    headers={"content-encoding": "gzip"})
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_a_body_that_does_not_decode_is_an_invalid_response() -> None:
    with pytest.raises(errors.InvalidResponseError, match="cannot decode"):
        await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"),
                         Pieces(b"not gzip at all"), headers={"content-encoding": "gzip"})


# --- what a misbehaving server sends (see also tests/faults) ------------------------------


@pytest.mark.asyncio
async def test_a_connection_that_breaks_after_the_finish_reason_keeps_the_answer() -> None:
    class BrokenAfterFinish(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield TEXT_SSE.split(b"data: [DONE]")[0]  # every event up to [DONE]
            raise httpx.ReadError("connection reset by peer")

    _, stream, _ = await run_stream(
        OpenAIProvider(), make_call("openai/gpt-4o-mini"), BrokenAfterFinish()
    )
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_a_timeout_after_the_finish_reason_is_still_a_timeout() -> None:
    class StalledAfterFinish(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield TEXT_SSE.split(b"data: [DONE]")[0]
            raise httpx.ReadTimeout("no bytes for 300 s")

    with pytest.raises(errors.TimeoutError):
        await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"), StalledAfterFinish())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("ctype", "body", "shown"),
    [
        ("text/html", b"<html><head><title>Just a moment...</title></head></html>", "Just a moment"),
        ("text/plain; charset=utf-8", b"rate limited, try later", "rate limited, try later"),
        ("application/octet-stream", b"", "an empty body"),
    ],
)
async def test_a_stream_answered_with_another_content_type_is_refused(
    ctype: str, body: bytes, shown: str
) -> None:
    with pytest.raises(errors.InvalidResponseError, match="not text/event-stream") as info:
        await run_stream(
            OpenAIProvider(),
            make_call("openai/gpt-4o-mini"),
            Pieces(body, 5),
            headers={"content-type": ctype},
        )
    assert repr(ctype) in str(info.value) and shown in str(info.value)
    assert info.value.status == 200 and not info.value.retryable


@pytest.mark.asyncio
async def test_events_under_another_content_type_are_still_read() -> None:
    _, stream, _ = await run_stream(
        OpenAIProvider(),
        make_call("openai/gpt-4o-mini"),
        Pieces(b"\n: keep-alive\n\n" + TEXT_SSE, 4),
        headers={"content-type": "text/plain"},
    )
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_stream_bytes_that_are_not_utf8_are_an_invalid_response() -> None:
    body = TEXT_SSE.replace(b"Stock", b"St\xf0\x28ck")
    with pytest.raises(errors.InvalidResponseError, match="not UTF-8: invalid UTF-8 at byte"):
        await run_stream(OpenAIProvider(), make_call("openai/gpt-4o-mini"), Pieces(body, 7))


@pytest.mark.asyncio
async def test_a_body_without_any_event_is_an_invalid_response() -> None:
    with pytest.raises(errors.InvalidResponseError, match="holds no server-sent events"):
        await run_stream(
            OpenAIProvider(), make_call("openai/gpt-4o-mini"), b"Service Unavailable\n"
        )


@pytest.mark.asyncio
@pytest.mark.parametrize("gzipped", [False, True])
async def test_the_call_limit_holds_for_a_response_handed_over_by_httpx(gzipped: bool) -> None:
    import gzip

    call = make_call("openai/gpt-4o-mini")
    call.max_response_bytes = 1000
    body = TEXT_SSE.split(b"data: [DONE]")[0] * 20  # about 9 KB of events, never [DONE]
    headers = {"content-encoding": "gzip"} if gzipped else {}
    with pytest.raises(errors.InvalidResponseError, match="max_response_bytes=1000") as info:
        await run_stream(
            OpenAIProvider(),
            call,
            Pieces(gzip.compress(body) if gzipped else body, 100),
            headers=headers,
        )
    assert ("decompressed" in str(info.value)) is gzipped
    assert "(1000 bytes); raise it with max_response_bytes=" in str(info.value)


@pytest.mark.asyncio
async def test_the_limit_rides_on_every_request() -> None:
    seen: list[object] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("harness.max_response_bytes"))
        if b'"stream":true' in request.content:
            return httpx.Response(200, content=TEXT_SSE, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=json.loads(json.dumps(_chat_answer())))

    client = ClientCache(httpx.MockTransport(answer))
    call = make_call("openai/gpt-4o-mini")
    call.max_response_bytes = 12345
    await OpenAIProvider().generate(call, client.sender())
    await collect(OpenAIProvider().stream(call, client.stream_sender()))
    assert seen == [12345, 12345]
    assert make_call("openai/x").max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 32 << 20


def _chat_answer() -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x"}}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
