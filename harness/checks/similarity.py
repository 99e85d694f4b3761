"""The ``similar`` check and its scorers.

This module owns ``similar``, the scorer registry (``SCORERS``, ``register_scorer``) and
the default scorer ``token_f1``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

from harness.checks.core import (
    CheckContext,
    CheckSpecError,
    _cmp,
    _describe_raise,
    _short,
    _Unevaluable,
    _Verdict,
)
from harness.checks.registry import _builtin, _fraction, _text

Scorer: TypeAlias = Callable[[str, str], float]
_WORD_RE = re.compile(r"\w+")


def token_f1(a: str, b: str) -> float:
    """Token-overlap F1 of two texts' lower-cased word tokens, in [0, 1].

    Symmetric; 1.0 for identical texts. Two texts without any word token score 1.0 when
    equal once stripped and 0.0 otherwise.
    """
    ta = Counter(_WORD_RE.findall(a.lower()))
    tb = Counter(_WORD_RE.findall(b.lower()))
    na, nb = sum(ta.values()), sum(tb.values())
    if na == 0 or nb == 0:
        return 1.0 if na == nb and a.strip() == b.strip() else 0.0
    common = sum((ta & tb).values())
    return 2.0 * common / (na + nb)


_SCORERS: dict[str, Scorer] = {"token_f1": token_f1}
SCORERS: Mapping[str, Scorer] = MappingProxyType(_SCORERS)
"""Similarity scorers by name, for ``similar``'s ``scorer``."""


def register_scorer(name: str, fn: Scorer, *, replace: bool = False) -> None:
    """Add a similarity scorer ``fn(output, expected) -> float in [0, 1]`` under ``name``.

    Raises:
        ValueError: the name is taken (and not ``replace``) or ``fn`` is not callable.
    """
    if not callable(fn):
        raise ValueError(f"scorer {name!r}: expected a callable, got {type(fn).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a scorer name must be non-empty text, got {name!r}")
    if name in _SCORERS and not replace:
        raise ValueError(f"a scorer named {name!r} exists; pass replace=True to replace it")
    _SCORERS[name] = fn


def _scorer(name: str) -> Scorer:
    fn = _SCORERS.get(name)
    if fn is None:
        known = ", ".join(sorted(_SCORERS))
        raise CheckSpecError(f"check 'similar': unknown scorer {name!r}; known scorers: {known}")
    return fn


def _scorer_kind(label: str, param: str, value: Any) -> Any:
    """A scorer name (listed below) or, from Python, a function."""
    if value is None or callable(value):
        return value
    _scorer(_text(label, param, value))
    return value


@_builtin(
    "similar",
    kinds={"value": _text, "threshold": _fraction, "scorer": _scorer_kind},
    example="similar: {value: 'the expected answer', threshold: 0.7}",
)
def similar(
    ctx: CheckContext,
    /,
    value: str,
    threshold: float = 0.6,
    scorer: str | Scorer | None = None,
) -> _Verdict:
    """The output is at least ``threshold`` similar to ``value``; the score is the similarity.

    YAML: ``similar: {value: "...", threshold: 0.7, scorer: token_f1}``.

    Args:
        ctx: the answer.
        value: the expected text.
        threshold: the least passing score.
        scorer: a registered scorer's name or a callable ``(output, value) -> float``;
            default ``token_f1``.

    Raises:
        CheckSpecError: the scorer name is unknown.
    """
    if scorer is None or isinstance(scorer, str):
        name = scorer or "token_f1"
        fn = _scorer(name)
    else:
        fn, name = scorer, getattr(scorer, "__name__", "scorer")
    try:
        score = float(fn(ctx.output, value))
    except Exception as exc:
        raise _Unevaluable(f"scorer {name!r} raised {_describe_raise(exc)}") from exc
    if not 0.0 <= score <= 1.0:  # also rejects NaN
        raise _Unevaluable(f"scorer {name!r} returned {score!r}, outside 0..1")
    passed = score >= threshold
    return _Verdict(
        passed,
        f"{name} similarity {score:.3f} {_cmp(passed)} threshold {threshold:g} to {_short(value)}",
        score,
    )
