"""ModelResponse: OpenAI shape, dict and attribute access, metadata kept apart."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

import harness
from harness import Choice, FunctionCall, Message, ModelResponse, ResponseMeta, ToolCall, Usage


def make(content: str | None = "Stockholm", **kw) -> ModelResponse:
    return ModelResponse(
        id="chatcmpl-1",
        model="gpt-4o-mini",
        created=1767225600,
        choices=[Choice(0, Message(content=content), "stop")],
        usage=Usage(38, 2, 40),
        harness=ResponseMeta(provider="openai", model="fast", latency_ms=123.4, cost_usd=0.001),
        **kw,
    )


def test_attribute_and_dict_access_agree():
    r = make()
    assert r.choices[0].message.content == r["choices"][0]["message"]["content"] == "Stockholm"
    assert r["usage"]["total_tokens"] == r.usage.total_tokens == 40
    assert "choices" in r and "harness" not in r
    assert r.get("nope", 1) == 1


def test_to_dict_validates_as_the_openai_sdk_type_and_excludes_metadata():
    r = make()
    data = r.to_dict()
    json.dumps(data)
    parsed = ChatCompletion.model_validate(data)
    assert parsed.choices[0].message.content == "Stockholm"
    assert "harness" not in data and "latency_ms" not in json.dumps(data)
    assert r.harness.to_dict()["latency_ms"] == 123.4


def test_tool_calls_round_trip_through_the_sdk_type():
    tool = ToolCall("call_1", FunctionCall("get_weather", '{"city": "Oslo"}'))
    r = ModelResponse(
        id="x",
        model="m",
        created=1,
        choices=[Choice(0, Message(content=None, tool_calls=[tool]), "tool_calls")],
        usage=Usage(1, 1, 2, cached_tokens=0, reasoning_tokens=5),
    )
    parsed = ChatCompletion.model_validate(r.to_dict())
    assert parsed.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert parsed.usage.completion_tokens_details.reasoning_tokens == 5
    assert "1 tool call" in repr(r)


def test_repr_is_short_and_useful():
    r = make("x" * 500)
    text = repr(r)
    assert len(text) < 160
    assert (
        text.startswith("<ModelResponse fast: 'xxx") and "finish=stop" in text and "123ms" in text
    )


def test_tool_call_from_dict_serialises_object_arguments():
    call = ToolCall.from_dict({"id": "a", "function": {"name": "f", "arguments": {"k": 1}}})
    assert call.function.arguments == '{"k": 1}'


@given(content=st.text(), prompt=st.integers(0, 10**6), completion=st.integers(0, 10**6))
def test_any_text_and_usage_validate(content, prompt, completion):
    r = make(content)
    r.usage = Usage(prompt, completion, prompt + completion)
    parsed = ChatCompletion.model_validate(json.loads(json.dumps(r.to_dict())))
    assert parsed.choices[0].message.content == content
    assert parsed.usage.total_tokens == prompt + completion


def test_public_api_is_sorted_and_complete():
    assert harness.__all__ == sorted(harness.__all__)
    for name in harness.__all__:
        assert hasattr(harness, name), name
    for name in (
        "completion",
        "acompletion",
        "batch_completion",
        "abatch_completion",
        "batch_completion_models",
        "abatch_completion_models",
        "batch_completion_models_all_responses",
        "abatch_completion_models_all_responses",
        "ModelResponse",
        "Harness",
    ):
        assert name in harness.__all__
    assert harness.ModelResponse.__module__ == "harness"
