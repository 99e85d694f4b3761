"""Start the model calls of suite items before pytest reaches them.

pytest runs items one by one; model calls must not wait for each other. When the first
suite item runs, the prefetcher submits the calls of every suite item this process will
run — all selected items without xdist; under xdist, the items already queued for this
worker (and again as more arrive) — to the harness's background loop, where they run
concurrently within each model's limit. Each item then waits only for its own answers.

The prefetcher knows items only through ``Askable`` (what it asks and how to judge the
answers) and the harness only through a ``submit`` function (``Harness.submit_many``):
it imports neither the suite items nor the session state.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pytest

if TYPE_CHECKING:
    from harness import Result
    from harness.sequential import SequentialPlan

__all__ = ["Askable", "Prefetcher", "Request", "Submit"]

Request = tuple[str, list[dict[str, Any]], dict[str, Any]]
"""One call: ``(model, messages, params)``, as ``Harness.submit_many`` takes it."""
Submit = Callable[[Sequence[Request]], list["concurrent.futures.Future[Result]"]]
"""Starts calls in the background and returns their futures (``Harness.submit_many``)."""


@runtime_checkable
class Askable(Protocol):
    """An item whose calls the prefetcher makes (the plugin's ``SuiteItem``)."""

    model: str
    plan: SequentialPlan | None
    """Adaptive repeats: when to stop asking; ``None``: ask ``first_batch()`` once."""

    @property
    def nodeid(self) -> str:
        """The item's pytest node id (the prefetcher's key)."""
        ...

    @property
    def session(self) -> pytest.Session:
        """The session, whose items come next (``pytest.Item.session``)."""
        ...

    @property
    def config(self) -> pytest.Config:
        """The config (``pytest.Item.config``; under xdist, the worker's)."""
        ...

    def first_batch(self) -> int:
        """How many repeats to ask for before anything is known."""
        ...

    def requests(self, start: int = 0, count: int | None = None) -> list[Request]:
        """The calls of ``count`` repeats from ``start``."""
        ...

    def judge(self, repeat: int, result: Any) -> tuple[list[Any], bool]:
        """The checks of one repeat's answer and whether it passed (judged once)."""
        ...

    def passes(self, upto: int) -> int:
        """Passing repeats among the first ``upto`` judged ones."""
        ...

    def judged(self) -> int:
        """How many repeats have been judged."""
        ...

    def forget(self) -> None:
        """Drop every judgement (a rerun asks again)."""
        ...


class Prefetcher:
    """Submits suite calls ahead of time and hands each item its answers.

    Items with adaptive repeats get their first batch with everyone else's; whenever an
    item waits, the prefetcher judges the answers that have arrived for every adaptive item
    and tops up only the undecided ones, so their next batches run concurrently too.
    """

    def __init__(self, submit: Submit) -> None:
        self._submit_many = submit
        self._futures: dict[str, list[concurrent.futures.Future[Result]]] = {}
        self._handed: set[str] = set()
        """Items whose answers were handed out: a rerun asks again, alone."""
        self._adaptive: dict[str, Askable] = {}
        """Adaptive items still being asked, by node id."""

    def results(self, item: Askable, timeout: float | None = None) -> list[Result]:
        """The answers for ``item`` (one per repeat asked), submitting upcoming items if needed.

        With ``timeout`` (seconds), answers still missing by then are cancelled (their calls
        stop) and their slots hold a ``TimeoutError`` saying so.
        """
        if item.nodeid not in self._futures:
            if item.nodeid in self._handed:  # a rerun (pytest-rerunfailures): ask again
                self._submit([item], again=True)
            else:
                self._submit(_upcoming(item))
                if item.nodeid not in self._futures:
                    self._submit([item])
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        if item.plan is not None:
            self._settle(item, deadline)
        futures = self._futures.pop(item.nodeid)
        self._adaptive.pop(item.nodeid, None)
        self._handed.add(item.nodeid)
        if deadline is None:
            return [f.result() for f in futures]
        left = max(deadline - time.monotonic(), 0.0)
        done, _ = concurrent.futures.wait(futures, timeout=left)
        return [f.result() if f in done else _gave_up(f, item, timeout or 0.0) for f in futures]

    def _settle(self, item: Askable, deadline: float | None) -> None:
        """Ask ``item`` in batches until its verdict is decided (or the deadline passes)."""
        while self._advance(item):
            self._sweep(but=item.nodeid)
            futures = self._futures[item.nodeid]
            pending = futures[item.judged()]  # undecided: an answer is on the way
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            concurrent.futures.wait([pending], timeout=left)
            if not pending.done():
                return

    def _advance(self, item: Askable) -> bool:
        """Judge the arrived answers of ``item`` in order; whether it is still undecided.

        An undecided item with nothing more on the way is topped up with its next batch.
        """
        assert item.plan is not None
        futures = self._futures[item.nodeid]
        judged = item.judged()
        while judged < len(futures) and futures[judged].done():
            item.judge(judged, futures[judged].result())
            judged += 1
            if item.plan.decide(item.passes(judged), judged).verdict is not None:
                for extra in futures[judged:]:
                    extra.cancel()  # asked for in the same batch, no longer needed
                del futures[judged:]
                return False
        if judged == len(futures):
            more = item.plan.next_batch(item.passes(judged), judged)
            if more == 0:
                return False
            futures.extend(self._submit_many(item.requests(judged, more)))
        return True

    def _sweep(self, but: str) -> None:
        """Advance every other adaptive item whose answers have arrived (never waits).

        A check that raises is left for the item itself to raise when it runs.
        """
        for nodeid, other in list(self._adaptive.items()):
            if nodeid == but or nodeid not in self._futures:
                continue
            try:
                if not self._advance(other):
                    del self._adaptive[nodeid]
            except Exception:  # noqa: BLE001 - the item reports it when it runs
                del self._adaptive[nodeid]

    def _submit(self, items: Iterable[object], *, again: bool = False) -> None:
        todo = [
            i
            for i in items
            if isinstance(i, Askable)
            and i.nodeid not in self._futures
            and (again or i.nodeid not in self._handed)
        ]
        if not todo:
            return
        requests: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = []
        counts = []
        for item in todo:
            if again:
                item.forget()
            count = item.first_batch()
            counts.append(count)
            requests.extend(item.requests(0, count))
            if item.plan is not None:
                self._adaptive[item.nodeid] = item
        futures = self._submit_many(requests)
        pos = 0
        for item, n in zip(todo, counts, strict=True):
            self._futures[item.nodeid] = futures[pos : pos + n]
            pos += n


def _gave_up(
    future: concurrent.futures.Future[Result], item: Askable, timeout: float
) -> Result:
    """Stop waiting for an answer: cancel its call and say why in its slot."""
    from harness.errors import TimeoutError as HarnessTimeoutError

    if not future.cancel():  # it arrived meanwhile
        return future.result()
    return HarnessTimeoutError(
        f"no answer within {timeout:.3g} s, the time pytest-timeout leaves this item",
        provider=None,
        model=item.model,
    )


def _upcoming(item: Askable) -> list[object]:
    """The items this process will run from now on (best effort under xdist)."""
    session = item.session
    interactor = _xdist_worker(item.config)
    if interactor is None:
        return list(session.items)
    queue = getattr(interactor, "torun", None)
    lock = getattr(queue, "lock", None)
    if lock is None:  # an xdist we do not know: fetch one item at a time
        return [item]
    with lock() as pending:
        indices = [i for i in pending if isinstance(i, int)]
    return [item] + [session.items[i] for i in indices if i < len(session.items)]


def _xdist_worker(config: pytest.Config) -> object | None:
    if not hasattr(config, "workerinput"):
        return None
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__name__ == "WorkerInteractor":
            found: object = plugin
            return found
    return None
