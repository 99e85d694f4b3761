"""The Cohere Chat v2 adapter (``POST /v2/chat``).

This module owns the translation between OpenAI-shaped calls and Cohere's v2 chat format:
messages keep their OpenAI roles (``developer`` becomes ``system``), parameters take Cohere's
names (``p``, ``k``, ``stop_sequences``, ``REQUIRED``/``NONE`` tool choice), the answer's
content items, thinking and tool calls come back as one OpenAI choice, and Cohere's error
statuses (including its 498 and 499) are mapped onto the harness error tree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from harness.errors import (
    APIConnectionError,
    AuthenticationError,
    BillingError,
    HarnessError,
    error_from_status,
)
from harness.providers.base import (
    Call,
    HTTPProvider,
    content_text,
    error_details,
    json_request,
    map_finish_reason,
    new_id,
    now,
    request_id,
    retry_after_seconds,
)
from harness.types import Choice, Message, ModelResponse, ResponseMeta, ToolCall, Usage

__all__ = ["DEFAULT_API_BASE", "CohereProvider"]

DEFAULT_API_BASE = "https://api.cohere.com"
"""Where requests go when neither the call, the config nor the environment names a base."""

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

    def build_request(self, call: Call) -> httpx.Request:
        """Build the ``/v2/chat`` POST for ``call`` (pure)."""
        base = (call.spec.resolve_api_base(call.api_base) or DEFAULT_API_BASE).rstrip("/")
        url = base + ("/chat" if base.endswith("/v2") else "/v2/chat")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if call.api_key:
            headers["authorization"] = f"Bearer {call.api_key}"
        headers.update(call.spec.headers)
        headers.update(call.headers)
        return json_request(url, build_body(call), headers)

    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> ModelResponse:
        """Normalise a Chat v2 response into a ``ModelResponse`` (pure).

        Raises:
            InternalServerError: the finish reason is ``ERROR``.
            TimeoutError: the finish reason is ``TIMEOUT``.
        """
        raw = data.get("finish_reason")
        finish, flags = map_finish_reason(raw, call)
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

    def parse_error(
        self, call: Call, status: int, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map a Cohere error response onto the harness error tree (pure, but for the clock)."""
        message, code = error_details(body)
        text = message or f"HTTP {status}"
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


def _special_class(status: int, message: str) -> type[HarnessError] | None:
    """The error class where Cohere departs from the plain status map, else ``None``."""
    if status == 498:
        return AuthenticationError
    if status == 499:
        return APIConnectionError
    if status == 429 and "month" in message.lower():
        return BillingError
    return None
