"""The tool-call checks: ``tool_call`` and ``tool_calls``, from Python and from YAML specs."""

from __future__ import annotations

import pytest

from harness import Choice, Harness, InternalServerError, Message, ModelResponse, ToolCall
from harness.checks import (
    CheckSpecError,
    assert_passes,
    run_check,
    tool_call,
    tool_calls,
    validate_check_spec,
)


def answer(*calls: tuple[str, object]) -> ModelResponse:
    """A response whose first choice makes these (name, arguments) tool calls."""
    made = [
        ToolCall.from_dict({"id": f"c{i}", "function": {"name": name, "arguments": args}})
        for i, (name, args) in enumerate(calls)
    ]
    return ModelResponse(
        id="r",
        model="m",
        choices=[Choice(0, Message(content=None, tool_calls=made or None), "tool_calls")],
    )


WEATHER = answer(
    ("get_time", {"tz": "UTC"}),
    ("get_weather", {"city": "Paris", "units": "metric", "where": {"country": "FR", "zip": 75}}),
)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"arguments": {"city": "Paris"}},
        {"arguments": {"where": {"country": "FR"}}},
        {"arguments": {"where": {"zip": 75.0}}},  # JSON equality: 75 == 75.0
        {"arguments_schema": {"type": "object", "required": ["city"]}},
        {"arguments": {"city": "Paris"}, "arguments_schema": {"required": ["units"]}},
    ],
)
def test_tool_call_passes_when_any_call_matches(kwargs):
    result = tool_call(WEATHER, "get_weather", **kwargs)
    assert result.passed, result.detail
    assert "call #2 is get_weather(" in result.detail


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"arguments": {"city": "London"}}, "call #2: $.city is 'Paris', not 'London'"),
        ({"arguments": {"day": "today"}}, "call #2: no argument $.day"),
        ({"arguments": {"where": {"country": "DE"}}}, "$.where.country is 'FR', not 'DE'"),
        ({"arguments": {"city": {"name": "Paris"}}}, "$.city is string, not an object"),
        ({"arguments": {"where": {"zip": True}}}, "$.where.zip is 75, not true"),
        (
            {"arguments_schema": {"required": ["zip"]}},
            "call #2: fails arguments_schema at $: 'zip' is a required property",
        ),
    ],
)
def test_tool_call_mismatch_says_why_and_names_the_calls_made(kwargs, why):
    result = tool_call(WEATHER, "get_weather", **kwargs)
    assert not result.passed
    assert why in result.detail
    assert (
        'made: get_time({"tz": "UTC"}), get_weather({"city": "Paris", "units": "metric"'
        in result.detail
    )


def test_tool_call_of_an_absent_tool_names_the_calls_made():
    result = tool_call(WEATHER, "search")
    assert not result.passed
    assert result.detail.startswith('expected a call to search; made: get_time({"tz": "UTC"})')


def test_no_tool_call_is_said():
    result = tool_call(answer(), "get_weather", arguments={"city": "Paris"})
    assert not result.passed
    assert result.detail.startswith(
        'expected a call to get_weather with arguments containing {"city": "Paris"}; '
        "made no tool call"
    )


def test_arguments_that_are_not_json_fail_saying_so():
    bad = answer(("get_weather", '{"city": Paris}'))
    result = tool_call(bad, "get_weather")
    assert not result.passed
    assert "call #1's arguments are not valid JSON" in result.detail
    assert 'made: get_weather({"city": Paris})' in result.detail


def test_empty_arguments_are_an_empty_object():
    empty = answer(("ping", ""))
    assert tool_call(empty, "ping").passed
    assert not tool_call(empty, "ping", arguments={"x": 1}).passed


def test_made_calls_are_excerpted_and_counted():
    many = answer(*[("t", {"text": "x" * 500}) for _ in range(7)])
    detail = tool_call(many, "other").detail
    assert "…)" in detail and "and 2 more" in detail
    assert len(detail) < 1000


@pytest.mark.parametrize(
    ("kwargs", "passed", "phrase"),
    [
        ({"count": 2}, True, "2 tool calls (made: get_time("),
        ({"count": 1}, False, "expected 1 tool call(s), got 2 tool calls (made: get_time("),
        ({"min": 3}, False, "expected at least 3 tool call(s), got 2"),
        ({"max": 1}, False, "expected at most 1 tool call(s), got 2"),
        ({"min": 1, "max": 2}, True, "2 tool calls"),
    ],
)
def test_tool_calls_counts(kwargs, passed, phrase):
    result = tool_calls(WEATHER, **kwargs)
    assert result.passed is passed
    assert phrase in result.detail


def test_tool_calls_zero():
    assert tool_calls(answer(), count=0).passed
    assert "made no tool call" in tool_calls(answer(), min=1).detail


def test_plain_text_and_errors_fail():
    assert "tool calls are unknown" in tool_call("text", "x").detail
    err = InternalServerError("boom", provider="mock", model="mock/m", status=500)
    assert tool_calls(err, count=0).detail.startswith("the call failed")


def test_yaml_forms_and_negation():
    assert run_check({"tool_call": "get_time"}, WEATHER).passed
    assert run_check({"tool_calls": 2}, WEATHER).passed
    assert run_check(
        {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}, WEATHER
    ).passed
    negated = run_check({"not-tool_call": {"name": "delete_user"}}, WEATHER)
    assert negated.passed and "tool_call failed, so not-tool_call passes" in negated.detail


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tool_call": {"arguments": {"a": 1}}}, "check 'tool_call' needs 'name'"),
        ({"tool_call": {"name": ""}}, "'name' is empty"),
        ({"tool_call": {"name": "f", "arguments": [1]}}, "'arguments' must be a mapping"),
        ({"tool_call": {"name": "f", "arguments": {"a": {1: 2}}}}, "'arguments.a' keys must be"),
        ({"tool_call": {"name": "f", "args": {}}}, "has no argument 'args'"),
        (
            {"tool_call": {"name": "f", "arguments_schema": {"type": "nope"}}},
            "invalid arguments_schema at $.type",
        ),
        ({"tool_call": {"name": "f", "arguments_schema": [1]}}, "must be a JSON Schema"),
        ({"tool_calls": None}, "needs at least one of: count, min, max"),
        ({"tool_calls": {"count": -1}}, "'count' must be a whole number >= 0"),
        ({"tool_calls": {"min": 3, "max": 1}}, "min 3 is greater than max 1"),
        ({"tool_calls": [1, 2]}, "takes one 'count', not a list"),
    ],
)
def test_bad_specs_are_refused_precisely(spec, message):
    with pytest.raises(CheckSpecError) as info:
        validate_check_spec(spec)
    assert message in str(info.value)


def test_offline_mock_tool_calls_reach_the_check_streamed_or_not():
    harness = Harness(config={})
    script = {
        "tool_calls": [
            {"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ]
    }
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    for stream in (False, True):
        response = harness.completion("mock/m", messages, mock_response=script, stream=stream)
        if stream:  # read the stream to its end; then it holds the assembled answer
            for _ in response:
                pass
            response = response.response
        assert_passes(
            tool_call(response, "get_weather", arguments={"city": "Paris"}),
            tool_calls(response, count=1),
        )
