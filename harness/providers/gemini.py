"""The Google Gemini ``generateContent`` adapter (Generative Language API).

This module owns the translation between OpenAI-shaped calls and Gemini's REST format:
OpenAI messages become ``systemInstruction`` plus ``user``/``model`` ``contents``, OpenAI
parameters become ``generationConfig``/``tools``/``toolConfig``, each candidate comes back
as one OpenAI choice, and Google RPC error statuses are mapped onto the harness error tree.
Streams (``:streamGenerateContent?alt=sse``) send each candidate's new parts per chunk; they
become OpenAI chunks and are assembled into the same ``ModelResponse``. Embeddings go to
``models/{model}:batchEmbedContents`` (up to 100 texts per request).
"""

from __future__ import annotations

import json
import mimetypes
import re
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from harness.embeddings import EmbeddingResponse
from harness.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConfigError,
    HarnessError,
    InvalidResponseError,
    RateLimitError,
    error_from_status,
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
    embedding_response,
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
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FinishReason,
    FunctionCall,
    Message,
    ModelResponse,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

__all__ = ["FINISH_REASONS", "GeminiProvider", "GeminiStreamParser"]

FINISH_REASONS = FinishReasons(
    mapped={
        "STOP": "stop",
        "MAX_TOKENS": "length",
        "MALFORMED_FUNCTION_CALL": "stop",
        "UNEXPECTED_TOOL_CALL": "stop",
        "TOO_MANY_TOOL_CALLS": "stop",
        "FINISH_REASON_UNSPECIFIED": "stop",
    },
    filtered=frozenset(
        {
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "LANGUAGE",
            "OTHER",
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_RECITATION",
            "IMAGE_OTHER",
            "NO_IMAGE",
        }
    ),
)
"""Gemini's finish reasons; the blocked ones are ``content_filter``."""

_GENERATION_FIELDS: Mapping[str, str] = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
"""OpenAI parameters copied into ``generationConfig`` under their Gemini names."""

_TOP_LEVEL_FIELDS: Mapping[str, str] = {
    "safetySettings": "safetySettings",
    "safety_settings": "safetySettings",
    "cachedContent": "cachedContent",
    "cached_content": "cachedContent",
}
"""Gemini-native request fields passed through at the top level of the body."""

