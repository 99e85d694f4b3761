"""The Anthropic Messages API adapter (``POST {base}/v1/messages``).

This module owns the translation between the harness's OpenAI-shaped calls and Anthropic's
wire format, in both directions:

* requests: system prompts lifted to the top level, OpenAI content parts, tool calls and
  tool results turned into Anthropic content blocks, same-role turns merged, OpenAI
  parameters renamed, clamped or dropped;
* responses: content blocks turned into an OpenAI ``chat.completion`` (text, tool calls,
  thinking as ``reasoning_content``), ``stop_reason`` mapped, cache-aware usage;
* errors: Anthropic's ``{"type": "error", "error": {...}}`` bodies mapped onto the error tree;
* streams: Messages API events (``message_start`` … ``message_stop``, ``event: error``) turned
  into OpenAI chunks and assembled into the same ``ModelResponse`` as the unstreamed answer.

Anthropic has no ``n``; ``HTTPProvider.generate`` sends ``n`` requests and merges them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx

from harness.errors import (
    BadRequestError,
    BillingError,
    ConfigError,
    ContextWindowExceededError,
    HarnessError,
    InvalidResponseError,
    ServiceUnavailableError,
    error_from_status,
    register_secret,
)
from harness.providers.base import (
    Call,
    HTTPProvider,
)
from harness.providers.streams import (
    StreamParser,
)
from harness.providers.wire import (
    FinishReasons,
    content_text,
    error_details,
    json_request,
    map_finish_reason,
    new_id,
    now,
    request_id,
    retry_after_seconds,
)
from harness.types import (
    Choice,
    FunctionCall,
    Message,
    ModelResponse,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

__all__ = ["FINISH_REASONS", "ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicProvider"]

FINISH_REASONS = FinishReasons(
    mapped={
        "end_turn": "stop",
        "stop_sequence": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
        "pause_turn": "stop",
    },
    flagged=frozenset({"pause_turn"}),
)
"""Anthropic's stop reasons (``pause_turn`` is kept as a flag: the turn is unfinished)."""

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header value (the one the official SDK sends)."""

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` is required by Anthropic; this is sent when the caller gives none."""

# OpenAI-only parameters that the Messages API rejects.
_DROPPED = frozenset(
    {
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "response_format",
        "stream_options",
    }
)
# Parameters translated by ``_params``; everything else passes through unchanged.
_TRANSLATED = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
    }
)
_TOOL_CHOICE_STRINGS = {"auto": "auto", "none": "none", "required": "any", "any": "any"}
_ANTHROPIC_CHOICE_TYPES = frozenset({"auto", "any", "none", "tool"})
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
# Error types whose meaning beats the HTTP status they arrive with.
_TYPE_CLASSES: dict[str, type[HarnessError]] = {
    "billing_error": BillingError,
    "overloaded_error": ServiceUnavailableError,
}
_BILLING_HINTS = ("credit balance is too low", "api usage limits")


