"""The SQLite plumbing shared by the response store and the limits.

Both keep their state in one file that threads, pytest-xdist workers and separate
processes use at once. This module owns how such a file is opened (``connect_wal``: WAL,
autocommit, a busy timeout), one connection per thread and process
(``ThreadConnections``), explicit transactions (``transaction``) and waiting out a busy
database (``is_busy``, bounded retries with growing sleeps).

Several processes may open a brand-new file at the same moment. Switching a database to
WAL needs a lock that SQLite does not wait for through its busy handler, so the switch is
retried here for a bounded time instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

__all__ = ["ThreadConnections", "connect_wal", "is_busy", "transaction"]

_T = TypeVar("_T")

_orphans: list[sqlite3.Connection] = []  # connections inherited over fork: never used or closed


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` means another connection holds the lock ("database is locked")."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


def _retry_busy(
    attempt: Callable[[], _T], *, timeout: float, first: float, most: float, jitter: bool
) -> _T:
    """``attempt()``, tried again while the database is busy, for up to ``timeout`` seconds.

    Sleeps ``first`` seconds, doubling up to ``most`` (with ``jitter``, each sleep is up to
    twice as long at random); any other error, or busy past the deadline, goes through.
    """
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * (1 + random.random()) if jitter else delay)
        delay = min(delay * 2, most)


def connect_wal(path: str | os.PathLike[str], timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode, autocommit, usable from the thread that owns it.

    Its busy timeout is ``timeout`` seconds. Retries the switch to WAL while another
    process holds the lock (2 ms growing to 50 ms, jittered), for up to ``timeout``
    seconds (a one-off cost when a file is first opened), then lets the error through.
    """
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)

    def setup() -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")

    try:
        _retry_busy(setup, timeout=timeout, first=0.002, most=0.05, jitter=True)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(
    conn: sqlite3.Connection, *, immediate: bool = True, poll_s: float | None = None
) -> Iterator[sqlite3.Connection]:
    """``BEGIN [IMMEDIATE]`` … ``COMMIT`` on an autocommit connection; rolled back on error.

    ``IMMEDIATE`` takes the write lock up front, so a writer waits (the connection's busy
    timeout) instead of failing when another connection wrote between its read and its
    write. With ``poll_s`` (for connections whose busy timeout is 0) a busy ``BEGIN
    IMMEDIATE`` is tried again in sleeps of 0.1 ms growing to 5 ms, for at most ``poll_s``
    seconds; without it, a busy database raises at once (timeout 0) or after the timeout.
    """
    if poll_s is not None:
        begin = partial(conn.execute, "BEGIN IMMEDIATE")
        _retry_busy(begin, timeout=poll_s, first=0.0001, most=0.005, jitter=False)
    else:
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (e.g. a full disk)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class ThreadConnections:
    """One connection per thread and process to one file, each opened on first use.

    Args:
        open_: makes a new connection (set up and ready) for the calling thread.

    A forked process gets connections of its own: those inherited from the parent are kept
    alive but never used or closed, since closing them in the child would disturb the
    parent's locks.
    """

    def __init__(self, open_: Callable[[], sqlite3.Connection]) -> None:
        self._open = open_
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[int, sqlite3.Connection]] = []

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened now if it has none in this process."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            if conn is not None:
                _orphans.append(conn)
            conn = self._open()
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._conns.append((os.getpid(), conn))
        return conn

    def close(self) -> None:
        """Close the connections this process opened (from any thread, when idle).

        The next ``get`` in any thread opens a new one.
        """
        with self._lock:
            conns, self._conns = self._conns, []
            self._local = threading.local()
        pid = os.getpid()
        for owner, conn in conns:
            if owner == pid:
                conn.close()
            else:
                _orphans.append(conn)
