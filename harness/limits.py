"""Per-model concurrency, request and token rates, shared by every process on the machine.

This module owns ``SharedLimiter`` (concurrency slots, requests per minute, tokens per
minute, and a cool-down after a 429, per model key), its adaptive rule ``AdaptiveRule``,
and ``CostBudget`` (a session-wide spending cap; calls in flight hold their estimated cost
against it). Both keep their state in one SQLite file (default ``.harness/limits.sqlite``),
so the limits hold across pytest-xdist workers and separate processes alike, not per
process.

**Slots are leases.** Taking a slot inserts a row into ``leases`` with the owner's pid, host
and an expiry time; releasing it deletes the row. A model is full when it has as many rows
as its effective limit. A row stops counting when its lease has expired, or (only checked
when the model looks full, at most every half second per process and model) when its owner
process on this host no longer exists or is a zombie: so slots held by a crashed or killed
process come back without anyone cleaning up. Leases do not renew: ``lease_seconds`` must
exceed the longest call (the pid check is the usual way back; expiry is the backstop for
another host, a reused pid, or Windows, where pids are not checked).

**Rates are sliding windows.** When a model has ``rpm`` or ``tpm``, every admitted request
adds a row ``(t, tokens)`` to ``starts``. A request is admitted at time ``t`` only if
fewer than ``rpm`` requests started in ``(t − 60 s, t]`` and the token estimates in that
window plus its own stay within ``tpm`` (a single request bigger than ``tpm`` still goes
when the window is empty, rather than never). ``report_success(..., tokens, lease=...)``
replaces the estimate with the actual count. Each check and insert happens in one
``BEGIN IMMEDIATE`` transaction that reads the clock inside the lock, so starts are recorded
in clock order and any 60-second span holds at most ``rpm`` of them.

**A 429 slows the model down for everyone** (``report_rate_limited``): all processes wait
out one cool-down (the server's ``Retry-After``, or ``default_cooldown`` doubling with each
consecutive 429, at most ``max_cooldown``), and the model's *adaptive limit* is cut:

* decrease: ``limit = max(1, int(current · 0.5))`` where ``current`` is the adaptive limit,
  else the configured ``max_concurrency``, else (no limit configured) the number of calls
  in flight. Only one cut per burst: a 429 on a request that started before the last cut
  (or, without a lease, within ``decrease_gap`` of it) does not cut again.
* recovery: once ``quiet_period`` has passed since the last 429, every ``recover_after``
  successes raise the limit by one; when it climbs back to where it was cut from (the
  configured limit, or the level in flight at the first cut) the restriction is lifted.
  A restriction untouched for ``forget_after`` seconds is forgotten.

The effective concurrency is the smaller of the configured and the adaptive limit.

**Waiting never blocks the event loop.** An attempt is one ``BEGIN IMMEDIATE`` transaction
that does not wait for SQLite's lock (a busy database counts as "not yet"); it takes
microseconds, so it runs inline. Within a process, the tasks waiting for a model queue up
first come first served and only the head polls, sleeping with ``asyncio`` for a jittered
2 ms growing to 20 ms (or, when a cool-down or window has a known end, up to ``hint_max``);
a release in the process wakes the head at once, and an admitted head wakes the next.
Across processes admission is whoever polls first. Reports and releases are short
blocking transactions (they wait, in 0.1–5 ms steps, for the lock).

**Unlimited models cost (almost) nothing.** When a call passes no limits, ``acquire`` does
not touch the database, as long as an in-process note says the model is calm (no cool-down,
no adaptive limit); that note is re-read at most every ``refresh`` seconds (0.1), so a 429
reported by another process is seen within that time.

Processes should pass the same limits for the same model key; the last one seen is stored.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from harness._sqlite import ThreadConnections, connect_wal, is_busy, transaction
from harness.paths import DEFAULT_LIMITS_PATH

__all__ = [
    "AdaptiveRule",
    "AdaptiveState",
    "BudgetHold",
    "CostBudget",
    "DEFAULT_PATH",
    "Lease",
    "SharedLimiter",
]

DEFAULT_PATH = DEFAULT_LIMITS_PATH
"""Where limiter and budget state live unless told otherwise (``harness.paths``)."""

WINDOW = 60.0
"""Seconds in the rpm/tpm window."""

_NEVER = float("-inf")
_BLOCKING_TIMEOUT = 10.0  # seconds a blocking transaction waits for the lock
_FOLLOWER_PAUSE = 0.25  # seconds a queued (not head) waiter sleeps unless woken
_RECLAIM_EVERY = 0.5  # seconds (real time) between dead-owner scans per process and model
_HOST = socket.gethostname()

Clock = Callable[[], float]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS models (
        model TEXT PRIMARY KEY,
        max_concurrency INTEGER, rpm INTEGER, tpm INTEGER,
        adaptive_limit INTEGER, ceiling INTEGER,
        successes INTEGER NOT NULL DEFAULT 0,
        strikes INTEGER NOT NULL DEFAULT 0,
        last_limited REAL, last_decrease REAL,
        cool_until REAL NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS leases (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
        started REAL NOT NULL, expires REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS leases_model ON leases (model)",
    """CREATE TABLE IF NOT EXISTS starts (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL, t REAL NOT NULL,
        tokens INTEGER NOT NULL, requests INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS starts_model_t ON starts (model, t)",
    "CREATE TABLE IF NOT EXISTS budgets (key TEXT PRIMARY KEY, spent REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS budget_holds (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL, amount REAL NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS budget_holds_key ON budget_holds (key)",
)


