"""Tests of the Anthropic Messages API adapter: request building, parsing, errors, wire path."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from harness import errors
from harness.config import ModelSpec
from harness.providers import anthropic as anthropic_mod
from harness.providers.anthropic import AnthropicProvider
from harness.providers.base import Call, get_provider

URL = "https://api.anthropic.com/v1/messages"
KEY = "sk-ant-" + "api03-test-key-0123456789abcdef"  # fake; split so secret scanners stay quiet
SPEC = ModelSpec(name="claude", provider="anthropic", model="claude-sonnet-4-5")
PROVIDER = AnthropicProvider()

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def make_call(messages: list[dict[str, Any]] | None = None, **params: Any) -> Call:
    return Call(
        spec=SPEC,
        messages=messages if messages is not None else [{"role": "user", "content": "Hi"}],
        params=params,
        api_key=KEY,
    )


def body_of(request: httpx.Request) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(request.content)
    return result


def built(messages: list[dict[str, Any]] | None = None, **params: Any) -> dict[str, Any]:
    return body_of(PROVIDER.build_request(make_call(messages, **params)))


def message_body(content: list[dict[str, Any]], stop_reason: str = "end_turn",
                 **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01HkP3",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 6, **usage},
    }


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": "req_from_body"}


@pytest.fixture
def no_base_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


# --- registration ------------------------------------------------------------------------


def test_registered_under_its_family() -> None:
    assert isinstance(get_provider("anthropic"), AnthropicProvider)
    assert AnthropicProvider.supports_n is False


# --- build_request -----------------------------------------------------------------------


def test_multi_turn_conversation_with_system_tools_and_tool_round_trip(no_base_env: None) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_01A", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                {"id": "toolu_01B", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "4°C, rain"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "6°C, cloudy"},
        {"role": "assistant", "content": "Oslo 4°C, Bergen 6°C."},
        {"role": "user", "content": "Thanks."},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ]
    call = Call(
        spec=replace(SPEC, headers={"anthropic-beta": "tools-2024", "x-team": "spec"}),
        messages=messages,
        params={
            "temperature": 0.3, "max_completion_tokens": 512, "stop": "\n\n",
            "tools": [WEATHER_TOOL], "tool_choice": "auto", "parallel_tool_calls": False,
            "user": "u-42", "seed": 7, "n": 1, "presence_penalty": 0.5,
            "frequency_penalty": 0.1, "logit_bias": {"1": 2}, "logprobs": True,
            "response_format": {"type": "json_object"}, "stream_options": {"include_usage": True},
            "top_p": 0.9, "top_k": 40,
        },
        api_key=KEY,
        headers={"x-team": "call"},
    )
    request = PROVIDER.build_request(call)

    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["anthropic-beta"] == "tools-2024"
    assert request.headers["x-team"] == "call"  # the call's headers beat the config's
    assert "authorization" not in request.headers
    assert body_of(request) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "system": "Be brief.\n\nUse metric units.",
        "messages": [
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
                 "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_weather",
                 "input": {"city": "Bergen"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "4°C, rain"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "6°C, cloudy"},
            ]},
            {"role": "assistant", "content": "Oslo 4°C, Bergen 6°C."},
            {"role": "user", "content": [
                {"type": "text", "text": "Thanks."},
                {"type": "text", "text": "And tomorrow?"},
            ]},
        ],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["\n\n"],
        "tools": [{
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-42"},
    }


def test_tool_results_come_before_user_text_in_the_merged_turn() -> None:
    body = built([
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "done"}]},
        {"role": "user", "content": "So?"},
    ])
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
    ]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "done"}]},
        {"type": "text", "text": "So?"},
    ]}


def test_default_base_url_env_override_and_call_override(
    no_base_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert str(PROVIDER.build_request(make_call()).url) == URL
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://proxy.example/anthropic/")
    assert str(PROVIDER.build_request(make_call()).url) == (
        "https://proxy.example/anthropic/v1/messages"
    )
    call = replace(make_call(), api_base="http://localhost:9000")
    assert str(PROVIDER.build_request(call).url) == "http://localhost:9000/v1/messages"


def test_no_key_sends_no_key_header() -> None:
    request = PROVIDER.build_request(replace(make_call(), api_key=None))
    assert "x-api-key" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"


def test_minimal_body_has_default_max_tokens_and_no_system() -> None:
    assert built() == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 100),
        ({"max_tokens": None, "max_completion_tokens": 300}, 300),
    ],
)
def test_max_tokens_sources(params: dict[str, Any], expected: int) -> None:
    body = built(**params)
    assert body["max_tokens"] == expected
    assert "max_completion_tokens" not in body


def test_config_params_are_defaults_that_call_params_override() -> None:
    call = replace(make_call(temperature=0.2), spec=replace(SPEC, params={"temperature": 0.9,
                                                                         "top_k": 5}))
    body = body_of(PROVIDER.build_request(call))
    assert body["temperature"] == 0.2
    assert body["top_k"] == 5


@pytest.mark.parametrize(
    ("given_t", "sent"), [(1.7, 1.0), (2, 1.0), (-0.5, 0.0), (0, 0.0), (0.7, 0.7), (1, 1.0)]
)
def test_temperature_is_clamped_to_anthropic_range(given_t: float, sent: float) -> None:
    assert built(temperature=given_t)["temperature"] == sent


@pytest.mark.parametrize(
    ("stop", "sequences"), [("END", ["END"]), (["a", "b"], ["a", "b"]), (("x",), ["x"])]
)
def test_stop_becomes_stop_sequences(stop: Any, sequences: list[str]) -> None:
    body = built(stop=stop)
    assert body["stop_sequences"] == sequences
    assert "stop" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}},
         {"type": "tool", "name": "get_weather"}),
        ({"type": "tool", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    assert built(tools=[WEATHER_TOOL], tool_choice=choice)["tool_choice"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        ({"type": "function", "function": {"name": "get_weather"}},
         {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
        ("none", {"type": "none"}),
    ],
)
def test_parallel_tool_calls_false_disables_parallel_use(
    choice: Any, expected: dict[str, Any]
) -> None:
    params: dict[str, Any] = {"tools": [WEATHER_TOOL], "parallel_tool_calls": False}
    if choice is not None:
        params["tool_choice"] = choice
    body = built(**params)
    assert body["tool_choice"] == expected
    assert "parallel_tool_calls" not in body


def test_parallel_tool_calls_true_and_tool_choice_none_without_tools_send_nothing() -> None:
    body = built(parallel_tool_calls=True, tool_choice="none")
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


def test_tool_without_parameters_gets_an_empty_object_schema_and_native_tools_pass() -> None:
    native = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    bare = {"type": "function", "function": {"name": "now"}}
    assert built(tools=[bare, native])["tools"] == [
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        native,
    ]


@pytest.mark.parametrize("choice", ["sometimes", {"type": "function", "function": {}}, 3])
def test_unsupported_tool_choice_is_a_bad_request(choice: Any) -> None:
    with pytest.raises(errors.BadRequestError, match="tool_choice"):
        built(tools=[WEATHER_TOOL], tool_choice=choice)


def test_user_becomes_metadata_user_id_and_merges_with_metadata() -> None:
    assert built(user="u-1")["metadata"] == {"user_id": "u-1"}
    body = built(user="u-1", metadata={"trace": "t"})
    assert body["metadata"] == {"trace": "t", "user_id": "u-1"}
    assert "user" not in body


def test_openai_only_params_are_dropped_and_unknown_ones_pass_through() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = built(
        n=3, seed=1, presence_penalty=1, frequency_penalty=1, logit_bias={"5": 1},
        logprobs=True, top_logprobs=2, response_format={"type": "text"},
        stream_options={"include_usage": True}, thinking=thinking,
        metadata={"user_id": "abc"}, service_tier="auto",
    )
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
        "thinking": thinking,
        "metadata": {"user_id": "abc"},
        "service_tier": "auto",
    }


def test_images_become_base64_or_url_sources() -> None:
    body = built([{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": "http://example.com/dog.webp"},
    ]}])
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "url", "url": "http://example.com/dog.webp"}},
    ]}]


def test_text_part_cache_control_is_kept() -> None:
    part = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    assert built([{"role": "user", "content": [part]}])["messages"] == [
        {"role": "user", "content": [part]}
    ]


@pytest.mark.parametrize(
    ("messages", "pattern"),
    [
        ([{"role": "user", "content": "x"},
          {"role": "assistant", "content": None, "tool_calls": [
              {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}],
         r"messages\[1\] has tool call 'f' whose arguments are not valid JSON"),
        ([{"role": "user", "content": "x"},
          {"role": "assistant", "tool_calls": [
              {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}],
         r"messages\[1\] .*not a JSON object"),
        ([{"role": "function", "name": "f", "content": "x"}], r"messages\[0\] .*role 'function'"),
        ([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}],
         r"messages\[1\] .*without tool_call_id"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///a"}}]}],
         r"messages\[0\] .*image URL"),
        (["just a string"], r"messages\[0\] is a str"),
    ],
)
def test_malformed_messages_are_bad_requests_naming_the_index(
    messages: list[Any], pattern: str
) -> None:
    with pytest.raises(errors.BadRequestError, match=pattern) as info:
        PROVIDER.build_request(make_call(messages))
    assert info.value.provider == "anthropic"
    assert info.value.model == "claude"


def test_empty_tool_arguments_mean_no_input() -> None:
    body = built([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}]},
    ])
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "t", "name": "f",
                                               "input": {}}]


# --- parse_response ----------------------------------------------------------------------


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(anthropic_mod, "now", lambda: 1767225600)
    return 1767225600


def parse(data: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return PROVIDER.parse_response(make_call(), data, headers or {})


def test_text_response_is_normalised(fixed_clock: int) -> None:
    data = message_body([{"type": "text", "text": "Stock"}, {"type": "text", "text": "holm"}])
    r = parse(data, {"request-id": "req_1"})
    assert r.id == "msg_01HkP3"
    assert r.model == "claude-sonnet-4-5-20250929"
    assert r.created == fixed_clock
    assert r.content == "Stockholm"
    assert r.choices[0].index == 0
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.reasoning_content is None
    assert r.usage.prompt_tokens == 25
    assert r.usage.completion_tokens == 6
    assert r.usage.total_tokens == 31
    assert r.harness.provider == "anthropic"
    assert r.harness.model == "claude"
    assert r.harness.raw_finish_reasons == ["end_turn"]
    assert r.harness.flags == []
    assert r.harness.request_id == "req_1"


def test_tool_use_response_has_tool_calls_and_null_content() -> None:
    data = message_body(
        [{"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
          "input": {"city": "Oslo", "days": [1, 2]}}],
        stop_reason="tool_use",
    )
    r = parse(data)
    message = r.choices[0].message
    assert message.content is None
    assert r.choices[0].finish_reason == "tool_calls"
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.id == "toolu_01A"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo", "days": [1, 2]}
    assert r.harness.raw_finish_reasons == ["tool_use"]


def test_text_and_tool_use_keep_both() -> None:
    r = parse(message_body(
        [{"type": "text", "text": "Let me check."},
         {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        stop_reason="tool_use",
    ))
    assert r.content == "Let me check."
    assert r.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_thinking_blocks_are_reasoning_not_content() -> None:
    r = parse(message_body([
        {"type": "thinking", "thinking": "Norway's capital...", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "thinking", "thinking": "so Oslo.", "signature": "sig2"},
        {"type": "text", "text": "Oslo"},
    ]))
    assert r.content == "Oslo"
    assert r.choices[0].message.reasoning_content == "Norway's capital...\n\nso Oslo."
    assert "redacted_thinking" in r.harness.flags


@pytest.mark.parametrize(
    ("stop_reason", "finish", "flags"),
    [
        ("end_turn", "stop", []),
        ("stop_sequence", "stop", []),
        ("max_tokens", "length", []),
        ("model_context_window_exceeded", "length", []),
        ("refusal", "content_filter", []),
        ("pause_turn", "stop", ["pause_turn"]),
        ("something_new", "stop", ["unknown_finish_reason:something_new"]),
    ],
)
def test_stop_reasons_are_mapped_and_the_raw_value_kept(
    stop_reason: str, finish: str, flags: list[str]
) -> None:
    r = parse(message_body([{"type": "text", "text": "partial"}], stop_reason=stop_reason))
    assert r.choices[0].finish_reason == finish
    assert r.harness.raw_finish_reasons == [stop_reason]
    assert r.harness.flags == flags
    assert r.content == "partial"


def test_refusal_with_no_text_has_empty_content() -> None:
    r = parse(message_body([], stop_reason="refusal"))
    assert r.content == ""
    assert r.choices[0].finish_reason == "content_filter"


def test_usage_counts_cache_writes_and_reads_in_the_prompt() -> None:
    r = parse(message_body([{"type": "text", "text": "x"}],
                           cache_creation_input_tokens=100, cache_read_input_tokens=1000))
    assert r.usage.prompt_tokens == 25 + 100 + 1000
    assert r.usage.completion_tokens == 6
    assert r.usage.total_tokens == 1131
    assert r.usage.cached_tokens == 1000
    assert r.usage.to_dict()["prompt_tokens_details"] == {"cached_tokens": 1000}


def test_missing_usage_and_null_cache_fields() -> None:
    data = message_body([{"type": "text", "text": "x"}])
    data["usage"]["cache_creation_input_tokens"] = None
    assert parse(data).usage.prompt_tokens == 25
    assert parse(data).usage.cached_tokens is None
    del data["usage"]
    assert parse(data).usage.total_tokens == 0


def test_body_without_content_is_an_invalid_response() -> None:
    with pytest.raises(errors.InvalidResponseError, match="content"):
        parse({"id": "msg_1", "type": "message"})
    with pytest.raises(errors.InvalidResponseError):
        PROVIDER.parse_response(make_call(), ["not", "an", "object"], {})


def test_error_object_in_a_success_body_is_raised_by_its_type() -> None:
    with pytest.raises(errors.ServiceUnavailableError) as info:
        parse(error_body("overloaded_error", "Overloaded"))
    assert info.value.status is None  # sent with 200: no status is invented
    assert "HTTP" not in str(info.value)
    assert info.value.retryable
    assert info.value.request_id == "req_from_body"


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "Stockholm"}],
        [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        [{"type": "thinking", "thinking": "hmm", "signature": "s"},
         {"type": "text", "text": "ok"}],
        [],
    ],
)
@pytest.mark.parametrize("stop_reason", ["end_turn", "tool_use", "max_tokens", "refusal",
                                         "pause_turn"])
def test_to_dict_validates_as_openai_chat_completion(
    content: list[dict[str, Any]], stop_reason: str
) -> None:
    r = parse(message_body(content, stop_reason=stop_reason, cache_read_input_tokens=3))
    completion = ChatCompletion.model_validate(r.to_dict())
    assert completion.id == "msg_01HkP3"
    assert completion.choices[0].finish_reason == r.choices[0].finish_reason
    assert completion.usage is not None
    assert completion.usage.total_tokens == r.usage.total_tokens


# --- parse_error -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "message", "cls"),
    [
        (400, "invalid_request_error", "max_tokens: Field required", errors.BadRequestError),
        (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum",
         errors.ContextWindowExceededError),
        (400, "invalid_request_error",
         "Your credit balance is too low to access the Anthropic API.", errors.BillingError),
        (401, "authentication_error", "invalid x-api-key", errors.AuthenticationError),
        (402, "billing_error", "Payment required.", errors.BillingError),
        (403, "permission_error", "Your API key does not have permission.",
         errors.PermissionDeniedError),
        (404, "not_found_error", "model: claude-nope", errors.NotFoundError),
        (409, "invalid_request_error", "Conflict.", errors.ConflictError),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.",
         errors.BadRequestError),
        (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute limit.",
         errors.RateLimitError),
        (429, "rate_limit_error",
         "You have reached your specified API usage limits. You will regain access later.",
         errors.BillingError),
        (500, "api_error", "Internal server error", errors.InternalServerError),
        (504, "timeout_error", "Request timed out", errors.TimeoutError),
        (529, "overloaded_error", "Overloaded", errors.ServiceUnavailableError),
    ],
)
def test_error_statuses_map_to_the_error_tree(
    status: int, kind: str, message: str, cls: type[errors.HarnessError]
) -> None:
    body = json.dumps(error_body(kind, message)).encode()
    headers = {"request-id": "req_011CabcXYZ", "retry-after": "7"}
    err = PROVIDER.parse_error(make_call(), status, body, headers)
    assert type(err) is cls
    assert err.status == status
    assert err.message == message
    assert err.body is not None and message in err.body
    assert err.request_id == "req_011CabcXYZ"
    assert err.retry_after == 7.0
    assert err.provider == "anthropic"
    assert err.model == "claude"


def test_retryable_classes_are_retryable() -> None:
    for status, kind in [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error")]:
        err = PROVIDER.parse_error(make_call(), status,
                                   json.dumps(error_body(kind, "x")).encode(), {})
        assert err.retryable, status
    err = PROVIDER.parse_error(make_call(), 400,
                               json.dumps(error_body("invalid_request_error", "x")).encode(), {})
    assert not err.retryable


def test_error_without_headers_takes_request_id_from_body_and_no_retry_after() -> None:
    body = json.dumps(error_body("overloaded_error", "Overloaded")).encode()
    err = PROVIDER.parse_error(make_call(), 529, body, {})
    assert err.request_id == "req_from_body"
    assert err.retry_after is None


def test_overloaded_type_wins_over_an_unusual_status() -> None:
    body = json.dumps(error_body("overloaded_error", "Overloaded")).encode()
    assert type(PROVIDER.parse_error(make_call(), 500, body, {})) is errors.ServiceUnavailableError


def test_non_json_413_from_the_edge_is_a_plain_bad_request() -> None:
    body = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>"
    err = PROVIDER.parse_error(make_call(), 413, body, {"request-id": "req_9"})
    assert type(err) is errors.BadRequestError
    assert err.status == 413
    assert "413 Request Entity Too Large" in err.message
    assert err.request_id == "req_9"


def test_error_never_contains_the_api_key() -> None:
    body = json.dumps(error_body("authentication_error", f"invalid x-api-key {KEY}")).encode()
    err = PROVIDER.parse_error(make_call(), 401, body, {})
    assert KEY not in str(err)
    assert KEY not in repr(err)
    assert KEY not in (err.body or "")
    assert KEY not in json.dumps(err.to_dict())


def test_http_date_retry_after_is_honoured() -> None:
    body = json.dumps(error_body("rate_limit_error", "slow down")).encode()
    err = PROVIDER.parse_error(make_call(), 429, body,
                               {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert err.retry_after == 0.0  # a date in the past means "now"


# --- the wire ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_generate_sends_the_request_and_parses_the_answer(no_base_env: None) -> None:
    answer = message_body([{"type": "text", "text": "Stockholm"}])
    with respx.mock(assert_all_called=False) as router:
        route = router.post(URL).mock(
            return_value=httpx.Response(200, json=answer, headers={"request-id": "req_abc"})
        )
        async with httpx.AsyncClient() as client:
            r = await PROVIDER.generate(make_call(temperature=1.5), client.send)
    assert route.call_count == 1
    sent = route.calls.last.request
    assert sent.headers["x-api-key"] == KEY
    assert body_of(sent)["temperature"] == 1.0
    assert r.content == "Stockholm"
    assert r.harness.request_id == "req_abc"
    ChatCompletion.model_validate(r.to_dict())


@pytest.mark.asyncio
async def test_generate_raises_the_mapped_error(no_base_env: None) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(
            529, json=error_body("overloaded_error", "Overloaded"),
            headers={"request-id": "req_busy", "retry-after": "3"},
        ))
        async with httpx.AsyncClient() as client:
            with pytest.raises(errors.ServiceUnavailableError) as info:
                await PROVIDER.generate(make_call(), client.send)
    assert info.value.status == 529
    assert info.value.request_id == "req_busy"
    assert info.value.retry_after == 3.0


@pytest.mark.asyncio
async def test_n_2_sends_two_requests_and_returns_choices_0_and_1(no_base_env: None) -> None:
    first = message_body([{"type": "text", "text": "one"}])
    second = message_body([{"type": "text", "text": "two"}], stop_reason="max_tokens")
    with respx.mock(assert_all_called=False) as router:
        route = router.post(URL).mock(side_effect=[
            httpx.Response(200, json=first), httpx.Response(200, json=second),
        ])
        async with httpx.AsyncClient() as client:
            r = await PROVIDER.generate(make_call(n=2), client.send)
    assert route.call_count == 2
    assert all("n" not in body_of(c.request) for c in route.calls)
    assert [c.index for c in r.choices] == [0, 1]
    assert sorted(c.message.content for c in r.choices) == ["one", "two"]
    assert sorted(r.harness.raw_finish_reasons) == ["end_turn", "max_tokens"]
    assert r.usage.prompt_tokens == 50
    assert r.usage.total_tokens == 62
    ChatCompletion.model_validate(r.to_dict())


@pytest.mark.asyncio
async def test_non_json_success_body_is_an_invalid_response(no_base_env: None) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(200, text="<html>oops</html>"))
        async with httpx.AsyncClient() as client:
            with pytest.raises(errors.InvalidResponseError):
                await PROVIDER.generate(make_call(), client.send)


# --- properties --------------------------------------------------------------------------


@given(st.lists(st.text(), max_size=8))
def test_content_is_the_concatenation_of_text_blocks(texts: list[str]) -> None:
    r = PROVIDER.parse_response(
        make_call(), message_body([{"type": "text", "text": t} for t in texts]), {}
    )
    assert r.content == "".join(texts)
    assert r.choices[0].message.tool_calls is None


_text_content = st.one_of(
    st.text(),
    st.lists(st.builds(lambda t: {"type": "text", "text": t}, st.text()), max_size=3),
)
_openai_message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["system", "developer", "user", "assistant"]),
    _text_content,
)


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content)


@given(st.lists(_openai_message, max_size=12))
def test_any_text_conversation_builds_with_alternating_roles(
    messages: list[dict[str, Any]],
) -> None:
    body = body_of(PROVIDER.build_request(make_call(messages)))
    roles = [m["role"] for m in body["messages"]]
    assert set(roles) <= {"user", "assistant"}
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))
    system_texts = [_texts(m["content"]) for m in messages
                    if m["role"] in ("system", "developer") and _texts(m["content"])]
    if system_texts:
        assert body["system"] == "\n\n".join(system_texts)
    else:
        assert "system" not in body
    # No conversation text is lost or reordered.
    expected = "".join(_texts(m["content"]) for m in messages
                       if m["role"] in ("user", "assistant"))
    sent = "".join(_texts(m["content"]) for m in body["messages"])
    assert sent == expected
