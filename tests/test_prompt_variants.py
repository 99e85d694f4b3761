"""Prompt variants (``prompts:``): loading with precise errors, items per case × prompt ×
model, records and reports that keep the variants apart, and the baseline matched by
(case, prompt, model)."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.compare import compare
from harness.report.document import _items_from_records, case_key
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.summary import prompt_headers, prompt_rows, prompt_summaries, prompt_table
from harness.results import wilson_interval
from harness.suites import SuiteError, dump_suite, load_suite
from tests.helpers import report_docs

VARIANTS = """\
description: two ways to ask
models: [careful, quick]
vars: { audience: child }
prompts:
  - |
    Summarise for a {{ audience }}:
    {{ text }}
  - { id: terse, prompt: "One line: {{ text }}" }
  - id: chat
    messages:
      - { role: system, content: "Be brief with a {{ audience }}." }
      - { role: user, content: "{{ text }}" }
cases:
  - id: sun
    vars: { text: The sun is a star. }
    mock_response: base
    mock_responses: { terse-quick: tq, quick: q, terse: t }
"""


def write(directory: Path, text: str, name: str = "suite.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def fails(directory: Path, text: str) -> SuiteError:
    path = write(directory, text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value).startswith(str(path))
    return info.value


# --------------------------------------------------------------------------- loading


def test_every_variant_is_rendered_at_load(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, VARIANTS))
    assert suite.prompt_ids == ["p1", "terse", "chat"]
    assert suite.prompt is None and suite.message_templates is None
    case = suite.case("sun")
    assert case.prompts == {
        "p1": [{"role": "user", "content": "Summarise for a child:\nThe sun is a star."}],
        "terse": [{"role": "user", "content": "One line: The sun is a star."}],
        "chat": [
            {"role": "system", "content": "Be brief with a child."},
            {"role": "user", "content": "The sun is a star."},
        ],
    }
    assert case.messages == case.prompts["p1"]  # code that knows one prompt keeps working
    assert case.messages_for("chat") == case.prompts["chat"]
    assert case.messages_for(None) == case.messages


def test_a_suite_without_variants_has_none(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "prompt: hi {{ x }}\ncases: [{vars: {x: 1}}]\n"))
    assert suite.prompt_ids == [] and suite.prompt_variants is None
    assert suite.cases[0].prompts == {}


def test_mock_answers_are_looked_up_by_prompt_and_model(tmp_path: Path) -> None:
    case = load_suite(write(tmp_path, VARIANTS)).case("sun")
    assert case.mock_for("quick", "terse") == "tq"
    assert case.mock_for("quick", "p1") == "q"
    assert case.mock_for("careful", "terse") == "t"
    assert case.mock_for("careful", "chat") == "base"
    assert case.mock_for("quick") == "q"


def test_dump_round_trips_the_variants(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, VARIANTS))
    dumped = dump_suite(suite)
    assert [v["id"] for v in dumped["prompts"]] == ["p1", "terse", "chat"]
    assert "prompt" not in dumped and "messages" not in dumped
    again = load_suite(write(tmp_path, yaml.safe_dump(dumped), "again.yaml"))
    assert again.cases == suite.cases
    assert again.prompt_variants == suite.prompt_variants


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        (
            "prompt: a\nprompts: [b]\ncases: [{}]\n",
            2,
            None,
            "give either 'prompts' (a list of variants) or 'prompt', not both",
        ),
        (
            "prompts: [b]\nmessages: [{role: user, content: a}]\ncases: [{}]\n",
            2,
            None,
            "give either 'prompts' (a list of variants) or 'messages', not both",
        ),
        ("prompts: []\ncases: [{}]\n", 1, "prompts", "expected a non-empty list of prompt"),
        ("prompts: {a: b}\ncases: [{}]\n", 1, "prompts", "expected a non-empty list of prompt"),
        (
            "prompts:\n  - a\n  - 3\ncases: [{}]\n",
            3,
            "prompts[1]",
            "expected a template string, {id, prompt} or {id, messages}, got int 3",
        ),
        (
            "prompts:\n  - {id: x, prompt: a}\n  - {id: x, prompt: b}\ncases: [{}]\n",
            3,
            "prompts[1].id",
            "duplicate prompt id 'x' (first at line 2)",
        ),
        (
            "prompts:\n  - a\n  - {id: p1, prompt: b}\ncases: [{}]\n",
            3,
            "prompts[1].id",
            "duplicate prompt id 'p1' (first at line 2)",
        ),
        (
            "prompts:\n  - {id: 'a b', prompt: a}\ncases: [{}]\n",
            2,
            "prompts[0].id",
            "id must be a string of letters",
        ),
        (
            "prompts:\n  - {id: x, prompt: a, messages: []}\ncases: [{}]\n",
            2,
            "prompts[x]",
            "give either 'prompt' or 'messages', not both",
        ),
        ("prompts:\n  - {id: x}\ncases: [{}]\n", 2, "prompts[x]", "missing 'prompt'"),
        (
            "prompts:\n  - {id: x, promt: a}\ncases: [{}]\n",
            2,
            "prompts[x]",
            "unknown key 'promt'; valid keys: id, prompt, messages",
        ),
        (
            "prompts:\n  - {id: x, prompt: 3}\ncases: [{}]\n",
            2,
            "prompts[x].prompt",
            "expected a string (a jinja2 template)",
        ),
        (
            "prompts:\n  - ok\n  - |\n    fine\n    {% if %}\ncases: [{}]\n",
            5,
            "prompts[p2]",
            "template syntax error (template line 2)",
        ),
        (
            "prompts:\n  - {id: m, messages: [{role: user, content: '{{ x'}]}\ncases: [{}]\n",
            2,
            "prompts[m].messages[0].content",
            "template syntax error",
        ),
        (
            "prompts:\n  - {id: m, messages: [{role: robot, content: hi}]}\ncases: [{}]\n",
            2,
            "prompts[m].messages[0]",
            "role",
        ),
    ],
)
def test_bad_variants_name_the_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, problem: str
) -> None:
    err = fails(tmp_path, text)
    assert (err.line, err.field) == (line, field)
    assert problem in err.problem


def test_an_undefined_variable_names_the_case_and_the_prompt(tmp_path: Path) -> None:
    err = fails(
        tmp_path,
        "prompts:\n  - '{{ text }}'\n  - {id: terse, prompt: '{{ txt }}'}\n"
        "cases:\n  - id: sun\n    vars: {text: a}\n",
    )
    assert (err.line, err.case_id, err.field) == (5, "sun", "prompts[terse].prompt")
    assert err.problem == "undefined variable 'txt' (vars: text)"


def test_the_variants_render_for_vars_file_rows(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("id,text\nr1,hello\n", encoding="utf-8")
    suite = load_suite(
        write(
            tmp_path,
            "prompts: ['A {{ text }}', {id: b, prompt: 'B {{ text }}'}]\nvars_file: rows.csv\n",
        ),
        root=tmp_path,
    )
    assert suite.case("r1").prompts == {
        "p1": [{"role": "user", "content": "A hello"}],
        "b": [{"role": "user", "content": "B hello"}],
    }


_TEXT = st.text(
    alphabet=st.characters(exclude_characters="{}%#\r\x85\u2028\u2029", exclude_categories=("Cs",)),
    max_size=10,
)


@settings(max_examples=60, deadline=None)
@given(
    variants=st.lists(
        st.tuples(
            st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_-]{0,6}", fullmatch=True)), _TEXT
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda v: v[0] or "",
    ),
    value=_TEXT,
)
def test_any_variants_round_trip(variants: list[tuple[str | None, str]], value: str) -> None:
    entries: list[Any] = [
        text + "{{ v }}" if vid is None else {"id": vid, "prompt": text + "{{ v }}"}
        for vid, text in variants
    ]
    expected_ids = [vid or f"p{i + 1}" for i, (vid, _) in enumerate(variants)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yaml"
        path.write_text(yaml.safe_dump({"prompts": entries, "cases": [{"vars": {"v": value}}]}))
        try:
            suite = load_suite(path)
        except SuiteError as exc:  # a generated id may clash with a positional one
            assert len(set(expected_ids)) < len(expected_ids)
            assert "duplicate prompt id" in exc.problem
            return
        assert suite.prompt_ids == expected_ids
        case = suite.cases[0]
        assert list(case.prompts) == expected_ids
        for (_, text), vid in zip(variants, expected_ids, strict=True):
            content = text + value
            content = content[:-1] if content.endswith("\n") else content
            assert case.prompts[vid] == [{"role": "user", "content": content}]
        again = Path(folder) / "again.yaml"
        again.write_text(yaml.safe_dump(dump_suite(suite)))
        assert load_suite(again).cases == suite.cases


# --------------------------------------------------------------------------- under pytest

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]

[tool.harness.models.careful]
model = "mock/careful"

[tool.harness.models.quick]
model = "mock/quick"
"""

