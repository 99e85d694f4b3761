"""The response store: record provider answers once, replay them for free.

This module owns three things:

* ``cache_key`` — a stable SHA-256 of exactly what can change a model's answer (provider,
  resolved model, normalised ``api_base``, the full messages, every output-relevant
  parameter, the repeat index). Timeouts, retries, keys, headers and the like are left
  out (``NON_OUTPUT_PARAMS``), so they never split or leak into an entry; a streamed and a
  non-streamed call of the same request share one entry.
* ``CacheMode`` — what a run does with the store: ``off``, ``use`` (the default: read, and
  on a miss call and write), ``replay`` (read only; a miss raises ``ReplayMissError``),
  ``record`` (always call and overwrite) and ``refresh-failed`` (serve stored successes,
  call again where an error was stored).
* ``ResponseCache`` — one SQLite file (default ``.harness/cache.sqlite``) in WAL mode with a
  busy timeout, one connection per thread, so pytest-xdist workers and threads read and
  write it at once. Each entry holds the normalised response (or the error), the optional
  raw body and streamed chunks with their timing, the recorded latency and time to first
  token, when and by which harness version it was recorded. API keys are never stored: they
  are not part of the key material, and any registered key that shows up in stored text is
  replaced by ``***``.

``cache_command`` is the ``harness cache stats|prune|export|import`` command line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import json
import math
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harness import errors as _errors
from harness._sqlite import connect_wal
from harness._version import __version__
from harness.errors import ConfigError, HarnessError, ReplayMissError, get_logger, redact_known
from harness.messages import last_user_text
from harness.types import (
    ModelResponse,
    ResponseMeta,
)

if TYPE_CHECKING:
    from harness.providers.base import Call

__all__ = [
    "DEFAULT_PATH",
    "KEY_VERSION",
    "NON_OUTPUT_PARAMS",
    "SCHEMA_VERSION",
    "CacheError",
    "CacheMode",
    "CachedEntry",
    "ResponseCache",
    "cache_command",
    "cache_key",
    "is_cacheable_error",
    "key_for_call",
    "parse_duration",
    "parse_mode",
    "replay_miss_error",
]

DEFAULT_PATH = Path(".harness") / "cache.sqlite"
"""Where the store lives when no path is given (relative to the working directory)."""

SCHEMA_VERSION = 1
"""The table layout version, kept in ``PRAGMA user_version``."""

KEY_VERSION = 1
"""Part of every key: bump it when the canonical form changes, so old entries stop matching."""

NON_OUTPUT_PARAMS: frozenset[str] = frozenset(
    {
        # How long and how often to try: the answer is the same.
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        # Credentials and transport: never key material, never stored.
        "api_key",
        "extra_headers",
        "headers",
        # Harness plumbing.
        "max_workers",
        "mock_latency_ms",
        "on_result",
        # Bookkeeping the provider does not answer differently to.
        "metadata",
        "user",
        # A streamed and a non-streamed call of the same request share one entry.
        "stream",
        "stream_options",
    }
)
"""Parameters left out of the cache key because they cannot change the answer.

