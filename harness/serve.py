"""``harness serve``: the three call shapes over an OpenAI-compatible HTTP API.

A plain ASGI 3 application (stdlib and our own code only; any ASGI server runs it, the CLI
uses uvicorn) over one ``Harness``, created at lifespan startup (or on the first request
under a server without lifespan) inside the server's event loop and closed at shutdown:

* ``POST /v1/chat/completions`` (also ``/chat/completions``): ``"model": "fast"`` is one
  completion (``"stream": true``: an SSE stream ending in ``data: [DONE]``);
  ``"model": "a,b"`` or ``["a", "b"]`` is all-responses (a JSON array aligned with the
  list, an OpenAI error object in a failed slot); with ``"fastest_response": true`` it is a
  race (one completion, header ``x-harness-fastest-response``; with ``"stream": true`` the
  race is on the first output and the winner's stream is relayed as it arrives).
* ``GET /v1/models`` (also ``/models``): the configured aliases; ``GET /health``: the version.

Errors are OpenAI error JSON (``{"error": {"message", "type", "param", "code"}}``) with the
status ``error_status`` gives. A client that disconnects cancels its upstream calls at
once. With ``record_dir`` every answer is appended to ``record_dir/results.jsonl`` as
``harness.results`` records (shapes ``completion``, ``all``, ``race``).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._version import __version__
from harness.config import HarnessConfig, load_config
from harness.errors import (
    AllModelsFailed,
    APIConnectionError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    ConfigError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplayMissError,
    ServiceUnavailableError,
    TimeoutError,
    get_logger,
    scrub,
)
from harness.paths import DEFAULT_CACHE_PATH, DEFAULT_LIMITS_PATH
from harness.results import JsonlWriter, make_record
from harness.runner import Harness
from harness.types import ModelResponse, StreamChunk

if TYPE_CHECKING:
    from harness.providers.streams import ResponseStream

__all__ = [
    "API_KEY_ENV",
    "MAX_BODY_BYTES",
    "ASGIApp",
    "FASTEST_HEADER",
    "TEST_ID_HEADER",
    "ServeApp",
    "create_app",
    "error_body",
    "error_status",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

API_KEY_ENV = "HARNESS_SERVE_API_KEY"
"""The environment variable read for the server's key when ``api_key`` is not given."""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""The largest request body accepted (a larger one gets 413)."""

FASTEST_HEADER = "x-harness-fastest-response"
"""The race's response header naming the winner."""
TEST_ID_HEADER = "x-harness-test-id"
"""A request header naming the client's test; its records get ``<value>[<model>]`` as their
``test_id`` (default: ``serve::`` and a hash of the messages, so a prompt asked again is a
repeat of the same item, and two runs of a suite compare item by item)."""

_case: contextvars.ContextVar[str] = contextvars.ContextVar("harness_serve_case", default="")

# Body fields a client may not set: they choose where our provider keys go, or override
# the server's own settings.
_REFUSED_FIELDS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "extra_headers",
        "deployment_id",
        "custom_llm_provider",
        "max_response_bytes",
        "cache",
    }
)
_OWN_FIELDS = frozenset({"model", "messages", "stream", "fastest_response"})
_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MODELS_PATHS = frozenset({"/v1/models", "/models"})
_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

_log = get_logger("harness.serve")


class _Disconnected(Exception):
    """The client went away; nothing more is sent."""


