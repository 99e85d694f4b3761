"""Tests of the Gemini generateContent adapter: request body, normalisation, errors."""

from __future__ import annotations

import json
import re
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
from harness.providers.gemini import (
    GeminiProvider,
    candidate_indices,
    parse_candidate,
    parse_usage,
)
from harness.providers.registry import PROVIDERS

BASE = "https://gemini.test/v1beta"
URL = f"{BASE}/models/gemini-2.5-flash:generateContent"
KEY = "AIzaTESTKEYTESTKEYTESTKEY0123"

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

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
    {"role": "user", "content": "Weather in Oslo and Bergen?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "4°C, rain"},
    {"role": "tool", "tool_call_id": "call_2", "content": '{"temp": 7, "sky": "clear"}'},
    {"role": "assistant", "content": "Oslo 4°C rain; Bergen 7°C clear."},
    {"role": "user", "content": "Thanks!"},
]


def make_call(
    messages: list[dict[str, Any]] | None = None,
    *,
    api_base: str | None = BASE,
    api_key: str | None = KEY,
    model: str = "gemini-2.5-flash",
    spec_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Call:
    spec = ModelSpec(
        name=f"gemini/{model}", provider="gemini", model=model, headers=spec_headers or {}
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


def text_response(text: str = "Stockholm", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 2, "totalTokenCount": 14},
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-123",
    }
    data.update(extra)
    return data


def parse(data: dict[str, Any], call: Call | None = None) -> Any:
    return GeminiProvider().parse_response(call or make_call(), data, {})


def validate(response: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(response.to_dict())


# --- the wire ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_generate_sends_the_conversation_and_parses_the_answer() -> None:
    call = make_call(
        CONVERSATION,
        spec_headers={"x-spec": "s", "x-both": "spec"},
        headers={"x-call": "c", "x-both": "call"},
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        temperature=0.2,
        max_tokens=100,
    )
    with respx.mock(assert_all_called=False) as router:
        route = router.post(URL).mock(
            return_value=httpx.Response(
                200, json=text_response("You're welcome!"), headers={"x-request-id": "rq-9"}
            )
        )
        async with httpx.AsyncClient() as client:
            response = await get_provider("gemini").generate(call, client.send)

    assert route.call_count == 1
    request = route.calls.last.request
    assert str(request.url) == URL
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-spec"] == "s"
    assert request.headers["x-call"] == "c"
    assert request.headers["x-both"] == "call"
    assert "authorization" not in request.headers
    assert body_of(request) == {
        "systemInstruction": {"parts": [{"text": "Answer briefly."}, {"text": "Use tools."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Oslo and Bergen?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"result": "4°C, rain"},
                        }
                    },
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"temp": 7, "sky": "clear"},
                        }
                    },
                ],
            },
            {"role": "model", "parts": [{"text": "Oslo 4°C rain; Bergen 7°C clear."}]},
            {"role": "user", "parts": [{"text": "Thanks!"}]},
        ],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 100},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": WEATHER_TOOL["function"]["parameters"],
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }
    assert response.content == "You're welcome!"
    assert response.id == "resp-123"
    assert response.model == "gemini-2.5-flash-001"
    assert response.harness.request_id == "rq-9"
    assert response.harness.provider == "gemini"
    assert response.harness.model == "gemini/gemini-2.5-flash"
    validate(response)


@pytest.mark.asyncio
async def test_generate_returns_tool_calls_with_minted_ids() -> None:
    data = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Let me check."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                        {"functionCall": {"name": "get_time", "args": {}, "id": "fc-7"}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 30,
            "candidatesTokenCount": 10,
            "totalTokenCount": 40,
        },
    }
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(200, json=data))
        async with httpx.AsyncClient() as client:
            response = await GeminiProvider().generate(make_call(tools=[WEATHER_TOOL]), client.send)

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert response.harness.raw_finish_reasons == ["STOP"]
    assert choice.message.content == "Let me check."
    first, second = choice.message.tool_calls
    assert re.fullmatch(r"call_[0-9a-f]{24}", first.id)
    assert first.function.name == "get_weather"
    assert json.loads(first.function.arguments) == {"city": "Oslo"}
    assert second.id == "fc-7"
    assert second.function.arguments == "{}"
    assert response.model == "gemini-2.5-flash"  # no modelVersion: the requested model
    assert response.id.startswith("chatcmpl-")
    assert response.created > 0
    validate(response)


