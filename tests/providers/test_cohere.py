"""Tests of the Cohere Chat v2 adapter: request body, normalisation, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from harness import errors
from harness.config import ModelSpec
from harness.providers.base import Call, get_provider
from harness.providers.cohere import (
    MAX_RESET_WAIT,
    CohereProvider,
    parse_message,
    parse_usage,
    retry_after,
)
from harness.providers.registry import PROVIDERS

BASE = "https://cohere.test"
URL = f"{BASE}/v2/chat"
KEY = "co-test-key-0123456789abcdef"
MODEL = "command-a-03-2025"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
    {
        "role": "user",
        "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Oslo?"}],
    },
    {
        "role": "assistant",
        "content": "I will look it up.",
        "tool_calls": [
            {
                "id": "get_weather_k2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "get_weather_k2", "content": "4°C, rain"},
    {"role": "assistant", "content": "4°C and rain."},
    {"role": "user", "content": "Thanks!"},
]


def make_call(
    messages: list[dict[str, Any]] | None = None,
    *,
    api_base: str | None = BASE,
    api_key: str | None = KEY,
    spec_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Call:
    spec = ModelSpec(
        name=f"cohere/{MODEL}", provider="cohere", model=MODEL, headers=spec_headers or {}
    )
    return Call(
        spec=spec,
        messages=messages if messages is not None else [{"role": "user", "content": "Hi"}],
        params=params,
        api_key=api_key,
        api_base=api_base,
        headers=headers or {},
    )


def body_of(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)


def text_response(text: str = "Stockholm", finish: str = "COMPLETE") -> dict[str, Any]:
    return {
        "id": "5f0d1c2e-8b1a-4e53-9d0b-2a7c6f1e4b90",
        "finish_reason": finish,
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": {
            "billed_units": {"input_tokens": 11, "output_tokens": 2},
            "tokens": {"input_tokens": 207, "output_tokens": 2},
        },
    }


def parse(data: dict[str, Any], call: Call | None = None) -> Any:
    return CohereProvider().parse_response(call or make_call(), data, {})


def validate(response: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(response.to_dict())


# --- the wire ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_generate_sends_the_conversation_and_parses_the_answer() -> None:
    call = make_call(
        CONVERSATION,
        spec_headers={"X-Client-Name": "harness", "x-both": "spec"},
        headers={"x-call": "c", "x-both": "call"},
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        temperature=0.3,
        max_tokens=512,
        stop=["\n\n"],
        top_p=0.9,
        top_k=50,
    )
    with respx.mock(assert_all_called=False) as router:
        route = router.post(URL).mock(
            return_value=httpx.Response(
                200, json=text_response("You're welcome!"), headers={"x-request-id": "rq-1"}
            )
        )
        async with httpx.AsyncClient() as client:
            response = await get_provider("cohere").generate(call, client.send)

    assert route.call_count == 1
    request = route.calls.last.request
    assert str(request.url) == URL
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-client-name"] == "harness"
    assert request.headers["x-call"] == "c"
    assert request.headers["x-both"] == "call"
    assert body_of(request) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "tool_plan": "I will look it up.",
                "tool_calls": [
                    {
                        "id": "get_weather_k2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "get_weather_k2", "content": "4°C, rain"},
            {"role": "assistant", "content": "4°C and rain."},
            {"role": "user", "content": "Thanks!"},
        ],
        "temperature": 0.3,
        "max_tokens": 512,
        "stop_sequences": ["\n\n"],
        "p": 0.9,
        "k": 50,
        "tools": [WEATHER_TOOL],
    }
    assert response.content == "You're welcome!"
    assert response.id == "5f0d1c2e-8b1a-4e53-9d0b-2a7c6f1e4b90"
    assert response.model == MODEL
    assert response.created > 0
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 207
    assert response.harness.request_id == "rq-1"
    assert response.harness.provider == "cohere"
    assert response.harness.raw_finish_reasons == ["COMPLETE"]
    validate(response)


@pytest.mark.asyncio
async def test_generate_fans_out_n_as_separate_requests() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(URL).mock(
            side_effect=[
                httpx.Response(200, json=text_response("A")),
                httpx.Response(200, json=text_response("B", finish="MAX_TOKENS")),
            ]
        )
        async with httpx.AsyncClient() as client:
            response = await CohereProvider().generate(make_call(n=2), client.send)

    assert route.call_count == 2
    assert all("n" not in body_of(c.request) for c in route.calls)
    assert sorted(c.message.content for c in response.choices) == ["A", "B"]
    assert [c.index for c in response.choices] == [0, 1]
    assert response.usage.prompt_tokens == 2 * 207
    validate(response)


@pytest.mark.asyncio
async def test_generate_returns_tool_calls() -> None:
    data = {
        "id": "abc",
        "finish_reason": "TOOL_CALL",
        "message": {
            "role": "assistant",
            "tool_plan": "I will look up the weather.",
            "tool_calls": [
                {
                    "id": "get_weather_k2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        "usage": {"tokens": {"input_tokens": 40, "output_tokens": 12}},
    }
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(200, json=data))
        async with httpx.AsyncClient() as client:
            response = await CohereProvider().generate(make_call(tools=[WEATHER_TOOL]), client.send)

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.reasoning_content == "I will look up the weather."
    (tool_call,) = choice.message.tool_calls
    assert tool_call.id == "get_weather_k2"
    assert tool_call.function.name == "get_weather"
    assert tool_call.function.arguments == '{"city":"Oslo"}'
    validate(response)


# --- request building --------------------------------------------------------------------


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_URL", raising=False)
    request = CohereProvider().build_request(make_call(api_base=None))
    assert str(request.url) == f"{PROVIDERS['cohere'].api_base}/v2/chat"
    assert request.method == "POST"


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://proxy.test/", "https://proxy.test/v2/chat"),
        ("https://proxy.test/v2", "https://proxy.test/v2/chat"),
    ],
)
def test_base_url_override(base: str, url: str) -> None:
    assert str(CohereProvider().build_request(make_call(api_base=base)).url) == url


def test_no_authorization_without_a_key() -> None:
    request = CohereProvider().build_request(make_call(api_key=None))
    assert "authorization" not in request.headers


def test_parameters_are_renamed_and_openai_only_ones_dropped() -> None:
    call = make_call(
        max_completion_tokens=64,
        stop="END",
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        n=1,
        user="u-1",
        logit_bias={"1": 2},
        parallel_tool_calls=False,
        stream_options={"include_usage": True},
        safety_mode="STRICT",
    )
    body = body_of(CohereProvider().build_request(call))
    assert body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 64,
        "stop_sequences": ["END"],
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "safety_mode": "STRICT",
    }


def test_max_tokens_wins_over_max_completion_tokens() -> None:
    body = body_of(
        CohereProvider().build_request(make_call(max_tokens=10, max_completion_tokens=99))
    )
    assert body["max_tokens"] == 10


@pytest.mark.parametrize(
    ("choice", "expected", "tool_names"),
    [
        ("auto", None, ["get_weather", "get_time"]),
        ("required", "REQUIRED", ["get_weather", "get_time"]),
        ("none", "NONE", ["get_weather", "get_time"]),
        ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
    ],
)
def test_tool_choice(choice: Any, expected: str | None, tool_names: list[str]) -> None:
    call = make_call(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    body = body_of(CohereProvider().build_request(call))
    assert body.get("tool_choice") == expected
    assert [t["function"]["name"] for t in body["tools"]] == tool_names


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "json_object", "json_schema": {"type": "object"}},
        ),
        ({"type": "text"}, None),
    ],
)
def test_response_format(fmt: dict[str, Any], expected: dict[str, Any] | None) -> None:
    body = body_of(CohereProvider().build_request(make_call(response_format=fmt)))
    assert body.get("response_format") == expected


def test_object_arguments_are_sent_as_strings_and_images_kept() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
    ]
    body = body_of(CohereProvider().build_request(make_call(messages)))
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
    ]


# --- response normalisation --------------------------------------------------------------


def test_thinking_items_become_reasoning() -> None:
    data = text_response()
    data["message"]["content"] = [
        {"type": "thinking", "thinking": "Sweden's capital..."},
        {"type": "text", "text": "Stock"},
        {"type": "text", "text": "holm"},
    ]
    message = parse(data).choices[0].message
    assert message.content == "Stockholm"
    assert message.reasoning_content == "Sweden's capital..."


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
    ],
)
def test_finish_reasons(raw: str, mapped: str) -> None:
    response = parse(text_response(finish=raw))
    assert response.choices[0].finish_reason == mapped
    assert response.harness.raw_finish_reasons == [raw]
    validate(response)


@pytest.mark.parametrize(
    ("raw", "cls"), [("ERROR", errors.InternalServerError), ("TIMEOUT", errors.TimeoutError)]
)
def test_failed_generations_raise(raw: str, cls: type[errors.HarnessError]) -> None:
    with pytest.raises(cls) as info:
        parse(text_response(finish=raw))
    assert info.value.provider == "cohere"
    assert info.value.retryable


def test_usage_prefers_tokens_and_keeps_cached_tokens() -> None:
    data = text_response()
    data["usage"]["cached_tokens"] = 128
    response = parse(data)
    assert response.usage.to_dict() == {
        "prompt_tokens": 207,
        "completion_tokens": 2,
        "total_tokens": 209,
        "prompt_tokens_details": {"cached_tokens": 128},
    }
    validate(response)


def test_usage_falls_back_to_billed_units() -> None:
    usage = parse_usage({"billed_units": {"input_tokens": 11.0, "output_tokens": 2.0}})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 2, 13)
    assert usage.cached_tokens is None
    assert parse_usage({}).total_tokens == 0


def test_missing_id_is_minted() -> None:
    data = text_response()
    del data["id"]
    assert parse(data).id.startswith("chatcmpl-")


# --- errors ------------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        400,
        "invalid request: temperature must be between 0 and 1.0 inclusive.",
        {},
        errors.BadRequestError,
        None,
        id="400",
    ),
    pytest.param(
        400,
        "too many tokens: total number of tokens in the prompt cannot exceed 128000",
        {},
        errors.ContextWindowExceededError,
        None,
        id="400-too-many-tokens",
    ),
    pytest.param(401, "invalid api token", {}, errors.AuthenticationError, None, id="401"),
    pytest.param(402, "Please add a payment method", {}, errors.BillingError, None, id="402"),
    pytest.param(404, "model 'command-x' not found", {}, errors.NotFoundError, None, id="404"),
    pytest.param(422, "unprocessable entity", {}, errors.UnprocessableEntityError, None, id="422"),
    pytest.param(
        429,
        "You are using a Trial key, which is limited to 20 API calls / minute.",
        {"retry-after": "3"},
        errors.RateLimitError,
        3.0,
        id="429-retry-after",
    ),
    pytest.param(
        429,
        "rate limited",
        {"retry-after-ms": "1500"},
        errors.RateLimitError,
        1.5,
        id="429-retry-after-ms",
    ),
    pytest.param(
        429,
        "You are using a Trial key, which is limited to 1000 API calls / month.",
        {},
        errors.BillingError,
        None,
        id="429-monthly",
    ),
    pytest.param(498, "invalid token", {}, errors.AuthenticationError, None, id="498"),
    pytest.param(499, "request cancelled", {}, errors.APIConnectionError, None, id="499"),
    pytest.param(500, "internal server error", {}, errors.InternalServerError, None, id="500"),
    pytest.param(501, "not implemented", {}, errors.InternalServerError, None, id="501"),
    pytest.param(
        503,
        "service unavailable",
        {"retry-after": "2"},
        errors.ServiceUnavailableError,
        2.0,
        id="503",
    ),
    pytest.param(504, "gateway timeout", {}, errors.TimeoutError, None, id="504"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "message", "headers", "cls", "wait"), ERROR_CASES)
async def test_error_statuses_map_to_the_error_tree(
    status: int,
    message: str,
    headers: dict[str, str],
    cls: type[errors.HarnessError],
    wait: float | None,
) -> None:
    payload = {"id": "err-1", "message": message}
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(status, json=payload, headers=headers))
        async with httpx.AsyncClient() as client:
            with pytest.raises(errors.HarnessError) as info:
                await CohereProvider().generate(make_call(), client.send)
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.retry_after == wait
    assert error.message == message
    assert message in (error.body or "")
    assert error.provider == "cohere"
    assert error.model == f"cohere/{MODEL}"


def test_non_json_error_body() -> None:
    error = CohereProvider().parse_error(make_call(), 502, b"upstream connect error", {})
    assert isinstance(error, errors.ServiceUnavailableError)
    assert error.message == "upstream connect error"


def test_rate_limit_reset_header_is_used_and_capped() -> None:
    far_future = {"x-ratelimit-reset": "9999999999"}
    error = CohereProvider().parse_error(make_call(), 429, b'{"message": "slow down"}', far_future)
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == MAX_RESET_WAIT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-reset": "1700000030"}, 30.0),
        ({"x-ratelimit-reset": "1699999990"}, 0.0),  # in the past
        ({"x-ratelimit-reset": "1800000000"}, MAX_RESET_WAIT),
        ({"x-ratelimit-reset": "12"}, 12.0),  # a delay, not a timestamp
        ({"x-ratelimit-reset": "soon"}, None),
        ({"retry-after": "4", "x-ratelimit-reset": "1700000030"}, 4.0),
        ({"retry-after-ms": "250", "retry-after": "4"}, 0.25),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, 1_700_000_000.0) == expected


# --- properties --------------------------------------------------------------------------

TEXT = st.text(max_size=20)
ITEM = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": TEXT}),
)


@given(st.lists(ITEM, max_size=8))
def test_content_is_the_concatenation_of_text_items(items: list[dict[str, Any]]) -> None:
    message = parse_message({"role": "assistant", "content": items})
    assert message.content == "".join(i["text"] for i in items if i["type"] == "text")
    thinking = "".join(i["thinking"] for i in items if i["type"] == "thinking")
    assert message.reasoning_content == (thinking or None)


COUNT = st.integers(min_value=0, max_value=10**7)
TOKENS = st.fixed_dictionaries({}, optional={"input_tokens": COUNT, "output_tokens": COUNT})


@given(TOKENS, TOKENS, st.none() | COUNT)
def test_usage_arithmetic(
    tokens: dict[str, int], billed: dict[str, int], cached: int | None
) -> None:
    usage = parse_usage({"tokens": tokens, "billed_units": billed, "cached_tokens": cached})
    for field, key in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
        assert getattr(usage, field) == tokens.get(key, billed.get(key, 0))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.cached_tokens == cached


ROLE_MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": TEXT}
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("user"),
            "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})),
        }
    ),
)


@settings(max_examples=50)
@given(st.lists(ROLE_MESSAGE, min_size=1, max_size=6))
def test_build_request_keeps_messages_in_order(messages: list[dict[str, Any]]) -> None:
    body = body_of(CohereProvider().build_request(make_call(messages)))
    sent = body["messages"]
    assert len(sent) == len(messages)
    for original, out in zip(messages, sent, strict=True):
        role = "system" if original["role"] == "developer" else original["role"]
        assert out["role"] == role
        content = original["content"]
        text = content if isinstance(content, str) else "".join(p["text"] for p in content)
        assert out["content"] == text
