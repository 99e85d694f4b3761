"""The one sync bridge: run a coroutine to completion from any synchronous caller.

Sync calls are handed to a single background thread that runs an event loop for the life of
the process. That works the same from a plain script, from inside a running event loop
(Jupyter, pytest-asyncio tests: the caller's loop is blocked while it waits, as with any
blocking call, but nothing is nested or patched), and from many threads at once; and because
the loop lives on, keep-alive connections are reused across sync calls.

This module also owns the loop's end: an ``atexit`` hook closes what lives on it (its
clients' sockets, through ``loop.shutdown_asyncgens()``, and any stream left open), stops it
and joins its thread, then closes it, all within ``EXIT_TIMEOUT``. Otherwise the daemon
thread would be frozen mid-loop at exit, and objects collected late in the interpreter's
teardown (a ``Harness`` kept by some module) would try to schedule their cleanup on it
after asyncio's own modules were torn down ("Exception ignored … 'NoneType' object has no
attribute 'Handle'"). A loop still busy at exit (calls in flight from other threads, or a
callback that blocks) is left running, but told that the interpreter is exiting, so nothing
is scheduled on it any more; exit never waits longer than ``EXIT_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import AsyncGenerator, Coroutine
from typing import Any, TypeVar

__all__ = ["EXIT_TIMEOUT", "run_sync", "submit"]

T = TypeVar("T")

EXIT_TIMEOUT = 1.0
"""Seconds, at most, that closing the background loop may add to the interpreter's exit."""

_lock = threading.Lock()
_loop: _BackgroundLoop | None = None
_thread: threading.Thread | None = None
_hooked = False


class _BackgroundLoop(asyncio.SelectorEventLoop):
    """The background event loop; once the interpreter is exiting it schedules no cleanup.

    An async generator started on this loop and collected later asks the loop to close it
    (``_asyncgen_finalizer_hook``); during the interpreter's teardown that would run into
    half torn-down asyncio modules, and the loop's thread is gone by then anyway.
    """

    exiting = False

    def _asyncgen_finalizer_hook(self, agen: AsyncGenerator[Any, Any]) -> None:
        if not self.exiting:
            super()._asyncgen_finalizer_hook(agen)  # type: ignore[misc]


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread, _hooked
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = _BackgroundLoop()
            thread = threading.Thread(target=loop.run_forever, name="harness-loop", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
            if not _hooked:
                _hooked = True
                atexit.register(_close_at_exit)
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


async def _wind_down(grace: float) -> bool:
    """Close the loop's async generators (clients' sentinels, open streams); False if busy.

    Tasks still running after ``grace`` seconds are calls in flight from other threads:
    they are left alone, and so is the loop.
    """
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    if others:
        _, pending = await asyncio.wait(others, timeout=grace)
        if pending:
            return False
    await asyncio.get_running_loop().shutdown_asyncgens()
    return True


def _close_at_exit(timeout: float = EXIT_TIMEOUT) -> None:
    """Close the background loop cleanly at interpreter exit (registered with ``atexit``).

    Never raises and never blocks longer than about ``timeout`` seconds.
    """
    with _lock:
        loop, thread = _loop, _thread
    if loop is None or thread is None or loop.is_closed():
        return
    try:
        if thread.is_alive():
            wound = asyncio.run_coroutine_threadsafe(_wind_down(timeout / 4), loop)
            if not wound.result(timeout / 2):
                return  # busy: calls in flight; leave the loop to the interpreter's exit
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout / 2)
            if thread.is_alive():
                return
        loop.close()
    except (concurrent.futures.TimeoutError, RuntimeError):
        return  # busy, or stopped in the meantime: leave it
    finally:
        loop.exiting = True
