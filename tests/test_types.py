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


# --- the idioms LiteLLM and OpenAI SDK users write -------------------------------------


def test_pydantic_style_dumps_on_responses_messages_choices_and_chunks():
    r = make()
    assert r.model_dump() == r.dict() == r.json() == r.to_dict()  # LiteLLM's json() is a dict
    assert json.loads(r.model_dump_json()) == r.to_dict()
    assert json.loads(r.model_dump_json(indent=2)) == r.to_dict()
    message, choice = r.choices[0].message, r.choices[0]
    assert message.model_dump() == message.to_dict() and choice.dict() == choice.to_dict()
    assert "refusal" not in message.model_dump(exclude_none=True)
    chunk = harness.StreamChunk("c1", "m", [harness.ChunkChoice(0, harness.Delta(content="a"))])
    assert chunk.model_dump() == chunk.json() == chunk.to_dict()
    assert json.loads(chunk.model_dump_json())["choices"][0]["delta"] == {"content": "a"}


def test_model_response_from_the_openai_sdks_dump_builds_the_nested_types():
    sdk = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "created": 1767225600,
            "model": "gpt-4o-mini-2024-07-18",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "annotations": [],
                        "tool_calls": [
                            {"id": "call_1", "type": "function",
                             "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
            },
        }
    )
    for r in (ModelResponse(**sdk.model_dump()), ModelResponse.from_dict(sdk.model_dump())):
        assert isinstance(r.choices[0], Choice) and isinstance(r.choices[0].message, Message)
        assert isinstance(r.choices[0].message.tool_calls[0], ToolCall)
        assert r.choices[0].message.tool_calls[0].function.name == "f"
        assert r.usage.prompt_tokens_details.cached_tokens == 4 == r.usage.cached_tokens
        assert r.usage.completion_tokens_details.reasoning_tokens == 2
        assert r.service_tier == "default"
        again = ChatCompletion.model_validate(r.to_dict())
        assert again.choices[0].message.tool_calls[0].id == "call_1"
        assert again.usage.prompt_tokens_details.cached_tokens == 4


def test_a_bare_model_response_is_an_empty_answer_with_an_id():
    r = ModelResponse()
    assert r.id.startswith("chatcmpl-") and r.choices == [] and r.content is None
    assert r.created > 0 and r.usage.total_tokens == 0
    assert ModelResponse().id != r.id


def test_unknown_fields_are_kept_and_written_back():
    data = make().to_dict()
    data["x_groq"] = {"id": "req_1"}
    data["choices"][0]["content_filter_results"] = {"hate": {"filtered": False}}
    r = ModelResponse(**data)
    assert r.extra == {"x_groq": {"id": "req_1"}}
    assert r.to_dict() == data


def test_usage_details_exist_even_when_the_provider_reports_none():
    usage = Usage(3, 4)
    assert usage.total_tokens == 7
    assert usage.prompt_tokens_details.cached_tokens is None
    assert usage.completion_tokens_details.reasoning_tokens is None
    assert usage["prompt_tokens_details"]["cached_tokens"] is None
    assert "prompt_tokens_details" not in usage.to_dict()


@given(
    prompt=st.integers(0, 10**6),
    completion=st.integers(0, 10**6),
    cached=st.none() | st.integers(0, 10**6),
    reasoning=st.none() | st.integers(0, 10**6),
)
def test_usage_round_trips_through_its_openai_shape(prompt, completion, cached, reasoning):
    usage = Usage(prompt, completion, prompt + completion, cached, reasoning)
    assert Usage(**usage.to_dict()) == usage == Usage.from_dict(usage.to_dict())


def test_stream_chunks_take_openai_chunk_data_with_attribute_access_to_tool_fragments():
    from openai.types.chat import ChatCompletionChunk

    data = {
        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "system_fingerprint": None, "obfuscation": "abc",
        "choices": [{"index": 0, "finish_reason": None, "logprobs": None, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": ""}}]}}],
    }
    chunk = harness.StreamChunk(**data)
    fragment = chunk.choices[0].delta.tool_calls[0]
    assert fragment.function.name == "f" and fragment["function"]["name"] == "f"
    assert chunk.choices[0].delta.function_call is None
    assert chunk.usage is None and "usage" not in chunk.to_dict()
    assert chunk.to_dict() == data
    ChatCompletionChunk.model_validate(chunk.to_dict())


_TOOLS = st.lists(
    st.builds(
        lambda i, name, args: {"id": f"call_{i}", "type": "function",
                               "function": {"name": name, "arguments": json.dumps(args)}},
        st.integers(0, 99), st.text(min_size=1, max_size=20),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    ),
    max_size=3,
)


@given(
    content=st.none() | st.text(),
    tools=_TOOLS,
    finish=st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    prompt=st.integers(0, 10**6),
    completion=st.integers(0, 10**6),
    cached=st.none() | st.integers(0, 10**6),
)
def test_openai_data_round_trips_through_the_constructor(content, tools, finish, prompt, completion, cached):
    message: dict = {"role": "assistant", "content": content, "refusal": None}
    if tools:
        message["tool_calls"] = tools
    usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion,
                   "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    data = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "system_fingerprint": None, "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
    r = ModelResponse(**data)
    assert r.to_dict() == data
    assert ModelResponse.from_dict(data).to_dict() == data
    ChatCompletion.model_validate(r.to_dict())