class _Refused(Exception):
    """A request answered with an error before any call: status, message, param, code."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


# --- errors as HTTP ------------------------------------------------------------------------

# Most specific first: the first class an error is an instance of gives its status.
_STATUS_OF: tuple[tuple[type[HarnessError], int], ...] = (
    (RateLimitError, 429),
    (BudgetExceededError, 402),
    (ReplayMissError, 503),
    (AuthenticationError, 502),  # the provider refused *our* key: not the client's fault
    (PermissionDeniedError, 502),
    (BillingError, 502),
    (NotFoundError, 404),
    (BadRequestError, 400),
    (ConfigError, 400),
    (TimeoutError, 504),
    (BadGatewayError, 502),
    (ServiceUnavailableError, 503),
    (InternalServerError, 502),
    (APIConnectionError, 502),
    (InvalidResponseError, 502),
)
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_status(error: BaseException) -> int:
    """The HTTP status the server answers ``error`` with.

    The client's own mistakes are 4xx (an upstream 400/413/422 keeps its status); an
    upstream rate limit is 429; the provider refusing our key, a broken connection or a bad
    body is 502, an overloaded provider 503, a timeout 504; a replay miss is 503 and the
    cost cap 402. ``AllModelsFailed`` gets its errors' common status, else 502. Anything
    that is not a ``HarnessError`` is 500.
    """
    if isinstance(error, AllModelsFailed):
        statuses = {error_status(e) for e in error.errors.values()}
        return statuses.pop() if len(statuses) == 1 else 502
    if isinstance(error, BadRequestError) and error.status in (413, 422):
        return error.status
    for klass, status in _STATUS_OF:
        if isinstance(error, klass):
            return status
    return 502 if isinstance(error, HarnessError) else 500


def error_body(
    error: BaseException | str,
    status: int | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error object for ``error`` (a message, or an exception; keys scrubbed)."""
    if isinstance(error, str):
        message = error
    elif isinstance(error, HarnessError):
        message = str(error)
        code = code or type(error).__name__
    else:
        message = "internal server error"
    if status is not None:
        chosen = status
    else:
        chosen = 400 if isinstance(error, str) else error_status(error)
    return {
        "error": {
            "message": scrub(message),
            "type": _TYPES.get(chosen, "api_error"),
            "param": param,
            "code": code,
        }
    }


def _retry_after(error: BaseException) -> float | None:
    if isinstance(error, AllModelsFailed):
        waits = [w for w in map(_retry_after, error.errors.values()) if w is not None]
        return min(waits) if waits else None
    return error.retry_after if isinstance(error, RateLimitError) else None


# --- the application -------------------------------------------------------------------------


