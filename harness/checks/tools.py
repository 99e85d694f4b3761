"""Checks on the tool calls of the answer: which tool, with which arguments, how many.

This module owns ``tool_call`` (some call of the first choice names the tool, and its
arguments contain the given ones and/or validate against a JSON Schema), ``tool_calls``
(how many calls were made) and the reading of a call's JSON arguments. Failure details
name the calls actually made (``made: get_time({"tz": "UTC"})`` or ``made no tool
call``), each excerpted.

``jsonschema`` is imported only when an ``arguments_schema`` is validated or used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.checks.core import CheckContext, CheckSpecError, _short, _Unevaluable, _Verdict
from harness.checks.json_output import _json_equal, _json_type, _loads, format_json_path
from harness.checks.registry import _builtin, _count, _nonempty_text, _spec_error

if TYPE_CHECKING:
    import jsonschema

    from harness.types import ToolCall

MAX_CALLS_SHOWN = 5
"""How many of the calls made a failure detail lists (the rest are counted)."""
_ARGS_CHARS = 80


def _calls(ctx: CheckContext) -> list[ToolCall]:
    """The first choice's tool calls; unevaluable on plain text."""
    if ctx.response is None:
        raise _Unevaluable("the tool calls are unknown (the output was given as plain text)")
    if not ctx.response.choices:
        return []
    return list(ctx.response.choices[0].message.tool_calls or [])


def _arguments(call: ToolCall) -> Any:
    """The call's arguments parsed from JSON (``""`` is ``{}``); ``ValueError`` if not JSON."""
    text = call.function.arguments
    if not text.strip():
        return {}
    return _loads(text)


def _shown(call: ToolCall) -> str:
    """``name({"a": 1})`` with the arguments compacted and cut to a short excerpt."""
    text = call.function.arguments
    try:
        text = json.dumps(_arguments(call), ensure_ascii=False)
    except (ValueError, RecursionError):
        pass
    if len(text) > _ARGS_CHARS:
        text = text[: _ARGS_CHARS - 1] + "…"
    return f"{call.function.name or '(no name)'}({text})"


def _made(calls: Sequence[ToolCall]) -> str:
    """What was called: ``made: a({...}), b({...})``, or ``made no tool call``."""
    if not calls:
        return "made no tool call"
    shown = ", ".join(_shown(c) for c in calls[:MAX_CALLS_SHOWN])
    more = len(calls) - MAX_CALLS_SHOWN
    return f"made: {shown}" + (f" and {more} more" if more > 0 else "")


def _subset_mismatch(expected: Mapping[str, Any], actual: Any, path: list[str | int]) -> str | None:
    """Why ``actual`` does not contain ``expected`` (recursively for mappings), or None."""
    if not isinstance(actual, Mapping):
        where = format_json_path(path)
        return f"{where} is {_json_type(actual)}, not an object"
    for key, want in expected.items():
        here = [*path, key]
        if key not in actual:
            return f"no argument {format_json_path(here)}"
        got = actual[key]
        if isinstance(want, Mapping):
            why = _subset_mismatch(want, got, here)
            if why is not None:
                return why
        elif not _json_equal(got, want):
            return f"{format_json_path(here)} is {_short(got)}, not {_short(want)}"
    return None


