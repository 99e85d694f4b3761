"""Declarative YAML suites: the file format, its loader, and validation with precise errors.

A suite file holds cases; the pytest plugin turns each (case, model) into one test item::

    description: Summaries stay short and keep the key fact
    models: [fast, local]            # default models; the CLI option overrides
    prompt: |                        # jinja2, StrictUndefined; rendered into one user message
      Summarise for a {{ audience }} in one sentence:
      {{ text }}
    vars: { audience: adult }        # suite-level vars; case vars override
    vars_file: data/cases.csv        # more cases from CSV (header = var names) or JSONL rows;
                                     # a row's ``assert`` column/key adds checks to its case
    assert: [ { max_words: 50 } ]    # checks applied to every case, before the case's own
    defaults: { repeat: 3, threshold: 0.66, params: { temperature: 0 } }
    cases:
      - id: sun
        vars: { audience: child, text: "The sun is a star ..." }
        assert: [ { icontains: star } ]
        repeat: 5                    # also threshold, params, models (narrowing), tags
      - id: moon                     # adaptive: up to 10 repeats, stopping once decided
        repeat: { max: 10, until: decided, confidence: 0.95 }
        mock_response: "The sun is a star."      # what mock/ models answer
        mock_responses: { quick: "A star." }     # per offline model, overriding mock_response

Instead of ``prompt`` a suite may give ``messages``, a list of ``{role, content}`` whose
contents are templates. Every case is rendered when the file is loaded, so a missing
variable fails at collection, not halfway through a paid run.

Check arguments are templates too (``icontains: "{{ expected }}"``), rendered per case
with its vars before the check is validated: a string that is exactly one
``{{ expression }}`` keeps the value's type (``equals: "{{ total }}"`` stays the int 42),
any other renders to text. Keys, ``python:`` refs and ``llm_judge`` rubrics (the judge
renders those when it runs) are left as written.

Or it may give ``prompts``, a list of prompt variants; every case then runs for every
variant (and every model)::

    prompts:
      - "Summarise: {{ text }}"                    # id p1 (by position)
      - { id: terse, prompt: "One line: {{ text }}" }
      - { id: chat, messages: [ { role: user, content: "{{ text }}" } ] }

A case's ``mock_responses`` may then be keyed by ``<prompt>-<model>``, by model or by
prompt id (looked up in that order, then ``mock_response``).

A suite file is treated as untrusted input (it may come from a pull request):

* Templates render in jinja2's immutable sandbox (``render_template``; ``llm_judge``
  rubrics too): no ``__`` attributes, no route to Python internals, no mutation of lists
  and dicts. A render is also bounded: no value or output longer than
  ``MAX_RENDERED_CHARS`` characters (checked on ``*``, ``+``, ``%``, ``**``, calls, filters,
  ``namespace`` attributes and every output), ``range`` up to 100,000 numbers, and at most
  ``MAX_RENDER_SECONDS`` per template. A breach is ``unsafe template: ...``.
* YAML aliases may add at most ``MAX_ALIAS_EXPANSION`` nodes and characters when expanded,
  and may not refer to a node that contains them; an alias bomb fails at load time, fast.
* ``vars_file`` must be a regular file under the project root: ``load_suite``'s ``root``,
  by default the working directory (the pytest rootdir when pytest runs from there), or
  the suite file's own folder when the suite file lies outside the working directory.
  Relative paths are resolved against the suite's folder, and symlinks and ``..`` are
  followed before the check. An absolute path outside the root is accepted only when the
  environment variable ``HARNESS_ALLOW_ABSOLUTE_VARS_FILE=1`` is set; a relative one never.
* Files that are not UTF-8 fail naming the byte offset and line.

This module owns the ``Suite`` and ``Case`` data, ``load_suite`` (YAML with line numbers,
sandboxed jinja2 rendering of prompts and check arguments, a ``vars_file`` row's
``assert``, validation of every field and of every check spec through
``harness.checks.validate_check_spec``), ``render_template`` (the sandbox) and
``dump_suite`` (the data back in the YAML shape).
Every problem is a ``SuiteError`` whose message starts with the file path and names the
line, the case and the field when they are known.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import json
import os
import re
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

from harness.errors import BadRequestError
from harness.messages import validate_messages

__all__ = [
    "ALLOW_ABSOLUTE_VARS_FILE",
    "CASE_KEYS",
    "DEFAULTS_KEYS",
    "MAX_ALIAS_EXPANSION",
    "MAX_RENDERED_CHARS",
    "MAX_RENDER_SECONDS",
    "PROMPT_VARIANT_KEYS",
    "TOP_LEVEL_KEYS",
    "Case",
    "Suite",
    "SuiteError",
    "dump_suite",
    "load_suite",
    "render_template",
]

TOP_LEVEL_KEYS = (
    "description",
    "models",
    "prompt",
    "messages",
    "prompts",
    "vars",
    "vars_file",
    "assert",
    "defaults",
    "cases",
    "compare",
)
"""Keys a suite file may have at its top level."""

COMPARE_KEYS = ("models", "rubric", "judge")
"""Keys of ``compare:`` (a head-to-head between two models, ``harness.pairwise``)."""

CASE_KEYS = (
    "id",
    "vars",
    "assert",
    "repeat",
    "threshold",
    "params",
    "mock_response",
    "mock_responses",
    "models",
    "tags",
)
"""Keys a case may have."""

DEFAULTS_KEYS = ("repeat", "threshold", "params", "mock_response")
"""Keys of the ``defaults`` table (values every case inherits unless it sets its own)."""

PROMPT_VARIANT_KEYS = ("id", "prompt", "messages")
"""Keys a mapping entry of ``prompts`` may have (``id`` and one of the other two)."""

ALLOW_ABSOLUTE_VARS_FILE = "HARNESS_ALLOW_ABSOLUTE_VARS_FILE"
"""Set this environment variable to ``1`` to let an absolute ``vars_file`` path point
outside the project root."""

DEFAULT_REPEAT = 1
DEFAULT_THRESHOLD = 1.0

_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
_ANY_RE = re.compile(r".+", re.DOTALL)
_TAG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNDEFINED_RE = re.compile(r"^'(.+)' is undefined$")
_MESSAGES_WHERE_RE = re.compile(r"^(messages(?:\[(\d+)\])?\S*): (.*)$", re.DOTALL)


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file, line, case and field.

    The message reads ``<path>:<line>: case '<id>': <field>: <problem>``, with each part
    left out when it is not known.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str,
        line: int | None = None,
        case_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = path
        self.line = line
        self.case_id = case_id
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        """The full message: ``path:line: case 'id': field: problem``."""
        head = f"{self.path}:{self.line}" if self.line is not None else self.path
        parts = [head]
        if self.case_id is not None:
            parts.append(f"case {self.case_id!r}")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts) + ": " + self.problem

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True, slots=True)
class Case:
    """One case of a suite, fully resolved: defaults merged, messages rendered."""

    id: str
    vars: dict[str, Any]
    """The variables the templates saw: suite vars overlaid by the case's (or row's) vars."""
    messages: list[dict[str, Any]]
    """The rendered conversation sent to each model (with ``prompts``: the first variant's)."""
    checks: list[Any]
    """Assert specs, templates rendered: the suite-level ones first, then the case's own
    (or the ``vars_file`` row's)."""
    repeat: int = DEFAULT_REPEAT
    """How many repeats; with ``adaptive``, the most that may be asked."""
    threshold: float = DEFAULT_THRESHOLD
    """Pass rate over the repeats needed for the (case, model) item to pass."""
    adaptive: float | None = None
    """Adaptive repeats (``repeat: {max: N, until: decided}``): keep asking only until the
    verdict is decided at this confidence (``harness.sequential``); ``None``: always
    ``repeat`` repeats."""
    params: dict[str, Any] = field(default_factory=dict)
    """Call parameters: ``defaults.params`` overlaid by the case's ``params``."""
    mock_response: Any = None
    """Answer script for ``mock/`` models: a str, a dict or a list."""
    mock_responses: dict[str, Any] = field(default_factory=dict)
    """Per-model answer scripts (model name -> answer), overriding ``mock_response``."""
    models: list[str] | None = None
    """Per-case narrowing of the models, or None for the suite's (or the CLI's) models."""
    tags: list[str] = field(default_factory=list)
    line: int = field(default=0, compare=False)
    """1-based line of the case in the suite file; for ``vars_file`` rows, the line of
    ``vars_file:`` (``row`` says which row)."""
    row: int | None = field(default=None, compare=False)
    """The 1-based data row of ``vars_file`` this case came from, else None."""
    prompts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """With ``prompts:``, the rendered conversation of each variant, by variant id in file
    order; empty for a suite with one ``prompt`` or ``messages``."""

    def mock_for(self, model: str, prompt: str | None = None) -> Any:
        """The scripted answer an offline ``model`` gives for this case (or None).

        With a prompt variant, ``mock_responses`` is looked up by ``<prompt>-<model>``, then
        by model, then by prompt id; then ``mock_response``.
        """
        if prompt is not None:
            for key in (f"{prompt}-{model}", model, prompt):
                if key in self.mock_responses:
                    return self.mock_responses[key]
            return self.mock_response
        return self.mock_responses.get(model, self.mock_response)

    def messages_for(self, prompt: str | None) -> list[dict[str, Any]]:
        """The conversation of a prompt variant (``None``: the case's only one)."""
        return self.messages if prompt is None else self.prompts[prompt]


@dataclass(frozen=True, slots=True)
class Suite:
    """A loaded suite file."""

    path: Path
    description: str | None
    models: list[str] | None
    """The suite's default models, or None when the file names none."""
    cases: list[Case]
    prompt: str | None = None
    """The prompt template, when the suite uses ``prompt``."""
    message_templates: list[dict[str, Any]] | None = None
    """The message templates, when the suite uses ``messages``."""
    prompt_variants: list[dict[str, Any]] | None = None
    """The prompt variants, when the suite uses ``prompts``: each ``{id, prompt}`` or
    ``{id, messages}`` (ids made explicit), in file order."""
    source_text_lines: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """The file's text, one entry per line, for showing a case's source in reports."""
    compare: Any = None
    """``compare:``: a ``harness.pairwise.PairSpec`` (two models judged head to head)."""
    compare_line: int | None = field(default=None, compare=False)
    """The line of ``compare:`` in the file."""

    def case(self, case_id: str) -> Case:
        """The case with this id; ``KeyError`` naming the known ids if there is none."""
        for case in self.cases:
            if case.id == case_id:
                return case
        known = ", ".join(c.id for c in self.cases)
        raise KeyError(f"{self.path}: no case {case_id!r} (cases: {known})")

    @property
    def ids(self) -> list[str]:
        """The case ids, in file order (inline cases, then ``vars_file`` rows)."""
        return [c.id for c in self.cases]

    @property
    def prompt_ids(self) -> list[str]:
        """The prompt variant ids in file order; empty for a suite without ``prompts``."""
        return [str(v["id"]) for v in self.prompt_variants or []]


# --------------------------------------------------------------------------- YAML with lines


class _LineDict(dict[Any, Any]):
    """A mapping as loaded, with the line of the mapping, of each key and of each text."""

    line: int
    key_lines: dict[Any, int]
    text_lines: dict[Any, int]
    """For scalar values: the 1-based line where the text starts (after ``|`` / ``>``)."""


class _LineList(list[Any]):
    """A sequence as loaded, with the line of the sequence and of each item."""

    line: int
    item_lines: list[int]
    text_lines: dict[int, int]
    """For scalar items: the 1-based line where the text starts (after ``|`` / ``>``)."""


# libyaml's parser when PyYAML was built with it (~10x faster on large suites); the
# constructors below are Python either way, so line tracking works the same. When ``yaml``
# was imported afresh after its C module (pytester's in-process runs drop and re-import
# modules; a C extension is never re-imported), that parser builds nodes of the old
# ``yaml.nodes`` classes, which the new resolver does not recognise (every tag comes out
# None): then the pure-Python parser is used.
_C_NODES = getattr(getattr(yaml, "_yaml", None), "ScalarNode", None) is yaml.ScalarNode
_BaseLoader: type[yaml.SafeLoader] = (
    getattr(yaml, "CSafeLoader", yaml.SafeLoader) if _C_NODES else yaml.SafeLoader
)


MAX_ALIAS_EXPANSION = 1_000_000
"""How much YAML aliases may add to a suite file when expanded, in nodes plus characters
of text; more is refused at load time as an alias bomb ("billion laughs")."""


def _check_aliases(root: yaml.Node, text_size: int) -> None:
    """Refuse a document whose aliases expand past ``MAX_ALIAS_EXPANSION``, or recurse.

    The composer shares an aliased node rather than copying it, so the document is a graph
    of unique nodes. One post-order walk (iterative, each node once) gives each node's
    expanded size: 1, plus its text for a scalar, plus its children's expanded sizes. The
    unique nodes hold at most about twice the file's size, so a node whose expanded size
    passes ``2 * text_size + MAX_ALIAS_EXPANSION`` is expanded by aliases past the limit:
    the first such node (the innermost) is named by its line.
    """
    limit = 2 * text_size + MAX_ALIAS_EXPANSION
    size: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack[-1]
        ident = id(node)
        if ident in size:
            stack.pop()
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if ident not in open_ids:
            open_ids.add(ident)
            for child in children:
                if id(child) in open_ids:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        "this value contains an alias of itself (a recursive structure)",
                        child.start_mark,
                    )
                if id(child) not in size:
                    stack.append(child)
            continue
        stack.pop()
        open_ids.discard(ident)
        total = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        total += sum(size[id(child)] for child in children)
        if total > limit:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"aliases expand this value by more than {MAX_ALIAS_EXPANSION:,} nodes "
                "and characters (an alias bomb?)",
                node.start_mark,
            )
        size[ident] = total


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that builds ``_LineDict`` / ``_LineList`` and refuses duplicate keys.

    With ``text_size`` set (the file has anchors), the document's alias expansion is
    checked before anything is constructed (``_check_aliases``).
    """

    text_size: int | None = None

    def construct_document(self, node: yaml.Node) -> Any:
        """Construct the document once its aliases are known to expand within bounds."""
        if self.text_size is not None:
            _check_aliases(node, self.text_size)
        return super().construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct one node; a bad explicitly tagged value (``!!int x``) gets its line."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {node.tag} value {_short(node.value)}"
                + ("" if isinstance(exc, KeyError) else f": {exc}"),
                node.start_mark,
            ) from None


def _text_line(node: yaml.Node) -> int:
    block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
    return node.start_mark.line + 1 + (1 if block else 0)


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key_node.tag, key_node.value)
        if ident in seen:
            first = seen[ident].start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key_node.value!r} (first at line {first})",
                key_node.start_mark,
            )
        seen[ident] = key_node


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[_LineDict]:
    data = _LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    data.text_lines = {}
    yield data
    _refuse_duplicate_keys(node)
    data.update(loader.construct_mapping(node))
    for key_node, value_node in node.value:  # merged pairs first, so own keys win
        key = loader.construct_object(key_node)
        data.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode):
            data.text_lines[key] = _text_line(value_node)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterator[_LineList]:
    data = _LineList()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    data.text_lines = {
        i: _text_line(item)
        for i, item in enumerate(node.value)
        if isinstance(item, yaml.ScalarNode)
    }
    yield data
    data.extend(loader.construct_sequence(node))


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError) as exc:  # e.g. 2024-13-45 matches the regex
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid date/time {node.value!r}: {exc}", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _plain(value: Any, memo: dict[int, tuple[Any, Any]]) -> Any:
    """Ordinary dicts and lists, keeping shared (aliased) and cyclic parts shared.

    ``memo`` maps ``id(original)`` to ``(original, copy)``; holding the original keeps its
    id from being reused while the memo lives.
    """
    if not isinstance(value, dict | list):
        return value
    if id(value) in memo:
        return memo[id(value)][1]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        memo[id(value)] = (value, out)
        for k, v in value.items():
            out[k] = _plain(v, memo)
        return out
    items: list[Any] = []
    memo[id(value)] = (value, items)
    items.extend(_plain(v, memo) for v in value)
    return items


# --------------------------------------------------------------------------- loading context


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Where:
    """Where in the file a value sits, for errors."""

    line: int | None
    case_id: str | None = None
    prefix: str = ""
    """Prepended to field names (``defaults.``)."""
    note: str = ""
    """Appended to rendering problems (which ``vars_file`` row)."""


class _Loading:
    """State of one ``load_suite`` call: the path for messages and the plain-data memo."""

    def __init__(self, path: Path, where: str, root: str | os.PathLike[str] | None) -> None:
        self.path = path
        self.where = where
        self.root = root
        """``load_suite``'s ``root``: where a ``vars_file`` must be (``_vars_root``)."""
        self.memo: dict[int, tuple[Any, Any]] = {}

    def error(
        self, problem: str, line: int | None, case_id: str | None = None, field: str | None = None
    ) -> SuiteError:
        return SuiteError(problem, path=self.where, line=line, case_id=case_id, field=field)

    def plain(self, value: Any) -> Any:
        return _plain(value, self.memo)


