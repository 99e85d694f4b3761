"""The response store: record provider answers once, replay them for free.

This module owns two things (the keys that index the store are ``harness.cache_keys``):

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
  replaced by ``***``. ``export`` and ``import_`` move entries through JSON lines.

The ``harness cache stats|prune|export|import`` command line is in ``harness.cli``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import errors as _errors
from harness._sqlite import ThreadConnections, connect_wal, transaction
from harness._version import __version__
from harness.embeddings import EmbeddingResponse
from harness.errors import ConfigError, HarnessError, ReplayMissError, get_logger, redact_known
from harness.messages import last_user_text
from harness.paths import DEFAULT_CACHE_PATH
from harness.types import (
    ModelResponse,
    ResponseMeta,
)

__all__ = [
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "CacheError",
    "CacheMode",
    "CachedEntry",
    "ResponseCache",
    "is_cacheable_error",
    "parse_mode",
    "replay_miss_error",
]

DEFAULT_PATH = DEFAULT_CACHE_PATH
"""Where the store lives when no path is given (``harness.paths``)."""

SCHEMA_VERSION = 1
"""The table layout version, kept in ``PRAGMA user_version``."""

_BUSY_TIMEOUT_S = 60.0
_log = get_logger("harness.cache")


class CacheError(ConfigError):
    """The cache file cannot be used: not a harness cache, a newer schema, closed, bad export."""


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

    def to_embedding_response(self) -> EmbeddingResponse:
        """A fresh ``EmbeddingResponse`` rebuilt from a stored embeddings answer.

        The replay metadata is as for ``to_model_response``.

        Raises:
            CacheError: the entry is a stored error (use ``to_error``).
        """
        if self.response is None:
            raise CacheError(f"cache entry {self.key[:12]} holds an error, not a response")
        response = EmbeddingResponse.from_dict(dict(self.response))
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
        error = HarnessError.from_dict(self.error)
        error.attempts = 0
        return error


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
        path: str | os.PathLike[str] = DEFAULT_CACHE_PATH,
        *,
        busy_timeout_s: float = _BUSY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._local = threading.local()  # this thread's batched writes
        self._connections = ThreadConnections(self._open)
        self._closed = False
        self._conn()  # open now, so that a bad file fails here and not on first use

    # --- connections ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise CacheError(f"the response cache {self.path} is closed")
        return self._connections.get()

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
            with transaction(conn):
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
        """Close this process's connections; later calls raise ``CacheError``. Idempotent.

        This thread's batched writes are written first.
        """
        if not self._closed:
            self.flush()
        self._closed = True
        self._connections.close()

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
        response: ModelResponse | EmbeddingResponse | Mapping[str, Any] | None = None,
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
            response: the answer: a ``ModelResponse`` or ``EmbeddingResponse`` (its
                ``harness`` metadata is kept beside it) or its ``to_dict()``.
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
        if isinstance(response, ModelResponse | EmbeddingResponse):
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
            with transaction(conn):
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
        with transaction(conn, immediate=False):
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
        with transaction(conn):
            conn.executemany(_MERGE, rows)
        return conn.total_changes - before


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