# --- the adaptive rule (pure) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdaptiveState:
    """A model's adaptive concurrency state, as stored (times on the limiter's clock)."""

    limit: int | None = None
    """The adaptive concurrency limit; ``None`` when there is no restriction."""
    ceiling: int | None = None
    """The level recovery climbs back to before the restriction is lifted."""
    successes: int = 0
    """Successes counted toward the next +1."""
    strikes: int = 0
    """Consecutive 429s (reset by a success); doubles the default cool-down."""
    last_limited: float = _NEVER
    """When the last 429 was reported."""
    last_decrease: float = _NEVER
    """When the limit was last cut."""

    @property
    def calm(self) -> bool:
        """No restriction and no unanswered 429."""
        return self.limit is None and self.strikes == 0


@dataclass(frozen=True, slots=True)
class AdaptiveRule:
    """Multiplicative decrease on a 429, additive recovery after a quiet period.

    Args:
        decrease_factor: the limit is multiplied by this on a 429 (rounded down).
        min_limit: the limit never goes below this.
        recover_after: successes per +1 of recovery.
        quiet_period: seconds after the last 429 before successes count toward recovery.
        default_cooldown: cool-down when the 429 gave no ``Retry-After``; doubled for each
            further consecutive 429.
        max_cooldown: no cool-down is longer than this, whatever the server says.
        decrease_gap: without a lease, 429s closer together than this cut the limit once.
        forget_after: a restriction with no 429 for this long is dropped.
    """

    decrease_factor: float = 0.5
    min_limit: int = 1
    recover_after: int = 10
    quiet_period: float = 5.0
    default_cooldown: float = 1.0
    max_cooldown: float = 60.0
    decrease_gap: float = 1.0
    forget_after: float = 600.0

    def cooldown(self, retry_after: float | None, strikes: int) -> float:
        """Seconds everyone waits after the ``strikes``-th consecutive 429."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_cooldown)
        backoff = self.default_cooldown * 2.0 ** max(strikes - 1, 0)
        return min(backoff, self.max_cooldown)

    def current(self, state: AdaptiveState, now: float) -> AdaptiveState:
        """``state``, or a fresh one when its last 429 is older than ``forget_after``."""
        if not state.calm and now - state.last_limited > self.forget_after:
            return AdaptiveState()
        return state

    def on_rate_limited(
        self,
        state: AdaptiveState,
        *,
        now: float,
        configured: int | None,
        in_flight: int,
        started: float | None = None,
    ) -> AdaptiveState:
        """The state after a 429 at ``now``.

        Args:
            state: the state before.
            now: the time of the report.
            configured: the model's configured ``max_concurrency`` (``None``: unlimited).
            in_flight: calls in flight now; the level cut from when nothing is configured.
            started: when the rate-limited request started, if known (its lease).
        """
        strikes = state.strikes + 1
        if started is not None:
            cut = started > state.last_decrease
        else:
            cut = now - state.last_decrease >= self.decrease_gap
        if not cut:
            return replace(state, strikes=strikes, successes=0, last_limited=now)
        current = state.limit if state.limit is not None else (configured or max(in_flight, 1))
        if configured:
            current = min(current, configured)
        limit = max(self.min_limit, int(current * self.decrease_factor))
        ceiling = state.ceiling if state.ceiling is not None else current
        return AdaptiveState(limit, ceiling, 0, strikes, now, now)

    def on_success(
        self, state: AdaptiveState, *, now: float, configured: int | None
    ) -> AdaptiveState:
        """The state after a successful call at ``now``."""
        if state.limit is None:
            return state if state.strikes == 0 else replace(state, strikes=0)
        if now - state.last_limited < self.quiet_period:
            return replace(state, strikes=0)
        successes = state.successes + 1
        if successes < self.recover_after:
            return replace(state, strikes=0, successes=successes)
        limit = state.limit + 1
        top = _smallest(state.ceiling, configured or None)
        if top is not None and limit >= top:
            return AdaptiveState(last_limited=state.last_limited, last_decrease=state.last_decrease)
        return replace(state, limit=limit, successes=0, strikes=0)


# --- storage ---------------------------------------------------------------------------------


class _Store:
    """One SQLite file; a connection per process and thread; explicit short transactions."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.round_trips = 0
        """Database accesses made through this store (tests use it to see the fast path)."""
        self._conns = ThreadConnections(self._open)

    def _conn(self) -> sqlite3.Connection:
        self.round_trips += 1
        return self._conns.get()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A blocking timeout only while setting up; afterwards busy means "raise".
        conn = connect_wal(self.path, _BLOCKING_TIMEOUT)
        try:
            # Coordination state is short-lived: an OS crash may lose it, an app crash may not.
            conn.execute("PRAGMA synchronous = OFF")
            with transaction(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
            conn.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def transaction(self, *, wait: bool) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``).

        With ``wait=False`` a busy database raises ``sqlite3.OperationalError`` at once;
        with ``wait=True`` this thread sleeps in short steps (0.1 ms growing to 5 ms) until
        the lock is free, for at most ten seconds: other transactions take microseconds.
        """
        return transaction(self._conn(), poll_s=_BLOCKING_TIMEOUT if wait else None)

    def read(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One row of a read outside any transaction (never waits for writers in WAL)."""
        row: tuple[Any, ...] | None = self._conn().execute(sql, args).fetchone()
        return row

    def close(self) -> None:
        """Close the connections this process opened (from any thread, when idle)."""
        self._conns.close()


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host exists and is not a zombie (POSIX only)."""
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return not stat[stat.rfind(b")") + 2 :].startswith(b"Z")


# --- the limiter -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """A slot held by one call; give it back to ``report_success``/``report_rate_limited``."""

    model: str
    id: int | None
    """The lease row, or ``None`` for an unlimited model's free pass (no row)."""
    started: float
    """When the call was admitted, on the limiter's clock."""
    start_id: int | None = None
    """The row counted in the rpm/tpm window, when the model has rates."""
    tokens: int = 0
    """The token estimate the call was admitted with."""


