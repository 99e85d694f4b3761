"""The three real-traffic edge cases of issue 16, each in its smallest form.

In-stream errors typed by their code and type with no invented status; an empty finish
reason (``""``) beside tool calls read as ``tool_calls``, and as no finish at all on a
streamed chunk; reasoning carried in ``reasoning_details``. The recorded responses that
show each of them in full are in ``tests/recorded/`` (``tests/test_recorded_traffic.py``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import errors, stream_chunk_builder
from harness.errors import code_class, error_from_status
from harness.providers.anthropic import AnthropicProvider
from harness.providers.cohere import CohereProvider
from harness.providers.gemini import GeminiProvider
from harness.providers.openai import OpenAIProvider
from tests.helpers.streaming import make_call, run_stream, sse

OPENAI = OpenAIProvider()
TOP = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
TOOL = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}


def chunk(finish: Any = None, **delta: Any) -> dict[str, Any]:
    return {**TOP, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# --- 1. in-stream errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "cls"),
    [
        (("tool_use_failed", "invalid_request_error"), errors.BadRequestError),
        ((None, "invalid_request_error"), errors.BadRequestError),
        (("overloaded_error",), errors.ServiceUnavailableError),
        (("rate_limit_exceeded",), errors.RateLimitError),
        (("RESOURCE_EXHAUSTED",), errors.RateLimitError),
        (("INVALID_ARGUMENT",), errors.BadRequestError),
        (("context_length_exceeded",), errors.ContextWindowExceededError),
        (("api_error",), errors.InternalServerError),
        ((429,), errors.RateLimitError),
        ((502,), errors.BadGatewayError),
        (("something_new", None), None),
    ],
)
def test_code_class_maps_provider_codes(codes: tuple[Any, ...], cls: Any) -> None:
    assert code_class(*codes) is cls


@given(st.text(max_size=30), st.text(max_size=60))
def test_an_error_without_a_status_never_shows_or_invents_one(code: str, message: str) -> None:
    err = error_from_status(None, message, code=code or None)
    assert err.status is None
    assert isinstance(err, errors.APIError)
    assert str(err) == err.message  # no "HTTP …:" prefix
    assert err.message == (errors.scrub(message) or "the provider reported an error")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payload", "cls", "retryable"),
    [
        # Groq's event without its status_code field; Mistral's and OpenAI's error chunks
        (
            {
                "error": {
                    "message": "Failed to call a function.",
                    "type": "invalid_request_error",
                    "code": "tool_use_failed",
                }
            },
            errors.BadRequestError,
            False,
        ),
        (
            {"object": "error", "message": "Internal", "type": "internal_error", "code": None},
            errors.InternalServerError,
            True,
        ),
        (
            {"error": {"message": "The server had an error", "type": "server_error"}},
            errors.InternalServerError,
            True,
        ),
        (  # OpenRouter's documented mid-stream shape, with a string code
            {
                "error": {"code": "server_error", "message": "Provider disconnected"},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
            },
            errors.InternalServerError,
            True,
        ),
        (
            {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
            errors.RateLimitError,
            True,
        ),
    ],
)
async def test_openai_in_stream_errors_have_no_invented_status(
    payload: dict[str, Any], cls: Any, retryable: bool
) -> None:
    body = sse(chunk(role="assistant", content=""), ("error", payload))
    with pytest.raises(errors.HarnessError) as info:
        await run_stream(OPENAI, make_call("groq/llama"), body)
    assert type(info.value) is cls
    assert info.value.status is None and info.value.retryable is retryable
    assert "HTTP" not in str(info.value)


@pytest.mark.asyncio
async def test_gemini_and_cohere_in_stream_errors_have_no_invented_status() -> None:
    gemini = sse(
        {"error": {"message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    )
    with pytest.raises(errors.RateLimitError) as info:
        await run_stream(GeminiProvider(), make_call("gemini/gemini-2.5-flash"), gemini)
    assert info.value.status is None
    cohere = sse({"error": {"message": "internal error"}})
    with pytest.raises(errors.InternalServerError) as cinfo:
        await run_stream(CohereProvider(), make_call("cohere/command-a"), cohere)
    assert cinfo.value.status is None and "HTTP" not in str(cinfo.value)


@pytest.mark.asyncio
async def test_anthropic_invalid_request_event_is_a_client_error() -> None:
    body = sse(
        ("error", {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
    )
    with pytest.raises(errors.BadRequestError) as info:
        await run_stream(AnthropicProvider(), make_call("anthropic/claude"), body)
    assert info.value.status is None and not info.value.retryable


def test_the_non_stream_status_still_decides_the_class() -> None:
    body = json.dumps({"error": {"message": "x", "type": "invalid_request_error"}}).encode()
    err = OPENAI.parse_error(make_call("openai/m"), 503, body, {})
    assert type(err) is errors.ServiceUnavailableError and err.status == 503


# --- 2. empty finish reasons ----------------------------------------------------------------


def _body(finish: Any, tools: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if tools:
        message["tool_calls"] = [{k: v for k, v in TOOL.items() if k != "index"}]
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


@pytest.mark.parametrize(
    ("finish", "tools", "want"),
    [
        ("", True, "tool_calls"),
        (None, True, "tool_calls"),
        ("", False, "stop"),
        ("stop", True, "stop"),
        ("tool_calls", True, "tool_calls"),
    ],
)
def test_an_empty_finish_reason_beside_tool_calls_is_tool_calls(
    finish: Any, tools: bool, want: str
) -> None:
    answer = OPENAI.parse_response(make_call("openai/m"), _body(finish, tools), {})
    assert answer.choices[0].finish_reason == want
    assert answer.harness.flags == []  # "" is not an unknown reason


@pytest.mark.asyncio
async def test_a_stream_with_an_empty_finish_on_every_chunk_finishes_once_at_the_end() -> None:
    body = sse(chunk("", role="assistant", content="Oslo"), chunk("", content=" it is"), "[DONE]")
    chunks, stream, _ = await run_stream(OPENAI, make_call("openai/m"), body)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes == [None, None, "stop"]
    assert stream.response is not None and stream.response.content == "Oslo it is"


@pytest.mark.asyncio
async def test_a_tool_call_stream_without_a_finish_reason_ends_with_tool_calls() -> None:
    body = sse(chunk(role="assistant", content=None), chunk(tool_calls=[TOOL]), chunk(""), "[DONE]")
    chunks, stream, _ = await run_stream(OPENAI, make_call("openai/m"), body)
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)


# --- 3. reasoning_details -------------------------------------------------------------------


DETAILS = [
    {"type": "reasoning.summary", "summary": "Plan. "},
    {"type": "reasoning.encrypted", "data": "gAAAA"},
    {"type": "reasoning.text", "text": "Think.", "format": "anthropic-claude-v1"},
]


def test_reasoning_details_fill_the_reasoning_and_reasoning_wins_when_both_come() -> None:
    body = _body("stop", False)
    body["choices"][0]["message"]["reasoning_details"] = DETAILS
    answer = OPENAI.parse_response(make_call("openai/m"), body, {})
    assert answer.choices[0].message.reasoning_content == "Plan. Think."
    body["choices"][0]["message"]["reasoning"] = "Think."  # OpenRouter repeats it here
    answer = OPENAI.parse_response(make_call("openai/m"), body, {})
    assert answer.choices[0].message.reasoning_content == "Think."


@pytest.mark.asyncio
async def test_streamed_reasoning_details_are_not_doubled() -> None:
    part = {"type": "reasoning.text", "text": "Hm."}
    body = sse(
        chunk(role="assistant", reasoning="Hm.", reasoning_details=[part]),
        chunk(reasoning_details=[part]),
        chunk("stop", content="Oslo"),
        "[DONE]",
    )
    chunks, stream, _ = await run_stream(OPENAI, make_call("openrouter/m"), body)
    assert stream.response is not None
    assert stream.response.choices[0].message.reasoning_content == "Hm.Hm."
    assert [c.choices[0].delta.reasoning_content for c in chunks[:2]] == ["Hm.", "Hm."]


def test_stream_chunk_builder_reads_a_tool_call_without_a_finish_reason() -> None:
    chunks = [
        chunk(role="assistant", content=None),
        chunk(tool_calls=[TOOL]),
        chunk(""),
    ]
    answer = stream_chunk_builder(chunks)
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.tool_calls is not None
