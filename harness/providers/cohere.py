"""The Cohere Chat v2 adapter (``POST /v2/chat``).

This module owns the translation between OpenAI-shaped calls and Cohere's v2 chat format:
messages keep their OpenAI roles (``developer`` becomes ``system``), parameters take Cohere's
names (``p``, ``k``, ``stop_sequences``, ``REQUIRED``/``NONE`` tool choice), the answer's
content items, thinking and tool calls come back as one OpenAI choice, and Cohere's error
statuses (including its 498 and 499) are mapped onto the harness error tree. Streams (the
same URL with ``"stream": true``) send typed events (``message-start`` … ``message-end``)
that become OpenAI chunks and are assembled into the same ``ModelResponse``. Embeddings go
to ``POST /v2/embed`` (up to 96 texts per request).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from harness.embeddings import EmbeddingResponse
from harness.errors import (
    APIConnectionError,
    AuthenticationError,
    BillingError,
    ConfigError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    error_from_status,
)
from harness.errors import TimeoutError as HarnessTimeoutError
from harness.providers.base import (
    Call,
    HTTPProvider,
)
from harness.providers.streams import (
    PartialToolCall,
    StreamParser,
)
from harness.providers.wire import (
    FinishReasons,
    content_text,
    embedding_response,
    error_details,
    json_request,
    map_finish_reason,
    new_id,
    now,
    request_id,
    retry_after_seconds,
    with_json_fields,
)
from harness.types import (
    Choice,
    FinishReason,
    Message,
    ModelResponse,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

__all__ = ["DEFAULT_INPUT_TYPE", "FINISH_REASONS", "CohereProvider", "CohereStreamParser"]

DEFAULT_INPUT_TYPE = "search_document"
"""The ``input_type`` of an embeddings call that gives none (Cohere requires one)."""

FINISH_REASONS = FinishReasons(
    mapped={
        "COMPLETE": "stop",
        "STOP_SEQUENCE": "stop",
        "MAX_TOKENS": "length",
        "TOOL_CALL": "tool_calls",
    },
    failed={"ERROR": InternalServerError, "TIMEOUT": HarnessTimeoutError},
)
"""Cohere's finish reasons; ``ERROR`` and ``TIMEOUT`` mean the generation failed."""

MAX_RESET_WAIT = 60.0
"""Longest wait taken from ``x-ratelimit-reset``, as the Cohere SDK caps it."""

