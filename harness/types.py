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

The idioms LiteLLM and OpenAI SDK users write work on every type here: ``model_dump()``,
``model_dump_json()``, ``dict()`` and ``json()`` (LiteLLM's ``json()`` returns a dict, and so
does ours), and the constructors take the OpenAI JSON shape (``ModelResponse(**data)`` builds
``Choice``/``Message``/``Usage`` objects from the nested dicts; fields this module does not
know are kept in ``extra`` and written back by ``to_dict``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Contestant",
    "Delta",
    "DeltaFunction",
    "DeltaToolCall",
    "FinishReason",
    "FunctionCall",
    "Message",
    "ModelResponse",
    "PromptTokensDetails",
    "RaceInfo",
    "ResponseMeta",
    "StreamChunk",
    "ToolCall",
    "Usage",
]

_Data = dict[str, Any]
"""JSON-able data (named so that ``_Mapping.dict`` does not shadow ``dict`` in annotations)."""

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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (each type defines its shape)."""
        raise NotImplementedError

    # pydantic- and LiteLLM-style names for the same data -------------------------------

    def model_dump(self, *, exclude_none: bool = False, **_ignored: Any) -> dict[str, Any]:
        """``to_dict()``, as pydantic names it (``exclude_none`` drops ``None`` values)."""
        data = self.to_dict()
        return _without_none(data) if exclude_none else data

    def model_dump_json(
        self, *, indent: int | None = None, exclude_none: bool = False, **_ignored: Any
    ) -> str:
        """``to_dict()`` as a JSON string, as pydantic names it."""
        return json.dumps(self.model_dump(exclude_none=exclude_none), indent=indent)

    def json(self, **kwargs: Any) -> _Data:
        """``model_dump()``: a dict, not a string, as LiteLLM's ``json()`` returns.

        Use ``model_dump_json()`` for the JSON text.
        """
        return self.model_dump(**kwargs)

    def dict(self, **kwargs: Any) -> _Data:
        """``model_dump()`` (pydantic v1's name)."""
        return self.model_dump(**kwargs)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """A pydantic model (an OpenAI SDK object) or one of ours as plain data; else as is."""
    if isinstance(value, _Mapping):
        return value.to_dict()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    return value


@dataclass(slots=True)
class FunctionCall(_Mapping):
    """The function a tool call invokes; ``arguments`` is always a JSON string."""

    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionCall:
        """Build from ``{"name", "arguments"}``; parsed arguments are encoded as JSON."""
        arguments = data.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return cls(str(data.get("name") or ""), arguments)


@dataclass(slots=True)
class ToolCall(_Mapping):
    """One tool call made by the model, OpenAI-shaped."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"

    def __post_init__(self) -> None:
        if not isinstance(self.function, FunctionCall):
            self.function = FunctionCall.from_dict(_plain(self.function) or {})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"id": self.id, "type": self.type, "function": self.function.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """Build from OpenAI-shaped data (``{"id", "type", "function": {...}}``)."""
        function = _plain(data.get("function")) or {}
        return cls(id=str(data.get("id", "")), function=FunctionCall.from_dict(function))


def _tool_calls(value: Any) -> list[ToolCall] | None:
    if not value:
        return None
    return [t if isinstance(t, ToolCall) else ToolCall.from_dict(_plain(t)) for t in value]


@dataclass(slots=True, init=False)
class Message(_Mapping):
    """The assistant message of one choice.

    Built from OpenAI data too: ``Message(**{"role": "assistant", "content": "hi",
    "tool_calls": [{...}]})`` makes ``ToolCall`` objects; fields not listed here are kept in
    ``extra``. A ``Message`` can be appended to a conversation and sent back as is.
    """

    content: str | None
    role: Literal["assistant"]
    tool_calls: list[ToolCall] | None
    refusal: str | None
    reasoning_content: str | None
    """Reasoning text (thinking blocks) where the provider returns it; not part of ``content``."""
    function_call: FunctionCall | None
    """The legacy single function call (OpenAI's deprecated ``function_call``); ``None``."""
    annotations: list[Any] | None
    """Citations and similar annotations, when the provider sends them."""
    extra: dict[str, Any]
    """Fields of the OpenAI data this type does not model, kept for ``to_dict``."""

    def __init__(
        self,
        content: str | None = None,
        role: Literal["assistant"] = "assistant",
        tool_calls: list[ToolCall] | list[Mapping[str, Any]] | None = None,
        refusal: str | None = None,
        reasoning_content: str | None = None,
        function_call: FunctionCall | Mapping[str, Any] | None = None,
        annotations: list[Any] | None = None,
        **extra: Any,
    ) -> None:
        self.content = content
        self.role = role
        self.tool_calls = _tool_calls(tool_calls)
        self.refusal = refusal
        self.reasoning_content = reasoning_content
        self.function_call = (
            None
            if function_call is None or isinstance(function_call, FunctionCall)
            else FunctionCall.from_dict(_plain(function_call))
        )
        self.annotations = annotations
        self.extra = extra

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return ("content", "role", "tool_calls", "refusal", "reasoning_content", "function_call")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; optional fields only when present."""
        out: dict[str, Any] = {"role": self.role, "content": self.content, "refusal": self.refusal}
        if self.tool_calls:
            out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.function_call is not None:
            out["function_call"] = self.function_call.to_dict()
        if self.annotations is not None:
            out["annotations"] = self.annotations
        if self.extra:
            out.update(self.extra)
        return out

    def to_param(self) -> dict[str, Any]:
        """This message as a request message: role, content and tool calls only.

        What the runner sends when a ``Message`` is appended to a conversation (the
        multi-turn tool loop). Reasoning text is left out (providers reject it back), and
        a refusal without content becomes empty content.
        """
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        elif self.function_call is not None:
            out["function_call"] = self.function_call.to_dict()
        elif self.content is None:
            out["content"] = ""
        return out


@dataclass(slots=True, init=False)
class Choice(_Mapping):
    """One completion choice."""

    index: int
    message: Message
    finish_reason: FinishReason
    logprobs: Any
    extra: dict[str, Any]
    """Fields of the OpenAI data this type does not model, kept for ``to_dict``."""

    def __init__(
        self,
        index: int = 0,
        message: Message | Mapping[str, Any] | None = None,
        finish_reason: FinishReason = "stop",
        logprobs: Any = None,
        **extra: Any,
    ) -> None:
        self.index = index
        if message is None:
            message = Message()
        elif not isinstance(message, Message):
            message = Message(**_plain(message))
        self.message = message
        self.finish_reason = finish_reason or "stop"
        self.logprobs = logprobs
        self.extra = extra

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return ("index", "message", "finish_reason", "logprobs")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        """The inverse of ``to_dict``."""
        return cls(**{**data, "index": int(data.get("index") or 0)})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        out = {
            "index": self.index,
            "message": self.message.to_dict(),
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(slots=True, frozen=True)
class PromptTokensDetails(_Mapping):
    """OpenAI's ``usage.prompt_tokens_details``; ``None`` where the provider gave no count."""

    cached_tokens: int | None = None
    audio_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"cached_tokens": self.cached_tokens, "audio_tokens": self.audio_tokens}


@dataclass(slots=True, frozen=True)
class CompletionTokensDetails(_Mapping):
    """OpenAI's ``usage.completion_tokens_details``; ``None`` where the provider gave no count."""

    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "reasoning_tokens": self.reasoning_tokens,
            "audio_tokens": self.audio_tokens,
            "accepted_prediction_tokens": self.accepted_prediction_tokens,
            "rejected_prediction_tokens": self.rejected_prediction_tokens,
        }


