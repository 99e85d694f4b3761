from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import (
    Choice,
    Harness,
    InternalServerError,
    Message,
    ModelResponse,
    ResponseMeta,
    Usage,
    checks,
    set_default_harness,
)
from harness.checks import (
    CHECKS,
    JUDGE_SYSTEM_PROMPT,
    CheckContext,
    CheckResult,
    CheckSpecError,
    assert_passes,
    contains,
    contains_all,
    contains_any,
    cost,
    equals,
    finish_reason,
    format_json_path,
    icontains,
    is_json,
    json_path,
    json_schema,
    latency_ms,
    llm_judge,
    max_chars,
    max_words,
    not_contains,
    parse_json_path,
    parse_judge_reply,
    python,
    regex,
    register_check,
    register_scorer,
    run_check,
    run_checks,
    similar,
    similarity,
    starts_with,
    token_f1,
    tokens,
    validate_check_spec,
)
from harness.checks import registry as check_registry

BUILTINS = {
    "contains",
    "contains_all",
    "contains_any",
    "cost",
    "equals",
    "finish_reason",
    "icontains",
    "is_json",
    "json_path",
    "json_schema",
    "latency_ms",
    "llm_judge",
    "max_chars",
    "max_words",
    "not_contains",
    "python",
    "regex",
    "similar",
    "starts_with",
    "tokens",
    "tool_call",
    "tool_calls",
}


def make_response(
    content: str | None = "The star shines bright.",
    *,
    latency: float = 120.0,
    cost_usd: float | None = 0.002,
    total: int = 30,
    finish: str = "stop",
    raw: str | None = "stop",
) -> ModelResponse:
    return ModelResponse(
        id="r1",
        model="m",
        choices=[Choice(0, Message(content=content), finish_reason=finish)],  # type: ignore[arg-type]
        usage=Usage(10, total - 10, total),
        harness=ResponseMeta(
            provider="mock",
            model="mock/m",
            latency_ms=latency,
            cost_usd=cost_usd,
            raw_finish_reasons=[raw],
        ),
    )


class RecordingJudge:
    """A stand-in harness that records judge calls and answers with a fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[tuple[str, list[dict], dict]] = []

    def completion(self, model, messages, **params):
        self.calls.append((model, messages, params))
        return make_response(self.reply)


@pytest.fixture
def registry():
    """Let a test register checks and scorers; restore both registries afterwards."""
    live_maps = (check_registry._REGISTRY, check_registry._PUBLIC, similarity._SCORERS)
    saved = tuple(dict(live) for live in live_maps)
    yield
    for live, old in zip(live_maps, saved, strict=True):
        live.clear()
        live.update(old)


@pytest.fixture
def judge_harness() -> Harness:
    return Harness(config={})


# --- the public surface -------------------------------------------------------------------


def test_all_is_sorted_and_exports_exist():
    assert checks.__all__ == sorted(checks.__all__)
    for name in checks.__all__:
        assert hasattr(checks, name), name


ROOT = Path(__file__).resolve().parents[1]

_IMPORT_CHECKS = """
import json, sys
import harness
before = set(sys.modules)
import harness.checks, harness.suites
from harness.checks import CHECKS, validate_check_spec
suite = harness.suites.load_suite(sys.argv[1])
for spec in ({"llm_judge": {"rubric": "Polite?", "model": "judge"}}, {"python": "json:dumps"}):
    validate_check_spec(spec)
