"""Offline models that need no network and no key: ``echo/<name>`` and ``mock/<name>``.

``echo`` answers with the text of the last user message.

``mock`` answers from a script. The answer of one attempt comes from, in order:

1. the call's ``mock_response=`` (any model answers offline when it is given, as in LiteLLM);
2. the model's ``responses`` list in the config, taken in turn (the n-th call gets the n-th
   answer, cycling);
3. else, for one of harness's judge prompts, the offline judge's verdict
   (``harness.providers.offline_judge``);
4. else the echo answer.

An answer is a string (the content) or a table with any of ``content``, ``tool_calls``,
``finish_reason``, ``latency_ms``, ``error``, ``usage`` and ``stall``. ``error`` simulates a
failure: an HTTP status (``429``, ``503``, …, mapped exactly as a real provider's would be,
with ``retry_after`` when given), ``"timeout"`` / ``"connection"``, an exception instance or
an error class. ``stall: true`` never answers, so the call's timeout ends it (LiteLLM's
``mock_timeout=True``). As in LiteLLM, ``mock_response`` may also be an exception instance
(raised as it is when it is a ``HarnessError``; any other becomes the typed error of its
``status_code``, 500 when it has none) or the name of an error class, ``"litellm.RateLimitError"``
or ``"harness.RateLimitError"``. A *list* given as ``mock_response`` is a per-attempt script:
attempt k uses item k (the last item repeats), so ``[{"error": 503}, "ok"]`` fails once and
succeeds on the retry.

Latency (``latency_ms`` on the answer, the ``mock_latency_ms=`` call parameter, or the
model's ``latency_ms`` in config) is an ``asyncio.sleep``: cancellable, so races and
timeouts behave as with a real server.

Both models stream too (``stream(call, send_stream)``, the same ``ResponseStream`` as the
HTTP adapters): a role chunk, the answer split on words, tool calls, the finish reason and
a usage chunk. The first chunk comes after ``ttft_ms`` (answer, ``mock_ttft_ms=`` call
parameter, or config; default: the whole latency); the rest of the latency, if any, is
spread between the remaining chunks. A simulated ``error`` is raised before the first chunk.

Both models embed too (``Harness.embedding``): each text gets ``hashed_embedding``'s
deterministic unit vector (256 dimensions, or the call's ``dimensions``), after the
configured latency; a mock model's ``error`` (config, or a ``mock_response`` that is an
error) fails the call as it would a completion.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any

from harness.embeddings import (
    DEFAULT_OFFLINE_DIMENSIONS,
    Embedding,
    EmbeddingResponse,
    hashed_embedding,
)
from harness.errors import (
    APIConnectionError,
    HarnessError,
    default_status,
    error_class,
    error_from_status,
)
from harness.errors import TimeoutError as HarnessTimeoutError
from harness.messages import last_user_text
from harness.providers.base import (
    Call,
    Provider,
    Send,
    SendStream,
)
from harness.providers.offline_judge import is_judge_conversation, judge_reply
from harness.providers.streams import (
    Clock,
    ResponseStream,
    response_chunks,
    split_words,
)
from harness.providers.wire import (
    content_text,
    every_finish_reason,
    map_finish_reason,
    new_id,
    now,
)
from harness.types import (
    Choice,
    Message,
    ModelResponse,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

__all__ = ["EchoProvider", "MockProvider", "count_tokens"]


def count_tokens(text: str) -> int:
    """A rough, dependency-free token count for offline models: words and punctuation runs."""
    return len(text.split())


class EchoProvider(Provider):
    """Answers with the last user message."""

    family = "echo"
    needs_network = False
    supports_embeddings = True

    async def embed(self, call: Call, send: Send) -> EmbeddingResponse:
        """Hashed vectors of the texts, after the configured latency."""
        await _sleep_ms(_latency(call, {}))
        return _embeddings(call)

    async def generate(self, call: Call, send: Send) -> ModelResponse:
        """Echo the last user message, after the configured latency."""
        await _sleep_ms(_latency(call, {}))
        return _build(call, {"content": (last_user_text(call.messages) or "")})

    def stream(
        self, call: Call, send_stream: SendStream, *, clock: Clock = time.perf_counter
    ) -> ResponseStream:
        """Stream the echo in word-sized chunks (see the module docstring for timing)."""
        answer = {"content": (last_user_text(call.messages) or "")}

        def produce(stream: ResponseStream) -> AsyncGenerator[StreamChunk, None]:
            return _stream_answer(call, answer, stream)

        return ResponseStream(produce, clock=clock)


class MockProvider(Provider):
    """Answers from a script; simulates latency, error statuses and timeouts."""

    family = "mock"
    needs_network = False
    supports_embeddings = True

    def __init__(self) -> None:
        self._turns: dict[tuple[str, str], Iterator[int]] = {}
        """Each scripted model's place in its ``responses``: keyed by the script too, so
        sessions in one process with different scripts for a name do not share turns."""

    def _next_scripted(self, call: Call) -> Any:
        responses = call.spec.mock.get("responses")
        if not responses:
            return None
        key = (call.spec.name, repr(responses))
        turn = self._turns.setdefault(key, itertools.cycle(range(len(responses))))
        return responses[next(turn)]

    def _answer(self, call: Call) -> Mapping[str, Any]:
        """This attempt's answer as a table (the script, else the echo)."""
        answer: Any = call.mock_response
        if isinstance(answer, list | tuple):
            answer = answer[min(call.attempt, len(answer) - 1)] if answer else None
        if answer is None:
            answer = self._next_scripted(call)
        if answer is None and is_judge_conversation(call.messages):
            return {"content": judge_reply(call.messages)}  # harness/providers/offline_judge.py
        if answer is None:
            return {"content": (last_user_text(call.messages) or "")}
        if isinstance(answer, str):
            named = error_class(answer) if answer.startswith(_ERROR_PREFIXES) else None
            return {"content": answer} if named is None else {"error": named}
        if isinstance(answer, BaseException):
            return {"error": answer}
        if not isinstance(answer, Mapping):
            return {"content": str(answer)}
        return answer

    async def generate(self, call: Call, send: Send) -> ModelResponse:
        """Play the scripted answer for this attempt."""
        answer = self._answer(call)
        await _play(call, answer)
        return _build(call, answer)

    async def embed(self, call: Call, send: Send) -> EmbeddingResponse:
        """Hashed vectors of the texts; a scripted error or stall plays as for completions.

        Only ``mock_response`` (per attempt when a list) and the model's ``error`` and
        latency apply: the ``responses`` script is for completions.
        """
        answer: Any = call.mock_response
        if isinstance(answer, list | tuple):
            answer = answer[min(call.attempt, len(answer) - 1)] if answer else None
        if isinstance(answer, str):
            named = error_class(answer) if answer.startswith(_ERROR_PREFIXES) else None
            answer = {} if named is None else {"error": named}
        elif isinstance(answer, BaseException):
            answer = {"error": answer}
        elif not isinstance(answer, Mapping):
            answer = {}
        await _play(call, answer)
        return _embeddings(call)

    def stream(
        self, call: Call, send_stream: SendStream, *, clock: Clock = time.perf_counter
    ) -> ResponseStream:
        """Stream this attempt's scripted answer in word-sized chunks.

        The answer is chosen when ``stream`` is called (so scripted turns keep their
        order); nothing waits until the stream is iterated.
        """
        answer = self._answer(call)

        def produce(stream: ResponseStream) -> AsyncGenerator[StreamChunk, None]:
            return _stream_answer(call, answer, stream)

        return ResponseStream(produce, clock=clock)


