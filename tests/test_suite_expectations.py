"""Expectations that come with the data: templated check arguments and ``vars_file`` asserts."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import Choice, Message, ModelResponse
from harness.checks import CheckContext, run_check
from harness.suites import SuiteError, dump_suite, load_suite

ROOT = Path(__file__).resolve().parents[1]


def write(directory: Path, text: str, name: str = "suite.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def fails(directory: Path, text: str, name: str = "suite.yaml") -> SuiteError:
    path = write(directory, text, name)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}:")
    return info.value


def where(error: SuiteError) -> tuple[int | None, str | None, str | None]:
    return error.line, error.case_id, error.field


# --------------------------------------------------------------------------- templated arguments


def test_one_expression_keeps_its_type_and_other_text_renders(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Total of {{ order }}?"
            vars: { n: 25 }
            cases:
              - id: invoice
                vars:
                  order: A-1
                  total: 42
                  paid: true
                  price: 9.5
                  keys: [total, currency]
                  shape: { type: object, required: [total] }
                  city: Paris
                assert:
                  - max_words: "{{ n }}"
                  - json_path: { path: $.total, equals: "{{ total }}" }
                  - json_path: { path: $.paid, equals: "  {{ paid }}  " }
                  - json_path: { path: $.price, equals: "{{ price }}" }
                  - contains_all: "{{ keys }}"
                  - json_schema: { type: object, properties: { t: "{{ shape }}" } }
                  - similar: { value: "{{ city }} is the capital", threshold: 0.5 }
                  - icontains: "{{ n }} items"
                  - contains_any: [x, "{{ city | upper }}"]
                  - json_path: { path: $.n, equals: "{{ n + 1 }}" }
                  - json_path: { path: $.s, equals: "{{ total }}{{ n }}" }
                  - json_path: { path: $.w, equals: "{{- total }}" }
            """,
        )
    )
    assert suite.case("invoice").checks == [
        {"max_words": 25},
        {"json_path": {"path": "$.total", "equals": 42}},
        {"json_path": {"path": "$.paid", "equals": True}},
        {"json_path": {"path": "$.price", "equals": 9.5}},
        {"contains_all": ["total", "currency"]},
        {
            "json_schema": {
                "type": "object",
                "properties": {"t": {"type": "object", "required": ["total"]}},
            }
        },
        {"similar": {"value": "Paris is the capital", "threshold": 0.5}},
        {"icontains": "25 items"},
        {"contains_any": ["x", "PARIS"]},
        {"json_path": {"path": "$.n", "equals": 26}},
        {"json_path": {"path": "$.s", "equals": "4225"}},
        {"json_path": {"path": "$.w", "equals": "42"}},  # whitespace control: text
    ]


def test_the_typed_value_is_what_the_check_compares(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Sum?"
            cases:
              - vars: { total: 42 }
                assert: [ { json_path: { path: $.total, equals: "{{ total }}" } } ]
            """,
        )
    )
    [spec] = suite.cases[0].checks
    assert run_check(spec, '{"total": 42}').passed
    assert not run_check(spec, '{"total": "42"}').passed  # the string "42" is not 42


def test_suite_level_checks_render_per_case_and_case_vars_win(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Capital of {{ country }}?"
            vars: { expected: nowhere, most: 30 }
            assert:
              - icontains: "{{ expected }}"
              - max_words: "{{ most }}"
              - is_json
            cases:
              - id: fr
                vars: { country: France, expected: Paris }
                assert: [ { starts_with: "{{ expected }}" } ]
              - id: de
                vars: { country: Germany, expected: Berlin, most: 5 }
              - id: xx
                vars: { country: Atlantis }
            """,
        )
    )
    assert suite.case("fr").checks == [
        {"icontains": "Paris"},
        {"max_words": 30},
        "is_json",
        {"starts_with": "Paris"},
    ]
    assert suite.case("de").checks == [{"icontains": "Berlin"}, {"max_words": 5}, "is_json"]
    assert suite.case("xx").checks[0] == {"icontains": "nowhere"}


