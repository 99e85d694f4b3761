"""Tests of the OpenAI / OpenAI-compatible / Azure adapter: requests, parsing, errors, wire path."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from harness import errors
from harness.config import ModelSpec, parse_model_string
from harness.providers.base import Call, get_provider
from harness.providers.openai import AzureProvider, OpenAIProvider
from harness.types import ModelResponse

OPENAI = OpenAIProvider()
AZURE = AzureProvider()
KEY = "sk-test-0123456789abcdefghij"
AZURE_ENDPOINT = "https://res.openai.azure.com"
HELLO = [{"role": "user", "content": "Capital of Norway?"}]


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_API_VERSION", "AZURE_API_VERSION",
                "AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def spec_of(model: str, **changes: Any) -> ModelSpec:
    return replace(parse_model_string(model), **changes)


def make_call(model: str = "openai/gpt-4o-mini", *, key: str | None = KEY,
              messages: list[dict[str, Any]] | None = None, api_base: str | None = None,
              headers: dict[str, str] | None = None, spec: ModelSpec | None = None,
              **params: Any) -> Call:
    return Call(
        spec=spec or spec_of(model),
        messages=HELLO if messages is None else messages,
        params=params,
        api_key=key,
        api_base=api_base,
        headers=headers or {},
    )


def provider_for(call: Call) -> OpenAIProvider:
    return AZURE if call.spec.family == "azure" else OPENAI


def body_of(request: httpx.Request) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(request.content)
    return result


def completion(content: Any = "Stockholm", finish: Any = "stop", **top: Any) -> dict[str, Any]:
    """A chat.completion body as in docs/wire-formats.md §1.3."""
    body: dict[str, Any] = {
        "id": "chatcmpl-9fXk2",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1a2b3c",
        "choices": [{
            "index": 0, "logprobs": None, "finish_reason": finish,
            "message": {"role": "assistant", "content": content, "refusal": None},
        }],
        "usage": {
            "prompt_tokens": 38, "completion_tokens": 2, "total_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    body.update(top)
    return body


def parse(data: Any, call: Call | None = None,
          headers: dict[str, str] | None = None) -> ModelResponse:
    call = call or make_call()
    return provider_for(call).parse_response(call, data, httpx.Headers(headers or {}))


def parse_error(status: int, body: Any, call: Call | None = None,
                headers: dict[str, str] | None = None) -> errors.HarnessError:
    call = call or make_call()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return provider_for(call).parse_error(call, status, raw, httpx.Headers(headers or {}))


def validate(response: ModelResponse) -> ChatCompletion:
    return ChatCompletion.model_validate(response.to_dict())


async def over_the_wire(call: Call, response: httpx.Response) -> tuple[Any, httpx.Request]:
    """Run ``generate`` against a respx-mocked server; return the result and the request sent."""
    with respx.mock(assert_all_called=False) as router:
        route = router.route().mock(return_value=response)
        # respx answers every request, so skip loading CA certificates (~80 ms per client).
        async with httpx.AsyncClient(verify=False) as client:
            try:
                result: Any = await provider_for(call).generate(call, client.send)
            except errors.HarnessError as exc:
                result = exc
        assert route.call_count == 1
        return result, route.calls.last.request


# --- registration -------------------------------------------------------------------------


def test_families_are_registered() -> None:
    assert isinstance(get_provider("openai"), OpenAIProvider)
    assert isinstance(get_provider("azure"), AzureProvider)
    assert not isinstance(get_provider("openai"), AzureProvider)


# --- requests: OpenAI itself ----------------------------------------------------------------


def test_openai_request_url_auth_and_body() -> None:
    call = make_call(temperature=0.3, max_tokens=50, stop=["\n\n"], top_p=None)
    request = OPENAI.build_request(call)
    assert request.method == "POST"
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(request.content))
    assert "openai-organization" not in request.headers
    assert body_of(request) == {
        "model": "gpt-4o-mini", "messages": HELLO, "temperature": 0.3,
        "max_completion_tokens": 50, "stop": ["\n\n"],
    }
    assert b": " not in request.content and b", " not in request.content  # compact JSON


def test_openai_keeps_explicit_max_completion_tokens_over_max_tokens() -> None:
    body = body_of(OPENAI.build_request(make_call(max_tokens=10, max_completion_tokens=99)))
    assert body["max_completion_tokens"] == 99
    assert "max_tokens" not in body


def test_openai_org_and_project_headers_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-abc")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_def")
    request = OPENAI.build_request(make_call())
    assert request.headers["openai-organization"] == "org-abc"
    assert request.headers["openai-project"] == "proj_def"
    groq = OPENAI.build_request(make_call("groq/llama-3.3-70b-versatile"))
    assert "openai-organization" not in groq.headers
    assert "openai-project" not in groq.headers


def test_base_url_from_env_and_call_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://proxy.example/v1/")
    assert str(OPENAI.build_request(make_call()).url) == "https://proxy.example/v1/chat/completions"
    call = make_call(api_base="http://gpu-box:8000/v1")
    assert str(OPENAI.build_request(call).url) == "http://gpu-box:8000/v1/chat/completions"


def test_config_and_call_headers_are_sent_and_call_headers_win() -> None:
    spec = spec_of("openrouter/meta-llama/llama-3.1-8b-instruct",
                   headers={"HTTP-Referer": "https://example.org", "X-Title": "config"})
    request = OPENAI.build_request(make_call(spec=spec, headers={"X-Title": "call"}))
    assert request.headers["http-referer"] == "https://example.org"
    assert request.headers["x-title"] == "call"


def test_configured_header_replaces_any_spelling_of_a_default_one() -> None:
    spec = spec_of("openai/gpt-4o-mini", headers={"authorization": "Bearer gateway-token"})
    request = OPENAI.build_request(make_call(spec=spec, headers={"accept": "text/plain"}))
    assert request.headers.get_list("authorization") == ["Bearer gateway-token"]
    assert request.headers.get_list("accept") == ["text/plain"]


def test_messages_are_sent_as_given_and_not_copied_or_modified() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "Hi ☃"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_7Qx", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_7Qx", "content": "4°C, rain"},
    ]
    before = json.dumps(messages)
    body = body_of(OPENAI.build_request(make_call(messages=messages)))
    assert body["messages"] == messages
    assert json.dumps(messages) == before


# --- requests: compatible servers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "url"),
    [
        ("groq/llama-3.3-70b-versatile", "https://api.groq.com/openai/v1/chat/completions"),
        ("ollama/llama3.2", "http://localhost:11434/v1/chat/completions"),
        ("vllm/Qwen/Qwen3-8B", "http://localhost:8000/v1/chat/completions"),
        ("llamacpp/any", "http://127.0.0.1:8080/v1/chat/completions"),
        ("lm_studio/qwen", "http://localhost:1234/v1/chat/completions"),
        ("together/meta-llama/Llama-3-8b", "https://api.together.xyz/v1/chat/completions"),
        ("openrouter/openai/gpt-4o", "https://openrouter.ai/api/v1/chat/completions"),
        ("mistral/mistral-small-latest", "https://api.mistral.ai/v1/chat/completions"),
        ("deepseek/deepseek-chat", "https://api.deepseek.com/chat/completions"),
    ],
)
def test_compatible_servers_get_max_tokens(model: str, url: str) -> None:
    request = OPENAI.build_request(make_call(model, max_completion_tokens=64))
    assert str(request.url) == url
    body = body_of(request)
    assert body["model"] == model.partition("/")[2]
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body


def test_compatible_server_keeps_explicit_max_tokens() -> None:
    body = body_of(OPENAI.build_request(make_call("vllm/m", max_tokens=7, max_completion_tokens=9)))
    assert body["max_tokens"] == 7
    assert "max_completion_tokens" not in body


def test_no_authorization_header_without_key() -> None:
    request = OPENAI.build_request(make_call("ollama/llama3.2", key=None))
    assert "authorization" not in request.headers
    assert "api-key" not in request.headers


def test_extra_sampling_fields_pass_through_to_vllm() -> None:
    body = body_of(OPENAI.build_request(make_call("vllm/m", top_k=20, min_p=0.05, seed=3)))
    assert (body["top_k"], body["min_p"], body["seed"]) == (20, 0.05, 3)


def test_mistral_seed_becomes_random_seed() -> None:
    body = body_of(OPENAI.build_request(make_call("mistral/mistral-small-latest", seed=42)))
    assert body["random_seed"] == 42
    assert "seed" not in body
    other = body_of(OPENAI.build_request(make_call("groq/llama", seed=42)))
    assert other["seed"] == 42 and "random_seed" not in other


def test_mistral_foreign_tool_call_ids_are_reminted_consistently() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01A", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            {"id": "abcDEF123", "type": "function", "function": {"name": "w", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "4°C"},
        {"role": "tool", "tool_call_id": "abcDEF123", "content": "5°C"},
    ]
    before = json.dumps(messages)
    call = make_call("mistral/mistral-small-latest", messages=messages)
    sent = body_of(OPENAI.build_request(call))["messages"]
    new_id = sent[1]["tool_calls"][0]["id"]
    assert new_id != "toolu_01A" and len(new_id) == 9 and new_id.isalnum()
    assert sent[2]["tool_call_id"] == new_id
    assert sent[1]["tool_calls"][1]["id"] == "abcDEF123" == sent[3]["tool_call_id"]
    assert body_of(OPENAI.build_request(call))["messages"] == sent  # stable across retries
    assert json.dumps(messages) == before  # the caller's messages are untouched
    groq = body_of(OPENAI.build_request(make_call("groq/llama", messages=messages)))
    assert groq["messages"][1]["tool_calls"][0]["id"] == "toolu_01A"


def test_missing_api_base_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ModelSpec, "resolve_api_base", lambda self, override=None: None)
    with pytest.raises(errors.ConfigError, match="api_base") as info:
        OPENAI.build_request(make_call("vllm/m"))
    assert info.value.provider == "vllm"


# --- requests: Azure ------------------------------------------------------------------------


def azure_call(deployment: str = "gpt4o-prod", *, endpoint: str | None = AZURE_ENDPOINT,
               **kw: Any) -> Call:
    spec_changes = {k: kw.pop(k) for k in ("api_version",) if k in kw}
    spec = spec_of(f"azure/{deployment}", api_base=endpoint, **spec_changes)
    return make_call(spec=spec, **kw)


def test_azure_classic_url_api_key_header_and_body() -> None:
    request = AZURE.build_request(azure_call(max_tokens=50, temperature=0))
    assert str(request.url) == (
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers
    body = body_of(request)
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert body["model"] == "gpt4o-prod"


def test_azure_passes_max_completion_tokens_when_given() -> None:
    body = body_of(AZURE.build_request(azure_call(max_completion_tokens=50)))
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


def test_azure_api_version_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    def version(call: Call) -> str | None:
        value: str | None = AZURE.build_request(call).url.params.get("api-version")
        return value

    monkeypatch.setenv("AZURE_API_VERSION", "2024-06-01")
    assert version(azure_call()) == "2024-06-01"
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01-preview")
    assert version(azure_call()) == "2025-01-01-preview"
    assert version(azure_call(api_version="2024-02-01")) == "2024-02-01"
    call = azure_call(api_version="2024-02-01")
    request = AZURE.build_request(replace(call, params={"api_version": "2025-04-01-preview"}))
    assert request.url.params["api-version"] == "2025-04-01-preview"
    assert "api_version" not in body_of(request)


def test_azure_v1_surface() -> None:
    call = azure_call("my-deploy", endpoint="https://res.openai.azure.com/openai/v1/", max_tokens=5)
    request = AZURE.build_request(call)
    assert str(request.url) == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert "api-version" not in str(request.url)
    assert body_of(request)["model"] == "my-deploy"
    assert request.headers["api-key"] == KEY


@pytest.mark.parametrize(
    "endpoint",
    ["https://res.openai.azure.com/", "https://res.openai.azure.com/openai",
     "https://res.openai.azure.com/openai/deployments/gpt4o-prod"],
)
def test_azure_endpoint_spellings(endpoint: str) -> None:
    request = AZURE.build_request(azure_call(endpoint=endpoint))
    assert str(request.url).startswith(
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version="
    )


def test_azure_endpoint_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env-res.openai.azure.com")
    request = AZURE.build_request(azure_call(endpoint=None))
    assert request.url.host == "env-res.openai.azure.com"


def test_azure_without_endpoint_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="AZURE_OPENAI_ENDPOINT") as info:
        AZURE.build_request(azure_call(endpoint=None))
    assert "api_base" in str(info.value)


def test_azure_without_key_sends_no_auth() -> None:
    request = AZURE.build_request(azure_call(key=None))
    assert "api-key" not in request.headers and "authorization" not in request.headers


# --- the wire: one generate per provider flavour ----------------------------------------------


WIRE_CASES = [
    ("openai/gpt-4o-mini", None, "https://api.openai.com/v1/chat/completions",
     "authorization", f"Bearer {KEY}", "max_completion_tokens"),
    ("groq/llama-3.3-70b-versatile", None, "https://api.groq.com/openai/v1/chat/completions",
     "authorization", f"Bearer {KEY}", "max_tokens"),
    ("ollama/llama3.2", None, "http://localhost:11434/v1/chat/completions", None, None,
     "max_tokens"),
    ("mistral/mistral-small-latest", None, "https://api.mistral.ai/v1/chat/completions",
     "authorization", f"Bearer {KEY}", "max_tokens"),
    ("deepseek/deepseek-chat", None, "https://api.deepseek.com/chat/completions",
     "authorization", f"Bearer {KEY}", "max_tokens"),
    ("openrouter/openai/gpt-4o", None, "https://openrouter.ai/api/v1/chat/completions",
     "authorization", f"Bearer {KEY}", "max_tokens"),
    ("azure/gpt4o-prod", AZURE_ENDPOINT,
     "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
     "?api-version=2024-10-21", "api-key", KEY, "max_tokens"),
    ("azure/gpt4o-prod", AZURE_ENDPOINT + "/openai/v1",
     "https://res.openai.azure.com/openai/v1/chat/completions", "api-key", KEY, "max_tokens"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("model", "endpoint", "url", "auth", "auth_value", "limit"), WIRE_CASES)
async def test_generate_over_the_wire(model: str, endpoint: str | None, url: str,
                                      auth: str | None, auth_value: str | None, limit: str) -> None:
    key = None if auth is None else KEY
    call = make_call(spec=spec_of(model, api_base=endpoint), key=key, max_tokens=20, seed=1)
    reply = httpx.Response(200, json=completion(), headers={"x-request-id": "req_42"})
    result, request = await over_the_wire(call, reply)
    assert isinstance(result, ModelResponse), result
    assert str(request.url) == url
    if auth is None:
        assert "authorization" not in request.headers and "api-key" not in request.headers
    else:
        assert request.headers[auth] == auth_value
    body = body_of(request)
    assert body[limit] == 20
    assert ("random_seed" in body) == model.startswith("mistral/")
    assert result.content == "Stockholm"
    assert result.harness.provider == call.spec.provider
    assert result.harness.model == model
    assert result.harness.request_id == "req_42"
    validate(result)


@pytest.mark.asyncio
async def test_azure_request_id_from_apim_header() -> None:
    reply = httpx.Response(200, json=completion(), headers={"apim-request-id": "apim-1"})
    result, _ = await over_the_wire(azure_call(), reply)
    assert result.harness.request_id == "apim-1"


@pytest.mark.asyncio
async def test_ollama_n_fans_out_into_single_choice_requests() -> None:
    call = make_call("ollama/llama3.2", key=None, n=2)
    with respx.mock(assert_all_called=False) as router:
        route = router.post("http://localhost:11434/v1/chat/completions").mock(side_effect=[
            httpx.Response(200, json=completion("one")),
            httpx.Response(200, json=completion("two", "length")),
        ])
        async with httpx.AsyncClient() as client:
            result = await OPENAI.generate(call, client.send)
    assert route.call_count == 2
    assert all("n" not in body_of(c.request) for c in route.calls)
    assert sorted(c.message.content for c in result.choices) == ["one", "two"]
    assert [c.index for c in result.choices] == [0, 1]
    assert result.usage.total_tokens == 80


@pytest.mark.asyncio
async def test_openai_n_is_one_request_with_several_choices() -> None:
    data = completion("a")
    data["choices"].append({"index": 1, "finish_reason": "length",
                            "message": {"role": "assistant", "content": "b"}})
    call = make_call(n=2)
    result, request = await over_the_wire(call, httpx.Response(200, json=data))
    assert body_of(request)["n"] == 2
    assert [(c.index, c.message.content, c.finish_reason) for c in result.choices] == [
        (0, "a", "stop"), (1, "b", "length")]
    assert result.harness.raw_finish_reasons == ["stop", "length"]


# --- responses ------------------------------------------------------------------------------


def test_reference_response_is_normalised() -> None:
    result = parse(completion())
    assert (result.id, result.created, result.model) == (
        "chatcmpl-9fXk2", 1767225600, "gpt-4o-mini-2024-07-18")
    assert result.system_fingerprint == "fp_1a2b3c"
    assert result.content == "Stockholm"
    assert result.choices[0].finish_reason == "stop"
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (38, 2, 40)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (0, 0)
    assert result.harness.provider == "openai"
    assert result.harness.model == "openai/gpt-4o-mini"
    assert result.harness.raw_finish_reasons == ["stop"]
    assert result.harness.flags == []
    assert validate(result).choices[0].message.content == "Stockholm"


def test_tool_calls_are_parsed() -> None:
    data = completion(None, "tool_calls")
    data["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_7Qx", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
        {"type": "function", "function": {"name": "get_time", "arguments": {"tz": "CET"}}},
    ]
    result = parse(data)
    message = result.choices[0].message
    assert message.content is None
    assert result.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    first, second = message.tool_calls
    assert (first.id, first.function.name, first.function.arguments) == (
        "call_7Qx", "get_weather", "{\"city\":\"Oslo\"}")
    assert second.id.startswith("call_") and len(second.id) > 5  # minted for servers without ids
    assert json.loads(second.function.arguments) == {"tz": "CET"}
    checked = validate(result).choices[0].message.tool_calls
    assert checked is not None and checked[0].type == "function"
    assert checked[0].function.name == "get_weather"


@pytest.mark.parametrize(
    ("field", "provider"),
    [("reasoning", "vllm"), ("reasoning_content", "deepseek"), ("reasoning", "ollama"),
     ("reasoning_content", "llamacpp"), ("reasoning", "openrouter")],
)
def test_reasoning_is_kept_apart_from_content(field: str, provider: str) -> None:
    data = completion("42")
    data["choices"][0]["message"][field] = "Let me think… 6×7."
    result = parse(data, make_call(f"{provider}/m"))
    assert result.content == "42"
    assert result.choices[0].message.reasoning_content == "Let me think… 6×7."
    assert validate(result).choices[0].message.content == "42"


def test_reasoning_content_preferred_over_reasoning() -> None:
    data = completion("x")
    data["choices"][0]["message"].update(reasoning="new", reasoning_content="old")
    assert parse(data).choices[0].message.reasoning_content == "old"


def test_mistral_list_content_with_thinking() -> None:
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Hmm."}]},
        {"type": "text", "text": "Oslo"},
    ]
    result = parse(completion(content), make_call("mistral/magistral-small-latest"))
    assert result.content == "Oslo"
    assert result.choices[0].message.reasoning_content == "Hmm."
    validate(result)


@pytest.mark.parametrize("usage", [None, "missing", {}])
def test_null_or_missing_usage_is_zeros(usage: Any) -> None:
    data = completion()
    if usage == "missing":
        del data["usage"]
    else:
        data["usage"] = usage
    result = parse(data)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens,
            result.usage.total_tokens) == (0, 0, 0)
    assert result.usage.cached_tokens is None and result.usage.reasoning_tokens is None
    validate(result)


def test_usage_without_total_or_details() -> None:
    data = completion(usage={"prompt_tokens": 5, "completion_tokens": 3})
    usage = parse(data).usage
    assert (usage.total_tokens, usage.cached_tokens, usage.reasoning_tokens) == (8, None, None)


def test_usage_details() -> None:
    data = completion(usage={
        "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 30},
    })
    result = parse(data)
    assert (result.usage.cached_tokens, result.usage.reasoning_tokens) == (64, 30)
    dumped = validate(result).usage
    assert dumped is not None and dumped.prompt_tokens_details is not None
    assert dumped.prompt_tokens_details.cached_tokens == 64


def test_deepseek_cache_hit_tokens_become_cached_tokens() -> None:
    data = completion(usage={
        "prompt_tokens": 120, "completion_tokens": 10, "total_tokens": 130,
        "prompt_cache_hit_tokens": 100, "prompt_cache_miss_tokens": 20,
    })
    assert parse(data, make_call("deepseek/deepseek-chat")).usage.cached_tokens == 100


def test_groq_x_groq_usage_when_top_level_usage_missing() -> None:
    data = completion(usage=None, x_groq={
        "id": "req_01", "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
    usage = parse(data, make_call("groq/llama")).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 4, 13)


def test_top_level_usage_wins_over_x_groq() -> None:
    data = completion(x_groq={"usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert parse(data, make_call("groq/llama")).usage.total_tokens == 40


def test_missing_id_created_model_and_fingerprint_are_filled() -> None:
    data = completion()
    for key in ("id", "created", "model", "system_fingerprint", "object"):
        del data[key]
    before = int(time.time())
    result = parse(data)
    assert result.id.startswith("chatcmpl-") and len(result.id) > len("chatcmpl-")
    assert before <= result.created <= int(time.time()) + 1
    assert result.model == "gpt-4o-mini"
    assert result.system_fingerprint is None
    validate(result)


def test_vllm_stop_reason_and_llamacpp_timings_are_tolerated() -> None:
    data = completion(timings={"prompt_n": 9, "prompt_ms": 12.5, "predicted_per_second": 80.1})
    data["choices"][0]["stop_reason"] = "\n\n"
    result = parse(data, make_call("vllm/m"))
    assert result.content == "Stockholm" and result.choices[0].finish_reason == "stop"
    data["choices"][0]["stop_reason"] = 128009
    assert parse(data, make_call("vllm/m")).content == "Stockholm"


def test_azure_filter_results_are_ignored() -> None:
    data = completion(prompt_filter_results=[
        {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False,
                                                                "severity": "safe"}}}])
    data["choices"][0]["content_filter_results"] = {"violence": {"filtered": False}}
    result = parse(data, azure_call())
    assert result.content == "Stockholm"
    assert result.harness.provider == "azure"
    validate(result)


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"),
     ("content_filter", "content_filter"), ("function_call", "function_call"),
     ("eos", "stop"), ("model_length", "length"), (None, "stop"),
     # gateways in front of other vendors pass their words through
     ("end_turn", "stop"), ("max_tokens", "length"), ("MAX_TOKENS", "length"),
     ("SAFETY", "content_filter")],
)
def test_finish_reasons(raw: str | None, mapped: str) -> None:
    result = parse(completion(finish=raw))
    assert result.choices[0].finish_reason == mapped
    assert result.harness.raw_finish_reasons == [raw]
    assert result.harness.flags == []
    validate(result)


def test_together_eos_is_stop_with_raw_kept() -> None:
    result = parse(completion(finish="eos"), make_call("together/meta-llama/Llama-3-8b"))
    assert result.choices[0].finish_reason == "stop"
    assert result.harness.raw_finish_reasons == ["eos"]


def test_unknown_finish_reason_is_stop_and_flagged() -> None:
    result = parse(completion(finish="abort"))
    assert result.choices[0].finish_reason == "stop"
    assert result.harness.flags == ["unknown_finish_reason:abort"]


@pytest.mark.parametrize(
    ("raw", "provider", "error"),
    [("error", "mistral", errors.InternalServerError),
     ("error", "openrouter", errors.InternalServerError),
     ("insufficient_system_resource", "deepseek", errors.ServiceUnavailableError)],
)
def test_failed_finish_reasons_raise_retryable_errors(raw: str, provider: str,
                                                      error: type[errors.HarnessError]) -> None:
    with pytest.raises(error) as info:
        parse(completion(finish=raw), make_call(f"{provider}/m"))
    assert info.value.retryable
    assert info.value.provider == provider


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error_body", "cls", "status"),
    [({"code": 502, "message": "Upstream provider failed"}, errors.BadGatewayError, 502),
     ({"message": "Provider disconnected"}, errors.InternalServerError, None),
     ({"code": 429, "message": "Rate limited upstream"}, errors.RateLimitError, 429)],
)
async def test_openrouter_error_with_http_200_raises(error_body: dict[str, Any],
                                                     cls: type[errors.HarnessError],
                                                     status: int) -> None:
    data = {"id": "gen-1", "object": "chat.completion", "created": 1, "model": "x",
            "error": error_body,
            "choices": [{"index": 0, "finish_reason": "error", "native_finish_reason": "error",
                         "message": {"role": "assistant", "content": "partial"}}]}
    call = make_call("openrouter/openai/gpt-4o")
    result, _ = await over_the_wire(call, httpx.Response(200, json=data,
                                                         headers={"x-request-id": "or-9"}))
    assert type(result) is cls
    assert result.status == status
    assert error_body["message"] in result.message
    assert result.request_id == "or-9"
    assert result.provider == "openrouter"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content",
    [b"<html>bad gateway</html>", b"[]", b'{"choices": []}', b'{"choices": [42]}',
     b'{"choices": [{"message": {"tool_calls": [1]}}]}', b'{"choices": "x"}', b'"text"',
     b'{"created": Infinity, "choices": [{"message": {"content": "x"}}]}',
     b'{"usage": {"prompt_tokens": -Infinity}, "choices": [{"message": {"content": "x"}}]}',
     b'{"usage": {"prompt_tokens": NaN}, "choices": [{"message": {"content": "x"}}]}'],
)
async def test_malformed_bodies_are_invalid_response_errors(content: bytes) -> None:
    result, _ = await over_the_wire(make_call(), httpx.Response(200, content=content))
    assert isinstance(result, errors.InvalidResponseError), result


# --- errors ---------------------------------------------------------------------------------


def openai_error(message: str, type_: str | None = "invalid_request_error",
                 code: Any = None, param: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


STATUS_CASES = [
    (400, openai_error("Invalid value for 'temperature'"), errors.BadRequestError),
    (401, openai_error("Incorrect API key provided", code="invalid_api_key"),
     errors.AuthenticationError),
    (402, {"error": {"code": 402, "message": "Insufficient credits"}}, errors.BillingError),
    (403, openai_error("Country not supported", code="unsupported_country_region_territory"),
     errors.PermissionDeniedError),
    (404, openai_error("The model `gpt-9` does not exist", code="model_not_found"),
     errors.NotFoundError),
    (408, {"error": {"code": 408, "message": "Request timed out"}}, errors.TimeoutError),
    (409, openai_error("Conflict", type_="conflict"), errors.ConflictError),
    (413, openai_error("Request too large"), errors.BadRequestError),
    (422, {"error": {"message": "Invalid parameter", "type": "invalid_request_error"}},
     errors.UnprocessableEntityError),
    (429, openai_error("Rate limit reached for requests", type_="requests",
                       code="rate_limit_exceeded"), errors.RateLimitError),
    (429, openai_error("You exceeded your current quota, please check your plan.",
                       type_="insufficient_quota", code="insufficient_quota"),
     errors.BillingError),
    (500, openai_error("The server had an error", type_="server_error"),
     errors.InternalServerError),
    (502, b"<html><body>502 Bad Gateway</body></html>", errors.BadGatewayError),
    (503, openai_error("The engine is currently overloaded", type_="server_error"),
     errors.ServiceUnavailableError),
    (504, openai_error("Gateway timeout", type_="timeout"), errors.TimeoutError),
]


@pytest.mark.parametrize(("status", "body", "cls"), STATUS_CASES)
def test_status_mapping(status: int, body: Any, cls: type[errors.HarnessError]) -> None:
    headers = {"x-request-id": "req_abc", "retry-after": "7"}
    error = parse_error(status, body, headers=headers)
    assert type(error) is cls
    assert error.status == status
    assert error.retry_after == 7.0
    assert error.request_id == "req_abc"
    assert error.provider == "openai" and error.model == "openai/gpt-4o-mini"
    assert error.body is not None
    if isinstance(body, dict):
        assert body["error"]["message"] in error.message
        assert body["error"]["message"] in error.body
    else:
        assert "502 Bad Gateway" in error.message
    assert f"HTTP {status}" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "body", "cls"), STATUS_CASES)
async def test_status_mapping_over_the_wire(status: int, body: Any,
                                            cls: type[errors.HarnessError]) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = httpx.Response(status, content=raw, headers={"retry-after-ms": "1500"})
    result, _ = await over_the_wire(make_call("groq/llama"), reply)
    assert type(result) is cls
    assert result.status == status and result.retry_after == 1.5
    assert result.provider == "groq"


def test_retry_after_ms_wins_over_retry_after() -> None:
    error = parse_error(429, openai_error("slow down", code="rate_limit_exceeded"),
                        headers={"retry-after-ms": "250", "retry-after": "3"})
    assert error.retry_after == 0.25


def test_context_length_exceeded() -> None:
    body = openai_error("This model's maximum context length is 8192 tokens.",
                        code="context_length_exceeded", param="messages")
    error = parse_error(400, body)
    assert isinstance(error, errors.ContextWindowExceededError)
    assert error.status == 400


def test_vllm_flat_error_with_int_code() -> None:
    body = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
            "message": "This model's maximum context length is 4096 tokens. However, you "
                       "requested 5000 tokens."}
    error = parse_error(400, body, make_call("vllm/m"))
    assert isinstance(error, errors.ContextWindowExceededError)
    assert "maximum context length" in error.message
    assert error.provider == "vllm"


def test_vllm_nested_error_with_int_code() -> None:
    body = {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError",
                      "param": None, "code": 404}}
    error = parse_error(404, body, make_call("vllm/m"))
    assert isinstance(error, errors.NotFoundError) and "does not exist" in error.message


def test_mistral_flat_error() -> None:
    body = {"object": "error", "message": "Invalid model: mistral-huge", "type": "invalid_model",
            "param": None, "code": "1500"}
    error = parse_error(400, body, make_call("mistral/mistral-huge"))
    assert type(error) is errors.BadRequestError
    assert error.message == "Invalid model: mistral-huge"


def test_azure_content_filter_400() -> None:
    body = {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                   "content management policy.",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation",
                       "content_filter_result": {"hate": {"filtered": True,
                                                          "severity": "high"}}}}}
    error = parse_error(400, body, azure_call(), headers={"apim-request-id": "apim-7"})
    assert isinstance(error, errors.ContentFilterError)
    assert error.status == 400 and error.request_id == "apim-7"
    assert error.provider == "azure"


def test_azure_innererror_alone_marks_content_filter() -> None:
    body = {"error": {"message": "Blocked.", "code": "BadRequest",
                      "innererror": {"code": "ResponsibleAIPolicyViolation"}}}
    assert isinstance(parse_error(400, body, azure_call()), errors.ContentFilterError)


def test_azure_429_rate_limit_with_retry_after_ms() -> None:
    body = {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create "
                      "Operation have exceeded token rate limit. Please retry after 6 seconds."}}
    error = parse_error(429, body, azure_call(), headers={"retry-after": "6",
                                                           "retry-after-ms": "5800"})
    assert type(error) is errors.RateLimitError
    assert error.retry_after == 5.8


def test_azure_404_deployment_not_found() -> None:
    body = {"error": {"code": "DeploymentNotFound",
                      "message": "The API deployment for this resource does not exist."}}
    assert type(parse_error(404, body, azure_call())) is errors.NotFoundError


def test_azure_401_flat_status_code_body() -> None:
    body = {"statusCode": 401, "message": "Access denied due to invalid subscription key."}
    error = parse_error(401, body, azure_call())
    assert type(error) is errors.AuthenticationError
    assert "Access denied" in error.message


def test_openrouter_errors() -> None:
    call = make_call("openrouter/openai/gpt-4o")
    credits = parse_error(402, {"error": {"code": 402, "message": "Insufficient credits"}}, call)
    assert type(credits) is errors.BillingError
    moderation = parse_error(403, {"error": {
        "code": 403, "message": "openai/gpt-4o requires moderation; your input was flagged",
        "metadata": {"reasons": ["violence"], "flagged_input": "…", "provider_name": "OpenAI",
                     "model_slug": "openai/gpt-4o"}}}, call)
    assert isinstance(moderation, errors.ContentFilterError) and moderation.status == 403
    upstream = parse_error(502, {"error": {
        "code": 502, "message": "Provider returned error",
        "metadata": {"provider_name": "Fireworks", "raw": "upstream exploded"}}}, call)
    assert type(upstream) is errors.BadGatewayError
    assert "Fireworks" in upstream.message and "upstream exploded" in upstream.message
    no_provider = parse_error(503, {"error": {"code": 503, "message": "No allowed providers"}},
                              call)
    assert type(no_provider) is errors.ServiceUnavailableError


def test_plain_403_without_moderation_metadata_is_permission_denied() -> None:
    body = {"error": {"code": 403, "message": "Forbidden", "metadata": {"provider_name": "x"}}}
    assert type(parse_error(403, body, make_call("openrouter/x"))) is errors.PermissionDeniedError


def test_llamacpp_loading_model_503() -> None:
    body = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    error = parse_error(503, body, make_call("llamacpp/any"))
    assert type(error) is errors.ServiceUnavailableError
    assert error.retryable and error.message == "Loading model"


def test_ollama_model_not_pulled_404() -> None:
    body = {"error": {"message": "model \"llama9\" not found, try pulling it first",
                      "type": "api_error", "param": None, "code": None}}
    error = parse_error(404, body, make_call("ollama/llama9"))
    assert type(error) is errors.NotFoundError and "not found" in error.message


def test_empty_error_body_still_says_something() -> None:
    error = parse_error(500, b"")
    assert type(error) is errors.InternalServerError
    assert error.message == "HTTP 500"


def test_error_code_prefers_named_code_over_type() -> None:
    # A generic ``type`` must not hide a telling ``code`` (and vice versa).
    by_code = parse_error(429, openai_error("Out of credit", type_="requests",
                                            code="insufficient_quota"))
    by_type = parse_error(429, openai_error("Out of credit", type_="insufficient_quota",
                                            code=None))
    assert type(by_code) is errors.BillingError and type(by_type) is errors.BillingError


@pytest.mark.asyncio
async def test_api_key_echoed_in_error_is_scrubbed() -> None:
    key = "my-private-key-ABCDEFGH12345"  # not key-shaped: only registration can catch it
    errors.register_secret(key)
    body = openai_error(f"Incorrect API key provided: {key}. Find your key at ...",
                        code="invalid_api_key")
    call = make_call(key=key)
    result, request = await over_the_wire(call, httpx.Response(401, json=body))
    assert request.headers["authorization"] == f"Bearer {key}"
    assert isinstance(result, errors.AuthenticationError)
    for text in (str(result), repr(result), result.message, result.body or "",
                 json.dumps(result.to_dict())):
        assert key not in text
    assert "Incorrect API key provided" in str(result)


def test_key_shaped_token_is_scrubbed_without_registration() -> None:
    error = parse_error(401, openai_error("Incorrect API key provided: sk-proj-abcdefgh12345678"))
    assert "sk-proj-abcdefgh12345678" not in str(error)
    assert "sk-proj-abcdefgh12345678" not in (error.body or "")


# --- properties -----------------------------------------------------------------------------

KNOWN_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                "content_filter": "content_filter", "function_call": "function_call",
                "eos": "stop", "model_length": "length", None: "stop"}
counts = st.integers(min_value=0, max_value=2**40)


@given(
    contents=st.lists(st.text(), min_size=1, max_size=3),
    finish=st.sampled_from(sorted(KNOWN_FINISH, key=str)),
    prompt=counts, completion_tokens=counts, total=counts,
    cached=st.none() | counts, reasoning=st.none() | counts,
    provider=st.sampled_from(["openai", "vllm", "together", "mistral", "azure"]),
)
@settings(max_examples=150, deadline=None)
def test_well_formed_bodies_round_trip(contents: list[str], finish: str | None, prompt: int,
                                       completion_tokens: int, total: int, cached: int | None,
                                       reasoning: int | None, provider: str) -> None:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                             "total_tokens": total}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    data = completion(usage=usage)
    data["choices"] = [
        {"index": i, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
        for i, text in enumerate(contents)
    ]
    call = azure_call() if provider == "azure" else make_call(f"{provider}/m")
    result = parse(json.loads(json.dumps(data)), call)
    assert [c.message.content for c in result.choices] == contents
    assert [c.finish_reason for c in result.choices] == [KNOWN_FINISH[finish]] * len(contents)
    assert result.harness.raw_finish_reasons == [finish] * len(contents)
    assert result.usage.to_dict() == usage
    checked = validate(result)
    assert [c.message.content for c in checked.choices] == contents
    assert checked.usage is not None and checked.usage.total_tokens == total


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["id", "created", "model", "choices", "usage", "error", "x_groq", "system_fingerprint"]
CHOICE_FIELDS = ["index", "message", "finish_reason", "logprobs"]
MESSAGE_FIELDS = ["content", "tool_calls", "reasoning", "reasoning_content", "refusal"]


def sparse(fields: list[str], value: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(fields), value, max_size=len(fields))


messages_like = sparse(MESSAGE_FIELDS, json_values)
choices_like = st.lists(sparse(CHOICE_FIELDS, json_values | messages_like), max_size=3)
bodies_like = json_values | sparse(FIELDS, json_values | choices_like)


@pytest.mark.asyncio
@given(body=bodies_like, provider=st.sampled_from(["openai", "mistral", "azure"]))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_arbitrary_json_only_raises_harness_errors(body: Any, provider: str) -> None:
    call = azure_call() if provider == "azure" else make_call(f"{provider}/m")
    result, _ = await over_the_wire(call, httpx.Response(200, json=body))
    assert isinstance(result, ModelResponse | errors.HarnessError)
