"""The normalised answer: ``ModelResponse`` in the OpenAI ``chat.completion`` shape.

Every provider adapter returns these types. The OpenAI fields are plain attributes, and
``r["choices"][0]["message"]["content"]`` works as well as
``r.choices[0].message.content``. ``to_dict()`` gives JSON-able data that validates as the
OpenAI SDK's ``ChatCompletion``.

What the harness knows about a call (provider, latency, attempts, cost, the raw finish
reason, race telemetry, time to first token) lives in ``ModelResponse.harness`` (a
``ResponseMeta``), beside the OpenAI fields and never mixed into them.

A streamed answer arrives as ``StreamChunk`` objects in the OpenAI ``chat.completion.chunk``
shape (``to_dict()`` validates as the SDK's ``ChatCompletionChunk``); the chunks of one stream
assemble into the same ``ModelResponse`` as the non-streamed call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Choice",
    "ChunkChoice",
    "Contestant",
    "FinishReason",
    "FunctionCall",
    "Message",
    "Delta",
    "ModelResponse",
    "RaceInfo",
    "ResponseMeta",
    "StreamChunk",
    "ToolCall",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
"""The OpenAI ``finish_reason`` values every provider's reason is mapped onto."""


class _Mapping:
    """Dict-style read access over a dataclass's fields (``obj["field"]``)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def get(self, key: str, default: Any = None) -> Any:
        """Return ``self[key]`` or ``default`` when the field does not exist."""
        return getattr(self, key) if key in self._keys() else default

    def keys(self) -> tuple[str, ...]:
        """Field names, as for a dict."""
        return self._keys()

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        keys: tuple[str, ...] | None = cls.__dict__.get("_KEYS")
        if keys is None:
            keys = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            type.__setattr__(cls, "_KEYS", keys)
        return keys


@dataclass(slots=True)
class FunctionCall(_Mapping):
    """The function a tool call invokes; ``arguments`` is always a JSON string."""

    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class ToolCall(_Mapping):
    """One tool call made by the model, OpenAI-shaped."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"id": self.id, "type": self.type, "function": self.function.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        """Build from OpenAI-shaped data (``{"id", "type", "function": {...}}``)."""
        fn = data.get("function") or {}
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            import json

            arguments = json.dumps(arguments)
        return cls(
            id=str(data.get("id", "")), function=FunctionCall(str(fn.get("name", "")), arguments)
        )


@dataclass(slots=True)
class Message(_Mapping):
    """The assistant message of one choice."""

    content: str | None
    role: Literal["assistant"] = "assistant"
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    """Reasoning text (thinking blocks) where the provider returns it; not part of ``content``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; ``reasoning_content`` only when present."""
        out: dict[str, Any] = {"role": self.role, "content": self.content, "refusal": self.refusal}
        if self.tool_calls:
            out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        return out


@dataclass(slots=True)
class Choice(_Mapping):
    """One completion choice."""

    index: int
    message: Message
    finish_reason: FinishReason = "stop"
    logprobs: Any = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Choice:
        """The inverse of ``to_dict``."""
        msg = data.get("message") or {}
        tool_calls = msg.get("tool_calls")
        message = Message(
            content=msg.get("content"),
            tool_calls=[ToolCall.from_dict(t) for t in tool_calls] if tool_calls else None,
            refusal=msg.get("refusal"),
            reasoning_content=msg.get("reasoning_content"),
        )
        return cls(
            index=int(data.get("index", 0)),
            message=message,
            finish_reason=data.get("finish_reason") or "stop",
            logprobs=data.get("logprobs"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "index": self.index,
            "message": self.message.to_dict(),
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


@dataclass(slots=True)
class Usage(_Mapping):
    """Token counts, OpenAI-named; the details are ``None`` when the provider gives none."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data in the OpenAI ``CompletionUsage`` shape."""
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        """The inverse of ``to_dict``."""
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cached_tokens=prompt_details.get("cached_tokens"),
            reasoning_tokens=completion_details.get("reasoning_tokens"),
        )


