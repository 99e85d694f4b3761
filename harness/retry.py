"""Retry policy: which errors are tried again, and how long to wait before each retry.

Retried: rate limits (429), timeouts (408, 504, client-side), conflicts (409), server errors
(5xx, 529 overloaded) and connection failures — the errors whose class has
``retryable = True``. Everything else (bad request, auth, not found, billing/quota) fails at
once. The wait honours the server's ``retry-after-ms``/``retry-after`` hint when it is
positive and at most ``max_retry_after`` seconds; a longer hint is not waited for (the call
fails with the rate-limit error, as the newer OpenAI SDKs do). Otherwise the delay is
exponential with jitter: ``min(base · 2^k, cap) · (1 − jitter · U(0,1))``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.errors import HarnessError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait; pure and deterministic given ``rng``."""

    retries: int = 2
    base: float = 0.5
    cap: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0

    def should_retry(self, error: BaseException, retries_done: int) -> bool:
        """Whether ``error`` after ``retries_done`` retries may be tried again."""
        if retries_done >= self.retries or not isinstance(error, HarnessError):
            return False
        if not error.retryable:
            return False
        hint = error.retry_after
        return hint is None or hint <= self.max_retry_after

    def delay(
        self, error: BaseException, retries_done: int, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        hint = error.retry_after if isinstance(error, HarnessError) else None
        if hint is not None and 0 < hint <= self.max_retry_after:
            return hint
        r: float = (rng or random).random()
        backoff: float = min(self.base * 2.0**retries_done, self.cap)
        return backoff * (1 - self.jitter * r)
