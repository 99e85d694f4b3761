"""Streaming tests of the Cohere Chat v2 adapter (docs/wire-formats.md §4.5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import errors
from harness.providers.cohere import CohereProvider
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

COHERE = CohereProvider()
MODEL = "cohere/command-a-03-2025"
USAGE = {"billed_units": {"input_tokens": 11, "output_tokens": 2},
         "tokens": {"input_tokens": 207, "output_tokens": 2}, "cached_tokens": 100}


def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def message(**fields: Any) -> dict[str, Any]:
    return {"message": fields}


START = ev("message-start", id="5f0d1c2e",
           delta=message(role="assistant", content=[], tool_plan="", tool_calls=[], citations=[]))


def end(finish: str = "COMPLETE", **extra: Any) -> tuple[str, dict[str, Any]]:
    return ev("message-end", delta={"finish_reason": finish, "usage": USAGE, **extra})


TEXT_STREAM = sse(
    START,
    ev("content-start", index=0, delta=message(content={"type": "text", "text": ""})),
    ev("content-delta", index=0, delta=message(content={"text": "Stock"})),
    ev("content-delta", index=0, delta=message(content={"text": "holm"})),
    ev("content-end", index=0),
    end(),
    "[DONE]",
)
TEXT_BODY = {
    "id": "5f0d1c2e", "finish_reason": "COMPLETE",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "Stockholm"}]},
    "usage": USAGE,
}


@pytest.mark.asyncio
async def test_text_stream_assembles_to_the_unstreamed_answer() -> None:
    call = make_call(MODEL)
    chunks, stream, _ = await run_stream(COHERE, call, TEXT_STREAM, include_usage=True)
    assert_chunks_valid(chunks)
    assert joined_text(chunks) == "Stockholm"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert stream.response is not None
    assert plain(stream.response) == plain(COHERE.parse_response(call, TEXT_BODY, {}))
    usage = stream.response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (207, 2, 100)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 209


@pytest.mark.asyncio
async def test_stream_request_sets_stream_and_asks_for_events() -> None:
    _, _, route = await run_stream(COHERE, make_call(MODEL, temperature=0.1), TEXT_STREAM)
    request = route.calls[0].request
    body = json.loads(request.content)
    assert body["stream"] is True and body["temperature"] == 0.1
    assert request.headers["accept"] == "text/event-stream"
    assert str(request.url) == "https://api.cohere.com/v2/chat"


@pytest.mark.asyncio
async def test_tool_plan_and_tool_calls_assemble_like_the_unstreamed_answer() -> None:
    body = sse(
        START,
        ev("tool-plan-delta", delta=message(tool_plan="I will check ")),
        ev("tool-plan-delta", delta=message(tool_plan="the weather.")),
        ev("tool-call-start", index=0, delta=message(tool_calls={
            "id": "get_weather_k2", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}})),
        ev("tool-call-delta", index=0,
           delta=message(tool_calls={"function": {"arguments": "{\"city\":"}})),
        ev("tool-call-delta", index=0,
           delta=message(tool_calls={"function": {"arguments": " \"Oslo\"}"}})),
        ev("tool-call-end", index=0),
        ev("tool-call-start", index=1, delta=message(tool_calls={
            "id": "get_time_q1", "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}})),
        ev("tool-call-end", index=1),
        end("TOOL_CALL"),
    )
    call = make_call(MODEL)
    chunks, stream, _ = await run_stream(COHERE, call, body)
    assert_chunks_valid(chunks)
    assert stream.response is not None
    expected = COHERE.parse_response(call, {
        "id": "5f0d1c2e", "finish_reason": "TOOL_CALL", "usage": USAGE,
        "message": {"role": "assistant", "tool_plan": "I will check the weather.",
                    "tool_calls": [
                        {"id": "get_weather_k2", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
                        {"id": "get_time_q1", "type": "function",
                         "function": {"name": "get_time", "arguments": "{}"}}]}}, {})
    assert plain(stream.response) == plain(expected)
    assert stream.response.choices[0].finish_reason == "tool_calls"
    assert stream.response.choices[0].message.reasoning_content == "I will check the weather."
    fragments = [t.to_dict() for ch in chunks for c in ch.choices for t in c.delta.tool_calls or []]
    assert fragments[0] == {"index": 0, "id": "get_weather_k2", "type": "function",
                            "function": {"name": "get_weather"}}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_thinking_content_is_reasoning() -> None:
    body = sse(
        START,
        ev("content-start", index=0, delta=message(content={"type": "thinking", "thinking": ""})),
        ev("content-delta", index=0, delta=message(content={"thinking": "Hmm."})),
        ev("content-end", index=0),
        ev("content-start", index=1, delta=message(content={"type": "text", "text": ""})),
        ev("content-delta", index=1, delta=message(content={"text": "Oslo"})),
        ev("content-end", index=1),
        end(),
    )
    call = make_call(MODEL)
    _, stream, _ = await run_stream(COHERE, call, body)
    assert stream.response is not None
    assert stream.response.content == "Oslo"
    assert stream.response.choices[0].message.reasoning_content == "Hmm."
    expected = COHERE.parse_response(call, {**TEXT_BODY, "message": {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "Hmm."}, {"type": "text", "text": "Oslo"}]}},
        {})
    assert plain(stream.response) == plain(expected)


@pytest.mark.asyncio
async def test_ttft_at_the_first_content_delta_not_message_start() -> None:
    clock = FakeClock()
    events = split_events(TEXT_STREAM)
    _, stream, _ = await run_stream(COHERE, make_call(MODEL), Ticking(events, clock), clock=clock)
    assert stream.ttft_ms == 3000.0  # message-start (1) and content-start (2) do not count
    assert stream.first_text_ms == 3000.0
    assert stream.latency_ms == 6000.0  # message-end, not the [DONE] after it


@pytest.mark.asyncio
async def test_tool_plan_counts_for_ttft_but_not_for_first_text() -> None:
    clock = FakeClock()
    body = sse(START, ev("tool-plan-delta", delta=message(tool_plan="Plan.")),
               ev("content-delta", index=0, delta=message(content={"text": "Hi"})), end())
    _, stream, _ = await run_stream(COHERE, make_call(MODEL), Ticking(split_events(body), clock),
                                    clock=clock)
    assert stream.ttft_ms == 2000.0 and stream.first_text_ms == 3000.0


@pytest.mark.asyncio
@pytest.mark.parametrize(("raw", "mapped"), [("MAX_TOKENS", "length"),
                                             ("STOP_SEQUENCE", "stop")])
async def test_finish_reasons(raw: str, mapped: str) -> None:
    body = TEXT_STREAM.replace(b'"COMPLETE"', json.dumps(raw).encode())
    _, stream, _ = await run_stream(COHERE, make_call(MODEL), body)
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == mapped
    assert stream.response.harness.raw_finish_reasons == [raw]


@pytest.mark.asyncio
async def test_message_end_error_raises() -> None:
    body = sse(START, ev("content-delta", index=0, delta=message(content={"text": "Sto"})),
               end("ERROR", error="internal generation failure"))
    with pytest.raises(errors.InternalServerError, match="internal generation failure"):
        await run_stream(COHERE, make_call(MODEL), body)


@pytest.mark.asyncio
async def test_message_end_timeout_raises_a_timeout() -> None:
    with pytest.raises(errors.TimeoutError):
        await run_stream(COHERE, make_call(MODEL), sse(START, end("TIMEOUT")))


@pytest.mark.asyncio
@pytest.mark.parametrize("keep", [0, 1, 4, 5])
async def test_truncated_stream_is_a_connection_error(keep: int) -> None:
    events = split_events(TEXT_STREAM)[:keep]  # message-end is the 6th event
    with pytest.raises(errors.APIConnectionError, match="stream ended before"):
        await run_stream(COHERE, make_call(MODEL), b"".join(events))


@pytest.mark.asyncio
async def test_done_without_message_end_is_truncated() -> None:
    body = b"".join(split_events(TEXT_STREAM)[:4]) + b"data: [DONE]\n\n"
    with pytest.raises(errors.APIConnectionError):
        await run_stream(COHERE, make_call(MODEL), body)


@pytest.mark.asyncio
async def test_pieces_and_keep_alives_and_ignored_events() -> None:
    body = b": ping\n\n" + TEXT_STREAM.replace(
        b"event: content-end",
        b'event: debug\ndata: {"type": "debug"}\n\nevent: content-end',
    )
    _, stream, _ = await run_stream(COHERE, make_call(MODEL), Pieces(body, 2))
    assert stream.response is not None and stream.response.content == "Stockholm"
