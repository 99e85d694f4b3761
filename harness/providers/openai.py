"""The OpenAI Chat Completions adapter, for OpenAI itself, every compatible server, and Azure.

This module owns the wire format of ``POST …/chat/completions``: building the request for
OpenAI (``max_completion_tokens``, organisation/project headers), for compatible servers
(Ollama, vLLM, llama.cpp, LM Studio, Groq, Together, OpenRouter, Mistral, DeepSeek: they get
``max_tokens``; Mistral gets ``random_seed`` and nine-character tool-call ids) and for Azure
OpenAI (deployment URLs, ``api-version``, the ``api-key`` header, the ``/openai/v1`` surface);
normalising their answers, with every known quirk, into a ``ModelResponse``; parsing their
``chat.completion.chunk`` streams (role-only first chunks, Azure's choice-less first chunk,
the usage chunk, Groq's ``x_groq.usage``, OpenRouter's in-stream errors, tool-call fragments)
and assembling them into the same ``ModelResponse``; and mapping their error bodies onto the
harness error tree.

It also owns ``POST …/embeddings`` for the same servers (``build_embedding_request``,
``parse_embedding_response``; base64 vectors are decoded to floats).

``build_request`` and ``parse_response`` are the hot path of the throughput benchmark, so
they avoid copies of the caller's data, pydantic, and per-call parsing of URLs or patterns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from harness.embeddings import EmbeddingResponse, decode_base64_embedding
from harness.errors import (
    ConfigError,
    ContentFilterError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    ServiceUnavailableError,
    error_from_status,
)
from harness.providers.base import (
    Call,
    HTTPProvider,
    Send,
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
    every_finish_reason,
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
    Message,
    ModelResponse,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

__all__ = ["FINISH_REASONS", "DEFAULT_AZURE_API_VERSION", "AzureProvider", "OpenAIProvider"]

FINISH_REASONS = FinishReasons(
    mapped={
        "stop": "stop",
        "length": "length",
        "tool_calls": "tool_calls",
        "content_filter": "content_filter",
        "function_call": "function_call",
        "eos": "stop",
        "model_length": "length",
    },
    failed={
        "error": InternalServerError,  # Mistral, OpenRouter
        "insufficient_system_resource": ServiceUnavailableError,  # DeepSeek
    },
)
"""OpenAI's finish reasons and the compatible servers' own spellings."""

DEFAULT_AZURE_API_VERSION = "2024-10-21"
"""The Azure OpenAI ``api-version`` used when neither the config nor the environment sets one."""

_SINGLE_CHOICE_PROVIDERS = frozenset({"ollama", "llamacpp"})
"""Servers that return one choice whatever ``n`` says (llama.cpp even fails on ``n > 1``)."""

_NO_STREAM_OPTIONS = frozenset({"mistral"})
"""Servers that reject ``stream_options`` (Mistral forbids unknown fields; it sends usage in
its last chunk anyway)."""

_MISTRAL_TOOL_ID = re.compile(r"[a-zA-Z0-9]{9}")
_CONTENT_FILTER_CODES = frozenset({"content_filter", "ResponsibleAIPolicyViolation"})
_JSON_SEPARATORS = (",", ":")


class OpenAIProvider(HTTPProvider):
    """OpenAI's Chat Completions API and the servers that speak it.

    One instance serves every provider whose family is ``openai``; the differences between
    them (token-limit field name, Mistral's ``random_seed``, which headers to send) are keyed
    on ``call.spec.provider`` and ``call.spec.info``.
    """

    family: ClassVar[str] = "openai"
    supports_embeddings: ClassVar[bool] = True
    max_embedding_inputs: ClassVar[int | None] = 2048
    """OpenAI's limit of inputs per embeddings request."""

    # --- request ------------------------------------------------------------------------

    def build_request(self, call: Call) -> httpx.Request:
        """Build ``POST {api_base}/chat/completions`` for ``call``.

        Raises:
            ConfigError: the provider has no base URL and none was configured.
        """
        return self._chat_request(call, None)

    def _chat_request(self, call: Call, extra: Mapping[str, Any] | None) -> httpx.Request:
        """The chat request with ``extra`` fields set in the body (the stream options)."""
        spec = call.spec
        base = call.base_url()
        if not base:
            raise call.error(
                ConfigError,
                f"no api_base for model {spec.name!r}: "
                "set api_base in the config or pass api_base=...",
            )
        body = self._body(call, spec.model)
        if extra:
            body.update(extra)
        native = spec.info.openai_native
        if native:
            _rename(body, "max_tokens", "max_completion_tokens")
        else:
            _rename(body, "max_completion_tokens", "max_tokens")
        if spec.provider == "mistral":
            _rename(body, "seed", "random_seed")
            _remint_tool_ids(body)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if call.api_key:
            headers["Authorization"] = "Bearer " + call.api_key
        if native:
            org = os.environ.get("OPENAI_ORG_ID")
            if org:
                headers["OpenAI-Organization"] = org
            project = os.environ.get("OPENAI_PROJECT_ID")
            if project:
                headers["OpenAI-Project"] = project
        return self._request(call, base + "/chat/completions", body, headers)

    def _body(self, call: Call, model: str) -> dict[str, Any]:
        """The JSON body: model, messages (not copied) and the non-``None`` parameters."""
        body: dict[str, Any] = {"model": model, "messages": call.messages}
        for key, value in call.params.items():
            if value is not None:
                body[key] = value
        return body

    def _request(
        self, call: Call, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Request:
        """Add the configured and per-call headers and encode the body once."""
        if call.spec.headers:
            _merge_headers(headers, call.spec.headers)
        if call.headers:
            _merge_headers(headers, call.headers)
        return json_request(url, body, headers)

    # --- response -----------------------------------------------------------------------

    def parse_response(self, call: Call, data: Any, headers: Mapping[str, str]) -> ModelResponse:
        """Normalise a ``chat.completion`` body, tolerating the compatible servers' quirks.

        Raises:
            HarnessError: the body carries an ``error`` (OpenRouter sends some with HTTP 200),
                a choice finished with a failure reason (``error``,
                ``insufficient_system_resource``), or the body has no choices.
        """
        if not isinstance(data, dict):
            raise call.error(InvalidResponseError, "response body is not a JSON object")
        if data.get("error"):
            raise self._embedded_error(call, data, headers)
        raw_choices = data.get("choices")
        if not isinstance(raw_choices, list) or not raw_choices:
            raise call.error(InvalidResponseError, "response has no choices", body=_dump(data))
        try:
            return self._completion(call, data, raw_choices)
        except OverflowError as exc:  # int(Infinity): json.loads accepts it, ``generate`` not
            raise call.error(
                InvalidResponseError, f"number out of range in response: {exc}", body=_dump(data)
            ) from exc

    def _completion(
        self, call: Call, data: dict[str, Any], raw_choices: list[Any]
    ) -> ModelResponse:
        meta = ResponseMeta(provider=call.spec.provider, model=call.spec.name)
        choices = [self._choice(call, i, raw, meta) for i, raw in enumerate(raw_choices)]
        rid = data.get("id")
        created = data.get("created")
        fingerprint = data.get("system_fingerprint")
        return ModelResponse(
            id=str(rid) if rid else new_id(),
            model=str(data.get("model") or call.spec.model),
            choices=choices,
            created=int(created) if created else now(),
            usage=_usage(data),
            system_fingerprint=None if fingerprint is None else str(fingerprint),
            harness=meta,
        )

    def _choice(self, call: Call, index: int, raw: dict[str, Any], meta: ResponseMeta) -> Choice:
        """One choice; records its raw finish reason and flags in ``meta``."""
        msg = raw.get("message") or {}
        content = msg.get("content")
        reasoning = msg.get("reasoning_content")
        if reasoning is None:
            reasoning = msg.get("reasoning")
        if not reasoning and "reasoning_details" in msg:
            reasoning = _details_text(msg["reasoning_details"]) or reasoning
        if content is not None and not isinstance(content, str):
            content, thinking = _split_content(content)
            if reasoning is None:
                reasoning = thinking
        if reasoning is not None and not isinstance(reasoning, str):
            reasoning = content_text(reasoning)
        raw_tools = msg.get("tool_calls")
        refusal = msg.get("refusal")
        finish = raw.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            finish = str(finish)
        mapped, flags = _finish_reason(finish, bool(raw_tools), call)
        meta.raw_finish_reasons.append(finish)
        if flags:
            meta.flags.extend(flags)
        position = raw.get("index")
        return Choice(
            index=position if type(position) is int else index,
            message=Message(
                content=content,
                tool_calls=[_tool_call(t) for t in raw_tools] if raw_tools else None,
                refusal=None if refusal is None else str(refusal),
                reasoning_content=reasoning,
            ),
            finish_reason=mapped,
            logprobs=raw.get("logprobs"),
        )

    def _embedded_error(
        self, call: Call, data: dict[str, Any], headers: Mapping[str, str]
    ) -> HarnessError:
        """The error of a body or stream event that reports one with a success status.

        A status the body names is kept as the error's ``status``: OpenRouter's numeric
        ``code``, Groq's ``status_code`` (in its ``event: error``). Any other error (an
        OpenAI ``error`` chunk, a Mistral one) has none, and is classified by its ``code``
        and ``type`` alone.
        """
        err = data.get("error")
        status = None
        if isinstance(err, dict):
            for key in ("code", "status_code"):
                value = err.get(key)
                if type(value) is int and 400 <= value < 600:
                    status = value
                    break
        return self.parse_error(call, status, _dump(data).encode(), headers)

    # --- embeddings ---------------------------------------------------------------------

    def build_embedding_request(self, call: Call) -> httpx.Request:
        """Build ``POST {api_base}/embeddings`` for ``call`` (pure).

        The body is ``{"model", "input": [texts], ...}`` with the call's parameters
        (``dimensions``, ``encoding_format``, ``user``); the Cohere and Gemini parameters
        ``input_type`` and ``task_type`` are left out.

        Raises:
            ConfigError: the provider has no base URL and none was configured.
        """
        base = call.base_url()
        if not base:
            raise call.error(
                ConfigError,
                f"no api_base for model {call.spec.name!r}: "
                "set api_base in the config or pass api_base=...",
            )
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if call.api_key:
            headers["Authorization"] = "Bearer " + call.api_key
        body = _embedding_body(call, call.spec.model)
        return self._request(call, base + "/embeddings", body, headers)

    def parse_embedding_response(
        self, call: Call, data: Any, headers: Mapping[str, str]
    ) -> EmbeddingResponse:
        """Normalise a ``list`` of ``embedding`` objects, in input order.

        Raises:
            HarnessError: the body carries an ``error``, or holds a different number of
                vectors than the call sent texts.
        """
        if not isinstance(data, dict):
            raise call.error(InvalidResponseError, "response body is not a JSON object")
        if data.get("error"):
            raise self._embedded_error(call, data, headers)
        items = data.get("data")
        if not isinstance(items, list):
            raise call.error(InvalidResponseError, "response has no data", body=_dump(data))
        ordered = sorted(enumerate(items), key=lambda pair: _index(pair[1].get("index"), pair[0]))
        vectors = [_vector(item["embedding"]) for _, item in ordered]
        usage = data.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        return embedding_response(
            call,
            vectors,
            Usage(prompt, 0, int(usage.get("total_tokens") or prompt)),
            str(data.get("model") or call.spec.model),
        )

    # --- errors -------------------------------------------------------------------------

    def parse_error(
        self, call: Call, status: int | None, body: bytes, headers: Mapping[str, str]
    ) -> HarnessError:
        """Map an OpenAI-style error body to the error tree.

        Understands ``{"error": {"message", "type", "param", "code"}}``, the flat vLLM/Mistral
        ``{"object": "error", "message", "type", "code"}``, OpenRouter's
        ``{"error": {"code": <int>, "message", "metadata"}}`` and Azure's content-filter
        errors; anything else falls back to the body's text. ``status`` is ``None`` for an
        error event inside a 200 stream: the class comes from the error's code and type.
        """
        err = _error_object(body)
        kind: Any = None
        if err is None:
            message, code = error_details(body)
            metadata: Any = None
        else:
            message, code, metadata = _error_fields(err)
            kind = err.get("type")
        retry_after = retry_after_seconds(headers)
        rid = request_id(headers)
        if (status is None or status < 500) and _is_content_filter(err, status, metadata):
            return call.error(
                ContentFilterError,
                message or "content filtered",
                status=status,
                body=body,
                retry_after=retry_after,
                request_id=rid,
            )
        return error_from_status(
            status,
            message,
            code=code,
            kind=kind if isinstance(kind, str) else None,
            provider=call.spec.provider,
            model=call.spec.name,
            body=body,
            retry_after=retry_after,
            request_id=rid,
        )

    # --- streaming ----------------------------------------------------------------------

    def build_stream_request(self, call: Call) -> httpx.Request:
        """The request with ``"stream": true`` and ``stream_options.include_usage``.

        The usage option makes the stream end with a usage chunk; servers that reject
        ``stream_options`` do not get it.
        """
        fields: dict[str, Any] = {"stream": True}
        if call.spec.provider not in _NO_STREAM_OPTIONS:
            options = call.params.get("stream_options")
            fields["stream_options"] = {
                **(options if isinstance(options, Mapping) else {}),
                "include_usage": True,
            }
        return self._chat_request(call, fields)

    def stream_parser(
        self, call: Call, headers: Mapping[str, str] | None = None
    ) -> OpenAIStreamParser:
        """A parser for one ``chat.completion.chunk`` stream."""
        return OpenAIStreamParser(self, call, headers)

    def streams_n(self, call: Call) -> bool:
        """Single-choice servers (Ollama, llama.cpp) cannot stream ``n > 1`` choices."""
        return self.supports_n and call.spec.provider not in _SINGLE_CHOICE_PROVIDERS

    # --- n ------------------------------------------------------------------------------

    async def generate(self, call: Call, send: Send) -> Any:
        """Send ``call`` and parse the answer; fans ``n > 1`` out for single-choice servers."""
        if (
            self.supports_n
            and call.spec.provider in _SINGLE_CHOICE_PROVIDERS
            and (call.params.get("n") or 1) > 1
        ):
            return await _SINGLE_CHOICE.generate(call, send)
        return await super().generate(call, send)


class _ChoiceBuffer:
    """One choice being streamed: its text, reasoning, refusal, tool calls and finish."""

    __slots__ = ("content", "finish", "logprobs", "reasoning", "refusal", "tools")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, PartialToolCall] = {}
        self.finish: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None

    def tool_index(self, fragment: Mapping[str, Any]) -> int:
        """The index a fragment belongs to; servers that send none get one by id or order."""
        index = fragment.get("index")
        if type(index) is int:
            return index
        call_id = fragment.get("id")
        for known, tool in self.tools.items():
            if call_id and tool.id == call_id:
                return known
        if call_id or not self.tools:
            return len(self.tools)
        return max(self.tools)

    def add_logprobs(self, logprobs: Any) -> None:
        """Append a chunk's token logprobs (``content`` / ``refusal`` lists)."""
        if not isinstance(logprobs, Mapping):
            return
        merged = self.logprobs if self.logprobs is not None else {}
        for key in ("content", "refusal"):
            items = logprobs.get(key)
            if isinstance(items, list):
                merged.setdefault(key, []).extend(items)
        self.logprobs = merged or None

    def message(self) -> dict[str, Any]:
        """The assembled ``message`` of a ``chat.completion`` choice."""
        tools = [self.tools[i].to_dict() for i in sorted(self.tools)]
        content: str | None = "".join(self.content) if self.content else None
        if not content and tools:
            content = None
        out: dict[str, Any] = {"role": "assistant", "content": content}
        if self.refusal:
            out["refusal"] = "".join(self.refusal)
        if self.reasoning:
            out["reasoning_content"] = "".join(self.reasoning)
        if tools:
            out["tool_calls"] = tools
        return out


class OpenAIStreamParser(StreamParser):
    """Parses a ``chat.completion.chunk`` stream (docs/wire-formats.md §1.5 and §1.6).

    Each chunk is normalised (finish reasons mapped, tool-call fragments indexed, reasoning
    under ``reasoning_content``); chunks with neither choices nor usage (Azure's first) are
    skipped. ``[DONE]`` ends the stream; a stream that ends without it after every choice's
    ``finish_reason`` is complete too. The assembled body goes through the adapter's
    ``parse_response``, so a streamed answer equals the same answer unstreamed.
    """

    def __init__(
        self, provider: OpenAIProvider, call: Call, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(provider, call, headers)
        self._adapter = provider
        self._choices: dict[int, _ChoiceBuffer] = {}
        self._usage: dict[str, Any] | None = None
        self._fingerprint: str | None = None
        self._created: int | None = None

    def usage_so_far(self) -> Usage | None:
        """The usage chunk, which comes last (with ``stream_options.include_usage``)."""
        return _usage({"usage": self._usage}) if self._usage else None

    def feed(self, event: str | None, data: str) -> list[StreamChunk]:
        """The chunk of one ``data:`` event; ``[DONE]`` ends the stream.

        Raises:
            HarnessError: the event carries an ``error`` object (OpenAI, OpenRouter) or a
                choice finished with a failure reason (``error``,
                ``insufficient_system_resource``).
        """
        if data.strip() == "[DONE]":
            self.done = True
            return []
        payload = self.load(data)
        if not isinstance(payload, dict):
            raise self.call.error(
                InvalidResponseError, "stream chunk is not a JSON object", body=data
            )
        if payload.get("error"):
            raise self._adapter._embedded_error(self.call, payload, self.headers)
        if event == "error" or payload.get("object") == "error":  # the flat vLLM/Mistral shape
            raise self._adapter.parse_error(self.call, None, data.encode(), self.headers)
        self._header_fields(payload)
        usage_data = payload.get("usage")
        groq = payload.get("x_groq")
        if not usage_data and isinstance(groq, dict):
            usage_data = groq.get("usage")
        usage = None
        if isinstance(usage_data, dict) and usage_data:
            self._usage = usage_data
            usage = _usage({"usage": usage_data})
        raw_choices = payload.get("choices") or []
        choices = [self._choice(position, raw) for position, raw in enumerate(raw_choices)]
        if not choices and usage is None:
            return []  # Azure's prompt-filter chunk, or an empty keep-alive object
        return [self.chunk_of(choices, usage)]

    def _header_fields(self, payload: dict[str, Any]) -> None:
        if not self.id and payload.get("id"):
            self.id = str(payload["id"])
        if not self.model and payload.get("model"):
            self.model = str(payload["model"])
        if self._created is None and payload.get("created"):
            self._created = int(payload["created"])
            self.created = self._created
        if self._fingerprint is None and payload.get("system_fingerprint"):
            self._fingerprint = str(payload["system_fingerprint"])

    def _choice(self, position: int, raw: Any) -> ChunkChoice:
        index = raw.get("index")
        index = index if type(index) is int else position
        buf = self._choices.setdefault(index, _ChoiceBuffer())
        delta = raw.get("delta") or {}
        content = delta.get("content")
        reasoning = delta.get("reasoning_content")
        if reasoning is None:
            reasoning = delta.get("reasoning")
        if not reasoning and "reasoning_details" in delta:
            reasoning = _details_text(delta["reasoning_details"]) or reasoning
        if content is not None and not isinstance(content, str):
            content, thinking = _split_content(content)
            reasoning = thinking if reasoning is None else reasoning
        if reasoning is not None and not isinstance(reasoning, str):
            reasoning = content_text(reasoning)
        refusal = delta.get("refusal")
        refusal = None if refusal is None else str(refusal)
        out = Delta(
            role="assistant" if delta.get("role") == "assistant" else None,
            content=content,
            reasoning_content=reasoning or None,
            refusal=refusal,
            tool_calls=self._tool_fragments(buf, delta.get("tool_calls")),
        )
        if content is not None:
            buf.content.append(content)
        if reasoning:
            buf.reasoning.append(reasoning)
        if refusal:
            buf.refusal.append(refusal)
        if content or refusal:
            self.note_output(text=True)
        elif reasoning or out.tool_calls:
            self.note_output()
        buf.add_logprobs(raw.get("logprobs"))
        finish = raw.get("finish_reason")
        mapped: FinishReason | None = None
        if finish is not None and finish != "":  # "" on every chunk: not finished (Qianfan)
            buf.finish = str(finish)
            mapped, _ = _finish_reason(buf.finish, bool(buf.tools), self.call)
        return ChunkChoice(index, out, mapped, raw.get("logprobs"))

    def _tool_fragments(self, buf: _ChoiceBuffer, fragments: Any) -> list[DeltaToolCall] | None:
        """Merge tool-call fragments into ``buf``; return them indexed, OpenAI-shaped."""
        if not fragments:
            return None
        out: list[DeltaToolCall] = []
        for fragment in fragments:
            index = buf.tool_index(fragment)
            tool = buf.tools.setdefault(index, PartialToolCall())
            fn = fragment.get("function") or {}
            arguments = fn.get("arguments")
            if arguments is not None and not isinstance(arguments, str):
                arguments = json.dumps(arguments)  # a server that sends the arguments parsed
            partial = DeltaToolCall(index)
            if fragment.get("id") and not tool.id:
                tool.id = partial.id = str(fragment["id"])
                partial.type = "function"
            name = None
            if fn.get("name") and not tool.name:
                tool.name = name = str(fn["name"])
            if arguments:
                tool.arguments.append(arguments)
            else:
                arguments = None
            if name is not None or arguments is not None:
                partial.function = DeltaFunction(name, arguments)
            out.append(partial)
        return out

    def finished(self) -> bool:
        """``[DONE]`` arrived, or every choice (``n`` of them) has its ``finish_reason``.

        Servers that close the stream after the last ``finish_reason`` without ``[DONE]``
        (or whose connection then breaks) have sent the whole answer; only the usage chunk
        that may follow it is missing then.
        """
        if self.done:
            return True
        choices = self._choices
        return (
            len(choices) >= (self.call.params.get("n") or 1)
            and all(buf.finish is not None for buf in choices.values())
        )

    def finish(self) -> ModelResponse:
        """The ``chat.completion`` the chunks add up to, parsed as the unstreamed answer.

        Raises:
            APIConnectionError: neither ``[DONE]`` nor every choice's ``finish_reason``
                arrived.
            InvalidResponseError: the stream had no choices.
        """
        if not self.done and not self.finished():
            raise self.truncated()
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self._created,
            "model": self.model,
            "system_fingerprint": self._fingerprint,
            "choices": [
                {
                    "index": index,
                    "message": buf.message(),
                    "finish_reason": buf.finish,
                    "logprobs": buf.logprobs,
                }
                for index, buf in sorted(self._choices.items())
            ],
        }
        if self._usage is not None:
            body["usage"] = self._usage
        return self._adapter.parse_response(self.call, body, self.headers)


class _SingleChoiceProvider(OpenAIProvider):
    """The adapter with ``supports_n`` off, so ``n`` becomes parallel requests (unregistered)."""

    family: ClassVar[str] = ""
    supports_n: ClassVar[bool] = False


_SINGLE_CHOICE = _SingleChoiceProvider()


class AzureProvider(OpenAIProvider):
    """Azure OpenAI: deployment URLs with ``api-version``, or the ``/openai/v1`` surface.

    The base URL is the resource endpoint (``https://{resource}.openai.azure.com``); a base
    that already ends with ``/openai/deployments/{name}`` is used as is, and one that ends
    with ``/openai/v1`` selects the v1 API (no ``api-version``, deployment in ``model``).
    The key goes in the ``api-key`` header.
    """

    family: ClassVar[str] = "azure"

    def _chat_request(self, call: Call, extra: Mapping[str, Any] | None) -> httpx.Request:
        """Build the deployment's ``chat/completions`` request (``build_request``).

        Raises:
            ConfigError: no endpoint is configured.
        """
        spec = call.spec
        base = call.base_url()
        if not base:
            raise call.error(
                ConfigError,
                f"no endpoint for Azure model {spec.name!r}: set AZURE_OPENAI_ENDPOINT "
                "(e.g. https://my-resource.openai.azure.com) or api_base in the config",
            )
        body = self._body(call, spec.model)
        if extra:
            body.update(extra)
        url = _azure_url(call, base, body.pop("api_version", None), "/chat/completions")
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if call.api_key:
            headers["api-key"] = call.api_key
        return self._request(call, url, body, headers)

    def build_embedding_request(self, call: Call) -> httpx.Request:
        """Build the deployment's ``embeddings`` request (pure).

        ``{endpoint}/openai/deployments/{deployment}/embeddings?api-version=…``, or
        ``{endpoint}/openai/v1/embeddings`` on the v1 surface; the key goes in ``api-key``.

        Raises:
            ConfigError: no endpoint is configured.
        """
        base = call.base_url()
        if not base:
            raise call.error(
                ConfigError,
                f"no endpoint for Azure model {call.spec.name!r}: set AZURE_OPENAI_ENDPOINT "
                "(e.g. https://my-resource.openai.azure.com) or api_base in the config",
            )
        body = _embedding_body(call, call.spec.model)
        url = _azure_url(call, base, body.pop("api_version", None), "/embeddings")
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if call.api_key:
            headers["api-key"] = call.api_key
        return self._request(call, url, body, headers)


# --- helpers -------------------------------------------------------------------------------


def _azure_url(call: Call, base: str, version: Any, path: str) -> str:
    """The URL of an Azure ``path`` (``/chat/completions``, ``/embeddings``) for ``call``."""
    if base.endswith("/openai/v1"):
        return base + path
    version = version or call.spec.api_version or _env_api_version()
    if "/openai/deployments/" not in base:
        base = (
            _strip_suffix(base, "/openai")
            + "/openai/deployments/"
            + quote(call.spec.model, safe="")
        )
    return f"{base}{path}?api-version={quote(str(version), safe='')}"


_NOT_OPENAI_EMBEDDING = frozenset({"input_type", "task_type"})
"""Embedding parameters of other APIs (Cohere, Gemini) that OpenAI would refuse."""


def _embedding_body(call: Call, model: str) -> dict[str, Any]:
    """``{"model", "input", ...}``: the call's non-``None`` parameters, input first."""
    body: dict[str, Any] = {"model": model}
    for key, value in call.params.items():
        if value is not None and key not in _NOT_OPENAI_EMBEDDING:
            body[key] = value
    return body


def _index(value: Any, position: int) -> int:
    return value if type(value) is int else position


def _vector(value: Any) -> list[float]:
    """An embedding as floats: a JSON array, or base64 float32 (``encoding_format``)."""
    if isinstance(value, str):
        return decode_base64_embedding(value)
    if not isinstance(value, list):
        raise TypeError(f"an embedding is a list of numbers, got {type(value).__name__}")
    return [float(x) for x in value]


def _rename(body: dict[str, Any], old: str, new: str) -> None:
    """Move ``body[old]`` to ``body[new]``; an explicit ``new`` wins and ``old`` is dropped."""
    if old in body:
        value = body.pop(old)
        body.setdefault(new, value)


def _merge_headers(headers: dict[str, str], extra: Mapping[str, str]) -> None:
    """Add ``extra`` to ``headers``, replacing a header of any spelling (``authorization``)."""
    lowered = {name.lower(): name for name in headers}
    for name, value in extra.items():
        old = lowered.get(name.lower())
        if old is not None and old != name:
            del headers[old]
        headers[name] = value
        lowered[name.lower()] = name


def _env_api_version() -> str:
    """The Azure ``api-version`` from the environment, or the default."""
    return (
        os.environ.get("OPENAI_API_VERSION")
        or os.environ.get("AZURE_API_VERSION")
        or DEFAULT_AZURE_API_VERSION
    )


def _strip_suffix(text: str, suffix: str) -> str:
    return text[: -len(suffix)] if text.endswith(suffix) else text


def _remint_tool_ids(body: dict[str, Any]) -> None:
    """Replace tool-call ids Mistral rejects (not nine alphanumerics) with stable ones.

    The same foreign id always maps to the same new id, so an assistant's ``tool_calls`` and
    the ``tool`` messages answering them stay paired (and retries send the same body). Only
    messages that change are copied; the caller's messages are never modified.
    """
    messages = body["messages"]
    if not any("tool_calls" in m or "tool_call_id" in m for m in messages):
        return
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls")
        call_id = message.get("tool_call_id")
        if calls:
            message = {
                **message,
                "tool_calls": [
                    {**c, "id": _mistral_id(c.get("id"))} if isinstance(c, dict) else c
                    for c in calls
                ],
            }
        if isinstance(call_id, str):
            message = {**message, "tool_call_id": _mistral_id(call_id)}
        out.append(message)
    body["messages"] = out


def _mistral_id(value: Any) -> Any:
    if not isinstance(value, str) or _MISTRAL_TOOL_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:9]


