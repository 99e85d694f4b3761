"""Streaming tests of the Gemini adapter (docs/wire-formats.md §3.5)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from harness import errors
from harness.providers.gemini import GeminiProvider
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

GEMINI = GeminiProvider()
MODEL = "gemini/gemini-2.5-flash"
TAIL = {"modelVersion": "gemini-2.5-flash", "responseId": "r7bW"}


def chunk(*parts: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None,
          index: int | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}}
    if finish:
        candidate["finishReason"] = finish
    if index is not None:
        candidate["index"] = index
    return {"candidates": [candidate],
            "usageMetadata": usage or {"promptTokenCount": 12, "totalTokenCount": 12}, **TAIL}


FINAL_USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 2, "thoughtsTokenCount": 5,
               "totalTokenCount": 19}
TEXT_STREAM = sse(
    chunk({"text": "Stock"}),
    chunk({"text": "holm"}, finish="STOP", usage=FINAL_USAGE),
)
TEXT_BODY = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Stockholm"}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": FINAL_USAGE, **TAIL,
}


@pytest.mark.asyncio
async def test_text_stream_assembles_to_the_unstreamed_answer() -> None:
    call = make_call(MODEL)
    chunks, stream, _ = await run_stream(GEMINI, call, TEXT_STREAM)
    assert_chunks_valid(chunks)
    assert joined_text(chunks) == "Stockholm"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert stream.response is not None
    assert plain(stream.response) == plain(GEMINI.parse_response(call, TEXT_BODY, {}))
    assert stream.response.id == "r7bW" and stream.response.model == "gemini-2.5-flash"


@pytest.mark.asyncio
async def test_stream_request_uses_stream_generate_content_with_sse() -> None:
    call = make_call(MODEL, temperature=0.2)
    _, _, route = await run_stream(GEMINI, call, TEXT_STREAM)
    request = route.calls[0].request
    assert str(request.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert json.loads(request.content) == json.loads(GEMINI.build_request(call).content)
    assert request.headers["x-goog-api-key"] == call.api_key


@pytest.mark.asyncio
async def test_usage_repeats_and_the_last_one_is_kept() -> None:
    chunks, stream, _ = await run_stream(GEMINI, make_call(MODEL), TEXT_STREAM,
                                         include_usage=True)
    assert stream.response is not None
    usage = stream.response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 7, 19)
    assert usage.reasoning_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])  # only the usage chunk carries it
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 19


@pytest.mark.asyncio
async def test_function_calls_arrive_whole_and_get_stable_ids() -> None:
    body = sse(
        chunk({"text": "Let me check."}),
        chunk({"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
              {"functionCall": {"name": "get_time", "args": {}, "id": "fc_2"}},
              finish="STOP", usage=FINAL_USAGE),
    )
    call = make_call(MODEL)
    chunks, stream, _ = await run_stream(GEMINI, call, body)
    assert_chunks_valid(chunks)
    assert stream.response is not None
    choice = stream.response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    tools = choice.message.tool_calls or []
    streamed = [t for ch in chunks for c in ch.choices for t in c.delta.tool_calls or []]
    assert [t["id"] for t in streamed] == [t.id for t in tools]
    assert tools[0].id.startswith("call_") and tools[1].id == "fc_2"
    assert [t["index"] for t in streamed] == [0, 1]
    assert json.loads(tools[0].function.arguments) == {"city": "Oslo"}
    expected_body = {**TEXT_BODY, "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}, "id": tools[0].id}},
            {"functionCall": {"name": "get_time", "args": {}, "id": "fc_2"}}]},
        "finishReason": "STOP", "index": 0}]}
    assert plain(stream.response) == plain(GEMINI.parse_response(call, expected_body, {}))


@pytest.mark.asyncio
async def test_thought_parts_are_reasoning_and_ttft_precedes_first_text() -> None:
    clock = FakeClock()
    body = sse(
        chunk({"text": "", "thought": True}),
        chunk({"text": "Thinking", "thought": True}),
        chunk({"text": "Oslo"}, finish="STOP", usage=FINAL_USAGE),
    )
    _, stream, _ = await run_stream(GEMINI, make_call(MODEL), Ticking(split_events(body), clock),
                                    clock=clock)
    assert stream.response is not None
    assert stream.response.choices[0].message.reasoning_content == "Thinking"
    assert stream.response.content == "Oslo"
    assert stream.ttft_ms == 2000.0  # the empty part of chunk 1 is no output
    assert stream.first_text_ms == 3000.0
    assert stream.latency_ms == 3000.0


@pytest.mark.asyncio
async def test_candidates_are_kept_apart() -> None:
    body = sse(
        {"candidates": [{"content": {"parts": [{"text": "A"}]}},
                        {"content": {"parts": [{"text": "B"}]}, "index": 1}], **TAIL},
        {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
                        {"content": {"parts": [{"text": "b"}]}, "index": 1,
                         "finishReason": "MAX_TOKENS"}], **TAIL},
    )
    chunks, stream, _ = await run_stream(GEMINI, make_call(MODEL, n=2), body)
    assert joined_text(chunks, 1) == "Bb"
    assert stream.response is not None
    assert [(c.index, c.message.content, c.finish_reason) for c in stream.response.choices] == [
        (0, "Aa", "stop"), (1, "Bb", "length"),
    ]


@pytest.mark.asyncio
async def test_safety_finish_is_content_filter() -> None:
    body = sse(chunk({"text": "Once"}), chunk(finish="SAFETY",
                                              usage=FINAL_USAGE))
    chunks, stream, _ = await run_stream(GEMINI, make_call(MODEL), body)
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == "content_filter"
    assert stream.response.harness.raw_finish_reasons == ["SAFETY"]
    assert chunks[-1].choices[0].finish_reason == "content_filter"


@pytest.mark.asyncio
async def test_blocked_prompt_ends_the_stream_as_content_filter() -> None:
    body = sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, **TAIL})
    chunks, stream, _ = await run_stream(GEMINI, make_call(MODEL), body)
    assert_chunks_valid(chunks)
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == "content_filter"
    assert stream.response.harness.flags == ["prompt_blocked:PROHIBITED_CONTENT"]
    assert stream.ttft_ms is None


@pytest.mark.asyncio
async def test_error_payload_mid_stream_raises_the_mapped_error() -> None:
    body = sse(chunk({"text": "Sto"}),
               {"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}})
    with pytest.raises(errors.ServiceUnavailableError, match="overloaded"):
        await run_stream(GEMINI, make_call(MODEL), body)


@pytest.mark.asyncio
async def test_quota_error_mid_stream_keeps_its_retry_delay() -> None:
    error = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                       "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                    "retryDelay": "37s"}]}}
    with pytest.raises(errors.RateLimitError) as info:
        await run_stream(GEMINI, make_call(MODEL), sse(error))
    assert info.value.retry_after == 37.0


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [
    b"",
    sse(chunk({"text": "Stock"})),  # no finishReason: cut off
    sse({"candidates": [{"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
                        {"content": {"parts": [{"text": "B"}]}, "index": 1}], **TAIL}),
])
async def test_truncated_stream_is_a_connection_error(body: bytes) -> None:
    with pytest.raises(errors.APIConnectionError, match="stream ended before"):
        await run_stream(GEMINI, make_call(MODEL), body)


@pytest.mark.asyncio
async def test_pieces_crlf_and_keep_alives() -> None:
    body = b": keep-alive\r\n\r\n" + TEXT_STREAM.replace(b"\n", b"\r\n")
    _, stream, _ = await run_stream(GEMINI, make_call(MODEL), Pieces(body, 4))
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_last_event_without_blank_line_is_read() -> None:
    _, stream, _ = await run_stream(GEMINI, make_call(MODEL), TEXT_STREAM.rstrip(b"\n"))
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_a_connection_that_breaks_after_the_last_finish_reason_keeps_the_answer() -> None:
    class BrokenAfterFinish(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield TEXT_STREAM
            raise httpx.ReadError("connection reset by peer")

    _, stream, _ = await run_stream(GEMINI, make_call(MODEL), BrokenAfterFinish())
    assert stream.response is not None and stream.response.content == "Stockholm"
