"""Message validation: precise errors before any request; valid input passes untouched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import BadRequestError
from harness.messages import (
    ROLES,
    last_user_message,
    last_user_text,
    validate_conversations,
    validate_messages,
)


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


# --------------------------------------------------------------------------- JSON values


class _Opaque:
    pass


_cyclic: list[object] = ["x"]
_cyclic.append(_cyclic)
_deep: list[object] = []
_cursor = _deep
for _ in range(5000):
    _cursor.append([])
    _cursor = _cursor[0]  # type: ignore[assignment]


def _user(**extra: object) -> dict[str, object]:
    return {"role": "user", "content": "hi", **extra}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [
                _user(),
                _user(),
                {"role": "user", "content": [{"type": "image_url", "image_url": b"\x89PNG"}]},
            ],
            "messages[2].content[0].image_url: not JSON-serialisable (bytes)",
        ),
        ([_user(meta={1, 2})], "messages[0].meta: not JSON-serialisable (set)"),
        ([_user(meta=_Opaque())], "messages[0].meta: not JSON-serialisable (_Opaque)"),
        (
            [_user(meta=[1.0, float("nan")])],
            "messages[0].meta[1]: not JSON-serialisable (float nan)",
        ),
        (
            [_user(meta={"a b": float("inf")})],
            "messages[0].meta['a b']: not JSON-serialisable (float inf)",
        ),
        ([_user(meta={3: "x"})], "messages[0].meta: key 3 is not a string"),
        ([_user(meta=_cyclic)], "messages[0].meta[1]: not JSON-serialisable (it contains itself)"),
        ([_user(meta=_deep)], "nested more than 100 levels deep"),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "f", "arguments": b"{}"},
                        }
                    ],
                }
            ],
            "messages[0].tool_calls[0].function.arguments: not JSON-serialisable (bytes)",
        ),
        ([_user(name=b"bob")], "messages[0].name: not JSON-serialisable (bytes)"),
    ],
)
def test_values_that_are_not_json_are_a_bad_request_naming_the_path(messages, expected):
    with pytest.raises(BadRequestError) as info:
        validate_messages(messages)
    assert expected in str(info.value)


def test_json_values_of_every_kind_pass():
    import collections
    import enum

    class Level(enum.IntEnum):
        HIGH = 2

    class Text(str):
        pass

    message = _user(
        name="bob",
        meta={"n": 1, "x": 1.5, "b": True, "none": None, "list": [1, "a"], "tuple": (1, 2)},
        subclasses=collections.OrderedDict(level=Level.HIGH, text=Text("t"), deep=[[[[{}]]]]),
    )
    assert validate_messages([message]) == [message]
    json.dumps(message, allow_nan=False)


def test_plain_messages_come_back_as_the_same_dicts():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    out = validate_messages(messages)
    assert out == messages and all(a is b for a, b in zip(out, messages, strict=True))


def test_a_not_json_value_is_refused_before_any_request():
    import httpx

    from harness import Harness

    sent: list[httpx.Request] = []
    h = Harness(transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)))
    with pytest.raises(BadRequestError, match=r"messages\[0\].content\[0\].image_url"):
        h.completion(
            "ollama/llama3.2",
            [{"role": "user", "content": [{"type": "image_url", "image_url": {1, 2}}]}],
        )
    assert sent == []


def test_last_user_message_is_the_last_one_with_the_user_role() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]
    assert last_user_message(messages) is messages[3]
    assert last_user_text(messages) == "second"
    assert last_user_text(messages, lambda content: f"<{len(content)} parts>") == "<2 parts>"


@pytest.mark.parametrize(
    "messages",
    [None, "user", 3, [], [{"role": "assistant", "content": "x"}], ["user", None, 7]],
)
def test_no_user_message_is_none(messages: object) -> None:
    assert last_user_message(messages) is None
    assert last_user_text(messages) is None


def test_the_message_helpers_import_no_provider_code() -> None:
    code = "import sys, harness.messages; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
