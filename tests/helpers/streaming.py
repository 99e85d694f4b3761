"""Streaming test helpers: SSE bodies, streams sent in pieces or against a fake clock, calls,
and a respx-backed ``run_stream``; used by the streaming tests of every provider."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import respx
from openai.types.chat import ChatCompletionChunk

from harness.config import ModelSpec, parse_model_string
from harness.providers.base import Call, HTTPProvider
from harness.providers.streams import ResponseStream
from harness.types import ModelResponse, StreamChunk


def sse(*events: Any, crlf: bool = False) -> bytes:
    """SSE text: each item is a payload (dict → ``data: <json>``), ``"[DONE]"``, a raw
    ``(event, payload)`` pair, or a ``":comment"`` string."""
    out: list[str] = []
    for item in events:
        if isinstance(item, tuple):
            name, payload = item
            out.append(f"event: {name}")
            out.append("data: " + (payload if isinstance(payload, str) else json.dumps(payload)))
        elif isinstance(item, str) and item.startswith(":"):
            out.append(item)
        else:
            out.append("data: " + (item if isinstance(item, str) else json.dumps(item)))
        out.append("")
    end = "\r\n" if crlf else "\n"
    return (end.join(out) + end).encode()


class FakeClock:
    """A clock a test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Pieces(httpx.AsyncByteStream):
    """A response body sent in pieces of ``size`` bytes (records whether it was closed)."""

    def __init__(self, data: bytes, size: int = 3) -> None:
        self.data = data
        self.size = size
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start : start + self.size]

    async def aclose(self) -> None:
        self.closed = True


class Ticking(httpx.AsyncByteStream):
    """One event per piece; before sending piece i the clock reads i + 1 seconds."""

    def __init__(self, events: list[bytes], clock: FakeClock) -> None:
        self.events = events
        self.clock = clock

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, event in enumerate(self.events):
            self.clock.now = float(i + 1)
            yield event


def split_events(body: bytes) -> list[bytes]:
    """The events of an SSE body, each with its blank line (for ``Ticking``)."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in body else b"\n\n"
    return [part + sep for part in body.split(sep) if part.strip()]


def make_call(
    model: str,
    *,
    api_base: str | None = None,
    key: str | None = "sk-test-0123456789",
    messages: list[dict[str, Any]] | None = None,
    **params: Any,
) -> Call:
    spec: ModelSpec = parse_model_string(model)
    mock_response = params.pop("mock_response", None)
    return Call(
        spec=spec,
        messages=messages or [{"role": "user", "content": "Capital of Sweden?"}],
        params=params,
        api_key=key,
        api_base=api_base,
        mock_response=mock_response,
    )


async def run_stream(
    provider: HTTPProvider,
    call: Call,
    body: bytes | httpx.AsyncByteStream,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    clock: Callable[[], float] | None = None,
    include_usage: bool = False,
) -> tuple[list[StreamChunk], ResponseStream, respx.Route]:
    """Stream ``call`` against a respx route answering ``body``; return the chunks.

    ``include_usage`` asks for the usage chunk at the end, as ``stream_options`` does.
    """
    request = provider.build_stream_request(call)
    hdrs = {"content-type": "text/event-stream", **(headers or {})}
    if isinstance(body, bytes):
        response = httpx.Response(status, content=body, headers=hdrs)
    else:
        response = httpx.Response(status, stream=body, headers=hdrs)
    with respx.mock(assert_all_called=False) as router:
        route = router.route(method="POST", url=str(request.url)).mock(return_value=response)
        async with httpx.AsyncClient() as client:
            send_stream = functools.partial(client.send, stream=True)
            kwargs = {"clock": clock} if clock is not None else {}
            stream = provider.stream(call, send_stream, **kwargs)
            stream.include_usage = include_usage
            chunks = [chunk async for chunk in stream]
    return chunks, stream, route


def plain(response: ModelResponse) -> dict[str, Any]:
    """The OpenAI data of an answer without ``created`` (local time for most providers)."""
    data = response.to_dict()
    data.pop("created")
    return data


def assert_chunks_valid(chunks: list[StreamChunk]) -> None:
    for chunk in chunks:
        ChatCompletionChunk.model_validate(json.loads(json.dumps(chunk.to_dict())))


def joined_text(chunks: list[StreamChunk], index: int = 0) -> str:
    return "".join(
        c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index
    )
