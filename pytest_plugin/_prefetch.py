"""Start the model calls of suite items before pytest reaches them.

pytest runs items one by one; model calls must not wait for each other. When the first
suite item runs, the prefetcher submits the calls of every suite item this process will
run — all selected items without xdist; under xdist, the items already queued for this
worker (and again as more arrive) — to the harness's background loop, where they run
concurrently within each model's limit. Each item then waits only for its own answers.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness import Result
    from pytest_plugin._state import State
    from pytest_plugin._suite import SuiteItem

__all__ = ["Prefetcher"]


class Prefetcher:
    """Submits suite calls ahead of time and hands each item its answers."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._futures: dict[str, list[concurrent.futures.Future[Result]]] = {}
        self._handed: set[str] = set()
        """Items whose answers were handed out: a rerun asks again, alone."""

    def results(self, item: SuiteItem, timeout: float | None = None) -> list[Result]:
        """The answers for ``item`` (one per repeat), submitting upcoming items if needed.

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
        futures = self._futures.pop(item.nodeid)
        self._handed.add(item.nodeid)
        if timeout is None:
            return [f.result() for f in futures]
        done, _ = concurrent.futures.wait(futures, timeout=max(timeout, 0.0))
        return [f.result() if f in done else _gave_up(f, item, timeout) for f in futures]

    def _submit(self, items: Iterable[pytest.Item], *, again: bool = False) -> None:
        from pytest_plugin._suite import SuiteItem

        todo = [
            i
            for i in items
            if isinstance(i, SuiteItem)
            and i.nodeid not in self._futures
            and (again or i.nodeid not in self._handed)
        ]
        if not todo:
            return
        requests: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = []
        for item in todo:
            requests.extend(item.requests())
        futures = self._state.harness.submit_many(requests)
        pos = 0
        for item in todo:
            n = item.repeat
            self._futures[item.nodeid] = futures[pos : pos + n]
            pos += n


def _gave_up(
    future: concurrent.futures.Future[Result], item: SuiteItem, timeout: float
) -> Result:
    """Stop waiting for an answer: cancel its call and say why in its slot."""
    from harness.errors import TimeoutError

    if not future.cancel():  # it arrived meanwhile
        return future.result()
    return TimeoutError(
        f"no answer within {timeout:.3g} s, the time pytest-timeout leaves this item",
        provider=None,
        model=item.model,
    )


def _upcoming(item: pytest.Item) -> list[pytest.Item]:
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