@dataclass(slots=True, init=False)
class Usage(_Mapping):
    """Token counts, OpenAI-named; the details are ``None`` when the provider gives none.

    ``prompt_tokens`` includes ``cached_tokens`` and ``completion_tokens`` includes
    ``reasoning_tokens``, as in OpenAI's usage. ``prompt_tokens_details.cached_tokens`` and
    ``completion_tokens_details.reasoning_tokens`` read the same counts in OpenAI's shape
    (the detail objects always exist, so the idiom never fails on a provider that reports
    none). ``total_tokens`` defaults to prompt + completion.
    """

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int | None
    reasoning_tokens: int | None

    def __init__(
        self,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        total_tokens: int | None = None,
        cached_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        *,
        prompt_tokens_details: Any = None,
        completion_tokens_details: Any = None,
        **_ignored: Any,
    ) -> None:
        self.prompt_tokens = int(prompt_tokens or 0)
        self.completion_tokens = int(completion_tokens or 0)
        self.total_tokens = (
            int(total_tokens)
            if total_tokens is not None
            else self.prompt_tokens + self.completion_tokens
        )
        if cached_tokens is None and prompt_tokens_details is not None:
            cached_tokens = _plain(prompt_tokens_details).get("cached_tokens")
        if reasoning_tokens is None and completion_tokens_details is not None:
            reasoning_tokens = _plain(completion_tokens_details).get("reasoning_tokens")
        self.cached_tokens = cached_tokens
        self.reasoning_tokens = reasoning_tokens

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return (
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        )

    @property
    def prompt_tokens_details(self) -> PromptTokensDetails:
        """OpenAI's shape of the cached-token count."""
        return PromptTokensDetails(cached_tokens=self.cached_tokens)

    @property
    def completion_tokens_details(self) -> CompletionTokensDetails:
        """OpenAI's shape of the reasoning-token count."""
        return CompletionTokensDetails(reasoning_tokens=self.reasoning_tokens)

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
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """The inverse of ``to_dict``."""
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            total_tokens=data.get("total_tokens"),
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