_TOOL_MODES: Mapping[str, str] = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]+)?(?:;[^,]*)?;base64,(?P<data>.*)$", re.DOTALL)
_DURATION = re.compile(r"^\s*(?P<seconds>\d+(?:\.\d+)?)s\s*$")
_ZERO_LIMIT = re.compile(r"\blimit: 0(?![\d.])")
"""A quota whose limit is zero (e.g. no free tier for the model): waiting will not help."""

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GeminiProvider(HTTPProvider):
    """Gemini's ``models/{model}:generateContent``; ``n`` is sent as ``candidateCount``."""

    family = "gemini"
    supports_n = True
    supports_embeddings = True
    max_embedding_inputs = 100
    """``batchEmbedContents`` takes at most 100 requests."""

    def build_request(self, call: Call) -> httpx.Request:
        """Build the ``generateContent`` POST for ``call`` (pure).

        Raises:
            BadRequestError: a message cannot be expressed in Gemini's format (unknown role,
                tool arguments that are not a JSON object, a tool result for an unknown call).
        """
        return self._request(call, ":generateContent")

    def build_stream_request(self, call: Call) -> httpx.Request:
        """Build the ``streamGenerateContent?alt=sse`` POST for ``call`` (pure).

        The body is the same as for ``generateContent``; ``alt=sse`` makes the server send
        server-sent events instead of one JSON array.

        Raises:
            BadRequestError: a message cannot be expressed in Gemini's format.
        """
        return self._request(call, ":streamGenerateContent?alt=sse")

    def _request(
        self, call: Call, method: str, body: dict[str, Any] | None = None
    ) -> httpx.Request:
        base = call.base_url()
        if not base:
            raise call.error(ConfigError, "no api_base for the Gemini API")
        path = _model_path(call)
        headers = {"content-type": "application/json"}
        if call.api_key:
            headers["x-goog-api-key"] = call.api_key
        headers.update(call.spec.headers)
        headers.update(call.headers)
        if body is None:
            body = build_body(call)
        return json_request(f"{base.rstrip('/')}/{path}{method}", body, headers)

    def build_embedding_request(self, call: Call) -> httpx.Request:
        """Build the ``batchEmbedContents`` POST for ``call`` (pure).

        One request per text, ``{"model", "content": {"parts": [{"text"}]}}``, with
        ``dimensions`` as ``outputDimensionality`` and ``task_type`` (LiteLLM's name) as
        ``taskType``; other parameters have no Gemini equivalent and are not sent.
        """
        model = _model_path(call)
        extra: dict[str, Any] = {}
        dimensions = call.params.get("dimensions")
        if dimensions is not None:
            extra["outputDimensionality"] = dimensions
        task = call.params.get("task_type")
        if task is not None:
            extra["taskType"] = task
        requests = [
            {"model": model, "content": {"parts": [{"text": text}]}, **extra}
            for text in call.params["input"]
        ]
        return self._request(call, ":batchEmbedContents", {"requests": requests})

    def parse_embedding_response(
        self, call: Call, data: Any, headers: Mapping[str, str]
    ) -> EmbeddingResponse:
        """Normalise ``{"embeddings": [{"values": [...]}, ...]}`` (pure).

        Gemini reports no token count for embeddings; the usage is then estimated (four
        characters a token) and the answer flagged ``usage_estimated``.

        Raises:
            InvalidResponseError: not one vector per text sent.
        """
        vectors = [[float(x) for x in item["values"]] for item in data["embeddings"]]
        metadata = data.get("usageMetadata") or {}
        tokens = metadata.get("promptTokenCount")
        flags: list[str] = []
        if not isinstance(tokens, int):
            tokens = sum(max(1, len(text) // 4) for text in call.params["input"])
            flags.append("usage_estimated")
        return embedding_response(call, vectors, Usage(tokens, 0, tokens), call.spec.model, flags)

    def stream_parser(
        self, call: Call, headers: Mapping[str, str] | None = None
    ) -> GeminiStreamParser:
        """A parser for one ``streamGenerateContent`` event stream."""
        return GeminiStreamParser(self, call, headers)

    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> ModelResponse:
        """Normalise a ``GenerateContentResponse`` into a ``ModelResponse`` (pure).

        Raises:
            InvalidResponseError: the body has neither candidates nor a prompt block reason.
        """
        candidates = data.get("candidates") or []
        flags: list[str] = []
        raw_reasons: list[str | None] = []
        choices: list[Choice] = []
        if not candidates:
            reason = (data.get("promptFeedback") or {}).get("blockReason")
            if not reason:
                raise call.error(
                    InvalidResponseError,
                    "response has no candidates and no promptFeedback.blockReason",
                    body=json.dumps(data)[:1000],
                )
            choices.append(Choice(0, Message(content=""), "content_filter"))
            raw_reasons.append(str(reason))
            flags.append(f"prompt_blocked:{reason}")
        for index, candidate in zip(candidate_indices(candidates), candidates, strict=True):
            choice, choice_flags = parse_candidate(candidate, index, call)
            choices.append(choice)
            raw_reasons.append(candidate.get("finishReason"))
            flags.extend(f for f in choice_flags if f not in flags)
        order = sorted(range(len(choices)), key=lambda i: choices[i].index)
        return ModelResponse(
            id=str(data.get("responseId") or new_id()),
            model=str(data.get("modelVersion") or call.spec.model),
            choices=[choices[i] for i in order],
            created=now(),
            usage=parse_usage(data.get("usageMetadata") or {}),
            harness=ResponseMeta(
                provider=call.spec.provider,
                model=call.spec.name,
                raw_finish_reasons=[raw_reasons[i] for i in order],
                flags=flags,
            ),
        )

    def parse_error(
        self, call: Call, status: int | None, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map a Google RPC error status onto the harness error tree (pure).

        ``status`` is ``None`` for an error object in a stream without a numeric ``code``:
        the class then comes from its RPC ``status`` (``RESOURCE_EXHAUSTED``, …).
        """
        message, code = error_details(body)
        error = _rpc_error(body)
        details = [d for d in error.get("details") or [] if isinstance(d, Mapping)]
        retry_after = _retry_delay(details)
        if retry_after is None:
            retry_after = retry_after_seconds(headers)
        context: dict[str, Any] = {
            "body": body,
            "retry_after": retry_after,
            "request_id": request_id(headers),
        }
        text = message or (f"HTTP {status}" if status else "the provider reported an error")
        cls = _special_class(status, code, message, details)
        if cls is not None:
            return call.error(cls, text, status=status, **context)
        return error_from_status(
            status, text, code=code, provider=call.spec.provider, model=call.spec.name, **context
        )


# --- streaming -------------------------------------------------------------------------


class _Candidate:
    """One candidate being streamed: every part received so far, and its finish reason."""

    __slots__ = ("extra", "finish", "parts", "tools")

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.tools = 0
        self.extra: dict[str, Any] = {}
        """Other candidate fields (``safetyRatings``, ``citationMetadata``), latest kept."""


class GeminiStreamParser(StreamParser):
    """Parses a ``streamGenerateContent?alt=sse`` stream (docs/wire-formats.md §3.5).

    Each chunk carries only new parts; they are appended per candidate and streamed as
    text, reasoning (``thought`` parts) and whole tool calls (ids minted where Gemini sends
    none, the same ids in the chunks and the answer). ``usageMetadata`` repeats, so the
    last one is kept. There is no terminal event: the stream is complete when every
    candidate has a ``finishReason`` (or the prompt was blocked), else it was cut off.
    """

    def __init__(
        self, provider: GeminiProvider, call: Call, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(provider, call, headers)
        self._adapter = provider
        self._candidates: dict[int, _Candidate] = {}
        self._usage: Mapping[str, Any] | None = None
        self._feedback: Mapping[str, Any] | None = None

    def usage_so_far(self) -> Usage | None:
        """The running ``usageMetadata`` Gemini sends with its chunks."""
        return parse_usage(self._usage) if self._usage else None

    def feed(self, event: str | None, data: str) -> list[StreamChunk]:
        """The chunk of one ``GenerateContentResponse`` event.

        Raises:
            HarnessError: the event is a Google RPC error (mapped as its HTTP status would be).
        """
        payload = self.load(data)
        if isinstance(payload, list) and payload:
            payload = payload[0]
        if not isinstance(payload, Mapping):
            raise self.call.error(InvalidResponseError, "stream chunk is not an object", body=data)
        error = payload.get("error")
        if error:
            code = error.get("code") if isinstance(error, Mapping) else None
            status = code if type(code) is int and 400 <= code < 600 else None
            raise self._adapter.parse_error(self.call, status, data.encode(), self.headers)
        if not self.id and payload.get("responseId"):
            self.id = str(payload["responseId"])
        if not self.model and payload.get("modelVersion"):
            self.model = str(payload["modelVersion"])
        if payload.get("usageMetadata"):
            self._usage = payload["usageMetadata"]
        feedback = payload.get("promptFeedback")
        if isinstance(feedback, Mapping) and feedback.get("blockReason"):
            self._feedback = feedback
        candidates = payload.get("candidates") or []
        choices = [
            self._candidate(index, candidate)
            for index, candidate in zip(candidate_indices(candidates), candidates, strict=True)
        ]
        finished = any(c.finish_reason is not None for c in choices)
        usage = parse_usage(self._usage) if finished and self._usage else None
        if self._feedback is not None and not candidates:
            self.done = True
            blocked = ChunkChoice(0, Delta(role="assistant", content=""), "content_filter")
            return [self.chunk_of([blocked], parse_usage(self._usage or {}))]
        if not choices and usage is None:
            return []
        return [self.chunk_of(choices, usage)]

    def _candidate(self, index: int, raw: Mapping[str, Any]) -> ChunkChoice:
        first = index not in self._candidates
        cand = self._candidates.setdefault(index, _Candidate())
        text: list[str] = []
        thoughts: list[str] = []
        tools: list[DeltaToolCall] = []
        for part in (raw.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                fc = dict(part["functionCall"])
                fc.setdefault("id", None)
                fc["id"] = fc["id"] or f"call_{uuid.uuid4().hex[:24]}"
                part = {**part, "functionCall": fc}
                tools.append(_tool_fragment(cand.tools, fc))
                cand.tools += 1
            elif "text" in part:
                (thoughts if part.get("thought") else text).append(str(part["text"]))
            cand.parts.append(dict(part))
        cand.extra.update(
            {k: v for k, v in raw.items() if k not in ("content", "index", "finishReason")}
        )
        content, reasoning = "".join(text), "".join(thoughts)
        if content:
            self.note_output(text=True)
        elif reasoning or tools:
            self.note_output()
        finish: FinishReason | None = None
        if raw.get("finishReason"):
            cand.finish = str(raw["finishReason"])
            if cand.tools:
                finish = "tool_calls"
            else:
                finish, _ = map_finish_reason(cand.finish, FINISH_REASONS, self.call)
        delta = Delta(
            role="assistant" if first else None,
            content=content if content or first else None,
            reasoning_content=reasoning or None,
            tool_calls=tools or None,
        )
        return ChunkChoice(index, delta, finish)

    def finished(self) -> bool:
        """Every candidate has its ``finishReason`` (or the prompt was blocked).

        Gemini's stream has no terminal event: the chunk with the last finish reason ends
        it, so a connection that breaks after that chunk lost nothing.
        """
        return self._feedback is not None or (
            bool(self._candidates) and all(c.finish for c in self._candidates.values())
        )

    def finish(self) -> ModelResponse:
        """The ``GenerateContentResponse`` the chunks add up to, parsed as unstreamed.

        Raises:
            APIConnectionError: a candidate never got its ``finishReason`` (or no chunk came).
        """
        if not self.finished():
            raise self.truncated()
        data: dict[str, Any] = {
            "candidates": [
                {
                    **cand.extra,
                    "content": {"role": "model", "parts": cand.parts},
                    "finishReason": cand.finish,
                    "index": index,
                }
                for index, cand in sorted(self._candidates.items())
            ],
            "usageMetadata": self._usage or {},
            "modelVersion": self.model or None,
            "responseId": self.id or None,
        }
        if self._feedback is not None:
            data["promptFeedback"] = self._feedback
        return self._adapter.parse_response(self.call, data, self.headers)


def _tool_fragment(index: int, fc: Mapping[str, Any]) -> DeltaToolCall:
    """A whole Gemini ``functionCall`` as one OpenAI tool-call fragment."""
    function = DeltaFunction(str(fc.get("name", "")), json.dumps(fc.get("args") or {}))
    return DeltaToolCall(index, str(fc["id"]), "function", function)


# --- request ---------------------------------------------------------------------------


def build_body(call: Call) -> dict[str, Any]:
    """The JSON body of a ``generateContent`` request for ``call``.

    Raises:
        BadRequestError: a message cannot be expressed in Gemini's format.
    """
    system, contents = convert_messages(call)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    params = call.params
    config = generation_config(params)
    if config:
        body["generationConfig"] = config
    tools = convert_tools(params.get("tools"))
    if tools:
        body["tools"] = tools
    tool_config = convert_tool_choice(params.get("tool_choice"))
    if tool_config:
        body["toolConfig"] = tool_config
    for name, field in _TOP_LEVEL_FIELDS.items():
        if params.get(name) is not None:
            body[field] = params[name]
    return body


def convert_messages(call: Call) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split OpenAI messages into system-instruction parts and ``user``/``model`` turns.

    Consecutive turns of the same role are merged, and tool results become
    ``functionResponse`` parts of a user turn, named after the tool call they answer.

    Raises:
        BadRequestError: an unknown role, bad tool arguments, or an unmatched tool result.
    """
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, msg in enumerate(call.messages):
        role = msg.get("role")
        if role in ("system", "developer"):
            text = content_text(msg.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            turn_role, parts = "user", user_parts(msg.get("content"))
        elif role == "assistant":
            turn_role, parts = "model", assistant_parts(call, msg, call_names, i)
        elif role in ("tool", "function"):
            turn_role, parts = "user", [function_response_part(call, msg, call_names, i)]
        else:
            raise call.error(BadRequestError, f"messages[{i}]: unsupported role {role!r}")
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    return system, contents


def user_parts(content: Any) -> list[dict[str, Any]]:
    """Gemini parts for an OpenAI user ``content`` (a string or a list of parts)."""
    if not isinstance(content, list):
        return [{"text": content_text(content)}]
    parts: list[dict[str, Any]] = []
    for part in content:
        converted = _content_part(part) if isinstance(part, Mapping) else None
        if converted is not None:
            parts.append(converted)
    return parts or [{"text": ""}]


def _content_part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"text": str(part.get("text", ""))}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return _media_part(str(url or ""))
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        mime = f"audio/{audio.get('format', 'wav')}"
        return {"inlineData": {"mimeType": mime, "data": str(audio.get("data", ""))}}
    if kind == "file":
        file = part.get("file") or {}
        if file.get("file_data"):
            return _media_part(str(file["file_data"]))
    return None


def _media_part(url: str) -> dict[str, Any]:
    """``inlineData`` for a base64 ``data:`` URL, ``fileData`` for any other URL."""
    match = _DATA_URL.match(url)
    if match:
        mime = match.group("mime") or "application/octet-stream"
        return {"inlineData": {"mimeType": mime, "data": match.group("data")}}
    mime = mimetypes.guess_type(url)[0] or "application/octet-stream"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def assistant_parts(
    call: Call, msg: Mapping[str, Any], call_names: dict[str, str], index: int
) -> list[dict[str, Any]]:
    """Gemini ``model`` parts for an assistant message: its text, then its function calls.

    Records each tool call's id → name in ``call_names`` for the tool results that follow.
    """
    parts: list[dict[str, Any]] = []
    text = content_text(msg.get("content"))
    if text:
        parts.append({"text": text})
    for tool_call in msg.get("tool_calls") or []:
        fn = tool_call.get("function") or {}
        name = str(fn.get("name", ""))
        call_names[str(tool_call.get("id", ""))] = name
        args = _arguments(call, fn.get("arguments"), index)
        parts.append({"functionCall": {"name": name, "args": args}})
    return parts or [{"text": ""}]


def _arguments(call: Call, arguments: Any, index: int) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise call.error(
                BadRequestError, f"messages[{index}]: tool call arguments are not valid JSON"
            ) from None
    if not isinstance(arguments, dict):
        raise call.error(
            BadRequestError, f"messages[{index}]: tool call arguments must be a JSON object"
        )
    return arguments


def function_response_part(
    call: Call, msg: Mapping[str, Any], call_names: Mapping[str, str], index: int
) -> dict[str, Any]:
    """A ``functionResponse`` part for an OpenAI ``tool`` (or legacy ``function``) message.

    The name comes from the earlier tool call with the same id (else the message's
    ``name``); a result that is not a JSON object is wrapped as ``{"result": ...}``.
    """
    call_id = msg.get("tool_call_id")
    name = call_names.get(str(call_id or "")) or msg.get("name")
    if not name:
        raise call.error(
            BadRequestError, f"messages[{index}]: tool result {call_id!r} matches no tool call"
        )
    text = content_text(msg.get("content"))
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"result": text}
    return {"functionResponse": {"name": str(name), "response": response}}


def generation_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """``generationConfig`` from OpenAI-named parameters (unset ones are left out)."""
    config: dict[str, Any] = {
        field: params[name]
        for name, field in _GENERATION_FIELDS.items()
        if params.get(name) is not None
    }
    max_tokens = params.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = params.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = params.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("n") is not None:
        config["candidateCount"] = params["n"]
    config.update(_response_format(params.get("response_format")))
    return config


def _response_format(fmt: Any) -> dict[str, Any]:
    if not isinstance(fmt, Mapping):
        return {}
    if fmt.get("type") == "json_object":
        return {"responseMimeType": "application/json"}
    if fmt.get("type") == "json_schema":
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema is not None:
            out["responseSchema"] = schema
        return out
    return {}


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    """OpenAI ``tools`` as one Gemini ``functionDeclarations`` tool.

    Entries that are not OpenAI function tools (e.g. ``{"googleSearch": {}}``) are passed
    through as Gemini tools.
    """
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for tool in tools or []:
        if tool.get("type") == "function" and "function" in tool:
            fn = tool["function"]
            decl = {"name": fn["name"]}
            decl.update({k: fn[k] for k in ("description", "parameters") if fn.get(k)})
            declarations.append(decl)
        else:
            native.append(dict(tool))
    out = [{"functionDeclarations": declarations}] if declarations else []
    return out + native


def convert_tool_choice(choice: Any) -> dict[str, Any] | None:
    """``toolConfig`` for an OpenAI ``tool_choice``; ``None`` when there is none."""
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = _TOOL_MODES.get(choice)
        return {"functionCallingConfig": {"mode": mode}} if mode else None
    name = (choice.get("function") or {}).get("name") if isinstance(choice, Mapping) else None
    if not name:
        return None
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


# --- response ---------------------------------------------------------------------------


def candidate_indices(candidates: list[Mapping[str, Any]]) -> list[int]:
    """Each candidate's choice index, unique even where ``index`` is missing.

    JSON omits an ``index`` of 0, so a missing one takes the smallest index that no other
    candidate uses.
    """
    taken = {int(c["index"]) for c in candidates if c.get("index") is not None}
    out: list[int] = []
    free = 0
    for candidate in candidates:
        if candidate.get("index") is not None:
            out.append(int(candidate["index"]))
            continue
        while free in taken:
            free += 1
        taken.add(free)
        out.append(free)
    return out


def parse_candidate(
    candidate: Mapping[str, Any], index: int, call: Call | None = None
) -> tuple[Choice, list[str]]:
    """One OpenAI choice (and its flags) from a Gemini candidate.

    Text parts are joined into ``content``; ``thought`` parts go to ``reasoning_content``;
    ``functionCall`` parts become tool calls, which make the finish reason ``tool_calls``.
    """
    parts = (candidate.get("content") or {}).get("parts") or []
    text: list[str] = []
    thoughts: list[str] = []
    tool_calls: list[ToolCall] = []
    for part in parts:
        if "functionCall" in part:
            tool_calls.append(_tool_call(part["functionCall"]))
        elif "text" in part:
            (thoughts if part.get("thought") else text).append(str(part["text"]))
    content = "".join(text)
    flags: list[str] = []
    finish: FinishReason
    if tool_calls:
        finish = "tool_calls"
    else:
        finish, flags = map_finish_reason(candidate.get("finishReason"), FINISH_REASONS, call)
    message = Message(
        content=content if content or not tool_calls else None,
        tool_calls=tool_calls or None,
        reasoning_content="".join(thoughts) if thoughts else None,
    )
    return Choice(index, message, finish), flags


def _tool_call(fc: Mapping[str, Any]) -> ToolCall:
    call_id = fc.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    arguments = json.dumps(fc.get("args") or {})
    return ToolCall(id=str(call_id), function=FunctionCall(str(fc.get("name", "")), arguments))


def parse_usage(meta: Mapping[str, Any]) -> Usage:
    """OpenAI usage from Gemini ``usageMetadata``.

    prompt = ``promptTokenCount + toolUsePromptTokenCount``; completion =
    ``candidatesTokenCount + thoughtsTokenCount``; total = ``totalTokenCount`` (else the sum).
    """
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount")
    completion = int(meta.get("candidatesTokenCount") or 0) + int(thoughts or 0)
    total = meta.get("totalTokenCount")
    cached = meta.get("cachedContentTokenCount")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(total) if total is not None else prompt + completion,
        cached_tokens=int(cached) if cached is not None else None,
        reasoning_tokens=int(thoughts) if thoughts is not None else None,
    )


# --- errors -----------------------------------------------------------------------------


def _rpc_error(body: bytes) -> Mapping[str, Any]:
    """The ``error`` object of a Google RPC status body, unwrapping a one-element list."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return {}
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def _retry_delay(details: list[Mapping[str, Any]]) -> float | None:
    """Seconds from a ``RetryInfo.retryDelay`` detail (``"37s"`` → 37.0), if any."""
    for detail in details:
        if detail.get("@type") != _RETRY_INFO:
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            if match:
                return float(match.group("seconds"))
        elif isinstance(delay, Mapping):
            return float(delay.get("seconds") or 0) + float(delay.get("nanos") or 0) / 1e9
    return None


def _special_class(
    status: int | None, code: str | None, message: str, details: list[Mapping[str, Any]]
) -> type[HarnessError] | None:
    """The error class where Gemini departs from the plain status map, else ``None``."""
    if status == 400 and (
        any(d.get("@type") == _ERROR_INFO and d.get("reason") == "API_KEY_INVALID" for d in details)
        or "api key not valid" in message.lower()
    ):
        return AuthenticationError
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        quota_ids = [
            str(v.get("quotaId", ""))
            for d in details
            if d.get("@type") == _QUOTA_FAILURE
            for v in d.get("violations") or []
            if isinstance(v, Mapping)
        ]
        if any("PerDay" in q for q in quota_ids) or _ZERO_LIMIT.search(message):
            return BillingError
        return RateLimitError
    if status == 499:
        return APIConnectionError
    return None


def _model_path(call: Call) -> str:
    """``models/{model}`` (or a ``tunedModels/…`` name as given)."""
    path = call.spec.model
    if path.startswith("tunedModels/"):
        return path
    return "models/" + path.removeprefix("models/")