def test_minted_tool_call_ids_are_unique() -> None:
    candidate = {
        "content": {"parts": [{"functionCall": {"name": "f", "args": {}}}] * 3},
        "finishReason": "STOP",
    }
    choice, _ = parse_candidate(candidate, 0)
    ids = [t.id for t in choice.message.tool_calls]
    assert len(set(ids)) == 3


# --- request building --------------------------------------------------------------------


def test_default_base_url_and_models_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    request = GeminiProvider().build_request(make_call(api_base=None, model="models/gemini-pro"))
    assert str(request.url) == f"{PROVIDERS['gemini'].api_base}/models/gemini-pro:generateContent"
    assert request.method == "POST"


def test_tuned_models_keep_their_own_path() -> None:
    request = GeminiProvider().build_request(make_call(model="tunedModels/my-tune"))
    assert str(request.url) == f"{BASE}/tunedModels/my-tune:generateContent"


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "https://proxy.test/v1beta/")
    request = GeminiProvider().build_request(make_call(api_base=None))
    assert str(request.url) == "https://proxy.test/v1beta/models/gemini-2.5-flash:generateContent"


def test_no_key_header_without_a_key() -> None:
    request = GeminiProvider().build_request(make_call(api_key=None))
    assert "x-goog-api-key" not in request.headers


def test_generation_config_maps_openai_parameters() -> None:
    call = make_call(
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        max_completion_tokens=256,
        max_tokens=999,
        stop="END",
        n=3,
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )
    config = body_of(GeminiProvider().build_request(call))["generationConfig"]
    assert config == {
        "temperature": 0.7,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "candidateCount": 3,
        "seed": 42,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
    }


def test_stop_list_and_no_config_when_no_parameters() -> None:
    assert "generationConfig" not in body_of(GeminiProvider().build_request(make_call()))
    body = body_of(GeminiProvider().build_request(make_call(stop=["a", "b"])))
    assert body["generationConfig"] == {"stopSequences": ["a", "b"]}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"responseMimeType": "application/json", "responseSchema": {"type": "object"}},
        ),
        ({"type": "text"}, None),
    ],
)
def test_response_format(fmt: dict[str, Any], expected: dict[str, Any] | None) -> None:
    body = body_of(GeminiProvider().build_request(make_call(response_format=fmt)))
    assert body.get("generationConfig") == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    call = make_call(tools=[WEATHER_TOOL], tool_choice=choice)
    body = body_of(GeminiProvider().build_request(call))
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_native_tools_pass_through_beside_declarations() -> None:
    call = make_call(tools=[WEATHER_TOOL, {"googleSearch": {}}])
    tools = body_of(GeminiProvider().build_request(call))["tools"]
    assert tools[0]["functionDeclarations"][0]["name"] == "get_weather"
    assert tools[1] == {"googleSearch": {}}


def test_gemini_fields_pass_through_and_openai_only_fields_are_dropped() -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    call = make_call(
        safetySettings=safety,
        cachedContent="cachedContents/abc",
        user="u-1",
        logit_bias={"1": 2},
        parallel_tool_calls=False,
        stream_options={"include_usage": True},
    )
    body = body_of(GeminiProvider().build_request(call))
    assert body["safetySettings"] == safety
    assert body["cachedContent"] == "cachedContents/abc"
    for dropped in ("user", "logit_bias", "parallel_tool_calls", "stream_options"):
        assert dropped not in body
        assert dropped not in body.get("generationConfig", {})


def test_image_parts_become_inline_or_file_data() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}},
            ],
        }
    ]
    body = body_of(GeminiProvider().build_request(make_call(messages)))
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.test/cat.jpg"}},
            ],
        }
    ]


