"""The ``similar`` check and its scorers.

This module owns ``similar``, the scorer registry (``SCORERS``, ``register_scorer``), the
default scorer ``token_f1``, the registration of the reference metrics (``rouge_l``,
``bleu``, ``levenshtein``: ``harness.checks.metrics``) and ``scorer: embedding``, the
cosine similarity of the two texts' embeddings from an embeddings model called through
the context's harness (``embedding_model_problem`` checks its model at collection).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from harness.checks.core import (
    CheckContext,
    CheckSpecError,
    _cmp,
    _describe,
    _describe_raise,
    _short,
    _Unevaluable,
    _Verdict,
)
from harness.checks.metrics import bleu, levenshtein, rouge_l
from harness.checks.registry import _builtin, _fraction, _nonempty_text, _text
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.config import HarnessConfig
    from harness.runner import Harness

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


_SCORERS: dict[str, Scorer] = {
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "bleu": bleu,
    "levenshtein": levenshtein,
}
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


EMBEDDING_SCORER = "embedding"
"""The scorer name that compares embeddings (``model:`` or the config's
``embedding_model``) instead of calling a text scorer."""


def _scorer(name: str) -> Scorer:
    fn = _SCORERS.get(name)
    if fn is None:
        known = ", ".join(sorted([*_SCORERS, EMBEDDING_SCORER]))
        raise CheckSpecError(f"check 'similar': unknown scorer {name!r}; known scorers: {known}")
    return fn


def _scorer_kind(label: str, param: str, value: Any) -> Any:
    """A scorer name (listed below) or, from Python, a function."""
    if value is None or callable(value) or value == EMBEDDING_SCORER:
        return value
    _scorer(_text(label, param, value))
    return value


@_builtin(
    "similar",
    kinds={
        "value": _text,
        "threshold": _fraction,
        "scorer": _scorer_kind,
        "model": _nonempty_text,
    },
    example="similar: {value: 'the expected answer', threshold: 0.7}",
)
def similar(
    ctx: CheckContext,
    /,
    value: str,
    threshold: float = 0.6,
    scorer: str | Scorer | None = None,
    model: str | None = None,
    harness: Harness | None = None,
) -> _Verdict:
    """The output is at least ``threshold`` similar to ``value``; the score is the similarity.

    YAML: ``similar: {value: "...", threshold: 0.7, scorer: token_f1}``; the scorers are
    ``token_f1`` (default), ``rouge_l``, ``bleu``, ``levenshtein`` (definitions in
    ``docs/metrics.md``), any added with ``register_scorer``, and ``embedding``:
    ``similar: {value: "...", scorer: embedding, model: embedder, threshold: 0.8}`` embeds
    the output and ``value`` in one call and scores their cosine similarity (negative
    cosines count as 0). Its ``model`` defaults to the config's ``embedding_model``; the
    call goes through the context's harness (stored and budgeted like any call), and a
    failed call is a failed check naming the error.

    Args:
        ctx: the answer.
        value: the expected text.
        threshold: the least passing score.
        scorer: a registered scorer's name, ``embedding``, or a callable
            ``(output, value) -> float``; default ``token_f1``.
        model: the embeddings model of ``scorer: embedding`` (alias or ``provider/name``).
        harness: the harness to embed through; default the context's, else the default one.

    Raises:
        CheckSpecError: the scorer name is unknown, or ``model`` is given to a text scorer.
    """
    if scorer == EMBEDDING_SCORER:
        return _embedding_similarity(ctx, value, threshold, model, harness)
    if model is not None:
        raise CheckSpecError(
            f"check 'similar': 'model' applies to scorer: {EMBEDDING_SCORER} only, "
            f"not to scorer {scorer or 'token_f1'!r}"
        )
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


def _embedding_similarity(
    ctx: CheckContext, value: str, threshold: float, model: str | None, harness: Harness | None
) -> _Verdict:
    """``scorer: embedding``: the cosine of the output's and ``value``'s embeddings."""
    from harness.embeddings import cosine

    via = harness or ctx.harness
    if via is None:
        from harness.runner import get_default_harness  # the runner: only when embedding

        via = get_default_harness()
    name = model or via.config.embedding_model
    if name is None:
        raise _Unevaluable(NO_EMBEDDING_MODEL)
    try:
        vectors = via.embedding(name, [ctx.output, value]).vectors
        score = max(0.0, cosine(vectors[0], vectors[1]))
    except Exception as exc:
        raise _Unevaluable(f"the embedding call to {name!r} failed: {_describe(exc)}") from exc
    passed = score >= threshold
    return _Verdict(
        passed,
        f"embedding similarity {score:.3f} ({name}) {_cmp(passed)} threshold {threshold:g} "
        f"to {_short(value)}",
        score,
    )


NO_EMBEDDING_MODEL = (
    "scorer: embedding needs an embeddings model: give 'model: <alias or provider/name>' in "
    'the check, or set embedding_model = "..." at the top level of harness.toml (or '
    "[tool.harness] in pyproject.toml)"
)
"""The reason ``scorer: embedding`` fails when no model is named or configured."""


def embedding_model_problem(checks: Iterable[Any], config: HarnessConfig) -> str | None:
    """What is wrong with the embeddings models of ``similar`` checks in ``checks``, if any.

    Each ``similar: {scorer: embedding}`` entry (negated or not) needs a ``model`` or the
    config's ``embedding_model``, and its model must resolve. The plugin asks this at
    collection, so a suite fails before any call instead of at every case.
    """
    for spec in checks:
        if not isinstance(spec, Mapping) or len(spec) != 1:
            continue
        ((name, arg),) = spec.items()
        if name not in ("similar", "not-similar") or not isinstance(arg, Mapping):
            continue
        if arg.get("scorer") != EMBEDDING_SCORER:
            continue
        model = arg.get("model") or config.embedding_model
        if model is None:
            return NO_EMBEDDING_MODEL
        try:
            config.resolve(str(model))
        except ConfigError as exc:
            return f"check {name!r}: model: {exc.message}"
    return None
