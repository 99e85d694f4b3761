"""Every fault of the misbehaving server, through the public API: a typed error or the answer.

Each fault is sent through ``Harness(...).completion`` (a whole answer) and/or ``astream``
(a streamed one), over the lean transport and httpx's own where both apply. Hanging and
trickling answers are bounded by the call's ``timeout``; endless bodies and compression
bombs by ``max_response_bytes`` (at the default limit through the public API, and at a small
one set on the ``Call`` for the rest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import (
    APIConnectionError,
    BadGatewayError,
    Harness,
    HarnessError,
    InvalidResponseError,
    ModelResponse,
    ResponseTooLargeError,
)
from harness import TimeoutError as HarnessTimeout
from harness.http import ClientCache, LeanTransport
from harness.providers.base import DEFAULT_MAX_RESPONSE_BYTES, Call, get_provider
from harness.providers.streams import collect
from tests.faults.server import ANSWER, FaultServer

pytestmark = pytest.mark.timeout(30)  # a safety net only: every case ends on its own

USER = [{"role": "user", "content": "hi"}]
KEY = "k" * 12
TRANSPORTS = ["lean", "httpx"]
DEFAULT_LIMIT = f"max_response_bytes={DEFAULT_MAX_RESPONSE_BYTES} (32 MiB)"
SMALL = 64 * 1024
SMALL_LIMIT = f"max_response_bytes={SMALL} (64 KiB)"


def complete(server: FaultServer, fault: str, transport: str, **params: Any) -> ModelResponse:
    """A whole answer for ``openai/<fault>``, no retries."""
    params = {"num_retries": 0, "timeout": 10, **params}
    return Harness(transport=transport).completion(  # type: ignore[no-any-return]
        f"openai/{fault}", USER, api_base=server.url + "/v1", api_key=KEY, **params
    )


async def stream(server: FaultServer, fault: str, transport: str, **params: Any) -> ModelResponse:
    """A streamed answer for ``openai/<fault>``, assembled."""
    params = {"timeout": 10, **params}
    s = Harness(transport=transport).astream(
        f"openai/{fault}", USER, api_base=server.url + "/v1", api_key=KEY, **params
    )
    async with s:
        async for _ in s:
            pass
    assert s.response is not None
    return s.response


def failure(server: FaultServer, fault: str, transport: str, **params: Any) -> HarnessError:
    with pytest.raises(HarnessError) as info:
        complete(server, fault, transport, **params)
    return info.value


async def stream_failure(
    server: FaultServer, fault: str, transport: str, **params: Any
) -> HarnessError:
    with pytest.raises(HarnessError) as info:
        await stream(server, fault, transport, **params)
    return info.value


# --- broken connections: retryable connection errors --------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["reset-headers", "reset-body", "early-close"])
def test_a_connection_broken_mid_answer_is_a_connection_error(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    error = failure(fault_server, fault, transport)
    assert type(error) is APIConnectionError and error.retryable
    assert error.provider == "openai" and error.model == f"openai/{fault}"


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["reset-headers", "reset-body", "early-close"])
async def test_a_stream_broken_before_any_finish_is_a_connection_error(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    error = await stream_failure(fault_server, fault, transport)
    assert type(error) is APIConnectionError and error.retryable


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_that_ends_cleanly_without_a_finish_is_truncated(
    fault_server: FaultServer, transport: str
) -> None:
    error = await stream_failure(fault_server, "early-close-no-finish", transport)
    assert type(error) is APIConnectionError
    assert "stream ended before the answer was complete" in str(error)


# --- protocol errors in the framing -------------------------------------------------------


BAD_FRAMING = [
    ("bad-chunk-size", "bad chunk size b'zz'"),
    ("bad-chunk-negative", "bad chunk size b'-5'"),
    ("bad-chunk-prefixed", "bad chunk size b'0x10'"),
    ("bad-chunk-huge", "bad chunk size b'fffffffffffffffffff'"),
    ("bad-chunk-no-crlf", "chunk data not followed by CRLF"),
    ("cl-abc", "invalid Content-Length b'abc'"),
    ("cl-negative", "invalid Content-Length b'-20'"),
    ("cl-duplicate", "conflicting Content-Length values 10 and 12"),
    ("cl-list", "conflicting Content-Length values 10 and 12"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("fault", "message"), BAD_FRAMING)
def test_bad_framing_is_a_retryable_protocol_error(
    fault_server: FaultServer, fault: str, message: str, transport: str
) -> None:
    error = failure(fault_server, fault, transport)
    assert type(error) is APIConnectionError and error.retryable
    assert "RemoteProtocolError" in str(error)
    if transport == "lean":  # httpx's own transport words it its own way (h11)
        assert message in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("fault", "message"), BAD_FRAMING)
async def test_bad_framing_of_a_stream_is_a_connection_error(
    fault_server: FaultServer, fault: str, message: str, transport: str
) -> None:
    error = await stream_failure(fault_server, fault, transport)
    assert type(error) is APIConnectionError
    if transport == "lean":
        assert message in str(error)


# --- size limits --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["endless", "gzip-bomb"])
def test_endless_and_bomb_bodies_stop_at_the_default_limit(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    error = failure(fault_server, fault, transport)
    assert type(error) is ResponseTooLargeError and not error.retryable
    assert error.limit == DEFAULT_MAX_RESPONSE_BYTES
    assert DEFAULT_LIMIT in str(error) and "raise it with max_response_bytes=" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_endless_stream_stops_at_the_default_limit(
    fault_server: FaultServer, transport: str
) -> None:
    error = await stream_failure(fault_server, "endless", transport)
    assert type(error) is ResponseTooLargeError and DEFAULT_LIMIT in str(error)


def _call(server: FaultServer, fault: str, limit: int) -> Call:
    call = Harness().prepare(
        f"openai/{fault}", USER, {"api_base": server.url + "/v1", "api_key": KEY}
    )
    call.max_response_bytes = limit
    return call


LIMITED = ["endless", "endless-eof", "huge-length", "gzip-bomb"]


@pytest.mark.parametrize("where", ["call", "model", "defaults"])
def test_the_limit_comes_from_the_call_the_model_or_the_defaults(
    fault_server: FaultServer, where: str
) -> None:
    config: dict = {"models": {"m": {"model": "openai/endless", "api_base": fault_server.url + "/v1"}}}
    params: dict = {"api_key": KEY, "num_retries": 0}
    if where == "call":
        params["max_response_bytes"] = SMALL
    elif where == "model":
        config["models"]["m"]["max_response_bytes"] = SMALL
    else:
        config["defaults"] = {"max_response_bytes": SMALL}
    with pytest.raises(ResponseTooLargeError) as info:
        Harness(config).completion("m", USER, **params)
    assert info.value.limit == SMALL and SMALL_LIMIT in str(info.value)


def test_a_bad_limit_on_the_call_is_a_config_error_before_sending(fault_server: FaultServer) -> None:
    from harness import ConfigError

    with pytest.raises(ConfigError, match="max_response_bytes: expected an integer >= 1024"):
        Harness().completion(
            "openai/endless", USER, api_base=fault_server.url + "/v1", api_key=KEY,
            max_response_bytes=10,
        )


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", LIMITED)
async def test_a_small_limit_on_the_call_holds_for_whole_answers(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    cache = ClientCache(transport)  # type: ignore[arg-type]
    try:
        with pytest.raises(InvalidResponseError) as info:
            await get_provider("openai").generate(_call(fault_server, fault, SMALL), cache.sender())
    finally:
        await cache.aclose()
    assert SMALL_LIMIT in str(info.value)
    if fault == "gzip-bomb":
        assert "decompressed response body exceeds" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", LIMITED)
async def test_a_small_limit_on_the_call_holds_for_the_sum_of_a_stream(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    cache = ClientCache(transport)  # type: ignore[arg-type]
    stream = get_provider("openai").stream(_call(fault_server, fault, SMALL), cache.stream_sender())
    try:
        with pytest.raises(InvalidResponseError) as info:
            await collect(stream)
    finally:
        await cache.aclose()
    assert SMALL_LIMIT in str(info.value)
    assert stream.chunks_yielded < 10  # stopped early, not after reading everything


@pytest.mark.asyncio
async def test_a_socket_that_went_past_the_limit_is_closed_not_reused(
    fault_server: FaultServer,
) -> None:
    transport = LeanTransport()
    cache = ClientCache(transport)
    provider = get_provider("openai")
    try:
        for fault in ("ok", "endless", "ok"):
            call = _call(fault_server, fault, SMALL)
            if fault == "endless":
                with pytest.raises(InvalidResponseError):
                    await provider.generate(call, cache.sender())
            else:
                assert (await provider.generate(call, cache.sender())).content == ANSWER
    finally:
        await transport.aclose()
    # The first "ok" socket served "endless" and was then closed; the last "ok" needed a new one.
    assert transport.connections_opened == 2


# --- content codings ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gzipped_answer_is_decoded(fault_server: FaultServer, transport: str) -> None:
    assert complete(fault_server, "gzip-ok", transport).content == ANSWER


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_gzipped_stream_is_decoded(fault_server: FaultServer, transport: str) -> None:
    assert (await stream(fault_server, "gzip-ok", transport)).content == ANSWER


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unsupported_content_coding_is_refused_clearly(
    fault_server: FaultServer, transport: str
) -> None:
    error = failure(fault_server, "brotli", transport)
    assert type(error) is InvalidResponseError
    assert "unsupported Content-Encoding 'br'" in str(error)


# --- no answer, or one byte at a time -----------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["hang", "trickle", "trickle-head"])
def test_hanging_and_trickling_answers_end_at_the_timeout(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    error = failure(fault_server, fault, transport, timeout=0.3)
    assert type(error) is HarnessTimeout and "0.3 s" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["hang", "trickle", "trickle-head"])
async def test_hanging_and_trickling_streams_end_at_the_timeout(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    error = await stream_failure(fault_server, fault, transport, timeout=0.3)
    assert type(error) is HarnessTimeout and "0.3 s" in str(error)


# --- answers that are not what was asked for ---------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_html_page_is_not_an_answer(fault_server: FaultServer, transport: str) -> None:
    error = failure(fault_server, "html-200", transport)
    assert type(error) is InvalidResponseError and error.status == 200
    assert "content type 'text/html; charset=utf-8'" in str(error)
    assert "Welcome to nginx!: If you see this page" in str(error)  # the page's title and text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_html_error_page_keeps_its_status(fault_server: FaultServer, transport: str) -> None:
    error = failure(fault_server, "html-502", transport)
    assert type(error) is BadGatewayError and error.retryable and error.status == 502
    assert "HTML error page: 502 Bad Gateway: nginx/1.25.3" in str(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_plain_text_is_not_an_answer(fault_server: FaultServer, transport: str) -> None:
    error = failure(fault_server, "text-plain", transport)
    assert type(error) is InvalidResponseError
    assert "content type 'text/plain'" in str(error) and "upstream connect error" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "ctype", "excerpt"),
    [
        ("html-200", "text/html; charset=utf-8", "Welcome to nginx!"),
        ("text-plain", "text/plain", "upstream connect error or disconnect/reset"),
    ],
)
async def test_a_stream_answered_with_another_content_type_says_so(
    fault_server: FaultServer, fault: str, ctype: str, excerpt: str, transport: str
) -> None:
    error = await stream_failure(fault_server, fault, transport)
    assert type(error) is InvalidResponseError and not error.retryable
    assert f"answered a stream request with content type {ctype!r}, not text/event-stream" in str(
        error
    )
    assert excerpt in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_html_error_page_keeps_its_status(
    fault_server: FaultServer, transport: str
) -> None:
    error = await stream_failure(fault_server, "html-502", transport)
    assert type(error) is BadGatewayError and "502 Bad Gateway" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_event_stream_labelled_text_plain_is_still_read(
    fault_server: FaultServer, transport: str
) -> None:
    assert (await stream(fault_server, "sse-as-text-plain", transport)).content == ANSWER
    assert complete(fault_server, "sse-as-text-plain", transport).content == ANSWER


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invalid_utf8_in_a_whole_answer(fault_server: FaultServer, transport: str) -> None:
    error = failure(fault_server, "bad-utf8", transport)
    assert type(error) is InvalidResponseError
    assert "response body is not valid UTF-8: invalid start byte" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_utf8_in_a_stream(fault_server: FaultServer, transport: str) -> None:
    error = await stream_failure(fault_server, "bad-utf8", transport)
    assert type(error) is InvalidResponseError
    assert "stream body is not UTF-8: invalid UTF-8 at byte" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_garbage_instead_of_events(fault_server: FaultServer, transport: str) -> None:
    error = await stream_failure(fault_server, "garbage-sse", transport)
    assert type(error) is InvalidResponseError
    assert "holds no server-sent events: 'lorem ipsum dolor" in str(error)
    whole = failure(fault_server, "garbage-sse", transport)
    assert type(whole) is InvalidResponseError and "not JSON" in str(whole)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_event_that_is_not_json(fault_server: FaultServer, transport: str) -> None:
    error = await stream_failure(fault_server, "sse-bad-json", transport)
    assert type(error) is InvalidResponseError and "not JSON" in str(error)


# --- a finish without [DONE] --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["no-done", "no-done-close", "no-done-reset"])
async def test_a_finish_reason_without_done_is_a_complete_answer(
    fault_server: FaultServer, fault: str, transport: str
) -> None:
    response = await stream(fault_server, fault, transport)
    assert response.content == ANSWER and response.choices[0].finish_reason == "stop"
    if fault == "no-done":  # the usage chunk came before the body ended
        assert response.usage.total_tokens == 5


# --- the sync bridge, too -------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_streams_raise_the_same_typed_errors(
    fault_server: FaultServer, transport: str
) -> None:
    h = Harness(transport=transport)
    base = fault_server.url + "/v1"
    with pytest.raises(InvalidResponseError, match="not text/event-stream"):
        list(h.completion("openai/html-200", USER, api_base=base, api_key=KEY, stream=True))
    chunks = list(h.completion("openai/no-done", USER, api_base=base, api_key=KEY, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER


def test_every_fault_is_exercised() -> None:
    from tests.faults.server import FAULTS

    text = Path(__file__).read_text(encoding="utf-8")
    missing = [name for name in FAULTS if f'"{name}"' not in text]
    assert not missing