async def _stream_answer(
    call: Call, answer: Mapping[str, Any], stream: ResponseStream
) -> AsyncGenerator[StreamChunk, None]:
    """The chunks of an offline answer, paced by its ``ttft_ms`` and ``latency_ms``."""
    latency = _ms(_latency(call, answer))
    ttft = answer.get("ttft_ms", call.params.get("mock_ttft_ms", call.spec.mock.get("ttft_ms")))
    first = latency if ttft is None else _ms(ttft)
    stream.mark_sent()
    await _sleep_ms(first)
    if answer.get("stall"):
        await _stall()
    error = answer.get("error", call.spec.mock.get("error"))
    if error is not None:
        raise _simulated_error(call, error, answer)
    response = _build(call, answer)
    chunks = response_chunks(response, split_words)
    # The role-only chunk goes out with the first output; the rest of the latency is spread
    # over the gaps between the later chunks.
    gap = max(latency - first, 0.0) / max(len(chunks) - 2, 1)
    for position, chunk in enumerate(chunks):
        if position > 1:
            await _sleep_ms(gap)
        stream.observe_chunk(chunk)
        yield chunk
    stream.mark_end()
    stream.complete(response)


def _latency(call: Call, answer: Mapping[str, Any]) -> Any:
    """The simulated latency: the answer's, else the call parameter's, else the config's."""
    return answer.get(
        "latency_ms", call.params.get("mock_latency_ms", call.spec.mock.get("latency_ms"))
    )