_RENAMED: Mapping[str, str] = {
    "temperature": "temperature",
    "top_p": "p",
    "top_k": "k",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
"""OpenAI parameters sent under their Cohere names."""

_NATIVE: frozenset[str] = frozenset(
    {
        "strict_tools",
        "safety_mode",
        "documents",
        "citation_options",
        "thinking",
        "logprobs",
        "priority",
    }
)
"""Cohere-only request fields passed through as given."""

_DROPPED: frozenset[str] = frozenset(
    {"n", "user", "logit_bias", "parallel_tool_calls", "stream_options", "stream"}
)
"""OpenAI parameters Cohere has no field for (``n`` is fanned out by ``generate``)."""


class CohereProvider(HTTPProvider):
    """Cohere's ``/v2/chat``; it has no ``n``, so ``generate`` sends one request per choice."""

    family = "cohere"
    supports_n = False
    supports_embeddings = True
    max_embedding_inputs = 96
    """``/v2/embed`` takes at most 96 texts."""

    def build_request(self, call: Call) -> httpx.Request:
        """Build the ``/v2/chat`` POST for ``call`` (pure)."""
        url, headers = _endpoint(call, "chat")
        return json_request(url, build_body(call), headers)

    def build_embedding_request(self, call: Call) -> httpx.Request:
        """Build the ``/v2/embed`` POST for ``call`` (pure).

        ``{"model", "texts", "input_type", "embedding_types": ["float"]}``: ``input_type``
        is the call's (LiteLLM passes it through), default ``search_document``;
        ``dimensions`` becomes ``output_dimension`` and ``truncate`` is passed on.
        """
        url, headers = _endpoint(call, "embed")
        params = call.params
        body: dict[str, Any] = {
            "model": call.spec.model,
            "texts": params["input"],
            "input_type": params.get("input_type") or DEFAULT_INPUT_TYPE,
            "embedding_types": ["float"],
        }
        if params.get("dimensions") is not None:
            body["output_dimension"] = params["dimensions"]
        if params.get("truncate") is not None:
            body["truncate"] = params["truncate"]
        return json_request(url, body, headers)

    def parse_embedding_response(
        self, call: Call, data: Any, headers: Mapping[str, str]
    ) -> EmbeddingResponse:
        """Normalise ``{"embeddings": {"float": [[...]]}, "meta": {"billed_units"}}`` (pure).

        Raises:
            InvalidResponseError: not one vector per text sent.
        """
        vectors = [[float(x) for x in v] for v in data["embeddings"]["float"]]
        billed = (data.get("meta") or {}).get("billed_units") or {}
        tokens = int(billed.get("input_tokens") or 0)
        return embedding_response(call, vectors, Usage(tokens, 0, tokens), call.spec.model)

    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> ModelResponse:
        """Normalise a Chat v2 response into a ``ModelResponse`` (pure).

        Raises:
            InternalServerError: the finish reason is ``ERROR``.
            TimeoutError: the finish reason is ``TIMEOUT``.
        """
        raw = data.get("finish_reason")
        finish, flags = map_finish_reason(raw, FINISH_REASONS, call)
        message = parse_message(data.get("message") or {})
        if message.tool_calls and finish == "stop":
            finish = "tool_calls"
        return ModelResponse(
            id=str(data.get("id") or new_id()),
            model=call.spec.model,
            choices=[Choice(0, message, finish)],
            created=now(),
            usage=parse_usage(data.get("usage") or {}),
            harness=ResponseMeta(
                provider=call.spec.provider,
                model=call.spec.name,
                raw_finish_reasons=[raw],
                flags=flags,
            ),
        )

    def build_stream_request(self, call: Call) -> httpx.Request:
        """The ``/v2/chat`` POST with ``"stream": true``, asking for server-sent events."""
        request = with_json_fields(self.build_request(call), {"stream": True})
        request.headers["accept"] = "text/event-stream"
        return request

    def stream_parser(
        self, call: Call, headers: Mapping[str, str] | None = None
    ) -> CohereStreamParser:
        """A parser for one Chat v2 event stream."""
        return CohereStreamParser(self, call, headers)

    def parse_error(
        self, call: Call, status: int | None, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map a Cohere error response onto the harness error tree (pure, but for the clock).

        ``status`` is ``None`` for an error event inside a 200 stream (classified by its
        code or type when it has one).
        """
        message, code = error_details(body)
        text = message or (f"HTTP {status}" if status else "the provider reported an error")
        context: dict[str, Any] = {
            "body": body,
            "retry_after": retry_after(headers, time.time()),
            "request_id": request_id(headers),
        }
        cls = _special_class(status, text)
        if cls is not None:
            return call.error(cls, text, status=status, **context)
        return error_from_status(
            status, text, code=code, provider=call.spec.provider, model=call.spec.name, **context
        )


# --- streaming -------------------------------------------------------------------------


class CohereStreamParser(StreamParser):
    """Parses a Chat v2 event stream (docs/wire-formats.md §4.5).

    ``message-start`` gives the id (and a role-only chunk); ``content-delta`` events stream
    text or thinking, ``tool-plan-delta`` the tool plan (reasoning), ``tool-call-start`` /
    ``tool-call-delta`` a tool call and its argument fragments; ``message-end`` gives the
    finish reason and usage and ends the stream (an ``error`` in it, or a finish reason of
    ``ERROR`` / ``TIMEOUT``, raises). A ``[DONE]`` after it is ignored.
    """

    def __init__(
        self, provider: CohereProvider, call: Call, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(provider, call, headers)
        self._adapter = provider
        self._items: dict[int, tuple[str, list[str]]] = {}
        self._plan: list[str] = []
        self._tools: dict[int, PartialToolCall] = {}
        self._finish: str | None = None
        self._usage: Mapping[str, Any] = {}

    def feed(self, event: str | None, data: str) -> list[StreamChunk]:
        """The chunks of one event; citation, debug and unknown events add none.

        Raises:
            HarnessError: ``message-end`` reports an error or a failed finish reason, or
                the event is an error object.
        """
        if data.strip() == "[DONE]":
            return []
        payload = self.load(data)
        if not isinstance(payload, Mapping):
            raise self.call.error(InvalidResponseError, "stream event is not an object", body=data)
        if payload.get("error") and not payload.get("type"):
            raise self._adapter.parse_error(self.call, None, data.encode(), self.headers)
        kind = str(payload.get("type") or event)
        message = (payload.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self.id = str(payload.get("id") or self.id)
            return [self.chunk(role=True, content="")]
        if kind in ("content-start", "content-delta"):
            return self._content(payload, message.get("content") or {})
        if kind == "tool-plan-delta":
            return self._reasoning(self._plan, str(message.get("tool_plan") or ""))
        if kind in ("tool-call-start", "tool-call-delta"):
            return self._tool_call(payload, message.get("tool_calls") or {})
        if kind == "message-end":
            return self._end(payload.get("delta") or {}, data)
        return []

    def _content(self, payload: Mapping[str, Any], content: Mapping[str, Any]) -> list[StreamChunk]:
        index = int(payload.get("index") or 0)
        kind = content.get("type") or ("thinking" if "thinking" in content else "text")
        item = self._items.setdefault(index, (str(kind), []))
        if item[0] == "thinking":
            return self._reasoning(item[1], str(content.get("thinking") or ""))
        text = str(content.get("text") or "")
        item[1].append(text)
        if not text:
            return []
        self.note_output(text=True)
        return [self.chunk(content=text)]

    def _reasoning(self, into: list[str], text: str) -> list[StreamChunk]:
        into.append(text)
        if not text:
            return []
        self.note_output()
        return [self.chunk(reasoning=text)]

    def _tool_call(self, payload: Mapping[str, Any], raw: Any) -> list[StreamChunk]:
        if isinstance(raw, list):
            raw = raw[0] if raw else {}
        index = payload.get("index")
        if type(index) is not int:
            index = max(self._tools, default=-1) + (payload.get("type") == "tool-call-start")
        tool = self._tools.setdefault(index, PartialToolCall())
        fn = raw.get("function") or {}
        partial: dict[str, Any] = {"index": index}
        if raw.get("id") and not tool.id:
            tool.id = partial["id"] = str(raw["id"])
            partial["type"] = "function"
        function: dict[str, str] = {}
        if fn.get("name") and not tool.name:
            tool.name = function["name"] = str(fn["name"])
        arguments = fn.get("arguments")
        if arguments:
            tool.arguments.append(str(arguments))
            function["arguments"] = str(arguments)
        if function:
            partial["function"] = function
        if len(partial) == 1:
            return []
        self.note_output()
        return [self.chunk(tool_calls=[partial])]

    def _end(self, delta: Mapping[str, Any], data: str) -> list[StreamChunk]:
        raw = delta.get("finish_reason")
        self._finish = None if raw is None else str(raw)
        error = delta.get("error")
        if error:
            cls = HarnessTimeoutError if self._finish == "TIMEOUT" else InternalServerError
            raise self.call.error(cls, f"the stream ended with an error: {error}", body=data)
        finish: FinishReason
        finish, _ = map_finish_reason(self._finish, FINISH_REASONS, self.call)
        if self._tools and finish == "stop":
            finish = "tool_calls"
        self._usage = delta.get("usage") or {}
        self.done = True
        return [self.chunk(finish_reason=finish, usage=parse_usage(self._usage))]

    def finish(self) -> ModelResponse:
        """The Chat v2 response the events add up to, parsed as the unstreamed answer.

        Raises:
            APIConnectionError: no ``message-end`` arrived.
        """
        if not self.done:
            raise self.truncated()
        content = [
            {"type": kind, kind: "".join(parts)} for _, (kind, parts) in sorted(self._items.items())
        ]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if self._plan:
            message["tool_plan"] = "".join(self._plan)
        if self._tools:
            message["tool_calls"] = [self._tools[i].to_dict() for i in sorted(self._tools)]
        data = {
            "id": self.id,
            "finish_reason": self._finish,
            "message": message,
            "usage": self._usage,
        }
        return self._adapter.parse_response(self.call, data, self.headers)


# --- request ---------------------------------------------------------------------------


def build_body(call: Call) -> dict[str, Any]:
    """The JSON body of a ``/v2/chat`` request for ``call``."""
    params = call.params
    body: dict[str, Any] = {
        "model": call.spec.model,
        "messages": [convert_message(m) for m in call.messages],
    }
    body.update({new: params[old] for old, new in _RENAMED.items() if params.get(old) is not None})
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        max_tokens = params.get("max_completion_tokens")
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = params.get("tools")
    choice = params.get("tool_choice")
    if tools:
        body["tools"] = _restrict_tools(tools, choice)
    mode = convert_tool_choice(choice)
    if mode:
        body["tool_choice"] = mode
    fmt = convert_response_format(params.get("response_format"))
    if fmt:
        body["response_format"] = fmt
    body.update({k: v for k, v in params.items() if k in _NATIVE and v is not None})
    return body


def convert_message(msg: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI message as a Cohere v2 message.

    ``developer`` becomes ``system``; text parts are joined (image parts are kept as
    ``image_url`` items for vision models); an assistant's text that comes with tool calls
    is sent as its ``tool_plan``, as Cohere itself returns it.
    """
    role = msg.get("role")
    if role in ("system", "developer"):
        return {"role": "system", "content": content_text(msg.get("content"))}
    if role == "assistant":
        return _assistant(msg)
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": str(msg.get("tool_call_id", "")),
            "content": content_text(msg.get("content")),
        }
    return {"role": str(role), "content": _user_content(msg.get("content"))}


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if not isinstance(content, list) or not any(
        isinstance(p, Mapping) and p.get("type") == "image_url" for p in content
    ):
        return content_text(content)
    items: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            items.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            items.append({"type": "image_url", "image_url": {"url": str(url or "")}})
    return items


def _assistant(msg: Mapping[str, Any]) -> dict[str, Any]:
    text = content_text(msg.get("content"))
    calls = msg.get("tool_calls") or []
    if not calls:
        return {"role": "assistant", "content": text}
    out: dict[str, Any] = {"role": "assistant", "tool_calls": [_tool_call(c) for c in calls]}
    if text:
        out["tool_plan"] = text
    return out


def _tool_call(tool_call: Mapping[str, Any]) -> dict[str, Any]:
    fn = tool_call.get("function") or {}
    arguments = fn.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": str(tool_call.get("id", "")),
        "type": "function",
        "function": {"name": str(fn.get("name", "")), "arguments": arguments},
    }