@dataclass(frozen=True, slots=True)
class _Limits:
    max_concurrency: int | None
    rpm: int | None
    tpm: int | None

    @property
    def unlimited(self) -> bool:
        return not (self.max_concurrency or self.rpm or self.tpm)

    @property
    def rated(self) -> bool:
        return bool(self.rpm or self.tpm)


@dataclass(slots=True)
class _Row:
    limits: _Limits
    state: AdaptiveState
    cool_until: float


_ROW_SQL = (
    "SELECT max_concurrency, rpm, tpm, adaptive_limit, ceiling, successes, strikes, "
    "last_limited, last_decrease, cool_until FROM models WHERE model = ?"
)


def _row(values: tuple[Any, ...] | None) -> _Row | None:
    if values is None:
        return None
    mc, rpm, tpm, limit, ceiling, successes, strikes, limited, decreased, cool = values
    state = AdaptiveState(
        limit,
        ceiling,
        successes,
        strikes,
        _NEVER if limited is None else limited,
        _NEVER if decreased is None else decreased,
    )
    return _Row(_Limits(mc, rpm, tpm), state, cool)


def _finite(value: float) -> float | None:
    return None if value == _NEVER else value


@dataclass(slots=True)
class _Local:
    """Per-process notes: models known calm (until when), calls in flight, last dead scan."""

    calm_until: dict[str, float] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    scanned: dict[str, float] = field(default_factory=dict)
    waiters: _Waiters = field(default_factory=lambda: _Waiters())


