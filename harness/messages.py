"""Validation of OpenAI-style message lists, done before any request is sent.

A conversation is a non-empty list of ``{"role", "content"}`` dicts with a known role; an
answer's ``Message`` (or an OpenAI SDK message object) may be appended as it is and is
turned into its request dict here.
``content`` is a string or a list of typed parts; it may be ``None`` only on an assistant
message that carries ``tool_calls``. A ``tool`` message needs its ``tool_call_id``.
Every value in a message must be JSON: dicts with string keys, lists (or tuples), strings,
finite numbers, booleans and ``None`` (no bytes, sets, NaN or other objects), so that a bad
value is refused here rather than deep in a provider's request encoder.
Errors are ``BadRequestError``s that name the exact index and field, e.g.
``messages[2].content[0].image_url: not JSON-serialisable (bytes)``.

``validate_messages`` is on every call's path: a plain ``{"role", "content": str}`` dict is
recognised by a few type checks and needs no deeper walk.

``last_user_message`` / ``last_user_text`` find the last user message of a conversation (what
the echo model answers, what a judge is shown as the question, the replay-miss error and the
HTML report's prompt column quote); they accept anything, as a record read back from a file
may hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.errors import BadRequestError

__all__ = [
    "ROLES",
    "last_user_message",
    "last_user_text",
    "validate_conversations",
    "validate_messages",
]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_PLAIN_ROLES = ("user", "assistant", "system", "developer", "function")
"""Roles valid with just a string ``content`` (a tuple: a role may be unhashable)."""


def _fail(where: str, problem: str) -> BadRequestError:
    return BadRequestError(f"{where}: {problem}")


def validate_messages(messages: Any, where: str = "messages") -> list[dict[str, Any]]:
    """Check one conversation and return it as a list of plain dicts.

    Raises ``BadRequestError`` naming the index and field that is wrong.
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise _fail(
            where,
            f"expected a list of {{'role', 'content'}} dicts, got {type(messages).__name__}",
        )
    if not messages:
        raise _fail(where, "is empty; a conversation needs at least one message")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if (
            type(message) is dict
            and len(message) == 2
            and type(message.get("content")) is str
            and message.get("role") in _PLAIN_ROLES
        ):  # the common case, fully checked: a role that needs nothing more, a string content
            out.append(message)
            continue
        at = f"{where}[{i}]"
        if not isinstance(message, Mapping):
            message = _as_mapping(message)
            if message is None:
                raise _fail(
                    at,
                    "expected a dict with 'role' and 'content', "
                    f"got {type(messages[i]).__name__}",
                )
        role = message.get("role")
        if role not in ROLES:
            if "role" not in message:
                raise _fail(at, "missing 'role'")
            raise _fail(at, f"role {role!r} is not one of {', '.join(ROLES)}")
        tool_calls = message.get("tool_calls")
        if "content" not in message and not (
            role == "assistant" and (tool_calls or message.get("function_call"))
        ):
            raise _fail(at, "missing 'content'")
        content = message.get("content")
        if content is None:
            if not (role == "assistant" and (tool_calls or message.get("function_call"))):
                raise _fail(
                    at, "'content' is None; only an assistant message with tool_calls may omit it"
                )
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise _fail(
                        f"{at}.content[{j}]", "expected a part dict with a 'type' (e.g. 'text')"
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise _fail(f"{at}.content[{j}]", "a text part needs a string 'text'")
        elif not isinstance(content, str):
            raise _fail(
                at, f"'content' must be a string or a list of parts, got {type(content).__name__}"
            )
        if tool_calls is not None:
            if role != "assistant":
                raise _fail(at, "only assistant messages may carry 'tool_calls'")
            if not isinstance(tool_calls, list):
                raise _fail(f"{at}.tool_calls", "expected a list")
            if not all(type(call) is dict for call in tool_calls):
                # ToolCall objects (``messages.append({..., "tool_calls": msg.tool_calls})``)
                tool_calls = [_plain(call) for call in tool_calls]
                message = {**message, "tool_calls": tool_calls}
            for j, call in enumerate(tool_calls):
                fn = call.get("function") if isinstance(call, Mapping) else None
                if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                    raise _fail(
                        f"{at}.tool_calls[{j}]",
                        "expected {'id', 'type', 'function': {'name', 'arguments'}}",
                    )
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _fail(at, "a tool message needs a string 'tool_call_id'")
        plain = message if type(message) is dict else dict(message)
        if not _plain_json(plain, 0):
            problem = _json_problem(plain, at)
            if problem is not None:
                raise BadRequestError(problem)
        out.append(plain)
    return out


_MAX_DEPTH = 100
"""How deeply a message's values may nest (JSON encoders recurse)."""


def _plain_json(value: Any, depth: int) -> bool:
    """Whether ``value`` is JSON made of exact built-in types: the quick check.

    ``False`` is not a verdict (a ``str`` subclass, an ``OrderedDict`` are fine):
    ``_json_problem`` then decides, and names the path of what is wrong. Scalars inside a
    container are checked in line, so a message costs one call per container.
    """
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        if depth >= _MAX_DEPTH:
            return False
        if kind is dict:
            if any(type(key) is not str for key in value):
                return False
            value = value.values()
        for item in value:
            kind = type(item)
            if kind is str or item is None or kind is bool or kind is int:
                continue
            if not _plain_json(item, depth + 1):
                return False
        return True
    if kind is float:
        return math.isfinite(value)
    return kind is str or value is None or kind is bool or kind is int


def _json_problem(value: Any, where: str) -> str | None:
    """The first value under ``where`` that is not JSON, as ``"<path>: <problem>"``.

    JSON here is what the request encoder writes as standard JSON: dicts with string keys,
    lists and tuples, strings, finite numbers, booleans and ``None``. The walk is iterative
    (no recursion limit) and refuses cycles and nesting deeper than ``_MAX_DEPTH``.
    """
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    open_ids: set[int] = set()
    while stack:
        item, path, depth = stack.pop()
        if depth < 0:  # leaving a container
            open_ids.discard(id(item))
            continue
        if isinstance(item, str) or item is None or isinstance(item, int):  # bool is an int
            continue
        if isinstance(item, float):
            if math.isfinite(item):
                continue
            return f"{path}: not JSON-serialisable (float {item!r})"
        if not isinstance(item, dict | list | tuple):
            return f"{path}: not JSON-serialisable ({type(item).__name__})"
        if id(item) in open_ids:
            return f"{path}: not JSON-serialisable (it contains itself)"
        if depth >= _MAX_DEPTH:
            return f"{path}: nested more than {_MAX_DEPTH} levels deep"
        open_ids.add(id(item))
        stack.append((item, path, -1))
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                if not isinstance(key, str):
                    return f"{path}: key {_short(key)} is not a string"
                sub = f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"
                stack.append((child, sub, depth + 1))
        else:
            for j in range(len(item) - 1, -1, -1):
                stack.append((item[j], f"{path}[{j}]", depth + 1))
    return None


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


_PARAM_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call")
"""What a request message may carry when it arrives as an object rather than a dict."""


def _as_mapping(message: Any) -> Mapping[str, Any] | None:
    """A message object as a request message dict, or ``None`` if it is not one.

    A ``harness.Message`` (``messages.append(response.choices[0].message)``, the multi-turn
    tool loop) gives its ``to_param()``; a pydantic model, such as the OpenAI SDK's
    ``ChatCompletionMessage``, its dump without ``None`` fields, keeping only the keys a
    request message has.
    """
    to_param = getattr(message, "to_param", None)
    if callable(to_param):
        data = to_param()
        return data if isinstance(data, Mapping) else None
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        data = dump(exclude_none=True)
        if isinstance(data, Mapping):
            return {k: data[k] for k in _PARAM_KEYS if k in data}
    return None


def _plain(value: Any) -> Any:
    """A tool call object (ours or the OpenAI SDK's) as its dict; anything else as is."""
    for method in ("to_dict", "model_dump"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    return value


def validate_conversations(conversations: Any) -> list[list[dict[str, Any]]]:
    """Check a batch: a list of conversations, each a list of messages."""
    if isinstance(conversations, str | bytes) or not isinstance(conversations, Sequence):
        raise BadRequestError(
            f"messages: batch_completion takes a list of conversations (list[list[dict]]), "
            f"got {type(conversations).__name__}"
        )
    if conversations and isinstance(conversations[0], Mapping):
        raise BadRequestError(
            "messages: batch_completion takes a list of conversations (list[list[dict]]), "
            "got a single conversation (a list of dicts); wrap it in a list or use completion()"
        )
    return [validate_messages(c, f"messages[{i}]") for i, c in enumerate(conversations)]


def last_user_message(messages: object) -> Mapping[str, Any] | None:
    """The last message whose role is ``user``; ``None`` when there is none.

    ``messages`` may be anything: ``None``, a non-list or entries that are not mappings (a
    record read back from a file) simply have no user message.
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message
    return None


def last_user_text(messages: object, text: Callable[[Any], str] | None = None) -> str | None:
    """The text of the last user message; ``None`` when there is none.

    ``text`` turns the message's ``content`` into text; by default
    ``harness.providers.wire.content_text`` (a string as it is, the text parts of a list
    joined).
    """
    message = last_user_message(messages)
    if message is None:
        return None
    if text is None:
        from harness.providers.wire import content_text  # imports httpx: only when asked

        text = content_text
    return text(message.get("content"))
