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

    def results(self, item: SuiteItem) -> list[Result]:
        """The answers for ``item`` (one per repeat), submitting upcoming items if needed."""
        if item.nodeid not in self._futures:
            self._submit(_upcoming(item))
            if item.nodeid not in self._futures:
                self._submit([item])
        futures = self._futures.pop(item.nodeid)
        return [f.result() for f in futures]

    def _submit(self, items: Iterable[pytest.Item]) -> None:
        from pytest_plugin._suite import SuiteItem

        todo = [i for i in items if isinstance(i, SuiteItem) and i.nodeid not in self._futures]
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
