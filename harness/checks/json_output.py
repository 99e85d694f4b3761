"""Checks on the JSON in the output, and the JSON paths they use.

This module owns how the output's JSON is found (the whole output, else its first
```` ```json ```` or bare ```` ``` ```` fenced block), ``is_json``, ``json_schema`` (and the
validation of its schema), ``json_path`` with JSON equality (``1`` is not ``true``), and
the small JSONPath subset: ``parse_json_path`` and ``format_json_path``.

``jsonschema`` (more than half of the checks' import time) is imported only when a
``json_schema`` check is validated or run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.checks.core import CheckContext, CheckSpecError, _short, _Verdict
from harness.checks.registry import _anything, _builtin, _spec_error, _text

if TYPE_CHECKING:
    import jsonschema

_FENCE_RE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _parse_json(text: str) -> tuple[Any, str]:
    """The JSON in ``text`` and where it was found; raises ``_NotJSON``."""
    try:
        return _loads(text), "the output"
    except ValueError as exc:
        whole_error = exc
    fence = _FENCE_RE.search(text)
    if fence is None:
        raise _NotJSON(f"the output is not valid JSON ({whole_error})")
    try:
        return _loads(fence.group(1)), "a ```json fenced block"
    except ValueError as exc:
        raise _NotJSON(f"the ```json fenced block is not valid JSON ({exc})") from None


class _NotJSON(Exception):
    pass


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@_builtin("is_json", kinds={}, example="is_json")
def is_json(ctx: CheckContext, /) -> _Verdict:
    """The output is JSON, or holds a fenced ```json block of JSON. YAML: ``- is_json``."""
    try:
        value, where = _parse_json(ctx.output)
    except _NotJSON as exc:
        return _Verdict(False, f"expected JSON; {exc}")
    return _Verdict(True, f"valid JSON ({_json_type(value)}) in {where}")


def _validator(schema: Mapping[str, Any] | bool) -> jsonschema.Draft202012Validator:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _pointer(exc.absolute_path)
        raise CheckSpecError(
            f"check 'json_schema': invalid schema at {where}: {exc.message}"
        ) from None
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _pointer(path: Iterable[Any]) -> str:
    return format_json_path(list(path))


def _schema_kind(label: str, param: str, value: Any) -> Any:
    """A JSON Schema (a mapping)."""
    if not isinstance(value, Mapping | bool):
        raise _spec_error(label, param, "a JSON Schema (a mapping)", value)
    _validator(value)
    return value


@_builtin(
    "json_schema",
    kinds={"schema": _schema_kind},
    mapping_main=True,
    example="json_schema: {type: object, required: [name]}",
)
def json_schema(ctx: CheckContext, /, schema: Mapping[str, Any] | bool) -> _Verdict:
    """The output's JSON validates against ``schema`` (Draft 2020-12).

    YAML: ``json_schema: {type: object, required: [name]}``.

    Raises:
        CheckSpecError: the schema itself is invalid.
    """
    validator = _validator(schema)
    try:
        value, where = _parse_json(ctx.output)
    except _NotJSON as exc:
        return _Verdict(False, f"expected JSON matching the schema; {exc}")
    errors = list(validator.iter_errors(value))
    if not errors:
        return _Verdict(True, f"JSON in {where} matches the schema")
    from jsonschema.exceptions import best_match

    best = best_match(errors)
    assert best is not None
    message = best.message if len(best.message) <= 300 else best.message[:299] + "…"
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    at = _pointer(best.absolute_path)
    return _Verdict(False, f"JSON in {where} fails the schema at {at}: {message}{more}")


_PATH_TOKEN_RE = re.compile(
    r"""\.(?P<key>[^.\[\]\s'"]+)"""
    r"""|\[\s*(?P<index>-?\d+)\s*\]"""
    r"""|\[\s*(?P<quote>['"])(?P<quoted>(?:\\.|(?!(?P=quote)).)*)(?P=quote)\s*\]""",
    re.DOTALL,
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_json_path(path: str) -> list[str | int]:
    """Parse a path of the supported JSONPath subset into keys (str) and indexes (int).

    The subset: an optional leading ``$``, then any of ``.key``, ``['key']``/``["key"]``
    (backslash escapes the quote or itself) and ``[index]`` (negative from the end). A path
    not starting with ``$``, ``.`` or ``[`` gets an implicit ``$.``: ``a.b`` is ``$.a.b``.

    Raises:
        CheckSpecError: the path is not in the subset.
    """
    rest = path.strip()
    if rest.startswith("$"):
        rest = rest[1:]
    elif rest and not rest.startswith((".", "[")):
        rest = "." + rest
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _PATH_TOKEN_RE.match(rest, pos)
        if m is None:
            raise CheckSpecError(
                f"check 'json_path': cannot read {path!r} at {rest[pos:]!r}; supported: $, "
                ".key, ['key'], [index] (e.g. $.items[0]['full name'])"
            )
        if m.group("key") is not None:
            steps.append(m.group("key"))
        elif m.group("index") is not None:
            steps.append(int(m.group("index")))
        else:
            steps.append(re.sub(r"\\(.)", r"\1", m.group("quoted"), flags=re.DOTALL))
        pos = m.end()
    return steps


def format_json_path(steps: Sequence[str | int]) -> str:
    """Write keys and indexes as a path ``parse_json_path`` reads back (``$.a[0]['b c']``)."""
    out = "$"
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _IDENT_RE.fullmatch(step):
            out += f".{step}"
        else:
            out += "['" + step.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def _path_kind(label: str, param: str, value: Any) -> str:
    """A JSON path such as `$.items[0].name`."""
    text = _text(label, param, value)
    parse_json_path(text)
    return text


def _follow(data: Any, steps: Sequence[str | int]) -> Any:
    """The value at ``steps``; raises ``LookupError`` saying where and why it stops."""
    for i, step in enumerate(steps):
        here = format_json_path(steps[:i])
        if isinstance(step, int):
            if not isinstance(data, list):
                raise LookupError(f"{here} is {_json_type(data)}, not an array")
            if not -len(data) <= step < len(data):
                raise LookupError(f"{here} has {len(data)} item(s); no index {step}")
            data = data[step]
        else:
            if not isinstance(data, dict):
                raise LookupError(f"{here} is {_json_type(data)}, not an object")
            if step not in data:
                keys = ", ".join(map(repr, list(data)[:10])) or "none"
                raise LookupError(f"{here} has no key {step!r} (keys: {keys})")
            data = data[step]
    return data


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``1 == 1.0`` but ``1 != true``; containers compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


class _Missing:
    def __repr__(self) -> str:
        return "<not given>"


_MISSING: Any = _Missing()


@_builtin(
    "json_path",
    kinds={"path": _path_kind, "equals": _anything},
    example="json_path: {path: '$.a', equals: 3}",
)
def json_path(ctx: CheckContext, /, path: str, equals: Any = _MISSING) -> _Verdict:
    """The path exists in the output's JSON, and its value equals ``equals`` when given.

    YAML: ``json_path: "$.items[0]"`` or ``json_path: {path: "$.a", equals: 3}``. See
    ``parse_json_path`` for the path syntax.

    Raises:
        CheckSpecError: the path is not in the supported subset.
    """
    steps = parse_json_path(path)
    try:
        data, where = _parse_json(ctx.output)
    except _NotJSON as exc:
        return _Verdict(False, f"expected JSON with {path}; {exc}")
    try:
        found = _follow(data, steps)
    except LookupError as exc:
        return _Verdict(False, f"expected a value at {path} in {where}; {exc.args[0]}")
    seen = _short(found)
    if equals is _MISSING:
        return _Verdict(True, f"{path} in {where} is {seen}")
    if _json_equal(found, equals):
        return _Verdict(True, f"{path} in {where} equals {_short(equals)}")
    return _Verdict(
        False,
        f"expected {path} to equal {_short(equals)} ({_json_type(equals)}); "
        f"found {seen} ({_json_type(found)}) in {where}",
    )