def _key_line(data: Any, key: Any, default: int | None) -> int | None:
    if isinstance(data, _LineDict):
        return data.key_lines.get(key, default)
    return default


def _item_line(data: Any, index: int, default: int | None) -> int | None:
    if isinstance(data, _LineList) and index < len(data.item_lines):
        return data.item_lines[index]
    return default


def _node_line(data: Any, default: int | None) -> int | None:
    return data.line if isinstance(data, _LineDict | _LineList) else default


# --------------------------------------------------------------------------- field validators


def _check_keys(
    ctx: _Loading,
    data: dict[Any, Any],
    allowed: tuple[str, ...],
    w: _Where,
    field: str | None,
    phrase: str = "",
) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        names = ", ".join(_short(k) for k in unknown)
        raise ctx.error(
            f"unknown key{'s' if len(unknown) > 1 else ''} {names}{phrase}; "
            f"valid keys: {', '.join(allowed)}",
            _key_line(data, unknown[0], w.line),
            w.case_id,
            field,
        )


def _mapping(ctx: _Loading, value: Any, w: _Where, field: str, line: int | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.error(
            f"expected a mapping, got {_type_name(value)} {_short(value)}",
            line,
            w.case_id,
            w.prefix + field,
        )
    for key in value:
        if not isinstance(key, str):
            raise ctx.error(
                f"keys must be strings, got {_type_name(key)} {_short(key)} (quote it)",
                _key_line(value, key, line),
                w.case_id,
                w.prefix + field,
            )
    return value


def _int_at_least_1(ctx: _Loading, value: Any, w: _Where, field: str, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ctx.error(
            f"expected an integer >= 1, got {_short(value)}", line, w.case_id, w.prefix + field
        )
    return value


REPEAT_KEYS = ("max", "until", "confidence")
DEFAULT_CONFIDENCE = 0.95


def _repeat(ctx: _Loading, value: Any, w: _Where, line: int | None) -> tuple[int, float | None]:
    """``repeat``: an integer, or ``{max: N, until: decided, confidence: C}`` (adaptive)."""
    if not isinstance(value, dict):
        return _int_at_least_1(ctx, value, w, "repeat", line), None
    _check_keys(ctx, value, REPEAT_KEYS, w, "repeat")
    if "max" not in value:
        raise ctx.error(
            "adaptive repeats need 'max' (the most repeats to ask), e.g. "
            "{ max: 10, until: decided }",
            line,
            w.case_id,
            w.prefix + "repeat",
        )
    most = _int_at_least_1(ctx, value["max"], w, "repeat.max", _key_line(value, "max", line))
    until = value.get("until", "decided")
    if until != "decided":
        raise ctx.error(
            f"expected 'decided', got {_short(until)}",
            _key_line(value, "until", line),
            w.case_id,
            w.prefix + "repeat.until",
        )
    confidence = value.get("confidence", DEFAULT_CONFIDENCE)
    at = _key_line(value, "confidence", line)
    if not (
        isinstance(confidence, int | float)
        and not isinstance(confidence, bool)
        and 0.5 <= confidence < 1.0
    ):
        raise ctx.error(
            f"expected a number from 0.5 to below 1 (e.g. 0.95), got {_short(confidence)}",
            at,
            w.case_id,
            w.prefix + "repeat.confidence",
        )
    return most, float(confidence)


def _fraction(ctx: _Loading, value: Any, w: _Where, field: str, line: int | None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ctx.error(
            f"expected a number between 0 and 1, got {_short(value)}",
            line,
            w.case_id,
            w.prefix + field,
        )
    return float(value)


def _string_list(
    ctx: _Loading, value: Any, w: _Where, field: str, line: int | None, pattern: re.Pattern[str]
) -> list[str]:
    if not isinstance(value, list):
        hint = f" (write [{value}])" if isinstance(value, str) else ""
        raise ctx.error(
            f"expected a list of strings, got {_type_name(value)} {_short(value)}{hint}",
            line,
            w.case_id,
            w.prefix + field,
        )
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or not pattern.fullmatch(item):
            need = (
                "a non-empty string" if pattern is _ANY_RE else f"a name matching {pattern.pattern}"
            )
            raise ctx.error(
                f"expected {need}, got {_short(item)}",
                _item_line(value, i, line),
                w.case_id,
                f"{w.prefix}{field}[{i}]",
            )
        out.append(item)
    return out


def _mock_response(ctx: _Loading, value: Any, w: _Where, field: str, line: int | None) -> Any:
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ctx.error("expected a non-empty list of answers", line, w.case_id, w.prefix + field)
    for i, item in enumerate(items):
        if not isinstance(item, str | dict):
            at = f"{w.prefix}{field}[{i}]" if isinstance(value, list) else w.prefix + field
            raise ctx.error(
                f"expected a string or a mapping (an answer), got {_type_name(item)} "
                f"{_short(item)}",
                _item_line(value, i, line),
                w.case_id,
                at,
            )
    return ctx.plain(value)


@dataclass(frozen=True, slots=True)
class _CheckSource:
    """One ``assert:`` entry as written, with where it is.

    ``spec`` is the validated plain spec of an entry without templates; an entry with
    templates (``templated``) is rendered and validated per case (``_resolve_checks``).
    """

    raw: Any
    field: str
    """``assert[i]`` (with the ``_Where`` prefix), for errors."""
    line: int | None
    templated: bool
    spec: Any = None


def _check_sources(ctx: _Loading, value: Any, w: _Where, line: int | None) -> list[_CheckSource]:
    """The entries of an ``assert:`` list; those without templates validated already."""
    if not isinstance(value, list):
        raise ctx.error(
            f"expected a list of checks (e.g. '- icontains: star'), got {_type_name(value)} "
            f"{_short(value)}",
            line,
            w.case_id,
            w.prefix + "assert",
        )
    sources: list[_CheckSource] = []
    for i, raw in enumerate(value):
        source = _CheckSource(
            raw, f"{w.prefix}assert[{i}]", _item_line(value, i, line), _is_templated(raw)
        )
        if not source.templated:
            spec = _validated(ctx, ctx.plain(raw), source, w)
            source = _CheckSource(source.raw, source.field, source.line, False, spec)
        sources.append(source)
    return sources


def _validated(
    ctx: _Loading,
    plain: Any,
    source: _CheckSource,
    w: _Where,
    rendered: list[tuple[str, str, int | None]] | None = None,
) -> Any:
    """``plain`` once ``validate_check_spec`` accepts it; else a ``SuiteError``.

    ``rendered``: the (field, template, line) of each argument rendered from a template;
    with just one, an error names that field and its template.
    """
    from harness.checks import CheckSpecError, validate_check_spec

    field, line, after = source.field, source.line, ""
    if rendered:
        after = " (after rendering its templates with the case's vars)"
        if len(rendered) == 1:
            field, template, line = rendered[0]
            after = f" (rendered from {_short(template)})"
    try:
        validate_check_spec(plain)
    except CheckSpecError as exc:
        raise ctx.error(f"{exc}{after}{w.note}", line, w.case_id, field) from None
    except Exception as exc:  # a check validator must never surface as a traceback
        raise ctx.error(
            f"invalid check {_short(plain)}: {type(exc).__name__}: {exc}{after}{w.note}",
            line,
            w.case_id,
            field,
        ) from None
    return plain


def _resolve_checks(
    ctx: _Loading, sources: list[_CheckSource], variables: Mapping[str, Any], w: _Where
) -> list[Any]:
    """The plain specs of ``sources`` for one case: templates rendered with its vars.

    A built-in judge rubric's inputs that default to a case var (factuality's ``reference``,
    faithfulness's ``context``) must be there: checked here, where the case's vars are known.
    """
    from harness.checks.judge import judge_config_problem

    specs: list[Any] = []
    for source in sources:
        if not source.templated:
            spec = source.spec
        else:
            seen: list[tuple[str, str, int | None]] = []
            rendered = _render_spec(ctx, source, variables, w, seen)
            spec = _validated(ctx, ctx.plain(rendered), source, w, seen)
        problem = judge_config_problem(spec, variables)
        if problem is not None:
            raise ctx.error(problem + w.note, source.line, w.case_id, source.field)
        specs.append(spec)
    return specs


def _checks(
    ctx: _Loading, value: Any, w: _Where, line: int | None, variables: Mapping[str, Any]
) -> list[Any]:
    """An ``assert:`` list of a case (or a ``vars_file`` row), rendered and validated."""
    return _resolve_checks(ctx, _check_sources(ctx, value, w, line), variables, w)


# --------------------------------------------------------------------------- templated checks


def _has_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _template_args(spec: Any) -> tuple[str, Any, frozenset[str]] | None:
    """A spec's name, its argument and the argument keys left unrendered; None: no template.

    ``python:`` refs are never rendered, nor ``llm_judge``'s rubric: the judge renders its
    rubric with the case's vars when it runs.
    """
    if not isinstance(spec, dict) or len(spec) != 1:
        return None
    ((key, arg),) = spec.items()
    if not isinstance(key, str):
        return None
    name = key.removeprefix("not-")
    if name == "python" or (name == "llm_judge" and not isinstance(arg, dict)):
        return None
    return key, arg, frozenset({"rubric"} if name == "llm_judge" else ())


def _is_templated(spec: Any) -> bool:
    found = _template_args(spec)
    if found is None:
        return False
    _, arg, skip = found
    if isinstance(arg, dict):
        return any(_holds_template(v) for k, v in arg.items() if k not in skip)
    return _holds_template(arg)


def _holds_template(value: Any) -> bool:
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_template(item):
                return True
        elif isinstance(item, dict | list) and id(item) not in seen:
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
    return False


def _render_spec(
    ctx: _Loading,
    source: _CheckSource,
    variables: Mapping[str, Any],
    w: _Where,
    seen: list[tuple[str, str, int | None]],
) -> Any:
    """The spec with every template in its argument rendered (keys are not templates)."""
    found = _template_args(source.raw)
    assert found is not None
    key, arg, skip = found
    field = f"{source.field}.{key}"
    line = _key_line(source.raw, key, source.line)
    if isinstance(arg, dict):
        rendered = {
            k: v
            if k in skip
            else _render_value(ctx, v, variables, w, f"{field}.{k}", _key_line(arg, k, line), seen)
            for k, v in arg.items()
        }
        return {key: rendered}
    return {key: _render_value(ctx, arg, variables, w, field, line, seen)}


def _render_value(
    ctx: _Loading,
    value: Any,
    variables: Mapping[str, Any],
    w: _Where,
    field: str,
    line: int | None,
    seen: list[tuple[str, str, int | None]],
) -> Any:
    if isinstance(value, str):
        if not _has_template(value):
            return value
        seen.append((field, value, line))
        return _render_arg(ctx, value, variables, w, field, line)
    if isinstance(value, dict):
        return {
            k: _render_value(ctx, v, variables, w, f"{field}.{k}", _key_line(value, k, line), seen)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _render_value(ctx, v, variables, w, f"{field}[{i}]", _item_line(value, i, line), seen)
            for i, v in enumerate(value)
        ]
    return value


_EXPRESSION_RE = re.compile(r"\A\s*\{\{(?![-+])(.*?)(?<![-+])\}\}\s*\Z", re.DOTALL)


def _render_arg(
    ctx: _Loading,
    source: str,
    variables: Mapping[str, Any],
    w: _Where,
    field: str,
    line: int | None,
) -> Any:
    """A templated check argument: one ``{{ expr }}`` keeps its value's type, else text."""
    where = _Where(line, w.case_id, note=w.note)
    try:
        expression, template = _compile_arg(source)
    except TemplateSyntaxError as exc:
        raise ctx.error(
            f"template syntax error: {exc.message or exc}{w.note}", line, w.case_id, field
        ) from None
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        raise ctx.error(
            f"cannot compile template: {type(exc).__name__}: {exc}{w.note}",
            line,
            w.case_id,
            field,
        ) from None
    if template is not None:
        return _render_one(ctx, template, dict(variables), where, field)
    try:
        return _check_value(_evaluate_expression(expression, variables))
    except _NotData as exc:
        raise ctx.error(f"{exc}{w.note}", line, w.case_id, field) from None
    except Exception as exc:
        raise _render_error(ctx, exc, variables, where, field) from None


@functools.lru_cache(maxsize=1024)
def _compile_arg(source: str) -> tuple[Any, Template | None]:
    """A check argument's template, compiled once per distinct source (rows repeat them).

    ``(expression, None)`` when ``source`` is exactly one ``{{ expr }}``, else
    ``(None, template)``.
    """
    match = _EXPRESSION_RE.match(source)
    if match is not None:
        body = _ENV.parse(source.strip()).body
        if (  # not e.g. "{{ a }} and {{ b }}"
            len(body) == 1
            and isinstance(body[0], nodes.Output)
            and len(body[0].nodes) == 1
            and not isinstance(body[0].nodes[0], nodes.TemplateData)
        ):
            return _ENV.compile_expression(match.group(1), undefined_to_none=False), None
    return None, _ENV.from_string(source)


def _evaluate_expression(expression: Any, variables: Mapping[str, Any]) -> Any:
    """Evaluate a compiled expression in the sandbox, within the render's bounds."""
    token = _DEADLINE.set(_clock() + MAX_RENDER_SECONDS)
    try:
        value = expression(dict(variables))
        if isinstance(value, Undefined):
            str(value)  # StrictUndefined raises the UndefinedError naming the variable
        _tick()
        return _bounded(value, "the value")
    finally:
        _DEADLINE.reset(token)


def _check_value(value: Any) -> Any:
    """A rendered value as plain data (a tuple becomes a list); ``_NotData`` otherwise."""
    if isinstance(value, str):
        return str(value)  # Markup and other str subclasses as plain text
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_check_value(v) for v in value]
    if isinstance(value, dict):
        return {_check_value(k): _check_value(v) for k, v in value.items()}
    raise _NotData(
        f"the template gives a {type(value).__name__}, not text, a number, a boolean, "
        "a list or a mapping"
    )


class _NotData(TypeError):
    """A ``{{ expr }}`` check argument gave a value that is not plain data."""


def _render_error(
    ctx: _Loading, exc: Exception, variables: Mapping[str, Any], w: _Where, field: str
) -> SuiteError:
    """The ``SuiteError`` for a template that failed to render (``exc``), naming the field."""
    if isinstance(exc, SecurityError):
        return ctx.error(f"unsafe template: {exc}{w.note}", w.line, w.case_id, field)
    if isinstance(exc, UndefinedError):
        text = exc.message or str(exc)
        match = _UNDEFINED_RE.match(text)
        known = ", ".join(sorted(map(str, variables))) or "none"
        problem = (
            f"undefined variable {match.group(1)!r} (vars: {known})"
            if match
            else f"undefined value: {text} (vars: {known})"
        )
        return ctx.error(problem + w.note, w.line, w.case_id, field)
    return ctx.error(
        f"cannot render template: {type(exc).__name__}: {exc}{w.note}", w.line, w.case_id, field
    )


# --------------------------------------------------------------------------- sandbox

MAX_RENDERED_CHARS = 10_000_000
"""The most characters one rendered template (or any value made while rendering it) may
have; more is refused as an unsafe template."""

MAX_RENDER_SECONDS = 10.0
"""How long rendering one template may take; checked at every loop step, call, filter,
operator and output, so a template that loops without end is refused rather than hangs."""

_MAX_RANGE = 100_000
"""The longest ``range()`` or ``slice`` count a template may ask for (jinja2's sandbox
limit)."""

_DEADLINE: ContextVar[float | None] = ContextVar("harness_render_deadline", default=None)

_clock: Callable[[], float] = time.monotonic
"""The render deadline's clock; tests replace it to run out of time without waiting."""


def _tick() -> None:
    """Refuse to go on once the current render has used up ``MAX_RENDER_SECONDS``."""
    deadline = _DEADLINE.get()
    if deadline is not None and _clock() > deadline:
        raise SecurityError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


def _weight(value: Any, limit: int | None = None) -> int:
    """About how many characters ``value`` takes as text, shared parts counted every time.

    The walk stops as soon as the count passes ``limit``, so it is bounded even for a
    structure built to be huge when printed (``[[x] * 1000] * 1000``) or one that contains
    itself.
    """
    if limit is None:
        limit = MAX_RENDERED_CHARS
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            total += 8
        elif isinstance(item, int):
            total += 2 + item.bit_length() // 3
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, Namespace):
            total += 16
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        else:
            total += 16
        if total > limit:
            break
    return total


def _refuse(what: str) -> SecurityError:
    return SecurityError(f"{what} would be longer than {MAX_RENDERED_CHARS:,} characters")


def _bounded(value: Any, what: str = "a value") -> Any:
    if _weight(value) > MAX_RENDERED_CHARS:
        raise _refuse(what)
    return value


def _size(value: Any, what: str) -> Any:
    """An int argument that sets an output size (a width, a count)."""
    if isinstance(value, int) and value > MAX_RENDERED_CHARS:
        raise _refuse(what)
    return value


_PERCENT_RE = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(fmt: str, args: Any) -> None:
    """``fmt % args`` (the ``%`` operator, the ``format`` filter) within the size limit."""
    star = False
    for match in _PERCENT_RE.finditer(fmt):
        for number in match.groups():
            if number == "*":
                star = True
            elif number and (len(number) > 9 or int(number) > MAX_RENDERED_CHARS):
                raise _refuse(f"'%' formatting with width {number[:12]}")
    values = args if isinstance(args, tuple) else (args,)
    if star:
        for v in values:
            _size(v, "'%' formatting with width '*'")
    _bounded(values, "'%' formatting")


_FORMAT_FIELD_RE = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def _check_str_format(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """``fmt.format(...)`` within the size limit: no huge widths, literal or nested."""
    nested = False
    for match in _FORMAT_FIELD_RE.finditer(fmt):
        _, colon, spec = match.group(1).partition(":")
        if not colon:
            continue
        nested = nested or "{" in spec
        for number in re.findall(r"\d+", spec):
            if len(number) > 9 or int(number) > MAX_RENDERED_CHARS:
                raise _refuse(f"str.format with width {number[:12]}")
    if nested:
        for v in (*args, *kwargs.values()):
            _size(v, "str.format with a nested width")
    _bounded((args, kwargs), "str.format")


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(s) + 1 if not old else s.count(old)
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        if len(s) + hits * len(new) > MAX_RENDERED_CHARS:
            raise _refuse("replace()")


def _check_join(sep: Any, items: Any) -> list[Any]:
    """The items as a list, once the joined text is known to fit."""
    listed = list(_bounded(items, "join()") if isinstance(items, list | tuple) else items)
    _bounded(listed, "join()")
    if isinstance(sep, str) and len(sep) * len(listed) > MAX_RENDERED_CHARS:
        raise _refuse("join()")
    return listed


def _str_method_check(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Checks before a ``str`` method that can make a much longer string than its input."""
    s, name = method.__self__, method.__name__
    if name in ("center", "ljust", "rjust", "zfill"):
        for v in (*args[:1], *kwargs.values()):
            _size(v, f"str.{name}()")
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int) and tab * (s.count("\t") + 1) > MAX_RENDERED_CHARS:
            raise _refuse("str.expandtabs()")
    elif name == "replace":
        _check_replace(s, *args[:3])
    elif name == "join" and args:
        _check_join(s, args[0])
    elif name not in _LINEAR_STR_METHODS:
        if len(s) * (1 + _weight((args, kwargs))) > MAX_RENDERED_CHARS:
            raise _refuse(f"str.{name}()")


_LINEAR_STR_METHODS = frozenset(
    """capitalize casefold count encode endswith find index isalnum isalpha isascii
    isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper
    lower lstrip partition removeprefix removesuffix rfind rindex rpartition rsplit rstrip
    split splitlines startswith strip swapcase title upper""".split()
)


def _filter_check(name: str, bound: inspect.BoundArguments) -> None:
    """Checks before a jinja2 filter that can make much more than it is given."""
    a = bound.arguments
    if name == "center":
        _size(a.get("width", 80), "center")
    elif name == "indent":
        width, s = a.get("width", 4), a.get("s")
        lines = s.count("\n") + 1 if isinstance(s, str) else 1
        each = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if each * lines > MAX_RENDERED_CHARS:
            raise _refuse("indent")
    elif name == "wordwrap":
        s, width, wrap = a.get("s"), a.get("width", 79), a.get("wrapstring") or "\n"
        if isinstance(s, str) and isinstance(width, int) and isinstance(wrap, str):
            lines = len(s) // max(width, 1) + s.count("\n") + 1
            if len(s) + lines * len(wrap) > MAX_RENDERED_CHARS:
                raise _refuse("wordwrap")
    elif name == "replace":
        _check_replace(a.get("s"), a.get("old"), a.get("new"), a.get("count"))
    elif name == "format":
        if isinstance(a.get("value"), str):
            _check_percent(a["value"], a.get("kwargs") or tuple(a.get("args", ())))
    elif name == "join":
        value = a.get("value")
        if isinstance(value, list | tuple):
            _check_join(a.get("d", ""), value)
    elif name == "batch":
        _size(a.get("linecount"), "batch")
    elif name == "slice":
        slices = a.get("slices")
        if isinstance(slices, int) and slices > _MAX_RANGE:
            raise SecurityError(f"slice into more than {_MAX_RANGE:,} parts")
    elif name == "tojson":
        _size(a.get("indent"), "tojson")
    elif name == "sum":
        items = a.get("iterable")
        if isinstance(items, list | tuple) and not all(isinstance(x, int | float) for x in items):
            _bounded(items, "sum")
            if len(items) > 1000:  # each step copies the sum so far
                raise SecurityError("sum of more than 1,000 sequences")


_CONSTANT_TIME_FILTERS = frozenset(("length", "count", "first", "last", "default", "d", "attr"))
"""Filters that neither build nor print their input: no need to weigh it (a loop calling
``items|length`` stays linear)."""

_SIZE_CHECKED_FILTERS = frozenset(
    ("center", "indent", "wordwrap", "replace", "format", "join", "batch", "slice")
    + ("tojson", "sum")
)


def _guard_filter(name: str, func: Any) -> Any:
    """``func`` (a filter) with the size limit checked on its arguments and result."""
    signature = inspect.signature(func) if name in _SIZE_CHECKED_FILTERS else None
    # jinja2's async-variant filters take an eval context their signature does not show
    skip = 0
    if signature is not None and getattr(func, "jinja_pass_arg", None) is not None:
        first = next(iter(signature.parameters), None)
        skip = 0 if first in ("environment", "eval_ctx", "context", "env") else 1

    weigh_input = name not in _CONSTANT_TIME_FILTERS

    @functools.wraps(func)  # keeps ``jinja_pass_arg`` (pass_context etc.)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if weigh_input:
            _bounded((args, kwargs), f"the input of filter {name!r}")
        if signature is not None:
            try:
                bound = signature.bind(*args[skip:], **kwargs)
            except TypeError:
                pass  # the filter itself raises the proper error
            else:
                _filter_check(name, bound)
        result = func(*args, **kwargs)
        if isinstance(result, str | list | tuple | dict | set):
            _bounded(result, f"the result of filter {name!r}")
        return result

    return guarded


def _safe_range(*args: int) -> range:
    _tick()
    numbers = range(*args)
    if len(numbers) > _MAX_RANGE:
        raise SecurityError(f"range() of {len(numbers):,} numbers; at most {_MAX_RANGE:,}")
    return numbers


def _safe_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    if n > 100 or max > 1000:
        raise SecurityError("lipsum() of more than 100 paragraphs of 1000 words")
    return str(generate_lorem_ipsum(n, html, min, max))


class _Namespace(Namespace):
    """``namespace()``: a value set on it must fit the size limit (no doubling in loops)."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - as jinja2's
        _bounded((args[1:], kwargs), "namespace()")
        Namespace.__init__(*args, **kwargs)

    def __setitem__(self, name: str, value: Any) -> None:
        _tick()
        super().__setitem__(name, _bounded(value, f"namespace attribute {name!r}"))


def _finalize(value: Any) -> Any:
    """Every ``{{ ... }}`` output passes here before it is turned into text."""
    _tick()
    if not isinstance(value, str):
        _bounded(value, "an output")
    return value


def _concat(parts: Iterable[str]) -> str:
    """``"".join`` for all output (the template, macros, blocks), stopping at the limit."""
    buffer: list[str] = []
    total = 0
    for part in parts:
        total += len(part)
        if total > MAX_RENDERED_CHARS:
            raise _refuse("the rendered text")
        buffer.append(part)
    return "".join(buffer)


class _LoopTicks(CodeGenerator):
    """Compiles every ``{% for %}`` to check the render's deadline as it goes round."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, "_harness_loop", [], [], None, None, lineno=loop.iter.lineno
            )
        super().visit_Template(node, frame)


def _loop_ticks(iterable: Any) -> Iterator[Any]:
    for n, item in enumerate(iterable):
        if not n & 255:
            _tick()
        yield item


class _Sandbox(ImmutableSandboxedEnvironment):
    """The jinja2 environment every suite template and ``llm_judge`` rubric renders in.

    jinja2's immutable sandbox (no ``__`` attributes, no calls that reach Python
    internals, no mutation of lists and dicts), plus bounds on what a render may build:
    ``MAX_RENDERED_CHARS`` for any value and the output, ``MAX_RENDER_SECONDS`` for time.
    A breach raises ``SecurityError``.
    """

    code_generator_class = _LoopTicks
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            finalize=_finalize,
        )
        self.concat = _concat  # type: ignore[method-assign]
        self.globals.update(range=_safe_range, lipsum=_safe_lipsum, namespace=_Namespace)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["_harness_loop"] = _loop_ticks

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``+`` and ``%`` with their results' sizes checked first."""
        _tick()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if times > 0 and _weight(seq) * times > MAX_RENDERED_CHARS:
                        raise _refuse("a repetition ('*')")
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                if _weight(left) + _weight(right) > MAX_RENDERED_CHARS:
                    raise _refuse("a concatenation ('+')")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right * left.bit_length() > 100_000
            ):
                raise SecurityError("a power ('**') of more than 100,000 bits")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A call from a template (a macro, a global, a method), its size checked."""
        _tick()
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str):
            _str_method_check(__obj, args, kwargs)
        else:
            _bounded((args, kwargs), "the arguments of a call")
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple | dict | set):
            _bounded(result, "the result of a call")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` / ``format_map``, sandboxed by jinja2 and size-checked here."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            _tick()
            if is_map and len(args) == 1 and isinstance(args[0], dict):
                _check_str_format(fmt, (), args[0])
            else:
                _check_str_format(fmt, args, kwargs)
            return _bounded(wrapped(*args, **kwargs), "str.format")  # type: ignore[no-any-return]

        return checked


_ENV = _Sandbox()


def render_template(template: Template | str, variables: Mapping[str, Any]) -> str:
    """Render a suite template (or a rubric) in the sandbox, within its size and time bounds.

    Args:
        template: a template compiled by this module's environment, or its source.
        variables: the variables it sees.

    Returns:
        The rendered text.

    Raises:
        jinja2.TemplateError: ``SecurityError`` for anything unsafe (a sandbox breach, a
            value past ``MAX_RENDERED_CHARS``, a render past ``MAX_RENDER_SECONDS``),
            ``UndefinedError`` for a missing variable, ``TemplateSyntaxError`` for bad
            source; other exceptions the template's own operations raise propagate.
    """
    compiled = _ENV.from_string(template) if isinstance(template, str) else template
    token = _DEADLINE.set(_clock() + MAX_RENDER_SECONDS)
    try:
        return compiled.render(variables)
    finally:
        _DEADLINE.reset(token)


# --------------------------------------------------------------------------- templates


@dataclass
class _Templates:
    """The suite's compiled templates: a prompt, or one entry per message."""

    prompt: Template | None
    prompt_source: str | None
    message_sources: list[dict[str, Any]] | None
    message_lines: list[int | None]
    compiled: list[dict[str, Any]]
    """Per message: ``{"content": Template}`` or ``{"parts": {j: Template}}``."""
    prefix: str = ""
    """What error fields start with: ``prompts[<id>].`` for a prompt variant."""
    field: str = "prompt"
    """The field a ``prompt`` template's errors name."""


def _compile(ctx: _Loading, source: str, field: str, first_line: int | None) -> Template:
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        lineno = exc.lineno or 1
        line = first_line + lineno - 1 if first_line is not None else None
        raise ctx.error(
            f"template syntax error (template line {lineno}): {exc.message or exc}",
            line,
            None,
            field,
        ) from None
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        raise ctx.error(
            f"cannot compile template: {type(exc).__name__}: {exc}", first_line, None, field
        ) from None


def _prompt_templates(
    ctx: _Loading, data: _LineDict, field: str = "prompt", prefix: str = ""
) -> _Templates:
    first = data.text_lines.get("prompt", _key_line(data, "prompt", None))
    line = _key_line(data, "prompt", data.line)
    return _prompt_template(ctx, data["prompt"], line, first, field, prefix)


def _prompt_template(
    ctx: _Loading,
    prompt: Any,
    line: int | None,
    first: int | None,
    field: str,
    prefix: str = "",
) -> _Templates:
    """One prompt template; ``line`` is its key's, ``first`` the line its text starts on."""
    if not isinstance(prompt, str):
        raise ctx.error(
            f"expected a string (a jinja2 template), got {_type_name(prompt)} {_short(prompt)}",
            line,
            None,
            field,
        )
    template = _compile(ctx, prompt, field, first)
    return _Templates(template, prompt, None, [], [], prefix, field)


def _message_templates(ctx: _Loading, data: _LineDict, prefix: str = "") -> _Templates:
    value = data["messages"]
    line = _key_line(data, "messages", data.line)
    if not isinstance(value, list) or not value:
        raise ctx.error(
            "expected a non-empty list of {role, content} messages, got "
            f"{_type_name(value)} {_short(value)}",
            line,
            None,
            prefix + "messages",
        )
    compiled: list[dict[str, Any]] = []
    lines: list[int | None] = []
    for i, message in enumerate(value):
        at_line = _item_line(value, i, line)
        lines.append(at_line)
        if not isinstance(message, dict):
            raise ctx.error(
                f"expected a mapping with 'role' and 'content', got {_type_name(message)} "
                f"{_short(message)}",
                at_line,
                None,
                f"{prefix}messages[{i}]",
            )
        compiled.append(_compile_message(ctx, message, i, at_line, prefix))
    sources = [ctx.plain(m) for m in value]
    return _Templates(None, None, sources, lines, compiled, prefix)


def _compile_message(
    ctx: _Loading, message: dict[str, Any], i: int, line: int | None, prefix: str = ""
) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        first = message.text_lines.get("content", line) if isinstance(message, _LineDict) else line
        return {"content": _compile(ctx, content, f"{prefix}messages[{i}].content", first)}
    parts: dict[int, Template] = {}
    if isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    first = (
                        part.text_lines.get("text", line) if isinstance(part, _LineDict) else line
                    )
                    field = f"{prefix}messages[{i}].content[{j}].text"
                    parts[j] = _compile(ctx, text, field, first)
    return {"parts": parts}


def _render_one(
    ctx: _Loading,
    template: Template,
    variables: dict[str, Any],
    w: _Where,
    field: str,
) -> str:
    try:
        return render_template(template, variables)
    except Exception as exc:
        raise _render_error(ctx, exc, variables, w, field) from None


def _render(
    ctx: _Loading, templates: _Templates, variables: dict[str, Any], w: _Where
) -> list[dict[str, Any]]:
    if templates.prompt is not None:
        text = _render_one(ctx, templates.prompt, variables, w, templates.field)
        if text.endswith("\n"):
            text = text[:-1]
        rendered: list[Any] = [{"role": "user", "content": text}]
    else:
        rendered = [
            _render_message(ctx, source, compiled, i, variables, w, templates.prefix)
            for i, (source, compiled) in enumerate(
                zip(templates.message_sources or [], templates.compiled, strict=True)
            )
        ]
    try:
        return validate_messages(rendered, "messages")
    except BadRequestError as exc:
        match = _MESSAGES_WHERE_RE.match(exc.message)
        field, problem, line = "messages", exc.message, w.line
        if match:
            field, problem = match.group(1), match.group(3)
            if match.group(2) is not None:
                line = templates.message_lines[int(match.group(2))] or w.line
        raise ctx.error(problem + w.note, line, w.case_id, templates.prefix + field) from None


def _render_message(
    ctx: _Loading,
    source: dict[str, Any],
    compiled: dict[str, Any],
    i: int,
    variables: dict[str, Any],
    w: _Where,
    prefix: str = "",
) -> dict[str, Any]:
    message = dict(source)
    if "content" in compiled:
        message["content"] = _render_one(
            ctx, compiled["content"], variables, w, f"{prefix}messages[{i}].content"
        )
    elif compiled["parts"]:
        parts = list(message["content"])
        for j, template in compiled["parts"].items():
            field = f"{prefix}messages[{i}].content[{j}].text"
            text = _render_one(ctx, template, variables, w, field)
            parts[j] = {**parts[j], "text": text}
        message["content"] = parts
    return message


# --------------------------------------------------------------------------- suite level


@dataclass
class _Defaults:
    repeat: int = DEFAULT_REPEAT
    adaptive: float | None = None
    threshold: float = DEFAULT_THRESHOLD
    params: dict[str, Any] = field(default_factory=dict)
    mock_response: Any = None


def _defaults(ctx: _Loading, data: _LineDict) -> _Defaults:
    if "defaults" not in data:
        return _Defaults()
    line = _key_line(data, "defaults", data.line)
    table = _mapping(ctx, data["defaults"], _Where(line), "defaults", line)
    w = _Where(line, prefix="defaults.")
    _check_keys(ctx, table, DEFAULTS_KEYS, w, "defaults")
    out = _Defaults()
    if "repeat" in table:
        out.repeat, out.adaptive = _repeat(
            ctx, table["repeat"], w, _key_line(table, "repeat", line)
        )
    if "threshold" in table:
        out.threshold = _fraction(
            ctx, table["threshold"], w, "threshold", _key_line(table, "threshold", line)
        )
    if "params" in table:
        at = _key_line(table, "params", line)
        out.params = ctx.plain(_mapping(ctx, table["params"], w, "params", at))
    if "mock_response" in table:
        at = _key_line(table, "mock_response", line)
        out.mock_response = _mock_response(ctx, table["mock_response"], w, "mock_response", at)
    return out


@dataclass
class _Shared:
    """What every case inherits from the suite level."""

    vars: dict[str, Any]
    checks: list[_CheckSource]
    """The suite-level ``assert:`` entries; templated ones are rendered per case."""
    defaults: _Defaults
    templates: _Templates
    variants: list[tuple[str, _Templates]] = field(default_factory=list)
    """With ``prompts``: each variant's id and templates (``templates`` is the first's)."""
    variant_sources: list[dict[str, Any]] | None = None
    """With ``prompts``: each variant as ``{id, prompt}`` or ``{id, messages}``."""

    def render(
        self, ctx: _Loading, variables: dict[str, Any], w: _Where
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """A case's conversation and, with ``prompts``, each variant's."""
        if not self.variants:
            return _render(ctx, self.templates, variables, w), {}
        rendered = {vid: _render(ctx, t, variables, w) for vid, t in self.variants}
        return next(iter(rendered.values())), rendered


def _variants(
    ctx: _Loading, data: _LineDict
) -> tuple[list[tuple[str, _Templates]], list[dict[str, Any]]]:
    """The ``prompts`` list: each entry's id and compiled templates, and its source."""
    value = data["prompts"]
    line = _key_line(data, "prompts", data.line)
    if not isinstance(value, list) or not value:
        raise ctx.error(
            "expected a non-empty list of prompt variants (template strings, {id, prompt} or "
            f"{{id, messages}}), got {_type_name(value)} {_short(value)}",
            line,
            None,
            "prompts",
        )
    variants: list[tuple[str, _Templates]] = []
    sources: list[dict[str, Any]] = []
    first_at: dict[str, int | None] = {}
    for i, entry in enumerate(value):
        at = _item_line(value, i, line)
        if isinstance(entry, str):
            vid = f"p{i + 1}"
            first = value.text_lines.get(i, at) if isinstance(value, _LineList) else at
            templates = _prompt_template(ctx, entry, at, first, f"prompts[{vid}]")
            source: dict[str, Any] = {"id": vid, "prompt": entry}
        elif isinstance(entry, _LineDict):
            vid = _variant_id(ctx, entry, i, at)
            _check_keys(ctx, entry, PROMPT_VARIANT_KEYS, _Where(at), f"prompts[{vid}]")
            prefix = f"prompts[{vid}]."
            if ("prompt" in entry) == ("messages" in entry):
                raise ctx.error(
                    "give either 'prompt' or 'messages', not both"
                    if "prompt" in entry
                    else "missing 'prompt' (a template) or 'messages' (a list of {role, content})",
                    at,
                    None,
                    f"prompts[{vid}]",
                )
            if "prompt" in entry:
                templates = _prompt_templates(ctx, entry, prefix + "prompt", prefix)
                source = {"id": vid, "prompt": entry["prompt"]}
            else:
                templates = _message_templates(ctx, entry, prefix)
                source = {"id": vid, "messages": templates.message_sources}
        else:
            raise ctx.error(
                "expected a template string, {id, prompt} or {id, messages}, got "
                f"{_type_name(entry)} {_short(entry)}",
                at,
                None,
                f"prompts[{i}]",
            )
        if vid in first_at:
            where = f" (first at line {first_at[vid]})" if first_at[vid] else ""
            raise ctx.error(f"duplicate prompt id {vid!r}{where}", at, None, f"prompts[{i}].id")
        first_at[vid] = at
        variants.append((vid, templates))
        sources.append(source)
    return variants, sources


def _variant_id(ctx: _Loading, entry: _LineDict, index: int, line: int | None) -> str:
    return _entry_id(ctx, entry, line, f"p{index + 1}", f"prompts[{index}].id")


def _top_level(ctx: _Loading, data: Any) -> _LineDict:
    if not isinstance(data, _LineDict):
        got = "an empty file" if data is None else f"{_type_name(data)} {_short(data)}"
        raise ctx.error(
            f"a suite file must be a mapping with 'prompt' (or 'messages') and 'cases', got {got}",
            _node_line(data, 1),
        )
    _check_keys(ctx, data, TOP_LEVEL_KEYS, _Where(data.line), None, " at the top level")
    has_prompt, has_messages = "prompt" in data, "messages" in data
    if "prompts" in data and (has_prompt or has_messages):
        other = "prompt" if has_prompt else "messages"
        raise ctx.error(
            f"give either 'prompts' (a list of variants) or '{other}', not both",
            max(_key_line(data, "prompts", 0) or 0, _key_line(data, other, 0) or 0) or data.line,
        )
    if "prompts" not in data and has_prompt == has_messages:
        problem = (
            "give either 'prompt' or 'messages', not both"
            if has_prompt
            else "missing 'prompt' (a template) or 'messages' (a list of {role, content}) "
            "or 'prompts' (a list of prompt variants)"
        )
        line = _key_line(data, "messages", data.line) if has_prompt else data.line
        raise ctx.error(problem, line)
    if "description" in data and not isinstance(data["description"], str | None):
        raise ctx.error(
            f"expected a string, got {_type_name(data['description'])}",
            _key_line(data, "description", data.line),
            None,
            "description",
        )
    return data


def _shared(ctx: _Loading, data: _LineDict) -> _Shared:
    variants: list[tuple[str, _Templates]] = []
    sources: list[dict[str, Any]] | None = None
    if "prompts" in data:
        variants, sources = _variants(ctx, data)
        templates = variants[0][1]
    elif "prompt" in data:
        templates = _prompt_templates(ctx, data)
    else:
        templates = _message_templates(ctx, data)
    suite_vars: dict[str, Any] = {}
    if "vars" in data:
        line = _key_line(data, "vars", data.line)
        suite_vars = ctx.plain(_mapping(ctx, data["vars"], _Where(line), "vars", line))
    checks: list[_CheckSource] = []
    if "assert" in data:
        line = _key_line(data, "assert", data.line)
        checks = _check_sources(ctx, data["assert"], _Where(line), line)
    return _Shared(suite_vars, checks, _defaults(ctx, data), templates, variants, sources)


# --------------------------------------------------------------------------- cases


def _case_id(ctx: _Loading, item: _LineDict, index: int, line: int | None) -> str:
    return _entry_id(ctx, item, line, f"case-{index + 1}", f"cases[{index}].id")


def _entry_id(ctx: _Loading, entry: _LineDict, line: int | None, default: str, field: str) -> str:
    """A case's or prompt variant's ``id`` (``default`` when absent), as text, checked."""
    if "id" not in entry:
        return default
    value = entry["id"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ctx.error(
            f"id must be a string of letters, digits, '_', '.', '-' "
            f"(matching [A-Za-z0-9_.-]+), got {_short(value)}",
            _key_line(entry, "id", line),
            None,
            field,
        )
    return value


def _inline_case(ctx: _Loading, item: Any, index: int, line: int | None, shared: _Shared) -> Case:
    if not isinstance(item, _LineDict):
        raise ctx.error(
            f"expected a mapping with 'vars' and 'assert', got {_type_name(item)} {_short(item)}",
            line,
            None,
            f"cases[{index}]",
        )
    case_id = _case_id(ctx, item, index, line)
    w = _Where(line, case_id)
    _check_keys(ctx, item, CASE_KEYS, w, None)

    def at(key: str) -> int | None:
        return _key_line(item, key, line)

    case_vars: dict[str, Any] = {}
    if "vars" in item:
        case_vars = ctx.plain(_mapping(ctx, item["vars"], w, "vars", at("vars")))
    variables = {**shared.vars, **case_vars}
    checks = [
        *_resolve_checks(ctx, shared.checks, variables, w),
        *(_checks(ctx, item["assert"], w, at("assert"), variables) if "assert" in item else []),
    ]
    d = shared.defaults
    repeat, adaptive = (
        _repeat(ctx, item["repeat"], w, at("repeat"))
        if "repeat" in item
        else (d.repeat, d.adaptive)
    )
    threshold = (
        _fraction(ctx, item["threshold"], w, "threshold", at("threshold"))
        if "threshold" in item
        else d.threshold
    )
    params = dict(d.params)
    if "params" in item:
        params.update(ctx.plain(_mapping(ctx, item["params"], w, "params", at("params"))))
    mock = (
        _mock_response(ctx, item["mock_response"], w, "mock_response", at("mock_response"))
        if "mock_response" in item
        else d.mock_response
    )
    per_model: dict[str, Any] = {}
    if "mock_responses" in item:
        table = _mapping(ctx, item["mock_responses"], w, "mock_responses", at("mock_responses"))
        for name, answer in table.items():
            per_model[str(name)] = _mock_response(
                ctx,
                answer,
                w,
                f"mock_responses.{name}",
                _key_line(table, name, at("mock_responses")),
            )
    models = (
        _string_list(ctx, item["models"], w, "models", at("models"), _ANY_RE)
        if item.get("models") is not None
        else None
    )
    tags = _string_list(ctx, item["tags"], w, "tags", at("tags"), _TAG_RE) if "tags" in item else []
    messages, prompts = shared.render(ctx, variables, w)
    return Case(
        id=case_id,
        vars=variables,
        messages=messages,
        prompts=prompts,
        checks=checks,
        repeat=repeat,
        adaptive=adaptive,
        threshold=threshold,
        params=params,
        mock_response=mock,
        mock_responses=per_model,
        models=models,
        tags=tags,
        line=line or 0,
    )


def _inline_cases(ctx: _Loading, data: _LineDict, shared: _Shared) -> list[Case]:
    if "cases" not in data:
        if "vars_file" in data:
            return []
        raise ctx.error(
            "missing 'cases' (a non-empty list) and no 'vars_file'", data.line, None, "cases"
        )
    value = data["cases"]
    line = _key_line(data, "cases", data.line)
    if not isinstance(value, list) or (not value and "vars_file" not in data):
        raise ctx.error(
            f"expected a non-empty list of cases, got {_type_name(value)} {_short(value)}",
            line,
            None,
            "cases",
        )
    return [
        _inline_case(ctx, item, i, _item_line(value, i, line), shared)
        for i, item in enumerate(value)
    ]


# --------------------------------------------------------------------------- vars_file


def _read_rows(ctx: _Loading, data: _LineDict) -> tuple[str, list[dict[str, Any]]]:
    """The vars_file's name (as written) and its rows, each a dict of var name → value."""
    line = _key_line(data, "vars_file", data.line)
    value = data["vars_file"]
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(
            f"expected a path to a .csv or .jsonl file, got {_type_name(value)} {_short(value)}",
            line,
            None,
            "vars_file",
        )
    absolute = os.path.isabs(value)
    file = Path(value) if absolute else ctx.path.parent / value
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ctx.error(
            f"{value!r}: unsupported file type {suffix or '(none)'}; use .csv or .jsonl",
            line,
            None,
            "vars_file",
        )
    try:
        root = _vars_root(ctx.path, ctx.root)
        resolved = file.resolve()  # follows symlinks and ``..``
        exists, regular = resolved.exists(), resolved.is_file()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ctx.error(
            f"cannot read {value!r}: {_os_problem(exc)}", line, None, "vars_file"
        ) from None
    allowed = absolute and os.environ.get(ALLOW_ABSOLUTE_VARS_FILE) == "1"
    if not allowed and not resolved.is_relative_to(root):
        raise ctx.error(
            f"{value!r} is outside the project root {root}: a vars_file must be a file "
            f"under it (an absolute path elsewhere needs {ALLOW_ABSOLUTE_VARS_FILE}=1)",
            line,
            None,
            "vars_file",
        )
    if exists and not regular:  # a folder, or a FIFO or device that could block or not end
        raise ctx.error(f"{value!r} is not a regular file", line, None, "vars_file")
    try:
        raw = resolved.read_bytes()
    except OSError as exc:
        raise ctx.error(
            f"cannot read {value!r}: {_os_problem(exc)}", line, None, "vars_file"
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset, at_line = _decode_error_at(raw, exc)
        raise ctx.error(
            f"{value!r} is not UTF-8 text: {exc.reason} at byte {offset} (line {at_line})",
            line,
            None,
            "vars_file",
        ) from None
    reader = _csv_rows if suffix == ".csv" else _jsonl_rows
    try:
        return value, reader(text)
    except _RowError as exc:
        raise ctx.error(f"{value!r}: {exc}", line, None, "vars_file") from None


def _os_problem(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


class _RowError(ValueError):
    """A bad row in a vars_file; the caller adds the suite path and line."""


def _csv_rows(text: str) -> list[dict[str, Any]]:
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise _RowError(f"invalid CSV: {exc}") from None
    table = [row for row in table if row]  # blank lines
    if not table:
        raise _RowError("empty CSV; the first row must name the variables")
    header = table[0]
    for name in header:
        if not name.strip():
            raise _RowError(f"header row has an empty column name: {header!r}")
    dupes = sorted({n for n in header if header.count(n) > 1})
    if dupes:
        raise _RowError(f"header row repeats column(s) {', '.join(dupes)}")
    rows: list[dict[str, Any]] = []
    for n, row in enumerate(table[1:], start=1):
        if len(row) != len(header):
            raise _RowError(f"row {n} has {len(row)} fields, the header has {len(header)}")
        rows.append(dict(zip(header, row, strict=True)))
    return rows


def _jsonl_rows(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            raise _RowError(f"line {lineno}: invalid JSON: {exc}") from None
        except RecursionError:
            raise _RowError(f"line {lineno}: invalid JSON: nested too deeply") from None
        if not isinstance(row, dict):
            raise _RowError(f"line {lineno}: expected a JSON object of vars, got {_type_name(row)}")
        rows.append(row)
    return rows


def _row_cases(ctx: _Loading, data: _LineDict, shared: _Shared) -> list[Case]:
    if "vars_file" not in data:
        return []
    name, rows = _read_rows(ctx, data)
    line = _key_line(data, "vars_file", data.line)
    d = shared.defaults
    cases: list[Case] = []
    for n, row in enumerate(rows, start=1):
        raw_id = row.pop("id", None)
        case_id = f"row-{n}" if raw_id in (None, "") else str(raw_id)
        if not _ID_RE.fullmatch(case_id):
            raise ctx.error(
                f"{name!r} row {n}: id must match [A-Za-z0-9_.-]+, got {_short(raw_id)}",
                line,
                None,
                "vars_file",
            )
        w = _Where(line, case_id, note=f" ({name} row {n})")
        row_checks = row.pop("assert", None)
        variables = {**shared.vars, **row}
        messages, prompts = shared.render(ctx, variables, w)
        checks = _resolve_checks(ctx, shared.checks, variables, w)
        if row_checks is not None:
            value = _row_assert(ctx, row_checks, name.lower().endswith(".csv"), w)
            checks += _checks(ctx, value, w, line, variables)
        cases.append(
            Case(
                id=case_id,
                vars=variables,
                messages=messages,
                prompts=prompts,
                checks=checks,
                repeat=d.repeat,
                adaptive=d.adaptive,
                threshold=d.threshold,
                params=dict(d.params),
                mock_response=d.mock_response,
                line=line or 0,
                row=n,
            )
        )
    return cases


def _row_assert(ctx: _Loading, value: Any, from_csv: bool, w: _Where) -> list[Any]:
    """A row's ``assert`` as a list of specs: a CSV cell holds JSON or YAML text.

    A list is the checks; a single mapping or text is one check; an empty cell is none.
    """
    if from_csv and isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = ctx.plain(_cell_data(value))
        except Exception as exc:  # the loader's contract: a SuiteError, never a traceback
            problem = str(exc) if isinstance(exc, _RowError) else f"{type(exc).__name__}: {exc}"
            raise ctx.error(
                f"cannot read the 'assert' column as JSON or YAML: {problem}{w.note}",
                w.line,
                w.case_id,
                "assert",
            ) from None
    if isinstance(value, dict | str):
        return [value]
    if not isinstance(value, list):
        raise ctx.error(
            f'expected a list of checks (e.g. [{{"icontains": "star"}}]), got '
            f"{_type_name(value)} {_short(value)}{w.note}",
            w.line,
            w.case_id,
            "assert",
        )
    return value


def _cell_data(text: str) -> Any:
    """The data in a CSV cell: JSON, else YAML (aliases bounded, duplicate keys refused)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _RowError("nested too deeply") from None
    except ValueError:
        pass
    try:
        return _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" (cell line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        raise _RowError(f"{problem}{at}") from None
    except yaml.YAMLError as exc:
        raise _RowError(str(exc)) from None
    except RecursionError:
        raise _RowError("nested too deeply") from None


def _refuse_duplicate_ids(ctx: _Loading, cases: list[Case]) -> None:
    seen: dict[str, Case] = {}
    for case in cases:
        if case.id in seen:
            first = seen[case.id]
            where = f"row {first.row} of vars_file" if first.row else f"line {first.line}"
            this = f" (vars_file row {case.row})" if case.row else ""
            raise ctx.error(
                f"duplicate case id{this}; first used at {where}",
                case.line or None,
                case.id,
                "id",
            )
        seen[case.id] = case


# --------------------------------------------------------------------------- entry points


def _read_text(path: Path, where: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"cannot read suite file: {exc.strerror or exc}", path=where) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset, line = _decode_error_at(raw, exc)
        raise SuiteError(
            f"not UTF-8 text: {exc.reason} at byte {offset}", path=where, line=line
        ) from None


def _decode_error_at(raw: bytes, exc: UnicodeDecodeError) -> tuple[int, int]:
    """The byte offset in ``raw`` and the 1-based line of a ``utf-8-sig`` decoding error."""
    offset = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
    return offset, raw[:offset].count(b"\n") + 1


def _load_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        if "&" in text:  # no anchor, no alias
            loader.text_size = len(text)
        return loader.get_single_data()
    finally:
        loader.dispose()


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        raise SuiteError(f"invalid YAML: {problem}", path=where, line=line) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise SuiteError(f"invalid YAML: {exc.reason}", path=where, line=line) from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"invalid YAML: {exc}", path=where) from None
    except RecursionError:
        raise SuiteError("invalid YAML: nesting too deep", path=where) from None
    except Exception as exc:  # the loader's contract: a SuiteError, never a traceback
        raise SuiteError(f"invalid YAML: {type(exc).__name__}: {exc}", path=where) from None


def load_suite(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> Suite:
    """Load, validate and render a suite file.

    Every case is rendered here, so a template error or an undefined variable fails when
    the file is collected.

    Args:
        path: the suite file; a relative ``vars_file`` is resolved against its folder.
        root: the project root a ``vars_file`` must be under. Default: the working
            directory, or the suite file's own folder when the file is outside it.

    Returns:
        The ``Suite``, with cases in file order (inline cases, then ``vars_file`` rows).

    Raises:
        SuiteError: anything wrong with the file; the message starts with ``path`` and
            names the line, case and field when known.
    """
    file = Path(path)
    where = os.fspath(path)
    text = _read_text(file, where)
    data = _parse_yaml(text, where)
    ctx = _Loading(file, where, root)
    try:
        top = _top_level(ctx, data)
        shared = _shared(ctx, top)
        cases = _inline_cases(ctx, top, shared) + _row_cases(ctx, top, shared)
        if not cases:
            raise ctx.error(
                "no cases: 'cases' is empty and the vars_file has no rows",
                _key_line(top, "vars_file", top.line),
                None,
                "vars_file",
            )
        _refuse_duplicate_ids(ctx, cases)
        models = None
        if top.get("models") is not None:
            at = _key_line(top, "models", top.line)
            models = _string_list(ctx, top["models"], _Where(at), "models", at, _ANY_RE)
        compare_line = _key_line(top, "compare", top.line) if "compare" in top else None
        compare = _compare(ctx, top["compare"], compare_line) if "compare" in top else None
    except RecursionError:
        raise SuiteError("structure nested too deeply", path=where) from None
    return Suite(
        path=file,
        description=top.get("description"),
        models=models,
        cases=cases,
        prompt=None if shared.variants else shared.templates.prompt_source,
        message_templates=None if shared.variants else shared.templates.message_sources,
        prompt_variants=shared.variant_sources,
        source_text_lines=tuple(text.splitlines()),
        compare=compare,
        compare_line=compare_line,
    )


def _compare(ctx: _Loading, value: Any, line: int | None) -> Any:
    """``compare: {models: [a, b], rubric?, judge?}`` as a ``PairSpec``."""
    from harness.pairwise import PairSpec

    w = _Where(line)
    data = _mapping(ctx, value, w, "compare", line)
    _check_keys(ctx, value, COMPARE_KEYS, w, "compare")
    if "models" not in data:
        raise ctx.error("needs 'models: [a, b]' (the two models to judge)", line, None, "compare")
    at = _key_line(value, "models", line)
    models = _string_list(ctx, data["models"], w, "compare.models", at, _ANY_RE)
    if len(models) != 2 or models[0] == models[1]:
        raise ctx.error(
            f"expected two different models, got {_short(models)}", at, None, "compare.models"
        )
    texts: dict[str, str | None] = {}
    for key in ("rubric", "judge"):
        item = data.get(key)
        if item is not None and (not isinstance(item, str) or not item.strip()):
            raise ctx.error(
                f"expected a non-empty string, got {_short(item)}",
                _key_line(value, key, line),
                None,
                f"compare.{key}",
            )
        texts[key] = item
    return PairSpec((models[0], models[1]), texts["rubric"], texts["judge"])


def _vars_root(file: Path, root: str | os.PathLike[str] | None) -> Path:
    """The folder a ``vars_file`` must be under.

    That is ``root`` if given, else the working directory, else (for a suite file outside
    the working directory) the suite file's own folder.
    """
    if root is not None:
        return Path(root).resolve()
    cwd = Path.cwd().resolve()
    here = file.resolve().parent
    return cwd if here.is_relative_to(cwd) else here


def dump_suite(suite: Suite) -> dict[str, Any]:
    """The suite back in the YAML shape, every case explicit.

    Vars are the merged ones, checks the full list (suite-level ones included), and
    ``vars_file`` rows become inline cases, so ``load_suite`` of the dumped data gives an
    equal ``Suite`` (lines aside).
    """
    out: dict[str, Any] = {}
    if suite.description is not None:
        out["description"] = suite.description
    if suite.models is not None:
        out["models"] = list(suite.models)
    if suite.prompt_variants is not None:
        out["prompts"] = [
            {k: [dict(m) for m in v] if k == "messages" else v for k, v in variant.items()}
            for variant in suite.prompt_variants
        ]
    elif suite.prompt is not None:
        out["prompt"] = suite.prompt
    else:
        out["messages"] = [dict(m) for m in suite.message_templates or []]
    if suite.compare is not None:
        spec = suite.compare
        extra = {k: v for k, v in (("rubric", spec.rubric), ("judge", spec.judge)) if v}
        out["compare"] = {"models": list(spec.models), **extra}
    out["cases"] = [_dump_case(c) for c in suite.cases]
    return out


def _dump_case(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = {"id": case.id, "vars": dict(case.vars)}
    if case.checks:
        data["assert"] = list(case.checks)
    data["repeat"] = (
        case.repeat
        if case.adaptive is None
        else {"max": case.repeat, "until": "decided", "confidence": case.adaptive}
    )
    data["threshold"] = case.threshold
    if case.params:
        data["params"] = dict(case.params)
    if case.mock_response is not None:
        data["mock_response"] = case.mock_response
    if case.mock_responses:
        data["mock_responses"] = dict(case.mock_responses)
    if case.models is not None:
        data["models"] = list(case.models)
    if case.tags:
        data["tags"] = list(case.tags)
    return data
