"""The one sync bridge: run a coroutine to completion from any synchronous caller.

Sync calls are handed to a single background thread that runs an event loop for the life of
the process. That works the same from a plain script, from inside a running event loop
(Jupyter, pytest-asyncio tests: the caller's loop is blocked while it waits, as with any
blocking call, but nothing is nested or patched), and from many threads at once; and because
the loop lives on, keep-alive connections are reused across sync calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync", "submit"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="harness-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the harness's background loop and return its result (or raise)."""
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a sync harness function was called from the harness's own event loop; "
            "await the async variant (acompletion, abatch_completion, ...) instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except (KeyboardInterrupt, concurrent.futures.CancelledError):
        future.cancel()
        raise


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the background loop without waiting for it."""
    return asyncio.run_coroutine_threadsafe(coro, _background_loop())
