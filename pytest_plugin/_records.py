"""Where an item keeps what it reports: its records, its summary, whether it went unsent.

Suite items and Python tests (through the fixtures and the ``repeat`` marker) both put
their records and their item summary in the item's stash under these keys;
``pytest_runtest_makereport`` takes them from there (``take``) and attaches them to the
report as plain data, which survives pytest-xdist. Taking them empties the stash, so a
rerun (pytest-rerunfailures) starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from harness.results import ResultRecord

__all__ = ["Taken", "add_from_test", "records_of", "set_summary", "set_unsent", "take"]

_records_key = pytest.StashKey[list[ResultRecord]]()
_summary_key = pytest.StashKey[dict[str, Any]]()
_unsent_key = pytest.StashKey[bool]()
_from_test_key = pytest.StashKey[list[int]]()


def records_of(item: pytest.Item) -> list[ResultRecord]:
    """The item's records so far (a list to append to)."""
    return item.stash.setdefault(_records_key, [])


def add_from_test(item: pytest.Item, record: ResultRecord) -> None:
    """Add a record whose ``passed`` is the test's outcome, settled when the test ends."""
    records = records_of(item)
    item.stash.setdefault(_from_test_key, []).append(len(records))
    records.append(record)


def set_summary(item: pytest.Item, summary: dict[str, Any]) -> None:
    """The item's summary (``item`` in ``docs/results-schema.md``)."""
    item.stash[_summary_key] = summary


def set_unsent(item: pytest.Item) -> None:
    """Mark the item as skipped with its calls unsent (the cost cap was reached)."""
    item.stash[_unsent_key] = True


@dataclass(frozen=True, slots=True)
class Taken:
    """What an item reported in one run."""

    records: list[ResultRecord]
    summary: dict[str, Any] | None
    unsent: bool
    from_test: list[int]
    """Indices of the records whose ``passed`` is the test's outcome (``add_from_test``)."""


def take(item: pytest.Item) -> Taken:
    """Everything the item reported, removed from its stash."""
    taken = Taken(
        item.stash.get(_records_key, []),
        item.stash.get(_summary_key, None),
        item.stash.get(_unsent_key, False),
        item.stash.get(_from_test_key, []),
    )
    if _records_key in item.stash:
        del item.stash[_records_key]
    if _summary_key in item.stash:
        del item.stash[_summary_key]
    if _unsent_key in item.stash:
        del item.stash[_unsent_key]
    if _from_test_key in item.stash:
        del item.stash[_from_test_key]
    return taken
