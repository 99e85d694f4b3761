"""An asyncio event loop whose clock moves only when nothing else can run.

``run(coro)`` runs a coroutine on a ``VirtualTimeLoop``: ``asyncio.sleep``, ``call_later``
and ``asyncio.timeout`` work as usual, but when every task is waiting for a timer the clock
jumps to the earliest one instead of the loop sleeping. Timers therefore fire in the order
of their deadlines whatever the machine's load, a test of latencies takes no real time, and
``loop.time()`` afterwards says how long the work would have taken.

Only for code that waits on timers alone: a socket's readiness is still polled, but the
clock does not wait for it (a timer would fire "early" while a real peer is slow).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """A selector that, asked to wait, polls once and moves the loop's clock instead."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if timeout is None or timeout <= 0:
            return super().select(timeout)
        ready = super().select(0)
        if not ready:
            self.loop.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock that starts at 0."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        self.now = 0.0
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        """The virtual time in seconds."""
        return self.now


def run(coro: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """Run ``coro`` on a fresh ``VirtualTimeLoop``: its result and the virtual seconds taken."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        result = runner.run(coro)
        return result, runner.get_loop().time()