def hidden_params(meta: ResponseMeta, model: str) -> dict[str, Any]:
    """LiteLLM's ``_hidden_params`` of an answer: a fresh dict built from its ``harness``."""
    return {
        "response_cost": meta.cost_usd,
        "custom_llm_provider": meta.provider or None,
        "model": meta.model or model,
        "request_id": meta.request_id,
    }


@dataclass(slots=True, repr=False, init=False)
class ModelResponse(_Mapping):
    """One chat completion in the OpenAI ``chat.completion`` shape, plus ``harness`` metadata.

    ``ModelResponse(**data)`` takes OpenAI's JSON (an SDK ``model_dump()``, a recorded body):
    nested choices, messages, tool calls and usage become objects, and fields this type does
    not model are kept in ``extra``. With no arguments it is an empty answer with a fresh id,
    as LiteLLM's ``ModelResponse()`` is.
    """

    id: str
    model: str
    choices: list[Choice]
    created: int
    usage: Usage
    system_fingerprint: str | None
    object: Literal["chat.completion"]
    harness: ResponseMeta
    service_tier: str | None
    extra: dict[str, Any]
    """Fields of the OpenAI data this type does not model, kept for ``to_dict``."""

    def __init__(
        self,
        id: str | None = None,
        model: str = "",
        choices: list[Choice] | list[Mapping[str, Any]] | None = None,
        created: int | None = None,
        usage: Usage | Mapping[str, Any] | None = None,
        system_fingerprint: str | None = None,
        object: Literal["chat.completion"] = "chat.completion",
        harness: ResponseMeta | None = None,
        service_tier: str | None = None,
        **extra: Any,
    ) -> None:
        self.id = id if id is not None else "chatcmpl-" + uuid.uuid4().hex[:24]
        self.model = model
        self.choices = [
            c if isinstance(c, Choice) else Choice.from_dict(_plain(c)) for c in choices or ()
        ]
        self.created = int(created) if created is not None else int(time.time())
        if usage is None:
            usage = Usage()
        elif not isinstance(usage, Usage):
            usage = Usage(**_plain(usage))
        self.usage = usage
        self.system_fingerprint = system_fingerprint
        self.object = object
        self.harness = harness if harness is not None else ResponseMeta()
        self.service_tier = service_tier
        self.extra = extra

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        # ``harness`` is reachable as an attribute but is not an OpenAI key.
        return ("id", "object", "created", "model", "system_fingerprint", "choices", "usage")

    @property
    def content(self) -> str | None:
        """The first choice's text (a shortcut for ``choices[0].message.content``)."""
        return self.choices[0].message.content if self.choices else None

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """LiteLLM's side channel: ``response_cost`` (USD) and ``custom_llm_provider``.

        A fresh dict from ``harness`` each time; ``harness`` has everything else.
        """
        return hidden_params(self.harness, self.model)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI ``chat.completion`` data only (no harness metadata), JSON-able."""
        out = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": [c.to_dict() for c in self.choices],
            "usage": self.usage.to_dict(),
        }
        if self.service_tier is not None:
            out["service_tier"] = self.service_tier
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelResponse:
        """The inverse of ``to_dict``: the OpenAI fields, with empty ``harness`` metadata."""
        fields = dict(data)
        fields.pop("harness", None)
        return cls(
            **{
                **fields,
                "id": str(data.get("id", "")),
                "model": str(data.get("model", "")),
                "created": int(data.get("created") or 0),
                "usage": Usage.from_dict(dict(data.get("usage") or {})),
            }
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
class DeltaFunction(_Mapping):
    """A fragment of a streamed function call: the name on the first, argument pieces after."""

    name: str | None = None
    arguments: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as OpenAI streams them."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.arguments is not None:
            out["arguments"] = self.arguments
        return out


@dataclass(slots=True)
class DeltaToolCall(_Mapping):
    """A fragment of a streamed tool call (OpenAI's ``ChoiceDeltaToolCall``).

    The first fragment of a call carries its ``id``, ``type`` and ``function.name``; later
    ones carry only ``index`` and a piece of ``function.arguments``. Fragments with the same
    ``index`` belong to one call.
    """

    index: int = 0
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunction | None = None

    def __post_init__(self) -> None:
        if self.function is not None and not isinstance(self.function, DeltaFunction):
            fn = _plain(self.function)
            arguments = fn.get("arguments")
            if arguments is not None and not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            self.function = DeltaFunction(fn.get("name"), arguments)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as OpenAI streams them."""
        out: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            out["id"] = self.id
        if self.type is not None:
            out["type"] = self.type
        if self.function is not None:
            out["function"] = self.function.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeltaToolCall:
        """Build from OpenAI's fragment data (missing fields stay ``None``)."""
        index = data.get("index")
        return cls(
            index=index if isinstance(index, int) else 0,
            id=data.get("id"),
            type=data.get("type"),
            function=data.get("function"),
        )


@dataclass(slots=True)
class Delta(_Mapping):
    """What one chunk adds to a choice's message; unset fields are ``None``.

    ``tool_calls`` holds ``DeltaToolCall`` fragments as OpenAI streams them (dicts given
    here are converted); ``function_call`` is OpenAI's deprecated single call, ``None``
    unless a provider sends it.
    """

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    function_call: DeltaFunction | None = None

    def __post_init__(self) -> None:
        if self.tool_calls:
            self.tool_calls = [
                t if isinstance(t, DeltaToolCall) else DeltaToolCall.from_dict(_plain(t))
                for t in self.tool_calls
            ]
        if self.function_call is not None and not isinstance(self.function_call, DeltaFunction):
            fn = _plain(self.function_call)
            self.function_call = DeltaFunction(fn.get("name"), fn.get("arguments"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data with only the fields that are set, as OpenAI sends them."""
        out: dict[str, Any] = {}
        if self.role is not None:
            out["role"] = self.role
        if self.content is not None:
            out["content"] = self.content
        if self.tool_calls is not None:
            out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.refusal is not None:
            out["refusal"] = self.refusal
        if self.function_call is not None:
            out["function_call"] = self.function_call.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delta:
        """Build from OpenAI's delta data; fields this type does not model are dropped."""
        return cls(
            role=data.get("role"),
            content=data.get("content"),
            tool_calls=data.get("tool_calls"),
            reasoning_content=data.get("reasoning_content"),
            refusal=data.get("refusal"),
            function_call=data.get("function_call"),
        )


@dataclass(slots=True)
class ChunkChoice(_Mapping):
    """One choice's part of a chunk; ``finish_reason`` is set on the choice's last chunk."""

    index: int = 0
    delta: Delta = field(default_factory=Delta)
    finish_reason: FinishReason | None = None
    logprobs: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.delta, Delta):
            self.delta = Delta.from_dict(_plain(self.delta) or {})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "index": self.index,
            "delta": self.delta.to_dict(),
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkChoice:
        """Build from OpenAI's chunk-choice data."""
        return cls(
            index=int(data.get("index") or 0),
            delta=Delta.from_dict(data.get("delta") or {}),
            finish_reason=data.get("finish_reason"),
            logprobs=data.get("logprobs"),
        )


@dataclass(slots=True, repr=False, init=False)
class StreamChunk(_Mapping):
    """One streamed chunk in the OpenAI ``chat.completion.chunk`` shape.

    ``usage`` is ``None`` on every chunk but the usage chunk, which has no choices and comes
    last, only when the caller asked for it (``stream_options={"include_usage": True}``), as
    OpenAI sends it. ``StreamChunk(**data)`` takes OpenAI's chunk JSON.
    """

    id: str
    model: str
    choices: list[ChunkChoice]
    created: int
    usage: Usage | None
    system_fingerprint: str | None
    object: Literal["chat.completion.chunk"]
    extra: dict[str, Any]
    """Fields of the OpenAI data this type does not model, kept for ``to_dict``."""

    def __init__(
        self,
        id: str = "",
        model: str = "",
        choices: list[ChunkChoice] | list[Mapping[str, Any]] | None = None,
        created: int = 0,
        usage: Usage | Mapping[str, Any] | None = None,
        system_fingerprint: str | None = None,
        object: Literal["chat.completion.chunk"] = "chat.completion.chunk",
        **extra: Any,
    ) -> None:
        self.id = id
        self.model = model
        self.choices = [
            c if isinstance(c, ChunkChoice) else ChunkChoice.from_dict(_plain(c))
            for c in choices or ()
        ]
        self.created = created
        self.usage = usage if usage is None or isinstance(usage, Usage) else Usage(**_plain(usage))
        self.system_fingerprint = system_fingerprint
        self.object = object
        self.extra = extra

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return ("id", "object", "created", "model", "system_fingerprint", "choices", "usage")

    @property
    def content(self) -> str | None:
        """The first choice's text delta (``None`` when this chunk has none)."""
        return self.choices[0].delta.content if self.choices else None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI ``chat.completion.chunk`` data, JSON-able (``usage`` only when set)."""
        out = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": [c.to_dict() for c in self.choices],
        }
        if self.usage is not None:
            out["usage"] = self.usage.to_dict()
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamChunk:
        """The inverse of ``to_dict`` (a stored or replayed chunk)."""
        usage = data.get("usage")
        return cls(
            id=str(data.get("id", "")),
            model=str(data.get("model", "")),
            choices=[ChunkChoice.from_dict(c) for c in data.get("choices") or ()],
            created=int(data.get("created") or 0),
            usage=Usage.from_dict(usage) if isinstance(usage, Mapping) else None,
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
