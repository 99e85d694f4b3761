"""Per-session state, kept under a ``StashKey`` (never as ``config._something``)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.paths import DEFAULT_CACHE_PATH, DEFAULT_LIMITS_PATH
from pytest_plugin._settings import Settings

if TYPE_CHECKING:
    from harness import Harness
    from harness.config import HarnessConfig
    from harness.limits import CostBudget
    from pytest_plugin._prefetch import Prefetcher

__all__ = ["State", "state_key", "get_state"]


@dataclass
class State:
    """What the plugin keeps for one pytest session (in each process)."""

    settings: Settings
    config: pytest.Config
    _harness: Harness | None = None
    _prefetcher: Prefetcher | None = None
    markers: set[str] = field(default_factory=set)

    @property
    def harness(self) -> Harness:
        """The session's ``Harness``, configured from the options (made on first use)."""
        if self._harness is None:
            from harness import Harness, load_config

            s = self.settings
            config = load_config(s.config_path) if s.config_path else _find_config(self.config)
            cache_table = config.extra.get("cache") or {}
            cache_path = Path(cache_table.get("path", DEFAULT_CACHE_PATH))
            if not cache_path.is_absolute():
                cache_path = self.config.rootpath / cache_path
            # The config file's [cache] mode means what it means to the library; only an
            # option given on the command line or in ini overrides it.
            cache_mode = s.cache_mode or cache_table.get("mode") or "use"
            self._harness = Harness(
                config,
                max_concurrency=s.max_concurrency,
                offline=s.offline,
                cache=None if cache_mode == "off" else cache_path,
                cache_mode=cache_mode,
                # One file for every xdist worker: per-model limits hold across them.
                limits=self.config.rootpath / DEFAULT_LIMITS_PATH,
                budget=self._budget(),
            )
        return self._harness

    def _budget(self) -> CostBudget | None:
        if self.settings.max_cost is None:
            return None
        from harness.limits import CostBudget

        # One budget per session, shared by xdist's workers (they share the run id).
        key = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"session-{uuid.uuid4().hex}"
        path = self.config.rootpath / DEFAULT_LIMITS_PATH
        return CostBudget(self.settings.max_cost, path=path, key=key)

    @property
    def prefetcher(self) -> Prefetcher:
        """Starts suite calls ahead of the items that check them."""
        if self._prefetcher is None:
            from pytest_plugin._prefetch import Prefetcher

            self._prefetcher = Prefetcher(self)
        return self._prefetcher


def _find_config(config: pytest.Config) -> HarnessConfig:
    from harness.config import HarnessConfig, find_config_file, load_config

    for where in (Path(config.invocation_params.dir), config.rootpath):
        found = find_config_file(where)
        if found is not None:
            return load_config(found)
    return HarnessConfig()


state_key = pytest.StashKey[State]()


def get_state(config: pytest.Config) -> State:
    """The session state (the plugin is registered, so it exists)."""
    return config.stash[state_key]