@dataclass(slots=True)
class Contestant(_Mapping):
    """One model's part in a race."""

    model: str
    outcome: Literal["winner", "cancelled", "failed", "finished"]
    """``finished`` is a success that arrived after the winner but before it could be cancelled."""
    latency_ms: float
    error: str | None = None
    ttft_ms: float | None = None
    """When its first output arrived (``race_on="first_token"`` races), from the race start."""
    first_byte: bool | None = None
    """Whether the response had started arriving (streamed races); for a cancelled loser,
    whether it was cancelled after its first byte."""
    prompt_tokens: int | None = None
    """Tokens this contestant consumed, as far as its provider reported them (``None``:
    not reported, e.g. a loser cancelled before its usage arrived)."""
    completion_tokens: int | None = None
    cost_usd: float | None = None
    """The cost of those tokens at the model's price (``None`` without usage or price)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "model": self.model,
            "outcome": self.outcome,
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
            "ttft_ms": _round_ms(self.ttft_ms),
            "first_byte": self.first_byte,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contestant:
        """The inverse of ``to_dict`` (missing fields take their defaults)."""
        outcome = data.get("outcome")
        return cls(
            model=str(data.get("model", "")),
            outcome=outcome if outcome in _OUTCOMES else "finished",
            latency_ms=float(data.get("latency_ms") or 0.0),
            error=data.get("error"),
            ttft_ms=_float_or_none(data.get("ttft_ms")),
            first_byte=data.get("first_byte"),
            prompt_tokens=_int_or_none(data.get("prompt_tokens")),
            completion_tokens=_int_or_none(data.get("completion_tokens")),
            cost_usd=_float_or_none(data.get("cost_usd")),
        )


_OUTCOMES = ("winner", "cancelled", "failed", "finished")


@dataclass(slots=True)
class RaceInfo(_Mapping):
    """What happened in a race: who won and how long each contestant took."""

    winner: str
    contestants: list[Contestant]

    @property
    def margin_ms(self) -> float | None:
        """How much sooner the winner answered than the next successful contestant."""
        win = next(c for c in self.contestants if c.outcome == "winner")
        others = [c.latency_ms for c in self.contestants if c.outcome == "finished"]
        return min(others) - win.latency_ms if others else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"winner": self.winner, "contestants": [c.to_dict() for c in self.contestants]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaceInfo:
        """The inverse of ``to_dict``."""
        contestants = data.get("contestants") or ()
        return cls(str(data.get("winner", "")), [Contestant.from_dict(c) for c in contestants])


@dataclass(slots=True)
class ResponseMeta(_Mapping):
    """Harness metadata about one call; never part of the OpenAI fields."""

    provider: str = ""
    model: str = ""
    """The model string as requested (alias or ``provider/name``)."""
    latency_ms: float = 0.0
    attempts: int = 1
    cost_usd: float | None = None
    raw_finish_reasons: list[str | None] = field(default_factory=list)
    """Each choice's finish reason as the provider sent it, before mapping."""
    flags: list[str] = field(default_factory=list)
    """Notes on the answer, e.g. ``pause_turn`` (Anthropic) or ``prompt_blocked`` (Gemini)."""
    request_id: str | None = None
    race: RaceInfo | None = None
    ttft_ms: float | None = None
    """Streamed calls: milliseconds from sending to the first chunk with any output (text,
    reasoning or a tool call); ``None`` for calls that were not streamed."""
    first_text_ms: float | None = None
    """Streamed calls: milliseconds from sending to the first visible text (not reasoning)."""
    tokens_per_s: float | None = None
    """Streamed calls: output speed, completion tokens per second while generating
    (``completion_tokens / (latency − TTFT)``); ``None`` when not streamed or unmeasurable."""
    replayed: bool = False
    """The answer came from the response store: nothing was sent, ``attempts`` is 0, and
    ``latency_ms``/``ttft_ms`` are the recorded call's timings (never a fake 0 ms)."""
    saved_cost_usd: float | None = None
    """Replayed answers: what the recorded call cost, saved by not making it again."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "provider": self.provider,
            "model": self.model,
            "latency_ms": round(self.latency_ms, 3),
            "ttft_ms": _round_ms(self.ttft_ms),
            "first_text_ms": _round_ms(self.first_text_ms),
            "tokens_per_s": _round_ms(self.tokens_per_s),
            "attempts": self.attempts,
            "cost_usd": self.cost_usd,
            "replayed": self.replayed,
            "saved_cost_usd": self.saved_cost_usd,
            "raw_finish_reasons": list(self.raw_finish_reasons),
            "flags": list(self.flags),
            "request_id": self.request_id,
            "race": self.race.to_dict() if self.race else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResponseMeta:
        """The inverse of ``to_dict`` (missing or mistyped fields take their defaults)."""
        race = data.get("race")
        return cls(
            provider=str(data.get("provider") or ""),
            model=str(data.get("model") or ""),
            latency_ms=_float_or_none(data.get("latency_ms")) or 0.0,
            attempts=_int_or_none(data.get("attempts")) or 0,
            cost_usd=_float_or_none(data.get("cost_usd")),
            raw_finish_reasons=list(data.get("raw_finish_reasons") or ()),
            flags=[str(f) for f in data.get("flags") or ()],
            request_id=data.get("request_id"),
            race=RaceInfo.from_dict(dict(race)) if isinstance(race, dict) else None,
            ttft_ms=_float_or_none(data.get("ttft_ms")),
            first_text_ms=_float_or_none(data.get("first_text_ms")),
            tokens_per_s=_float_or_none(data.get("tokens_per_s")),
            replayed=bool(data.get("replayed")),
            saved_cost_usd=_float_or_none(data.get("saved_cost_usd")),
        )


@dataclass(slots=True, repr=False)
class ModelResponse(_Mapping):
    """One chat completion in the OpenAI ``chat.completion`` shape, plus ``harness`` metadata."""

    id: str
    model: str
    choices: list[Choice]
    created: int = 0
    usage: Usage = field(default_factory=Usage)
    system_fingerprint: str | None = None
    object: Literal["chat.completion"] = "chat.completion"
    harness: ResponseMeta = field(default_factory=ResponseMeta)

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        # ``harness`` is reachable as an attribute but is not an OpenAI key.
        return ("id", "object", "created", "model", "system_fingerprint", "choices", "usage")

    @property
    def content(self) -> str | None:
        """The first choice's text (a shortcut for ``choices[0].message.content``)."""
        return self.choices[0].message.content if self.choices else None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI ``chat.completion`` data only (no harness metadata), JSON-able."""
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": [c.to_dict() for c in self.choices],
            "usage": self.usage.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResponse:
        """The inverse of ``to_dict``: the OpenAI fields, with empty ``harness`` metadata."""
        return cls(
            id=str(data.get("id", "")),
            model=str(data.get("model", "")),
            choices=[Choice.from_dict(c) for c in data.get("choices") or ()],
            created=int(data.get("created") or 0),
            usage=Usage.from_dict(dict(data.get("usage") or {})),
            system_fingerprint=data.get("system_fingerprint"),
        )

    def __repr__(self) -> str:
        text = self.content
        if text is None and self.choices and self.choices[0].message.tool_calls:
            text = f"<{len(self.choices[0].message.tool_calls)} tool call(s)>"
        shown = repr(text if text is None or len(text) <= 60 else text[:57] + "...")
        finish = self.choices[0].finish_reason if self.choices else None
        return (
            f"<ModelResponse {self.harness.model or self.model}: {shown} "
            f"finish={finish} tokens={self.usage.total_tokens} "
            f"{self.harness.latency_ms:.0f}ms>"
        )


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- streaming ---------------------------------------------------------------------------


@dataclass(slots=True)
class Delta(_Mapping):
    """What one chunk adds to a choice's message; unset fields are ``None``.

    ``tool_calls`` holds partial tool calls as OpenAI streams them: ``{"index", "id", "type",
    "function": {"name", "arguments"}}`` on a call's first fragment, then
    ``{"index", "function": {"arguments": <fragment>}}``; fragments of one ``index`` are
    concatenated.
    """

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data with only the fields that are set, as OpenAI sends them."""
        out: dict[str, Any] = {}
        if self.role is not None:
            out["role"] = self.role
        if self.content is not None:
            out["content"] = self.content
        if self.tool_calls is not None:
            out["tool_calls"] = [dict(t) for t in self.tool_calls]
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.refusal is not None:
            out["refusal"] = self.refusal
        return out


