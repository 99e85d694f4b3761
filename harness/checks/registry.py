"""The checks by name, and reading YAML ``assert:`` entries into calls of them.

This module owns the registry (``CHECKS``; ``_builtin``, the decorator the check modules
register their checks with, and ``register_check`` for users), the reading of an entry
(name, ``not-``, the argument's shape, binding it to the check's parameters),
``validate_check_spec``, ``run_check``, ``run_checks``, and the generic argument kinds
that validate a YAML argument (text, counts, numbers, fractions). Kinds tied to one check
(a regex, a schema, a scorer, a ``python`` ref) live with that check.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Concatenate, ParamSpec, TypeGuard

from harness.checks.core import (
    Checkable,
    CheckContext,
    CheckResult,
    CheckSpecError,
    _context,
    _describe_raise,
    _evaluate,
    _Unevaluable,
    _Verdict,
    _verdict_of,
)

# --- registry -----------------------------------------------------------------------------

_Kind = Callable[[str, str, Any], Any]
"""Validates and normalises one YAML argument: ``(check label, parameter, value) -> value``."""


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    public: Callable[..., CheckResult]
    impl: Callable[..., _Verdict]
    signature: inspect.Signature
    """The body's signature; its first parameter receives the ``CheckContext``."""
    kinds: Mapping[str, _Kind] | None
    """Validators per YAML argument; ``None`` for user checks (only binding is checked)."""
    list_main: bool = False
    mapping_main: bool = False
    one_of: tuple[str, ...] = ()
    example: str = ""
    combined: Callable[[str, Mapping[str, Any]], None] | None = None
    """Checks the arguments together (after each is validated); raises ``CheckSpecError``."""


_REGISTRY: dict[str, _Entry] = {}
_PUBLIC: dict[str, Callable[..., CheckResult]] = {}
CHECKS: Mapping[str, Callable[..., CheckResult]] = MappingProxyType(_PUBLIC)
"""Every check by name (built-in and registered), as ``fn(out, *args, **kwargs)``."""

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

P = ParamSpec("P")


def _add(entry: _Entry, replace_existing: bool) -> None:
    if not isinstance(entry.name, str) or not _NAME_RE.fullmatch(entry.name):
        raise ValueError(f"a check name must be an identifier, got {entry.name!r}")
    if entry.name in _REGISTRY and not replace_existing:
        raise ValueError(f"a check named {entry.name!r} exists; pass replace=True to replace it")
    _REGISTRY[entry.name] = entry
    _PUBLIC[entry.name] = entry.public


