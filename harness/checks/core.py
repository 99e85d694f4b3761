"""What a check is and what it returns: the shared base of the check modules.

This module owns ``CheckResult``, ``CheckContext`` (and ``Checkable``, what every check
accepts), ``CheckSpecError``, the verdict a check's body returns (``_Verdict``, or
``_Unevaluable`` when it cannot decide), the step that turns a verdict into a result
(a failed call fails every check; ``not-`` inverts a verdict and its score), the excerpts
quoted in details, and ``assert_passes``. Its underscore names are the package's internal
API, used by the other check modules; users import from ``harness.checks``.
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from harness.types import ModelResponse

if TYPE_CHECKING:
    from harness.runner import Harness

EXCERPT_CHARS = 200
"""Longest output excerpt quoted in a check's detail."""
ASSERT_OUTPUT_CHARS = 500
"""Longest model output quoted in an ``assert_passes`` failure."""


class CheckSpecError(ValueError):
    """A check is written wrongly: unknown name, bad argument shape or value, bad ref."""


# --- results and context ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check; truthy when it passed."""

    name: str
    """The check's name as written (``not-`` included when negated)."""
    passed: bool
    score: float | None = None
    """A graded check's score (``similar``, ``llm_judge``, a scoring ``python`` check)."""
    detail: str = ""
    """What was expected and what was seen, with an excerpt of the output."""
    output: str | None = field(default=None, repr=False, compare=False)
    """The checked output, kept for ``assert_passes``; not part of ``to_dict``."""
    judge: Mapping[str, Any] | None = None
    """A judge check's judgment: ``model``, ``score``, ``reason``, ``rubric``, ``version``
    (and ``raw``, the judge's unreadable reply, when it could not be read)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: name, passed, score, detail (and ``judge`` when set)."""
        out: dict[str, Any] = {
            "name": self.name,
            "passed": self.passed,
            "score": self.score,
            "detail": self.detail,
        }
        if self.judge is not None:
            out["judge"] = dict(self.judge)
        return out

    def __bool__(self) -> bool:
        return self.passed


@dataclass
class CheckContext:
    """Everything a check sees about one answer.

    Build it with ``CheckContext.from_result``; checks also accept the answer itself.
    """

    output: str = ""
    """The first choice's content (``""`` when there is none)."""
    response: ModelResponse | None = None
    """The whole answer (tool calls, finish reason, usage, ``harness`` metadata); ``None``
    when the call failed or the check was given plain text."""
    error: BaseException | None = None
    """The error returned in place of a response; every check fails when it is set."""
    vars: Mapping[str, Any] = field(default_factory=dict)
    """The test case's variables (``llm_judge`` renders its rubric with them)."""
    messages: list[dict[str, Any]] | None = None
    """The conversation sent to the model (``llm_judge`` shows the judge the question)."""
    harness: Harness | None = None
    """The harness ``llm_judge`` calls the judge through (default: the default harness)."""
    latency_ms: float | None = None
    """Wall time of the call, request to last byte, in milliseconds (recorded when replayed)."""
    ttft_ms: float | None = None
    """Time to first token in milliseconds, when the call was streamed."""
    tokens_per_s: float | None = None
    """Output speed (completion tokens per second after the first), when streamed."""
    cost_usd: float | None = None
    """What the call cost in US dollars; ``None`` when the model has no price."""
    tokens: int | None = None
    """Total tokens (prompt + completion), when the provider reported usage."""

    @classmethod
    def from_result(
        cls,
        result: ModelResponse | BaseException | str | None,
        *,
        vars: Mapping[str, Any] | None = None,
        messages: list[dict[str, Any]] | None = None,
        harness: Harness | None = None,
    ) -> CheckContext:
        """The context for a response, the error returned in its place, or plain text.

        Args:
            result: a ``ModelResponse``, a ``HarnessError`` (or any exception), or text.
            vars: the case's variables.
            messages: the conversation that was sent.
            harness: the harness for judge calls.
        """
        ctx = cls(vars=dict(vars or {}), messages=messages, harness=harness)
        if isinstance(result, ModelResponse):
            ctx.response = result
            ctx.output = result.content or ""
            ctx.latency_ms = result.harness.latency_ms
            ctx.ttft_ms = result.harness.ttft_ms
            ctx.tokens_per_s = result.harness.tokens_per_s
            ctx.cost_usd = result.harness.cost_usd
            ctx.tokens = result.usage.total_tokens
        elif isinstance(result, BaseException):
            ctx.error = result
        elif isinstance(result, str):
            ctx.output = result
        elif result is not None:
            raise TypeError(
                "a check takes a ModelResponse, a HarnessError, a str or a CheckContext; "
                f"got {type(result).__name__}"
            )
        return ctx


