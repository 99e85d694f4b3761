"""Checks on the call rather than its text: finish reason, timing, cost and tokens.

This module owns ``finish_reason``, ``latency_ms``, ``ttft_ms``, ``tokens_per_s``,
``cost`` and ``tokens``. They read the ``CheckContext``'s record of the call; on plain
text, or when the value was not recorded (no streaming, no price), they fail saying so.
A replayed answer's timing is labelled as the recorded call's.
"""

from __future__ import annotations

from typing import Any, get_args

from harness.checks.core import CheckContext, CheckSpecError, _Unevaluable, _Verdict
from harness.checks.registry import _builtin, _count, _number, _spec_error
from harness.types import FinishReason


def _needs(ctx: CheckContext, value: Any, what: str) -> None:
    if value is None:
        why = "the output was given as plain text" if ctx.response is None else "not recorded"
        raise _Unevaluable(f"{what} is unknown ({why})")


_FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)


def _finish_kind(label: str, param: str, value: Any) -> str:
    if isinstance(value, str) and value in _FINISH_REASONS:
        return value
    raise _spec_error(label, param, f"one of {', '.join(_FINISH_REASONS)}", value)


@_builtin("finish_reason", kinds={"value": _finish_kind}, example="finish_reason: stop")
def finish_reason(ctx: CheckContext, /, value: str) -> _Verdict:
    """The first choice finished for ``value``. YAML: ``finish_reason: stop``."""
    response = ctx.response
    _needs(ctx, response, "the finish reason")
    assert response is not None
    if not response.choices:
        raise _Unevaluable("the response has no choices")
    seen = response.choices[0].finish_reason
    raw = response.harness.raw_finish_reasons[:1]
    native = f" (provider said {raw[0]!r})" if raw and raw[0] not in (None, seen) else ""
    if seen == value:
        return _Verdict(True, f"finish reason is {seen!r}{native}")
    return _Verdict(False, f"expected finish reason {value!r}, got {seen!r}{native}")


def _bounds(label: str, seen: float, unit: str, high: float | None, low: float | None) -> _Verdict:
    if high is None and low is None:
        raise CheckSpecError(f"check {label!r} needs max and/or min")
    if high is not None and seen > high:
        return _Verdict(False, f"{unit.format(seen)} is over the max of {unit.format(high)}")
    if low is not None and seen < low:
        return _Verdict(False, f"{unit.format(seen)} is under the min of {unit.format(low)}")
    limits = " and ".join(
        f"{word} {unit.format(v)}" for word, v in (("min", low), ("max", high)) if v is not None
    )
    return _Verdict(True, f"{unit.format(seen)}, within {limits}")


def _replayed(ctx: CheckContext, verdict: _Verdict) -> _Verdict:
    """Label a timing verdict of a replayed answer: the timing is the recorded call's."""
    if ctx.response is not None and ctx.response.harness.replayed:
        return verdict._replace(detail=f"{verdict.detail} (replayed: the recorded call's timing)")
    return verdict


@_builtin(
    "latency_ms",
    kinds={"max": _number, "min": _number},
    one_of=("max", "min"),
    example="latency_ms: {max: 4000}",
)
def latency_ms(
    ctx: CheckContext, /, max: float | None = None, min: float | None = None
) -> _Verdict:
    """The call's latency is within ``min``..``max`` ms. YAML: ``latency_ms: {max: 4000}``."""
    _needs(ctx, ctx.latency_ms, "the latency")
    assert ctx.latency_ms is not None
    return _replayed(ctx, _bounds("latency_ms", ctx.latency_ms, "{:.0f} ms", max, min))


@_builtin(
    "ttft_ms",
    kinds={"max": _number, "min": _number},
    one_of=("max", "min"),
    example="ttft_ms: {max: 800}",
)
def ttft_ms(ctx: CheckContext, /, max: float | None = None, min: float | None = None) -> _Verdict:
    """Time to first token is within ``min``..``max`` ms. YAML: ``ttft_ms: {max: 800}``."""
    if ctx.ttft_ms is None and ctx.response is not None:
        raise _Unevaluable("no time to first token: the call was not streamed (stream=True)")
    _needs(ctx, ctx.ttft_ms, "the time to first token")
    assert ctx.ttft_ms is not None
    return _replayed(ctx, _bounds("ttft_ms", ctx.ttft_ms, "{:.0f} ms", max, min))


@_builtin(
    "tokens_per_s",
    kinds={"max": _number, "min": _number},
    one_of=("max", "min"),
    example="tokens_per_s: {min: 20}",
)
def tokens_per_s(
    ctx: CheckContext, /, min: float | None = None, max: float | None = None
) -> _Verdict:
    """Output speed in tokens/s is within ``min``..``max``. YAML: ``tokens_per_s: {min: 20}``."""
    if ctx.tokens_per_s is None and ctx.response is not None:
        raise _Unevaluable(
            "no output speed: the call was not streamed, or its answer arrived in one piece"
        )
    _needs(ctx, ctx.tokens_per_s, "the output speed")
    assert ctx.tokens_per_s is not None
    verdict = _bounds("tokens_per_s", ctx.tokens_per_s, "{:.1f} tokens/s", max, min)
    return _replayed(ctx, verdict)


@_builtin("cost", kinds={"max": _number}, example="cost: {max: 0.01}")
def cost(ctx: CheckContext, /, max: float) -> _Verdict:
    """The call cost at most ``max`` USD. YAML: ``cost: {max: 0.01}``."""
    if ctx.cost_usd is None and ctx.response is not None:
        model = ctx.response.harness.model or ctx.response.model
        raise _Unevaluable(f"the cost is unknown (no price configured for {model!r})")
    _needs(ctx, ctx.cost_usd, "the cost")
    assert ctx.cost_usd is not None
    return _bounds("cost", ctx.cost_usd, "${:.6g}", max, None)


@_builtin("tokens", kinds={"max": _count}, example="tokens: {max: 500}")
def tokens(ctx: CheckContext, /, max: int) -> _Verdict:
    """The call used at most ``max`` tokens in total. YAML: ``tokens: {max: 500}``."""
    _needs(ctx, ctx.tokens, "the token count")
    assert ctx.tokens is not None
    return _bounds("tokens", ctx.tokens, "{:.0f} tokens", max, None)