def convert_tool_choice(choice: Any) -> str | None:
    """Cohere's ``tool_choice``: ``REQUIRED`` or ``NONE``; ``None`` (omit) for ``auto``.

    A named function becomes ``REQUIRED`` (the tools are narrowed to it in ``build_body``).
    """
    if choice == "required" or isinstance(choice, Mapping):
        return "REQUIRED"
    if choice == "none":
        return "NONE"
    return None


def _restrict_tools(tools: list[Any], choice: Any) -> list[Any]:
    """The tools, narrowed to the one a named ``tool_choice`` forces."""
    if not isinstance(choice, Mapping):
        return list(tools)
    name = (choice.get("function") or {}).get("name")
    named = [t for t in tools if (t.get("function") or {}).get("name") == name]
    return named or list(tools)


def convert_response_format(fmt: Any) -> dict[str, Any] | None:
    """Cohere's ``response_format`` for OpenAI ``json_object`` / ``json_schema``; else ``None``."""
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        out: dict[str, Any] = {"type": "json_object"}
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema is not None:
            out["json_schema"] = schema
        return out
    return None


# --- response ---------------------------------------------------------------------------


def parse_message(message: Mapping[str, Any]) -> Message:
    """The OpenAI assistant message from Cohere's ``message``.

    ``text`` items are joined into ``content``; ``thinking`` items, then the ``tool_plan``,
    make ``reasoning_content``; ``tool_calls`` are already OpenAI-shaped.
    """
    items = message.get("content") or []
    if isinstance(items, str):
        items = [{"type": "text", "text": items}]
    text = "".join(str(i.get("text", "")) for i in items if i.get("type") == "text")
    thinking = "".join(str(i.get("thinking", "")) for i in items if i.get("type") == "thinking")
    plan = message.get("tool_plan") or ""
    reasoning = "\n\n".join(p for p in (thinking, plan) if p)
    tool_calls = [ToolCall.from_dict(tc) for tc in message.get("tool_calls") or []]
    return Message(
        content=text if text or not tool_calls else None,
        tool_calls=tool_calls or None,
        reasoning_content=reasoning or None,
    )


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """OpenAI usage from Cohere ``usage``: ``tokens``, else ``billed_units``; ``cached_tokens``."""
    tokens = usage.get("tokens") or {}
    billed = usage.get("billed_units") or {}
    prompt = _count(tokens, billed, "input_tokens")
    completion = _count(tokens, billed, "output_tokens")
    cached = usage.get("cached_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=int(cached) if cached is not None else None,
    )


