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

__all__ = ["Taken", "records_of", "set_summary", "set_unsent", "take"]

_records_key = pytest.StashKey[list[dict[str, Any]]]()
_summary_key = pytest.StashKey[dict[str, Any]]()
_unsent_key = pytest.StashKey[bool]()


def records_of(item: pytest.Item) -> list[dict[str, Any]]:
    """The item's records so far (a list to append to)."""
    return item.stash.setdefault(_records_key, [])


def set_summary(item: pytest.Item, summary: dict[str, Any]) -> None:
    """The item's summary (``item`` in ``docs/results-schema.md``)."""
    item.stash[_summary_key] = summary


def set_unsent(item: pytest.Item) -> None:
    """Mark the item as skipped with its calls unsent (the cost cap was reached)."""
    item.stash[_unsent_key] = True


@dataclass(frozen=True, slots=True)
class Taken:
    """What an item reported in one run."""

    records: list[dict[str, Any]]
    summary: dict[str, Any] | None
    unsent: bool


def take(item: pytest.Item) -> Taken:
    """Everything the item reported, removed from its stash."""
    taken = Taken(
        item.stash.get(_records_key, []),
        item.stash.get(_summary_key, None),
        item.stash.get(_unsent_key, False),
    )
    if _records_key in item.stash:
        del item.stash[_records_key]
    if _summary_key in item.stash:
        del item.stash[_summary_key]
    if _unsent_key in item.stash:
        del item.stash[_unsent_key]
    return taken
