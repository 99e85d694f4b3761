"""LiteLLM code keeps working after swapping the import.

Everything here is written the way LiteLLM's own batch, mock and streaming tests, its docs
and its users write it, against ``tests/litellm_shim.py`` imported as ``litellm`` (a module
that only re-exports harness's public names). Real answers come from a local
OpenAI-compatible server; offline ones from ``mock_response``, as in LiteLLM.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import tests.litellm_shim as litellm
from tests.helpers.local_server import LocalServer, Reply, Request, chat_body

USER = [{"role": "user", "content": "Hey, how's it going?"}]
KEY = "k" * 12


@pytest.fixture
def server(local_server) -> Iterator[LocalServer]:
    """An OpenAI-compatible server: answers with the model's name, or scripted statuses."""

    def handler(request: Request) -> Reply:
        body = request.json()
        model = body["model"]
        if model.startswith("status-"):
            status = int(model.split("-")[1])
            message = {
                400: "This model's maximum context length is 8192 tokens (context_length_exceeded)",
                401: "Incorrect API key provided",
                429: "Rate limit reached for requests",
                500: "The server had an error",
            }[status]
            return Reply(status=status, body={"error": {"message": message, "type": "x"}})
        return Reply(body=chat_body(f"answer from {model}", model))

    srv = local_server(handler)
    yield srv


def at(server: LocalServer) -> dict[str, Any]:
    return {"api_base": server.url, "api_key": KEY, "num_retries": 0}


# --- LiteLLM's batch tests (tests/local_testing/test_batch_completions.py) --------------


def test_batch_completions(server):
    messages = [[{"role": "user", "content": "write a short poem"}] for _ in range(3)]
    result = litellm.batch_completion(
        model="gpt-3.5-turbo",
        messages=messages,
        max_tokens=10,
        temperature=0.2,
        request_timeout=1,
        **at(server),
    )
    assert len(result) == 3
    for response in result:
        assert response.choices[0].message.content is not None
    # OpenAI itself takes max_tokens as max_completion_tokens
    assert [json.loads(r.body)["max_completion_tokens"] for r in server.requests] == [10] * 3


def test_batch_completions_models(server):
    result = litellm.batch_completion_models(
        models=["gpt-3.5-turbo", "gpt-3.5-turbo", "gpt-3.5-turbo"],
        messages=[{"role": "user", "content": "Hey, how's it going"}],
        **at(server),
    )
    assert result.choices[0].message.content == "answer from gpt-3.5-turbo"


def test_batch_completion_models_all_responses(server):
    responses = litellm.batch_completion_models_all_responses(
        models=["openai/first", "openai/status-500"],
        messages=[{"role": "user", "content": "write a poem"}],
        max_tokens=10,
        **at(server),
    )
    assert len(responses) == 2
    assert responses[0].choices[0].message.content == "answer from first"
    # A deliberate difference: the failure stays in its slot (LiteLLM drops it).
    assert isinstance(responses[1], litellm.InternalServerError)


# --- LiteLLM's mock tests (tests/local_testing/test_mock_request.py) ---------------------


def test_mock_request():
    response = litellm.mock_completion(model="gpt-3.5-turbo", messages=USER, stream=False)
    assert isinstance(response, litellm.ModelResponse)
    assert response.choices[0].message.content == "This is a mock request"


def test_streaming_mock_request():
    response = litellm.mock_completion(model="gpt-3.5-turbo", messages=USER, stream=True)
    complete_response = ""
    for chunk in response:
        complete_response += chunk["choices"][0]["delta"]["content"] or ""
    assert complete_response == "This is a mock request"


@pytest.mark.asyncio
async def test_async_mock_streaming_request():
    generator = await litellm.acompletion(
        messages=[{"role": "user", "content": "Why is LiteLLM amazing?"}],
        mock_response="LiteLLM is awesome",
        stream=True,
        model="gpt-3.5-turbo",
    )
    complete_response = ""
    async for chunk in generator:
        complete_response += chunk["choices"][0]["delta"]["content"] or ""
    assert complete_response == "LiteLLM is awesome"


def test_mock_request_n_greater_than_1():
    response = litellm.mock_completion(model="gpt-3.5-turbo", messages=USER, n=5)
    assert len(response.choices) == 5
    for choice in response.choices:
        assert choice.message.content == "This is a mock request"


@pytest.mark.asyncio
async def test_async_mock_streaming_request_n_greater_than_1():
    generator = await litellm.acompletion(
        messages=[{"role": "user", "content": "Why is LiteLLM amazing?"}],
        mock_response="LiteLLM is awesome",
        stream=True,
        model="gpt-3.5-turbo",
        n=5,
    )
    texts: dict[int, str] = {}
    async for chunk in generator:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {i: "LiteLLM is awesome" for i in range(5)}


def test_mock_request_with_mock_timeout():
    with pytest.raises(litellm.Timeout) as info:
        litellm.completion(
            model="gpt-3.5-turbo", messages=USER, timeout=0.05, mock_timeout=True, num_retries=0
        )
    assert "no answer within 0.05 s" in str(info.value)