class ServeApp:
    """The ASGI application ``create_app`` returns (see the module docstring)."""

    def __init__(
        self,
        config: HarnessConfig,
        *,
        api_key: str | None,
        cache_mode: str | None,
        cache_path: str | os.PathLike[str] | None,
        record_dir: str | os.PathLike[str] | None,
        harness: Harness | None,
        max_cost: float | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.config = config
        self._api_key = api_key.encode() if api_key else None
        self._cache_mode = cache_mode
        self._cache_path = cache_path
        self._harness = harness
        self._owns_harness = harness is None
        self._max_cost = max_cost
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self._writer: JsonlWriter | None = None
        self.session_id = uuid.uuid4().hex[:12]
        self.max_body_bytes = max_body_bytes
        self._inflight: set[asyncio.Task[Any]] = set()
        self._closing = False

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def harness(self) -> Harness:
        """The ``Harness`` that makes the calls (created on first use)."""
        if self._harness is None:
            cache: str | os.PathLike[str] | None = self._cache_path
            if cache is None and self._cache_mode not in (None, "off") and not self.config.cache:
                cache = DEFAULT_CACHE_PATH
            budget = None
            if self._max_cost is not None:
                from harness.limits import CostBudget

                path = self.config.limits.path or DEFAULT_LIMITS_PATH
                budget = CostBudget(self._max_cost, path, key=f"serve-{self.session_id}")
            self._harness = Harness(
                self.config, cache=cache, cache_mode=self._cache_mode, budget=budget
            )
        return self._harness

    def _record_writer(self) -> JsonlWriter | None:
        if self.record_dir is None:
            return None
        if self._writer is None:
            self._writer = JsonlWriter(self.record_dir / "results.jsonl")
            self._writer.write(
                {
                    "kind": "run",
                    "session": self.session_id,
                    "started": time.time(),
                    "args": ["harness", "serve"],
                    "harness_version": __version__,
                }
            )
        return self._writer

    def cancel_inflight(self) -> None:
        """Cancel every call in flight (the server is stopping); their clients get 503."""
        self._closing = True
        for task in list(self._inflight):
            task.cancel()

    async def startup(self) -> None:
        """Make the ``Harness`` and open the records file."""
        self.harness  # noqa: B018 - created here, inside the server's loop
        self._record_writer()

    async def shutdown(self) -> None:
        """Cancel calls in flight, wait for them, close the HTTP clients, store and records."""
        self.cancel_inflight()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._harness is not None and self._owns_harness:
            await self._harness.aclose()
            self._harness.close()
            cache = self._harness.cache if self._harness._cache_resolved else None
            if cache is not None:
                cache.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        # websocket: not served (the server closes it)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server
                    await send({"type": "lifespan.startup.failed", "message": scrub(str(exc))})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- HTTP ------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        headers: dict[bytes, bytes] = {k.lower(): v for k, v in scope.get("headers", [])}
        out = _Tracked(send)
        try:
            if path == "/health":
                await _send_json(out, 200, {"status": "ok", "version": __version__})
                return
            self._authorize(headers)
            if path in _MODELS_PATHS:
                if method != "GET":
                    raise _Refused(405, f"{method} is not allowed on {path}; use GET")
                await _send_json(out, 200, self._models_list())
            elif path in _CHAT_PATHS:
                if method != "POST":
                    raise _Refused(405, f"{method} is not allowed on {path}; use POST")
                body = await self._read_body(headers, receive)
                named = headers.get(TEST_ID_HEADER.encode(), b"").decode("latin-1").strip()
                await self._chat(body, receive, out, scrub(named[:200]))
            else:
                raise _Refused(404, f"no route {path}", code="unknown_url")
        except _Refused as refused:
            extra = [(b"www-authenticate", b"Bearer")] if refused.status == 401 else []
            answer = error_body(
                refused.message, refused.status, param=refused.param, code=refused.code
            )
            await out.fail(refused.status, answer, extra)
        except _Disconnected:
            return
        except Exception as exc:  # noqa: BLE001 - a bug of ours: a bare 500, no details
            _log.error(
                "unexpected error in harness serve: %s: %s", type(exc).__name__, scrub(str(exc))
            )
            await out.fail(500, error_body(exc, 500))

    def _authorize(self, headers: dict[bytes, bytes]) -> None:
        if self._api_key is None:
            return
        given = headers.get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._api_key):
            raise _Refused(
                401,
                "invalid or missing API key (Authorization: Bearer <key>)",
                code="invalid_api_key",
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(413, f"request body is larger than {limit} bytes", code="too_large")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"request body is larger than {limit} bytes", code="too_large")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    def _models_list(self) -> dict[str, Any]:
        created = 0
        return {
            "object": "list",
            "data": [
                {"id": alias, "object": "model", "created": created, "owned_by": spec.provider}
                for alias, spec in self.config.models.items()
            ],
        }

    # --- chat completions ------------------------------------------------------------------

    def _parse(self, body: bytes) -> tuple[list[str], bool, bool, list[Any], dict[str, Any]]:
        """models, list form, race, messages and the remaining params of a request body."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            raise _Refused(400, "the request body is not JSON", code="invalid_json") from None
        if not isinstance(data, dict):
            raise _Refused(400, "the request body must be a JSON object", code="invalid_json")
        refused = sorted(_REFUSED_FIELDS & data.keys())
        if refused:
            raise _Refused(
                400,
                f"field {refused[0]!r} is set by the server, not by requests",
                param=refused[0],
                code="invalid_value",
            )
        raw_model = data.get("model")
        if isinstance(raw_model, str):
            models = [m.strip() for m in raw_model.split(",") if m.strip()]
            listed = "," in raw_model
        elif isinstance(raw_model, list) and all(isinstance(m, str) for m in raw_model):
            models = [m.strip() for m in raw_model if m.strip()]
            listed = True
        else:
            models, listed = [], False
        if not models:
            raise _Refused(
                400,
                "'model' must be a model name, a comma-separated list or a list of names",
                param="model",
                code="invalid_value",
            )
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Refused(
                400, "'messages' must be a non-empty list", param="messages", code="invalid_value"
            )
        for key in ("stream", "fastest_response"):
            if key in data and data[key] is not None and not isinstance(data[key], bool):
                raise _Refused(
                    400, f"{key!r} must be true or false", param=key, code="invalid_value"
                )
        for model in models:
            self._check_model(model)
        params = {k: v for k, v in data.items() if k not in _OWN_FIELDS}
        return (
            models,
            listed,
            bool(data.get("fastest_response")),
            messages,
            {**params, "stream": bool(data.get("stream"))},
        )

    def _check_model(self, model: str) -> None:
        try:
            self.harness.resolve(model)
        except HarnessError as exc:
            known = ", ".join(self.config.models) or "(none configured)"
            raise _Refused(
                404,
                f"unknown model {model!r} ({scrub(exc.message)}); configured models: {known}",
                param="model",
                code="model_not_found",
            ) from None

    async def _chat(self, body: bytes, receive: Receive, out: _Tracked, case: str) -> None:
        models, listed, race, messages, params = self._parse(body)
        if self.record_dir is not None:
            if not case:
                text = json.dumps(messages, sort_keys=True, default=str).encode()
                case = "serve::" + hashlib.sha256(text).hexdigest()[:12]
            _case.set(case)  # the call's task (made below) sees it
        stream = params.pop("stream")
        work: Coroutine[Any, Any, None]
        if race:
            if stream:
                work = self._race_stream(models, messages, params, out)
            else:
                work = self._race(models, messages, params, out)
        elif listed:
            work = self._all(models, messages, params, out)
        elif stream:
            work = self._stream(models[0], messages, params, out)
        else:
            work = self._one(models[0], messages, params, out)
        await self._guarded(work, receive, out)

    async def _guarded(
        self, work: Coroutine[Any, Any, None], receive: Receive, out: _Tracked
    ) -> None:
        """Run ``work`` (which sends the answer) until it ends or the client disconnects."""
        task = asyncio.ensure_future(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            watcher.cancel()
            raise
        if not task.done():  # the client went away: stop the upstream calls now
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        if task.cancelled():
            if self._closing:
                await out.fail(503, error_body("the server is shutting down", 503, code="shutdown"))
            return
        exc = task.exception()
        if exc is None or isinstance(exc, _Disconnected):
            return
        if isinstance(exc, _Refused):
            await out.fail(
                exc.status, error_body(exc.message, exc.status, param=exc.param, code=exc.code)
            )
            return
        if isinstance(exc, HarnessError):
            await self._send_error(out, exc)
            return
        _log.error("unexpected error in harness serve: %s: %s", type(exc).__name__, scrub(str(exc)))
        await out.fail(500, error_body(exc, 500))

    async def _send_error(self, out: _Tracked, error: HarnessError) -> None:
        status = error_status(error)
        await out.fail(status, error_body(error, status), _retry_after_header(error, status))

    async def _one(
        self, model: str, messages: list[Any], params: dict[str, Any], send: Send
    ) -> None:
        try:
            response = await self.harness.acompletion(model, messages, **params)
        except HarnessError as exc:
            self._record(model, exc, "completion", messages)
            raise
        self._record(model, response, "completion", messages)
        await _send_json(send, 200, _completion_json(response))

    async def _all(
        self, models: list[str], messages: list[Any], params: dict[str, Any], send: Send
    ) -> None:
        results = await self.harness.abatch_completion_models_all_responses(
            models, messages, **params
        )
        slots: list[dict[str, Any]] = []
        for model, result in zip(models, results, strict=True):
            self._record(model, result, "all", messages)
            if isinstance(result, ModelResponse):
                slots.append(_completion_json(result))
            else:
                slots.append(error_body(result))
        if any(isinstance(r, ModelResponse) for r in results):
            await _send_json(send, 200, slots)
            return
        failure = AllModelsFailed(
            (m, r) for m, r in zip(models, results, strict=True) if isinstance(r, BaseException)
        )
        status = error_status(failure)
        body = {**error_body(failure, status), "responses": slots}
        await _send_json(send, status, body, _retry_after_header(failure, status))

    async def _race(
        self, models: list[str], messages: list[Any], params: dict[str, Any], send: Send
    ) -> None:
        try:
            winner: ModelResponse = await self.harness.abatch_completion_models(
                models, messages, **params
            )
        except AllModelsFailed as exc:
            for model, error in exc.errors.items():
                self._record(model, error, "race", messages)
            raise
        self._record(winner.harness.model or models[0], winner, "race", messages)
        await _send_json(send, 200, _completion_json(winner), _winner_header(winner))

    async def _race_stream(
        self, models: list[str], messages: list[Any], params: dict[str, Any], send: Send
    ) -> None:
        """Race on the first output, then relay the winner's stream as it arrives."""
        streams = [self.harness.astream(m, messages, **params) for m in models]
        try:
            index, first = await _first_output(models, streams)
        except AllModelsFailed as exc:
            for model, error in exc.errors.items():
                self._record(model, error, "race", messages)
            raise
        await self._relay(
            streams[index],
            first,
            models[index],
            "race",
            messages,
            send,
            [(FASTEST_HEADER.encode(), models[index].encode("utf-8", "replace"))],
        )

    async def _stream(
        self, model: str, messages: list[Any], params: dict[str, Any], send: Send
    ) -> None:
        try:
            stream = self.harness.astream(model, messages, **params)
            first: list[StreamChunk] = []
            async for chunk in stream:  # the first chunk: an error before it gets a status
                first.append(chunk)
                break
        except HarnessError as exc:
            self._record(model, exc, "completion", messages)
            raise
        await self._relay(stream, first, model, "completion", messages, send, [])

    async def _relay(
        self,
        stream: ResponseStream,
        first: list[StreamChunk],
        model: str,
        shape: str,
        messages: list[Any],
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Send ``first``, then the rest of ``stream``, as SSE ending in ``data: [DONE]``."""
        await send(
            {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + headers}
        )
        try:
            for chunk in first:
                await _send_event(send, chunk.to_dict())
            async for chunk in stream:
                await _send_event(send, chunk.to_dict())
        except HarnessError as exc:  # mid-stream: the status is sent; say it in the stream
            self._record(model, exc, shape, messages)
            await _send_event(send, error_body(exc))
            await _send_event(send, None)
            return
        finally:
            await stream.aclose()
        if stream.response is not None:
            self._record(model, stream.response, shape, messages)
        await _send_event(send, None)

    def _record(
        self, model: str, result: ModelResponse | BaseException, shape: str, messages: list[Any]
    ) -> None:
        writer = self._record_writer()
        if writer is None:
            return
        try:
            resolved: str | None = self.harness.resolve(model).full_name
        except HarnessError:
            resolved = None
        record = make_record(
            test_id=f"{_case.get() or 'serve'}[{model}]",
            model=model,
            result=result,
            shape=shape,
            messages=[m for m in messages if isinstance(m, dict)],
            resolved_model=resolved,
        )
        writer.write({"kind": "result", "session": self.session_id, **record})


def create_app(
    config: HarnessConfig | str | os.PathLike[str] | None = None,
    *,
    api_key: str | None = None,
    cache_mode: str | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    record_dir: str | os.PathLike[str] | None = None,
    harness: Harness | None = None,
    max_cost: float | None = None,
) -> ServeApp:
    """The ASGI application serving ``config``'s models (see the module docstring).

    Args:
        config: a ``HarnessConfig``, a path to ``harness.toml``/``pyproject.toml``, or
            ``None`` to look for one in the working directory (read now, so a bad file
            fails here).
        api_key: the key every request must send as ``Authorization: Bearer <key>``;
            default ``HARNESS_SERVE_API_KEY``; none: no auth.
        cache_mode: the response store's mode (``use``, ``replay``, ``record``, …); with a
            mode but no ``cache_path`` and no ``[cache]`` table, ``.harness/cache.sqlite``.
        cache_path: the response store's SQLite file.
        record_dir: append a ``results.jsonl`` record per answer there.
        harness: use this ``Harness`` (not closed at shutdown) instead of making one.
        max_cost: the cost cap in USD for the server's life (``CostBudget``, in the
            ``[limits] path`` file): once spent, calls fail with 402 before sending.
    """
    if harness is not None:
        loaded = harness.config
    elif isinstance(config, HarnessConfig):
        loaded = config
    else:
        loaded = load_config(config)
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    if cache_mode is not None:
        from harness.cache import parse_mode

        parse_mode(cache_mode)  # a bad mode fails now, not on the first request
    return ServeApp(
        loaded,
        api_key=api_key,
        cache_mode=cache_mode,
        cache_path=cache_path,
        record_dir=record_dir,
        harness=harness,
        max_cost=max_cost,
    )


# --- wire helpers ----------------------------------------------------------------------------


def _completion_json(response: ModelResponse) -> dict[str, Any]:
    data = response.to_dict()
    data.setdefault("object", "chat.completion")
    return data


def _winner_header(winner: ModelResponse) -> list[tuple[bytes, bytes]]:
    name = winner.harness.race.winner if winner.harness.race is not None else None
    name = name or winner.harness.model or ""
    return [(FASTEST_HEADER.encode(), name.encode("utf-8", "replace"))]


async def _until_output(stream: ResponseStream) -> list[StreamChunk]:
    """Read ``stream`` up to its first chunk with output (or its end); those chunks."""
    chunks: list[StreamChunk] = []
    async for chunk in stream:
        chunks.append(chunk)
        if stream.ttft_ms is not None:
            break
    return chunks


async def _first_output(
    models: list[str], streams: list[ResponseStream]
) -> tuple[int, list[StreamChunk]]:
    """A race on the first output: the winner's index and its chunks so far.

    The others are cancelled and closed (their connections too) before this returns, and
    when it is cancelled. ``AllModelsFailed`` with every error when none produces output.
    """
    tasks = [asyncio.ensure_future(_until_output(s)) for s in streams]
    errors: dict[str, BaseException] = {}
    winner: int | None = None
    try:
        pending: set[asyncio.Future[list[StreamChunk]]] = set(tasks)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for i, task in enumerate(tasks):
                if task not in done:
                    continue
                exc = task.exception()
                if exc is not None:
                    errors[models[i]] = exc
                elif winner is None:
                    winner = i
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for i, stream in enumerate(streams):
            if i != winner:
                await stream.aclose()
    if winner is None:
        raise AllModelsFailed({m: errors[m] for m in models if m in errors})
    return winner, tasks[winner].result()


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _send_json(
    send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(payload)).encode()), *(extra or [])],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _Tracked:
    """An ASGI ``send`` that knows whether the response has started and ended."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.ended = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif not message.get("more_body", False):
            self.ended = True
        await self._send(message)

    async def fail(
        self, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Send an error answer; once the response has started, only end it."""
        try:
            if not self.started:
                await _send_json(self, status, body, extra)
            elif not self.ended:
                await self({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # noqa: BLE001 - the client is gone: nothing more to send
            return


def _retry_after_header(error: BaseException, status: int) -> list[tuple[bytes, bytes]]:
    wait = _retry_after(error) if status == 429 else None
    if wait is None:
        return []
    return [(b"retry-after", str(max(0, math.ceil(wait))).encode())]


async def _send_event(send: Send, data: Any) -> None:
    text = "[DONE]" if data is None else json.dumps(data, ensure_ascii=False, default=str)
    await send(
        {
            "type": "http.response.body",
            "body": f"data: {text}\n\n".encode(),
            "more_body": data is not None,
        }
    )