Checkable: TypeAlias = ModelResponse | BaseException | CheckContext | str | None
"""What every check accepts as its first argument."""


def _context(out: Checkable) -> CheckContext:
    return out if isinstance(out, CheckContext) else CheckContext.from_result(out)


class _Verdict(NamedTuple):
    """What a check's body decides; the wrapper turns it into a ``CheckResult``."""

    passed: bool
    detail: str
    score: float | None = None
    judge: Mapping[str, Any] | None = None


class _Unevaluable(Exception):
    """The check could not be evaluated: a failed result that negation does not invert."""

    def __init__(self, detail: str, judge: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.judge = judge


# --- evaluation ---------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _describe_raise(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{_describe(exc)}{where}"


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters (with an ellipsis when cut)."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _short(value: Any, limit: int = 80) -> str:
    """A short rendering of a value: ``repr`` for text, JSON for anything else."""
    if isinstance(value, str):
        return _excerpt(value, limit)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _evaluate(
    label: str, ctx: CheckContext, body: Callable[[], _Verdict], *, negate: bool
) -> CheckResult:
    if ctx.error is not None:
        return CheckResult(label, False, None, f"the call failed: {_describe(ctx.error)}")
    try:
        verdict = body()
    except _Unevaluable as exc:
        detail = f"{exc.detail}; output: {_excerpt(ctx.output)}"
        return CheckResult(label, False, None, detail, ctx.output, exc.judge)
    passed, detail, score, judge = verdict
    if negate:
        base = label.removeprefix("not-")
        detail = (
            f"{base} {'passed' if passed else 'failed'}, so {label} "
            f"{'fails' if passed else 'passes'}: {detail}"
        )
        passed = not passed
        if score is not None and 0.0 <= score <= 1.0:
            score = 1.0 - score
    detail = f"{detail}; output: {_excerpt(ctx.output)}"
    return CheckResult(label, passed, score, detail, ctx.output, judge)


def _verdict_of(value: Any, what: str) -> _Verdict:
    """Read a user check's return value: a ``CheckResult``, a bool or a score."""
    if isinstance(value, CheckResult):
        return _Verdict(value.passed, f"{what}: {value.detail}", value.score)
    if isinstance(value, bool):
        return _Verdict(value, f"{what} returned {value}")
    if isinstance(value, int | float) and not math.isnan(value):
        score = float(value)
        passed = score >= 0.5
        return _Verdict(passed, f"{what} returned score {score:g} ({_cmp(passed)} 0.5)", score)
    raise _Unevaluable(
        f"{what} returned {value!r}; a check must return a bool, a score (float) or a CheckResult"
    )


def _cmp(passed: bool) -> str:
    return ">=" if passed else "<"


# --- assert_passes -------------------------------------------------------------------------


def assert_passes(*results: CheckResult | Iterable[CheckResult], output: str | None = None) -> None:
    """Fail like an ``assert`` when any check failed, showing why and the model's output.

    Args:
        results: check results, or iterables of them (e.g. ``run_checks(...)``).
        output: the output to show; default: the output each failed result recorded.

    Raises:
        AssertionError: lists each failed check's name and detail, then the output
            (cut to 500 characters).
    """
    __tracebackhide__ = True
    flat: list[CheckResult] = []
    for item in results:
        flat.extend([item] if isinstance(item, CheckResult) else item)
    failed = [r for r in flat if not r.passed]
    if not failed:
        return
    lines = [f"{len(failed)} of {len(flat)} check(s) failed:"]
    lines += [f"  - {r.name}: {r.detail}" for r in failed]
    shown = [output] if output is not None else [r.output for r in failed if r.output is not None]
    outputs = list(dict.fromkeys(shown))
    for text in outputs:
        cut = text if len(text) <= ASSERT_OUTPUT_CHARS else text[: ASSERT_OUTPUT_CHARS - 1] + "…"
        lines.append("model output:")
        lines.extend(f"  {line}" for line in (cut.splitlines() or [""]))
    raise AssertionError("\n".join(lines))