class SharedLimiter:
    """Concurrency, rpm/tpm and 429 cool-downs per model key, shared through a SQLite file.

    Args:
        path: the SQLite file (created with its directory on first use).
        clock: wall-clock seconds; every process sharing the file must use the same clock.
            Tests inject a fake one.
        rule: the adaptive decrease/recovery rule.
        refresh: how long (clock seconds) an unlimited model is trusted to stay calm
            before the database is read again.
        lease_seconds: default lease length; must exceed the longest call.
        poll_min: first sleep (real seconds) while waiting for a slot.
        poll_max: the sleeps grow to this.
        hint_max: the longest single sleep while waiting out a known cool-down or window.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_LIMITS_PATH,
        *,
        clock: Clock = time.time,
        rule: AdaptiveRule | None = None,
        refresh: float = 0.1,
        lease_seconds: float = 900.0,
        poll_min: float = 0.002,
        poll_max: float = 0.02,
        hint_max: float = 0.25,
    ) -> None:
        self._store = _Store(path)
        self._clock = clock
        self.rule = rule or AdaptiveRule()
        self._refresh = refresh
        self._lease_seconds = lease_seconds
        self._poll = (poll_min, poll_max, hint_max)
        self._local = _Local()
        self._local_pid = os.getpid()

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._store.path

    @property
    def round_trips(self) -> int:
        """Database accesses this process has made (the fast path makes none)."""
        return self._store.round_trips

    def close(self) -> None:
        """Close this process's connections to the file (reopened on next use)."""
        self._store.close()

    # --- taking and giving back slots --------------------------------------------------------

    def acquire(
        self,
        model_key: str,
        *,
        max_concurrency: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        tokens: int = 0,
        lease_seconds: float | None = None,
    ) -> AbstractAsyncContextManager[Lease]:
        """``async with limiter.acquire(key, ...) as lease:`` waits, then holds a slot.

        Admission needs a free concurrency slot, room in the rpm and tpm windows, and no
        cool-down. ``None`` or ``0`` means no such limit. The slot is given back on exit,
        whatever the exit (exception, cancellation).

        Args:
            model_key: the model the limits belong to (the same key in every process).
            max_concurrency: the configured concurrency limit.
            rpm: requests per minute.
            tpm: tokens per minute.
            tokens: this request's token estimate (counted against ``tpm``).
            lease_seconds: how long the slot may be held before others may take it.
        """
        limits = _limits(max_concurrency, rpm, tpm, tokens)
        ttl = self._lease_seconds if lease_seconds is None else lease_seconds
        return _Acquisition(self, model_key, limits, tokens, ttl)

    def try_acquire(
        self,
        model_key: str,
        *,
        max_concurrency: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        tokens: int = 0,
        lease_seconds: float | None = None,
    ) -> Lease | None:
        """One attempt without waiting: a ``Lease`` (give it to ``release``) or ``None``.

        Takes the same arguments as ``acquire``.
        """
        limits = _limits(max_concurrency, rpm, tpm, tokens)
        ttl = self._lease_seconds if lease_seconds is None else lease_seconds
        got = self._attempt(model_key, limits, tokens, ttl)
        return got if isinstance(got, Lease) else None

    def release(self, lease: Lease) -> None:
        """Give a slot back (a free pass needs nothing), waking a waiter of this process."""
        if lease.id is None:
            return
        with self._store.transaction(wait=True) as db:
            db.execute(
                "DELETE FROM leases WHERE id = ? AND model = ? AND started = ? AND pid = ?",
                (lease.id, lease.model, lease.started, os.getpid()),
            )
        self._process_local().waiters.wake_head(lease.model)

    async def _wait(
        self, model: str, limits: _Limits, tokens: int, ttl: float, hint: float | None
    ) -> Lease:
        """Queue up behind this process's other waiters for ``model`` and poll until admitted.

        Only the head of the queue polls (sleeps of ``poll_min`` growing to ``poll_max``, or
        up to ``hint_max`` toward a known end of a cool-down or window); a release in this
        process cuts its sleep short, and when it is admitted or gives up, the next in line
        tries at once. The others wait to be woken, checking on their own only rarely.
        """
        poll_min, poll_max, hint_max = self._poll
        delay = poll_min
        waiters = self._process_local().waiters
        waiter = _Waiter(asyncio.get_running_loop())
        waiters.join(model, waiter)
        try:
            while True:
                if waiters.is_head(model, waiter):
                    pause = delay if hint is None else min(max(hint, delay), hint_max)
                    delay = min(delay * 1.5, poll_max)
                else:
                    pause = _FOLLOWER_PAUSE
                await waiters.sleep(waiter, pause * (0.5 + 0.5 * random.random()))
                got = self._attempt(model, limits, tokens, ttl)
                if isinstance(got, Lease):
                    return got
                hint = got
        finally:
            waiters.leave(model, waiter)

    def _attempt(
        self, model: str, limits: _Limits, tokens: int, ttl: float
    ) -> Lease | float | None:
        """A lease, or how long to wait (clock seconds) if known, else ``None``."""
        if limits.unlimited and self._calm(model):
            return Lease(model, None, self._clock())
        try:
            with self._store.transaction(wait=False) as db:
                return self._admit(db, model, limits, tokens, ttl)
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            raise

    def _admit(
        self, db: sqlite3.Connection, model: str, limits: _Limits, tokens: int, ttl: float
    ) -> Lease | float | None:
        now = self._clock()
        row = _row(db.execute(_ROW_SQL, (model,)).fetchone())
        if row is None or row.limits != limits:
            db.execute(
                "INSERT INTO models (model, max_concurrency, rpm, tpm) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model) DO UPDATE SET max_concurrency = excluded.max_concurrency, "
                "rpm = excluded.rpm, tpm = excluded.tpm",
                (model, limits.max_concurrency, limits.rpm, limits.tpm),
            )
        if row is not None and row.cool_until > now:
            return row.cool_until - now
        state = self.rule.current(row.state, now) if row else AdaptiveState()
        db.execute("DELETE FROM leases WHERE model = ? AND expires <= ?", (model, now))
        cap = _smallest(limits.max_concurrency, state.limit)
        if cap is not None and not self._has_slot(db, model, cap):
            return None
        if limits.rated:
            wait = self._window_wait(db, model, limits, tokens, now)
            if wait is not None:
                return wait
        lease_id = db.execute(
            "INSERT INTO leases (model, pid, host, started, expires) VALUES (?, ?, ?, ?, ?)",
            (model, os.getpid(), _HOST, now, now + ttl),
        ).lastrowid
        start_id = None
        if limits.rated:
            start_id = db.execute(
                "INSERT INTO starts (model, t, tokens, requests) VALUES (?, ?, ?, 1)",
                (model, now, tokens),
            ).lastrowid
        return Lease(model, lease_id, now, start_id, tokens)

    def _has_slot(self, db: sqlite3.Connection, model: str, cap: int) -> bool:
        if _count_leases(db, model) < cap:
            return True
        scanned = self._process_local().scanned
        mono = time.monotonic()
        if mono - scanned.get(model, _NEVER) < _RECLAIM_EVERY:
            return False
        scanned[model] = mono
        return self._reclaim_dead(db, model) and _count_leases(db, model) < cap

    @staticmethod
    def _reclaim_dead(db: sqlite3.Connection, model: str) -> bool:
        """Delete the leases of this host's dead processes; whether there were any."""
        pids = db.execute(
            "SELECT DISTINCT pid FROM leases WHERE model = ? AND host = ?", (model, _HOST)
        ).fetchall()
        dead = [(model, _HOST, pid) for (pid,) in pids if not _pid_alive(pid)]
        db.executemany("DELETE FROM leases WHERE model = ? AND host = ? AND pid = ?", dead)
        return bool(dead)

    @staticmethod
    def _window_wait(
        db: sqlite3.Connection, model: str, limits: _Limits, tokens: int, now: float
    ) -> float | None:
        """``None`` if the windows admit a request now, else seconds until the oldest leaves."""
        db.execute("DELETE FROM starts WHERE model = ? AND t <= ?", (model, now - WINDOW))
        requests, used, oldest = db.execute(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0), MIN(t) "
            "FROM starts WHERE model = ?",
            (model,),
        ).fetchone()
        full = bool(limits.rpm and requests >= limits.rpm)
        full = full or bool(limits.tpm and used > 0 and used + tokens > limits.tpm)
        return max(oldest + WINDOW - now, 0.0) if full else None

    def _calm(self, model: str) -> bool:
        """Whether an unlimited model may skip the database (cached for ``refresh``)."""
        local = self._process_local()
        now = self._clock()
        until = local.calm_until.get(model)
        if until is not None and until - self._refresh <= now < until:
            return True
        try:
            row = _row(self._store.read(_ROW_SQL, (model,)))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return False
            raise
        calm = row is None or (row.cool_until <= now and self.rule.current(row.state, now).calm)
        if calm:
            local.calm_until[model] = now + self._refresh
        else:
            local.calm_until.pop(model, None)
        return calm

    def _process_local(self) -> _Local:
        if self._local_pid != os.getpid():  # forked: notes of the parent do not apply
            self._local, self._local_pid = _Local(), os.getpid()
        return self._local

    # --- reports ---------------------------------------------------------------------------

    def report_rate_limited(
        self, model_key: str, retry_after: float | None = None, *, lease: Lease | None = None
    ) -> float:
        """Record a 429: everyone cools down, and the model's adaptive limit is cut.

        Args:
            model_key: the model.
            retry_after: the server's hint in seconds (``None``: the default backoff).
            lease: the rate-limited call's lease, so a burst of 429s cuts the limit once.

        Returns:
            The cool-down applied by this report, in seconds.
        """
        local = self._process_local()
        local.calm_until.pop(model_key, None)
        with self._store.transaction(wait=True) as db:
            now = self._clock()
            row = _row(db.execute(_ROW_SQL, (model_key,)).fetchone())
            if row is None:
                row = _Row(_Limits(None, None, None), AdaptiveState(), 0.0)
                db.execute("INSERT INTO models (model) VALUES (?)", (model_key,))
            in_flight = max(_count_leases(db, model_key), local.in_flight.get(model_key, 0))
            state = self.rule.on_rate_limited(
                self.rule.current(row.state, now),
                now=now,
                configured=row.limits.max_concurrency,
                in_flight=in_flight,
                started=lease.started if lease is not None else None,
            )
            cooldown = self.rule.cooldown(retry_after, state.strikes)
            _write_state(db, model_key, state, max(row.cool_until, now + cooldown))
        return cooldown

    def report_success(
        self, model_key: str, tokens: int = 0, *, lease: Lease | None = None
    ) -> None:
        """Record a successful call: recovery toward the configured limit, and token usage.

        Args:
            model_key: the model.
            tokens: tokens the call actually used; with ``lease`` they replace its estimate
                in the tpm window (``0``: keep the estimate); without, they are added.
            lease: the call's lease.
        """
        if lease is not None and lease.id is None and self._calm(model_key):
            return
        with self._store.transaction(wait=True) as db:
            now = self._clock()
            row = _row(db.execute(_ROW_SQL, (model_key,)).fetchone())
            if row is None:
                return
            if lease is not None and lease.start_id is not None:
                if tokens:
                    db.execute(
                        "UPDATE starts SET tokens = ? WHERE id = ? AND model = ? AND t = ?",
                        (tokens, lease.start_id, model_key, lease.started),
                    )
            elif tokens and row.limits.tpm:
                db.execute(
                    "INSERT INTO starts (model, t, tokens, requests) VALUES (?, ?, ?, 0)",
                    (model_key, now, tokens),
                )
            state = self.rule.current(row.state, now)
            state = self.rule.on_success(state, now=now, configured=row.limits.max_concurrency)
            if state != row.state:
                _write_state(db, model_key, state, row.cool_until)

    def state(self, model_key: str) -> dict[str, Any]:
        """A snapshot for reports: in flight, limits, cool-down left, window counts.

        Leases of dead processes and expired leases are dropped first. Free passes of
        unlimited models are not counted in ``in_flight``.
        """
        with self._store.transaction(wait=True) as db:
            now = self._clock()
            row = _row(db.execute(_ROW_SQL, (model_key,)).fetchone())
            db.execute("DELETE FROM leases WHERE model = ? AND expires <= ?", (model_key, now))
            self._reclaim_dead(db, model_key)
            in_flight = _count_leases(db, model_key)
            requests, used = db.execute(
                "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0) FROM starts "
                "WHERE model = ? AND t > ?",
                (model_key, now - WINDOW),
            ).fetchone()
        limits = row.limits if row else _Limits(None, None, None)
        state = self.rule.current(row.state, now) if row else AdaptiveState()
        return {
            "model": model_key,
            "in_flight": in_flight,
            "max_concurrency": limits.max_concurrency,
            "adaptive_limit": state.limit,
            "effective_limit": _smallest(limits.max_concurrency, state.limit),
            "cooldown_remaining": max(row.cool_until - now, 0.0) if row else 0.0,
            "rate_limited_in_a_row": state.strikes,
            "rpm": limits.rpm,
            "tpm": limits.tpm,
            "requests_in_window": int(requests),
            "tokens_in_window": int(used),
        }


