"""Streaming tests of the OpenAI / OpenAI-compatible / Azure adapter (docs/wire-formats.md §1.5, §1.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import errors
from harness.providers.openai import AzureProvider, OpenAIProvider
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

OPENAI = OpenAIProvider()
AZURE = AzureProvider()
TOP = {"id": "chatcmpl-9fXk2", "object": "chat.completion.chunk", "created": 1767225600,
       "model": "gpt-4o-mini"}
USAGE = {"prompt_tokens": 38, "completion_tokens": 2, "total_tokens": 40,
         "prompt_tokens_details": {"cached_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 0}}


def chunk(*choices: dict[str, Any], usage: Any = None, **top: Any) -> dict[str, Any]:
    return {**TOP, "choices": list(choices), "usage": usage, **top}


def delta(finish: str | None = None, index: int = 0, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "finish_reason": finish}


TEXT_STREAM = sse(
    chunk(delta(role="assistant", content="")),
    chunk(delta(content="Stock")),
    chunk(delta(content="holm")),
    chunk(delta("stop")),
    chunk(usage=USAGE),
    "[DONE]",
)
TEXT_BODY = {
    "id": "chatcmpl-9fXk2", "object": "chat.completion", "created": 1767225600,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Stockholm"}}],
    "usage": USAGE,
}


@pytest.mark.asyncio
async def test_text_stream_assembles_to_the_unstreamed_answer() -> None:
    call = make_call("openai/gpt-4o-mini")
    chunks, stream, _ = await run_stream(OPENAI, call, TEXT_STREAM)
    assert_chunks_valid(chunks)
    assert joined_text(chunks) == "Stockholm"
    assert stream.response is not None
    expected = OPENAI.parse_response(call, TEXT_BODY, {})
    assert stream.response.to_dict() == expected.to_dict()
    assert stream.response.harness.raw_finish_reasons == ["stop"]
    assert stream.response.usage.total_tokens == 40
    assert stream.response.usage.cached_tokens == 0
    # The provider's usage chunk is not handed out unless asked for (as OpenAI does) ...
    assert all(c.choices and c.usage is None for c in chunks)
    # ... and with stream_options.include_usage it comes last, with no choices.
    asked, _, _ = await run_stream(OPENAI, call, TEXT_STREAM, include_usage=True)
    assert [c.to_dict() for c in asked[:-1]] == [c.to_dict() for c in chunks]
    assert asked[-1].choices == [] and asked[-1].usage == stream.response.usage


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 2, 7, 64])
async def test_tiny_pieces_give_the_same_answer(size: int) -> None:
    call = make_call("openai/gpt-4o-mini")
    whole, whole_stream, _ = await run_stream(OPENAI, call, TEXT_STREAM)
    pieces, piece_stream, _ = await run_stream(OPENAI, call, Pieces(TEXT_STREAM, size))
    assert [c.to_dict() for c in pieces] == [c.to_dict() for c in whole]
    assert whole_stream.response is not None and piece_stream.response is not None
    assert piece_stream.response.to_dict() == whole_stream.response.to_dict()


@pytest.mark.asyncio
async def test_stream_request_asks_for_usage() -> None:
    call = make_call("openai/gpt-4o-mini", max_tokens=5, stream_options={"other": 1})
    _, _, route = await run_stream(OPENAI, call, TEXT_STREAM)
    sent = json.loads(route.calls[0].request.content)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"other": 1, "include_usage": True}
    assert sent["max_completion_tokens"] == 5
    assert route.calls[0].request.url == "https://api.openai.com/v1/chat/completions"


def test_mistral_gets_no_stream_options() -> None:
    request = OPENAI.build_stream_request(make_call("mistral/mistral-small-latest"))
    body = json.loads(request.content)
    assert body["stream"] is True and "stream_options" not in body


def test_azure_stream_request_keeps_the_deployment_url() -> None:
    call = make_call("azure/my-deploy", api_base="https://res.openai.azure.com")
    request = AZURE.build_stream_request(call)
    assert str(request.url) == (
        "https://res.openai.azure.com/openai/deployments/my-deploy/chat/completions"
        "?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == call.api_key
    assert json.loads(request.content)["stream_options"] == {"include_usage": True}


@pytest.mark.asyncio
async def test_tool_call_fragments_are_merged_per_choice_and_index() -> None:
    stream_body = sse(
        chunk(delta(role="assistant", content=None)),
        chunk(delta(tool_calls=[{"index": 0, "id": "call_7Qx", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": "{\"ci"}}])),
        chunk(delta(tool_calls=[{"index": 1, "id": "call_8Zy", "type": "function",
                                 "function": {"name": "get_time", "arguments": "{}"}}])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": "ty\": \"Oslo\"}"}}])),
        chunk(delta("tool_calls")),
        chunk(usage=USAGE),
        "[DONE]",
    )
    call = make_call("openai/gpt-4o-mini")
    chunks, stream, _ = await run_stream(OPENAI, call, stream_body)
    assert_chunks_valid(chunks)
    assert stream.response is not None
    message = stream.response.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert [t.to_dict() for t in message.tool_calls] == [
        {"id": "call_7Qx", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        {"id": "call_8Zy", "type": "function",
         "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert stream.response.choices[0].finish_reason == "tool_calls"
    body = {**TEXT_BODY, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [t.to_dict() for t in message.tool_calls]}}]}
    assert stream.response.to_dict() == OPENAI.parse_response(call, body, {}).to_dict()
    assert stream.first_text_ms is None and stream.ttft_ms is not None


@pytest.mark.asyncio
async def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    stream_body = sse(
        chunk(delta(tool_calls=[{"id": "a", "function": {"name": "f", "arguments": "{\"x\""}}])),
        chunk(delta(tool_calls=[{"function": {"arguments": ": 1}"}}])),
        chunk(delta(tool_calls=[{"id": "b", "function": {"name": "g", "arguments": {"y": 2}}}])),
        chunk(delta("tool_calls")),
        "[DONE]",
    )
    _, stream, _ = await run_stream(OPENAI, make_call("ollama/llama3.2", key=None), stream_body)
    assert stream.response is not None
    tools = stream.response.choices[0].message.tool_calls or []
    assert [(t.id, t.function.name, t.function.arguments) for t in tools] == [
        ("a", "f", "{\"x\": 1}"), ("b", "g", "{\"y\": 2}"),
    ]


@pytest.mark.asyncio
async def test_azure_choice_less_first_chunk_is_skipped() -> None:
    stream_body = sse(
        {"id": "", "object": "", "created": 0, "model": "", "choices": [],
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        chunk(delta(role="assistant", content=""), model="gpt-4o-2024-11-20"),
        chunk(delta(content="Hi"), model="gpt-4o-2024-11-20"),
        chunk(delta("stop"), model="gpt-4o-2024-11-20"),
        "[DONE]",
    )
    call = make_call("azure/my-deploy", api_base="https://res.openai.azure.com")
    chunks, stream, _ = await run_stream(AZURE, call, stream_body)
    assert len(chunks) == 3
    assert_chunks_valid(chunks)
    assert stream.response is not None
    assert stream.response.id == "chatcmpl-9fXk2"
    assert stream.response.model == "gpt-4o-2024-11-20"
    assert stream.response.content == "Hi"


@pytest.mark.asyncio
async def test_groq_usage_in_x_groq_is_read() -> None:
    stream_body = sse(
        chunk(delta(role="assistant", content="")),
        chunk(delta(content="Hi")),
        chunk(delta("stop"), x_groq={"id": "req_1", "usage": {
            "prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}),
        "[DONE]",
    )
    chunks, stream, _ = await run_stream(OPENAI, make_call("groq/llama-3.1-8b-instant"),
                                         stream_body, include_usage=True)
    assert stream.response is not None
    assert stream.response.usage.total_tokens == 10
    assert chunks[-2].usage is None  # Groq put it on the finish chunk; it is moved to the end
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 9


@pytest.mark.asyncio
async def test_reasoning_deltas_go_to_reasoning_content_and_count_for_ttft_only() -> None:
    clock = FakeClock()
    stream_body = sse(
        chunk(delta(role="assistant", content="")),
        chunk(delta(reasoning_content="Think")),
        chunk(delta(reasoning="ing.")),
        chunk(delta(content="Oslo")),
        chunk(delta("stop")),
        "[DONE]",
    )
    _, stream, _ = await run_stream(OPENAI, make_call("deepseek/deepseek-reasoner"),
                                    Ticking(split_events(stream_body), clock), clock=clock)
    assert stream.response is not None
    assert stream.response.choices[0].message.reasoning_content == "Thinking."
    assert stream.response.content == "Oslo"
    assert stream.ttft_ms == 2000.0  # the first reasoning delta (event 2)
    assert stream.first_text_ms == 4000.0  # the first visible text (event 4)


@pytest.mark.asyncio
async def test_ttft_is_not_set_by_a_role_only_chunk() -> None:
    clock = FakeClock()
    events = split_events(TEXT_STREAM)
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"),
                                    Ticking(events, clock), clock=clock)
    assert stream.ttft_ms == 2000.0
    assert stream.first_text_ms == 2000.0
    assert stream.latency_ms == float(len(events)) * 1000.0
    assert stream.response is not None
    assert stream.response.harness.ttft_ms == 2000.0


@pytest.mark.asyncio
async def test_a_stream_without_output_has_no_ttft() -> None:
    stream_body = sse(chunk(delta(role="assistant", content="")), chunk(delta("length")), "[DONE]")
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), stream_body)
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == "length"
    assert stream.ttft_ms is None and stream.first_text_ms is None


@pytest.mark.asyncio
async def test_n_choices_interleaved() -> None:
    stream_body = sse(
        chunk(delta(role="assistant", content=""), delta(index=1, role="assistant", content="")),
        chunk(delta(index=1, content="B")),
        chunk(delta(content="A")),
        chunk(delta("stop"), delta("length", index=1)),
        "[DONE]",
    )
    chunks, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini", n=2), stream_body)
    assert joined_text(chunks, 1) == "B"
    assert stream.response is not None
    assert [(c.index, c.message.content, c.finish_reason) for c in stream.response.choices] == [
        (0, "A", "stop"), (1, "B", "length"),
    ]
    assert stream.response.harness.raw_finish_reasons == ["stop", "length"]


@pytest.mark.asyncio
async def test_finish_reasons_are_mapped_and_raw_values_kept() -> None:
    for raw, mapped in [("eos", "stop"), ("model_length", "length"),
                        ("content_filter", "content_filter")]:
        body = sse(chunk(delta(content="x")), chunk(delta(raw)), "[DONE]")
        chunks, stream, _ = await run_stream(OPENAI, make_call("together/x"), body)
        assert chunks[-1].choices[0].finish_reason == mapped
        assert stream.response is not None
        assert stream.response.choices[0].finish_reason == mapped
        assert stream.response.harness.raw_finish_reasons == [raw]


@pytest.mark.asyncio
async def test_keep_alive_comments_are_ignored() -> None:
    body = b": OPENROUTER PROCESSING\n\n: keep-alive\n\n" + TEXT_STREAM.replace(
        b"\n\ndata: ", b"\n\n: keep-alive\n\ndata: "
    )
    chunks, stream, _ = await run_stream(OPENAI, make_call("openrouter/x"), body)
    assert joined_text(chunks) == "Stockholm"
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_error_object_mid_stream_raises_the_mapped_error() -> None:
    body = sse(
        chunk(delta(content="Sto")),
        {"error": {"message": "The server had an error", "type": "server_error", "code": None}},
        "[DONE]",
    )
    with pytest.raises(errors.InternalServerError, match="server had an error"):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), body)


@pytest.mark.asyncio
async def test_openrouter_error_chunk_raises_by_its_code() -> None:
    body = sse(
        chunk(delta(content="Sto")),
        chunk(delta("error"), error={"code": 502, "message": "Upstream provider failed"}),
    )
    with pytest.raises(errors.ServiceUnavailableError, match="Upstream provider failed"):
        await run_stream(OPENAI, make_call("openrouter/x"), body)


@pytest.mark.asyncio
async def test_failed_finish_reason_without_error_object_raises() -> None:
    body = sse(chunk(delta(content="Sto")), chunk(delta("insufficient_system_resource")), "[DONE]")
    with pytest.raises(errors.ServiceUnavailableError, match="insufficient_system_resource"):
        await run_stream(OPENAI, make_call("deepseek/deepseek-chat"), body)


@pytest.mark.asyncio
@pytest.mark.parametrize("cut_at", [1, 3])
async def test_truncated_stream_is_a_connection_error(cut_at: int) -> None:
    events = split_events(TEXT_STREAM)[:cut_at]  # before the finish_reason
    with pytest.raises(errors.APIConnectionError, match="stream ended before"):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), b"".join(events))


@pytest.mark.asyncio
@pytest.mark.parametrize("cut_at", [4, 5])
async def test_a_stream_that_ends_after_the_finish_reason_without_done_is_complete(
    cut_at: int,
) -> None:
    events = split_events(TEXT_STREAM)[:cut_at]  # the finish_reason, then no [DONE]
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), b"".join(events))
    assert stream.response is not None
    assert stream.response.content == "Stockholm"
    assert stream.response.choices[0].finish_reason == "stop"
    # The usage chunk comes after the finish_reason: kept when it arrived.
    assert stream.response.usage.total_tokens == (USAGE["total_tokens"] if cut_at == 5 else 0)


@pytest.mark.asyncio
async def test_every_choice_must_finish_before_a_stream_without_done_is_complete() -> None:
    body = sse(
        chunk(delta(index=0, role="assistant", content="A")),
        chunk(delta(index=1, role="assistant", content="B")),
        chunk(delta("stop", index=0)),  # choice 1 never finishes
    )
    with pytest.raises(errors.APIConnectionError, match="stream ended before"):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini", n=2), body)
    # n=2 but only one choice ever seen: cut off as well.
    one = sse(chunk(delta(role="assistant", content="A")), chunk(delta("stop")))
    with pytest.raises(errors.APIConnectionError, match="stream ended before"):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini", n=2), one)


@pytest.mark.asyncio
async def test_an_empty_body_is_a_connection_error() -> None:
    with pytest.raises(errors.APIConnectionError):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), b"")


@pytest.mark.asyncio
async def test_events_after_done_are_not_read() -> None:
    body = TEXT_STREAM + b"data: {not json\n\n"
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), body)
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_bad_json_event_is_an_invalid_response() -> None:
    body = sse(chunk(delta(content="x")), "{not json", "[DONE]")
    with pytest.raises(errors.InvalidResponseError, match="not JSON"):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), body)


@pytest.mark.asyncio
async def test_wrong_shape_event_is_an_invalid_response() -> None:
    body = sse(chunk("nonsense"), "[DONE]")  # type: ignore[arg-type]  # a string choice
    with pytest.raises(errors.InvalidResponseError, match="unexpected stream event shape"):
        await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), body)


@pytest.mark.asyncio
async def test_unicode_line_separator_in_content_survives() -> None:
    text = "line one\u2028line two\x85three"
    body = sse(chunk(delta(content=text)), chunk(delta("stop")), "[DONE]").replace(
        json.dumps(text).encode(), json.dumps(text, ensure_ascii=False).encode()
    )
    assert "\u2028".encode() in body  # sent unescaped, as servers do
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), body)
    assert stream.response is not None and stream.response.content == text


@pytest.mark.asyncio
async def test_crlf_line_ends() -> None:
    body = TEXT_STREAM.replace(b"\n", b"\r\n")
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), Pieces(body, 5))
    assert stream.response is not None and stream.response.content == "Stockholm"


@pytest.mark.asyncio
async def test_mistral_thinking_parts_become_reasoning() -> None:
    body = sse(
        chunk(delta(content=[{"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]}])),
        chunk(delta(content=[{"type": "text", "text": "Oslo"}])),
        chunk(delta("stop")),
        "[DONE]",
    )
    _, stream, _ = await run_stream(OPENAI, make_call("mistral/magistral-small"), body)
    assert stream.response is not None
    assert stream.response.content == "Oslo"
    assert stream.response.choices[0].message.reasoning_content == "hm"


@pytest.mark.asyncio
async def test_logprobs_are_concatenated() -> None:
    lp = [{"token": "A", "logprob": -0.1, "bytes": None, "top_logprobs": []}]
    body = sse(
        chunk({"index": 0, "delta": {"content": "A"}, "logprobs": {"content": lp}}),
        chunk({"index": 0, "delta": {"content": "A"}, "logprobs": {"content": lp},
               "finish_reason": "stop"}),
        "[DONE]",
    )
    chunks, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), body)
    assert_chunks_valid(chunks)
    assert stream.response is not None
    assert stream.response.choices[0].logprobs == {"content": lp + lp}


@pytest.mark.asyncio
async def test_request_id_header_is_kept() -> None:
    _, stream, _ = await run_stream(OPENAI, make_call("openai/gpt-4o-mini"), TEXT_STREAM,
                                    headers={"x-request-id": "req_42"})
    assert stream.response is not None
    assert stream.response.harness.request_id == "req_42"
    assert plain(stream.response)["id"] == "chatcmpl-9fXk2"