def test_a_rendered_value_is_not_rendered_again(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Echo {{ raw }}"
            cases:
              - vars: { raw: "{{ secret }}" }
                assert: [ { contains: "{{ raw }}" }, { contains: "<{{ raw }}>" } ]
            """,
        )
    )
    assert suite.cases[0].checks == [{"contains": "{{ secret }}"}, {"contains": "<{{ secret }}>"}]


def test_keys_bare_names_and_python_refs_are_not_templates(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        """\
        prompt: hi
        cases:
          - vars: { k: path }
            assert: [ { json_path: { "{{ k }}": $.a } } ]
        """,
    )
    assert "has no argument '{{ k }}'" in error.problem
    error = fails(
        tmp_path,
        """\
        prompt: hi
        cases:
          - vars: { ref: "json:dumps" }
            assert: [ { python: "{{ ref }}" } ]
        """,
    )
    assert "the ref must look like 'package.module:function', got '{{ ref }}'" in error.problem


class RecordingJudge:
    """A stand-in harness that records the judge's conversation and gives a fixed score."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.models: list[str] = []

    def completion(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
        self.models.append(model)
        self.prompts.append(messages[-1]["content"])
        return ModelResponse(
            id="j", model=model, choices=[Choice(0, Message(content='{"score": 1}'), "stop")]
        )


def test_llm_judge_rubric_is_left_for_the_judge_to_render_once(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Greet {{ name }}"
            cases:
              - vars: { name: "{{ not_a_var }}", judge: mock/strict }
                assert:
                  - llm_judge: { rubric: "Greets {{ name }}", model: "{{ judge }}" }
                  - llm_judge: "Polite to {{ name }}?"
            """,
        )
    )
    case = suite.cases[0]
    assert case.checks == [
        {"llm_judge": {"rubric": "Greets {{ name }}", "model": "mock/strict"}},
        {"llm_judge": "Polite to {{ name }}?"},
    ]
    judge = RecordingJudge()
    ctx = CheckContext(output="Hello", vars=case.vars, harness=judge)  # type: ignore[arg-type]
    assert all(run_check(spec, ctx).passed for spec in case.checks)
    assert judge.models == ["mock/strict", "judge"]
    assert "<rubric>\nGreets {{ not_a_var }}\n</rubric>" in judge.prompts[0]
    assert "<rubric>\nPolite to {{ not_a_var }}?\n</rubric>" in judge.prompts[1]


def test_checks_given_in_python_are_not_templates() -> None:
    assert run_check({"contains": "{{ x }}"}, "literally {{ x }}").passed
    assert not run_check({"contains": "{{ x }}"}, "x").passed


def test_dump_of_a_templated_suite_loads_back_equal(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Q {{ q }}"
            vars: { n: 3 }
            assert: [ { max_words: "{{ n }}" } ]
            cases:
              - vars: { q: a, total: 7 }
                assert: [ { json_path: { path: $.t, equals: "{{ total }}" } } ]
            """,
        )
    )
    again = load_suite(write(tmp_path, yaml.safe_dump(dump_suite(suite)), "again.yaml"))
    assert again.cases == suite.cases


# --------------------------------------------------------------------------- template errors


@pytest.mark.parametrize(
    ("assertion", "field", "problem"),
    [
        (
            '{ json_path: { path: $.a, equals: "{{ totl }}" } }',
            "assert[1].json_path.equals",
            "undefined variable 'totl' (vars: n, total, word)",
        ),
        ('{ icontains: "x {{ nope.deeper }}" }', "assert[1].icontains", "undefined"),
        ('{ icontains: "{{ word.__class__ }}" }', "assert[1].icontains", "unsafe template"),
        ("{ icontains: \"{{ 'x' * 20000000 }}\" }", "assert[1].icontains", "unsafe template"),
        ('{ icontains: "{{ word" }', "assert[1].icontains", "template syntax error"),
        ('{ icontains: "{{ 1 / 0 }}" }', "assert[1].icontains", "ZeroDivisionError"),
        ('{ contains_any: [a, "{{ nope }}"] }', "assert[1].contains_any[1]", "'nope'"),
        (
            '{ icontains: "{{ range }}" }',
            "assert[1].icontains",
            "the template gives a function, not text, a number",
        ),
        (
            '{ max_words: "{{ word }}" }',
            "assert[1].max_words",
            "'n' must be a whole number >= 0, got str 'cat' (rendered from '{{ word }}')",
        ),
        (
            '{ json_path: { path: "{{ word }}[", equals: "{{ n }}" } }',
            "assert[1]",
            "cannot read 'cat[' at '['; supported: $, .key, ['key'], [index] "
            "(e.g. $.items[0]['full name']) (after rendering its templates with the case's vars)",
        ),
    ],
)
def test_template_errors_name_line_case_and_field(
    tmp_path: Path, assertion: str, field: str, problem: str
) -> None:
    error = fails(
        tmp_path,
        f"""\
        prompt: hi
        vars: {{ word: cat, n: 3 }}
        cases:
          - id: c1
            vars: {{ total: 1 }}
            assert:
              - is_json
              - {assertion}
        """,
    )
    assert where(error) == (8, "c1", field)
    assert problem in error.problem


def test_a_nested_template_error_points_at_its_own_line(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        """\
        prompt: hi
        cases:
          - id: c1
            assert:
              - json_path:
                  path: $.a
                  equals: "{{ missing }}"
        """,
    )
    assert where(error) == (7, "c1", "assert[0].json_path.equals")


def test_a_suite_level_template_error_names_the_case_and_the_suite_line(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        """\
        prompt: hi
        assert:
          - icontains: "{{ expected }}"
        cases:
          - id: ok
            vars: { expected: Paris }
          - id: missing
        """,
    )
    assert where(error) == (3, "missing", "assert[0].icontains")
    assert "undefined variable 'expected'" in error.problem


# --------------------------------------------------------------------------- vars_file asserts


def test_csv_assert_column_adds_checks_to_its_row(tmp_path: Path) -> None:
    rows = [
        ["id", "country", "expected", "assert"],
        ["fr", "France", "Paris", '[{"max_words": 10}, "is_json"]'],
        ["de", "Germany", "Berlin", "- not-icontains: Bonn\n- max_chars: 100"],
        ["it", "Italy", "Rome", ""],
        ["jp", "Japan", "Tokyo", "icontains: '{{ country }}'"],
        ["uk", "UK", "London", "is_json"],
        ["es", "Spain", "Madrid", '{"json_path": {"path": "$.n", "equals": "{{ n }}"}}'],
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    (tmp_path / "capitals.csv").write_text(buffer.getvalue(), encoding="utf-8")
    suite = load_suite(
        write(
            tmp_path,
            """\
            prompt: "Capital of {{ country }}?"
            vars: { n: 5 }
            assert: [ { icontains: "{{ expected }}" } ]
            vars_file: capitals.csv
            """,
        )
    )
    checks = {c.id: c.checks for c in suite.cases}
    assert checks == {
        "fr": [{"icontains": "Paris"}, {"max_words": 10}, "is_json"],
        "de": [{"icontains": "Berlin"}, {"not-icontains": "Bonn"}, {"max_chars": 100}],
        "it": [{"icontains": "Rome"}],
        "jp": [{"icontains": "Tokyo"}, {"icontains": "Japan"}],
        "uk": [{"icontains": "London"}, "is_json"],
        "es": [{"icontains": "Madrid"}, {"json_path": {"path": "$.n", "equals": 5}}],
    }
    assert suite.case("fr").vars == {"n": 5, "country": "France", "expected": "Paris"}


def test_jsonl_assert_key_adds_checks_to_its_row(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "q": "x", "total": 3, "assert": [{"json_path": {"path": "$.t", "equals": 3}}]},
        {
            "id": "b",
            "q": "y",
            "total": 4,
            "assert": {"json_path": {"path": "$.t", "equals": "{{ total }}"}},
        },
        {"id": "c", "q": "z", "assert": "is_json"},
        {"id": "d", "q": "w"},
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    suite = load_suite(write(tmp_path, "prompt: '{{ q }}'\nvars_file: rows.jsonl\n"))
    assert [c.checks for c in suite.cases] == [
        [{"json_path": {"path": "$.t", "equals": 3}}],
        [{"json_path": {"path": "$.t", "equals": 4}}],
        ["is_json"],
        [],
    ]
    assert "assert" not in suite.case("a").vars


@pytest.mark.parametrize(
    ("cell", "field", "problem"),
    [
        ('[{"max_words": "x"}]', "assert[0]", "check 'max_words': 'n' must be a whole number"),
        ("[1, 2", "assert", "cannot read the 'assert' column as JSON or YAML: "),
        ("42", "assert", "expected a list of checks"),
        ("- contans: x", "assert[0]", "unknown check 'contans' (did you mean 'contains'?)"),
        ('- icontains: "{{ nope }}"', "assert[0].icontains", "undefined variable 'nope'"),
        ("&a [*a]", "assert", "an alias of itself"),
        ("a: 1\na: 2", "assert", "duplicate key"),
    ],
)
def test_row_assert_errors_name_the_file_row_case_and_field(
    tmp_path: Path, cell: str, field: str, problem: str
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["id", "q", "assert"], ["ok", "fine", ""], ["bad", "q", cell]])
    (tmp_path / "rows.csv").write_text(buffer.getvalue(), encoding="utf-8")
    error = fails(tmp_path, "prompt: '{{ q }}'\n\nvars_file: rows.csv\n")
    assert where(error) == (3, "bad", field)
    assert problem in error.problem
    assert error.problem.endswith("(rows.csv row 2)")


def _suite_with_cell(cell: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([["q", "n", "assert"], ["hello", "3", cell]])
        (Path(folder) / "rows.csv").write_text(buffer.getvalue(), encoding="utf-8")
        path = Path(folder) / "s.yaml"
        path.write_text("prompt: '{{ q }}'\nvars: { k: 2 }\nvars_file: rows.csv\n")
        try:
            suite = load_suite(path)
        except SuiteError as exc:
            assert str(exc).startswith(f"{path}:3: case 'row-1': ")
        else:
            assert "assert" not in suite.cases[0].vars


_CELL_PIECES = st.sampled_from(
    [
        "- ",
        "icontains: ",
        "max_words: ",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        '"',
        "'",
        "\n",
        "{{ q }}",
        "{{ n }}",
        "{{ k }}",
        "{{ nope }}",
        "{{",
        "}}",
        "{%",
        "&a ",
        "*a",
        "!!int ",
        "json_path",
        "path: $.a",
        "equals",
        "is_json",
        "not-",
        "python: os:getcwd",
        "null",
        "3",
    ]
)


@settings(max_examples=200, deadline=None)
@given(cell=st.text(max_size=60))
def test_any_assert_cell_text_loads_or_raises_suite_error(cell: str) -> None:
    _suite_with_cell(cell)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_CELL_PIECES | st.text(max_size=4), max_size=14))
