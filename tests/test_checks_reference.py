"""docs/checks.md is generated from the check registry and must match it."""

from __future__ import annotations

import ast
import inspect
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

import harness.checks  # noqa: F401 - registers the built-in checks
from harness.checks import CHECKS, CheckResult, validate_check_spec
from harness.checks.reference import (
    _builtin_names,
    check_summaries,
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