def _arguments_kind(label: str, param: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _spec_error(label, param, "a mapping of argument names to values", value)
    _text_keys(label, param, value)
    return value


def _text_keys(label: str, param: str, value: Mapping[Any, Any]) -> None:
    for key, item in value.items():
        if not isinstance(key, str):
            raise CheckSpecError(f"check {label!r}: {param!r} keys must be text, got {key!r}")
        if isinstance(item, Mapping):
            _text_keys(label, f"{param}.{key}", item)


def _validator(label: str, schema: Any) -> jsonschema.Draft202012Validator:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = format_json_path(list(exc.absolute_path))
        raise CheckSpecError(
            f"check {label!r}: invalid arguments_schema at {where}: {exc.message}"
        ) from None
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _schema_kind(label: str, param: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping | bool):
        raise _spec_error(label, param, "a JSON Schema (a mapping)", value)
    _validator(label, value)
    return value


def _schema_mismatch(validator: jsonschema.Draft202012Validator, value: Any) -> str | None:
    errors = list(validator.iter_errors(value))
    if not errors:
        return None
    from jsonschema.exceptions import best_match

    best = best_match(errors)
    assert best is not None
    message = best.message if len(best.message) <= 200 else best.message[:199] + "…"
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    at = format_json_path(list(best.absolute_path))
    return f"fails arguments_schema at {at}: {message}{more}"


@_builtin(
    "tool_call",
    kinds={"name": _nonempty_text, "arguments": _arguments_kind, "arguments_schema": _schema_kind},
    example="tool_call: {name: get_weather, arguments: {city: Paris}}",
)
def tool_call(
    ctx: CheckContext,
    /,
    name: str,
    arguments: Mapping[str, Any] | None = None,
    arguments_schema: Mapping[str, Any] | bool | None = None,
) -> _Verdict:
    """Some tool call of the answer names ``name`` and has matching arguments.

    YAML: ``tool_call: get_weather`` or ``tool_call: {name: get_weather, arguments: {city:
    Paris}}`` or ``tool_call: {name: get_weather, arguments_schema: {required: [city]}}``.

    ``arguments`` match when every given key is present with an equal value (as JSON sees
    it; nested mappings are matched the same way, other values must be equal); extra
    arguments are fine. ``arguments_schema`` is a JSON Schema (Draft 2020-12) the parsed
    arguments validate against. A call whose arguments are not JSON does not match, and
    the detail says so. The first choice's calls are read.

    Raises:
        CheckSpecError: ``arguments_schema`` is not a valid JSON Schema.
    """
    validator = None if arguments_schema is None else _validator("tool_call", arguments_schema)
    calls = _calls(ctx)
    named = [(i, c) for i, c in enumerate(calls) if c.function.name == name]
    wanted = name
    if arguments is not None:
        wanted += f" with arguments containing {_short(dict(arguments))}"
    if validator is not None:
        wanted += " with arguments matching arguments_schema"
    if not named:
        return _Verdict(False, f"expected a call to {wanted}; {_made(calls)}")
    reasons: list[str] = []
    for i, call in named:
        try:
            parsed = _arguments(call)
        except (ValueError, RecursionError) as exc:
            reasons.append(f"call #{i + 1}'s arguments are not valid JSON ({exc})")
            continue
        why = None if arguments is None else _subset_mismatch(arguments, parsed, [])
        if why is None and validator is not None:
            why = _schema_mismatch(validator, parsed)
        if why is None:
            return _Verdict(True, f"call #{i + 1} is {_shown(call)}, a call to {wanted}")
        reasons.append(f"call #{i + 1}: {why}")
    return _Verdict(False, f"expected a call to {wanted}; {'; '.join(reasons)}; {_made(calls)}")


@_builtin(
    "tool_calls",
    kinds={"count": _count, "min": _count, "max": _count},
    one_of=("count", "min", "max"),
    example="tool_calls: {count: 2}",
)
def tool_calls(
    ctx: CheckContext,
    /,
    count: int | None = None,
    min: int | None = None,  # noqa: A002 - the YAML key
    max: int | None = None,  # noqa: A002 - the YAML key
) -> _Verdict:
    """The answer made ``count`` tool calls (or ``min``..``max``).

    YAML: ``tool_calls: 2``, ``tool_calls: {count: 2}`` or ``tool_calls: {min: 1, max: 3}``.
    The first choice's calls are counted; the detail names them.
    """
    calls = _calls(ctx)
    n = len(calls)
    said = f"{n} tool call{'' if n == 1 else 's'} ({_made(calls)})"
    if count is not None and n != count:
        return _Verdict(False, f"expected {count} tool call(s), got {said}")
    if min is not None and n < min:
        return _Verdict(False, f"expected at least {min} tool call(s), got {said}")
    if max is not None and n > max:
        return _Verdict(False, f"expected at most {max} tool call(s), got {said}")
    return _Verdict(True, said)