def _builtin(
    name: str,
    *,
    kinds: Mapping[str, _Kind],
    list_main: bool = False,
    mapping_main: bool = False,
    one_of: tuple[str, ...] = (),
    example: str = "",
    combined: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> Callable[
    [Callable[Concatenate[CheckContext, P], _Verdict]],
    Callable[Concatenate[Checkable, P], CheckResult],
]:
    """Register a check body ``(ctx, ...) -> _Verdict`` as a public ``(out, ...)`` check."""

    def decorate(
        impl: Callable[Concatenate[CheckContext, P], _Verdict],
    ) -> Callable[Concatenate[Checkable, P], CheckResult]:
        @functools.wraps(impl)
        def public(out: Checkable, /, *args: P.args, **kwargs: P.kwargs) -> CheckResult:
            ctx = _context(out)
            return _evaluate(name, ctx, lambda: impl(ctx, *args, **kwargs), negate=False)

        signature = inspect.signature(impl)
        params = list(signature.parameters.values())
        first = params[0].replace(
            name="out", kind=inspect.Parameter.POSITIONAL_ONLY, annotation="Checkable"
        )
        shown = signature.replace(parameters=[first, *params[1:]], return_annotation="CheckResult")
        setattr(public, "__signature__", shown)  # noqa: B010 - help() shows ``out``
        entry = _Entry(
            name, public, impl, signature, kinds, list_main, mapping_main, one_of, example, combined
        )
        _add(entry, replace_existing=False)
        return public

    return decorate


def register_check(
    name: str, fn: Callable[..., CheckResult | bool | float], *, replace: bool = False
) -> None:
    """Add a check usable in YAML (``- name: arg``) and through ``CHECKS[name]``.

    ``fn`` is called with the ``CheckContext`` and then the YAML arguments (a scalar or list
    positionally, a mapping as keywords). It returns a bool, a score (passes at 0.5 or more)
    or a ``CheckResult``. An exception from ``fn`` makes a failed check whose detail names it.

    Args:
        name: an identifier; must not clash with an existing check unless ``replace``.
        fn: the check function.
        replace: allow replacing a check of the same name.

    Raises:
        ValueError: a bad or taken name, or ``fn`` is not callable.
    """
    if not callable(fn):
        raise ValueError(f"check {name!r}: expected a callable, got {type(fn).__name__}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = inspect.Signature(
            [
                inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY),
                inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        )
    if not signature.parameters:
        raise ValueError(f"check {name!r}: the function must take the CheckContext argument")

    def impl(ctx: CheckContext, /, *args: Any, **kwargs: Any) -> _Verdict:
        try:
            value = fn(ctx, *args, **kwargs)
        except Exception as exc:
            raise _Unevaluable(f"check {name!r} raised {_describe_raise(exc)}") from exc
        return _verdict_of(value, f"check {name!r}")

    def public(out: Checkable, /, *args: Any, **kwargs: Any) -> CheckResult:
        ctx = _context(out)
        return _evaluate(name, ctx, lambda: impl(ctx, *args, **kwargs), negate=False)

    public.__name__ = public.__qualname__ = name
    public.__doc__ = fn.__doc__
    _add(_Entry(name, public, impl, signature, None), replace_existing=replace)


# --- spec parsing and validation ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parsed:
    label: str
    entry: _Entry
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    negate: bool


def _known() -> str:
    return ", ".join(sorted(_REGISTRY))


def _split_spec(spec: object) -> tuple[str, Any]:
    if isinstance(spec, str):
        return spec, None
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            keys = ", ".join(map(str, spec)) or "none"
            raise CheckSpecError(
                f"an assert entry must be a mapping with exactly one key (the check's name), "
                f"got {len(spec)} keys: {keys}; write each check as its own list item"
            )
        ((key, arg),) = spec.items()
        if isinstance(key, str):
            return key, arg
        raise CheckSpecError(f"a check's name must be text, got {key!r}")
    raise CheckSpecError(
        "an assert entry must be a one-key mapping like {contains: 'x'} or a bare check name "
        f"like 'is_json', got {type(spec).__name__} {spec!r}"
    )


def _lookup(key: str) -> tuple[_Entry, bool]:
    negate = key.startswith("not-")
    name = key[4:] if negate else key
    entry = _REGISTRY.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CheckSpecError(f"unknown check {key!r}{hint}; known checks: {_known()}")
    return entry, negate


def _params(entry: _Entry) -> list[inspect.Parameter]:
    return list(entry.signature.parameters.values())[1:]


def _main_param(entry: _Entry) -> str | None:
    for p in _params(entry):
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            return p.name
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return p.name
    return None


def _shape(label: str, entry: _Entry, arg: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn the YAML argument into positional and keyword arguments."""
    if arg is None:
        return (), {}
    if isinstance(arg, Mapping) and not entry.mapping_main:
        bad = [k for k in arg if not isinstance(k, str)]
        if bad:
            raise CheckSpecError(f"check {label!r}: argument names must be text, got {bad[0]!r}")
        return (), dict(arg)
    main = _main_param(entry)
    if main is None:
        raise CheckSpecError(
            f"check {label!r} takes no argument, got {arg!r}; write it as a bare list item: "
            f"'- {label}'"
        )
    if isinstance(arg, list | tuple) and entry.kinds is not None and not entry.list_main:
        several = " (use contains_all or contains_any for several)" if "contains" in label else ""
        raise CheckSpecError(
            f"check {label!r} takes one {main!r}, not a list{several}; e.g. {entry.example}"
        )
    return (arg,), {}


def _bind(label: str, entry: _Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    params = _params(entry)
    names = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    for key in kwargs:
        if key not in names and not takes_any:
            takes = ", ".join(names) or "no arguments"
            raise CheckSpecError(f"check {label!r} has no argument {key!r}; it takes: {takes}")
    given = set(kwargs) | {p.name for p in params[: len(args)]}
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in given
    ]
    if missing:
        example = f"; e.g. {entry.example}" if entry.example else ""
        raise CheckSpecError(
            f"check {label!r} needs {', '.join(repr(m) for m in missing)}{example}"
        )
    try:
        return entry.signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise CheckSpecError(f"check {label!r}: {exc}") from None


def _parse(spec: object) -> _Parsed:
    key, arg = _split_spec(spec)
    entry, negate = _lookup(key)
    args, kwargs = _shape(key, entry, arg)
    bound = _bind(key, entry, args, kwargs)
    if entry.kinds is not None:
        _check_kinds(key, entry, bound.arguments)
    return _Parsed(key, entry, tuple(bound.args[1:]), dict(bound.kwargs), negate)


def _check_kinds(label: str, entry: _Entry, arguments: dict[str, Any]) -> None:
    assert entry.kinds is not None
    first = next(iter(entry.signature.parameters))
    for param in entry.signature.parameters.values():
        name = param.name
        if name == first or name not in arguments:
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue  # pass-through arguments (llm_judge's judge_params)
        kind = entry.kinds.get(name)
        if kind is None:
            raise CheckSpecError(
                f"check {label!r}: argument {name!r} can only be passed from Python"
            )
        arguments[name] = kind(label, name, arguments[name])
    present = [n for n in entry.one_of if arguments.get(n) is not None]
    if entry.one_of and not present:
        raise CheckSpecError(
            f"check {label!r} needs at least one of: {', '.join(entry.one_of)}; "
            f"e.g. {entry.example}"
        )
    low, high = arguments.get("min"), arguments.get("max")
    if _is_number(low) and _is_number(high) and low > high:
        raise CheckSpecError(f"check {label!r}: min {low:g} is greater than max {high:g}")
    if entry.combined is not None:
        entry.combined(label, arguments)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_check_spec(spec: object) -> None:
    """Check one YAML ``assert:`` entry without running it (no model is called).

    Validates the name, the argument shape and each argument's value: regexes compile,
    JSON Schemas are valid, JSON paths parse, scorers exist and ``python`` refs import.

    Raises:
        CheckSpecError: what is wrong, precisely.
    """
    _parse(spec)


def run_check(spec: object, ctx: Checkable) -> CheckResult:
    """Run one YAML ``assert:`` entry (``{name: argument}``) against an answer.

    Raises:
        CheckSpecError: the entry is invalid (see ``validate_check_spec``).
    """
    parsed = _parse(spec)
    context = _context(ctx)
    return _evaluate(
        parsed.label,
        context,
        lambda: parsed.entry.impl(context, *parsed.args, **parsed.kwargs),
        negate=parsed.negate,
    )


def run_checks(specs: Iterable[object], ctx: Checkable) -> list[CheckResult]:
    """Run several ``assert:`` entries, in order; every entry is validated before any runs.

    Raises:
        CheckSpecError: an entry is invalid (nothing has been run).
    """
    parsed = [_parse(spec) for spec in specs]
    context = _context(ctx)
    return [
        _evaluate(
            p.label,
            context,
            functools.partial(p.entry.impl, context, *p.args, **p.kwargs),
            negate=p.negate,
        )
        for p in parsed
    ]


# --- argument kinds -------------------------------------------------------------------------


def _spec_error(label: str, param: str, expected: str, value: Any) -> CheckSpecError:
    if isinstance(value, bool):
        return CheckSpecError(
            f"check {label!r}: {param!r} must be {expected}, got the boolean {value} "
            "(YAML reads yes/no/true/false/on/off as booleans; quote the text)"
        )
    return CheckSpecError(
        f"check {label!r}: {param!r} must be {expected}, got {type(value).__name__} {value!r}"
    )


def _text(label: str, param: str, value: Any) -> str:
    """Text (a number is read as its text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _spec_error(label, param, "text", value)


def _nonempty_text(label: str, param: str, value: Any) -> str:
    """Non-empty text."""
    text = _text(label, param, value)
    if not text:
        raise CheckSpecError(f"check {label!r}: {param!r} is empty, so the check means nothing")
    return text


def _texts(label: str, param: str, value: Any) -> list[str]:
    """A non-empty list of texts."""
    if not isinstance(value, list | tuple) or not value:
        raise _spec_error(label, param, "a non-empty list of texts, e.g. [cat, dog]", value)
    return [_nonempty_text(label, f"{param}[{i}]", v) for i, v in enumerate(value)]


def _count(label: str, param: str, value: Any) -> int:
    """A whole number >= 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _spec_error(label, param, "a whole number >= 0", value)


def _number(label: str, param: str, value: Any) -> float | None:
    """A number >= 0."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        if math.isfinite(value):
            return float(value)
    raise _spec_error(label, param, "a number >= 0", value)


def _fraction(label: str, param: str, value: Any) -> float:
    """A number from 0 to 1."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise _spec_error(label, param, "a number from 0 to 1", value)


def _anything(label: str, param: str, value: Any) -> Any:
    """Any value."""
    return value
