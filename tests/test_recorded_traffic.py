"""Responses recorded from the real provider APIs, replayed over real HTTP and read back.

Each file in ``tests/recorded/`` is one response copied from a public SDK or framework test
cassette (its ``source`` names the repository, path and commit): the status, content type
and body as recorded, and ``expect``, what the recording says in OpenAI's terms (content,
reasoning, tool calls, finish reason, usage), or the error it must raise (class, status,
retryability). The local server answers with the body as it was recorded; streams are
replayed whole, split into small random pieces over HTTP, and in 1-byte pieces through an
injected transport, so the parsers see every possible split.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import Harness, stream_chunk_builder
from harness.errors import HarnessError
from harness.types import ModelResponse, StreamChunk
from tests.helpers.local_server import Reply, Request

RECORDED = Path(__file__).parent / "recorded"
RECORDINGS = sorted(RECORDED.glob("*.json"))
KEY = "recorded-traffic-key-0123456789"
USER = [{"role": "user", "content": "replay"}]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _is_stream(rec: dict[str, Any]) -> bool:
    return str(rec["content_type"]).startswith("text/event-stream")


def _cases() -> list[Any]:
    """(recording, mode): JSON bodies whole and streamed; SSE bodies in every split."""
    out = []
    for path in RECORDINGS:
        rec = _load(path)
        modes = (
            ["stream", "stream-pieces", "stream-1-byte", "collected"]
            if _is_stream(rec)
            else ["whole", "stream"]
        )
        out.extend(pytest.param(path, mode, id=f"{path.stem}-{mode}") for mode in modes)
    return out


async def _no_sleep(seconds: float) -> None:
    return None


class _BytePieces(httpx.AsyncByteStream):
    """A body handed over one byte at a time."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(len(self.data)):
            yield self.data[i : i + 1]


def _model(rec: dict[str, Any]) -> str:
    return f"{rec['provider']}/{rec['model']}"


def _reply(rec: dict[str, Any], pieces: list[int] | None = None) -> Reply:
    return Reply(
        status=rec["status"],
        body=rec["body"].encode(),
        headers={"content-type": rec["content_type"]},
        pieces=pieces,
    )


def _random_pieces(rec: dict[str, Any], name: str) -> list[int]:
    rng = random.Random(name)
    size = len(rec["body"].encode())
    out: list[int] = []
    while sum(out) < size:
        out.append(rng.randint(1, 48))
    return out


def test_the_set_covers_every_family_and_the_three_bugs() -> None:
    recs = [_load(p) for p in RECORDINGS]
    assert len(recs) >= 30
    providers = {r["provider"] for r in recs}
    assert {"openai", "anthropic", "gemini", "cohere", "groq", "mistral", "deepseek"} <= providers
    assert {"openrouter", "vllm"} <= providers  # and other OpenAI-compatible hosts
    bodies = [r["body"] for r in recs]
    assert any("event: error" in b and "tool_use_failed" in b for b in bodies)  # bug 1
    assert any('"finish_reason":""' in b and "tool_calls" in b for b in bodies)  # bug 2
    assert any("reasoning_details" in b for b in bodies)  # bug 3
    for rec in recs:  # every file names where its body came from
        assert rec["source"]["repository"] and rec["source"]["path"], rec


