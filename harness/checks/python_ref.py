"""The ``python`` check: a function of the user's, named by a ``module:function`` ref.

This module owns ``python`` and the loading of its ref (which ``validate_check_spec``
does too, so that a ref that does not import fails before any call).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from harness.checks.core import (
    CheckContext,
    CheckSpecError,
    _describe,
    _describe_raise,
    _Unevaluable,
    _Verdict,
    _verdict_of,
)
from harness.checks.registry import _builtin, _text


def _load_ref(ref: str) -> Callable[[CheckContext], Any]:
    module_name, sep, attr = ref.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not sep or not module_name or not attr:
        raise CheckSpecError(
            f"check 'python': the ref must look like 'package.module:function', got {ref!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckSpecError(
            f"check 'python' {ref!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    except Exception as exc:
        raise CheckSpecError(
            f"check 'python' {ref!r}: importing {module_name!r} raised {_describe(exc)}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CheckSpecError(
                f"check 'python' {ref!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(obj):
        raise CheckSpecError(
            f"check 'python' {ref!r}: {attr!r} is a {type(obj).__name__}, not a function"
        )
    fn: Callable[[CheckContext], Any] = obj
    return fn


def _ref_kind(label: str, param: str, value: Any) -> str:
    """`module:function`, importable."""
    ref = _text(label, param, value)
    _load_ref(ref)
    return ref


@_builtin("python", kinds={"ref": _ref_kind}, example="python: mypkg.checks:is_haiku")
def python(ctx: CheckContext, /, ref: str) -> _Verdict:
    """Call ``module:function`` with the ``CheckContext``. YAML: ``python: mypkg.checks:fn``.

    The function returns a bool, a score (passes at 0.5 or more) or a ``CheckResult``. An
    exception it raises makes a failed check whose detail names the exception and where.

    Raises:
        CheckSpecError: the ref is malformed or does not import.
    """
    fn = _load_ref(ref)
    try:
        value = fn(ctx)
    except Exception as exc:
        raise _Unevaluable(f"{ref} raised {_describe_raise(exc)}") from exc
    return _verdict_of(value, ref)
