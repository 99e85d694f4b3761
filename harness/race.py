"""The race: several models answer one conversation; the first *successful* answer wins.

``Race`` owns the loop over the contestants' tasks and the verdict: who won, each
contestant's outcome and timings (``Contestant``), and the cancellation of the losers, which
is awaited so that their sockets are closed before the race returns. What a contestant is
(a planned call with retries, a stream, a store lookup) is the caller's business: the race
sees a coroutine per contestant, and asks an ``Entrant`` for the few facts it reports. The
runner races whole answers (``Race.run``); ``harness serve`` races streams to their first
output and relays the winner's (``Race.decide``, with each contestant's coroutine returning
the chunks read so far).

Timing: each contestant stamps its own finish time inside its task, so the time is known as
soon as the task is done (a done-callback could run one loop iteration after the race sees
the task done: that was a ``KeyError`` once). With ``first_token`` the first contestant to
deliver output wins, the others are cancelled at once, and the winner is read to its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.errors import AllModelsFailed
from harness.types import Contestant, ModelResponse, RaceInfo

__all__ = ["Entrant", "Race"]

T = TypeVar("T")


@dataclass(slots=True)
class Entrant(Generic[T]):
    """One contestant as the race sees it.

    ``start(on_first_output)`` returns the coroutine of its call (``on_first_output`` is
    ``None`` unless the race is decided on the first token); ``first_byte()`` says whether
    a byte of its answer had arrived (``None``: not known); ``account(entry, task)`` fills
    in the tokens and cost it consumed once the race is over.
    """

    name: str
    start: Callable[[Callable[[], None] | None], Awaitable[T]]
    first_byte: Callable[[], bool | None]
    account: Callable[[Contestant, asyncio.Task[T]], None]


class Race(Generic[T]):
    """One race between ``entrants``; ``await Race(entrants).run()`` is the winning answer.

    Raises the winner's error when a ``first_token`` winner fails after its first output,
    and ``AllModelsFailed`` (every model's error, in model order) when nobody succeeds.
    """

    def __init__(self, entrants: Sequence[Entrant[T]], *, first_token: bool = False) -> None:
        self.entrants = entrants
        self.first_token = first_token
        self._t0 = 0.0
        self._ended: dict[int, float] = {}
        self._firsts: dict[int, float] = {}
        self._signalled = asyncio.Event()
        self._tasks: list[asyncio.Task[T]] = []

    async def run(self: Race[ModelResponse]) -> ModelResponse:
        """The winning answer, its ``harness.race`` telling what happened to everyone."""
        winner, response, contestants = await self.decide()
        response.harness.race = RaceInfo(self.entrants[winner].name, contestants)
        return response

    async def decide(self) -> tuple[int, T, list[Contestant]]:
        """Start every contestant, wait for a winner, cancel the rest.

        Returns the winner's index and result, and every contestant's outcome in order.
        """
        loop = asyncio.get_running_loop()
        self._t0 = time.perf_counter()
        for i, entrant in enumerate(self.entrants):
            mark = self._marker(i) if self.first_token else None
            self._tasks.append(loop.create_task(self._contest(i, entrant.start(mark))))
        winner = await self._decide(loop)
        contestants = self._outcomes(winner)
        tasks = self._tasks
        if winner is not None and tasks[winner].exception() is not None:
            raise tasks[winner].exception()  # type: ignore[misc]
        if winner is None:
            raise AllModelsFailed(
                _unique((c.model, tasks[i].exception()) for i, c in enumerate(contestants))
            )
        return winner, tasks[winner].result(), contestants

    async def _contest(self, i: int, call: Awaitable[T]) -> T:
        try:
            return await call
        finally:
            self._ended[i] = time.perf_counter()

    def _marker(self, i: int) -> Callable[[], None]:
        def mark() -> None:
            self._firsts.setdefault(i, time.perf_counter())
            self._signalled.set()

        return mark

    async def _decide(self, loop: asyncio.AbstractEventLoop) -> int | None:
        """Wait until a contestant succeeds (or delivers output first); cancel the others."""
        tasks, firsts, ended = self._tasks, self._firsts, self._ended
        winner: int | None = None
        pending: set[asyncio.Task[T]] = set(tasks)
        try:
            while pending and winner is None:
                waiters: set[asyncio.Future[Any]] = set(pending)
                signal = loop.create_task(self._signalled.wait()) if self.first_token else None
                if signal is not None:
                    waiters.add(signal)
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if signal is not None:
                        signal.cancel()
                pending = {t for t in pending if not t.done()}
                ok = [
                    i
                    for i, t in enumerate(tasks)
                    if t.done() and not t.cancelled() and t.exception() is None
                ]
                if firsts:
                    winner = min(firsts, key=lambda i: firsts[i])
                elif ok:
                    winner = min(ok, key=lambda i: ended[i])
        finally:
            losers = [t for t in pending if winner is None or t is not tasks[winner]]
            for task in losers:
                task.cancel()
            if losers:
                await asyncio.wait(losers)
        if winner is not None and not tasks[winner].done():
            await asyncio.wait([tasks[winner]])  # read the winning stream to its end
        return winner

    def _outcomes(self, winner: int | None) -> list[Contestant]:
        """Each contestant's outcome, latency, TTFT and spend, in model order."""
        contestants = []
        for i, (entrant, task) in enumerate(zip(self.entrants, self._tasks, strict=True)):
            finished_at = self._ended.get(i, self._t0)  # cancelled before it started: no time
            entry = Contestant(entrant.name, "finished", (finished_at - self._t0) * 1e3)
            first = self._firsts.get(i)
            entry.ttft_ms = (first - self._t0) * 1000.0 if first is not None else None
            entry.first_byte = entrant.first_byte()
            if task.cancelled():
                entry.outcome = "cancelled"
            elif task.exception() is not None:
                exc = task.exception()
                entry.outcome, entry.error = "failed", f"{type(exc).__name__}: {exc}"
            elif i == winner:
                entry.outcome = "winner"
            entrant.account(entry, task)
            contestants.append(entry)
        return contestants


def _unique(pairs: Iterable[tuple[str, BaseException | None]]) -> list[tuple[str, BaseException]]:
    """``(model, error)`` pairs, a model listed twice keeping both under distinct names."""
    out: list[tuple[str, BaseException]] = []
    seen: dict[str, int] = {}
    for name, error in pairs:
        assert error is not None
        count = seen[name] = seen.get(name, 0) + 1
        out.append((name if count == 1 else f"{name}#{count}", error))
    return out
