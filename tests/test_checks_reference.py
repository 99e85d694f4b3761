"""docs/checks.md is generated from the check registry and must match it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

import harness.checks  # noqa: F401 - registers the built-in checks
from harness.checks import CHECKS, CheckContext, CheckResult, validate_check_spec
from harness.checks.reference import (
    EXAMPLE_FILES,
    JUDGE_SUITE,
    JUDGE_TOML,
    _builtin_names,
    check_summaries,
    context_fields,
    python_example,
    render_reference,
)
from harness.checks.registry import _REGISTRY, register_check
from harness.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "checks.md"
REGENERATE = "regenerate it: harness checks --markdown > docs/checks.md"


def test_docs_checks_md_is_the_generated_reference() -> None:
    assert DOC.read_text(encoding="utf-8") == render_reference(), REGENERATE


def test_every_registered_builtin_check_has_a_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^## `(\w+)`$", text, re.M))
    missing = sorted(set(_builtin_names()) - headings)
    assert not missing, f"docs/checks.md lacks {missing}; {REGENERATE}"
    assert set(_builtin_names()) == {n for n in CHECKS if n in _REGISTRY and n in headings}


def test_each_section_shows_every_yaml_argument_and_its_default() -> None:
    text = render_reference()
    for name in _builtin_names():
        section = text.split(f"## `{name}`\n", 1)[1].split("\n## ", 1)[0]
        entry = _REGISTRY[name]
        for param in list(entry.signature.parameters.values())[1:]:
            if entry.kinds is not None and param.name in entry.kinds:
                assert f"| `{param.name}` |" in section, (name, param.name)
        assert f"  - {entry.example or name}\n" in section


@pytest.fixture
def haiku_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module the ``python`` check's example names."""
    pkg = types.ModuleType("mypkg")
    mod = types.ModuleType("mypkg.checks")
    mod.is_haiku = lambda ctx: len(ctx.output.split()) <= 17  # type: ignore[attr-defined]
    pkg.checks = mod  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mypkg", pkg)
    monkeypatch.setitem(sys.modules, "mypkg.checks", mod)


@pytest.mark.usefixtures("haiku_module")
@pytest.mark.parametrize("name", _builtin_names())
def test_examples_are_valid_and_the_python_twin_calls_the_same_check(name: str) -> None:
    entry = _REGISTRY[name]
    spec = yaml.safe_load(entry.example) if entry.example else name
    validate_check_spec(spec)
    call = ast.parse(python_example(name), mode="eval").body
    assert isinstance(call, ast.Call)
    assert ast.unparse(call.func) == f"checks.{name}"
    args = [ast.literal_eval(a) for a in call.args[1:]]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    inspect.signature(CHECKS[name]).bind("an answer", *args, **kwargs)
    if name != "llm_judge":  # the judge would call a model
        assert isinstance(CHECKS[name]("an answer", *args, **kwargs), CheckResult)


def test_a_user_check_is_listed_by_the_cli_but_not_written_into_the_docs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    register_check("shouts_xyz", lambda ctx: ctx.output.isupper(), replace=True)
    try:
        assert "shouts_xyz" in dict(check_summaries())
        assert "shouts_xyz" not in render_reference()
        assert main(["checks"]) == 0
        listed = capsys.readouterr().out
    finally:
        from harness.checks.registry import _PUBLIC

        _REGISTRY.pop("shouts_xyz", None)
        _PUBLIC.pop("shouts_xyz", None)
    for name in [*_builtin_names(), "shouts_xyz"]:
        assert re.search(rf"^{name}\s", listed, re.M), name


def test_cli_markdown_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks", "--markdown"]) == 0
    assert capsys.readouterr().out == render_reference()


# --- writing a check, and the judge: the examples the page shows run through a real suite ---

EXAMPLE_CONFIG = """
[tool.harness.models.careful]
model = "mock/careful"
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }

[tool.harness.models.quick]
model = "mock/quick"
"""


def _results(pytester: pytest.Pytester) -> list[dict]:
    import json

    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "result"]


def test_the_page_shows_the_example_files_and_every_context_field() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Writing a check\n", 1)[1]
    for path, body in EXAMPLE_FILES.items():
        assert f"`{path}`:\n\n```" in section and body.rstrip("\n") in section, path
    fields = context_fields()
    assert [name for name, _, _ in fields] == [f.name for f in dataclasses.fields(CheckContext)]
    for name, kind, doc in fields:
        assert doc, f"CheckContext.{name} has no docstring in harness/checks/core.py"
        assert f"| `{name}` | `{kind.replace('|', chr(92) + '|')}` | {doc} |" in section


def test_the_writing_a_check_example_runs_through_a_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(EXAMPLE_CONFIG)
    (pytester.path / "suites").mkdir()
    for path, body in EXAMPLE_FILES.items():
        (pytester.path / path).write_text(body, encoding="utf-8")
    # a second case whose answer fails each check, to see that they judge
    suite = pytester.path / "suites" / "own_checks.yaml"
    suite.write_text(
        suite.read_text(encoding="utf-8")
        + """
  - id: rude
    vars: { question: "Weather?", city: Rome }
    assert:
      - python: my_checks:is_polite
      - python: my_checks:brevity
      - python: my_checks:names_the_city
      - cheap_and_quick: { max_usd: 0.0, max_ms: 10000 }
    mock_response: WORDS
""".replace("WORDS", " ".join(["word"] * 70)),
        encoding="utf-8",
    )
    result = pytester.runpytest_subprocess("suites", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)
    by_item = {(r["case_id"], r["model"]): r["checks"] for r in _results(pytester)}
    assert all(c["passed"] for c in by_item[("weather", "careful")]), by_item
    assert [c["score"] for c in by_item[("weather", "quick")]] == [None, 1.0, None, None]
    # careful has a price: 0 USD is too much; quick has none, so the cost is not held against it
    assert [c["passed"] for c in by_item[("rude", "careful")]] == [False] * 4
    assert [c["passed"] for c in by_item[("rude", "quick")]] == [False, False, False, True]
    details = " ".join(c["detail"] for c in by_item[("rude", "quick")])
    assert "looked for 'Rome'" in details and "brevity returned score 0 (< 0.5)" in details


def test_the_judge_example_configures_the_judge(tmp_path: Path, pytester: pytest.Pytester) -> None:
    from harness.config import load_config

    (tmp_path / "harness.toml").write_text(JUDGE_TOML, encoding="utf-8")
    config = load_config(tmp_path / "harness.toml")
    assert config.judge_model == "judge" and config.models["judge"].full_name == "mock/judge"
    pytester.makefile(".toml", harness=JUDGE_TOML + '\n[models.careful]\nmodel = "mock/careful"\n')
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "judged.yaml").write_text(JUDGE_SUITE, encoding="utf-8")
    result = pytester.runpytest_subprocess("suites", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    [record] = _results(pytester)
    judges = [c["judge"] for c in record["checks"]]
    assert [j["model"] for j in judges] == ["judge", "judge"]
