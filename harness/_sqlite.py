"""Opening the SQLite files that processes share (the response store and the limits).

Several processes (pytest-xdist workers) may open a brand-new file at the same moment.
Switching a database to WAL needs a lock that SQLite does not wait for through its busy
handler, so the switch is retried here for a bounded time instead of failing with
"database is locked".
"""

from __future__ import annotations

import os
import random
import sqlite3
import time

__all__ = ["connect_wal"]


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def connect_wal(path: str | os.PathLike[str], timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode, autocommit, usable from the thread that owns it.

    Retries the switch to WAL while another process holds the lock, for up to ``timeout``
    seconds (a one-off cost when a file is first opened), then lets the error through.
    """
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            return conn
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                conn.close()
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.05)
