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
``tool_call: get_weather`` / ``tool_call: {name: get_weather, arguments: {city: Paris}}``
    Some tool call of the answer (first choice) names the tool and its JSON arguments
    contain the given ones (every key present with an equal value; nested mappings alike);
    ``arguments_schema: {...}`` validates them against a JSON Schema instead or as well.
    The detail names the calls made (``made: get_time({"tz": "UTC"})``).
``tool_calls: 2`` / ``tool_calls: {count: 2}`` / ``tool_calls: {min: 1, max: 3}``
    How many tool calls the answer made.
``similar: "expected text"`` / ``similar: {value: ..., threshold: 0.7, scorer: token_f1}``
    The scorer's similarity between the output and ``value`` is at least ``threshold``
    (default 0.6). The default scorer ``token_f1`` is the F1 of the lower-cased word tokens;
    ``register_scorer`` adds others.
``llm_judge: "Is it polite?"`` / ``llm_judge: {rubric: ..., model: judge, threshold: 0.7}``
    A judge model (default: ``judge_model`` in the config, else the alias ``judge``) grades
    the output against the rubric and answers ``{"score": 0..1, "reason": ...}``; passes
    when the score is at least ``threshold`` (default 0.5). The rubric is a jinja2 template
    over the case's vars. Other keys (``temperature`` (default 0), ``max_tokens``,
    ``mock_response``, ...) go to the judge call.
``llm_judge: {template: factuality}`` (also ``relevance``, ``faithfulness``, ``g_eval``)
    A built-in, versioned rubric (``RUBRICS``; ``docs/judges.md``): factuality against
    ``reference`` (default: the case var), faithfulness to ``context`` (default: the case
    var), relevance to the question, G-Eval's ``criteria`` and ``steps`` scored 1-5.
``python: mypkg.checks:is_haiku``
    Imports the function and calls it with the ``CheckContext``; it returns a bool, a score
    (passes at 0.5 or more) or a ``CheckResult``.

``register_check`` adds checks of your own (called with the ``CheckContext`` and the YAML
arguments, returning the same kinds of value as a ``python`` check).

The package: ``core`` (results, the context, evaluation, ``assert_passes``), ``registry``
(the checks by name and the reading of YAML entries), then one module per family of
checks, each registering its checks when imported: ``text``, ``json_output``, ``call``,
``tools``, ``similarity``, ``judge`` and ``python_ref``. Import from ``harness.checks``;
importing it does not import the runner (nor httpx): the judge does, when it first calls a
model.
"""

from __future__ import annotations

from harness.checks.core import Checkable, CheckContext, CheckResult, CheckSpecError, assert_passes
from harness.checks.registry import (
    CHECKS,
    register_check,
    run_check,
    run_checks,
    validate_check_spec,
)

# Each module registers its checks when imported; this order is the order of CHECKS.
# isort: off
from harness.checks.text import (
    contains,
    contains_all,
    contains_any,
    equals,
    icontains,
    max_chars,
    max_words,
    not_contains,
    regex,
    starts_with,
)
from harness.checks.json_output import (
    format_json_path,
    is_json,
    json_path,
    json_schema,
    parse_json_path,
)
from harness.checks.call import cost, finish_reason, latency_ms, tokens, tokens_per_s, ttft_ms
from harness.checks.tools import tool_call, tool_calls
from harness.checks.similarity import SCORERS, register_scorer, similar, token_f1
from harness.checks.judge import (
    DEFAULT_JUDGE_MODEL,
    JUDGE_SYSTEM_PROMPT,
    RUBRICS,
    Rubric,
    judge_messages,
    llm_judge,
    parse_judge_reply,
)
from harness.checks.python_ref import python

# isort: on

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckResult",
    "CheckSpecError",
    "Checkable",
    "DEFAULT_JUDGE_MODEL",
    "JUDGE_SYSTEM_PROMPT",
    "RUBRICS",
    "Rubric",
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
    "tool_call",
    "tool_calls",
    "ttft_ms",
    "validate_check_spec",
]