def test_assert_cells_built_from_syntax_load_or_raise_suite_error(pieces: list[str]) -> None:
    _suite_with_cell("".join(pieces))


@settings(max_examples=100, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_any_jsonl_assert_value_loads_or_raises_suite_error(value: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "rows.jsonl").write_text(json.dumps({"q": "x", "assert": value}))
        path = Path(folder) / "s.yaml"
        path.write_text("prompt: '{{ q }}'\nvars_file: rows.jsonl\n")
        try:
            load_suite(path)
        except SuiteError as exc:
            assert str(exc).startswith(f"{path}:2: case 'row-1': ")


# --------------------------------------------------------------------------- the examples, run


PROJECT_CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]

[tool.harness.models.careful]
model = "mock/careful"

[tool.harness.models.quick]
model = "mock/quick"

[tool.harness.models.parrot]
model = "echo/parrot"
"""


@pytest.fixture
def examples(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project holding this repository's example suites for these features."""
    import harness.suites  # noqa: F401 - PyYAML's C extension must not load inside pytester

    pytester.makepyprojecttoml(PROJECT_CONFIG)
    (pytester.path / "suites" / "data").mkdir(parents=True)
    for name in ("tools.yaml", "data_expectations.yaml", "data/capitals.csv"):
        shutil.copy(ROOT / "suites" / name, pytester.path / "suites" / name)
    return pytester


