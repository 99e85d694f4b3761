"""Message validation: precise errors before any request; valid input passes untouched."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import BadRequestError
from harness.messages import ROLES, validate_conversations, validate_messages


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ("hello", r"messages: expected a list .* got str"),
        ([], "messages: is empty"),
        (["hi"], r"messages\[0\]: expected a dict"),
        ([{"content": "x"}], r"messages\[0\]: missing 'role'"),
        ([{"role": "robot", "content": "x"}], r"messages\[0\]: role 'robot' is not one of system"),
        ([{"role": "user"}], r"messages\[0\]: missing 'content'"),
        ([{"role": "user", "content": None}], r"messages\[0\]: 'content' is None"),
        (
            [{"role": "user", "content": 3}],
            r"'content' must be a string or a list of parts, got int",
        ),
        (
            [{"role": "user", "content": [{"text": "x"}]}],
            r"messages\[0\].content\[0\]: expected a part dict",
        ),
        (
            [{"role": "user", "content": [{"type": "text"}]}],
            r"content\[0\]: a text part needs a string 'text'",
        ),
        ([{"role": "tool", "content": "4C"}], r"a tool message needs a string 'tool_call_id'"),
        ([{"role": "user", "content": "x", "tool_calls": []}], "only assistant messages may carry"),
        (
            [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}],
            r"tool_calls\[0\]: expected",
        ),
    ],
)
def test_malformed_messages_name_index_and_field(messages, message):
    with pytest.raises(BadRequestError, match=message):
        validate_messages(messages)


def test_tool_round_trip_is_valid():
    validate_messages(
        [
            {"role": "system", "content": "s"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "4C"},
        ]
    )


def test_batch_errors_name_the_conversation():
    with pytest.raises(BadRequestError, match=r"messages\[1\]\[0\]: missing 'role'"):
        validate_conversations([[{"role": "user", "content": "ok"}], [{"content": "x"}]])
    with pytest.raises(BadRequestError, match="list of conversations"):
        validate_conversations("hi")


text_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": st.text()}
)


@given(st.lists(text_message, min_size=1, max_size=8))
def test_any_well_formed_conversation_passes_unchanged(messages):
    assert validate_messages(messages) == messages


@given(
    st.lists(text_message, min_size=1, max_size=5),
    st.integers(0, 4),
    st.sampled_from(["role", "content"]),
    st.one_of(st.none(), st.integers(), st.text().filter(lambda s: s not in ROLES)),
)
def test_any_single_corruption_is_reported_at_its_index(messages, index, field, value):
    index %= len(messages)
    broken = [dict(m) for m in messages]
    if field == "role":
        broken[index]["role"] = value
    else:
        if value is None or isinstance(value, int):
            broken[index]["content"] = value
        else:
            del broken[index]["content"]
    try:
        validate_messages(broken)
    except BadRequestError as exc:
        assert f"messages[{index}]" in str(exc)
    else:
        # Only None content on an assistant with tool calls may pass; none here have tool calls.
        raise AssertionError(f"accepted {broken[index]!r}")


def test_an_answers_message_object_can_be_appended_and_sent_back():
    from harness import FunctionCall, Message, ToolCall

    tool = ToolCall("call_1", FunctionCall("get_weather", '{"city": "Oslo"}'))
    conversation = [
        {"role": "user", "content": "Weather in Oslo?"},
        Message(content=None, tool_calls=[tool], reasoning_content="thinking"),
        {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
        Message(content="It is 12 C."),
    ]
    out = validate_messages(conversation)
    assert out[1] == {"role": "assistant", "content": None, "tool_calls": [tool.to_dict()]}
    assert out[3] == {"role": "assistant", "content": "It is 12 C."}
    assert all(type(m) is dict for m in out)
    json.dumps(out)  # nothing but plain data goes on the wire


def test_tool_call_objects_inside_a_dict_message_become_dicts():
    from harness import FunctionCall, ToolCall

    tool = ToolCall("call_1", FunctionCall("f", "{}"))
    message = {"role": "assistant", "content": None, "tool_calls": [tool]}
    [out] = validate_messages([message])
    assert out["tool_calls"] == [tool.to_dict()]
    assert message["tool_calls"] == [tool]  # the caller's dict is not changed


def test_openai_sdk_message_objects_are_accepted():
    from openai.types.chat import ChatCompletionMessage

    sdk = ChatCompletionMessage.model_validate(
        {"role": "assistant", "content": "hi", "annotations": [], "refusal": None}
    )
    [out] = validate_messages([sdk])
    assert out == {"role": "assistant", "content": "hi"}


def test_an_object_that_is_not_a_message_is_named_in_the_error():
    with pytest.raises(BadRequestError, match=r"messages\[1\]: .* got int"):
        validate_messages([{"role": "user", "content": "x"}, 3])
