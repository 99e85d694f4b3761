"""The prefetcher's adaptive top-ups, driven with fake items and futures (no pytest run)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from harness.sequential import SequentialPlan
from pytest_plugin._prefetch import Askable, Prefetcher, Request


class _LateFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """An answer landing just after the first look: that look says "not done"."""

    def __init__(self, result: Any) -> None:
        super().__init__()
        self._value = result

    def done(self) -> bool:
        if super().done():
            return True
        self.set_result(self._value)
        return False


class _Item:
    def __init__(self, nodeid: str, plan: SequentialPlan) -> None:
        self.nodeid, self.plan, self._judged = nodeid, plan, {}
        self.model = "m"
        self.session = self.config = None  # pytest's; the prefetcher reads them for xdist

    def first_batch(self) -> int:
        return max(1, self.plan.next_batch(0, 0))

    def requests(self, start: int = 0, count: int | None = None) -> list[Request]:
        count = self.plan.max_repeats - start if count is None else count
        return [("m", [], {"harness_repeat": start + r}) for r in range(count)]

    def judge(self, repeat: int, result: Any) -> tuple[list, bool]:
        return self._judged.setdefault(repeat, ([], result == "pass"))

    def passes(self, upto: int) -> int:
        return sum(self._judged[r][1] for r in range(upto))

    def judged(self) -> int:
        return len(self._judged)

    def forget(self) -> None:
        self._judged = {}


def _prefetcher(item: _Item, answers: list[concurrent.futures.Future]) -> Prefetcher:  # type: ignore[type-arg]
    """A prefetcher that has just submitted ``item``'s first batch (as ``_submit`` does)."""
    queue = iter(answers)

    def submit(requests: Sequence[Request]) -> list[concurrent.futures.Future]:  # type: ignore[type-arg]
        return [next(queue) for _ in requests]

    prefetcher = Prefetcher(submit)
    prefetcher._futures[item.nodeid] = submit(item.requests(0, item.first_batch()))
    prefetcher._adaptive[item.nodeid] = item  # type: ignore[assignment]
    return prefetcher


def test_an_answer_landing_while_the_item_settles_is_judged_once_and_decides_it():
    item = _Item("t::a[m]", SequentialPlan(6, 1.0))
    first = _LateFuture("fail")  # arrives between the prefetcher's two looks
    prefetcher = _prefetcher(item, [first])
    prefetcher._settle(item, deadline=None)  # type: ignore[arg-type]
    assert item.plan.decide(item.passes(len(item._judged)), len(item._judged)).verdict == "fail"
    assert prefetcher._futures["t::a[m]"] == [first]


def test_undecided_items_are_topped_up_and_decided_items_are_not():
    done = []
    for verdict in ["pass"] * 12:
        future: concurrent.futures.Future = concurrent.futures.Future()  # type: ignore[type-arg]
        future.set_result(verdict)
        done.append(future)
    item = _Item("t::b[m]", SequentialPlan(4, 0.5))
    prefetcher = _prefetcher(item, done)
    prefetcher._settle(item, deadline=None)  # type: ignore[arg-type]
    asked = len(prefetcher._futures["t::b[m]"])
    assert asked == len(item._judged) <= 2  # two passes of four decide a 0.5 threshold
    assert item.plan.decide(item.passes(asked), asked).verdict == "pass"


def test_the_fake_item_is_what_the_prefetcher_asks_of_suite_items():
    assert isinstance(_Item("t::c[m]", SequentialPlan(3, 1.0)), Askable)
