"""Streaming through the runner: stream=True iterators, TTFT under the hood, cache, sync use."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

import harness
from harness import Harness, RateLimitError
from harness.limits import CostBudget, SharedLimiter
from harness.providers import streams
from tests.helpers.local_server import Reply

USER = [{"role": "user", "content": "Capital of Sweden?"}]
KEY = "sk-test-stream-runner-0123456789"

SSE = (
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Stock"},"finish_reason":null}]}\n\n'
    ': keep-alive\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"holm"},"finish_reason":"stop"}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    "data: [DONE]\n\n"
)


def sse_transport(seen: list[httpx.Request], responses: list[httpx.Response] | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if responses:
            return responses.pop(0)
        return httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


@pytest.mark.asyncio
async def test_acompletion_stream_yields_chunks_and_assembles():
    seen: list[httpx.Request] = []
    h = Harness(transport=sse_transport(seen))
    stream = await h.acompletion("openai/gpt-4o-mini", USER, stream=True, api_key=KEY)
    pieces: list[str] = []
    async for chunk in stream:
        pieces.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert "".join(pieces) == "Stockholm"
    assert stream.response.content == "Stockholm" and stream.response.usage.total_tokens == 7
    assert stream.response.harness.ttft_ms is not None
    body = seen[0].read()
    assert b'"stream":true' in body and b'"include_usage":true' in body


def test_sync_completion_stream_and_batch_stream_under_the_hood():
    seen: list[httpx.Request] = []
    h = Harness(transport=sse_transport(seen))
    stream = h.completion("openai/m", USER, stream=True, api_key=KEY)
    text = "".join(c.delta.content or "" for chunk in stream for c in chunk.choices)
    assert text == "Stockholm" and stream.response.content == "Stockholm"
    [answer] = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY)
    assert answer.content == "Stockholm" and answer.harness.ttft_ms is not None
    assert answer.harness.ttft_ms <= answer.harness.latency_ms
    assert b'"stream":true' in seen[-1].read()


def test_a_failed_stream_is_retried_and_the_error_typed():
    seen: list[httpx.Request] = []
    responses = [
        httpx.Response(429, headers={"retry-after": "0"}, json={"error": {"message": "slow"}}),
        httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"}),
    ]
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    h = Harness(transport=sse_transport(seen, responses), sleep=record)
    [answer] = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY, num_retries=1)
    assert answer.content == "Stockholm" and answer.harness.attempts == 2 and len(seen) == 2
    seen.clear()
    responses[:] = [httpx.Response(429, json={"error": {"message": "slow"}})]
    [failed] = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY, num_retries=0)
    assert isinstance(failed, RateLimitError)


def test_streamed_answers_are_stored_with_their_ttft(tmp_path):
    seen: list[httpx.Request] = []
    h = Harness(transport=sse_transport(seen), cache=tmp_path / "c.sqlite")
    first = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY)[0]
    again = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY)[0]
    assert len(seen) == 1 and again.harness.replayed
    assert again.harness.ttft_ms == pytest.approx(first.harness.ttft_ms, abs=0.01)


def _stored_entries(h: Harness, tmp_path) -> list[dict]:
    out = tmp_path / "export.jsonl"
    h.cache.export(out)
    entries = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    for entry in entries:
        if entry["raw_encoding"] == "base64":
            entry["raw"] = base64.b64decode(entry["raw"]).decode()
    return entries


def test_the_store_keeps_a_streams_chunks_with_timing_and_its_raw_bytes(tmp_path):
    seen: list[httpx.Request] = []
    h = Harness(transport=sse_transport(seen), cache=tmp_path / "c.sqlite")
    streamed = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY)[0]
    [entry] = _stored_entries(h, tmp_path)
    times = [ms for ms, _ in entry["chunks"]]
    assert times == sorted(times) and times[-1] <= streamed.harness.latency_ms
    text = "".join(c["delta"].get("content") or "" for _, chunk in entry["chunks"] for c in chunk["choices"])
    assert text == "Stockholm" and entry["chunks"][-1][1]["usage"]["total_tokens"] == 7
    assert "data: [DONE]" in entry["raw"] and KEY not in json.dumps(entry)


def test_the_store_keeps_a_whole_answers_raw_body(tmp_path):
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Oslo"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    h = Harness(transport=transport, cache=tmp_path / "c.sqlite")
    assert h.completion("openai/m", USER, api_key=KEY).content == "Oslo"
    [entry] = _stored_entries(h, tmp_path)
    assert json.loads(entry["raw"]) == body and entry["chunks"] is None


@pytest.mark.asyncio
async def test_a_stream_is_stored_then_replayed_chunk_for_chunk(tmp_path):
    seen: list[httpx.Request] = []
    price = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    config = {"models": {"m": {"model": "openai/m", "api_key_env": "NONE", "price": price}}}
    h = Harness(config, transport=sse_transport(seen), cache=tmp_path / "c.sqlite")
    live = await h.acompletion("m", USER, stream=True, api_key=KEY)
    live_chunks = [chunk.to_dict() async for chunk in live]
    assert live.response.harness.cost_usd == pytest.approx((5 * 1.0 + 2 * 2.0) / 1e6)
    assert not live.response.harness.replayed
    again = await h.acompletion("m", USER, stream=True, api_key=KEY)
    replayed_chunks = [chunk.to_dict() async for chunk in again]
    assert len(seen) == 1 and replayed_chunks == live_chunks
    meta = again.response.harness
    assert meta.replayed and meta.attempts == 0 and meta.saved_cost_usd == live.response.harness.cost_usd
    assert meta.ttft_ms == pytest.approx(live.response.harness.ttft_ms, abs=0.01)
    assert again.ttft_ms == meta.ttft_ms and again.response.content == "Stockholm"


def test_a_replay_miss_on_a_stream_fails_before_sending(tmp_path):
    seen: list[httpx.Request] = []
    h = Harness(transport=sse_transport(seen), cache=tmp_path / "c.sqlite", cache_mode="replay")
    with pytest.raises(harness.ReplayMissError, match="openai/m"):
        h.completion("openai/m", USER, stream=True)
    assert seen == []


def test_mock_models_stream_with_a_scripted_ttft():
    [r] = harness.batch_completion("mock/m", [USER], stream=True, mock_response="Stockholm", mock_ttft_ms=5)
    assert r.content == "Stockholm" and r.harness.ttft_ms is not None


def test_a_finished_stream_hands_its_connection_back_for_reuse(local_server):
    sse = Reply(body=SSE, headers={"content-type": "text/event-stream"}, chunked=True)
    server = local_server(lambda r: sse)
    h = Harness(retries=0)
    for _ in range(3):
        stream = h.completion("openai/m", USER, stream=True, api_base=server.url, api_key=KEY)
        assert "".join(c.delta.content or "" for ch in stream for c in ch.choices) == "Stockholm"
    answers = h.batch_completion(
        "openai/m", [USER] * 2, stream=True, max_workers=1, api_base=server.url, api_key=KEY
    )
    assert [a.content for a in answers] == ["Stockholm", "Stockholm"]
    assert len(server.requests) == 5 and server.connections == 1


def test_a_body_left_open_after_the_terminal_event_is_not_reused(local_server, monkeypatch):
    monkeypatch.setattr(streams, "DRAIN_TIMEOUT", 0.05)
    held = Reply(body=SSE, headers={"content-type": "text/event-stream"}, unfinished=True)
    server = local_server(lambda r: held)
    h = Harness(retries=0)
    for _ in range(2):
        [answer] = h.batch_completion(
            "openai/m", [USER], stream=True, api_base=server.url, api_key=KEY
        )
        assert answer.content == "Stockholm"
    assert server.connections == 2
    assert server.disconnected.wait(10)


@pytest.mark.asyncio
async def test_a_callers_stream_holds_the_models_slot_until_it_ends(tmp_path):
    go = asyncio.Event()
    lines = SSE.split("\n\n")

    async def body():
        yield (lines[0] + "\n\n").encode()
        await go.wait()
        yield "\n\n".join(lines[1:]).encode()

    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})
    )
    limits = SharedLimiter(tmp_path / "limits.sqlite")
    config = {"models": {"m": {"model": "openai/m", "api_key_env": "NONE", "max_concurrency": 1}}}
    h = Harness(config, transport=transport, limits=limits)
    stream = await h.acompletion("m", USER, stream=True, api_key=KEY)
    await stream.__anext__()
    assert limits.state("openai/m")["in_flight"] == 1
    assert limits.try_acquire("openai/m", max_concurrency=1) is None
    go.set()
    assert "".join([chunk.content or "" async for chunk in stream]) == "Stockholm"
    assert limits.state("openai/m")["in_flight"] == 0


@pytest.mark.asyncio
async def test_a_stream_broken_off_gives_its_slot_back(tmp_path):
    limits = SharedLimiter(tmp_path / "limits.sqlite")
    config = {"models": {"m": {"model": "openai/m", "api_key_env": "NONE", "max_concurrency": 1}}}
    h = Harness(config, transport=sse_transport([]), limits=limits)
    async with await h.acompletion("m", USER, stream=True, api_key=KEY) as stream:
        await stream.__anext__()
        assert limits.state("openai/m")["in_flight"] == 1
    assert limits.state("openai/m")["in_flight"] == 0


@pytest.mark.asyncio
async def test_a_stream_past_the_cost_cap_is_not_sent(tmp_path):
    seen: list[httpx.Request] = []
    budget = CostBudget(0.0, tmp_path / "limits.sqlite")
    h = Harness(transport=sse_transport(seen), budget=budget)
    stream = await h.acompletion("openai/m", USER, stream=True, api_key=KEY)
    with pytest.raises(harness.BudgetExceededError):
        await stream.__anext__()
    assert seen == []


def test_streamed_answers_carry_their_output_speed_into_records_and_the_store(tmp_path):
    from harness.results import make_record

    [r] = harness.batch_completion(
        "mock/m", [USER], stream=True, mock_response="one two three four", mock_ttft_ms=5,
        mock_latency_ms=40,
    )
    meta = r.harness  # 4 completion tokens over ~35 ms after the first: order of 100/s
    assert meta.tokens_per_s is not None and 0 < meta.tokens_per_s < r.usage.completion_tokens * 1000
    record = make_record(test_id="t", model="mock/m", result=r)
    assert record["tokens_per_s"] == meta.tokens_per_s

    seen: list[httpx.Request] = []
    h = Harness(transport=sse_transport(seen), cache=tmp_path / "c.sqlite")
    first = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY)[0]
    first.harness.tokens_per_s = 123.0  # what the recording says, whatever the clock did
    h.cache.put(
        next(iter(_stored_entries(h, tmp_path)))["key"], response=first,
        latency_ms=first.harness.latency_ms, provider="openai", model="m",
    )
    again = h.batch_completion("openai/m", [USER], stream=True, api_key=KEY)[0]
    assert again.harness.replayed and again.harness.tokens_per_s == 123.0


@pytest.mark.asyncio
async def test_a_stalled_stream_fails_with_a_timeout_and_frees_its_slot(tmp_path):
    lines = SSE.split("\n\n")

    async def stalls():
        yield (lines[0] + "\n\n").encode()
        await asyncio.Event().wait()  # the server goes quiet
        yield b""

    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=stalls(), headers={"content-type": "text/event-stream"})
    )
    limits = SharedLimiter(tmp_path / "limits.sqlite")
    config = {"models": {"m": {"model": "openai/m", "api_key_env": "NONE", "max_concurrency": 1}}}
    h = Harness(config, transport=transport, limits=limits, timeout=0.05)
    stream = await h.acompletion("m", USER, stream=True, api_key=KEY)
    first = await stream.__anext__()
    assert first.choices[0].delta.role == "assistant"
    with pytest.raises(harness.TimeoutError, match="no chunk within 0.05 s") as info:
        await stream.__anext__()
    assert info.value.model == "m"
    assert limits.state("openai/m")["in_flight"] == 0
