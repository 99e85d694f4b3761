r"""Checks: the assertions a test makes about a model's answer.

This module owns the assertion library shared by YAML suites (their ``assert:`` lists) and
Python tests. A check takes the answer — a ``ModelResponse``, the ``HarnessError`` that came
back in its place, plain text, or a ``CheckContext`` — and returns a ``CheckResult``:
``passed``, an optional ``score`` and a ``detail`` that says what was expected and what was
seen, with a short excerpt of the output. A check never raises because the *model* answered
badly; it raises ``CheckSpecError`` only when the *check* is written wrongly (unknown name,
bad argument, invalid regex or schema, a ``python`` ref that does not import).

When the answer is an error, every check fails with the detail ``the call failed: <error>``
(negation does not turn that into a pass), and so do checks that cannot be evaluated (a
latency check on plain text, a judge model that failed, a ``python`` check that raised).

From Python::

    r = harness.completion("mock/demo", messages)
    assert_passes(icontains(r, "star"), max_words(r, 30))   # fails like an assert

From YAML, each ``assert:`` item is a one-key mapping ``{name: argument}``: a scalar is the
check's main argument, a list is the main argument of ``contains_any``/``contains_all``, and
a mapping gives keyword arguments (except for ``json_schema``, whose mapping *is* the
schema). A check that takes no argument is written bare (``- is_json``). Prefix a name with
``not-`` to invert it (``not-regex: "\\d"``); a score in [0, 1] becomes ``1 - score``.

The checks, with their YAML form:

``equals: "Paris"``
    The output is exactly the text.
``contains: star`` / ``icontains: star`` / ``not_contains: sorry``
    The output contains the text (``icontains``: ignoring case) / does not contain it.
``contains_any: [cat, dog]`` / ``contains_all: [cat, dog]``
    At least one / every text of the list occurs in the output.
``regex: "\\b\\d{4}\\b"``
    ``re.search`` finds the pattern; flags go inline, e.g. ``"(?i)hello"``.
``starts_with: "Dear"``
    The output starts with the text.
``is_json``
    The output is JSON, or contains a ```` ```json ```` (or bare ```` ``` ````) fenced block
    of JSON; the detail says which.
``json_schema: {type: object, required: [name]}``
    The output's JSON (as ``is_json`` reads it) validates against the JSON Schema (Draft
    2020-12, with format checking); the detail names the failing path and message.
``json_path: "$.items[0].name"`` / ``json_path: {path: "$.a", equals: 3}``
    The path exists in the output's JSON (and its value equals ``equals``; ``1`` does not
    equal ``true``). Paths use a small subset of JSONPath: an optional leading ``$``, then
    ``.key``, ``['key']`` / ``["key"]`` (any characters; a backslash escapes), and ``[index]``
    (negative counts from the end). ``a.b`` is read as ``$.a.b``.
``max_words: 30`` / ``max_chars: 280``
    At most that many whitespace-separated words / characters.
``finish_reason: stop``
    The first choice's finish reason (``stop``, ``length``, ``tool_calls``,
    ``content_filter``, ``function_call``).
``latency_ms: 4000`` / ``latency_ms: {max: 4000, min: 10}``
    The call's latency is within the bounds (a scalar is ``max``).
``ttft_ms: 800`` / ``ttft_ms: {max: 800}``
    Time to first token within the bounds (needs a streamed call: suites stream by
    default, ``--harness-no-stream`` turns it off; a replayed answer uses its recorded TTFT).
``tokens_per_s: {min: 20}``
    Output speed — completion tokens per second after the first token — within the bounds
    (streamed calls; a replayed answer uses its recorded speed).
``cost: 0.01`` / ``cost: {max: 0.01}``
    The call's cost in USD is at most ``max`` (needs a price for the model).
``tokens: 500`` / ``tokens: {max: 500}``
    The call used at most ``max`` tokens in total (prompt + completion).
``similar: "expected text"`` / ``similar: {value: ..., threshold: 0.7, scorer: token_f1}``
    The scorer's similarity between the output and ``value`` is at least ``threshold``
    (default 0.6). The default scorer ``token_f1`` is the F1 of the lower-cased word tokens;
    ``register_scorer`` adds others.
``llm_judge: "Is it polite?"`` / ``llm_judge: {rubric: ..., model: judge, threshold: 0.7}``
    A judge model (default: the alias ``judge``) grades the output against the rubric and
    answers ``{"score": 0..1, "reason": ...}``; passes when the score is at least
    ``threshold`` (default 0.5). The rubric is a jinja2 template over the case's vars. Other
    keys (``temperature``, ``max_tokens``, ``mock_response``, ...) go to the judge call.
``python: mypkg.checks:is_haiku``
    Imports the function and calls it with the ``CheckContext``; it returns a bool, a score
    (passes at 0.5 or more) or a ``CheckResult``.

``register_check`` adds checks of your own (called with the ``CheckContext`` and the YAML
arguments, returning the same kinds of value as a ``python`` check).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import json
import math
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeAlias, get_args

import jsonschema
from jsonschema.exceptions import best_match

from harness.providers.wire import content_text
from harness.runner import Harness, get_default_harness
from harness.types import FinishReason, ModelResponse

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckResult",
    "CheckSpecError",
    "Checkable",
    "DEFAULT_JUDGE_MODEL",
    "JUDGE_SYSTEM_PROMPT",
    "SCORERS",
    "assert_passes",
    "contains",
    "contains_all",
    "contains_any",
    "cost",
    "equals",
    "finish_reason",
    "format_json_path",
    "icontains",
    "is_json",
    "json_path",
    "json_schema",
    "judge_messages",
    "latency_ms",
    "llm_judge",
    "max_chars",
    "max_words",
    "not_contains",
    "parse_json_path",
    "parse_judge_reply",
    "python",
    "regex",
    "register_check",
    "register_scorer",
    "run_check",
    "run_checks",
    "similar",
    "starts_with",
    "token_f1",
    "tokens",
    "tokens_per_s",
    "ttft_ms",
    "validate_check_spec",
]

EXCERPT_CHARS = 200
"""Longest output excerpt quoted in a check's detail."""
ASSERT_OUTPUT_CHARS = 500
"""Longest model output quoted in an ``assert_passes`` failure."""
DEFAULT_JUDGE_MODEL = "judge"
"""The model ``llm_judge`` asks when none is given: configure a ``judge`` alias."""
JUDGE_SYSTEM_PROMPT = (
    "You are a strict, impartial grader. You are given a rubric, possibly the question an AI "
    "assistant was asked, and the assistant's answer. Judge only whether the answer meets the "
    "rubric. Reply with a single JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"}. '
    "A score of 1 means the answer fully meets the rubric; 0 means it does not meet it at all."
)
"""The system message of every ``llm_judge`` call."""


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: name, passed, score, detail."""
        return {
            "name": self.name,
            "passed": self.passed,
            "score": self.score,
            "detail": self.detail,
        }

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
    error: BaseException | None = None
    """The error returned in place of a response; every check fails when it is set."""
    vars: Mapping[str, Any] = field(default_factory=dict)
    """The test case's variables (``llm_judge`` renders its rubric with them)."""
    messages: list[dict[str, Any]] | None = None
    """The conversation sent to the model (``llm_judge`` shows the judge the question)."""
    harness: Harness | None = None
    """The harness ``llm_judge`` calls the judge through (default: the default harness)."""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    """Time to first token, when the call was streamed."""
    tokens_per_s: float | None = None
    """Output speed (completion tokens per second after the first), when streamed."""
    cost_usd: float | None = None
    tokens: int | None = None
    """Total tokens (prompt + completion)."""

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