def test_mock_timeout_streams_time_out_too():
    stream = litellm.completion(
        model="gpt-3.5-turbo", messages=USER, timeout=0.05, mock_timeout=True, stream=True
    )
    with pytest.raises(litellm.Timeout):
        next(iter(stream))


@pytest.mark.parametrize(
    ("mock_response", "cls", "status"),
    [
        ("litellm.RateLimitError", litellm.RateLimitError, 429),
        ("litellm.InternalServerError", litellm.InternalServerError, 500),
        ("litellm.ContextWindowExceededError", litellm.ContextWindowExceededError, 400),
        ("harness.AuthenticationError", litellm.AuthenticationError, 401),
        ("litellm.Timeout", litellm.Timeout, None),
        (litellm.RateLimitError(message="slow down", llm_provider="openai", model="gpt-4o"),
         litellm.RateLimitError, 429),
        (Exception("this is an error"), litellm.InternalServerError, 500),
    ],
    ids=["rate-limit", "internal", "context", "auth", "timeout", "instance", "foreign"],
)
def test_mock_response_can_be_an_error(mock_response, cls, status):
    with pytest.raises(cls) as info:
        litellm.completion(
            model="gpt-4o-mini", messages=USER, mock_response=mock_response, num_retries=0
        )
    error = info.value
    assert error.status_code == status
    assert error.llm_provider == "openai" and error.model is not None
    assert isinstance(error, litellm.APIError)


def test_a_message_that_merely_mentions_an_error_is_an_answer():
    r = litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="RateLimitError")
    assert r.choices[0].message.content == "RateLimitError"


# --- streaming loops: the README's, sync and async ----------------------------------------


def test_the_everyday_stream_loop_never_meets_a_chunk_without_choices():
    printed = []
    for chunk in litellm.completion(
        "openai/gpt-4o-mini", USER, stream=True, mock_response="Paris is the capital."
    ):
        printed.append(chunk.choices[0].delta.content or "")
        assert chunk.usage is None
        assert chunk.choices[0].delta.function_call is None
    assert "".join(printed) == "Paris is the capital."


@pytest.mark.asyncio
async def test_include_usage_adds_one_usage_chunk_at_the_end():
    stream = await litellm.acompletion(
        "gpt-4o-mini",
        USER,
        stream=True,
        stream_options={"include_usage": True},
        mock_response="two words",
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage == stream.response.usage
    assert stream.response.usage.completion_tokens == 2


def test_streaming_over_http_without_usage_option_still_prices_the_answer(server):
    def sse(request: Request) -> Reply:
        body = request.json()
        assert body["stream_options"] == {"include_usage": True}  # we always ask the server
        events = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 10,
                                      "total_tokens": 1010}},
        ]
        data = "".join(
            f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', 'created': 1, 'model': 'gpt-4o-mini', **e})}\n\n"
            for e in events
        )
        return Reply(body=data + "data: [DONE]\n\n", headers={"content-type": "text/event-stream"})

    server.handler = sse
    stream = litellm.completion("gpt-4o-mini", USER, stream=True, **at(server))
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello"
    assert stream.response.usage.total_tokens == 1010
    assert stream.response.harness.cost_usd == pytest.approx(1000 * 0.15e-6 + 10 * 0.6e-6)


# --- idioms on answers, chunks and errors -------------------------------------------------


def test_response_idioms(server):
    response = litellm.completion(model="gpt-4o-mini", messages=USER, **at(server))
    assert response["choices"][0]["message"]["content"] == response.choices[0].message.content
    assert response.model_dump() == response.json() == response.dict()
    assert json.loads(response.model_dump_json())["id"] == response.id
    assert response.usage.prompt_tokens_details.cached_tokens is None
    assert response.usage.completion_tokens_details.reasoning_tokens is None
    cost = litellm.completion_cost(completion_response=response)
    assert cost == response._hidden_params["response_cost"] > 0
    assert cost == pytest.approx(3 * 0.15e-6 + 1 * 0.6e-6)  # chat_body's usage at list price
    rebuilt = litellm.ModelResponse(**response.model_dump())
    assert rebuilt.choices[0].message.content == response.choices[0].message.content


def test_completion_cost_of_an_unpriced_model_says_how_to_price_it(server):
    response = litellm.completion(model="openai/in-house", messages=USER, **at(server))
    assert response._hidden_params["response_cost"] is None
    with pytest.raises(litellm.ConfigError, match=r"no price is known for model 'openai/in-house'"):
        litellm.completion_cost(response)