@pytest.mark.asyncio
@pytest.mark.parametrize(("path", "mode"), _cases())
async def test_a_recorded_response_reads_as_recorded(local_server, path: Path, mode: str) -> None:
    rec = _load(path)
    expect = rec["expect"]
    seen: list[Request] = []

    def handler(request: Request) -> Reply:
        seen.append(request)
        pieces = _random_pieces(rec, path.stem) if mode == "stream-pieces" else None
        return _reply(rec, pieces)

    server = local_server(handler)
    transport = None
    if mode == "stream-1-byte":

        def one_byte(request: httpx.Request) -> httpx.Response:
            seen.append(Request(request.method, request.url.path, {}, request.content))
            headers = {"content-type": rec["content_type"]}
            return httpx.Response(
                rec["status"], headers=headers, stream=_BytePieces(rec["body"].encode())
            )

        transport = httpx.MockTransport(one_byte)
    h = Harness(transport=transport, retries=2, sleep=_no_sleep)
    params: dict[str, Any] = {"api_base": server.url, "api_key": KEY}
    try:
        if mode == "whole":
            [result] = await h.abatch_completion(_model(rec), [USER], **params)
            _check(result, expect, seen)
        elif mode == "collected":
            [result] = await h.abatch_completion(_model(rec), [USER], stream=True, **params)
            _check(result, expect, seen)
        else:
            await _check_caller_stream(h, rec, params, expect)
    finally:
        await h.aclose()


def _check(result: ModelResponse | HarnessError, expect: dict[str, Any], seen: list[Any]) -> None:
    """The answer (or error in the slot) of a call with retries, against the recording."""
    if "error" in expect:
        assert isinstance(result, HarnessError), result
        _check_error(result, expect["error"])
        # Retries follow the class: a client error is sent once, a server one three times.
        assert len(seen) == (3 if expect["error"]["retryable"] else 1)
        return
    assert isinstance(result, ModelResponse), result
    _check_answer(result, expect)
    assert len(seen) == 1


def _check_error(error: HarnessError, want: dict[str, Any]) -> None:
    assert type(error).__name__ == want["class"], repr(error)
    assert error.status == want["status"]
    assert error.retryable is want["retryable"]
    assert want["message"] in error.message
    if want["status"] is None:
        assert "HTTP" not in str(error)  # no status was sent, none is shown
    if "retry_after" in want:
        assert error.retry_after == pytest.approx(want["retry_after"])
    assert KEY not in str(error) and KEY not in (error.body or "")


def _check_answer(response: ModelResponse, expect: dict[str, Any]) -> None:
    choice = response.choices[0]
    message = choice.message
    assert (message.content or "") == expect["content"]
    assert (message.reasoning_content or None) == expect["reasoning"]
    assert _tools(message.tool_calls) == _tools(expect["tool_calls"])
    assert choice.finish_reason == expect["finish_reason"]
    usage, want = response.usage, expect["usage"]
    assert usage.prompt_tokens == want["prompt_tokens"]
    assert usage.completion_tokens == want["completion_tokens"]
    if want["total_tokens"] is not None:
        assert usage.total_tokens == want["total_tokens"]
    assert usage.cached_tokens == want["cached_tokens"]
    assert usage.reasoning_tokens == want["reasoning_tokens"]


def _tools(calls: Any) -> list[tuple[str, Any]]:
    """(name, parsed arguments) of tool calls given as objects or recorded dicts."""
    out = []
    for call in calls or []:
        if isinstance(call, dict):
            name, arguments = call["name"], call["arguments"]
        else:
            name, arguments = call.function.name, call.function.arguments
        out.append((name, json.loads(arguments or "{}")))
    return out


async def _check_caller_stream(
    h: Harness, rec: dict[str, Any], params: dict[str, Any], expect: dict[str, Any]
) -> None:
    """A caller's stream: its chunks, the chunks joined, and the assembled answer agree."""
    stream = await h.acompletion(
        _model(rec), USER, stream=True, stream_options={"include_usage": True}, **params
    )
    chunks: list[StreamChunk] = []
    if "error" in expect:
        with pytest.raises(HarnessError) as info:
            async for chunk in stream:
                chunks.append(chunk)
        _check_error(info.value, expect["error"])
        return
    async for chunk in stream:
        chunks.append(chunk)
    assert stream.response is not None
    _check_answer(stream.response, expect)
    # What a caller joins from the chunks says what the answer says: text, reasoning, tool
    # calls, usage, and the finish reason of the last chunk with a choice.
    joined = stream_chunk_builder(chunks)
    _check_answer(joined, expect)
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == expect["finish_reason"]
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) >= 1