def test_consecutive_user_turns_merge_and_tool_name_falls_back_to_message_name() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "function", "name": "lookup", "content": "[1, 2]"},
    ]
    body = body_of(GeminiProvider().build_request(make_call(messages)))
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "a"},
                {"text": "b"},
                {"functionResponse": {"name": "lookup", "response": {"result": "[1, 2]"}}},
            ],
        }
    ]
    assert "systemInstruction" not in body


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([{"role": "robot", "content": "x"}], "unsupported role"),
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], "matches no tool call"),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ],
            "not valid JSON",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ],
            "must be a JSON object",
        ),
    ],
)
def test_malformed_messages_raise_bad_request(
    messages: list[dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(errors.BadRequestError, match=fragment) as info:
        GeminiProvider().build_request(make_call(messages))
    assert info.value.provider == "gemini"
    assert info.value.model == "gemini/gemini-2.5-flash"


# --- response normalisation --------------------------------------------------------------


def test_thought_parts_become_reasoning_and_usage_counts_thoughts() -> None:
    data = text_response()
    data["candidates"][0]["content"]["parts"] = [
        {"text": "Considering capitals...", "thought": True},
        {"text": "Stock"},
        {"text": "holm"},
    ]
    data["usageMetadata"] = {
        "promptTokenCount": 12,
        "toolUsePromptTokenCount": 3,
        "candidatesTokenCount": 2,
        "thoughtsTokenCount": 31,
        "cachedContentTokenCount": 8,
        "totalTokenCount": 48,
    }
    response = parse(data)
    message = response.choices[0].message
    assert message.content == "Stockholm"
    assert message.reasoning_content == "Considering capitals..."
    assert response.usage.to_dict() == {
        "prompt_tokens": 15,
        "completion_tokens": 33,
        "total_tokens": 48,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 31},
    }
    completion = validate(response)
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 31


def test_max_tokens_maps_to_length() -> None:
    data = text_response("Stock")
    data["candidates"][0]["finishReason"] = "MAX_TOKENS"
    response = parse(data)
    assert response.choices[0].finish_reason == "length"
    assert response.harness.raw_finish_reasons == ["MAX_TOKENS"]


def test_safety_stopped_candidate_is_content_filter_with_empty_content() -> None:
    data = text_response()
    data["candidates"][0] = {"finishReason": "SAFETY", "index": 0, "safetyRatings": []}
    response = parse(data)
    assert response.choices[0].finish_reason == "content_filter"
    assert response.choices[0].message.content == ""
    validate(response)


def test_blocked_prompt_gives_one_filtered_choice_and_a_flag() -> None:
    data = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash",
    }
    response = parse(data)
    assert len(response.choices) == 1
    assert response.choices[0].message.content == ""
    assert response.choices[0].finish_reason == "content_filter"
    assert response.harness.flags == ["prompt_blocked:PROHIBITED_CONTENT"]
    assert response.usage.prompt_tokens == 9
    assert response.usage.completion_tokens == 0
    validate(response)


def test_no_candidates_and_no_block_reason_is_invalid() -> None:
    with pytest.raises(errors.InvalidResponseError):
        parse({"usageMetadata": {}})


def test_unknown_finish_reason_is_flagged() -> None:
    data = text_response()
    data["candidates"][0]["finishReason"] = "SOMETHING_NEW"
    response = parse(data)
    assert response.choices[0].finish_reason == "stop"
    assert response.harness.flags == ["unknown_finish_reason:SOMETHING_NEW"]


def test_several_candidates_are_ordered_by_index() -> None:
    data = {
        "candidates": [
            {"content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS", "index": 1},
            {"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},  # index 0 omitted
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2},
    }
    response = parse(data, make_call(n=2))
    assert [c.index for c in response.choices] == [0, 1]
    assert [c.message.content for c in response.choices] == ["A", "B"]
    assert [c.finish_reason for c in response.choices] == ["stop", "length"]
    assert response.harness.raw_finish_reasons == ["STOP", "MAX_TOKENS"]
    assert response.usage.total_tokens == 7  # no totalTokenCount: the sum
    validate(response)


@pytest.mark.asyncio
async def test_generate_rejects_a_body_that_is_not_gemini_shaped() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(200, json={"candidates": "nope"}))
        async with httpx.AsyncClient() as client:
            with pytest.raises(errors.InvalidResponseError):
                await GeminiProvider().generate(make_call(), client.send)


# --- errors ------------------------------------------------------------------------------


def rpc(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message, "details": list(details)}}