heavy = ("harness.runner", "httpx", "harness.limits")
print(json.dumps({
    "checks": list(CHECKS),
    "cases": len(suite.cases),
    "added": sorted(m for m in heavy if m in sys.modules and m not in before),
}))
"""


def test_importing_the_checks_and_validating_a_suite_does_not_import_the_runner(tmp_path):
    """Suite validation stays cheap: the judge imports the runner only when it calls a model."""
    suite = tmp_path / "judged.yaml"
    suite.write_text(textwrap.dedent("""
        prompt: "Say hello to {{ name }}."
        cases:
          - id: polite
            vars: { name: Ada }
            assert:
              - llm_judge: { rubric: "Does it greet {{ name }} politely?", threshold: 0.7 }
              - json_schema: { type: object }
              - similar: { value: hello Ada, scorer: token_f1 }
              - not-regex: '[0-9]'
              - latency_ms: 4000
    """))
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECKS, str(suite)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["cases"] == 1
    assert seen["added"] == []
    assert seen["checks"] == [  # every built-in, in the order the docs list them
        "equals", "contains", "icontains", "not_contains", "contains_any", "contains_all",
        "regex", "starts_with", "max_words", "max_chars", "is_json", "json_schema", "json_path",
        "finish_reason", "latency_ms", "ttft_ms", "tokens_per_s", "cost", "tokens", "tool_call",
        "tool_calls", "similar", "llm_judge", "python",
    ]


def test_registry_lists_every_builtin_and_is_read_only():
    assert BUILTINS <= set(CHECKS)
    assert CHECKS["contains"] is contains
    with pytest.raises(TypeError):
        CHECKS["mine"] = contains  # type: ignore[index]


def test_check_result_is_truthy_when_passed_and_json_able():
    ok = CheckResult("contains", True, None, "found", output="x")
    bad = CheckResult("contains", False, 0.2, "missing")
    assert ok and not bad
    assert json.loads(json.dumps(bad.to_dict())) == {
        "name": "contains",
        "passed": False,
        "score": 0.2,
        "detail": "missing",
    }
    assert "output" not in ok.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok.passed = False  # type: ignore[misc]


def test_public_signature_shows_out_first():
    import inspect

    params = list(inspect.signature(contains).parameters)
    assert params == ["out", "value"]
    assert contains.__name__ == "contains"
    assert "YAML" in (contains.__doc__ or "")


# --- context --------------------------------------------------------------------------------


def test_context_from_response_carries_call_facts():
    ctx = CheckContext.from_result(
        make_response("hi", latency=250.0, cost_usd=0.01, total=42),
        vars={"city": "Paris"},
        messages=[{"role": "user", "content": "q"}],
    )
    assert ctx.output == "hi"
    assert (ctx.latency_ms, ctx.cost_usd, ctx.tokens) == (250.0, 0.01, 42)
    assert ctx.vars == {"city": "Paris"}
    assert ctx.messages == [{"role": "user", "content": "q"}]
    assert ctx.error is None and ctx.response is not None


def test_context_output_is_empty_when_content_is_none():
    assert CheckContext.from_result(make_response(None)).output == ""


def test_context_from_error_and_from_text():
    err = InternalServerError("boom", provider="mock", model="mock/m", status=500)
    ctx = CheckContext.from_result(err)
    assert ctx.error is err and ctx.output == "" and ctx.response is None
    text = CheckContext.from_result("plain")
    assert text.output == "plain" and text.latency_ms is None


def test_context_rejects_other_types():
    with pytest.raises(TypeError, match="got int"):
        contains(3, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "out",
    [
        make_response("The star shines."),
        "The star shines.",
        CheckContext(output="The star shines."),
    ],
    ids=["response", "str", "context"],
)
def test_checks_accept_response_text_or_context(out):
    assert contains(out, "star")
    assert not contains(out, "moon")


# --- each check: passing and failing, with its detail ----------------------------------------

CASES = [
    # (check, args, kwargs, output, passed, phrases in the detail)
    (equals, ("Paris",), {}, "Paris", True, ["output equals 'Paris'"]),
    (equals, ("Paris",), {}, "Lyon", False, ["expected the output to equal 'Paris'", "'Lyon'"]),
    (equals, ("Paris",), {}, "Paris\n", False, ["differ only in leading/trailing whitespace"]),
    (contains, ("star",), {}, "a star", True, ["found 'star' at index 2"]),
    (contains, ("Star",), {}, "a star", False, ["expected the output to contain 'Star'"]),
    (icontains, ("STAR",), {}, "a star", True, ["found 'STAR' (ignoring case)"]),
    (icontains, ("moon",), {}, "a star", False, ["contain 'moon' (ignoring case); not found"]),
    (not_contains, ("sorry",), {}, "fine", True, ["'sorry' does not occur"]),
    (not_contains, ("sorry",), {}, "so sorry", False, ["not to contain 'sorry'; found at 3"]),
    (contains_any, (["cat", "dog"],), {}, "a dog", True, ["found 'dog'"]),
    (contains_any, (["cat", "dog"],), {}, "a cow", False, ["any of 'cat', 'dog'; none found"]),
    (contains_all, (["cat", "dog"],), {}, "cat and dog", True, ["found all 2"]),
    (contains_all, (["cat", "dog"],), {}, "a cat", False, ["missing 'dog'"]),
    (regex, (r"\d{4}",), {}, "in 1969 we", True, ["matched '1969' at 3"]),
    (regex, (r"(?i)HELLO",), {}, "hello", True, ["matched 'hello'"]),
    (regex, (r"\d",), {}, "none", False, ["expected a match for /\\d/; no match"]),
    (starts_with, ("Dear",), {}, "Dear Ann", True, ["starts with 'Dear'"]),
    (starts_with, ("Dear",), {}, "  Dear Ann", False, ["it does after leading whitespace"]),
    (max_words, (3,), {}, "one two three", True, ["3 words, within the max of 3"]),
    (max_words, (2,), {}, "one two three", False, ["3 words, over the max of 2"]),
    (max_chars, (5,), {}, "12345", True, ["5 characters, within the max of 5"]),
    (max_chars, (4,), {}, "12345", False, ["5 characters, over the max of 4"]),
    (is_json, (), {}, '{"a": 1}', True, ["valid JSON (object) in the output"]),
    (is_json, (), {}, "Here:\n```json\n[1, 2]\n```\nDone.", True, ["in a ```json fenced block"]),
    (is_json, (), {}, "no json", False, ["the output is not valid JSON", "Expecting value"]),
    (is_json, (), {}, "```json\n{oops}\n```", False, ["the ```json fenced block is not valid"]),
    (is_json, (), {}, "NaN", False, ["NaN is not valid JSON"]),
    (
        json_schema,
        ({"type": "object", "required": ["name"]},),
        {},
        '{"name": "Ann"}',
        True,
        ["JSON in the output matches the schema"],
    ),
    (
        json_schema,
        ({"type": "object", "required": ["name"]},),
        {},
        '{"age": 3}',
        False,
        ["fails the schema at $: 'name' is a required property"],
    ),
    (
        json_schema,
        ({"type": "object", "properties": {"items": {"items": {"type": "integer"}}}},),
        {},
        '{"items": [1, "two", "three"]}',
        False,
        ["fails the schema at $.items[", "is not of type 'integer' (and 1 more error(s))"],
    ),
    (
        json_schema,
        ({"type": "string", "format": "email"},),
        {},
        '"not an address"',
        False,
        ["is not a 'email'"],
    ),
    (json_schema, ({"type": "object"},), {}, "nope", False, ["the output is not valid JSON"]),
    (json_path, ("$.a.b[1]",), {}, '{"a": {"b": [1, 2]}}', True, ["$.a.b[1] in the output is 2"]),
    (json_path, ("$.a",), {"equals": 3}, '{"a": 3.0}', True, ["$.a in the output equals 3"]),
    (
        json_path,
        ("$.a",),
        {"equals": "3"},
        '{"a": 3}',
        False,
        ["expected $.a to equal '3' (string); found 3 (number)"],
    ),
    (json_path, ("$.a",), {"equals": 1}, '{"a": true}', False, ["found true (boolean)"]),
    (json_path, ("$.a",), {"equals": None}, '{"a": null}', True, ["equals null"]),
    (
        json_path,
        ("$.a.c",),
        {},
        '{"a": {"b": 1}}',
        False,
        ["expected a value at $.a.c", "$.a has no key 'c' (keys: 'b')"],
    ),
    (json_path, ("$[5]",), {}, "[1, 2]", False, ["$ has 2 item(s); no index 5"]),
    (json_path, ("$[-1]",), {}, "[1, 2]", True, ["$[-1] in the output is 2"]),
    (json_path, ("$.a[0]",), {}, '{"a": {"x": 1}}', False, ["$.a is object, not an array"]),
    (
        json_path,
        ("$['full name']",),
        {"equals": "Ann Lee"},
        '{"full name": "Ann Lee"}',
        True,
        ["equals 'Ann Lee'"],
    ),
    (json_path, ("a.b",), {"equals": [1]}, '{"a": {"b": [1]}}', True, ["a.b in the output"]),
    (
        similar,
        ("the cat sat",),
        {},
        "The cat sat.",
        True,
        ["token_f1 similarity 1.000 >= threshold 0.6"],
    ),
    (
        similar,
        ("a dog ran",),
        {},
        "the cat sat",
        False,
        ["token_f1 similarity 0.000 < threshold 0.6"],
    ),
]


def _case_id(case) -> str:
    fn, args, kwargs, _out, passed, _phrases = case
    return f"{fn.__name__}-{'pass' if passed else 'fail'}-{args!r}{kwargs or ''}"[:60]


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_check_passes_or_fails_with_detail(case):
    fn, args, kwargs, output, passed, phrases = case
    result = fn(output, *args, **kwargs)
    assert result.passed is passed, result.detail
    assert result.name == fn.__name__
    for phrase in phrases:
        assert phrase in result.detail
    assert result.detail.endswith(f"; output: {output!r}")


def test_similar_detail_has_the_threshold_word():
    result = similar("the cat sat", "the cat", threshold=0.9)
    assert not result
    assert result.score == pytest.approx(0.8)
    assert "0.800 < threshold 0.9 to 'the cat'" in result.detail


def test_detail_quotes_at_most_200_characters_of_output():
    long = "word " * 200
    result = contains(long, "absent")
    quoted = result.detail.split("; output: ", 1)[1]
    text = ast.literal_eval(quoted)  # the excerpt is a repr of the cut text
    assert len(text) == 200 and text.endswith("…")
    assert long.startswith(text[:-1])


def test_finish_reason_passes_and_fails_naming_the_provider_reason():
    r = make_response("cut", finish="length", raw="max_tokens")
    ok = finish_reason(r, "length")
    assert ok and "finish reason is 'length' (provider said 'max_tokens')" in ok.detail
    bad = finish_reason(r, "stop")
    assert not bad and "expected finish reason 'stop', got 'length'" in bad.detail


def test_latency_bounds():
    r = make_response(latency=5123.4)
    assert latency_ms(r, max=6000)
    over = latency_ms(r, max=4000)
    assert not over and "5123 ms is over the max of 4000 ms" in over.detail
    under = latency_ms(r, min=6000)
    assert not under and "5123 ms is under the min of 6000 ms" in under.detail
    both = latency_ms(r, max=6000, min=100)
    assert both and "within min 100 ms and max 6000 ms" in both.detail


def test_cost_and_tokens():
    r = make_response(cost_usd=0.0042, total=120)
    assert cost(r, max=0.01)
    over = cost(r, max=0.001)
    assert not over and "$0.0042 is over the max of $0.001" in over.detail
    assert tokens(r, max=120)
    many = tokens(r, max=100)
    assert not many and "120 tokens is over the max of 100 tokens" in many.detail


def test_cost_without_a_price_fails_saying_so():
    result = cost(make_response(cost_usd=None), max=1.0)
    assert not result and "no price configured for 'mock/m'" in result.detail


@pytest.mark.parametrize(
    ("fn", "kwargs", "what"),
    [
        (latency_ms, {"max": 10}, "the latency"),
        (cost, {"max": 1}, "the cost"),
        (tokens, {"max": 1}, "the token count"),
        (finish_reason, {"value": "stop"}, "the finish reason"),
    ],
)
def test_call_facts_on_plain_text_fail_as_unknown(fn, kwargs, what):
    result = fn("just text", **kwargs)
    assert not result
    assert f"{what} is unknown (the output was given as plain text)" in result.detail


def test_direct_calls_with_a_broken_check_raise_spec_errors():
    with pytest.raises(CheckSpecError, match="invalid pattern"):
        regex("x", "(")
    with pytest.raises(CheckSpecError, match="invalid schema"):
        json_schema("{}", {"type": 3})
    with pytest.raises(CheckSpecError, match="cannot read"):
        json_path("{}", "$..a")
    with pytest.raises(CheckSpecError, match="needs max and/or min"):
        latency_ms(make_response())


# --- errors in place of responses ------------------------------------------------------------

SAMPLE_SPECS = {
    "contains": {"contains": "x"},
    "contains_all": {"contains_all": ["x"]},
    "contains_any": {"contains_any": ["x"]},
    "cost": {"cost": 1},
    "equals": {"equals": "x"},
    "finish_reason": {"finish_reason": "stop"},
    "icontains": {"icontains": "x"},
    "is_json": "is_json",
    "json_path": {"json_path": "$.a"},
    "json_schema": {"json_schema": {"type": "object"}},
    "latency_ms": {"latency_ms": 100},
    "llm_judge": {"llm_judge": {"rubric": "ok?", "model": "mock/judge"}},
    "max_chars": {"max_chars": 10},
    "max_words": {"max_words": 10},
    "not_contains": {"not_contains": "x"},
    "python": {"python": "json:dumps"},
    "regex": {"regex": "x"},
    "similar": {"similar": "x"},
    "starts_with": {"starts_with": "x"},
    "tokens": {"tokens": 10},
    "tool_call": {"tool_call": "get_weather"},
    "tool_calls": {"tool_calls": 1},
}


def test_sample_specs_cover_every_builtin():
    assert set(SAMPLE_SPECS) == BUILTINS


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("name", sorted(SAMPLE_SPECS))
def test_every_check_fails_on_an_error_even_negated(name, negate):
    spec = SAMPLE_SPECS[name]
    if negate:
        spec = (
            {f"not-{name}": None}
            if isinstance(spec, str)
            else {f"not-{k}": v for k, v in spec.items()}
        )
    err = InternalServerError("boom", provider="mock", model="mock/m", status=500)
    result = run_check(spec, err)
    assert not result.passed
    assert result.detail == "the call failed: InternalServerError: [mock/m] HTTP 500: boom"
    assert result.name == (f"not-{name}" if negate else name)


def test_direct_call_with_an_error_fails():
    err = InternalServerError("boom", provider="mock", model="mock/m", status=500)
    result = not_contains(err, "x")
    assert not result and result.detail.startswith("the call failed: InternalServerError")


# --- run_check: spec shapes -----------------------------------------------------------------


def test_run_check_scalar_list_mapping_and_bare_forms():
    r = make_response('{"a": 3, "b": "star"}', latency=100.0)
    assert run_check({"icontains": "STAR"}, r)
    assert run_check({"contains_all": ["a", "b"]}, r)
    assert run_check({"latency_ms": {"max": 4000}}, r)
    assert run_check({"latency_ms": 4000}, r)
    assert not run_check({"latency_ms": 50}, r)
    assert run_check({"json_path": {"path": "$.a", "equals": 3}}, r)
    assert run_check({"similar": {"value": '{"a": 3, "b": "star"}', "threshold": 0.9}}, r)
    assert run_check({"json_schema": {"type": "object", "required": ["a"]}}, r)
    assert run_check("is_json", r)
    assert run_check({"is_json": None}, r)
    assert run_check({"is_json": {}}, r)


def test_run_check_numbers_become_text_for_text_checks():
    assert run_check({"contains": 42}, "the answer is 42")
    assert run_check({"equals": 3.5}, "3.5")


def test_run_check_accepts_a_context():
    ctx = CheckContext.from_result(make_response("hello"))
    result = run_check({"contains": "ell"}, ctx)
    assert result and result.output == "hello"


def test_negation_inverts_passed_and_says_so():
    failed = run_check({"not-regex": "\\d"}, "call 555")
    assert not failed
    assert failed.name == "not-regex"
    assert failed.detail.startswith("regex passed, so not-regex fails: /\\d/ matched '5'")
    passed = run_check({"not-regex": "\\d"}, "no digits")
    assert passed and passed.detail.startswith("regex failed, so not-regex passes")


def test_negation_inverts_the_score():
    plain = run_check({"similar": "the cat sat"}, "the cat")
    negated = run_check({"not-similar": "the cat sat"}, "the cat")
    assert plain.score == pytest.approx(0.8)
    assert negated.score == pytest.approx(0.2)
    assert plain.passed and not negated.passed


def test_negation_does_not_turn_an_unknown_into_a_pass():
    result = run_check({"not-latency_ms": 10}, "plain text")
    assert not result and "the latency is unknown" in result.detail


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"contain": "x"},
            "unknown check 'contain' (did you mean 'contains'?); known checks: contains, ",
        ),
        ({"not-bogus": 1}, "unknown check 'not-bogus'"),
        (
            {"contains": ["a", "b"]},
            "check 'contains' takes one 'value', not a list (use contains_all or contains_any",
        ),
        ({"max_words": "ten"}, "check 'max_words': 'n' must be a whole number >= 0, got str 'ten'"),
        ({"max_words": -1}, "'n' must be a whole number >= 0, got int -1"),
        ({"contains": True}, "got the boolean True (YAML reads yes/no/true/false/on/off"),
        ({"contains": ""}, "check 'contains': 'value' is empty"),
        ({"contains_any": []}, "'values' must be a non-empty list of texts"),
        ({"contains_any": "cat"}, "'values' must be a non-empty list of texts, e.g. [cat, dog]"),
        ({"contains_all": ["a", None]}, "'values[1]' must be text, got NoneType None"),
        (
            {"latency_ms": {"maxx": 3}},
            "check 'latency_ms' has no argument 'maxx'; it takes: max, min",
        ),
        ({"latency_ms": None}, "check 'latency_ms' needs at least one of: max, min"),
        ({"latency_ms": {"min": 5, "max": 1}}, "min 5 is greater than max 1"),
        ({"latency_ms": "fast"}, "'max' must be a number >= 0"),
        ({"json_path": {"equals": 3}}, "check 'json_path' needs 'path'; e.g. json_path:"),
        ({"json_path": "$.a[x]"}, "check 'json_path': cannot read '$.a[x]' at '[x]'"),
        ({"is_json": 3}, "check 'is_json' takes no argument, got 3; write it as a bare list item"),
        ({"regex": "("}, "check 'regex': invalid pattern '('"),
        ({"json_schema": {"type": 3}}, "check 'json_schema': invalid schema at $.type"),
        ({"json_schema": "object"}, "'schema' must be a JSON Schema (a mapping)"),
        ({"finish_reason": "done"}, "'value' must be one of stop, length, tool_calls"),
        ({"similar": {"value": "x", "threshold": 2}}, "'threshold' must be a number from 0 to 1"),
        ({"similar": {"value": "x", "scorer": "nope"}}, "unknown scorer 'nope'; known scorers: "),
        ({"llm_judge": {"rubric": "x", "harness": 3}}, "'harness' can only be passed from Python"),
        ({"llm_judge": {"model": "judge"}}, "check 'llm_judge' needs at least one of: rubric, template"),
        ({"a": 1, "b": 2}, "exactly one key (the check's name), got 2 keys: a, b"),
        ({}, "exactly one key (the check's name), got 0 keys"),
        (3, "an assert entry must be a one-key mapping like {contains: 'x'}"),
        ({1: "x"}, "a check's name must be text, got 1"),
        ({"contains": {1: "x"}}, "argument names must be text"),
    ],
)
def test_bad_specs_raise_precise_errors(spec, message):
    with pytest.raises(CheckSpecError) as info:
        validate_check_spec(spec)
    assert message in str(info.value)
    with pytest.raises(CheckSpecError):
        run_check(spec, "output")


def test_check_spec_error_is_a_value_error():
    assert issubclass(CheckSpecError, ValueError)


def test_validation_calls_no_model_and_run_checks_validates_first():
    stub = RecordingJudge('{"score": 1}')
    set_default_harness(stub)  # type: ignore[arg-type]
    validate_check_spec({"llm_judge": {"rubric": "ok?", "model": "mock/j"}})
    assert stub.calls == []
    with pytest.raises(CheckSpecError, match="unknown check 'bogus'"):
        run_checks([{"llm_judge": {"rubric": "ok?", "model": "mock/j"}}, {"bogus": 1}], "out")
    assert stub.calls == []
    results = run_checks([{"contains": "o"}, {"llm_judge": "ok?"}, {"max_words": 0}], "out")
    assert [r.passed for r in results] == [True, True, False]
    assert [r.name for r in results] == ["contains", "llm_judge", "max_words"]
    assert len(stub.calls) == 1


# --- llm_judge ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score", "reason"),
    [
        ('{"score": 0.9, "reason": "Polite and clear."}', 0.9, "Polite and clear."),
        (
            'Let me think.\n```json\n{"score": 0.75, "reason": "Mostly polite."}\n```\nDone.',
            0.75,
            "Mostly polite.",
        ),
        ('{"verdict": "x"} then {"score": "0.6", "reason": "ok"}', 0.6, "ok"),
        ("0.8", 0.8, "(no reason given)"),
        (" 1 ", 1.0, "(no reason given)"),
    ],
    ids=["json", "json-in-prose", "second-object-string-score", "bare-number", "bare-int"],
)
def test_llm_judge_reads_the_judge_reply(judge_harness, reply, score, reason):
    result = llm_judge(
        "Thank you for asking!",
        "Is the answer polite?",
        model="mock/judge",
        threshold=0.5,
        harness=judge_harness,
        mock_response=reply,
    )
    assert result.passed
    assert result.score == pytest.approx(score)
    assert f"judge 'mock/judge' scored {score:g} (>= threshold 0.5)" in result.detail
    assert reason in result.detail


def test_llm_judge_below_threshold_fails_with_the_reason(judge_harness):
    result = llm_judge(
        "Go away.",
        "Is the answer polite?",
        model="mock/judge",
        threshold=0.7,
        harness=judge_harness,
        mock_response='{"score": 0.2, "reason": "Rude."}',
    )
    assert not result
    assert result.score == pytest.approx(0.2)
    assert "scored 0.2 (< threshold 0.7)" in result.detail and "Rude." in result.detail


@pytest.mark.parametrize(
    ("reply", "phrase"),
    [
        ("I think it is quite polite!", "could not read a score from the judge's reply"),
        ('{"reason": "no score here"}', "could not read a score"),
        ('{"score": 7, "reason": "out of ten"}', "the judge's score 7 is not a number from 0 to 1"),
        ('{"score": true}', "the judge's score True is not a number from 0 to 1"),
        ("", "the judge said ''"),
    ],
    ids=["garbage", "no-score", "out-of-range", "bool", "empty"],
)
def test_llm_judge_unreadable_reply_fails_clearly(judge_harness, reply, phrase):
    result = llm_judge(
        "answer", "ok?", model="mock/judge", harness=judge_harness, mock_response=reply
    )
    assert not result and result.score is None
    assert phrase in result.detail


def test_llm_judge_call_failure_is_a_failed_check(judge_harness):
    result = llm_judge(
        "answer",
        "ok?",
        model="mock/judge",
        harness=judge_harness,
        mock_response={"error": 500},
        num_retries=0,
    )
    assert not result
    assert result.detail.startswith(
        "the judge call to 'mock/judge' failed: InternalServerError: [mock/judge] HTTP 500"
    )


def test_llm_judge_failure_is_not_inverted_by_negation(judge_harness):
    ctx = CheckContext.from_result("answer", harness=judge_harness)
    spec = {
        "not-llm_judge": {
            "rubric": "ok?",
            "model": "mock/judge",
            "mock_response": {"error": 500},
            "num_retries": 0,
        }
    }
    result = run_check(spec, ctx)
    assert not result and "the judge call to 'mock/judge' failed" in result.detail


def test_llm_judge_without_a_judge_model_fails_saying_how_to_configure_one(judge_harness):
    result = llm_judge("answer", "ok?", harness=judge_harness)
    assert not result
    assert result.detail.startswith("no judge model is configured: add a [models.judge] table")
    assert "judge_model" in result.detail


def test_llm_judge_yaml_mapping_passes_judge_params_through(judge_harness):
    ctx = CheckContext.from_result("hello", harness=judge_harness)
    spec = {
        "llm_judge": {
            "rubric": "Is it a greeting?",
            "model": "mock/judge",
            "threshold": 0.7,
            "mock_response": '{"score": 0.7, "reason": "yes"}',
        }
    }
    result = run_check(spec, ctx)
    assert result and result.score == pytest.approx(0.7)


def test_llm_judge_prompt_has_rubric_question_and_output():
    stub = RecordingJudge('{"score": 0.9, "reason": "fine"}')
    ctx = CheckContext.from_result(
        make_response("Paris is the capital."),
        vars={"country": "France"},
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        ],
        harness=stub,  # type: ignore[arg-type]
    )
    result = llm_judge(
        ctx, "Does it name the capital of {{ country }}?", model="mock/j", temperature=0
    )
    assert result
    ((model, messages, params),) = stub.calls
    assert model == "mock/j" and params == {"temperature": 0}
    assert messages[0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT}
    user = messages[1]["content"]
    assert "<rubric>\nDoes it name the capital of France?\n</rubric>" in user
    assert "<question>\nCapital of France?\n</question>" in user
    assert "<answer>\nParis is the capital.\n</answer>" in user
    assert '"score"' in JUDGE_SYSTEM_PROMPT and '"reason"' in JUDGE_SYSTEM_PROMPT


def test_llm_judge_without_messages_omits_the_question_and_uses_the_default_harness():
    stub = RecordingJudge("0.6")
    set_default_harness(stub)  # type: ignore[arg-type]
    assert llm_judge("answer", "ok?", model="mock/j")
    user = stub.calls[0][1][1]["content"]
    assert "<question>" not in user and "<answer>\nanswer\n</answer>" in user


def test_llm_judge_rubric_with_undefined_var_is_a_spec_error():
    stub = RecordingJudge("1")
    with pytest.raises(CheckSpecError, match="cannot render the rubric.*'city' is undefined"):
        llm_judge("x", "Mentions {{ city }}?", model="mock/j", harness=stub, vars={"a": 1})  # type: ignore[arg-type]
    assert stub.calls == []


@pytest.mark.parametrize(
    ("rubric", "problem"),
    [
        (
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "unsafe rubric template: access to attribute '__init__'",
        ),
        ("{{ 'x' * 10**10 }}", "unsafe rubric template: a repetition ('*') would be longer"),
        ("{{ 1 / 0 }}", "cannot render the rubric: ZeroDivisionError"),
    ],
)
def test_llm_judge_rubric_renders_in_the_sandbox(rubric, problem):
    stub = RecordingJudge("1")
    with pytest.raises(CheckSpecError, match=re.escape(f"check 'llm_judge': {problem}")):
        llm_judge("x", rubric, model="mock/j", harness=stub, vars={})  # type: ignore[arg-type]
    assert stub.calls == []


def test_llm_judge_rubric_still_renders_vars():
    stub = RecordingJudge("1")
    rubric = "Names {{ city|upper }}?"
    assert llm_judge("x", rubric, model="mock/j", harness=stub, vars={"city": "Oslo"})  # type: ignore[arg-type]
    assert "<rubric>\nNames OSLO?\n</rubric>" in stub.calls[0][1][1]["content"]


def test_parse_judge_reply_raises_value_error_for_garbage():
    assert parse_judge_reply('x {"score": 0.25, "reason": " r "} y') == (0.25, "r")
    with pytest.raises(ValueError, match="could not read a score"):
        parse_judge_reply("great answer")


# --- python ---------------------------------------------------------------------------------


@pytest.fixture
def user_checks(tmp_path, monkeypatch):
    module = tmp_path / "my_user_checks.py"
    module.write_text(
        textwrap.dedent(
            """
            from harness.checks import CheckResult

            not_a_function = 3

            def is_short(ctx):
                return len(ctx.output) < 10

            def score_low(ctx):
                return 0.3

            def score_high(ctx):
                return 0.9

            def full(ctx):
                return CheckResult("mine", ctx.vars.get("want") in ctx.output, 0.5, "looked")

            def nothing(ctx):
                return None

            def explode(ctx):
                raise ZeroDivisionError("division by zero")

            class Nested:
                @staticmethod
                def check(ctx):
                    return True
            """
        )
    )
    (tmp_path / "broken_user_module.py").write_text("raise RuntimeError('bad import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_user_checks"


def test_python_bool_return(user_checks):
    ok = python("short", f"{user_checks}:is_short")
    assert ok and ok.name == "python" and ok.score is None
    assert "my_user_checks:is_short returned True" in ok.detail
    assert not python("a much longer output", f"{user_checks}:is_short")


def test_python_score_return(user_checks):
    low = python("x", f"{user_checks}:score_low")
    assert not low and low.score == pytest.approx(0.3)
    assert "returned score 0.3 (< 0.5)" in low.detail
    high = run_check({"python": f"{user_checks}:score_high"}, "x")
    assert high and high.score == pytest.approx(0.9)


def test_python_check_result_return_sees_the_context(user_checks):
    ctx = CheckContext.from_result("hello world", vars={"want": "world"})
    result = run_check({"python": f"{user_checks}:full"}, ctx)
    assert result and result.name == "python" and result.score == 0.5
    assert "my_user_checks:full: looked" in result.detail


def test_python_nested_attribute_ref(user_checks):
    assert python("x", f"{user_checks}:Nested.check")


def test_python_bad_return_and_raise_fail_with_detail(user_checks):
    none = python("x", f"{user_checks}:nothing")
    assert not none and "returned None; a check must return a bool, a score" in none.detail
    boom = python("x", f"{user_checks}:explode")
    assert not boom
    assert "my_user_checks:explode raised ZeroDivisionError: division by zero at " in boom.detail
    assert "my_user_checks.py:" in boom.detail


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "my_user_checks",
            "the ref must look like 'package.module:function', got 'my_user_checks'",
        ),
        ("no_such_module_xyz:f", "check 'python' 'no_such_module_xyz:f': cannot import module"),
        ("my_user_checks:missing", "module 'my_user_checks' has no attribute 'missing'"),
        ("my_user_checks:not_a_function", "'not_a_function' is a int, not a function"),
        ("broken_user_module:f", "importing 'broken_user_module' raised RuntimeError: bad import"),
    ],
)
def test_python_bad_refs(user_checks, ref, message):
    with pytest.raises(CheckSpecError) as info:
        validate_check_spec({"python": ref})
    assert message in str(info.value)
    with pytest.raises(CheckSpecError):
        python("x", ref)


# --- register_check / scorers ---------------------------------------------------------------


def test_register_check_works_in_yaml_and_from_python(registry):
    def has_n_lines(ctx, n, strict=False):
        """Exactly n lines."""
        return len(ctx.output.splitlines()) == n

    register_check("has_n_lines", has_n_lines)
    assert run_check({"has_n_lines": 2}, "a\nb")
    assert not run_check({"has_n_lines": {"n": 3}}, "a\nb")
    assert run_check({"not-has_n_lines": 3}, "a\nb")
    assert CHECKS["has_n_lines"]("a\nb", 2)
    with pytest.raises(CheckSpecError, match="has no argument 'm'; it takes: n, strict"):
        validate_check_spec({"has_n_lines": {"m": 1}})
    with pytest.raises(CheckSpecError, match="check 'has_n_lines' needs 'n'"):
        validate_check_spec("has_n_lines")


def test_register_check_rejects_taken_and_bad_names(registry):
    with pytest.raises(ValueError, match="a check named 'contains' exists"):
        register_check("contains", lambda ctx: True)
    with pytest.raises(ValueError, match="must be an identifier"):
        register_check("not-this", lambda ctx: True)
    with pytest.raises(ValueError, match="expected a callable"):
        register_check("thing", 3)  # type: ignore[arg-type]
    register_check("mine", lambda ctx: True)
    register_check("mine", lambda ctx: False, replace=True)
    assert not run_check("mine", "x")


def test_registered_check_that_raises_fails_with_detail(registry):
    def broken(ctx):
        raise KeyError("k")

    register_check("broken_check", broken)
    result = run_check("broken_check", "x")
    assert not result and "check 'broken_check' raised KeyError: 'k' at " in result.detail


def test_similar_with_registered_and_callable_scorers(registry):
    register_scorer("exact", lambda a, b: float(a == b))
    assert run_check({"similar": {"value": "x", "scorer": "exact"}}, "x")
    result = similar("x", "y", scorer="exact")
    assert not result and "exact similarity 0.000 < threshold 0.6" in result.detail

    def prefix(a: str, b: str) -> float:
        return 1.0 if a.startswith(b) else 0.0

    assert similar("hello", "he", scorer=prefix)
    with pytest.raises(ValueError, match="a scorer named 'exact' exists"):
        register_scorer("exact", lambda a, b: 0.0)
    with pytest.raises(CheckSpecError, match="unknown scorer 'nope'"):
        similar("x", "x", scorer="nope")


def test_similar_scorer_out_of_range_fails(registry):
    register_scorer("wild", lambda a, b: 1.5)
    result = run_check({"similar": {"value": "x", "scorer": "wild"}}, "x")
    assert not result and "scorer 'wild' returned 1.5, outside 0..1" in result.detail


# --- assert_passes --------------------------------------------------------------------------


def test_assert_passes_is_silent_when_all_pass():
    r = make_response("The star shines.")
    assert_passes(contains(r, "star"), [max_words(r, 5)])
    assert_passes()


def test_assert_passes_lists_failures_then_the_output():
    r = make_response("The star shines.")
    with pytest.raises(AssertionError) as info:
        assert_passes(contains(r, "moon"), icontains(r, "STAR"), max_words(r, 2))
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == "2 of 3 check(s) failed:"
    assert lines[1].startswith("  - contains: expected the output to contain 'moon'")
    assert lines[2].startswith("  - max_words: 3 words, over the max of 2")
    assert lines[3:] == ["model output:", "  The star shines."]


def test_assert_passes_cuts_the_output_to_500_characters():
    long = "x" * 2000
    with pytest.raises(AssertionError) as info:
        assert_passes(run_checks([{"max_chars": 10}], long))
    shown = str(info.value).split("model output:\n  ", 1)[1]
    assert shown == "x" * 499 + "…"


def test_assert_passes_on_an_error_names_it():
    err = InternalServerError("boom", provider="mock", model="mock/m", status=500)
    with pytest.raises(AssertionError, match="contains: the call failed: InternalServerError"):
        assert_passes(contains(err, "x"))


def test_assert_passes_explicit_output_overrides():
    with pytest.raises(AssertionError, match="model output:\n  shown instead"):
        assert_passes(CheckResult("c", False, None, "d"), output="shown instead")


# --- properties -----------------------------------------------------------------------------


@given(st.text(), st.text())
def test_token_f1_is_symmetric_and_bounded(a, b):
    score = token_f1(a, b)
    assert 0.0 <= score <= 1.0
    assert score == token_f1(b, a)


@given(st.text(min_size=1))
def test_token_f1_of_identical_texts_is_one(a):
    assert token_f1(a, a) == 1.0


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_max_words_and_max_chars_agree_with_len(text, n):
    assert max_words(text, n).passed == (len(text.split()) <= n)
    assert max_chars(text, n).passed == (len(text) <= n)


@given(st.text(), st.text())
def test_contains_is_in(haystack, needle):
    assert contains(haystack, needle).passed == (needle in haystack)
    assert not_contains(haystack, needle).passed == (needle not in haystack)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200)
@given(JSON_VALUES, st.data())
def test_json_path_finds_the_value_at_a_generated_path(data, draw):
    steps: list[str | int] = []
    node = data
    while isinstance(node, dict | list) and node and draw.draw(st.booleans()):
        if isinstance(node, dict):
            key = draw.draw(st.sampled_from(sorted(node)))
            steps.append(key)
        else:
            key = draw.draw(st.integers(min_value=-len(node), max_value=len(node) - 1))
            steps.append(key)
        node = node[key]
    path = format_json_path(steps)
    assert parse_json_path(path) == steps
    result = json_path(json.dumps(data), path, equals=node)
    assert result.passed, result.detail


@given(st.lists(st.text(max_size=6) | st.integers(min_value=-5, max_value=5), max_size=5))
def test_json_path_format_and_parse_round_trip(steps):
    assert parse_json_path(format_json_path(steps)) == steps


def test_ttft_ms_needs_a_streamed_answer_and_checks_its_bounds():
    from harness import Harness
    from harness.checks import run_check

    h = Harness()
    plain = h.completion("mock/m", [{"role": "user", "content": "hi"}], mock_response="ok")
    result = run_check({"ttft_ms": {"max": 10_000}}, plain)
    assert not result.passed and "not streamed" in result.detail
    [answer] = h.batch_completion(
        "mock/m", [[{"role": "user", "content": "hi"}]], mock_response="ok", stream=True
    )
    assert run_check({"ttft_ms": {"max": 60_000}}, answer).passed
    assert not run_check({"ttft_ms": {"min": 60_000}}, answer).passed


def test_tokens_per_s_checks_the_recorded_output_speed():
    from harness import Harness
    from harness.checks import run_check

    h = Harness()
    plain = h.completion("mock/m", [{"role": "user", "content": "hi"}], mock_response="ok")
    result = run_check({"tokens_per_s": 20}, plain)
    assert not result.passed and "not streamed" in result.detail
    answer = h.completion("mock/m", [{"role": "user", "content": "hi"}], mock_response="ok")
    answer.harness.tokens_per_s = 42.0
    assert run_check({"tokens_per_s": 20}, answer).passed  # a scalar is the minimum
    verdict = run_check({"tokens_per_s": {"min": 50}}, answer)
    assert not verdict.passed and "42.0 tokens/s is under the min of 50.0 tokens/s" in verdict.detail
    assert not run_check({"tokens_per_s": {"max": 40}}, answer).passed


@given(
    tokens=st.integers(min_value=0, max_value=10_000),
    ttft=st.none() | st.floats(min_value=0, max_value=1e5),
    extra=st.floats(min_value=-1e3, max_value=1e5),
)
def test_output_speed_is_tokens_over_the_time_after_the_first_token(tokens, ttft, extra):
    from harness.providers.streams import output_speed

    latency = None if ttft is None else ttft + extra
    speed = output_speed(tokens, ttft, latency)
    if not tokens or ttft is None or extra < 1.0:
        assert speed is None
    else:
        assert speed == pytest.approx(tokens / (extra / 1000))


def test_timing_checks_label_a_replayed_answers_timing(tmp_path):
    import httpx

    from harness import Harness
    from harness.checks import run_check

    body = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    h = Harness(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)),
                cache=tmp_path / "c.sqlite")
    user = [{"role": "user", "content": "hi"}]
    live = h.completion("openai/m", user, api_key="sk-" + "x" * 20)
    replayed = h.completion("openai/m", user, api_key="sk-" + "x" * 20)
    assert "replayed" not in run_check({"latency_ms": 60_000}, live).detail
    result = run_check({"latency_ms": 60_000}, replayed)
    assert result.passed and "ms (replayed: the recorded call's timing)" in result.detail
