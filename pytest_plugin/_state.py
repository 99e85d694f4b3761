"""Per-session state, kept under a ``StashKey`` (never as ``config._something``)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from pytest_plugin._settings import Settings

if TYPE_CHECKING:
    from harness import Harness
    from harness.config import HarnessConfig
    from harness.limits import CostBudget
    from pytest_plugin._prefetch import Prefetcher
    from pytest_plugin._preflight import MissingKey

__all__ = ["State", "state_key", "get_state"]


@dataclass
class State:
    """What the plugin keeps for one pytest session (in each process)."""

    settings: Settings
    config: pytest.Config
    file: HarnessConfig
    """The harness config file's contents (``_settings.load_harness_config``)."""
    _harness: Harness | None = None
    _prefetcher: Prefetcher | None = None
    markers: set[str] = field(default_factory=set)
    missing_keys: list[MissingKey] = field(default_factory=list)
    """Models whose API key is missing, found at collection (``_preflight.missing_keys``)."""
    keys_announced: bool = False
    """Whether those were printed after collection (else the summary prints them)."""

    @property
    def harness(self) -> Harness:
        """The session's ``Harness``, configured from the options (made on first use)."""
        if self._harness is None:
            from harness import Harness

            s = self.settings
            self._harness = Harness(
                self.file,
                max_concurrency=s.max_concurrency,
                offline=s.offline,
                # Under pytest the store is on by default; its mode is the option's, else
                # the config file's (the Harness reads it), else use.
                cache=None if s.cache_mode == "off" else s.cache_path,
                cache_mode=s.cache_mode,
                # One file for every xdist worker: per-model limits hold across them.
                limits=s.limits_path,
                budget=self._budget(),
            )
        return self._harness

    def _budget(self) -> CostBudget | None:
        if self.settings.max_cost is None:
            return None
        from harness.limits import CostBudget

        # One budget per session, shared by xdist's workers (they share the run id).
        key = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"session-{uuid.uuid4().hex}"
        return CostBudget(self.settings.max_cost, path=self.settings.limits_path, key=key)

    @property
    def prefetcher(self) -> Prefetcher:
        """Starts suite calls ahead of the items that check them."""
        if self._prefetcher is None:
            from pytest_plugin._prefetch import Prefetcher

            self._prefetcher = Prefetcher(lambda requests: self.harness.submit_many(requests))
        return self._prefetcher


state_key = pytest.StashKey[State]()


def get_state(config: pytest.Config) -> State:
    """The session state (the plugin is registered, so it exists)."""
    return config.stash[state_key]