class _Waiter:
    """One task of this process waiting for a slot (see ``_Waiters``)."""

    __slots__ = ("loop", "future", "woken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] | None = None
        self.woken = False


class _Waiters:
    """This process's tasks waiting for a slot: a queue per model, first come first served.

    The head polls the database; a release wakes the head at once; when the head leaves
    (admitted, cancelled) the next becomes head and is woken. Waiters may sit on different
    event loops (threads), so wake-ups go through ``call_soon_threadsafe``, and a wake-up
    that arrives before the waiter sleeps is remembered. Waking is only a hint: the woken
    task still has to win the slot in the database, against other processes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Waiter]] = {}

    def busy(self, model: str) -> bool:
        """Whether tasks of this process are already waiting for ``model``."""
        return model in self._queues

    def join(self, model: str, waiter: _Waiter) -> None:
        with self._lock:
            self._queues.setdefault(model, deque()).append(waiter)

    def is_head(self, model: str, waiter: _Waiter) -> bool:
        with self._lock:
            queue = self._queues.get(model)
            return queue is not None and queue[0] is waiter  # a queue is never left empty

    def leave(self, model: str, waiter: _Waiter) -> None:
        with self._lock:
            queue = self._queues.get(model)
            if not queue:
                return
            was_head = queue[0] is waiter
            with suppress(ValueError):
                queue.remove(waiter)
            if not queue:
                del self._queues[model]
            elif was_head:
                self._wake(queue[0])

    def wake_head(self, model: str) -> None:
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                self._wake(queue[0])

    @staticmethod
    def _wake(waiter: _Waiter) -> None:  # with the lock held
        waiter.woken = True
        future = waiter.future
        if future is not None and not future.done():
            with suppress(RuntimeError):  # its loop has closed: nobody to wake
                waiter.loop.call_soon_threadsafe(_resolve, future)

    async def sleep(self, waiter: _Waiter, seconds: float) -> None:
        """Sleep ``seconds``, or less if woken (now or since the last sleep)."""
        with self._lock:
            if waiter.woken:
                waiter.woken = False
                return
            future = waiter.future = waiter.loop.create_future()
        timer = waiter.loop.call_later(seconds, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            with self._lock:
                waiter.future = None
                waiter.woken = False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Acquisition:
    """The async context manager ``SharedLimiter.acquire`` returns."""

    __slots__ = ("_limiter", "_model", "_limits", "_tokens", "_ttl", "_lease")

    def __init__(
        self, limiter: SharedLimiter, model: str, limits: _Limits, tokens: int, ttl: float
    ) -> None:
        self._limiter = limiter
        self._model = model
        self._limits = limits
        self._tokens = tokens
        self._ttl = ttl
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        limiter = self._limiter
        got: Lease | float | None = None
        if not limiter._process_local().waiters.busy(self._model):  # else: queue up behind
            got = limiter._attempt(self._model, self._limits, self._tokens, self._ttl)
        if isinstance(got, Lease):
            lease = got
        else:
            lease = await limiter._wait(self._model, self._limits, self._tokens, self._ttl, got)
        self._lease = lease
        counts = limiter._process_local().in_flight
        counts[self._model] = counts.get(self._model, 0) + 1
        return lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        counts = self._limiter._process_local().in_flight
        counts[self._model] = max(counts.get(self._model, 1) - 1, 0)
        self._limiter.release(lease)


def _limits(max_concurrency: int | None, rpm: int | None, tpm: int | None, tokens: int) -> _Limits:
    for name, value in (("max_concurrency", max_concurrency), ("rpm", rpm), ("tpm", tpm)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or None, got {value}")
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    return _Limits(max_concurrency or None, rpm or None, tpm or None)


def _smallest(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _count_leases(db: sqlite3.Connection, model: str) -> int:
    count: int = db.execute("SELECT COUNT(*) FROM leases WHERE model = ?", (model,)).fetchone()[0]
    return count


def _write_state(
    db: sqlite3.Connection, model: str, state: AdaptiveState, cool_until: float
) -> None:
    db.execute(
        "UPDATE models SET adaptive_limit = ?, ceiling = ?, successes = ?, strikes = ?, "
        "last_limited = ?, last_decrease = ?, cool_until = ? WHERE model = ?",
        (
            state.limit,
            state.ceiling,
            state.successes,
            state.strikes,
            _finite(state.last_limited),
            _finite(state.last_decrease),
            cool_until,
            model,
        ),
    )


# --- the session cost cap --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetHold:
    """Dollars a call in flight holds against the cap until it settles (``CostBudget.reserve``)."""

    id: int | None
    """The row in ``budget_holds``; ``None`` when nothing is held (an estimate of zero)."""
    amount: float
    """The estimate held, in dollars."""


class CostBudget:
    """A spending cap in dollars shared by every process using the same file and key.

    **Reservations make the cap hold under concurrency.** Before a call is sent it reserves
    an estimate of its cost (``reserve``): the reservation is granted only while the
    spend so far, plus what the calls in flight hold, plus the estimate stays within the
    cap. When the call ends, ``settle`` swaps the hold for the actual cost (``release``
    when nothing was spent). So the cap is exceeded only by what the calls in flight cost
    beyond their estimates; when the estimates are upper bounds, never. A hold is a row with
    its owner's pid and host: the holds of a process that died on this host stop counting.

    Args:
        limit_usd: the cap; ``exhausted()`` once ``spent() >= limit_usd``.
        path: the SQLite file (may be the limiter's).
        key: which budget; use one per session (e.g. xdist's ``testrunuid``) or ``reset``.
    """

    def __init__(
        self,
        limit_usd: float,
        path: str | os.PathLike[str] = DEFAULT_LIMITS_PATH,
        *,
        key: str = "session",
    ) -> None:
        if limit_usd < 0:
            raise ValueError(f"limit_usd must be >= 0, got {limit_usd}")
        self.limit_usd = float(limit_usd)
        self.key = key
        self._store = _Store(path)

    def add(self, cost: float) -> float:
        """Add ``cost`` dollars; returns the total spent so far."""
        with self._store.transaction(wait=True) as db:
            return self._add(db, cost)

    def _add(self, db: sqlite3.Connection, cost: float) -> float:
        db.execute(
            "INSERT INTO budgets (key, spent) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET spent = spent + excluded.spent",
            (self.key, float(cost)),
        )
        row = db.execute("SELECT spent FROM budgets WHERE key = ?", (self.key,)).fetchone()
        return float(row[0])

    def reserve(self, estimate: float) -> BudgetHold | None:
        """Hold ``estimate`` dollars for a call about to be sent, if it fits under the cap.

        It fits when the spend is below the cap and the spend, the holds of the calls in
        flight and ``estimate`` together stay within it. Returns the hold (give it to
        ``settle`` or ``release``), or ``None`` when it does not fit (``totals`` tells
        whether waiting for the calls in flight could help).
        """
        estimate = max(float(estimate), 0.0)
        with self._store.transaction(wait=True) as db:
            spent, held = self._totals(db)
            if spent >= self.limit_usd or spent + held + estimate > self.limit_usd:
                return None
            if estimate == 0.0:
                return BudgetHold(None, 0.0)
            cursor = db.execute(
                "INSERT INTO budget_holds (key, amount, pid, host) VALUES (?, ?, ?, ?)",
                (self.key, estimate, os.getpid(), _HOST),
            )
            return BudgetHold(cursor.lastrowid, estimate)

    def settle(self, hold: BudgetHold | None, cost: float) -> float:
        """Drop ``hold`` and add the call's actual ``cost``; returns the total spent so far."""
        with self._store.transaction(wait=True) as db:
            if hold is not None and hold.id is not None:
                db.execute("DELETE FROM budget_holds WHERE id = ?", (hold.id,))
            return self._add(db, cost)

    def release(self, hold: BudgetHold | None) -> None:
        """Drop ``hold`` without spending (the call failed or was never sent)."""
        if hold is None or hold.id is None:
            return
        with self._store.transaction(wait=True) as db:
            db.execute("DELETE FROM budget_holds WHERE id = ?", (hold.id,))

    def totals(self) -> tuple[float, float]:
        """Dollars spent and dollars held by calls in flight, under this key."""
        with self._store.transaction(wait=True) as db:
            return self._totals(db)

    def _totals(self, db: sqlite3.Connection) -> tuple[float, float]:
        row = db.execute("SELECT spent FROM budgets WHERE key = ?", (self.key,)).fetchone()
        holders = db.execute(
            "SELECT DISTINCT pid FROM budget_holds WHERE key = ? AND host = ?", (self.key, _HOST)
        ).fetchall()
        for (pid,) in holders:
            if not _pid_alive(pid):
                db.execute(
                    "DELETE FROM budget_holds WHERE key = ? AND host = ? AND pid = ?",
                    (self.key, _HOST, pid),
                )
        (held,) = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM budget_holds WHERE key = ?", (self.key,)
        ).fetchone()
        return (float(row[0]) if row else 0.0), float(held)

    def spent(self) -> float:
        """Dollars spent so far under this key."""
        with self._store.transaction(wait=True) as db:
            row = db.execute("SELECT spent FROM budgets WHERE key = ?", (self.key,)).fetchone()
        return float(row[0]) if row else 0.0

    def remaining(self) -> float:
        """Dollars left before the cap (never below zero); holds of calls in flight not counted."""
        return max(self.limit_usd - self.spent(), 0.0)

    def exhausted(self) -> bool:
        """Whether the cap has been reached."""
        return self.spent() >= self.limit_usd

    def reset(self) -> None:
        """Start this key from zero (its holds too)."""
        with self._store.transaction(wait=True) as db:
            db.execute("DELETE FROM budgets WHERE key = ?", (self.key,))
            db.execute("DELETE FROM budget_holds WHERE key = ?", (self.key,))

    def close(self) -> None:
        """Close this process's connections to the file."""
        self._store.close()