class AnthropicProvider(HTTPProvider):
    """Speaks the Anthropic Messages API and normalises it to OpenAI ``chat.completion``."""

    family = "anthropic"
    supports_n = False

    def build_request(self, call: Call) -> httpx.Request:
        """The ``POST /v1/messages`` request for ``call``.

        Raises:
            BadRequestError: a message cannot be expressed in Anthropic's format (unknown
                role, tool-call arguments that are not a JSON object, bad image URL, …).
            ConfigError: no base URL could be resolved.
        """
        base = call.base_url()
        if not base:
            raise call.error(ConfigError, "no api_base for the Anthropic API")
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        headers.update(call.spec.headers)
        headers.update(call.headers)
        return json_request(f"{base}/v1/messages", build_body(call), headers)

    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> ModelResponse:
        """Normalise a Messages API response body into a ``ModelResponse``.

        Raises:
            InvalidResponseError: the body is not a Messages API ``message``.
            HarnessError: the body is an Anthropic error object (mapped by its type).
        """
        if not isinstance(data, Mapping):
            raise call.error(InvalidResponseError, "response body is not a JSON object")
        if data.get("type") == "error":
            raise error_from_payload(call, None, data, json.dumps(data), headers)
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise call.error(InvalidResponseError, "response has no 'content' list", body=str(data))
        message, flags = _message(blocks)
        raw = data.get("stop_reason")
        finish, finish_flags = map_finish_reason(raw, FINISH_REASONS, call)
        return ModelResponse(
            id=str(data.get("id") or new_id("msg_")),
            model=str(data.get("model") or call.spec.model),
            choices=[Choice(index=0, message=message, finish_reason=finish)],
            created=now(),
            usage=_usage(data.get("usage")),
            harness=ResponseMeta(
                provider=call.spec.provider,
                model=call.spec.name,
                raw_finish_reasons=[raw],
                flags=finish_flags + flags,
                request_id=request_id(headers),
            ),
        )

    def stream_parser(
        self, call: Call, headers: Mapping[str, str] | None = None
    ) -> AnthropicStreamParser:
        """A parser for one Messages API event stream."""
        return AnthropicStreamParser(self, call, headers)

    def parse_error(
        self, call: Call, status: int | None, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map an Anthropic error response to the error tree; the API key never appears."""
        try:
            payload: Any = json.loads(body)
        except (ValueError, TypeError):
            payload = None
        return error_from_payload(call, status, payload, body, headers)


# --- streaming ---------------------------------------------------------------------------


class _Block:
    """One content block being streamed: its start block and its text or JSON fragments."""

    __slots__ = ("parts", "signature", "start", "tool_index", "value")

    def __init__(self, start: Mapping[str, Any], tool_index: int | None) -> None:
        self.start = start
        self.parts: list[str] = []
        self.signature: list[str] = []
        self.tool_index = tool_index
        self.value: Any = None
        """A tool block's parsed ``input``, set at ``content_block_stop``."""

    @property
    def kind(self) -> Any:
        return self.start.get("type")

    def close(self, call: Call) -> None:
        """Parse a tool block's joined ``partial_json`` (an empty string means ``{}``)."""
        if self.kind != "tool_use" or self.value is not None:
            return
        text = "".join(self.parts)
        if not text.strip():
            self.value = self.start.get("input") or {}
            return
        try:
            self.value = json.loads(text)
        except ValueError:
            raise call.error(
                InvalidResponseError,
                f"tool_use block {self.start.get('name')!r} streamed input that is not JSON",
                body=text,
            ) from None

    def to_dict(self, call: Call) -> dict[str, Any]:
        """The block as it appears in an unstreamed ``message``."""
        kind = self.kind
        if kind == "text":
            return {**self.start, "text": str(self.start.get("text") or "") + "".join(self.parts)}
        if kind == "thinking":
            thinking = str(self.start.get("thinking") or "") + "".join(self.parts)
            return {**self.start, "thinking": thinking, "signature": "".join(self.signature)}
        if kind == "tool_use":
            self.close(call)
            return {**self.start, "input": self.value}
        return dict(self.start)


class AnthropicStreamParser(StreamParser):
    """Parses a Messages API event stream (docs/wire-formats.md §2.5).

    ``message_start`` gives the id, model and input usage (and a role-only chunk); content
    blocks stream as text, thinking (reasoning) and tool-call chunks, each ``tool_use``
    block's ``partial_json`` joined and parsed at ``content_block_stop``;
    ``message_delta`` gives the stop reason and the cumulative output tokens; the stream
    ends at ``message_stop`` (one that ends after the stop reason without it is complete
    too). An ``error`` event raises the mapped error.
    """

    def __init__(
        self, provider: AnthropicProvider, call: Call, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(provider, call, headers)
        self._adapter = provider
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._stop_sequence: Any = None

    def feed(self, event: str | None, data: str) -> list[StreamChunk]:
        """The chunks of one event; unknown events and ``ping`` add none.

        Raises:
            HarnessError: an ``error`` event (mapped by its ``error.type``).
            InvalidResponseError: a tool block's streamed input is not JSON.
        """
        payload = self.load(data)
        if not isinstance(payload, Mapping):
            raise self.call.error(InvalidResponseError, "stream event is not an object", body=data)
        kind = payload.get("type") or event
        if kind == "error" or event == "error":
            raise error_from_payload(self.call, None, payload, data, self.headers)
        handler = self._HANDLERS.get(str(kind))
        return handler(self, payload) if handler is not None else []

    def _message_start(self, payload: Mapping[str, Any]) -> list[StreamChunk]:
        message = payload.get("message") or {}
        self.id = str(message.get("id") or self.id)
        self.model = str(message.get("model") or self.model)
        self._merge_usage(message.get("usage"))
        return [self.chunk(role=True, content="")]

    def _block_start(self, payload: Mapping[str, Any]) -> list[StreamChunk]:
        start = payload.get("content_block") or {}
        tool_index = None
        if start.get("type") == "tool_use":
            tool_index, self._tools = self._tools, self._tools + 1
        block = self._blocks[int(payload["index"])] = _Block(start, tool_index)
        if tool_index is not None:
            header = {
                "index": tool_index,
                "id": str(start.get("id") or ""),
                "type": "function",
                "function": {"name": str(start.get("name") or ""), "arguments": ""},
            }
            return [self.chunk(tool_calls=[header])]
        text = start.get("text") if block.kind == "text" else start.get("thinking")
        if block.kind in ("text", "thinking") and text:
            return self._text(block, "", str(text))  # the start's text is kept by to_dict
        return []

    def _block_delta(self, payload: Mapping[str, Any]) -> list[StreamChunk]:
        block = self._blocks[int(payload["index"])]
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(block, str(delta.get("text") or ""))
        if kind == "thinking_delta":
            return self._text(block, str(delta.get("thinking") or ""))
        if kind == "signature_delta":
            block.signature.append(str(delta.get("signature") or ""))
        elif kind == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            block.parts.append(fragment)
            if fragment and block.tool_index is not None:
                self.note_output()
                partial = {"index": block.tool_index, "function": {"arguments": fragment}}
                return [self.chunk(tool_calls=[partial])]
        return []

    def _text(self, block: _Block, text: str, shown: str | None = None) -> list[StreamChunk]:
        """A text or thinking fragment: stored (unless ``shown`` is given) and streamed."""
        if shown is None:
            block.parts.append(text)
        out = text if shown is None else shown
        if not out:
            return []
        if block.kind == "thinking":
            self.note_output()
            return [self.chunk(reasoning=out)]
        self.note_output(text=True)
        return [self.chunk(content=out)]

    def _block_stop(self, payload: Mapping[str, Any]) -> list[StreamChunk]:
        block = self._blocks.get(int(payload["index"]))
        if block is not None and block.kind == "tool_use":
            block.close(self.call)
            self.note_output()  # a tool call without arguments streams no fragment
        return []

    def _message_delta(self, payload: Mapping[str, Any]) -> list[StreamChunk]:
        delta = payload.get("delta") or {}
        self._merge_usage(payload.get("usage"))
        if "stop_sequence" in delta:
            self._stop_sequence = delta["stop_sequence"]
        raw = delta.get("stop_reason")
        if raw is None:
            return [self.chunk_of([], _usage(self._usage))]
        self._stop_reason = str(raw)
        finish, _ = map_finish_reason(self._stop_reason, FINISH_REASONS, self.call)
        return [self.chunk(finish_reason=finish, usage=_usage(self._usage))]

    def _message_stop(self, payload: Mapping[str, Any]) -> list[StreamChunk]:
        self.done = True
        return []

    def usage_so_far(self) -> Usage | None:
        """Input tokens from ``message_start``, output tokens as of the last ``message_delta``."""
        return _usage(self._usage) if self._usage else None

    def _merge_usage(self, usage: Any) -> None:
        """Keep the latest value of each count (``output_tokens`` is cumulative)."""
        if isinstance(usage, Mapping):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    _HANDLERS: ClassVar[dict[str, Callable[[AnthropicStreamParser, Mapping[str, Any]], Any]]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "content_block_stop": _block_stop,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }

    def finished(self) -> bool:
        """``message_stop`` arrived, or a ``message_delta`` gave the ``stop_reason``.

        The ``message_delta`` with the stop reason carries the final usage too; a stream
        that ends after it without ``message_stop`` has sent the whole answer.
        """
        return self.done or self._stop_reason is not None

    def finish(self) -> ModelResponse:
        """The ``message`` the events add up to, parsed as the unstreamed answer.

        Raises:
            APIConnectionError: neither ``message_stop`` nor the ``stop_reason`` arrived.
        """
        if not self.finished():
            raise self.truncated()
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [b.to_dict(self.call) for _, b in sorted(self._blocks.items())],
            "stop_reason": self._stop_reason,
            "stop_sequence": self._stop_sequence,
            "usage": self._usage,
        }
        return self._adapter.parse_response(self.call, message, self.headers)


# --- request -----------------------------------------------------------------------------


def build_body(call: Call) -> dict[str, Any]:
    """The JSON body of a Messages API request (pure)."""
    params = {**call.spec.params, **call.params}
    system, messages = convert_messages(call.messages, call)
    body: dict[str, Any] = {"model": call.spec.model, "max_tokens": _max_tokens(params)}
    if system:
        body["system"] = system
    body["messages"] = messages
    body.update(_params(params, call))
    return body


def convert_messages(
    messages: list[dict[str, Any]], call: Call
) -> tuple[str | None, list[dict[str, Any]]]:
    """Split OpenAI messages into Anthropic's top-level ``system`` and ``messages``.

    System and developer messages are joined with a blank line; tool messages become
    ``tool_result`` blocks of a user turn; consecutive same-role turns are merged.
    """
    system: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for index, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise _bad(call, index, f"is a {type(msg).__name__}, not an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            text = content_text(msg.get("content"))
            if text:
                system.append(text)
            continue
        if role == "user":
            turn = ("user", _blocks(msg.get("content"), call, index))
        elif role == "assistant":
            turn = ("assistant", _assistant_blocks(msg, call, index))
        elif role == "tool":
            turn = ("user", [_tool_result(msg, call, index)])
        else:
            raise _bad(call, index, f"has unsupported role {role!r}")
        if turns and turns[-1][0] == turn[0]:
            turns[-1][1].extend(turn[1])
        else:
            turns.append(turn)
    return ("\n\n".join(system) or None), [_turn(role, blocks) for role, blocks in turns]


def _turn(role: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One Anthropic message; a lone plain text block is sent as a string."""
    if not blocks:
        return {"role": role, "content": ""}
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": role, "content": blocks[0]["text"]}
    return {"role": role, "content": blocks}


def _blocks(content: Any, call: Call, index: int) -> list[dict[str, Any]]:
    """Anthropic content blocks for an OpenAI ``content`` (string or list of parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(call, index, f"has content of type {type(content).__name__}")
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, Mapping):
            raise _bad(call, index, f"has a content part of type {type(part).__name__}")
        block = _part(part, call, index)
        if block is not None:
            blocks.append(block)
    return blocks


def _part(part: Mapping[str, Any], call: Call, index: int) -> dict[str, Any] | None:
    """One OpenAI content part as an Anthropic block; native blocks pass through."""
    kind = part.get("type")
    if kind == "text":
        text = str(part.get("text") or "")
        if not text:
            return None
        block: dict[str, Any] = {"type": "text", "text": text}
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return _image(str(url or ""), call, index)
    return dict(part)


def _image(url: str, call: Call, index: int) -> dict[str, Any]:
    """An Anthropic image block from a ``data:`` URL (base64) or an http(s) URL."""
    match = _DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    shown = url if len(url) <= 40 else url[:37] + "..."
    raise _bad(call, index, f"has an image URL that is neither base64 data: nor http(s): {shown!r}")


def _assistant_blocks(msg: Mapping[str, Any], call: Call, index: int) -> list[dict[str, Any]]:
    """Text blocks then ``tool_use`` blocks of an assistant message."""
    blocks = _blocks(msg.get("content"), call, index)
    for tool_call in msg.get("tool_calls") or []:
        blocks.append(_tool_use(tool_call, call, index))
    return blocks


def _tool_use(tool_call: Any, call: Call, index: int) -> dict[str, Any]:
    """An OpenAI tool call as a ``tool_use`` block (arguments parsed into an object)."""
    if not isinstance(tool_call, Mapping):
        raise _bad(call, index, "has a tool call that is not an object")
    fn = tool_call.get("function") or {}
    name = str(fn.get("name") or "")
    arguments = fn.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise _bad(
                call, index, f"has tool call {name!r} whose arguments are not valid JSON"
            ) from None
    else:
        parsed = arguments if arguments is not None else {}
    if not isinstance(parsed, Mapping):
        raise _bad(call, index, f"has tool call {name!r} whose arguments are not a JSON object")
    return {
        "type": "tool_use",
        "id": str(tool_call.get("id") or ""),
        "name": name,
        "input": dict(parsed),
    }


def _tool_result(msg: Mapping[str, Any], call: Call, index: int) -> dict[str, Any]:
    """An OpenAI ``tool`` message as a ``tool_result`` block."""
    tool_call_id = msg.get("tool_call_id")
    if not tool_call_id:
        raise _bad(call, index, "is a tool message without tool_call_id")
    content = msg.get("content")
    result: Any = content if isinstance(content, str) else _blocks(content, call, index)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(tool_call_id)}
    if result:
        block["content"] = result
    if msg.get("is_error"):
        block["is_error"] = True
    return block


def _bad(call: Call, index: int, what: str) -> HarnessError:
    """A ``BadRequestError`` about message ``index`` (raised before sending)."""
    return call.error(BadRequestError, f"messages[{index}] {what}")


def _max_tokens(params: Mapping[str, Any]) -> Any:
    """``max_tokens``, else ``max_completion_tokens``, else the default."""
    for key in ("max_tokens", "max_completion_tokens"):
        if params.get(key) is not None:
            return params[key]
    return DEFAULT_MAX_TOKENS


def _params(params: Mapping[str, Any], call: Call) -> dict[str, Any]:
    """Sampling, stop, tool and metadata parameters, in Anthropic's names."""
    out = {k: v for k, v in params.items() if k not in _DROPPED and k not in _TRANSLATED}
    temperature = params.get("temperature")
    if temperature is not None:
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    stop = params.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = params.get("tools")
    if tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = _tool_choice(params.get("tool_choice"), call)
    if choice is not None and choice.get("type") == "none" and not tools:
        choice = None  # "none" without tools means nothing, and Anthropic rejects it
    if params.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice.get("type") != "none":
            choice = {**choice, "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    user = params.get("user")
    if user is not None:
        metadata = out.get("metadata")
        out["metadata"] = {
            **(metadata if isinstance(metadata, Mapping) else {}),
            "user_id": str(user),
        }
    return out


def _tool(tool: Any) -> Any:
    """An OpenAI function tool as an Anthropic tool; other tools pass through unchanged."""
    if not (isinstance(tool, Mapping) and tool.get("type") == "function"):
        return tool
    fn = tool.get("function") or {}
    out: dict[str, Any] = {"name": fn.get("name")}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, call: Call) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` as Anthropic's; Anthropic-shaped dicts pass through."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_STRINGS:
            raise call.error(BadRequestError, f"unsupported tool_choice {choice!r}")
        return {"type": _TOOL_CHOICE_STRINGS[choice]}
    if isinstance(choice, Mapping):
        if choice.get("type") == "function":
            name = (choice.get("function") or {}).get("name")
            if not name:
                raise call.error(BadRequestError, "tool_choice names no function")
            return {"type": "tool", "name": name}
        if choice.get("type") in _ANTHROPIC_CHOICE_TYPES:
            return dict(choice)
    raise call.error(BadRequestError, f"unsupported tool_choice {choice!r}")


# --- response ----------------------------------------------------------------------------


def _message(blocks: list[Any]) -> tuple[Message, list[str]]:
    """The assistant message of a list of content blocks, and flags worth keeping."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[ToolCall] = []
    flags: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            function = FunctionCall(str(block["name"]), json.dumps(block.get("input") or {}))
            tool_calls.append(ToolCall(str(block["id"]), function))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "redacted_thinking" and "redacted_thinking" not in flags:
            flags.append("redacted_thinking")
    content: str | None = "".join(texts)
    if not content and tool_calls:
        content = None
    message = Message(
        content=content,
        tool_calls=tool_calls or None,
        reasoning_content="\n\n".join(thinking) if thinking else None,
    )
    return message, flags


def _usage(usage: Any) -> Usage:
    """OpenAI usage from Anthropic's; the prompt includes cache writes and reads."""
    if not isinstance(usage, Mapping):
        return Usage()
    fresh = int(usage.get("input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    read = usage.get("cache_read_input_tokens")
    prompt = fresh + written + int(read or 0)
    completion = int(usage.get("output_tokens") or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=int(read) if read is not None else None,
    )


# --- errors ------------------------------------------------------------------------------

def error_from_payload(
    call: Call,
    status: int | None,
    payload: Any,
    body: bytes | str,
    headers: Mapping[str, str],
) -> HarnessError:
    """Map an Anthropic error (HTTP status plus parsed body, if JSON) to the error tree.

    ``status`` is ``None`` for an error object received without an error status (an
    ``event: error`` in a 200 stream, a 200 body): the class comes from its ``error.type``
    (``errors.code_class``) and the error's ``status`` stays ``None``.
    """
    register_secret(call.api_key)
    message, code = _details(payload, body)
    req_id = request_id(headers)
    if req_id is None and isinstance(payload, Mapping) and payload.get("request_id"):
        req_id = str(payload["request_id"])
    cls = _refined_class(status, code, message)
    fields: dict[str, Any] = {
        "provider": call.spec.provider,
        "model": call.spec.name,
        "body": body,
        "retry_after": retry_after_seconds(headers),
        "request_id": req_id,
    }
    text = message or (f"HTTP {status}" if status else "the provider reported an error")
    if cls is None:
        return error_from_status(status, text, code=code, **fields)
    return cls(text, status=status, **fields)


def _details(payload: Any, body: bytes | str) -> tuple[str, str | None]:
    """Message and ``error.type`` of an Anthropic error body; any other body as best we can."""
    if isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
        err = payload["error"]
        code = err.get("type")
        return str(err.get("message") or ""), (str(code) if code else None)
    return error_details(body)


def _refined_class(status: int | None, code: str | None, message: str) -> type[HarnessError] | None:
    """A class that beats ``error_from_status``'s choice, or ``None`` to keep it."""
    lowered = message.lower()
    if status == 413:
        return BadRequestError  # a size limit, not the context window
    if "prompt is too long" in lowered:
        return ContextWindowExceededError
    if code in _TYPE_CLASSES:
        return _TYPE_CLASSES[code]
    if status in (400, 429) and any(h in lowered for h in _BILLING_HINTS):
        return BillingError
    return None
