"""Streaming tests of the Anthropic Messages adapter (docs/wire-formats.md §2.5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import errors
from harness.providers.anthropic import AnthropicProvider
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

ANTHROPIC = AnthropicProvider()
MODEL = "anthropic/claude-sonnet-4-5"
START = {"type": "message_start", "message": {
    "id": "msg_01HkP3", "type": "message", "role": "assistant",
    "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": None,
    "stop_sequence": None,
    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 3,
              "cache_read_input_tokens": 10, "output_tokens": 1}}}


def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev("content_block_start", index=index, content_block=block)


def block_delta(index: int, **d: Any) -> tuple[str, dict[str, Any]]:
    return ev("content_block_delta", index=index, delta=d)


def message_delta(stop: str, output_tokens: int) -> tuple[str, dict[str, Any]]:
    return ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None},
              usage={"output_tokens": output_tokens})


TEXT_STREAM = sse(
    ("message_start", START),
    block_start(0, {"type": "text", "text": ""}),
    ev("ping"),
    block_delta(0, type="text_delta", text="Stock"),
    block_delta(0, type="text_delta", text="holm"),
    ev("content_block_stop", index=0),
    message_delta("end_turn", 6),
    ev("message_stop"),
)
TEXT_BODY: dict[str, Any] = {
    "id": "msg_01HkP3", "type": "message", "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Stockholm"}], "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 3,
              "cache_read_input_tokens": 10, "output_tokens": 6},
}

TOOL_STREAM = sse(
    ("message_start", START),
    block_start(0, {"type": "thinking", "thinking": ""}),
    block_delta(0, type="thinking_delta", thinking="Need the "),
    block_delta(0, type="thinking_delta", thinking="weather."),
    block_delta(0, type="signature_delta", signature="sig=="),
    ev("content_block_stop", index=0),
    block_start(1, {"type": "text", "text": ""}),
    block_delta(1, type="text_delta", text="Checking."),
    ev("content_block_stop", index=1),
    block_start(2, {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}}),
    block_delta(2, type="input_json_delta", partial_json=""),
    block_delta(2, type="input_json_delta", partial_json="{\"city\": "),
    block_delta(2, type="input_json_delta", partial_json="\"Oslo\"}"),
    ev("content_block_stop", index=2),
    block_start(3, {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}),
    ev("content_block_stop", index=3),
    message_delta("tool_use", 40),
    ev("message_stop"),
)
TOOL_BODY = {
    **TEXT_BODY,
    "content": [
        {"type": "thinking", "thinking": "Need the weather.", "signature": "sig=="},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use",
    "usage": {**TEXT_BODY["usage"], "output_tokens": 40},
}


@pytest.mark.asyncio
async def test_text_stream_assembles_to_the_unstreamed_answer() -> None:
    call = make_call(MODEL)
    chunks, stream, _ = await run_stream(ANTHROPIC, call, TEXT_STREAM)
    assert_chunks_valid(chunks)
    assert joined_text(chunks) == "Stockholm"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert stream.response is not None
    assert plain(stream.response) == plain(ANTHROPIC.parse_response(call, TEXT_BODY, {}))
    usage = stream.response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (38, 6, 10)
    assert stream.response.harness.raw_finish_reasons == ["end_turn"]


@pytest.mark.asyncio
async def test_tiny_pieces_give_the_same_answer() -> None:
    call = make_call(MODEL)
    _, whole, _ = await run_stream(ANTHROPIC, call, TOOL_STREAM)
    _, pieces, _ = await run_stream(ANTHROPIC, call, Pieces(TOOL_STREAM, 3))
    assert whole.response is not None and pieces.response is not None
    assert plain(pieces.response) == plain(whole.response)


@pytest.mark.asyncio
async def test_stream_request_sets_stream() -> None:
    _, _, route = await run_stream(ANTHROPIC, make_call(MODEL, max_tokens=7), TEXT_STREAM)
    request = route.calls[0].request
    body = json.loads(request.content)
    assert body["stream"] is True and body["max_tokens"] == 7
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"


@pytest.mark.asyncio
async def test_tool_use_thinking_and_text_assemble_like_the_unstreamed_answer() -> None:
    call = make_call(MODEL)
    chunks, stream, _ = await run_stream(ANTHROPIC, call, TOOL_STREAM)
    assert_chunks_valid(chunks)
    assert stream.response is not None
    expected = ANTHROPIC.parse_response(call, TOOL_BODY, {})
    assert plain(stream.response) == plain(expected)
    message = stream.response.choices[0].message
    assert message.reasoning_content == "Need the weather."
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    assert message.tool_calls[1].function.arguments == "{}"
    assert stream.response.choices[0].finish_reason == "tool_calls"
    # The chunks carry the tool calls OpenAI-style: a header, then argument fragments.
    fragments = [t.to_dict() for ch in chunks for c in ch.choices for t in c.delta.tool_calls or []]
    assert fragments[0] == {"index": 0, "id": "toolu_01A", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(f["function"].get("arguments", "") for f in fragments
                   if f["index"] == 0) == "{\"city\": \"Oslo\"}"
    assert fragments[-1]["index"] == 1 and fragments[-1]["id"] == "toolu_01B"
    reasoning = "".join(c.delta.reasoning_content or "" for ch in chunks for c in ch.choices)
    assert reasoning == "Need the weather."


@pytest.mark.asyncio
async def test_ttft_starts_at_the_first_content_block_delta() -> None:
    clock = FakeClock()
    events = split_events(TOOL_STREAM)
    _, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), Ticking(events, clock),
                                    clock=clock)
    # message_start (1) and content_block_start (2) do not count; the thinking delta (3) does.
    assert stream.ttft_ms == 3000.0
    # The first visible text is the text_delta, event 8.
    assert stream.first_text_ms == 8000.0
    assert stream.latency_ms == float(len(events)) * 1000.0


@pytest.mark.asyncio
async def test_ping_and_role_chunk_do_not_set_ttft() -> None:
    clock = FakeClock()
    events = split_events(TEXT_STREAM)
    _, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), Ticking(events, clock),
                                    clock=clock)
    assert stream.ttft_ms == 4000.0  # message_start, block start and ping come first


@pytest.mark.asyncio
async def test_output_tokens_are_cumulative_not_summed() -> None:
    body = sse(
        ("message_start", START),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, type="text_delta", text="Hi"),
        ev("content_block_stop", index=0),
        ev("message_delta", delta={}, usage={"output_tokens": 3}),
        message_delta("max_tokens", 9),
        ev("message_stop"),
    )
    chunks, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), body)
    assert stream.response is not None
    assert stream.response.usage.completion_tokens == 9
    assert stream.response.choices[0].finish_reason == "length"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.asyncio
@pytest.mark.parametrize(("raw", "mapped", "flags"), [
    ("stop_sequence", "stop", []), ("refusal", "content_filter", []),
    ("pause_turn", "stop", ["pause_turn"]),
])
async def test_finish_reasons(raw: str, mapped: str, flags: list[str]) -> None:
    body = TEXT_STREAM.replace(b'"end_turn"', json.dumps(raw).encode())
    _, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), body)
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == mapped
    assert stream.response.harness.raw_finish_reasons == [raw]
    assert stream.response.harness.flags == flags


@pytest.mark.asyncio
async def test_error_event_mid_stream_raises_the_mapped_error() -> None:
    body = sse(
        ("message_start", START),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, type="text_delta", text="Sto"),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                   "request_id": "req_011C"}),
    )
    with pytest.raises(errors.ServiceUnavailableError, match="Overloaded") as info:
        await run_stream(ANTHROPIC, make_call(MODEL), body)
    assert info.value.status is None  # the stream's status was 200; none is invented
    assert "HTTP" not in str(info.value)
    assert info.value.request_id == "req_011C"


@pytest.mark.asyncio
async def test_invalid_request_error_event_is_a_bad_request() -> None:
    body = sse(("error", {"type": "error",
                          "error": {"type": "invalid_request_error", "message": "bad"}}))
    with pytest.raises(errors.BadRequestError):
        await run_stream(ANTHROPIC, make_call(MODEL), body)


@pytest.mark.asyncio
@pytest.mark.parametrize("keep", [0, 2, 5, 6])
async def test_truncated_stream_is_a_connection_error(keep: int) -> None:
    events = split_events(TEXT_STREAM)[:keep]  # message_delta (the 7th event) never arrives
    with pytest.raises(errors.APIConnectionError, match="stream ended before"):
        await run_stream(ANTHROPIC, make_call(MODEL), b"".join(events))


@pytest.mark.asyncio
async def test_a_stream_that_ends_after_the_stop_reason_without_message_stop_is_complete() -> None:
    events = split_events(TEXT_STREAM)[:7]  # message_delta with stop_reason; no message_stop
    _, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), b"".join(events))
    assert stream.response is not None
    assert stream.response.model_dump()["choices"][0]["message"]["content"] == "Stockholm"
    assert stream.response.usage.completion_tokens == 6


@pytest.mark.asyncio
async def test_tool_input_that_is_not_json_is_an_invalid_response() -> None:
    body = sse(
        ("message_start", START),
        block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        block_delta(0, type="input_json_delta", partial_json="{\"a\": "),
        ev("content_block_stop", index=0),
    )
    with pytest.raises(errors.InvalidResponseError, match="not JSON"):
        await run_stream(ANTHROPIC, make_call(MODEL), body)


@pytest.mark.asyncio
async def test_keep_alive_comments_and_unknown_events_are_ignored() -> None:
    body = b": keep-alive\n\n" + TEXT_STREAM.replace(
        b"event: ping", b": comment\nevent: future_event"
    ).replace(b'"type": "ping"', b'"type": "future_event"')
    _, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), body)
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_redacted_thinking_is_flagged() -> None:
    body = sse(
        ("message_start", START),
        block_start(0, {"type": "redacted_thinking", "data": "EmwK..."}),
        ev("content_block_stop", index=0),
        block_start(1, {"type": "text", "text": ""}),
        block_delta(1, type="text_delta", text="Hi"),
        ev("content_block_stop", index=1),
        message_delta("end_turn", 2),
        ev("message_stop"),
    )
    _, stream, _ = await run_stream(ANTHROPIC, make_call(MODEL), body)
    assert stream.response is not None
    assert stream.response.harness.flags == ["redacted_thinking"]
    assert stream.response.content == "Hi"