Any parameter whose name looks like a credential (``*_key``, ``*api_key*``, ``*secret*``,
``*password*``, ``*token`` but not ``*tokens``, ``authorization``, ``credentials``) is left
out as well, and so is any parameter whose value is ``None`` (``None`` means "not given").
"""

_KEY_LIKE = re.compile(
    r"(^key$|_key$|api_?key|secret|password|passwd|authorization|credential|bearer"
    r"|(^|_)(access|auth|api|id|refresh|session)_?token$)",
    re.IGNORECASE,
)

_BUSY_TIMEOUT_S = 60.0
_log = get_logger("harness.cache")


class CacheError(ConfigError):
    """The cache file cannot be used: not a harness cache, a newer schema, closed, bad export."""


# --- the key ---------------------------------------------------------------------------------


def _is_key_like(name: str) -> bool:
    return bool(_KEY_LIKE.search(name))


def _excluded(name: str) -> bool:
    return name in NON_OUTPUT_PARAMS or _is_key_like(name)


def _canon(value: Any) -> Any:
    """JSON-able data with one spelling per value: integral floats become ints, -0.0 is 0."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"__float__": repr(value)}
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [_canon(v) for v in value]
        return sorted(items, key=_dumps_canonical)
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"__schema__": _canon(value.model_json_schema())}  # a pydantic model class
    if hasattr(value, "model_dump"):
        return _canon(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canon(dataclasses.asdict(value))
    raise TypeError(
        f"cache_key: cannot make a stable key from a {type(value).__name__} value; "
        "pass JSON-like data (dicts, lists, strings, numbers, booleans, None)"
    )


def _dumps_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _normal_api_base(api_base: str | None) -> str | None:
    if api_base is None:
        return None
    base = api_base.strip().rstrip("/")
    return base or None


def _normal_messages(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    # A message key set to None is the same as the key left out ({"content": None} on an
    # assistant tool-call message); deeper Nones (e.g. in a tool's JSON schema) are data.
    return [
        {str(k): _canon(v) for k, v in m.items() if v is not None}
        if isinstance(m, Mapping)
        else _canon(m)
        for m in messages
    ]


def cache_key(
    *,
    provider: str,
    model: str,
    api_base: str | None,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    repeat: int = 0,
) -> str:
    """The cache key of one request: a SHA-256 hex digest of its canonical JSON.

    The canonical JSON holds the provider, the resolved model, ``api_base`` without trailing
    slashes, the full messages, the output-relevant params and the repeat index, with sorted
    keys, no whitespace and ASCII only. Params named in ``NON_OUTPUT_PARAMS``, params that look
    like credentials, and params set to ``None`` are left out. Dict key order and the spelling
    of numbers (``1`` / ``1.0``, ``0.0`` / ``-0.0``) do not change the key; ``True`` and ``1``
    do.

    Args:
        provider: the provider name (``openai``, ``anthropic``, …).
        model: the provider's own model name (``ModelSpec.model``), not an alias.
        api_base: the resolved base URL, or ``None`` for offline models.
        messages: the conversation as sent.
        params: the request parameters (temperature, max_tokens, tools, …).
        repeat: which repetition of the same request this is (0 for the first).

    Returns:
        64 lowercase hex characters.

    Raises:
        TypeError: a param or message holds a value with no stable JSON form.
    """
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
        raise ValueError(f"cache_key: repeat must be an integer >= 0, got {repeat!r}")
    material = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "api_base": _normal_api_base(api_base),
        "messages": _normal_messages(messages),
        "params": {
            str(k): _canon(v) for k, v in params.items() if v is not None and not _excluded(str(k))
        },
        "repeat": repeat,
    }
    return hashlib.sha256(_dumps_canonical(material).encode("ascii")).hexdigest()


def key_for_call(call: Call, repeat: int = 0) -> str:
    """The cache key of a prepared runner ``Call``.

    Besides ``call.params`` this counts what else shapes the answer: the per-call
    ``mock_response``, the spec's ``api_version`` (Azure) and, for offline models, the
    scripted ``responses``/``error`` of the config (not its ``latency_ms``). The key, the
    headers and the timeouts are left out.
    """
    spec = call.spec
    params: dict[str, Any] = dict(call.params)
    if call.mock_response is not None:
        params["mock_response"] = call.mock_response
    if spec.api_version is not None:
        params["api_version"] = spec.api_version
    mock = {k: v for k, v in spec.mock.items() if k != "latency_ms"}
    if mock:
        params["__mock_config__"] = mock
    return cache_key(
        provider=spec.provider,
        model=spec.model,
        api_base=call.api_base,
        messages=call.messages,
        params=params,
        repeat=repeat,
    )


# --- modes -----------------------------------------------------------------------------------


class CacheMode(StrEnum):
    """What a run does with the store (a ``str``: ``CacheMode.USE == "use"``)."""

    OFF = "off"
    """Neither read nor write."""
    USE = "use"
    """Read; on a miss call the provider and write the answer (the default)."""
    REPLAY = "replay"
    """Read only; a miss raises ``ReplayMissError`` (offline CI)."""
    RECORD = "record"
    """Always call, and overwrite what is stored."""
    REFRESH_FAILED = "refresh-failed"
    """Serve stored successes; call again, and overwrite, where an error was stored."""

    @property
    def reads(self) -> bool:
        """Whether this mode looks in the store before calling."""
        return self in (CacheMode.USE, CacheMode.REPLAY, CacheMode.REFRESH_FAILED)

    @property
    def writes(self) -> bool:
        """Whether this mode stores the answers of the calls it makes."""
        return self in (CacheMode.USE, CacheMode.RECORD, CacheMode.REFRESH_FAILED)


def parse_mode(value: str | CacheMode) -> CacheMode:
    """The ``CacheMode`` named by ``value`` (case-insensitive; ``_`` works as ``-``).

    Raises:
        ValueError: naming the valid modes.
    """
    if isinstance(value, CacheMode):
        return value
    text = str(value).strip().lower().replace("_", "-")
    for mode in CacheMode:
        if mode.value == text:
            return mode
    valid = ", ".join(m.value for m in CacheMode)
    raise ValueError(f"unknown cache mode {value!r}; valid modes: {valid}")


_SETUP_ERRORS: tuple[type[HarnessError], ...] = (
    ConfigError,
    _errors.AuthenticationError,
    _errors.PermissionDeniedError,
    _errors.BillingError,
    ReplayMissError,
    _errors.AllModelsFailed,
)


def is_cacheable_error(error: BaseException) -> bool:
    """Whether an error is the model's answer to the request and worth storing.

    Errors about the local setup (config, key, permission, billing) or the cache itself are
    not: fixing the setup must not leave a stored failure behind. Everything else that
    reached its final attempt is (``refresh-failed`` calls those again).
    """
    return isinstance(error, HarnessError) and not isinstance(error, _SETUP_ERRORS)


def _spaced_text(content: Any) -> str:
    """A message content as text: a string as it is, the text parts of a list spaced apart."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def replay_miss_error(
    provider: str | None,
    model: str | None,
    messages: Sequence[Mapping[str, Any]] | None,
    key: str | None = None,
) -> ReplayMissError:
    """The error for a replay-mode miss: which model, and the start of the last user message.

    Only the provider, the model, 80 characters of the last user message and the first 12
    hex digits of the key are shown; never parameters, headers or keys.
    """
    name = model or "?"
    if provider and not name.startswith(provider + "/"):
        name = f"{provider}/{name}"
    text = last_user_text(messages, _spaced_text)
    if text is None:
        said = "no user message"
    else:
        flat = " ".join(text.split())
        said = f"last user message {flat[:80]!r}" + ("…" if len(flat) > 80 else "")
    where = f", key {key[:12]}" if key else ""
    return ReplayMissError(
        f"replay mode: no recorded answer for {name} ({said}{where}); "
        "run once with cache mode 'use' or 'record' to record it",
        provider=provider,
        model=model,
    )


# --- entries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """One stored answer (or error) with its recorded timing."""

    key: str
    response: dict[str, Any] | None
    """``ModelResponse.to_dict()`` of the recorded answer; ``None`` for an error."""
    error: dict[str, Any] | None
    """``HarnessError.to_dict()`` of the recorded error; ``None`` for an answer."""
    raw: bytes | str | None
    """The provider's raw body, when it was kept."""
    chunks: list[tuple[float, dict[str, Any]]] | None
    """Streamed chunks as ``(ms_since_start, chunk)``, when the call was streamed."""
    latency_ms: float
    ttft_ms: float | None
    recorded_at: float
    """Unix time of the recording."""
    harness_version: str
    provider: str
    model: str
    meta: dict[str, Any] | None = None
    """``ResponseMeta.to_dict()`` of the recorded answer (flags, cost, raw finish reasons)."""

    @property
    def is_error(self) -> bool:
        """Whether the recorded outcome was an error."""
        return self.error is not None

    @property
    def saved_cost_usd(self) -> float | None:
        """What the recorded call cost, now saved by replaying it."""
        cost = (self.meta or {}).get("cost_usd")
        return float(cost) if isinstance(cost, int | float) else None

    def to_model_response(self) -> ModelResponse:
        """A fresh ``ModelResponse`` rebuilt from the stored answer.

        ``harness.replayed`` is true, ``latency_ms`` and ``ttft_ms`` are the recorded ones,
        ``attempts`` is 0 (no call was made), ``cost_usd`` is ``None`` and
        ``saved_cost_usd`` is the recorded cost.

        Raises:
            CacheError: the entry is a stored error (use ``to_error``).
        """
        if self.response is None:
            raise CacheError(f"cache entry {self.key[:12]} holds an error, not a response")
        response = ModelResponse.from_dict(dict(self.response))
        response.harness = self._replayed_meta()
        return response

    def _replayed_meta(self) -> ResponseMeta:
        meta = ResponseMeta.from_dict(dict(self.meta or {}))
        meta.provider = meta.provider or self.provider
        meta.model = meta.model or self.model
        meta.latency_ms = self.latency_ms
        meta.attempts = 0
        meta.cost_usd = None
        if self.ttft_ms is not None:
            meta.ttft_ms = self.ttft_ms
        meta.replayed = True
        meta.saved_cost_usd = self.saved_cost_usd
        return meta

    def to_error(self) -> HarnessError:
        """The stored error, rebuilt as its own class from ``harness.errors``.

        An unknown class name gives a plain ``HarnessError``; ``attempts`` is 0.

        Raises:
            CacheError: the entry is a stored response (use ``to_model_response``).
        """
        if self.error is None:
            raise CacheError(f"cache entry {self.key[:12]} holds a response, not an error")
        error = _error_from_dict(self.error)
        error.attempts = 0
        return error


def _error_class(name: object) -> type[HarnessError]:
    if isinstance(name, str) and name in _errors.__all__:
        cls = getattr(_errors, name)
        if isinstance(cls, type) and issubclass(cls, HarnessError):
            return cls
    return HarnessError


def _error_from_dict(data: Mapping[str, Any]) -> HarnessError:
    cls = _error_class(data.get("type"))
    if issubclass(cls, _errors.AllModelsFailed):
        nested = data.get("errors") or {}
        return _errors.AllModelsFailed(
            {str(m): _error_from_dict(e) for m, e in nested.items() if isinstance(e, Mapping)}
        )
    return cls(
        str(data.get("message", "")),
        provider=data.get("provider"),
        model=data.get("model"),
        status=data.get("status"),
        body=data.get("body"),
        retry_after=data.get("retry_after"),
        request_id=data.get("request_id"),
    )


# --- storage ---------------------------------------------------------------------------------

_COLUMNS = (
    "key",
    "is_error",
    "response",
    "meta",
    "error",
    "raw",
    "chunks",
    "latency_ms",
    "ttft_ms",
    "recorded_at",
    "harness_version",
    "provider",
    "model",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    is_error INTEGER NOT NULL,
    response TEXT,
    meta TEXT,
    error TEXT,
    raw BLOB,
    chunks TEXT,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    recorded_at REAL NOT NULL,
    harness_version TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_recorded_at ON entries (recorded_at);
"""

_INSERT = (
    f"INSERT OR REPLACE INTO entries ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)

_MERGE = (
    f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    + " WHERE excluded.recorded_at > entries.recorded_at"
)

_EXPORT_FORMAT = "harness-cache"

Row = tuple[Any, ...]


def _dumps(value: Any) -> str:
    return redact_known(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _redact_raw(raw: bytes | str | None) -> bytes | str | None:
    if raw is None or isinstance(raw, str):
        return None if raw is None else redact_known(raw)
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return bytes(raw)
    cleaned = redact_known(text)
    return bytes(raw) if cleaned == text else cleaned.encode("utf-8")


def _chunk_list(chunks: Sequence[Any] | None) -> list[list[Any]] | None:
    if chunks is None:
        return None
    out: list[list[Any]] = []
    for i, item in enumerate(chunks):
        if (
            not isinstance(item, Sequence)
            or isinstance(item, str | bytes)
            or len(item) != 2
            or isinstance(item[0], bool)
            or not isinstance(item[0], int | float)
            or not isinstance(item[1], Mapping)
        ):
            raise ValueError(f"chunks[{i}]: expected [ms_since_start, chunk_dict], got {item!r}")
        out.append([float(item[0]), dict(item[1])])
    return out


def _entry_from_row(row: Row) -> CachedEntry:
    key, _, response, meta, error, raw, chunks, latency, ttft, at, version, prov, model = row
    chunk_list = _loads(chunks)
    return CachedEntry(
        key=key,
        response=_loads(response),
        error=_loads(error),
        raw=raw,
        chunks=[(float(ms), chunk) for ms, chunk in chunk_list] if chunk_list is not None else None,
        latency_ms=float(latency),
        ttft_ms=None if ttft is None else float(ttft),
        recorded_at=float(at),
        harness_version=version,
        provider=prov,
        model=model,
        meta=_loads(meta),
    )


class ResponseCache:
    """The SQLite response store; safe to share between threads and processes.

    Args:
        path: the database file (parent directories are created). Default
            ``.harness/cache.sqlite`` in the working directory.
        busy_timeout_s: how long a write waits for another writer before failing.
        clock: the time source for ``recorded_at`` and ``prune`` (tests pass a fake one).

    Raises:
        CacheError: the file is not a harness cache, or was written with another schema.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        busy_timeout_s: float = _BUSY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._conn()  # open now, so that a bad file fails here and not on first use

    # --- connections ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise CacheError(f"the response cache {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._open()
            self._local.conn = conn
            self._local.pid = os.getpid()
            with self._lock:
                self._connections.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = connect_wal(self.path, self._busy_timeout_s)
        except sqlite3.OperationalError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise CacheError(f"{self.path} is not a harness response cache: {exc}") from None
            raise CacheError(f"cannot open the response cache {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise CacheError(f"{self.path} is not a harness response cache: {exc}") from None
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            self._ensure_schema(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CacheError(f"{self.path} is not a harness response cache: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with _transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    tables = {
                        r[0]
                        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                    }
                    if tables - {"entries"}:
                        raise CacheError(
                            f"{self.path} is an SQLite database with other tables "
                            f"({', '.join(sorted(tables))}), not a harness response cache"
                        )
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise CacheError(
                f"{self.path} holds a response cache of schema version {version}, but this "
                f"harness ({__version__}) reads version {SCHEMA_VERSION}; delete the file "
                "or use the harness version that wrote it"
            )

    def close(self) -> None:
        """Close every connection; later calls raise ``CacheError``. Idempotent.

        This thread's batched writes are written first.
        """
        if not self._closed:
            self.flush()
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- entries -------------------------------------------------------------------------

    def get(self, key: str) -> CachedEntry | None:
        """The stored entry for ``key``, or ``None``."""
        pending: dict[str, tuple[Any, ...]] | None = getattr(self._local, "pending", None)
        if pending and key in pending:
            return _entry_from_row(pending[key])
        row = (
            self._conn()
            .execute(f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else _entry_from_row(row)

    def put(
        self,
        key: str,
        *,
        response: ModelResponse | Mapping[str, Any] | None = None,
        error: HarnessError | Mapping[str, Any] | None = None,
        raw: bytes | str | None = None,
        chunks: Sequence[Any] | None = None,
        latency_ms: float,
        ttft_ms: float | None = None,
        provider: str,
        model: str,
    ) -> None:
        """Store (or overwrite) the outcome of one call.

        Args:
            key: from ``cache_key``.
            response: the answer: a ``ModelResponse`` (its ``harness`` metadata is kept
                beside it) or its ``to_dict()``.
            error: or the final error: a ``HarnessError`` or its ``to_dict()``.
            raw: the provider's raw body, if worth keeping.
            chunks: for a streamed call, ``[ms_since_start, chunk_dict]`` pairs.
            latency_ms: the call's measured latency.
            ttft_ms: time to the first token, for a streamed call.
            provider: the provider name.
            model: the provider's model name.

        Raises:
            ValueError: not exactly one of ``response``/``error``, or bad timings or chunks.
        """
        if (response is None) == (error is None):
            raise ValueError("put: give exactly one of response= or error=")
        for name, value in (("latency_ms", latency_ms), ("ttft_ms", ttft_ms)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ValueError(f"put: {name} must be a number >= 0, got {value!r}")
        meta: dict[str, Any] | None = None
        if isinstance(response, ModelResponse):
            meta = response.harness.to_dict()
            response = response.to_dict()
        if isinstance(error, HarnessError):
            error = error.to_dict()
        row = (
            key,
            int(error is not None),
            None if response is None else _dumps(dict(response)),
            None if meta is None else _dumps(meta),
            None if error is None else _dumps(dict(error)),
            _redact_raw(raw),
            None if chunks is None else _dumps(_chunk_list(chunks)),
            float(latency_ms),
            None if ttft_ms is None else float(ttft_ms),
            self._clock(),
            __version__,
            provider,
            model,
        )
        self._write(row)

    def _write(self, row: tuple[Any, ...]) -> None:
        """Write ``row`` now, or, inside a running event loop, with this tick's other writes.

        A write per transaction costs SQLite ~0.1 ms; answers arriving together share one.
        The batch is written by a callback queued (``call_soon``) when its first row arrives,
        ahead of the callbacks that hand the writing call's result to anyone, so whoever
        receives an answer finds it stored. Until then ``get`` in this thread sees it.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._conn().execute(_INSERT, row)
            return
        pending: dict[str, tuple[Any, ...]] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        if not pending:
            loop.call_soon(self.flush)
        pending[row[0]] = row

    def flush(self) -> None:
        """Write this thread's batched writes now (one transaction).

        A failure is logged, not raised: it happens after the call that made the answer has
        returned, and a store that cannot be written must not fail a test run.
        """
        pending: dict[str, tuple[Any, ...]] | None = getattr(self._local, "pending", None)
        if not pending:
            return
        rows = list(pending.values())
        pending.clear()
        try:
            conn = self._conn()
            with _transaction(conn):
                conn.executemany(_INSERT, rows)
        except (sqlite3.Error, CacheError) as exc:
            _log.warning(
                "response store %s: %d answer(s) not stored: %s", self.path, len(rows), exc
            )

    def lookup(
        self,
        key: str,
        mode: CacheMode | str,
        *,
        provider: str | None = None,
        model: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
    ) -> CachedEntry | None:
        """The entry to serve instead of calling, by the rules of ``mode``.

        ``None`` means "call the provider". ``off`` and ``record`` never read; ``use`` and
        ``replay`` serve whatever is stored (answer or error); ``refresh-failed`` serves
        only stored answers. ``provider``, ``model`` and ``messages`` only word the replay
        error.

        Raises:
            ReplayMissError: ``replay`` mode and nothing is stored for ``key``.
        """
        mode = parse_mode(mode)
        if not mode.reads:
            return None
        entry = self.get(key)
        if entry is None and mode is CacheMode.REPLAY:
            raise replay_miss_error(provider, model, messages, key)
        if entry is not None and entry.is_error and mode is CacheMode.REFRESH_FAILED:
            return None
        return entry

    # --- maintenance ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and sizes of the store.

        Returns:
            ``path``, ``entries``, ``errors``, ``size_bytes`` (database plus WAL file),
            ``oldest`` and ``newest`` (unix times, ``None`` when empty), and ``models``:
            ``{"provider/model": {"entries": n, "errors": e}}``.
        """
        conn = self._conn()
        entries, errors, oldest, newest = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(is_error), 0), MIN(recorded_at), MAX(recorded_at) "
            "FROM entries"
        ).fetchone()
        models = {
            f"{prov}/{model}": {"entries": n, "errors": e}
            for prov, model, n, e in conn.execute(
                "SELECT provider, model, COUNT(*), SUM(is_error) FROM entries "
                "GROUP BY provider, model ORDER BY provider, model"
            )
        }
        return {
            "path": str(self.path),
            "entries": entries,
            "errors": errors,
            "size_bytes": self._size_bytes(),
            "oldest": oldest,
            "newest": newest,
            "models": models,
        }

    def _size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total

    def prune(self, older_than_s: float) -> int:
        """Delete entries recorded more than ``older_than_s`` seconds ago; returns how many."""
        if older_than_s < 0:
            raise ValueError(f"prune: older_than_s must be >= 0, got {older_than_s!r}")
        cutoff = self._clock() - older_than_s
        cur = self._conn().execute("DELETE FROM entries WHERE recorded_at < ?", (cutoff,))
        return cur.rowcount

    def export(self, path: str | os.PathLike[str]) -> int:
        """Write every entry as JSON lines, sorted by key, after one header line.

        Raw bodies that are bytes are base64-encoded. Returns the number of entries.
        """
        conn = self._conn()
        target = Path(path)
        count = 0
        with _transaction(conn, immediate=False):
            total = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM entries ORDER BY key")
            with target.open("w", encoding="utf-8", newline="\n") as out:
                header = {
                    "format": _EXPORT_FORMAT,
                    "schema": SCHEMA_VERSION,
                    "harness_version": __version__,
                    "entries": total,
                }
                out.write(json.dumps(header, sort_keys=True) + "\n")
                for row in rows:
                    out.write(json.dumps(_export_record(row), sort_keys=True) + "\n")
                    count += 1
        return count

    def import_(self, path: str | os.PathLike[str]) -> int:
        """Merge an ``export`` file in; where both hold a key, the newer ``recorded_at`` wins.

        The whole file is checked before anything is written. Returns how many entries were
        added or replaced.

        Raises:
            CacheError: the file is missing or is not a harness cache export (names the line).
        """
        rows = _read_export(Path(path))
        conn = self._conn()
        before = conn.total_changes
        with _transaction(conn):
            conn.executemany(_MERGE, rows)
        return conn.total_changes - before


@contextmanager
def _transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[None]:
    """``BEGIN [IMMEDIATE]`` … ``COMMIT``, rolled back on error (connections are autocommit).

    ``IMMEDIATE`` takes the write lock up front, so a writer waits (busy timeout) instead
    of failing when another connection wrote between its read and its write.
    """
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _export_record(row: Row) -> dict[str, Any]:
    record = dict(zip(_COLUMNS, row, strict=True))
    for column in ("response", "meta", "error", "chunks"):
        record[column] = _loads(record[column])
    record["is_error"] = bool(record["is_error"])
    raw = record["raw"]
    if isinstance(raw, bytes):
        record["raw"] = base64.b64encode(raw).decode("ascii")
        record["raw_encoding"] = "base64"
    else:
        record["raw_encoding"] = None if raw is None else "text"
    return record


def _read_export(path: Path) -> list[Row]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CacheError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != _EXPORT_FORMAT:
        raise CacheError(f"{path}: not a harness cache export (line 1 is not its header)")
    if header.get("schema") != SCHEMA_VERSION:
        raise CacheError(
            f"{path}: exported with cache schema {header.get('schema')!r}, "
            f"this harness reads {SCHEMA_VERSION}"
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            rows.append(_import_row(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            raise CacheError(f"{path}:{number}: bad cache entry: {exc}") from None
    return rows


def _import_row(record: Any) -> Row:
    if not isinstance(record, dict):
        raise TypeError(f"expected an object, got {type(record).__name__}")
    if not isinstance(record["key"], str) or not re.fullmatch(r"[0-9a-f]{64}", record["key"]):
        raise ValueError(f"key {record['key']!r} is not a SHA-256 hex digest")
    if (record.get("response") is None) == (record.get("error") is None):
        raise ValueError("an entry holds exactly one of response and error")
    raw = record.get("raw")
    if raw is not None and record.get("raw_encoding") == "base64":
        raw = base64.b64decode(raw, validate=True)
    elif raw is not None and not isinstance(raw, str):
        raise TypeError("raw must be a string")
    chunks = record.get("chunks")
    ttft = record.get("ttft_ms")
    return (
        record["key"],
        int(record.get("error") is not None),
        None if record.get("response") is None else _dumps(record["response"]),
        None if record.get("meta") is None else _dumps(record["meta"]),
        None if record.get("error") is None else _dumps(record["error"]),
        _redact_raw(raw),
        None if chunks is None else _dumps(_chunk_list(chunks)),
        float(record["latency_ms"]),
        None if ttft is None else float(ttft),
        float(record["recorded_at"]),
        str(record["harness_version"]),
        str(record["provider"]),
        str(record["model"]),
    )


# --- command line ----------------------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or ``1d12h``.

    Raises:
        ValueError: naming the accepted form.
    """
    compact = str(text).strip().lower().replace(" ", "")
    if not compact or not re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", compact):
        raise ValueError(
            f"bad duration {text!r}: use a number with a unit s, m, h, d or w "
            "(e.g. 30m, 12h, 7d, 1d12h)"
        )
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(compact))


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cache_parser() -> argparse.ArgumentParser:
    path_opt = argparse.ArgumentParser(add_help=False)
    path_opt.add_argument(
        "--path",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"the cache database (default {DEFAULT_PATH})",
    )
    ap = argparse.ArgumentParser(
        prog="harness cache",
        description="Inspect and maintain the response cache.",
        parents=[path_opt],
    )
    sub = ap.add_subparsers(dest="action", required=True)
    stats = sub.add_parser("stats", parents=[path_opt], help="entries, errors, size, models")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    prune = sub.add_parser("prune", parents=[path_opt], help="delete old entries")
    prune.add_argument(
        "--older-than",
        type=_duration_arg,
        required=True,
        metavar="DURATION",
        help="age to delete beyond: 30m, 12h, 7d, …",
    )
    exp = sub.add_parser("export", parents=[path_opt], help="write all entries as JSON lines")
    exp.add_argument("file", type=Path)
    imp = sub.add_parser("import", parents=[path_opt], help="merge an export (newer wins)")
    imp.add_argument("file", type=Path)
    return ap


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _print_stats(stats: Mapping[str, Any]) -> None:
    print(f"cache:   {stats['path']}")
    print(f"entries: {stats['entries']} ({stats['errors']} errors)")
    print(f"size:    {_size(stats['size_bytes'])}")
    print(f"oldest:  {_when(stats['oldest'])}")
    print(f"newest:  {_when(stats['newest'])}")
    for name, counts in stats["models"].items():
        print(f"  {name}: {counts['entries']} ({counts['errors']} errors)")


def _run_command(args: argparse.Namespace, path: Path) -> int:
    if args.action != "import" and not path.exists():
        if args.action == "export":
            raise CacheError(f"no response cache at {path}")
        print(f"no response cache at {path} (0 entries)")
        return 0
    with ResponseCache(path) as cache:
        if args.action == "stats":
            stats = cache.stats()
            if args.json:
                print(json.dumps(stats, indent=2, sort_keys=True))
            else:
                _print_stats(stats)
        elif args.action == "prune":
            print(f"pruned {cache.prune(args.older_than)} entries from {path}")
        elif args.action == "export":
            print(f"exported {cache.export(args.file)} entries to {args.file}")
        else:
            print(f"imported {cache.import_(args.file)} entries from {args.file} into {path}")
    return 0


def cache_command(argv: Sequence[str]) -> int:
    """``harness cache stats|prune --older-than 7d|export FILE|import FILE [--path DB]``.

    Prints the outcome and returns the exit status: 0 on success, 2 on bad arguments or an
    unusable cache or export file (one line on stderr says which).
    """
    try:
        args = _cache_parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse has printed the usage or the help
        return exc.code if isinstance(exc.code, int) else 2
    path = Path(getattr(args, "path", DEFAULT_PATH))
    try:
        return _run_command(args, path)
    except (CacheError, OSError) as exc:
        message = exc.message if isinstance(exc, CacheError) else str(exc)
        print(f"harness cache {args.action}: {message}", file=sys.stderr)
        return 2
