"""The error tree: status mapping, context, and no secrets in messages."""

from __future__ import annotations

import pytest

from harness import errors as E
from harness.errors import error_from_status, register_secret, scrub

FAKE_KEY = "sk-" + "abcdefghijklmnopqrstuvwx"  # key-shaped, fake; split so scanners stay quiet


@pytest.mark.parametrize(
    ("status", "message", "code", "cls"),
    [
        (400, "bad", None, E.BadRequestError),
        (
            400,
            "This model's maximum context length is 8192 tokens",
            "context_length_exceeded",
            E.ContextWindowExceededError,
        ),
        (400, "filtered", "content_filter", E.ContentFilterError),
        (413, "Request exceeds the maximum allowed number of bytes", None, E.BadRequestError),
        (401, "bad key", None, E.AuthenticationError),
        (402, "credits", None, E.BillingError),
        (403, "region", None, E.PermissionDeniedError),
        (404, "model", None, E.NotFoundError),
        (408, "timeout", None, E.TimeoutError),
        (409, "conflict", None, E.ConflictError),
        (422, "params", None, E.UnprocessableEntityError),
        (429, "Rate limit reached", "rate_limit_exceeded", E.RateLimitError),
        (429, "You exceeded your current quota", "insufficient_quota", E.BillingError),
        (499, "cancelled", None, E.APIConnectionError),
        (500, "boom", None, E.InternalServerError),
        (502, "upstream", None, E.BadGatewayError),
        (503, "overloaded", None, E.ServiceUnavailableError),
        (504, "gateway", None, E.TimeoutError),
        (529, "Overloaded", None, E.ServiceUnavailableError),
        (418, "teapot", None, E.BadRequestError),
        (599, "odd", None, E.InternalServerError),
    ],
)
def test_status_mapping(status, message, code, cls):
    err = error_from_status(status, message, code=code, provider="openai", model="fast", body="{}")
    assert type(err) is cls
    assert err.status == status and err.provider == "openai" and err.model == "fast"
    assert isinstance(err, E.HarnessError)


def test_errors_carry_context_and_print_it():
    err = error_from_status(
        429,
        "slow down",
        provider="anthropic",
        model="anthropic/claude-x",
        body='{"error": "x"}',
        retry_after=2.0,
        request_id="req_1",
    )
    assert str(err) == "[anthropic/claude-x] HTTP 429: slow down"
    assert err.retry_after == 2.0 and err.request_id == "req_1" and err.retryable
    assert err.to_dict()["type"] == "RateLimitError"
    assert isinstance(E.TimeoutError("x"), TimeoutError)  # also the builtin


def test_known_keys_and_key_shapes_are_scrubbed():
    register_secret("my-very-secret-key-42")
    err = error_from_status(
        401,
        "Incorrect API key provided: my-very-secret-key-42",
        body='{"error": "key ' + FAKE_KEY + ' is bad", "auth": "Bearer abcdefgh12345678"}',
    )
    text = str(err) + repr(err) + (err.body or "")
    assert "my-very-secret-key-42" not in text
    assert FAKE_KEY not in text
    assert "abcdefgh12345678" not in text
    assert scrub("AIza" + "SyA1234567890abcdefghijklmnopqrs") == "***"


def test_body_excerpt_is_short():
    err = error_from_status(500, "x", body="y" * 10_000)
    assert err.body is not None and len(err.body) <= E.BODY_EXCERPT_CHARS


def test_all_models_failed_keeps_every_error_in_order():
    a, b = E.RateLimitError("a"), E.NotFoundError("b")
    err = E.AllModelsFailed([("m1", a), ("m2", b)])
    assert list(err.errors.items()) == [("m1", a), ("m2", b)]
    assert err.to_dict()["errors"]["m2"]["type"] == "NotFoundError"