def _count(tokens: Mapping[str, Any], billed: Mapping[str, Any], key: str) -> int:
    value = tokens.get(key)
    if value is None:
        value = billed.get(key)
    return int(value or 0)


# --- errors -----------------------------------------------------------------------------


def retry_after(headers: Mapping[str, str], now_s: float) -> float | None:
    """Seconds to wait: ``retry-after-ms``, ``retry-after``, else ``x-ratelimit-reset``.

    ``x-ratelimit-reset`` is Unix seconds (a small value is taken as a delay in seconds);
    the wait it gives is capped at ``MAX_RESET_WAIT``.
    """
    seconds = retry_after_seconds(headers)
    if seconds is not None:
        return seconds
    reset = headers.get("x-ratelimit-reset")
    if not reset:
        return None
    try:
        value = float(reset)
    except ValueError:
        return None
    wait = value - now_s if value > 1e9 else value
    return min(max(wait, 0.0), MAX_RESET_WAIT)


def _special_class(status: int | None, message: str) -> type[HarnessError] | None:
    """The error class where Cohere departs from the plain status map, else ``None``."""
    if status == 498:
        return AuthenticationError
    if status == 499:
        return APIConnectionError
    if status == 429 and "month" in message.lower():
        return BillingError
    return None


def _endpoint(call: Call, route: str) -> tuple[str, dict[str, str]]:
    """The URL of a ``/v2/<route>`` POST and its headers (the key as a Bearer token)."""
    base = call.base_url()
    if not base:
        raise call.error(ConfigError, "no api_base for the Cohere API")
    url = base + (f"/{route}" if base.endswith("/v2") else f"/v2/{route}")
    headers = {"content-type": "application/json", "accept": "application/json"}
    if call.api_key:
        headers["authorization"] = f"Bearer {call.api_key}"
    headers.update(call.spec.headers)
    headers.update(call.headers)
    return url, headers
