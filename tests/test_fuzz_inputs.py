"""Fuzzing the input files and messages: only the documented errors ever come out.

Messages (any nesting of JSON and non-JSON values) give a ``BadRequestError`` or plain,
JSON-serialisable dicts; config text (arbitrary bytes, or TOML built from a grammar over
the real keys and every TOML value type) gives a ``ConfigError`` or a valid config; suite
text (arbitrary bytes, or YAML built from a grammar with anchors, aliases, tags and hostile
templates) gives a ``SuiteError`` or a suite. Nothing else: no ``TypeError`` from deep
inside, no ``UnicodeDecodeError``, no ``RecursionError``, no hang.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import BadRequestError, ConfigError, HarnessConfig
from harness.config import find_config_file, load_config
from harness.messages import ROLES, validate_conversations, validate_messages
from harness.suites import CASE_KEYS, DEFAULTS_KEYS, TOP_LEVEL_KEYS, SuiteError, load_suite

FUZZ = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- messages


class _Custom:
    def __repr__(self) -> str:
        return "<custom>"


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_NOT_JSON = st.one_of(
    st.binary(max_size=4),
    st.sampled_from(
        [float("nan"), float("inf"), -float("inf"), 1j, object(), _Custom(), {1, 2}, frozenset()]
        + [bytearray(b"x"), datetime.date(2024, 1, 1), decimal.Decimal("1.5"), range(2)]
        + [b"", type, print, Ellipsis]
    ),
)
_MESSAGE_KEYS = st.sampled_from(
    ["role", "content", "type", "text", "image_url", "url", "tool_calls", "tool_call_id"]
    + ["function", "name", "arguments", "id", "function_call"]
)
_VALUES = st.recursive(
    st.one_of(_JSON_SCALARS, _JSON_SCALARS, _NOT_JSON),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.one_of(_MESSAGE_KEYS, st.text(max_size=4)), children, max_size=3),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), children, max_size=2),
    ),
    max_leaves=6,
)
_PART = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": st.one_of(st.text(max_size=5), _VALUES)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": _VALUES},
        optional={"detail": _VALUES},
    ),
    _VALUES,
)
_CALL = st.one_of(
    st.fixed_dictionaries(
        {
            "id": _VALUES,
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.one_of(st.text(max_size=4), _VALUES), "arguments": _VALUES}
            ),
        }
    ),
    _VALUES,
)
_MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from([*ROLES, "robot"]),
            "content": st.one_of(
                st.text(max_size=6), st.none(), st.lists(_PART, max_size=3), _VALUES
            ),
        },
        optional={
            "name": _VALUES,
            "tool_calls": st.one_of(st.lists(_CALL, max_size=2), _VALUES),
            "tool_call_id": st.one_of(st.text(max_size=3), _VALUES),
            "function_call": _VALUES,
            "extra": _VALUES,
        },
    ),
    _VALUES,
)


@FUZZ
@given(messages=st.one_of(st.lists(_MESSAGE, max_size=4), _VALUES))
def test_fuzzed_messages_give_a_bad_request_or_plain_json(messages: Any) -> None:
    try:
        out = validate_messages(messages)
    except BadRequestError as exc:
        assert str(exc).startswith("messages")
    else:
        assert all(type(m) is dict for m in out)
        json.dumps(out, allow_nan=False)  # what is accepted can go on the wire
    try:
        validate_conversations([messages, messages])
    except BadRequestError:
        pass


# --------------------------------------------------------------------------- config

_CONFIG_KEYS = [
    # [defaults]
    "timeout", "retries", "max_concurrency", "max_response_bytes",
    # [models.X]
    "model", "api_base", "api_key_env", "api_version", "params", "headers", "rpm", "tpm",
    "price", "responses", "latency_ms", "ttft_ms", "error",
    # prices, cache
    "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "mode", "path",
    # noise
    "modle", "x",
]  # fmt: skip
_TABLES = [
    "defaults", "models.fast", "models.m", 'models."a b"', 'prices."openai/x"',
    'prices."nope"', "prices.zzz", "cache", "report", "suites", "models", "prices",
    "default", "models.fast.params", "models.fast.price", "models.m.headers",
]  # fmt: skip


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is (mostly) a TOML string


_TOML_SCALARS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        ["0", "-1", "1024", "1_000", "0x7f", "0o17", "0b101", "+5", "9" * 30, "1" * 5000]
        + ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "0.0", "-0.0", "1e300", "1e-300"]
        + ["true", "false", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "2024-13-45"]
        + ['"mock/demo"', '"openai/gpt-4o-mini"', '"NONE"', '"use"', "'literal'", '""']
        + ['"""multi\nline"""', "'''raw\\n'''", '"\\u00e9"', '"bad \\x escape"']
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=10).map(_toml_string),
)
_TOML_VALUES = st.recursive(
    _TOML_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(_CONFIG_KEYS), children), max_size=3).map(
            lambda kvs: "{ " + ", ".join(f"{k} = {v}" for k, v in kvs) + " }"
        ),
    ),
    max_leaves=3,
)
_JUNK = st.one_of(st.just([]), st.just([]), st.just([]), st.lists(st.text(max_size=8), max_size=1))
_TOML_PAIRS = st.lists(st.tuples(st.sampled_from(_CONFIG_KEYS), _TOML_VALUES), max_size=4).map(
    lambda kvs: [f"{k} = {v}" for k, v in dict(kvs).items()]
)
_TOML_TABLE = st.tuples(st.sampled_from(_TABLES), st.booleans(), _TOML_PAIRS, _JUNK).map(
    lambda t: [f"[{t[0]}]", *(['model = "mock/m"'] if t[1] else []), *t[2], *t[3]]
)
_TOML_DOCS = st.lists(_TOML_TABLE, max_size=3).map(
    lambda tables: "\n".join(line for table in tables for line in table)
)


def _load_config_or_config_error(
    folder: Path, content: bytes, name: str, *, find: bool = False
) -> None:
    for stale in ("harness.toml", "pyproject.toml"):
        (folder / stale).unlink(missing_ok=True)
    path = folder / name
    path.write_bytes(content)
    try:
        config = load_config(find_config_file(folder) if find else path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), str(exc)
    else:
        _assert_valid(config)


def _assert_valid(config: HarnessConfig) -> None:
    assert math.isfinite(config.timeout) and config.timeout > 0
    assert 0 <= config.retries <= 100
    for alias in config.models:
        spec = config.resolve(alias)
        assert spec.timeout is None or (math.isfinite(spec.timeout) and spec.timeout > 0)
        assert spec.max_response_bytes is None or spec.max_response_bytes >= 1024
        if spec.price is not None:
            assert all(
                math.isfinite(p) and p >= 0
                for p in (spec.price.input_per_mtok, spec.price.output_per_mtok)
            )


# One folder per test, not per example: creating and removing a folder costs more than
# the load itself on a disk-backed /tmp. Each example rewrites the files it uses.


def test_fuzzed_toml_gives_a_config_error_or_a_valid_config() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @FUZZ
        @given(text=_TOML_DOCS, pyproject=st.booleans(), find=st.booleans())
        def check(text: str, pyproject: bool, find: bool) -> None:
            if pyproject:
                text = (
                    text.replace("[", "[tool.harness.", 1)
                    if "[" in text
                    else "[tool.harness]\n" + text
                )
            content = text.encode("utf-8", "surrogatepass")
            name = "pyproject.toml" if pyproject else "harness.toml"
            _load_config_or_config_error(folder, content, name, find=find)

        check()


def test_fuzzed_config_bytes_give_a_config_error_or_a_valid_config() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @FUZZ
        @given(
            content=st.binary(max_size=80),
            prefix=st.sampled_from([b"", b"[defaults]\n", b"[tool.harness]\n"]),
            name=st.sampled_from(["harness.toml", "pyproject.toml"]),
            find=st.booleans(),
        )
        def check(content: bytes, prefix: bytes, name: str, find: bool) -> None:
            _load_config_or_config_error(folder, prefix + content, name, find=find)

        check()


# --------------------------------------------------------------------------- suites

_TEMPLATES = st.sampled_from(
    [
        "hi", "{{ a }}", "{{ b }}", "{{ a|upper }}", "{{ a * 10**10 }}", "{{ 'x' * 10**10 }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}", "{{ a.__class__ }}",
        "{% for i in range(10**9) %}x{% endfor %}", "{{ a|center(10**10) }}", "{{ 1 / 0 }}",
        "{{ lipsum(10**6) }}", "{% if %}", "{{ a.b.c }}", "{{ a|tojson }}", "{{ a[0] }}",
        "{{ '%*s' % (10**10, a) }}", "{{ [a] * 10**8 }}", "{{ 2 ** 10**7 }}", "{{ a ~ a }}",
        "{% set ns = namespace(s='x') %}{% for i in range(80) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}",
        "{{ range(5)|join(',') }}", "{{ a|int + 1 }}", "{{ undefined_thing }}", "{{",
    ]
)  # fmt: skip
_YAML_SCALARS = st.one_of(
    st.sampled_from(
        ["1", "0", "-3", "2.5", ".nan", ".inf", "true", "null", "~", "''", "yes", "0x1f"]
        + ["2024-01-01", "2024-13-45", "2001-12-14t21:59:43.10-05:00", "!!binary aGk=", "!!set {a}"]
        + ["!!int x", "!!float y", "!!str 3", "!!timestamp nope", "!!python/object:os.system x"]
        + ["mock/m", "echo/x", "rows.csv", "rows.jsonl", "../rows.csv", "/etc/passwd.csv"]
        + ["rows.txt", "decided", "{max: 3}", "{max: 3, until: decided, confidence: 0.9}"]
        + ["icontains", "{icontains: a}", "{max_words: 3}", "{regex: '('}", "{llm_judge: x}"]
        + ["{python: os:system}", "{json_schema: {type: object}}", "{bogus: 1}", "'\\x00'"]
        + ["*undefined", "'{{ a }}'", "'{{ d }} {{ b[1] }}'", "[x, y]"]
    ),
    _TEMPLATES.map(json.dumps),
    st.text(max_size=6).map(json.dumps),
    st.text("ab {}%_-", max_size=6).map(json.dumps),
    st.text("ab {}%_-", max_size=6).map(json.dumps),
    st.integers().map(str),
)


def _anchor(pair: tuple[int, str]) -> str:
    return f"&b{pair[0]} {pair[1]}"


_YAML_VALUES = st.recursive(
    _YAML_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(
            st.tuples(
                st.one_of(
                    st.sampled_from([*CASE_KEYS, *DEFAULTS_KEYS, "role", "content", "type"]),
                    st.sampled_from(["text", "a", "b", "<<", "1", "null"]),
                ),
                children,
            ),
            max_size=3,
        ).map(lambda kvs: "{" + ", ".join(f"{k}: {v}" for k, v in dict(kvs).items()) + "}"),
        st.tuples(st.integers(0, 2**32), children).map(_anchor),
        st.integers(0, 3).map(lambda n: f"*a{n}"),
        st.sampled_from(
            [
                "[&lol [x, x, x, x], [*lol, *lol, *lol, *lol]]",
                "&self [a, *self]",
                "{<<: *a2, a: 1}",
                "[{role: user, content: [{type: text, text: '{{ a }}'}, {type: image_url, "
                "image_url: !!binary aGk=}]}]",
                "[{role: user, content: '{{ d }}'}, {role: assistant, content: null}]",
            ]
        ),
    ),
    max_leaves=3,
)
_OTHER_TOP_KEYS = [k for k in TOP_LEVEL_KEYS if k not in ("prompt", "messages", "vars", "cases")]
_ANCHORS = "vars: {a: &a0 '1', b: &a1 [1, 2], c: &a2 {x: 1}, d: &a3 hi}"
_CASE = st.lists(st.tuples(st.sampled_from(CASE_KEYS), _YAML_VALUES), max_size=4).map(
    lambda kvs: "  - {" + ", ".join(f"{k}: {v}" for k, v in dict(kvs).items()) + "}"
)
_SUITE_DOCS = st.tuples(
    st.one_of(
        _TEMPLATES.map(lambda t: f"prompt: {json.dumps(t)}"),
        _YAML_VALUES.map(lambda v: f"messages: {v}"),
        st.just("messages: [{role: user, content: '{{ a }}'}]"),
    ),
    st.lists(
        st.tuples(
            st.sampled_from([*_OTHER_TOP_KEYS, "bogus"]),
            _YAML_VALUES,
        ),
        max_size=3,
        unique_by=lambda kv: kv[0],
    ),
    st.lists(_CASE, min_size=1, max_size=2),
    st.sampled_from([_ANCHORS, _ANCHORS, _ANCHORS, _ANCHORS, _ANCHORS, "", "vars: [1]"]),
).map(
    lambda parts: (
        "\n".join([parts[3], parts[0], *(f"{k}: {v}" for k, v in parts[1]), "cases:", *parts[2]])
        + "\n"
    )
)
_ROWS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"a,b\n1,2\n",
            b'{"a": 1}\n{"id": "x", "b": [1]}\n',
            b"id,a\nbad id,1\n",
            b"\xef\xbb\xbfa\n\xff\n",
            b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}\n",
            b'{"a": NaN}\n',
            b"a\x00,b\n1,2\n",
        ]
    ),
)


def _suite_folder(tmp: str) -> tuple[Path, Path]:
    """``<tmp>/project`` (the root) with ``suites/``, and a file outside the root."""
    root = Path(tmp) / "project"
    (root / "suites").mkdir(parents=True)
    (Path(tmp) / "rows.csv").write_bytes(b"secret\nvalue\n")
    return root, root / "suites" / "fuzz.yaml"


def _load_suite_or_suite_error(root: Path, path: Path, content: bytes, rows: bytes) -> None:
    path.write_bytes(content)
    for name in ("rows.csv", "rows.jsonl"):
        (path.parent / name).write_bytes(rows)
    try:
        suite = load_suite(path, root=root)
    except SuiteError as exc:
        assert str(exc).startswith(str(path)) and exc.path == str(path)
    else:
        assert suite.cases and len(set(suite.ids)) == len(suite.ids)
        for case in suite.cases:
            text = json.dumps(case.messages, allow_nan=False)
            assert "secret" not in text or b"secret" in content + rows  # nothing from outside
            assert "uid=" not in text  # popen('id') never ran


def test_fuzzed_yaml_gives_a_suite_error_or_a_suite() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, path = _suite_folder(tmp)

        @FUZZ
        @given(text=_SUITE_DOCS, rows=_ROWS)
        def check(text: str, rows: bytes) -> None:
            _load_suite_or_suite_error(root, path, text.encode("utf-8", "surrogatepass"), rows)

        check()


def test_fuzzed_suite_bytes_give_a_suite_error_or_a_suite() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, path = _suite_folder(tmp)

        @FUZZ
        @given(
            content=st.binary(max_size=120),
            prefix=st.sampled_from([b"", b"prompt: hi\ncases:\n"]),
        )
        def check(content: bytes, prefix: bytes) -> None:
            _load_suite_or_suite_error(root, path, prefix + content, b"a\n1\n")

        check()