RETRY_37 = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


def quota(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "m", "quotaId": quota_id}],
    }


ERROR_CASES = [
    pytest.param(
        400,
        rpc(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
        ),
        errors.AuthenticationError,
        None,
        id="400-invalid-key",
    ),
    pytest.param(
        400,
        [rpc(400, "INVALID_ARGUMENT", 'Invalid JSON payload received. Unknown name "foo"')],
        errors.BadRequestError,
        None,
        id="400-invalid-argument-list-wrapped",
    ),
    pytest.param(
        400,
        rpc(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
        ),
        errors.ContextWindowExceededError,
        None,
        id="400-too-long",
    ),
    pytest.param(
        400,
        rpc(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        errors.BadRequestError,
        None,
        id="400-failed-precondition",
    ),
    pytest.param(
        403,
        rpc(403, "PERMISSION_DENIED", "Permission denied on resource project."),
        errors.PermissionDeniedError,
        None,
        id="403",
    ),
    pytest.param(
        404,
        rpc(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta."),
        errors.NotFoundError,
        None,
        id="404",
    ),
    pytest.param(
        429,
        rpc(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
            RETRY_37,
        ),
        errors.RateLimitError,
        37.0,
        id="429-per-minute",
    ),
    pytest.param(
        429,
        rpc(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"},
        ),
        errors.BillingError,
        12.5,
        id="429-per-day",
    ),
    pytest.param(
        429,
        rpc(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for metric: generate_content_free_tier_requests, limit: 0, "
            "model: gemini-2.5-pro",
        ),
        errors.BillingError,
        None,
        id="429-zero-limit",
    ),
    pytest.param(
        499,
        rpc(499, "CANCELLED", "The operation was cancelled."),
        errors.APIConnectionError,
        None,
        id="499",
    ),
    pytest.param(
        500,
        rpc(500, "INTERNAL", "An internal error has occurred."),
        errors.InternalServerError,
        None,
        id="500",
    ),
    pytest.param(
        503,
        rpc(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        errors.ServiceUnavailableError,
        None,
        id="503",
    ),
    pytest.param(
        504,
        rpc(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        errors.TimeoutError,
        None,
        id="504",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "payload", "cls", "retry_after"), ERROR_CASES)
async def test_error_statuses_map_to_the_error_tree(
    status: int, payload: Any, cls: type[errors.HarnessError], retry_after: float | None
) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(return_value=httpx.Response(status, json=payload))
        async with httpx.AsyncClient() as client:
            with pytest.raises(errors.HarnessError) as info:
                await GeminiProvider().generate(make_call(), client.send)
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.retry_after == retry_after
    assert error.provider == "gemini"
    assert error.model == "gemini/gemini-2.5-flash"
    message = (payload[0] if isinstance(payload, list) else payload)["error"]["message"]
    assert message[:40] in (error.body or "")
    assert error.message == message


def test_error_body_excerpt_is_scrubbed_of_the_key() -> None:
    body = json.dumps(rpc(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}")).encode()
    error = GeminiProvider().parse_error(make_call(), 400, body, {})
    assert isinstance(error, errors.AuthenticationError)
    assert KEY not in (error.body or "")
    assert KEY not in str(error)


def test_non_json_error_body_falls_back_to_status() -> None:
    error = GeminiProvider().parse_error(make_call(), 502, b"<html>Bad Gateway</html>", {})
    assert isinstance(error, errors.ServiceUnavailableError)
    assert error.body == "<html>Bad Gateway</html>"
    assert error.retry_after is None


def test_retry_after_header_is_used_when_the_body_has_no_retry_info() -> None:
    body = json.dumps(rpc(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted")).encode()
    error = GeminiProvider().parse_error(make_call(), 429, body, {"retry-after": "5"})
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 5.0


# --- properties --------------------------------------------------------------------------

TEXT = st.text(max_size=20)
PART = st.fixed_dictionaries({"text": TEXT}, optional={"thought": st.booleans()})


@given(st.lists(PART, max_size=8))
def test_content_is_the_concatenation_of_non_thought_parts(parts: list[dict[str, Any]]) -> None:
    choice, _ = parse_candidate({"content": {"parts": parts}, "finishReason": "STOP"}, 0)
    assert choice.message.content == "".join(p["text"] for p in parts if not p.get("thought"))
    thoughts = [p["text"] for p in parts if p.get("thought")]
    assert choice.message.reasoning_content == ("".join(thoughts) if thoughts else None)
    assert choice.finish_reason == "stop"


COUNT = st.integers(min_value=0, max_value=10**7)
USAGE_KEYS = (
    "promptTokenCount",
    "toolUsePromptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
)


@given(st.fixed_dictionaries({}, optional={k: COUNT for k in USAGE_KEYS}))
def test_usage_arithmetic(meta: dict[str, int]) -> None:
    usage = parse_usage(meta)
    assert usage.prompt_tokens == meta.get("promptTokenCount", 0) + meta.get(
        "toolUsePromptTokenCount", 0
    )
    assert usage.completion_tokens == meta.get("candidatesTokenCount", 0) + meta.get(
        "thoughtsTokenCount", 0
    )
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.reasoning_tokens == meta.get("thoughtsTokenCount")
    assert usage.cached_tokens == meta.get("cachedContentTokenCount")


@given(COUNT, COUNT, COUNT)
def test_usage_total_is_taken_from_total_token_count(prompt: int, out: int, total: int) -> None:
    usage = parse_usage(
        {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": total}
    )
    assert usage.total_tokens == total


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid OpenAI message lists: system/developer, user, assistant (maybe with tool calls)
    followed by the matching tool results."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": draw(TEXT)}
        )
    for turn in range(draw(st.integers(min_value=1, max_value=4))):
        user_content = draw(
            st.one_of(
                TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}))
            )
        )
        messages.append({"role": "user", "content": user_content})
        if draw(st.booleans()):
            messages.append({"role": "system", "content": draw(TEXT)})
        n_calls = draw(st.integers(min_value=0, max_value=2))
        calls = [
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {
                    "name": draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True)),
                    "arguments": json.dumps(
                        draw(st.dictionaries(st.text(max_size=5), st.integers() | TEXT, max_size=3))
                    ),
                },
            }
            for i in range(n_calls)
        ]
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | TEXT)}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        for c in calls:
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": draw(TEXT)})
    return messages


