"""The response store: cache keys, modes, the SQLite file under concurrency, maintenance, CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import multiprocessing
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import Harness
from harness.cache import (
    DEFAULT_PATH,
    SCHEMA_VERSION,
    CachedEntry,
    CacheError,
    CacheMode,
    ResponseCache,
    is_cacheable_error,
    parse_mode,
    replay_miss_error,
)
from harness.cache_keys import NON_OUTPUT_PARAMS, _excluded, cache_key, key_for_call
from harness.cli import cache_command, parse_duration
from harness.errors import (
    AllModelsFailed,
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ReplayMissError,
    ServiceUnavailableError,
    TimeoutError,
)
from harness.messages import ROLES
from harness.types import (
    Choice,
    FunctionCall,
    Message,
    ModelResponse,
    ResponseMeta,
    ToolCall,
    Usage,
)
from tests.helpers.local_server import chat_body

USER = [{"role": "user", "content": "hi"}]
BASE = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "api_base": "https://api.openai.com/v1",
    "messages": USER,
    "params": {"temperature": 0.2},
}


def _response(content: str = "hello", cost: float | None = 0.0012) -> ModelResponse:
    return ModelResponse(
        id="chatcmpl-1",
        model="gpt-4o-mini-2024-07-18",
        created=1767225600,
        system_fingerprint="fp_1",
        choices=[
            Choice(
                index=0,
                message=Message(
                    content=content,
                    tool_calls=[ToolCall("call_1", FunctionCall("lookup", '{"q": "x"}'))],
                    reasoning_content="thought",
                ),
                finish_reason="tool_calls",
                logprobs={"content": [{"token": "hello", "logprob": -0.25}]},
            )
        ],
        usage=Usage(12, 5, 17, cached_tokens=4, reasoning_tokens=2),
        harness=ResponseMeta(
            provider="openai",
            model="fast",
            latency_ms=812.5,
            attempts=2,
            cost_usd=cost,
            raw_finish_reasons=["tool_calls"],
            flags=["pause_turn"],
            request_id="req_1",
        ),
    )


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path):
    c = ResponseCache(tmp_path / "cache.sqlite")
    yield c
    c.close()


# --- keys -------------------------------------------------------------------------------------


def test_key_is_sha256_hex_and_pinned():
    key = cache_key(**BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    # Pinned: a change here invalidates every user's cache, so it must be deliberate
    # (bump KEY_VERSION). The canonical JSON: sorted keys, no whitespace, ASCII.
    canonical = (
        '{"api_base":"https://api.openai.com/v1","messages":[{"content":"hi","role":"user"}],'
        '"model":"gpt-4o-mini","params":{"temperature":0.2},"provider":"openai","repeat":0,"v":1}'
    )
    assert key == hashlib.sha256(canonical.encode()).hexdigest()
    assert key == "8ff15596a2740a979888942646d471b96ec3e7bf4af97a03d597d97f8e2c7624"


@pytest.mark.parametrize("name", sorted(NON_OUTPUT_PARAMS))
def test_each_non_output_param_leaves_the_key_alone(name: str):
    params = {**BASE["params"], name: {"any": ["value", 1]}}
    assert cache_key(**{**BASE, "params": params}) == cache_key(**BASE)


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "anthropic_api_key",
        "openai_apikey",
        "client_secret",
        "password",
        "Authorization",
        "access_token",
        "auth_token",
        "credentials",
        "aws_secret_access_key",
    ],
)
def test_key_like_params_are_left_out(name: str):
    params = {**BASE["params"], name: "sk-should-never-matter-0123456789"}
    assert cache_key(**{**BASE, "params": params}) == cache_key(**BASE)


@pytest.mark.parametrize(
    "name", ["max_tokens", "max_completion_tokens", "top_k", "seed", "tools", "n", "stop"]
)
def test_output_params_that_mention_tokens_or_k_are_kept(name: str):
    params = {**BASE["params"], name: 7}
    assert cache_key(**{**BASE, "params": params}) != cache_key(**BASE)


def test_number_spellings_none_and_trailing_slash_do_not_change_the_key():
    a = cache_key(**{**BASE, "params": {"temperature": 0, "top_p": 1, "seed": None}})
    b = cache_key(**{**BASE, "params": {"temperature": -0.0, "top_p": 1.0}})
    c = cache_key(
        **{
            **BASE,
            "api_base": "https://api.openai.com/v1/",
            "params": {"top_p": 1.0, "temperature": 0.0},
        }
    )
    assert a == b == c


def test_nested_nones_are_data():
    # Only top-level params and message fields treat None as absent; inside a value (a tool's
    # JSON schema, say) ``null`` is content the model sees.
    with_null = {"type": "object", "properties": {"x": {"type": "string", "default": None}}}
    without = {"type": "object", "properties": {"x": {"type": "string"}}}
    assert cache_key(**{**BASE, "params": {"response_format": with_null}}) != cache_key(
        **{**BASE, "params": {"response_format": without}}
    )


def test_true_and_one_are_different_values():
    one = cache_key(**{**BASE, "params": {"logprobs": 1}})
    true = cache_key(**{**BASE, "params": {"logprobs": True}})
    assert one != true


def test_a_stream_call_shares_the_plain_calls_key():
    streamed = {**BASE["params"], "stream": True, "stream_options": {"include_usage": True}}
    assert cache_key(**{**BASE, "params": streamed}) == cache_key(**BASE)


def test_unstable_values_are_refused():
    with pytest.raises(TypeError, match="stable key"):
        cache_key(**{**BASE, "params": {"tools": object()}})
    with pytest.raises(ValueError, match="repeat"):
        cache_key(**BASE, repeat=-1)


_names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(
    lambda n: not _excluded(n)
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(ROLES), "content": st.text(max_size=20)},
        optional={"name": st.text(max_size=5), "extra": _values},
    ),
    min_size=1,
    max_size=4,
)
_requests = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["openai", "anthropic", "gemini", "groq"]),
        "model": st.text(min_size=1, max_size=12),
        "api_base": st.none() | st.sampled_from(["https://a.example/v1", "http://localhost:8000"]),
        "messages": _messages,
        "params": st.dictionaries(_names, _values, max_size=5),
        "repeat": st.integers(0, 5),
    }
)


def _respell(value: Any, rnd: Any) -> Any:
    """The same value, differently spelled: dict order shuffled, ints as floats, 0 as -0.0."""
    if isinstance(value, dict):
        items = [(k, _respell(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_respell(v, rnd) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and abs(value) < 2**53 and rnd.random() < 0.5:
        return -0.0 if value == 0 and rnd.random() < 0.5 else float(value)
    if (
        isinstance(value, float)
        and value.is_integer()
        and abs(value) < 2**53
        and rnd.random() < 0.5
    ):
        return int(value)
    return value


@settings(max_examples=200)
@given(request=_requests, rnd=st.randoms(use_true_random=False), junk=_values)
def test_equal_requests_have_equal_keys(request: dict[str, Any], rnd: Any, junk: Any):
    twin = {
        **request,
        "messages": _respell(request["messages"], rnd),
        "params": _respell(request["params"], rnd),
    }
    params = dict(twin["params"])
    for name in rnd.sample(sorted(NON_OUTPUT_PARAMS), 3):
        params[name] = junk
    params["api_key"] = "sk-whatever-0123456789"
    params["zz_unset_param"] = None
    twin["params"] = params
    twin["messages"] = [{**m, "refusal": None} for m in twin["messages"]]
    if twin["api_base"]:
        twin["api_base"] += "/"
    assert cache_key(**twin) == cache_key(**request)


def _mutations(request: dict[str, Any], rnd: Any) -> list[dict[str, Any]]:
    msgs = request["messages"]
    i = rnd.randrange(len(msgs))
    content = [dict(m) for m in msgs]
    content[i]["content"] += "!"
    role = [dict(m) for m in msgs]
    role[i]["role"] = next(r for r in ROLES if r != msgs[i]["role"])
    out = [
        {**request, "messages": content},
        {**request, "messages": role},
        {**request, "messages": msgs + [msgs[-1]]},
        {**request, "model": request["model"] + "x"},
        {**request, "provider": request["provider"] + "x"},
        {**request, "api_base": "https://other.example/v1"},
        {**request, "repeat": request["repeat"] + 1},
        {**request, "params": {**request["params"], "Seed-Extra": 1}},
    ]
    for name, value in request["params"].items():
        out.append({**request, "params": {**request["params"], name: [value]}})
    return out


@settings(max_examples=200)
@given(request=_requests, rnd=st.randoms(use_true_random=False))
def test_any_output_relevant_change_changes_the_key(request: dict[str, Any], rnd: Any):
    key = cache_key(**request)
    for changed in _mutations(request, rnd):
        assert cache_key(**changed) != key, changed


def test_key_for_call_ignores_key_headers_and_timeouts():
    h = Harness()
    call = h.prepare(
        "openai/gpt-4o-mini",
        USER,
        {
            "api_key": "sk-test-aaaaaaaaaaaa",
            "temperature": 0.2,
            "timeout": 5,
            "extra_headers": {"X-Trace": "1"},
            "num_retries": 0,
        },
    )
    other = h.prepare(
        "openai/gpt-4o-mini", USER, {"api_key": "sk-test-bbbbbbbbbbbb", "temperature": 0.2}
    )
    assert key_for_call(call) == key_for_call(other) == cache_key(**BASE)
    assert key_for_call(call, repeat=1) != key_for_call(call)


def test_key_for_call_counts_mock_answers():
    h = Harness()
    a = h.prepare("mock/x", USER, {"mock_response": "a", "mock_latency_ms": 5})
    b = h.prepare("mock/x", USER, {"mock_response": "b"})
    a_again = h.prepare("mock/x", USER, {"mock_response": "a", "mock_latency_ms": 50})
    assert key_for_call(a) != key_for_call(b)
    assert key_for_call(a) == key_for_call(a_again)


# --- modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("off", CacheMode.OFF),
        ("USE", CacheMode.USE),
        (" replay ", CacheMode.REPLAY),
        ("record", CacheMode.RECORD),
        ("refresh-failed", CacheMode.REFRESH_FAILED),
        ("refresh_failed", CacheMode.REFRESH_FAILED),
        (CacheMode.USE, CacheMode.USE),
    ],
)
def test_parse_mode(text: Any, mode: CacheMode):
    assert parse_mode(text) is mode


def test_parse_mode_names_the_valid_values():
    with pytest.raises(ValueError, match="'sometimes'.*off, use, replay, record, refresh-failed"):
        parse_mode("sometimes")
    assert CacheMode.USE == "use" and isinstance(CacheMode.REPLAY, str)


OK, ERR, MISSING = _key("ok"), _key("err"), _key("missing")


@pytest.mark.parametrize(
    ("mode", "served", "reads", "writes"),
    [
        (CacheMode.OFF, {OK: False, ERR: False, MISSING: False}, False, False),
        (CacheMode.USE, {OK: True, ERR: True, MISSING: False}, True, True),
        (CacheMode.REPLAY, {OK: True, ERR: True}, True, False),
        (CacheMode.RECORD, {OK: False, ERR: False, MISSING: False}, False, True),
        (CacheMode.REFRESH_FAILED, {OK: True, ERR: False, MISSING: False}, True, True),
    ],
)
def test_lookup_follows_the_mode(
    cache: ResponseCache, mode: CacheMode, served: dict[str, bool], reads: bool, writes: bool
):
    cache.put(OK, response=_response(), latency_ms=10, provider="openai", model="m")
    cache.put(
        ERR, error=BadRequestError("no", status=400), latency_ms=3, provider="openai", model="m"
    )
    for key, expected in served.items():
        entry = cache.lookup(key, mode.value)
        assert (entry is not None) == expected, key
        if entry is not None:
            assert entry.key == key
    assert (mode.reads, mode.writes) == (reads, writes)


def test_replay_miss_raises_naming_model_and_message_but_no_secrets(cache: ResponseCache):
    long_text = "Summarise the following report. " + "x" * 200
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": long_text},
        {"role": "assistant", "content": "ok"},
    ]
    with pytest.raises(ReplayMissError) as info:
        cache.lookup(
            MISSING, CacheMode.REPLAY, provider="openai", model="gpt-4o", messages=messages
        )
    text = str(info.value)
    assert "openai/gpt-4o" in text
    assert repr(long_text[:80]) in text and long_text[:81] not in text
    assert MISSING[:12] in text and MISSING not in text
    assert info.value.provider == "openai" and info.value.model == "gpt-4o"


def test_replay_miss_reads_text_parts_and_copes_with_no_user_message():
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "u"}},
                {"type": "text", "text": "what is this"},
            ],
        }
    ]
    assert "'what is this'" in str(replay_miss_error("gemini", "gemini/flash", parts))
    assert "gemini/flash" in str(replay_miss_error("gemini", "gemini/flash", parts))
    assert "no user message" in str(
        replay_miss_error(None, None, [{"role": "system", "content": "x"}])
    )


@pytest.mark.parametrize(
    ("error", "cacheable"),
    [
        (BadRequestError("x"), True),
        (ContextWindowExceededError("x"), True),
        (ContentFilterError("x"), True),
        (NotFoundError("x"), True),
        (InternalServerError("x"), True),
        (InvalidResponseError("x"), True),
        (AuthenticationError("x"), False),
        (BillingError("x"), False),
        (ConfigError("x"), False),
        (ReplayMissError("x"), False),
        (AllModelsFailed({"a": BadRequestError("x")}), False),
        (ValueError("not ours"), False),
    ],
)
def test_is_cacheable_error(error: BaseException, cacheable: bool):
    assert is_cacheable_error(error) is cacheable


# --- entries ----------------------------------------------------------------------------------


def test_a_response_round_trips_and_is_marked_replayed(cache: ResponseCache):
    original = _response()
    cache.put(
        OK,
        response=original,
        latency_ms=1234.5,
        ttft_ms=210.0,
        provider="openai",
        model="gpt-4o-mini",
    )
    entry = cache.get(OK)
    assert entry is not None and not entry.is_error and entry.saved_cost_usd == 0.0012
    replayed = entry.to_model_response()
    assert replayed.to_dict() == original.to_dict()
    meta = replayed.harness
    assert meta.latency_ms == 1234.5 and meta.attempts == 0 and meta.cost_usd is None
    assert meta.flags == ["pause_turn"] and meta.replayed and meta.saved_cost_usd == 0.0012
    assert (meta.provider, meta.model, meta.request_id) == ("openai", "fast", "req_1")
    assert meta.raw_finish_reasons == ["tool_calls"]
    assert entry.ttft_ms == 210.0 and entry.latency_ms == 1234.5
    assert getattr(meta, "ttft_ms", 210.0) == 210.0  # restored where ResponseMeta has it
    # Each call builds a fresh object.
    replayed.choices[0].message.content = "changed"
    assert entry.to_model_response().content == "hello"
    with pytest.raises(CacheError, match="holds a response"):
        entry.to_error()


def test_a_response_without_cost_or_meta_still_replays(cache: ResponseCache):
    cache.put(OK, response=_response(cost=None).to_dict(), latency_ms=50, provider="p", model="m")
    entry = cache.get(OK)
    assert entry is not None and entry.meta is None and entry.saved_cost_usd is None
    replayed = entry.to_model_response()
    assert replayed.harness.flags == [] and replayed.harness.replayed
    assert replayed.harness.saved_cost_usd is None
    assert (replayed.harness.provider, replayed.harness.model) == ("p", "m")
    assert replayed.harness.latency_ms == 50


@pytest.mark.parametrize(
    "error",
    [
        ContextWindowExceededError(
            "too long",
            provider="openai",
            model="m",
            status=400,
            body='{"error": "context_length_exceeded"}',
        ),
        RateLimitError("slow down", status=429, retry_after=2.5, request_id="req_9"),
        TimeoutError("no answer within 5 s", provider="groq", model="g"),
        ServiceUnavailableError("overloaded", status=529),
        InvalidResponseError("not json"),
    ],
)
def test_an_error_round_trips_as_its_own_class(cache: ResponseCache, error: HarnessError):
    error.attempts = 3
    cache.put(ERR, error=error, latency_ms=20, provider="openai", model="m")
    entry = cache.get(ERR)
    assert entry is not None and entry.is_error and entry.response is None
    rebuilt = entry.to_error()
    assert type(rebuilt) is type(error) and rebuilt.attempts == 0
    assert {**rebuilt.to_dict(), "attempts": 3} == error.to_dict()
    with pytest.raises(CacheError, match="holds an error"):
        entry.to_model_response()


def test_unknown_and_nested_errors_rebuild():
    unknown = CachedEntry(
        ERR, None, {"type": "Bogus", "message": "m"}, None, None, 1.0, None, 0.0, "0", "p", "m"
    )
    assert type(unknown.to_error()) is HarnessError
    nested = AllModelsFailed({"a": RateLimitError("x", status=429), "b": BadRequestError("y")})
    entry = CachedEntry(ERR, None, nested.to_dict(), None, None, 1.0, None, 0.0, "0", "p", "m")
    rebuilt = entry.to_error()
    assert isinstance(rebuilt, AllModelsFailed)
    assert [type(e) for e in rebuilt.errors.values()] == [RateLimitError, BadRequestError]


def test_raw_bodies_and_chunks_round_trip(cache: ResponseCache):
    chunks = [
        [0, {"choices": [{"delta": {"content": "he"}}]}],
        (12.5, {"choices": [{"delta": {"content": "llo"}}]}),
    ]
    cache.put(
        OK,
        response=_response(),
        raw=b"\x00\xffbinary",
        chunks=chunks,
        latency_ms=30,
        provider="p",
        model="m",
    )
    cache.put(
        ERR, error=BadRequestError("x"), raw='{"text": "é"}', latency_ms=1, provider="p", model="m"
    )
    ok, err = cache.get(OK), cache.get(ERR)
    assert ok is not None and err is not None
    assert ok.raw == b"\x00\xffbinary" and err.raw == '{"text": "é"}'
    assert ok.chunks == [(0.0, chunks[0][1]), (12.5, chunks[1][1])] and err.chunks is None


def test_put_checks_its_arguments(cache: ResponseCache):
    with pytest.raises(ValueError, match="exactly one"):
        cache.put(OK, latency_ms=1, provider="p", model="m")
    with pytest.raises(ValueError, match="exactly one"):
        cache.put(
            OK,
            response=_response(),
            error=BadRequestError("x"),
            latency_ms=1,
            provider="p",
            model="m",
        )
    with pytest.raises(ValueError, match="latency_ms"):
        cache.put(OK, response=_response(), latency_ms=-1, provider="p", model="m")
    with pytest.raises(ValueError, match=r"chunks\[0\]"):
        cache.put(
            OK, response=_response(), chunks=[{"delta": "x"}], latency_ms=1, provider="p", model="m"
        )
    assert cache.get(OK) is None


def test_put_overwrites(cache: ResponseCache):
    cache.put(OK, error=InternalServerError("x"), latency_ms=1, provider="p", model="m")
    cache.put(OK, response=_response("second"), latency_ms=2, provider="p", model="m")
    entry = cache.get(OK)
    assert entry is not None and entry.to_model_response().content == "second"
    assert cache.stats()["entries"] == 1


# --- the file ---------------------------------------------------------------------------------


def test_default_path_creates_parent_dirs_wal_and_schema_version():
    with ResponseCache() as c:
        c.put(OK, response=_response(), latency_ms=1, provider="p", model="m")
    assert DEFAULT_PATH.is_file()
    raw = sqlite3.connect(DEFAULT_PATH)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_reopen_after_close(tmp_path: Path):
    path = tmp_path / "deep" / "er" / "c.sqlite"
    c = ResponseCache(path)
    c.put(OK, response=_response(), latency_ms=7, provider="p", model="m")
    c.close()
    c.close()  # idempotent
    with pytest.raises(CacheError, match="closed"):
        c.get(OK)
    with ResponseCache(path) as again:
        entry = again.get(OK)
        assert entry is not None and entry.latency_ms == 7


def test_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(CacheError, match=f"schema version 99.*reads version {SCHEMA_VERSION}"):
        ResponseCache(path)


def test_files_that_are_not_caches_are_refused(tmp_path: Path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all, just some bytes " * 100)
    with pytest.raises(CacheError, match="not a harness response cache"):
        ResponseCache(junk)
    other = tmp_path / "other.sqlite"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE people (name TEXT)")
    raw.close()
    with pytest.raises(CacheError, match="other tables"):
        ResponseCache(other)


def _process_worker(path: str, worker: int, count: int) -> int:
    """One process of the concurrency test: its own cache object, many puts and reads."""
    with ResponseCache(path) as c:
        for i in range(count):
            key = _key(f"p{worker}-{i}")
            c.put(
                key,
                response=_response(f"p{worker}-{i}"),
                latency_ms=i,
                provider="p",
                model=f"w{worker}",
            )
            entry = c.get(key)
            assert entry is not None and entry.to_model_response().content == f"p{worker}-{i}"
    return count


def test_concurrent_processes_and_threads_write_one_file(tmp_path: Path):
    path = tmp_path / "shared.sqlite"  # created by whichever process comes first
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        done = pool.starmap(_process_worker, [(str(path), w, 50) for w in range(4)])
    assert done == [50] * 4

    shared = ResponseCache(path)
    own: list[ResponseCache] = []
    errors: list[BaseException] = []
    start = threading.Barrier(10)

    def thread_worker(worker: int, c: ResponseCache) -> None:
        try:
            start.wait()
            for i in range(50):
                key = _key(f"t{worker}-{i}")
                c.put(
                    key,
                    error=BadRequestError(f"t{worker}-{i}"),
                    latency_ms=1,
                    provider="p",
                    model="threads",
                )
                assert c.get(key) is not None
                c.lookup(_key(f"p{worker % 4}-{i}"), CacheMode.USE)
        except BaseException as exc:  # collected, so that the test fails with it
            errors.append(exc)

    threads = []
    for w in range(10):
        c = shared if w < 8 else ResponseCache(path)
        if c is not shared:
            own.append(c)
        threads.append(threading.Thread(target=thread_worker, args=(w, c)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in own:
        c.close()
    try:
        assert errors == []
        stats = shared.stats()
        assert stats["entries"] == 4 * 50 + 10 * 50 and stats["errors"] == 500
        assert all(shared.get(_key(f"p{w}-{i}")) for w in range(4) for i in range(50))
        assert all(shared.get(_key(f"t{w}-{i}")) for w in range(10) for i in range(50))
    finally:
        shared.close()


def test_no_api_key_reaches_the_file(tmp_path: Path):
    secret = "harness-test-key-" + secrets.token_hex(16)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:  # a server that echoes the key in the answer …
            body = chat_body(f"your header was {request.headers['authorization']}")
            return httpx.Response(200, json=body)
        # … and in an error
        return httpx.Response(
            401, json={"error": {"message": f"Incorrect API key provided: {secret}"}}
        )

    h = Harness(transport=httpx.MockTransport(handler))
    params = {
        "api_key": secret,
        "extra_headers": {"Authorization": f"Bearer {secret}"},
        "openai_api_key": secret,
        "temperature": 0,
    }
    response = h.completion("openai/gpt-4o-mini", USER, **params)
    with pytest.raises(AuthenticationError) as info:
        h.completion("openai/gpt-4o-mini", USER, **params)
    assert all(secret in r.headers["authorization"] for r in seen)  # the key was really used

    call = h.prepare("openai/gpt-4o-mini", USER, params)
    key = key_for_call(call)
    assert key == cache_key(**{**BASE, "params": {"temperature": 0}})
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as c:
        c.put(
            key,
            response=response,
            raw=json.dumps(response.to_dict()).encode(),
            chunks=[[0, {"content": response.content}]],
            latency_ms=5,
            provider="openai",
            model="gpt-4o-mini",
        )
        c.put(
            _key("err"),
            error=info.value,
            raw=f'{{"key": "{secret}"}}',
            latency_ms=1,
            provider="openai",
            model="gpt-4o-mini",
        )
        c.export(tmp_path / "export.jsonl")
    files = list(tmp_path.iterdir())
    blob = b"".join(f.read_bytes() for f in files)
    assert b"your header was Bearer ***" in blob and b"Incorrect API key" in blob
    assert secret.encode() not in blob and secret[-16:].encode() not in blob


# --- maintenance ------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_stats_and_prune(tmp_path: Path):
    clock = Clock(1_000_000.0)
    with ResponseCache(tmp_path / "c.sqlite", clock=clock) as c:
        assert c.stats()["entries"] == 0 and c.stats()["oldest"] is None
        c.put(_key("a"), response=_response(), latency_ms=1, provider="openai", model="gpt")
        clock.now += 3600
        c.put(_key("b"), error=BadRequestError("x"), latency_ms=1, provider="openai", model="gpt")
        clock.now += 3600
        c.put(_key("c"), response=_response(), latency_ms=1, provider="anthropic", model="claude")
        stats = c.stats()
        assert stats["entries"] == 3 and stats["errors"] == 1 and stats["size_bytes"] > 0
        assert (stats["oldest"], stats["newest"]) == (1_000_000.0, 1_007_200.0)
        assert stats["models"] == {
            "anthropic/claude": {"entries": 1, "errors": 0},
            "openai/gpt": {"entries": 2, "errors": 1},
        }
        assert c.prune(7200.5) == 0
        assert c.prune(3600) == 1 and c.get(_key("a")) is None and c.get(_key("b"))
        clock.now += 1
        assert c.prune(0) == 2 and c.stats()["entries"] == 0
        with pytest.raises(ValueError):
            c.prune(-1)


def _fill(c: ResponseCache, clock: Clock, spec: dict[str, tuple[float, str]]) -> None:
    for name, (at, content) in spec.items():
        clock.now = at
        c.put(
            _key(name),
            response=_response(content),
            raw=b"\x01raw" if name == "a" else "raw",
            chunks=[[1.5, {"x": 1}]],
            latency_ms=9,
            ttft_ms=2,
            provider="p",
            model="m",
        )


def test_export_import_round_trip_and_merge(tmp_path: Path):
    clock = Clock(0)
    src = ResponseCache(tmp_path / "src.sqlite", clock=clock)
    _fill(src, clock, {"a": (100.0, "a-old"), "b": (200.0, "b-new"), "c": (300.0, "c")})
    src.put(
        _key("e"), error=RateLimitError("x", retry_after=1), latency_ms=1, provider="p", model="m"
    )
    out = tmp_path / "dump.jsonl"
    assert src.export(out) == 4
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "harness-cache"
    keys = [json.loads(line)["key"] for line in lines[1:]]
    assert keys == sorted(keys) and len(keys) == 4

    with ResponseCache(tmp_path / "copy.sqlite") as copy:
        assert copy.import_(out) == 4
        for name in "abce":
            assert copy.get(_key(name)) == src.get(_key(name))
        assert copy.import_(out) == 0  # same times: nothing is newer

    dst_clock = Clock(0)
    with ResponseCache(tmp_path / "dst.sqlite", clock=dst_clock) as dst:
        _fill(
            dst,
            dst_clock,
            {"a": (150.0, "a-newer-here"), "b": (150.0, "b-older-here"), "d": (50.0, "d")},
        )
        assert dst.import_(out) == 3  # b replaced, c and e added; a kept
        content = {n: dst.get(_key(n)) for n in "abcde"}
        assert {
            n: e.to_model_response().content for n, e in content.items() if e and e.response
        } == {"a": "a-newer-here", "b": "b-new", "c": "c", "d": "d"}
        assert content["e"] is not None and type(content["e"].to_error()) is RateLimitError
    src.close()


def test_import_refuses_bad_files_without_writing(tmp_path: Path, cache: ResponseCache):
    good = tmp_path / "good.jsonl"
    with ResponseCache(tmp_path / "src.sqlite") as src:
        src.put(_key("a"), response=_response(), latency_ms=1, provider="p", model="m")
        src.export(good)
    header, entry = good.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f'{header}\n{entry}\n{{"key": "nothex"}}\n')
    with pytest.raises(CacheError, match=r"bad\.jsonl:3: bad cache entry"):
        cache.import_(bad)
    assert cache.get(_key("a")) is None
    (tmp_path / "plain.jsonl").write_text(entry + "\n")
    with pytest.raises(CacheError, match="not a harness cache export"):
        cache.import_(tmp_path / "plain.jsonl")
    with pytest.raises(CacheError, match="cannot read"):
        cache.import_(tmp_path / "absent.jsonl")


# --- command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
        ("1.5h", 5400),
        (" 7D ", 604800),
    ],
)
def test_parse_duration(text: str, seconds: float):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "-1d", "1y"])
def test_parse_duration_rejects(text: str):
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_cache_command_stats_prune_export_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    db = tmp_path / "c.sqlite"
    month_ago = time.time() - 30 * 86400
    with ResponseCache(db, clock=lambda: month_ago) as c:
        c.put(_key("old"), response=_response(), latency_ms=1, provider="openai", model="gpt")
    with ResponseCache(db) as c:
        c.put(_key("new"), error=BadRequestError("x"), latency_ms=1, provider="openai", model="gpt")

    assert cache_command(["stats", "--path", str(db)]) == 0
    out = capsys.readouterr().out
    assert "entries: 2 (1 errors)" in out and "openai/gpt: 2 (1 errors)" in out
    assert cache_command(["--path", str(db), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2

    dump = tmp_path / "dump.jsonl"
    assert cache_command(["export", str(dump), "--path", str(db)]) == 0
    assert "exported 2 entries" in capsys.readouterr().out
    assert cache_command(["prune", "--older-than", "7d", "--path", str(db)]) == 0
    assert "pruned 1 entries" in capsys.readouterr().out
    other = tmp_path / "new" / "other.sqlite"
    assert cache_command(["import", str(dump), "--path", str(other)]) == 0
    assert "imported 2 entries" in capsys.readouterr().out
    with ResponseCache(other) as c:
        assert c.stats()["entries"] == 2


def test_cache_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    missing = tmp_path / "none.sqlite"
    assert cache_command(["stats", "--path", str(missing)]) == 0
    assert "no response cache" in capsys.readouterr().out and not missing.exists()
    assert cache_command(["export", str(tmp_path / "x.jsonl"), "--path", str(missing)]) == 2
    assert "no response cache" in capsys.readouterr().err
    assert cache_command(["prune", "--older-than", "7", "--path", str(missing)]) == 2
    assert "bad duration" in capsys.readouterr().err
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    assert cache_command(["import", str(junk), "--path", str(tmp_path / "c.sqlite")]) == 2
    assert "not a harness cache export" in capsys.readouterr().err
    assert cache_command([]) == 2
    assert cache_command(["--help"]) == 0
    assert "stats" in capsys.readouterr().out


# --- batched writes inside an event loop -------------------------------------------------------


def _put(cache: ResponseCache, key: str) -> None:
    cache.put(key, response=_response(), latency_ms=5.0, provider="openai", model="m")


def _stored_keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT key FROM entries")}


@pytest.mark.asyncio
async def test_writes_in_one_loop_tick_share_a_transaction_written_before_results_are_seen(
    cache: ResponseCache,
):
    for i in range(3):
        _put(cache, f"k{i}")
    assert cache.get("k1") is not None  # this thread sees its own pending writes
    assert _stored_keys(cache.path) == set()  # not yet written: same tick
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)  # queued after the flush
    await done
    assert _stored_keys(cache.path) == {"k0", "k1", "k2"}


def test_writes_outside_an_event_loop_are_immediate(cache: ResponseCache):
    _put(cache, "now")
    assert _stored_keys(cache.path) == {"now"}


@pytest.mark.asyncio
async def test_a_failed_batch_is_logged_not_raised(cache: ResponseCache, caplog):
    _put(cache, "kept")
    cache.close()  # flushes this thread's batch first
    assert _stored_keys(cache.path) == {"kept"}
    reopened = ResponseCache(cache.path)
    _put(reopened, "k")
    with sqlite3.connect(reopened.path) as other:
        other.execute("DROP TABLE entries")
    with caplog.at_level(logging.WARNING, logger="harness.cache"):
        reopened.flush()
    reopened.close()
    assert "1 answer(s) not stored" in caplog.text