SUITE = """\
models: [careful, quick]
prompts:
  - { id: plain, prompt: "Explain {{ term }}." }
  - { id: terse, prompt: "Define {{ term }} briefly." }
cases:
  - id: sun
    vars: { term: the sun }
    assert: [{ icontains: star }]
    mock_response: "The sun is a star."
    mock_responses: { terse-quick: "A hot ball." }
  - id: moon
    vars: { term: the moon }
    assert: [{ icontains: moon }]
    mock_response: "The moon orbits the Earth."
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "v.yaml").write_text(SUITE)
    return pytester


def results(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    text = (pytester.path / "reports" / "results.jsonl").read_text()
    return [r for r in map(json.loads, text.splitlines()) if r.get("kind") == "result"]


def document(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / "reports" / "results.json").read_text())


def test_one_item_per_case_prompt_and_model(project: pytest.Pytester) -> None:
    result = project.runpytest("--co", "-q", "suites")
    result.stdout.fnmatch_lines(
        [
            "suites/v.yaml::sun[[]plain-careful[]]",
            "suites/v.yaml::sun[[]plain-quick[]]",
            "suites/v.yaml::sun[[]terse-careful[]]",
            "suites/v.yaml::sun[[]terse-quick[]]",
            "suites/v.yaml::moon[[]plain-careful[]]",
            "suites/v.yaml::moon[[]plain-quick[]]",
            "suites/v.yaml::moon[[]terse-careful[]]",
            "suites/v.yaml::moon[[]terse-quick[]]",
            "8 tests collected*",
        ]
    )


def test_dash_k_selects_one_variant(project: pytest.Pytester) -> None:
    result = project.runpytest("suites", "-k", "terse", "-v")
    result.assert_outcomes(passed=3, failed=1, deselected=4)
    assert {r["prompt"] for r in results(project)} == {"terse"}
    result = project.runpytest("suites", "-k", "terse and quick and sun")
    result.assert_outcomes(failed=1, deselected=7)


def test_each_variant_sends_its_own_prompt_and_records_it(project: pytest.Pytester) -> None:
    project.runpytest("suites").assert_outcomes(passed=7, failed=1)
    got = {
        (r["case_id"], r["prompt"], r["model"]): (
            r["messages"][0]["content"],
            r["response"]["choices"][0]["message"]["content"],
            r["passed"],
        )
        for r in results(project)
    }
    assert got[("sun", "plain", "careful")] == ("Explain the sun.", "The sun is a star.", True)
    assert got[("sun", "terse", "careful")] == (
        "Define the sun briefly.",
        "The sun is a star.",
        True,
    )
    assert got[("sun", "terse", "quick")] == ("Define the sun briefly.", "A hot ball.", False)
    doc = document(project)
    cases = {(r["case"], r["model"]) for r in doc["records"]}
    assert ("suites/v.yaml::sun[terse]", "quick") in cases
    assert ("suites/v.yaml::sun[plain]", "quick") in cases
    items = {i["test_id"]: i for i in doc["items"]}
    item = items["suites/v.yaml::sun[terse-quick]"]
    assert (item["prompt"], item["model"], item["case"], item["outcome"]) == (
        "terse",
        "quick",
        "suites/v.yaml::sun[terse]",
        "failed",
    )


def test_last_failed_reruns_only_the_failing_variant(project: pytest.Pytester) -> None:
    project.runpytest("suites").assert_outcomes(passed=7, failed=1)
    again = project.runpytest("suites", "--lf", "-v")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*v.yaml::sun?terse-quick? FAILED*"])
    failed_first = project.runpytest("suites", "--ff", "-v")
    failed_first.stdout.fnmatch_lines(
        ["*v.yaml::sun?terse-quick? FAILED*", "*v.yaml::sun?plain-careful? PASSED*"]
    )


def test_a_suite_without_variants_keeps_its_ids_and_records(project: pytest.Pytester) -> None:
    (project.path / "suites" / "v.yaml").write_text(
        "models: [quick]\nprompt: hi\ncases: [{id: a, mock_response: ok}]\n"
    )
    project.runpytest("--co", "-q", "suites").stdout.fnmatch_lines(["suites/v.yaml::a[[]quick[]]"])
    project.runpytest("suites").assert_outcomes(passed=1)
    (record,) = results(project)
    assert "prompt" not in record
    assert record["test_id"] == "suites/v.yaml::a[quick]"
    assert document(project)["records"][0]["case"] == "suites/v.yaml::a"


# --------------------------------------------------------------------------- reports


def variant_record(case_id: str, prompt: str, model: str, passed: bool, repeat: int = 0) -> dict:
    rec = report_docs.record(case_id, model, "answer", passed=passed, repeat=repeat)
    rec["test_id"] = f"suites/s.yaml::{case_id}[{prompt}-{model}]"
    rec["prompt"] = prompt
    return rec


def variant_doc(outcomes: dict[tuple[str, str, str], list[bool]]) -> dict[str, Any]:
    """A run document from ``{(case, prompt, model): [passed per repeat]}``."""
    records = [
        variant_record(case_id, prompt, model, ok, r)
        for (case_id, prompt, model), passes in outcomes.items()
        for r, ok in enumerate(passes)
    ]
    doc = report_docs.document(records)
    prompts = {r["test_id"]: r["prompt"] for r in records}
    for item in doc["items"]:  # as the plugin's items: each names its variant
        item["prompt"] = prompts[item["test_id"]]
    return doc


SPLIT = {  # the prompt matters, and differently for each model
    ("c1", "plain", "a"): [True],
    ("c1", "plain", "b"): [True],
    ("c1", "terse", "a"): [True],
    ("c1", "terse", "b"): [False],
    ("c2", "plain", "a"): [False],
    ("c2", "plain", "b"): [True],
    ("c2", "terse", "a"): [True],
    ("c2", "terse", "b"): [False],
}


def test_prompt_summaries_count_items_per_prompt_and_model() -> None:
    got = {(s["prompt"], s["model"]): s for s in prompt_summaries(variant_doc(SPLIT))}
    assert list(got) == [("plain", "a"), ("plain", "b"), ("terse", "a"), ("terse", "b")]
    assert (got[("plain", "a")]["passed"], got[("plain", "a")]["items"]) == (1, 2)
    assert (got[("terse", "b")]["passed"], got[("terse", "b")]["failed"]) == (0, 2)
    assert got[("plain", "b")]["pass_rate"] == 1.0
    assert got[("plain", "b")]["pass_rate_ci95"] == list(wilson_interval(2, 2))
    assert got[("terse", "a")]["records"] == 2


def test_no_prompt_table_without_variants() -> None:
    doc = report_docs.document([report_docs.record("c1", "a"), report_docs.record("c1", "b")])
    assert prompt_summaries(doc) == [] and prompt_table(doc) == ""
    assert "Prompt variants" not in render_markdown(doc)


def test_the_prompt_table_shows_rates_with_intervals_and_the_all_models_column() -> None:
    doc = variant_doc(SPLIT)
    assert prompt_headers(doc) == ("prompt", "a", "b", "all models")
    assert prompt_rows(doc) == [
        ["plain", "50.0% [9.5–90.5] 1/2", "100.0% [34.2–100.0] 2/2", "75.0% [30.1–95.4] 3/4"],
        ["terse", "100.0% [34.2–100.0] 2/2", "0.0% [0.0–65.8] 0/2", "50.0% [15.0–85.0] 2/4"],
    ]
    text = prompt_table(doc)
    assert text.splitlines()[0].split() == ["prompt", "a", "b", "all", "models"]


def test_markdown_has_the_prompt_table_with_escaped_ids() -> None:
    doc = variant_doc({("c1", "x_y", "a"): [True], ("c1", "plain", "a"): [False]})
    text = render_markdown(doc)
    section = text.split("### Prompt variants (2)\n\n", 1)[1].split("\n\n", 1)[0]
    lines = section.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["prompt", "a", "all models"]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == [
        "x\\_y",
        "100.0% [20.7–100.0] 1/1",
        "100.0% [20.7–100.0] 1/1",
    ]
    assert "suites/s.yaml::c1\\[plain\\]" in text  # the failing case names its variant


def test_a_variant_is_compared_only_with_the_same_variant_of_the_baseline() -> None:
    baseline = variant_doc({("c1", "plain", "a"): [True] * 10, ("c1", "terse", "a"): [False] * 10})
    current = variant_doc({("c1", "plain", "a"): [False] * 10, ("c1", "terse", "a"): [True] * 10})
    comparison = compare(baseline, current)
    status = {(c.case, c.model): c.status for c in comparison.cases}
    assert status == {
        ("suites/s.yaml::c1[plain]", "a"): "regression",
        ("suites/s.yaml::c1[terse]", "a"): "fix",
    }
    assert [r.case for r in comparison.significant_regressions] == ["suites/s.yaml::c1[plain]"]


def test_a_baseline_without_variants_still_matches_a_suite_without_them() -> None:
    baseline = report_docs.document([report_docs.record("c1", "a", passed=True)])
    current = report_docs.document([report_docs.record("c1", "a", passed=False)])
    (case,) = compare(baseline, current).cases
    assert (case.case, case.status) == ("suites/s.yaml::c1", "regression")
    variants = variant_doc({("c1", "plain", "a"): [True]})
    statuses = {(c.case, c.status) for c in compare(baseline, variants).cases}
    assert statuses == {("suites/s.yaml::c1", "removed"), ("suites/s.yaml::c1[plain]", "new")}


def test_items_rebuilt_from_a_stream_keep_their_variant() -> None:
    records = [variant_record("c1", "terse", "a", True), variant_record("c1", "plain", "a", False)]
    doc = report_docs.document(records)
    doc.pop("items")
    rebuilt = _items_from_records(doc["records"])
    assert [(i["prompt"], case_key(i)) for i in rebuilt] == [
        ("terse", "suites/s.yaml::c1[terse]"),
        ("plain", "suites/s.yaml::c1[plain]"),
    ]


def test_the_terminal_summary_and_reports_show_the_prompt_table(project: pytest.Pytester) -> None:
    result = project.runpytest("suites")
    result.stdout.fnmatch_lines(
        [
            "*harness summary*",
            "prompt *careful *quick",  # the models split to fit 80 columns
            "plain *100.0% [[]34.2–100.0[]] 2/2 *100.0% [[]34.2–100.0[]] 2/2",
            "terse *100.0% [[]34.2–100.0[]] 2/2 *50.0% [[]9.5–90.5[]] 1/2",
            "prompt *all models",
            "plain *4/4",
            "terse *3/4",
        ]
    )
    markdown = (project.path / "reports" / "report.md").read_text()
    assert "### Prompt variants (2)" in markdown


def test_the_html_report_has_the_prompt_view_only_with_variants() -> None:
    plain = render_html(report_docs.document([report_docs.record("c1", "a")]))
    assert 'id="prompt-table"' not in plain and 'id="matrix-head"' not in plain
    assert "data-group=" not in plain
    html = render_html(variant_doc(SPLIT))
    assert 'id="prompt-table"' in html and 'data-group="model"' in html
    island = json.loads(html.split('id="data">', 1)[1].split("</script>", 1)[0])
    assert island["prompts"] == ["plain", "terse"]
    assert island["cols"] == [
        {"p": "plain", "m": "a"},
        {"p": "plain", "m": "b"},
        {"p": "terse", "m": "a"},
        {"p": "terse", "m": "b"},
    ]
    assert [row["c"] for row in island["rows"]] == ["suites/s.yaml::c1", "suites/s.yaml::c2"]
    assert [cell["s"] for cell in island["rows"][1]["cells"]] == ["fail", "pass", "pass", "fail"]


def test_the_baseline_gate_names_the_variant_that_regressed(project: pytest.Pytester) -> None:
    suite = textwrap.dedent("""
        models: [quick]
        prompts:
          - { id: plain, prompt: "Explain {{ term }}." }
          - { id: terse, prompt: "Define {{ term }}." }
        cases:
          - id: sun
            vars: { term: the sun }
            repeat: 8
            assert: [{ icontains: star }]
            mock_response: "A star."
    """)
    (project.path / "suites" / "v.yaml").write_text(suite)
    assert project.runpytest("suites").ret == 0
    baseline = project.path / "baseline.json"
    baseline.write_bytes((project.path / "reports" / "results.json").read_bytes())
    worse = suite + '    mock_responses: { terse: "A ball." }\n'
    (project.path / "suites" / "v.yaml").write_text(worse)
    result = project.runpytest(
        "suites", "--harness-baseline", "baseline.json", "--harness-fail-on-regression"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*significant regression vs baseline:*v.yaml::sun?terse? ?quick?*"]
    )
    assert "sun[plain]" not in result.stdout.str().split("significant regression vs baseline")[1]


def test_a_hostile_prompt_id_in_a_hand_made_file_is_escaped() -> None:
    evil = '<img src=x onerror="alert(1)">'
    html = render_html(variant_doc({("c1", evil, "a"): [True], ("c1", "plain", "a"): [False]}))
    assert evil not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html  # the prompt table's cell
    island = json.loads(html.split('id="data">', 1)[1].split("</script>", 1)[0])
    assert evil in island["prompts"]  # the script sets it as text
