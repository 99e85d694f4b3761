"""The checks reference, generated from the registry: ``docs/checks.md``.

This module owns ``render_reference`` (the Markdown page: for every registered check its
arguments, a YAML and a Python example and what passes, read from the check's signature,
docstring and registered example; then writing a check, with the ``CheckContext`` fields
read from the dataclass, and configuring the judge), ``python_example`` (the Python twin of
a YAML example), ``context_fields``, the example files that page shows (``EXAMPLE_FILES``,
``JUDGE_TOML``, ``JUDGE_SUITE``; tests run them) and ``check_summaries`` (one line per
check, for ``harness checks``). The page is written by
``harness checks --markdown > docs/checks.md``; a test fails when the file and the registry
disagree, so the reference cannot drift from the code.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Mapping
from typing import Any

import yaml

from harness.checks import core
from harness.checks.registry import _REGISTRY, _Entry
from harness.checks.similarity import SCORERS

_YAML_NOTE_RE = re.compile(r"\s*YAML: ``.*?``\.?", re.DOTALL)
_SECTION_RE = re.compile(r"^(Args|Returns|Raises|Yields|Example|Examples):\s*$")
_PACKAGE = "harness.checks."
_LITERAL_RE = re.compile(r"``(.+?)``(?!`)")
_ARG_RE = re.compile(r"^(\*{0,2}\w+)(?: \([^)]*\))?: (.*)$")

_INTRO = """\
# Checks reference

<!-- Generated from the check registry by `harness checks --markdown > docs/checks.md`;
tests/test_checks_reference.py fails when this file and the code disagree. Do not edit. -->

A check is one entry of a suite's `assert:` list, or a function of `harness.checks` called
on an answer from Python. Every check takes the answer (a `ModelResponse`, the error that
came back in its place, plain text, or a `CheckContext`) and returns a `CheckResult`:
`passed`, an optional `score` in [0, 1] and a `detail` saying what was expected and what was
seen. A failed call fails every check; a check written wrongly is an error naming the file,
line, case and field before any model is called.

How a YAML entry maps to the function:

* a bare name (`- is_json`) calls the check with no argument;
* a scalar (`- icontains: star`) is the check's first argument;
* a list is the first argument of the checks that take several texts (`contains_all`);
* a mapping gives keyword arguments (`- similar: {value: ..., threshold: 0.8}`), except for
  `json_schema`, whose mapping *is* the schema;
* `not-` before a name inverts the check (`- not-regex: "\\\\d"`); a score becomes `1 - score`.

