"""Checks on the output's text: what it equals, contains, matches, starts with, and its length.

This module owns ``equals``, ``contains``, ``icontains``, ``not_contains``,
``contains_any``, ``contains_all``, ``regex`` (and the validation of its pattern),
``starts_with``, ``max_words`` and ``max_chars``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.checks.core import CheckContext, CheckSpecError, _short, _Verdict
from harness.checks.registry import _builtin, _count, _nonempty_text, _text, _texts


@_builtin("equals", kinds={"value": _text}, example="equals: Paris")
def equals(ctx: CheckContext, /, value: str) -> _Verdict:
    """The output is exactly ``value``. YAML: ``equals: Paris``."""
    if ctx.output == value:
        return _Verdict(True, f"output equals {_short(value)}")
    hint = ""
    if ctx.output.strip() == value.strip():
        hint = " (they differ only in leading/trailing whitespace)"
    return _Verdict(False, f"expected the output to equal {_short(value)}{hint}")


@_builtin("contains", kinds={"value": _nonempty_text}, example="contains: star")
def contains(ctx: CheckContext, /, value: str) -> _Verdict:
    """The output contains ``value`` (case-sensitive). YAML: ``contains: star``."""
    at = ctx.output.find(value)
    if at >= 0:
        return _Verdict(True, f"found {_short(value)} at index {at}")
    return _Verdict(False, f"expected the output to contain {_short(value)}; not found")


@_builtin("icontains", kinds={"value": _nonempty_text}, example="icontains: star")
def icontains(ctx: CheckContext, /, value: str) -> _Verdict:
    """The output contains ``value``, ignoring case. YAML: ``icontains: star``."""
    at = ctx.output.casefold().find(value.casefold())
    if at >= 0:
        return _Verdict(True, f"found {_short(value)} (ignoring case)")
    return _Verdict(
        False, f"expected the output to contain {_short(value)} (ignoring case); not found"
    )


@_builtin("not_contains", kinds={"value": _nonempty_text}, example="not_contains: sorry")
def not_contains(ctx: CheckContext, /, value: str) -> _Verdict:
    """The output does not contain ``value``. YAML: ``not_contains: sorry``."""
    at = ctx.output.find(value)
    if at < 0:
        return _Verdict(True, f"{_short(value)} does not occur, as expected")
    return _Verdict(False, f"expected the output not to contain {_short(value)}; found at {at}")


@_builtin(
    "contains_any", kinds={"values": _texts}, list_main=True, example="contains_any: [cat, dog]"
)
def contains_any(ctx: CheckContext, /, values: Sequence[str]) -> _Verdict:
    """At least one of ``values`` occurs in the output. YAML: ``contains_any: [cat, dog]``."""
    found = [v for v in values if v in ctx.output]
    if found:
        return _Verdict(True, f"found {', '.join(map(_short, found))}")
    return _Verdict(
        False, f"expected the output to contain any of {', '.join(map(_short, values))}; none found"
    )


@_builtin(
    "contains_all", kinds={"values": _texts}, list_main=True, example="contains_all: [cat, dog]"
)
def contains_all(ctx: CheckContext, /, values: Sequence[str]) -> _Verdict:
    """Every one of ``values`` occurs in the output. YAML: ``contains_all: [cat, dog]``."""
    missing = [v for v in values if v not in ctx.output]
    if not missing:
        return _Verdict(True, f"found all {len(values)}: {', '.join(map(_short, values))}")
    return _Verdict(
        False,
        f"expected the output to contain all of {', '.join(map(_short, values))}; "
        f"missing {', '.join(map(_short, missing))}",
    )


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CheckSpecError(f"check 'regex': invalid pattern {pattern!r}: {exc}") from None


def _pattern(label: str, param: str, value: Any) -> str:
    """A Python regular expression."""
    text = _nonempty_text(label, param, value)
    _compile(text)
    return text


@_builtin("regex", kinds={"pattern": _pattern}, example='regex: "\\\\d{4}"')
def regex(ctx: CheckContext, /, pattern: str) -> _Verdict:
    r"""``re.search(pattern, output)`` matches; flags inline (``(?i)``). YAML: ``regex: "\\d"``.

    Raises:
        CheckSpecError: the pattern does not compile.
    """
    match = _compile(pattern).search(ctx.output)
    if match:
        return _Verdict(True, f"/{pattern}/ matched {_short(match.group(0))} at {match.start()}")
    return _Verdict(False, f"expected a match for /{pattern}/; no match")


@_builtin("starts_with", kinds={"value": _nonempty_text}, example="starts_with: Dear")
def starts_with(ctx: CheckContext, /, value: str) -> _Verdict:
    """The output starts with ``value``. YAML: ``starts_with: Dear``."""
    if ctx.output.startswith(value):
        return _Verdict(True, f"output starts with {_short(value)}")
    hint = " (it does after leading whitespace)" if ctx.output.lstrip().startswith(value) else ""
    return _Verdict(False, f"expected the output to start with {_short(value)}{hint}")


@_builtin("max_words", kinds={"n": _count}, example="max_words: 30")
def max_words(ctx: CheckContext, /, n: int) -> _Verdict:
    """At most ``n`` whitespace-separated words. YAML: ``max_words: 30``."""
    count = len(ctx.output.split())
    verb = "within" if count <= n else "over"
    return _Verdict(count <= n, f"{count} words, {verb} the max of {n}")


@_builtin("max_chars", kinds={"n": _count}, example="max_chars: 280")
def max_chars(ctx: CheckContext, /, n: int) -> _Verdict:
    """At most ``n`` characters. YAML: ``max_chars: 280``."""
    count = len(ctx.output)
    verb = "within" if count <= n else "over"
    return _Verdict(count <= n, f"{count} characters, {verb} the max of {n}")