def test_multi_turn_tool_loop_appends_the_answers_message(server):
    tool_call = {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    seen: list[dict[str, Any]] = []

    def handler(request: Request) -> Reply:
        body = request.json()
        seen.append(body)
        if len(seen) == 1:
            message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
            answer = {**chat_body(), "choices": [
                {"index": 0, "finish_reason": "tool_calls", "message": message}]}
            return Reply(body=answer)
        return Reply(body=chat_body("It is 12 C in Oslo."))

    server.handler = handler
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    response = litellm.completion("gpt-4o-mini", messages, tools=tools, **at(server))
    assert response.choices[0].finish_reason == "tool_calls"
    messages.append(response.choices[0].message)
    for call in response.choices[0].message.tool_calls:
        args = json.loads(call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"12 C in {args['city']}"})
    final = litellm.completion("gpt-4o-mini", messages, tools=tools, **at(server))
    assert final.choices[0].message.content == "It is 12 C in Oslo."
    assert seen[1]["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [tool_call]}


def test_streamed_tool_calls_are_read_by_attribute_and_rebuilt():
    tool_calls = [{"id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    chunks = list(
        litellm.mock_completion("gpt-4o-mini", USER, stream=True, mock_tool_calls=tool_calls)
    )
    arguments = ""
    for chunk in chunks:
        for fragment in chunk.choices[0].delta.tool_calls or []:
            arguments += fragment.function.arguments or ""
    assert json.loads(arguments) == {"city": "Oslo"}
    rebuilt = litellm.stream_chunk_builder(chunks, messages=USER)
    assert rebuilt.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert rebuilt.choices[0].finish_reason == "tool_calls"


def test_stream_chunk_builder_rebuilds_text_and_usage_when_the_stream_carried_it():
    stream = litellm.completion(
        "gpt-4o-mini", USER, stream=True, mock_response="one two three",
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    rebuilt = litellm.stream_chunk_builder(chunks)
    assert rebuilt.choices[0].message.content == "one two three"
    assert rebuilt.usage == stream.response.usage
    assert litellm.completion_cost(rebuilt) == pytest.approx(
        litellm.completion_cost(stream.response)
    )
    # Without the usage chunk the usage is unknown, and the cost says so rather than $0.
    bare = litellm.stream_chunk_builder(
        list(litellm.completion("gpt-4o-mini", USER, stream=True, mock_response="x"))
    )
    assert "usage_unknown" in bare.harness.flags
    with pytest.raises(litellm.ConfigError, match="usage is unknown"):
        litellm.completion_cost(bare)


@pytest.mark.parametrize(
    ("model", "cls", "status"),
    [
        ("openai/status-429", litellm.RateLimitError, 429),
        ("openai/status-401", litellm.AuthenticationError, 401),
        ("openai/status-400", litellm.ContextWindowExceededError, 400),
        ("openai/status-500", litellm.InternalServerError, 500),
    ],
)
def test_errors_carry_litellms_attributes(server, model, cls, status):
    try:
        litellm.completion(model=model, messages=USER, **at(server))
    except cls as e:
        assert e.status_code == status
        assert e.llm_provider == "openai"
        assert e.model == model
        assert e.message
        assert isinstance(e, litellm.APIError)
    else:
        pytest.fail("no error raised")


def test_connection_errors_and_timeouts_are_api_errors():
    release = threading.Event()
    # A server of its own: once it is stopped, its port refuses connections.
    with LocalServer(lambda r: Reply(body=chat_body(), release=release)) as slow:
        with pytest.raises(litellm.Timeout) as timeout:
            litellm.completion("openai/x", USER, timeout=0.05, **at(slow))
        release.set()
    assert isinstance(timeout.value, litellm.APIError)
    with pytest.raises(litellm.APIConnectionError) as refused:
        litellm.completion("openai/x", USER, api_base=f"http://127.0.0.1:{slow.port}", api_key=KEY,
                           num_retries=0)
    assert isinstance(refused.value, litellm.APIError)


def test_custom_llm_provider_names_the_provider_of_a_bare_model(server):
    response = litellm.completion(
        model="my-local-model", messages=USER, custom_llm_provider="openai", **at(server)
    )
    assert response.choices[0].message.content == "answer from my-local-model"
    assert response.harness.provider == "openai"


def test_litellms_exception_names_are_importable():
    from tests.litellm_shim import (  # noqa: F401
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        AuthenticationError,
        BadGatewayError,
        BadRequestError,
        BudgetExceededError,
        ContentPolicyViolationError,
        ContextWindowExceededError,
        InternalServerError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServiceUnavailableError,
        Timeout,
        UnprocessableEntityError,
    )

    assert issubclass(ContextWindowExceededError, BadRequestError)
    assert issubclass(ContentPolicyViolationError, BadRequestError)
    assert issubclass(Timeout, TimeoutError)  # the builtin, as openai's APITimeoutError is not


# --- deliberate differences (the README's table) ------------------------------------------


def test_a_race_where_every_model_fails_raises_all_models_failed():
    with pytest.raises(litellm.AllModelsFailed) as info:
        litellm.batch_completion_models(
            models=["gpt-4o-mini", "claude-haiku-4-5"],
            messages=USER,
            mock_response="litellm.RateLimitError",
            num_retries=0,
        )
    assert list(info.value.errors) == ["gpt-4o-mini", "claude-haiku-4-5"]


def test_a_plain_string_for_models_is_a_type_error():
    with pytest.raises(TypeError, match=r"models=\['gpt-4o-mini'\]"):
        litellm.batch_completion_models(models="gpt-4o-mini", messages=USER)