def _split_content(content: Any) -> tuple[str, str | None]:
    """Text and thinking of a list-of-parts ``content`` (Mistral's reasoning models)."""
    if not isinstance(content, list):
        return content_text(content), None
    thinking = [
        content_text(part.get("thinking"))
        for part in content
        if isinstance(part, dict) and part.get("type") == "thinking"
    ]
    return content_text(content), ("".join(thinking) if thinking else None)


def _finish_reason(raw: str | None, has_tools: bool, call: Call) -> tuple[FinishReason, list[str]]:
    """A choice's finish reason; an empty or missing one is ``tool_calls`` beside tool calls.

    Some compatible hosts send ``finish_reason: ""`` (or none) with ``tool_calls``; the
    answer is a tool call all the same. A named reason is mapped as sent (OpenAI itself
    answers a forced ``tool_choice`` with ``stop``).
    """
    if not raw:
        return ("tool_calls" if has_tools else "stop"), []
    return map_finish_reason(raw, every_finish_reason(), call)


def _details_text(details: Any) -> str | None:
    """The reasoning text of a ``reasoning_details`` list (OpenRouter and other hosts).

    ``reasoning.text`` parts give their ``text``, ``reasoning.summary`` parts their
    ``summary``; ``reasoning.encrypted`` parts (and anything else) carry no readable text.
    ``None`` when no part has text. A host that sends ``reasoning`` as well (OpenRouter
    repeats the same text there) is read from ``reasoning``; this is the fallback.
    """
    if not isinstance(details, list):
        return None
    parts: list[str] = []
    for part in details:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        value = (
            part.get("text")
            if kind == "reasoning.text"
            else part.get("summary")
            if kind == "reasoning.summary"
            else None
        )
        if isinstance(value, str) and value:
            parts.append(value)
    return "".join(parts) if parts else None