class _Unevaluable(Exception):
    """The check could not be evaluated: a failed result that negation does not invert."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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
            name, public, impl, signature, kinds, list_main, mapping_main, one_of, example
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
        return CheckResult(label, False, None, detail, ctx.output)
    passed, detail, score = verdict
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
    return CheckResult(label, passed, score, detail, ctx.output)


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
    if isinstance(low, float) and isinstance(high, float) and low > high:
        raise CheckSpecError(f"check {label!r}: min {low:g} is greater than max {high:g}")


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
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _spec_error(label, param, "text", value)


def _nonempty_text(label: str, param: str, value: Any) -> str:
    text = _text(label, param, value)
    if not text:
        raise CheckSpecError(f"check {label!r}: {param!r} is empty, so the check means nothing")
    return text


def _texts(label: str, param: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise _spec_error(label, param, "a non-empty list of texts, e.g. [cat, dog]", value)
    return [_nonempty_text(label, f"{param}[{i}]", v) for i, v in enumerate(value)]


def _count(label: str, param: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _spec_error(label, param, "a whole number >= 0", value)


def _number(label: str, param: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        if math.isfinite(value):
            return float(value)
    raise _spec_error(label, param, "a number >= 0", value)


def _fraction(label: str, param: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise _spec_error(label, param, "a number from 0 to 1", value)


def _anything(label: str, param: str, value: Any) -> Any:
    return value


def _pattern(label: str, param: str, value: Any) -> str:
    text = _nonempty_text(label, param, value)
    _compile(text)
    return text


def _path_kind(label: str, param: str, value: Any) -> str:
    text = _text(label, param, value)
    parse_json_path(text)
    return text


def _schema_kind(label: str, param: str, value: Any) -> Any:
    if not isinstance(value, Mapping | bool):
        raise _spec_error(label, param, "a JSON Schema (a mapping)", value)
    _validator(value)
    return value


_FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)


def _finish_kind(label: str, param: str, value: Any) -> str:
    if isinstance(value, str) and value in _FINISH_REASONS:
        return value
    raise _spec_error(label, param, f"one of {', '.join(_FINISH_REASONS)}", value)


def _scorer_kind(label: str, param: str, value: Any) -> Any:
    if value is None or callable(value):
        return value
    _scorer(_text(label, param, value))
    return value


def _ref_kind(label: str, param: str, value: Any) -> str:
    ref = _text(label, param, value)
    _load_ref(ref)
    return ref


# --- text checks ------------------------------------------------------------------------------


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


# --- JSON checks ------------------------------------------------------------------------------

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


# --- call checks ------------------------------------------------------------------------------


def _needs(ctx: CheckContext, value: Any, what: str) -> None:
    if value is None:
        why = "the output was given as plain text" if ctx.response is None else "not recorded"
        raise _Unevaluable(f"{what} is unknown ({why})")


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


# --- similarity -------------------------------------------------------------------------------

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


# --- llm judge --------------------------------------------------------------------------------


def _render_rubric(rubric: str, variables: Mapping[str, Any]) -> str:
    """The rubric rendered as suite prompts are: jinja2's sandbox, bounded in size and time."""
    if "{{" not in rubric and "{%" not in rubric:
        return rubric
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    from harness.suites import render_template

    known = ", ".join(sorted(map(str, variables))) or "none"
    try:
        return render_template(rubric, variables)
    except SecurityError as exc:
        raise CheckSpecError(f"check 'llm_judge': unsafe rubric template: {exc}") from None
    except TemplateError as exc:
        raise CheckSpecError(
            f"check 'llm_judge': cannot render the rubric: {exc} (vars: {known})"
        ) from None
    except Exception as exc:  # the template's own operations (1 / 0, int('x'), ...)
        raise CheckSpecError(
            f"check 'llm_judge': cannot render the rubric: {type(exc).__name__}: {exc}"
        ) from None