@settings(max_examples=75)
@given(conversations())
def test_build_request_for_any_valid_conversation(messages: list[dict[str, Any]]) -> None:
    body = body_of(GeminiProvider().build_request(make_call(messages)))
    contents = body["contents"]
    roles = [c["role"] for c in contents]
    assert set(roles) <= {"user", "model"}
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))  # merged
    assert all(c["parts"] for c in contents)
    system_texts = [
        m["content"] for m in messages if m["role"] in ("system", "developer") and m["content"]
    ]
    assert [p["text"] for p in body.get("systemInstruction", {}).get("parts", [])] == system_texts
    calls = {c["id"]: c["function"] for m in messages for c in m.get("tool_calls", [])}
    sent_calls = [p["functionCall"] for c in contents for p in c["parts"] if "functionCall" in p]
    assert sent_calls == [
        {"name": f["name"], "args": json.loads(f["arguments"])} for f in calls.values()
    ]
    responses = [
        p["functionResponse"] for c in contents for p in c["parts"] if "functionResponse" in p
    ]
    tool_messages = [m for m in messages if m["role"] == "tool"]
    assert [r["name"] for r in responses] == [
        calls[m["tool_call_id"]]["name"] for m in tool_messages
    ]
    assert all(isinstance(r["response"], dict) for r in responses)
    for content in contents:
        for part in content["parts"]:
            if "functionCall" in part:
                assert content["role"] == "model"
            if "functionResponse" in part:
                assert content["role"] == "user"


@pytest.mark.parametrize(
    ("given_indices", "expected"),
    [
        ([1, None], [1, 0]),
        ([None, None, None], [0, 1, 2]),
        ([None, 0], [1, 0]),
        ([2, None, 0], [2, 1, 0]),
    ],
)
def test_candidate_indices_are_unique(given_indices: list[int | None], expected: list[int]) -> None:
    candidates = [{} if i is None else {"index": i} for i in given_indices]
    assert candidate_indices(candidates) == expected
