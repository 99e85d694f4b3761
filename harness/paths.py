"""Where the harness keeps its files by default (relative to the working directory).

Only constants live here, so any module (the pytest plugin included) can import them
without importing SQLite code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_CACHE_PATH", "DEFAULT_LIMITS_PATH"]

DEFAULT_CACHE_PATH = Path(".harness") / "cache.sqlite"
"""The response store (``harness.cache.ResponseCache``)."""

DEFAULT_LIMITS_PATH = Path(".harness") / "limits.sqlite"
"""The shared limiter and cost budget state (``harness.limits``)."""