def _question(messages: list[dict[str, Any]] | None) -> str | None:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return None


def judge_messages(rubric: str, output: str, question: str | None) -> list[dict[str, Any]]:
    """The conversation ``llm_judge`` sends: the fixed grading prompt plus the case."""
    parts = [f"<rubric>\n{rubric}\n</rubric>"]
    if question is not None:
        parts.append(f"<question>\n{question}\n</question>")
    parts.append(f"<answer>\n{output}\n</answer>")
    parts.append('Grade the answer against the rubric. Reply with {"score": ..., "reason": ...}.')
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _judge_score(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        number = float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise _Unevaluable(f"the judge's score {value!r} is not a number from 0 to 1")
    return number


def parse_judge_reply(text: str) -> tuple[float, str]:
    """Read ``(score, reason)`` from a judge's reply.

    Takes the first JSON object with a ``score`` anywhere in the text (prose and code fences
    around it are fine); else the whole reply as a bare number. Raises ``ValueError`` (with a
    message saying why) when neither is there or the score is not in [0, 1].
    """
    try:
        return _read_judge_reply(text)
    except _Unevaluable as exc:
        raise ValueError(exc.detail) from None


def _read_judge_reply(text: str) -> tuple[float, str]:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            reason = obj.get("reason", "")
            return _judge_score(obj["score"]), str(reason if reason is not None else "").strip()
    bare = text.strip().rstrip(".")
    if _NUMBER_RE.fullmatch(bare):
        return _judge_score(bare), ""
    raise _Unevaluable(
        'could not read a score from the judge\'s reply (expected JSON like {"score": 0.8, '
        f'"reason": "..."}} or a bare number); the judge said {_excerpt(text)}'
    )


@_builtin(
    "llm_judge",
    kinds={"rubric": _nonempty_text, "model": _nonempty_text, "threshold": _fraction},
    example="llm_judge: {rubric: 'Is the answer polite?', model: judge, threshold: 0.7}",
)
def llm_judge(
    ctx: CheckContext,
    /,
    rubric: str,
    model: str = DEFAULT_JUDGE_MODEL,
    threshold: float = 0.5,
    harness: Harness | None = None,
    vars: Mapping[str, Any] | None = None,
    **judge_params: Any,
) -> _Verdict:
    """A judge model grades the output against ``rubric``; passes at ``threshold`` or more.

    YAML: ``llm_judge: {rubric: "Is the answer polite?", model: judge, threshold: 0.7}``.

    The judge gets ``JUDGE_SYSTEM_PROMPT``, the rubric (a jinja2 template over ``vars``),
    the last user message of the case (when known) and the output, and is asked for
    ``{"score": 0..1, "reason": "..."}`` (see ``parse_judge_reply``). The result's score is
    the judge's; the detail carries its reason. A failed judge call, or a reply without a
    score, is a failed check naming the problem (never an exception).

    Args:
        ctx: the answer.
        rubric: what a good answer does.
        model: the judge model (alias or ``provider/name``); default the alias ``judge``.
        threshold: the least passing score.
        harness: the harness to call through; default the context's, else the default one.
        vars: variables for the rubric; default the context's.
        judge_params: passed to ``Harness.completion`` (``temperature``, ``mock_response``,
            ``num_retries``, ...).

    Raises:
        CheckSpecError: the rubric uses an undefined variable.
    """
    text = _render_rubric(rubric, ctx.vars if vars is None else vars)
    messages = judge_messages(text, ctx.output, _question(ctx.messages))
    via = harness or ctx.harness or get_default_harness()
    try:
        reply = via.completion(model, messages, **judge_params)
    except Exception as exc:
        raise _Unevaluable(f"the judge call to {model!r} failed: {_describe(exc)}") from exc
    score, reason = _read_judge_reply(reply.content or "")
    passed = score >= threshold
    reason = reason if len(reason) <= 500 else reason[:499] + "…"
    return _Verdict(
        passed,
        f"judge {model!r} scored {score:g} ({_cmp(passed)} threshold {threshold:g}) on "
        f"{_short(text)}: {reason or '(no reason given)'}",
        score,
    )


# --- python -----------------------------------------------------------------------------------


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