In Python, `checks.assert_passes(*results)` fails like `assert` and shows the output.
Register your own check with `harness.checks.register_check(name, fn)`; it is then usable
from YAML like the built-in ones ([Writing a check](#writing-a-check)). The judge of
`llm_judge` is configured as in [Configuring the judge model](#configuring-the-judge-model).
"""


def _docstring(entry: _Entry) -> str:
    return inspect.cleandoc(entry.impl.__doc__ or "")


def _description(entry: _Entry) -> str:
    """The docstring's prose before its sections, without the ``YAML: ...`` note."""
    lines: list[str] = []
    for line in _docstring(entry).splitlines():
        if _SECTION_RE.match(line):
            break
        lines.append(line)
    text = "\n".join(lines).strip()
    return _markdown(_YAML_NOTE_RE.sub("", text).strip())


def _markdown(text: str) -> str:
    """Docstring literals (````x````) as Markdown code spans."""

    def span(m: re.Match[str]) -> str:
        inner = m.group(1)
        return f"`` {inner} ``" if "`" in inner else f"`{inner}`"

    return _LITERAL_RE.sub(span, text)


def _arg_docs(entry: _Entry) -> dict[str, str]:
    """``Args:`` descriptions by parameter name (continuation lines joined)."""
    docs: dict[str, str] = {}
    current: str | None = None
    inside = False
    for raw in _docstring(entry).splitlines():
        if _SECTION_RE.match(raw):
            inside = raw.startswith("Args")
            current = None
            continue
        if not inside or not raw.strip():
            continue
        body = raw[4:] if raw.startswith("    ") else raw
        m = _ARG_RE.match(body)
        if m and not body.startswith(" "):
            current = m.group(1).lstrip("*")
            docs[current] = m.group(2).strip()
        elif current is not None:
            docs[current] += " " + body.strip()
    return {k: _markdown(v) for k, v in docs.items()}


def _value(entry: _Entry, param: inspect.Parameter) -> str:
    """What the argument must be: its validator's docstring (``any`` for user checks)."""
    kind = (entry.kinds or {}).get(param.name)
    doc = inspect.getdoc(kind) if kind is not None else None
    return _markdown(doc.splitlines()[0]) if doc else "any"


def _yaml_arguments(entry: _Entry) -> list[inspect.Parameter]:
    """The parameters a YAML entry can give (those with a validator, or all for user checks)."""
    params = list(entry.signature.parameters.values())[1:]
    if entry.kinds is None:
        return params
    return [p for p in params if p.name in entry.kinds]


def _default(param: inspect.Parameter) -> str:
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return "any number"
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        return "any"
    if param.default is inspect.Parameter.empty:
        return "required"
    return f"`{param.default!r}`"


def _example_spec(entry: _Entry) -> Any:
    if not entry.example:
        return entry.name
    return yaml.safe_load(entry.example)


def python_example(name: str, answer: str = "answer") -> str:
    """The Python call equivalent to check ``name``'s registered YAML example.

    ``icontains: star`` becomes ``checks.icontains(answer, 'star')``; a mapping argument
    becomes keyword arguments (``json_schema``'s mapping is its schema, passed whole).
    """
    entry = _REGISTRY[name]
    spec = _example_spec(entry)
    if isinstance(spec, str):
        return f"checks.{name}({answer})"
    ((_, arg),) = spec.items()
    if arg is None:
        return f"checks.{name}({answer})"
    if isinstance(arg, Mapping) and not entry.mapping_main:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in arg.items())
        return f"checks.{name}({answer}, {kwargs})"
    return f"checks.{name}({answer}, {arg!r})"


def _section(entry: _Entry) -> list[str]:
    out = [f"## `{entry.name}`", "", _description(entry) or "(no description)", ""]
    params = _yaml_arguments(entry)
    docs = _arg_docs(entry)
    if params:
        out += ["| argument | value | default | meaning |", "|---|---|---|---|"]
        for p in params:
            cells = [f"`{p.name}`", _value(entry, p), _default(p), docs.get(p.name, "")]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    else:
        out += ["Takes no argument.", ""]
    if entry.name == "similar":
        out += ["Scorers (`scorer:`):", ""]
        for name in sorted(n for n, f in SCORERS.items() if f.__module__.startswith(_PACKAGE)):
            doc = inspect.getdoc(SCORERS[name]) or ""
            out.append(f"* `{name}` — {_markdown(doc.split(chr(10) + chr(10))[0])}".rstrip(" —"))
        out.append("")
    out += [
        "```yaml",
        "assert:",
        f"  - {entry.example or entry.name}",
        "```",
        "",
        "```python",
        "from harness import checks",
        "",
        f"result = {python_example(entry.name)}",
        "```",
        "",
    ]
    return out


def _builtin_names() -> list[str]:
    """The checks this package defines (``register_check`` gives no kinds), in name order."""
    return sorted(n for n, e in _REGISTRY.items() if e.kinds is not None)


def render_reference() -> str:
    """The checks reference as Markdown: the built-in checks by name, then the guides.

    The guides are writing a check (``python:``, ``register_check``, ``CheckContext``) and
    configuring the judge model.
    """
    names = _builtin_names()
    lines = [_INTRO, "## Contents", ""]
    lines += [f"* [`{n}`](#{n}) — {_first_sentence(_REGISTRY[n])}" for n in names]
    lines += [
        "* [Writing a check](#writing-a-check) — `python:` functions, `register_check` and "
        "the `CheckContext` fields.",
        "* [Configuring the judge model](#configuring-the-judge-model) — the model "
        "`llm_judge` and `compare:` ask.",
        "",
    ]
    for name in names:
        lines += _section(_REGISTRY[name])
    lines += _writing_a_check()
    lines += _judge_section()
    return "\n".join(lines).rstrip("\n") + "\n"


# --- writing a check ------------------------------------------------------------------------

EXAMPLE_FILES: dict[str, str] = {
    "my_checks.py": '''\
"""Checks of my own: `python: my_checks:<function>` in a suite, or by name once registered."""

from harness.checks import CheckContext, CheckResult, register_check


def is_polite(ctx: CheckContext) -> bool:
    """A bool: passes when the answer says please or thank you."""
    return any(word in ctx.output.lower() for word in ("please", "thank"))


def brevity(ctx: CheckContext) -> float:
    """A score in [0, 1]: 1 up to 10 words, 0 from 60 on; passes at 0.5 or more."""
    words = len(ctx.output.split())
    return min(1.0, max(0.0, (60 - words) / 50))


def names_the_city(ctx: CheckContext) -> CheckResult:
    """A CheckResult, whose detail says what was seen; reads the case's `city` var."""
    city = ctx.vars["city"]  # a missing var raises: the check fails, naming the KeyError
    found = city.lower() in ctx.output.lower()
    return CheckResult("names_the_city", found, detail=f"looked for {city!r}")


def cheap_and_quick(ctx: CheckContext, max_usd: float = 0.01, max_ms: float = 5000) -> bool:
    """Registered below as `cheap_and_quick`: YAML gives max_usd and max_ms."""
    cost_ok = ctx.cost_usd is None or ctx.cost_usd <= max_usd  # None: no price known
    return cost_ok and (ctx.latency_ms or 0) <= max_ms


register_check("cheap_and_quick", cheap_and_quick)
''',
    "conftest.py": """\
import my_checks  # noqa: F401 - registers cheap_and_quick before the suites load
""",
    "suites/own_checks.yaml": """\
models: [careful, quick]
prompt: "{{ question }}"
cases:
  - id: weather
    vars: { question: "Ask politely for the weather in Paris.", city: Paris }
    assert:
      - python: my_checks:is_polite
      - python: my_checks:brevity
      - python: my_checks:names_the_city
      - cheap_and_quick: { max_usd: 0.05, max_ms: 10000 }
    mock_response: "Could you please tell me the weather in Paris today?"
""",
}
"""The files of the "Writing a check" example, by path in a project (tests run them)."""


def context_fields() -> list[tuple[str, str, str]]:
    """``(name, type, description)`` of every ``CheckContext`` field, in order.

    Read from the dataclass's source: each field's annotation and the string literal under
    it. A field without one is described as ``""`` (a test fails on that).
    """
    tree = ast.parse(inspect.getsource(core))
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CheckContext"]
    docs: dict[str, tuple[str, str]] = {}
    body = cls.body
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            nxt = body[i + 1] if i + 1 < len(body) else None
            doc = ""
            if (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                doc = " ".join(inspect.cleandoc(nxt.value.value).split())
            docs[node.target.id] = (ast.unparse(node.annotation), doc)
    return [
        (f.name, docs[f.name][0], _markdown(docs[f.name][1]))
        for f in dataclasses.fields(core.CheckContext)
    ]


def _writing_a_check() -> list[str]:
    out = [
        "## Writing a check",
        "",
        "A `python:` entry names a function of yours as `module:function`. The module is",
        "imported from the project root (pytest's rootdir) when the suite loads, so a ref that",
        "does not import fails collection, naming the file, line and case, before any call.",
        "The function:",
        "",
        "* receives one argument, the answer's `CheckContext` (its fields are below);",
        "* returns `True` or `False`; or a score, a number that passes at 0.5 or more and is",
        "  recorded as the check's score (`not-` makes it `1 - score`); or a",
        '  `CheckResult(name, passed, score=None, detail="")`, whose `detail` says why;',
        "  anything else (`None`, text, NaN) fails the check, saying what came back;",
        "* may raise: the exception fails the check, not the session, and the check's detail",
        "  names the exception and the file and line it came from;",
        "* is not called when the model call failed: the check fails with the call's error.",
        "",
        "`harness.checks.register_check(name, fn, replace=False)` gives a function a check name",
        "of its own: `- name` or `- name: argument` in YAML, and `checks.CHECKS[name]` in",
        "Python. `fn` receives the `CheckContext`, then the YAML argument (a scalar or a list",
        "positionally, a mapping as keyword arguments; arguments that do not fit `fn`'s",
        "signature fail the suite's load), and returns the same values as a `python:`",
        "function. Register in a module your `conftest.py` imports, so that the name exists",
        "when the suites load. In Python, call any of them on an answer like a built-in check:",
        '`checks.CHECKS["cheap_and_quick"](answer, max_usd=0.05)` or',
        '`checks.python(answer, "my_checks:is_polite")`.',
        "",
        "An example, as three files of a project (run `pytest suites/own_checks.yaml` in a",
        "project made by `harness init`, whose `careful` and `quick` models answer offline):",
        "",
    ]
    for path, text in EXAMPLE_FILES.items():
        language = "python" if path.endswith(".py") else "yaml"
        out += [f"`{path}`:", "", f"```{language}", text.rstrip("\n"), "```", ""]
    out += [
        "### `CheckContext` fields",
        "",
        "`harness.checks.CheckContext`, built from an answer with "
        "`CheckContext.from_result(answer, vars=..., messages=...)`:",
        "",
        "| field | type | what it holds |",
        "|---|---|---|",
    ]
    for name, kind, doc in context_fields():
        cells = [f"`{name}`", f"`{kind}`", doc]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out.append("")
    return out


JUDGE_TOML = """\
# harness.toml (or the same tables under [tool.harness] in pyproject.toml)
judge_model = "judge"          # optional: any alias or provider/model; default: the alias `judge`

[models.judge]
model = "mock/judge"           # the offline judge; for a real one: "openai/gpt-4o"
params = { temperature = 0 }
"""
"""The judge configuration example of the reference (a test loads it)."""

JUDGE_SUITE = """\
models: [careful]
prompt: "{{ question }}"
cases:
  - id: capital
    vars:
      question: What is the capital of Australia?
      reference: Canberra is the capital of Australia.
    assert:
      - llm_judge: { template: factuality, threshold: 0.6 }    # judged by judge_model
      - llm_judge: { rubric: "Is the answer one sentence?", model: judge }   # or name it
    mock_response: "Canberra is the capital of Australia."
"""
"""A suite judged by the model of ``JUDGE_TOML`` (a test runs it)."""


def _judge_section() -> list[str]:
    return [
        "## Configuring the judge model",
        "",
        "`llm_judge` (and a suite's `compare:`) asks a judge model. It is, in order: the",
        "check's `model:`; else `judge_model` at the top level of the config; else the alias",
        "`judge` (`[models.judge]`). A suite with a judge check and no judge fails collection,",
        "saying so. Judge calls go through the response store and the cost cap like any call.",
        "The rubrics, the prompts and the record are in [judges.md](judges.md).",
        "",
        "```toml",
        JUDGE_TOML.rstrip("\n"),
        "```",
        "",
        "```yaml",
        JUDGE_SUITE.rstrip("\n"),
        "```",
        "",
    ]


def _first_sentence(entry: _Entry) -> str:
    text = " ".join(_description(entry).split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def check_summaries() -> list[tuple[str, str]]:
    """``(name, first sentence)`` for every registered check (user checks too), by name."""
    return [(n, _first_sentence(_REGISTRY[n])) for n in sorted(_REGISTRY)]
