"""Retry policy: what is retried, how long it waits, and Retry-After end to end."""

from __future__ import annotations

import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    Harness,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
)
from harness.errors import APIConnectionError, ConflictError, InternalServerError, TimeoutError
from tests.helpers.local_server import chat_body

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (RateLimitError("x", status=429), True),
        (TimeoutError("x", status=408), True),
        (ConflictError("x", status=409), True),
        (InternalServerError("x", status=500), True),
        (ServiceUnavailableError("x", status=529), True),
        (APIConnectionError("x"), True),
        (BadRequestError("x", status=400), False),
        (AuthenticationError("x", status=401), False),
        (BillingError("x", status=429), False),
        (ValueError("not ours"), False),
    ],
)
def test_which_errors_are_retried(error, retried):
    assert RetryPolicy(retries=2).should_retry(error, 0) is retried
    assert RetryPolicy(retries=2).should_retry(error, 2) is False  # budget spent


def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    policy = RetryPolicy(max_retry_after=60)
    assert policy.should_retry(RateLimitError("x", retry_after=30), 0)
    assert not policy.should_retry(RateLimitError("x", retry_after=3600), 0)


@given(k=st.integers(0, 20), r=st.floats(0, 1, exclude_max=True))
def test_backoff_is_exponential_capped_and_jittered(k, r):
    policy = RetryPolicy(base=0.5, cap=8.0, jitter=0.25)

    class Fixed(random.Random):
        def random(self) -> float:
            return r

    delay = policy.delay(InternalServerError("x"), k, rng=Fixed())
    ceiling = min(0.5 * 2**k, 8.0)
    assert ceiling * 0.75 <= delay <= ceiling
    assert delay == pytest.approx(ceiling * (1 - 0.25 * r))


def test_server_hint_wins_over_backoff():
    assert RetryPolicy().delay(RateLimitError("x", retry_after=1.5), 0) == 1.5
    assert RetryPolicy().delay(RateLimitError("x", retry_after=0), 0) <= 0.5


def _harness(responses: list[httpx.Response]) -> tuple[Harness, list[float], list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    h = Harness(transport=httpx.MockTransport(handler), sleep=record)
    return h, waits, seen


def test_retry_after_ms_and_retry_after_are_honoured():
    h, waits, seen = _harness(
        [
            httpx.Response(
                429, headers={"retry-after-ms": "1250"}, json={"error": {"message": "slow"}}
            ),
            httpx.Response(503, headers={"retry-after": "2"}, json={"error": {"message": "busy"}}),
            httpx.Response(200, json=chat_body("finally")),
        ]
    )
    r = h.completion("openai/gpt-4o-mini", USER, api_key="sk-test-0123456789", num_retries=2)
    assert r.content == "finally" and r.harness.attempts == 3
    assert waits == [1.25, 2.0]
    assert len(seen) == 3


def test_non_retryable_errors_fail_at_once():
    h, waits, seen = _harness([httpx.Response(401, json={"error": {"message": "bad key"}})])
    with pytest.raises(AuthenticationError) as info:
        h.completion("openai/gpt-4o-mini", USER, api_key="sk-test-0123456789")
    assert waits == [] and len(seen) == 1 and info.value.attempts == 1


def test_retries_can_be_turned_off_and_configured():
    h, waits, seen = _harness([httpx.Response(500, json={})] * 5)
    with pytest.raises(InternalServerError) as info:
        h.completion("openai/x", USER, api_key="sk-test-0123456789", num_retries=4)
    assert len(seen) == 5 and info.value.attempts == 5 and len(waits) == 4

    h, waits, seen = _harness([httpx.Response(500, json={})])
    with pytest.raises(InternalServerError):
        h.completion("openai/x", USER, api_key="sk-test-0123456789", num_retries=0)
    assert len(seen) == 1 and waits == []


def test_model_config_sets_the_retry_count():
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    h = Harness({"models": {"m": {"model": "mock/m", "retries": 3}}}, sleep=record)
    [result] = h.batch_completion("m", [USER], mock_response=[{"error": 503}])
    assert result.attempts == 4 and len(waits) == 3