def _ms(value: Any) -> float:
    return float(value) if value else 0.0


async def _sleep_ms(ms: Any) -> None:
    if ms:
        await asyncio.sleep(float(ms) / 1000.0)


_ERROR_PREFIXES = ("litellm.", "harness.")
"""How a ``mock_response`` string names an error class instead of being the answer's text."""


async def _stall() -> None:
    """Wait until cancelled: a server that never answers (the call's timeout ends it)."""
    await asyncio.get_running_loop().create_future()


async def _play(call: Call, answer: Mapping[str, Any]) -> None:
    """Before a whole answer: its latency, then its stall or simulated error, if any."""
    await _sleep_ms(_latency(call, answer))
    if answer.get("stall"):
        await _stall()
    error = answer.get("error", call.spec.mock.get("error"))
    if error is not None:
        raise _simulated_error(call, error, answer)


def _simulated_error(call: Call, error: Any, answer: Mapping[str, Any]) -> Exception:
    if isinstance(error, HarnessError):
        if error.provider is None:
            error.provider, error.model = call.spec.provider, call.spec.name
        if error.status is None:
            error.status = default_status(type(error))
        return error
    if isinstance(error, BaseException):
        status = getattr(error, "status_code", None)
        typed = error_from_status(
            status if isinstance(status, int) and status >= 400 else 500,
            f"{type(error).__name__}: {error}",
            provider=call.spec.provider,
            model=call.spec.name,
        )
        typed.__cause__ = error
        return typed
    if isinstance(error, type) and issubclass(error, HarnessError):
        return error(
            f"simulated {error.__name__} (mock_response)",
            provider=call.spec.provider,
            model=call.spec.name,
            status=default_status(error),
        )
    if error == "timeout":
        return call.error(HarnessTimeoutError, "mock model timed out (simulated)")
    if error == "connection":
        return call.error(APIConnectionError, "mock model connection failed (simulated)")
    if isinstance(error, int) and not isinstance(error, bool):
        message = answer.get("message") or f"simulated HTTP {error} from mock model"
        return error_from_status(
            error,
            str(message),
            code=answer.get("code"),
            provider=call.spec.provider,
            model=call.spec.name,
            retry_after=answer.get("retry_after"),
        )
    return call.error(
        APIConnectionError,
        "mock error must be a status code, 'timeout', 'connection', an exception or an "
        f"error class, got {error!r}",
    )


def _build(call: Call, answer: Mapping[str, Any]) -> ModelResponse:
    content = answer.get("content")
    tool_calls = [ToolCall.from_dict(t) for t in answer.get("tool_calls") or []] or None
    raw_finish = answer.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
    finish, flags = map_finish_reason(raw_finish, every_finish_reason(), call)
    if content is not None and not isinstance(content, str):
        import json

        content = json.dumps(content)  # a mock answer given as structured data is JSON text
    usage_in = answer.get("usage") or {}
    prompt_tokens = int(
        usage_in.get(
            "prompt_tokens",
            sum(count_tokens(content_text(m.get("content"))) for m in call.messages),
        )
    )
    completion_tokens = int(usage_in.get("completion_tokens", count_tokens(content or "")))
    n = int(call.params.get("n") or 1)
    choices = [
        Choice(i, Message(content=content, tool_calls=tool_calls), finish_reason=finish)
        for i in range(n)
    ]
    return ModelResponse(
        id=new_id("chatcmpl-mock-"),
        model=call.spec.model,
        choices=choices,
        created=now(),
        usage=Usage(prompt_tokens, completion_tokens * n, prompt_tokens + completion_tokens * n),
        system_fingerprint=None,
        harness=ResponseMeta(
            provider=call.spec.provider,
            model=call.spec.name,
            raw_finish_reasons=[raw_finish] * n,
            flags=flags,
        ),
    )


def _embeddings(call: Call) -> EmbeddingResponse:
    """The offline embeddings of ``call``'s texts, with word counts as usage."""
    texts: list[str] = call.params["input"]
    dimensions = int(call.params.get("dimensions") or DEFAULT_OFFLINE_DIMENSIONS)
    tokens = sum(count_tokens(text) for text in texts)
    return EmbeddingResponse(
        model=call.spec.model,
        data=[Embedding(hashed_embedding(text, dimensions), i) for i, text in enumerate(texts)],
        usage=Usage(tokens, 0, tokens),
        harness=ResponseMeta(provider=call.spec.provider, model=call.spec.name),
    )