@dataclass(slots=True)
class ChunkChoice(_Mapping):
    """One choice's part of a chunk; ``finish_reason`` is set on the choice's last chunk."""

    index: int
    delta: Delta = field(default_factory=Delta)
    finish_reason: FinishReason | None = None
    logprobs: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "index": self.index,
            "delta": self.delta.to_dict(),
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


@dataclass(slots=True, repr=False)
class StreamChunk(_Mapping):
    """One streamed chunk in the OpenAI ``chat.completion.chunk`` shape.

    A chunk may have no choices: the usage chunk at the end of a stream carries only
    ``usage``.
    """

    id: str
    model: str
    choices: list[ChunkChoice]
    created: int = 0
    usage: Usage | None = None
    system_fingerprint: str | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return ("id", "object", "created", "model", "system_fingerprint", "choices", "usage")

    @property
    def content(self) -> str | None:
        """The first choice's text delta (``None`` when this chunk has none)."""
        return self.choices[0].delta.content if self.choices else None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI ``chat.completion.chunk`` data, JSON-able."""
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": [c.to_dict() for c in self.choices],
            "usage": self.usage.to_dict() if self.usage is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamChunk:
        """The inverse of ``to_dict`` (a stored or replayed chunk)."""
        choices = []
        for c in data.get("choices") or ():
            delta = c.get("delta") or {}
            choices.append(
                ChunkChoice(
                    index=int(c.get("index", 0)),
                    delta=Delta(
                        role=delta.get("role"),
                        content=delta.get("content"),
                        tool_calls=delta.get("tool_calls"),
                        reasoning_content=delta.get("reasoning_content"),
                        refusal=delta.get("refusal"),
                    ),
                    finish_reason=c.get("finish_reason"),
                    logprobs=c.get("logprobs"),
                )
            )
        usage = data.get("usage")
        return cls(
            id=str(data.get("id", "")),
            model=str(data.get("model", "")),
            choices=choices,
            created=int(data.get("created") or 0),
            usage=Usage.from_dict(usage) if isinstance(usage, dict) else None,
            system_fingerprint=data.get("system_fingerprint"),
        )

    def __repr__(self) -> str:
        parts = [
            f"{c.index}:{c.delta.to_dict()}"
            + (f" finish={c.finish_reason}" if c.finish_reason else "")
            for c in self.choices
        ]
        usage = f" tokens={self.usage.total_tokens}" if self.usage is not None else ""
        return f"<StreamChunk {', '.join(parts) or 'no choices'}{usage}>"