def test_the_tool_call_example_passes_offline(examples: pytest.Pytester) -> None:
    result = examples.runpytest("suites/tools.yaml", "-p", "no:randomly")
    result.assert_outcomes(passed=8)


def test_the_tool_call_example_fails_naming_the_calls_made(examples: pytest.Pytester) -> None:
    suite = examples.path / "suites" / "tools.yaml"
    suite.write_text(
        suite.read_text().replace("arguments: { city: Rome } } }", "arguments: { city: Milan } } }")
    )
    result = examples.runpytest("suites/tools.yaml", "-p", "no:randomly", "-k", "rome")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*tool_call: expected a call to get_weather with arguments containing "
            '{"city": "Rome"}; call #1: $.city is *Milan*, not *Rome*; call #2: $.city is *Oslo*'
            '*made: get_weather({"city": "Milan"}), get_weather({"city": "Oslo"})*'
        ]
    )
    parrot = examples.runpytest("suites/tools.yaml", "--harness-models", "parrot", "-k", "paris")
    parrot.assert_outcomes(failed=1)
    parrot.stdout.fnmatch_lines(["*expected a call to get_weather *; made no tool call*"])


def test_the_data_expectations_example_passes_offline(examples: pytest.Pytester) -> None:
    result = examples.runpytest("suites/data_expectations.yaml", "-p", "no:randomly")
    result.assert_outcomes(passed=12)


def test_the_data_expectations_example_fails_on_a_row_expectation(
    examples: pytest.Pytester,
) -> None:
    data = examples.path / "suites" / "data" / "capitals.csv"
    data.write_text(data.read_text().replace("Tokyo has been", "It has been"))
    result = examples.runpytest("suites/data_expectations.yaml", "-k", "japan")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*icontains: expected the output to contain 'Tokyo'*"])


def test_the_readme_example_loads_with_its_data(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("# suites/capitals.yaml")
    block = text[start : text.index("```", start)]
    rows = [line.removeprefix("#   ") for line in block.splitlines() if line.startswith("#   ")]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "capitals.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    suite = load_suite(write(tmp_path, block, "capitals.yaml"))
    assert suite.case("japan").checks == [
        {"icontains": "Tokyo"},
        {"max_words": 40},
        {"tool_call": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
        {"not-icontains": "Kyoto"},
    ]
    (tmp_path / "data" / "capitals.csv").write_text("id,country\njapan,Japan\n")
    with pytest.raises(SuiteError) as info:
        load_suite(tmp_path / "capitals.yaml")
    assert str(info.value) == (  # as the README quotes it
        f"{tmp_path / 'capitals.yaml'}:7: case 'japan': assert[0].icontains: undefined "
        "variable 'expected' (vars: country, most_words) (data/capitals.csv row 1)"
    )
