"""The checks reference, generated from the registry: ``docs/checks.md``.

This module owns ``render_reference`` (the Markdown page: for every registered check its
arguments, a YAML and a Python example and what passes, read from the check's signature,
docstring and registered example), ``python_example`` (the Python twin of a YAML example)
and ``check_summaries`` (one line per check, for ``harness checks``). The page is written by
``harness checks --markdown > docs/checks.md``; a test fails when the file and the registry
disagree, so the reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import yaml

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
from YAML like the built-in ones.
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
    """The checks reference as Markdown: every built-in check, in name order."""
    names = _builtin_names()
    lines = [_INTRO, "## Contents", ""]
    lines += [f"* [`{n}`](#{n}) — {_first_sentence(_REGISTRY[n])}" for n in names]
    lines.append("")
    for name in names:
        lines += _section(_REGISTRY[name])
    return "\n".join(lines).rstrip("\n") + "\n"


def _first_sentence(entry: _Entry) -> str:
    text = " ".join(_description(entry).split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def check_summaries() -> list[tuple[str, str]]:
    """``(name, first sentence)`` for every registered check (user checks too), by name."""
    return [(n, _first_sentence(_REGISTRY[n])) for n in sorted(_REGISTRY)]