def _tool_call(data: dict[str, Any]) -> ToolCall:
    """An OpenAI tool call; mints an id for servers that send none."""
    call = ToolCall.from_dict(data)
    if not call.id:
        call.id = new_id("call_")
    return call


def _usage(data: dict[str, Any]) -> Usage:
    """Token counts from ``usage`` (or Groq's ``x_groq.usage``); zeros when there are none."""
    usage = data.get("usage")
    if not usage:
        groq = data.get("x_groq")
        usage = groq.get("usage") if isinstance(groq, dict) else None
        if not usage:
            return Usage()
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    total = usage.get("total_tokens")
    prompt_details = usage.get("prompt_tokens_details")
    cached = prompt_details.get("cached_tokens") if prompt_details else None
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")
    completion_details = usage.get("completion_tokens_details")
    reasoning = completion_details.get("reasoning_tokens") if completion_details else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion if total is None else int(total),
        cached_tokens=None if cached is None else int(cached),
        reasoning_tokens=None if reasoning is None else int(reasoning),
    )


def _dump(data: Any) -> str:
    return json.dumps(data, separators=_JSON_SEPARATORS, ensure_ascii=False, default=str)


def _error_object(body: bytes) -> dict[str, Any] | None:
    """The dict describing the error in an OpenAI-style body, or ``None`` if it has none."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        return err
    if isinstance(err, str):
        return {"message": err, "type": data.get("type"), "code": data.get("code")}
    if "message" in data or data.get("object") == "error":
        return data
    return None


def _error_fields(err: dict[str, Any]) -> tuple[str, str | None, Any]:
    """Message, the most telling code (a named code, else the type, else a number), metadata."""
    message = err.get("message")
    message = "" if message is None else str(message)
    metadata = err.get("metadata")
    if isinstance(metadata, dict):
        upstream = metadata.get("raw")
        if upstream:
            name = metadata.get("provider_name") or "upstream"
            text = upstream if isinstance(upstream, str) else _dump(upstream)
            message = f"{message} ({name}: {text[:300]})" if message else f"{name}: {text[:300]}"
    code = err.get("code")
    kind = err.get("type")
    chosen: str | None
    if isinstance(code, str) and code and not code.isdigit():
        chosen = code
    elif isinstance(kind, str) and kind:
        chosen = kind
    elif code is not None:
        chosen = str(code)
    else:
        chosen = None
    return message, chosen, metadata


def _is_content_filter(err: dict[str, Any] | None, status: int | None, metadata: Any) -> bool:
    """Azure's filtered prompt (``content_filter`` codes) or OpenRouter's moderation 403."""
    if err is None:
        return False
    if _code_in(err, _CONTENT_FILTER_CODES):
        return True
    inner = err.get("innererror")
    if isinstance(inner, dict) and _code_in(inner, _CONTENT_FILTER_CODES):
        return True
    return status == 403 and isinstance(metadata, dict) and "flagged_input" in metadata


def _code_in(err: dict[str, Any], codes: frozenset[str]) -> bool:
    code = err.get("code")
    return isinstance(code, str) and code in codes
