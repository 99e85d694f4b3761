"""The async core: one call with retries, and the three call shapes; plus their sync twins.

``Harness`` holds the config, one HTTP client per event loop, and per-model concurrency
limits. Its methods carry LiteLLM's names and signatures with the semantics LiteLLM's docs
promise:

* ``batch_completion`` — many conversations, one model; results in input order, a failed
  call is its error object in its slot, concurrency bounded by ``max_workers`` and the
  model's ``max_concurrency``.
* ``batch_completion_models`` (race) — one conversation, many models; the first
  *successful* answer wins and the other calls are cancelled at once (their sockets
  closed); if every model fails, ``AllModelsFailed`` carries each model's error.
* ``batch_completion_models_all_responses`` — one entry per model, in the order of
  ``models``, errors in place.
* ``embedding`` — one text or a batch of texts to an embeddings model, split into the
  provider's batch size when it has one (each batch is one call: limits, retries, budget
  and the response store apply to it), the vectors re-joined in input order.

Every argument is checked (models resolved, messages validated, keys found) before the
first request is sent, so bad input fails fast with one precise error.

This module owns planning a call (``_plan``: params split, endpoint and key, timeout and
retries), the attempt loop with retries, timeouts, limits, budget and the response store,
the batch and all-responses shapes, background submission (``submit_many``) and the sync
twins. The race's own logic is ``harness.race``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import ipaddress
import os
import time
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import httpx

from harness._sync import run_sync, submit
from harness.cache import (
    CachedEntry,
    CacheMode,
    ResponseCache,
    is_cacheable_error,
    parse_mode,
)
from harness.cache_keys import key_for_call
from harness.config import HarnessConfig, ModelSpec, load_config
from harness.embeddings import (
    EmbeddingResponse,
    check_dimensions,
    embedding_inputs,
    merge_responses,
)
from harness.errors import (
    APIConnectionError,
    BudgetExceededError,
    ConfigError,
    HarnessError,
    RateLimitError,
    secret,
    secret_headers,
)
from harness.errors import TimeoutError as HarnessTimeoutError
from harness.http import ClientCache, RawStream, Send, TransportKind
from harness.limits import BudgetHold, CostBudget, SharedLimiter
from harness.messages import validate_conversations, validate_messages
from harness.paths import DEFAULT_CACHE_PATH, DEFAULT_LIMITS_PATH
from harness.prices import DEFAULT_MAX_OUTPUT_TOKENS, estimate_prompt_tokens
from harness.providers.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Call,
    get_provider,
    no_embeddings,
)
from harness.providers.streams import ResponseStream, response_chunks
from harness.race import Entrant, Race
from harness.retry import RetryPolicy
from harness.types import Contestant, ModelResponse, StreamChunk, Usage

__all__ = ["Harness", "Result", "get_default_harness", "set_default_harness"]

Result = ModelResponse | HarnessError
"""One slot of a batch or all-responses result: the answer or the error."""

OnResult = Callable[[int, Result], None]

# Parameters the harness consumes; everything else goes to the provider.
_HARNESS_PARAMS = frozenset(
    {
        "api_key",
        "api_base",
        "cache",
        "harness_repeat",
        "base_url",
        "api_version",
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        "max_response_bytes",
        "mock_response",
        "mock_timeout",
        "mock_latency_ms",
        "mock_ttft_ms",
        "extra_headers",
        "deployment_id",
        "custom_llm_provider",
    }
)
_OFFLINE = frozenset({"echo", "mock", "wordllama"})
_CHAT_ONLY = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
        "frequency_penalty",
        "presence_penalty",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "thinking",
    }
)
"""A model's configured chat parameters that an embeddings call of the same model drops."""

Answer = ModelResponse | EmbeddingResponse
"""What one planned call returns: a completion or the embeddings of one batch."""


@dataclass(slots=True)
class _Plan:
    """A prepared call plus the runner settings that apply to it."""

    call: Call
    family: str
    timeout: float
    policy: RetryPolicy
    cache_mode: CacheMode = CacheMode.OFF
    repeat: int = 0
    stream: bool = False
    """Stream under the hood (measures time to first token); the caller still gets the
    assembled answer."""
    on_first_token: Callable[[], object] | None = None
    """Called once when the streamed answer delivers its first output (races use it)."""
    live: ResponseStream | None = None
    """The stream of the current attempt, for race telemetry and the response store."""
    record: bool = False
    """The answer will be stored: keep a stream's chunks with their timing and raw bytes."""
    embedding: bool = False
    """An embeddings call: the texts are ``call.params["input"]``, the answer an
    ``EmbeddingResponse`` (its own cache keys)."""
    hold: BudgetHold | None = None
    """The cost cap's reservation of the attempt in flight, until ``_settle`` spends it."""

    def with_messages(self, messages: list[dict[str, Any]]) -> _Plan:
        """The same settings for another conversation (a batch resolves them once)."""
        c = self.call
        call = Call(
            c.spec,
            messages,
            c.params,
            c.api_key,
            c.api_base,
            c.headers,
            0,
            c.mock_response,
            max_response_bytes=c.max_response_bytes,
        )
        return _Plan(
            call, self.family, self.timeout, self.policy, self.cache_mode, self.repeat, self.stream
        )


class Harness:
    """The configured entry point: config, HTTP client per loop, per-model limits.

    Args:
        config: a ``HarnessConfig``, a path to ``harness.toml``/``pyproject.toml``, a dict in
            the TOML's shape, or ``None`` to look for a config file in the working directory
            (read lazily, on first use).
        transport: ``"auto"`` (the lean transport, or httpx's when a proxy is configured),
            ``"lean"``, ``"httpx"``, or an ``httpx.AsyncBaseTransport`` instance (tests pass
            ``httpx.MockTransport``). Default: ``HARNESS_TRANSPORT`` or ``auto``.
        timeout: seconds per attempt, overriding the config.
        retries: retries per call, overriding the config.
        retry_policy: backoff settings (the retry count still comes from config/params).
        max_concurrency: the per-model limit for network models that configure none
            (offline models are unlimited unless configured).
        offline: refuse, before sending, any call that would use the network. With a
            response store that reads (``use``, ``replay``, ``refresh-failed``), stored
            answers still replay (no key needed) and only misses are refused.
        cache: a ``ResponseCache`` or the path of its SQLite file; default: the config's
            ``[cache] path`` when it has a ``[cache]`` table, else no cache.
        cache_mode: ``use`` (default), ``replay``, ``record``, ``refresh-failed`` or ``off``;
            the config's ``[cache] mode`` when not given. A call's ``cache=`` overrides it.
        budget: a ``CostBudget``: each call reserves its estimated cost before it is sent
            (``estimate_cost``); a call whose estimate does not fit fails with
            ``BudgetExceededError``, unsent (replayed answers still come back). Offline
            models are not counted.
        limits: a ``SharedLimiter`` or the path of its SQLite file: per-model concurrency,
            ``rpm`` and ``tpm`` shared by every process using it (pytest-xdist workers). By
            default limits are per event loop, and a shared file is opened (the config's
            ``[limits] path``, else ``.harness/limits.sqlite``) only when a model configures
            ``rpm``/``tpm``.
        sleep: how to wait between retries (default ``asyncio.sleep``); a test passes a
            function that records the delays and returns at once.
    """

    def __init__(
        self,
        config: HarnessConfig | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        transport: TransportKind | httpx.AsyncBaseTransport | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        offline: bool = False,
        cache: ResponseCache | str | os.PathLike[str] | None = None,
        cache_mode: str | CacheMode | None = None,
        limits: SharedLimiter | str | os.PathLike[str] | None = None,
        budget: CostBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._config_arg = config
        self._config: HarnessConfig | None = config if isinstance(config, HarnessConfig) else None
        self._clients = ClientCache(transport or ClientCache.env_transport())
        self._timeout = timeout
        self._retries = retries
        self._policy = retry_policy or RetryPolicy()
        self._max_concurrency = max_concurrency
        self.offline = offline
        self._cache_arg = cache
        self._cache_mode_arg = parse_mode(cache_mode) if cache_mode is not None else None
        self._cache: ResponseCache | None = None
        self._cache_resolved = False
        self.budget = budget
        self._estimate_scale: dict[str, float] = {}
        """Per model, how far its calls have cost beyond their estimates (>= 1)."""
        self._shared: SharedLimiter | None = limits if isinstance(limits, SharedLimiter) else None
        self._limits_path = None if isinstance(limits, SharedLimiter) else limits
        if self._limits_path is not None:
            self._shared = SharedLimiter(self._limits_path)
        self._sleep: Callable[[float], Awaitable[None]] = sleep or asyncio.sleep
        self._limits: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()

    # --- configuration ------------------------------------------------------------------

    @property
    def config(self) -> HarnessConfig:
        """The config (loaded on first access when given as a path or found in the cwd)."""
        if self._config is None:
            arg = self._config_arg
            if isinstance(arg, Mapping):
                self._config = HarnessConfig.from_dict(arg)
            elif isinstance(arg, HarnessConfig):
                self._config = arg
            else:
                self._config = load_config(arg)
        return self._config

    @property
    def cache(self) -> ResponseCache | None:
        """The response store, opened on first use (None when caching is not set up)."""
        if not self._cache_resolved:
            arg = self._cache_arg
            table = self.config.cache
            if arg is None and table is not None:
                arg = table.path or DEFAULT_CACHE_PATH
            if isinstance(arg, ResponseCache) or arg is None:
                self._cache = arg
            else:
                self._cache = ResponseCache(arg)
            self._cache_resolved = True
        return self._cache

    def _cache_configured(self) -> bool:
        return self._cache_arg is not None or self.config.cache is not None

    @property
    def cache_mode(self) -> CacheMode:
        """The default cache mode of this harness (``off`` without a cache).

        The ``cache_mode`` argument, else the config's ``[cache] mode``, else ``use``.
        Reading it does not open the store: that waits for the first call that needs it,
        so runs of offline models never touch the file.
        """
        if not self._cache_configured():
            return CacheMode.OFF
        if self._cache_mode_arg is not None:
            return self._cache_mode_arg
        table = self.config.cache
        return parse_mode(table.mode if table is not None and table.mode else "use")

    def resolve(self, model: str, custom_llm_provider: str | None = None) -> ModelSpec:
        """The ``ModelSpec`` for an alias or ``provider/name`` string.

        ``custom_llm_provider`` (LiteLLM's parameter) names the provider of a bare model
        name: ``resolve("my-model", "openai")`` is ``openai/my-model``.
        """
        if (
            custom_llm_provider
            and isinstance(model, str)
            and model not in self.config.models
            and not model.startswith(custom_llm_provider + "/")
        ):
            model = f"{custom_llm_provider}/{model}"
        return self.config.resolve(model)

    def _spec(self, model: str, params: Mapping[str, Any]) -> ModelSpec:
        return self.resolve(model, params.get("custom_llm_provider"))

    def prepare(self, model: str, messages: Any, params: Mapping[str, Any]) -> Call:
        """Validate and resolve one call without sending it (raises on bad input)."""
        return self._plan(self._spec(model, params), validate_messages(messages), params).call

    def _plan(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> _Plan:
        """Everything one call needs, checked: provider params, key, base URL, limits."""
        merged, harness_args = _split_params(spec, params)
        mock_response = harness_args.get("mock_response")
        if harness_args.get("mock_timeout"):
            mock_response = {"stall": True}  # never answers: the call's timeout ends it
        # An explicit mock_response answers offline whatever the model (as in LiteLLM).
        family = "mock" if mock_response is not None else spec.family
        cache_mode = self.cache_mode
        if "cache" in harness_args and self._cache_configured():
            cache_mode = parse_mode(harness_args["cache"])
        replaying = cache_mode is CacheMode.REPLAY and family not in _OFFLINE
        if family not in _OFFLINE and self.offline:
            if not (cache_mode.reads and self._cache_configured()):
                raise ConfigError(
                    f"offline mode: model {spec.name!r} ({spec.full_name}) would call the "
                    f"network (the response store is {cache_mode.value}); use an echo/ or "
                    "mock/ model, give mock_response, or read stored answers with "
                    "--harness-cache use or replay",
                    provider=spec.provider,
                    model=spec.name,
                )
            # Offline with a store: stored answers replay; a miss is refused in _stored.
            replaying = True
        if family in _OFFLINE:
            for name in ("mock_latency_ms", "mock_ttft_ms"):
                if name in harness_args:
                    merged[name] = harness_args[name]
            api_base = api_key = None
        else:
            api_base, api_key = _endpoint(spec, harness_args, replaying)
        if harness_args.get("api_version"):
            spec = replace(spec, api_version=str(harness_args["api_version"]))
        timeout, policy = self._limits_for(spec, harness_args)
        limit = _first(
            harness_args.get("max_response_bytes"),
            spec.max_response_bytes,
            self.config.max_response_bytes,
            DEFAULT_MAX_RESPONSE_BYTES,
        )
        call = Call(
            spec=spec,
            messages=messages,
            params=merged,
            api_key=api_key,
            api_base=api_base,
            headers=MappingProxyType(secret_headers(harness_args.get("extra_headers") or {})),
            mock_response=mock_response,
            max_response_bytes=_byte_limit(limit),
        )
        repeat = int(harness_args.get("harness_repeat", 0))
        stream = bool(params.get("stream"))
        return _Plan(call, family, timeout, policy, cache_mode, repeat, stream)

    def _limits_for(
        self, spec: ModelSpec, harness_args: Mapping[str, Any]
    ) -> tuple[float, RetryPolicy]:
        """The call's timeout and retry policy: call, then ``Harness``, model, config."""
        timeout = _first(
            harness_args.get("timeout"),
            harness_args.get("request_timeout"),
            self._timeout,
            spec.timeout,
            self.config.timeout,
        )
        retries = _first(
            harness_args.get("num_retries"),
            harness_args.get("max_retries"),
            self._retries,
            spec.retries,
            self.config.retries,
        )
        policy = (
            self._policy
            if retries == self._policy.retries
            else _with_retries(self._policy, int(retries))
        )
        return float(timeout), policy

    def _semaphore(self, spec: ModelSpec, limit: int | None) -> asyncio.Semaphore | None:
        if not limit:
            return None
        loop = asyncio.get_running_loop()
        per_loop = self._limits.get(loop)
        if per_loop is None:
            per_loop = self._limits[loop] = {}
        sem = per_loop.get(spec.name)
        if sem is None:
            sem = per_loop[spec.name] = asyncio.Semaphore(limit)
        return sem

    # --- one call -----------------------------------------------------------------------

    def _stored(self, plan: _Plan) -> tuple[ResponseCache | None, str, CachedEntry | None]:
        """The store, the call's key and the stored entry to serve (``None``: call).

        Sets ``plan.record`` when the answer will have to be stored. Offline answers are
        never stored; the store is opened on first use.

        Raises:
            ReplayMissError: replay mode and nothing is stored for the call.
        """
        if plan.cache_mode is CacheMode.OFF or plan.family in _OFFLINE:
            return None, "", None
        cache, call = self.cache, plan.call  # opened here, on first use
        if cache is None:
            return None, "", None
        key = key_for_call(call, plan.repeat, embedding=plan.embedding)
        entry = cache.lookup(
            key,
            plan.cache_mode,
            provider=call.spec.provider,
            model=call.spec.name,
            messages=_embedded_text(call) if plan.embedding else call.messages,
        )
        if entry is None and self.offline:  # _plan let it through for the store alone
            raise _offline_miss(call.spec, cache.path)
        plan.record = entry is None and plan.cache_mode.writes
        return cache, key, entry

    async def _run(self, plan: _Plan) -> ModelResponse:
        """One completion: ``_answer`` of a chat plan."""
        response = await self._answer(plan)
        assert isinstance(response, ModelResponse)
        return response

    async def _answer(self, plan: _Plan) -> Answer:
        """One call: attempts with retries, each bounded by the timeout and the model limit."""
        call = plan.call
        cache, key, entry = self._stored(plan)
        if entry is not None:
            if entry.is_error:
                raise entry.to_error()
            replayed: Answer = (
                entry.to_embedding_response() if plan.embedding else entry.to_model_response()
            )
            replayed.harness.model = call.spec.name
            return replayed
        provider = get_provider(plan.family)
        send = self._clients.sender() if provider.needs_network else _no_network
        retries_done = 0
        while True:
            call.attempt = retries_done
            start = time.perf_counter()
            try:
                response, start = await self._attempt(plan, provider, send)
            except HarnessError as exc:
                error: HarnessError = exc
            except TimeoutError:
                error = call.error(HarnessTimeoutError, f"no answer within {plan.timeout:g} s")
            except httpx.TimeoutException as exc:
                error = call.error(HarnessTimeoutError, f"{type(exc).__name__}: {exc}")
            except (httpx.TransportError, OSError) as exc:
                error = call.error(APIConnectionError, f"{type(exc).__name__}: {exc}")
            else:
                meta = response.harness
                meta.latency_ms = (time.perf_counter() - start) * 1000.0
                meta.attempts = retries_done + 1
                self._settle(plan, response, cache, key)
                return response
            if not plan.policy.should_retry(error, retries_done):
                error.attempts = retries_done + 1
                if cache is not None and plan.cache_mode.writes and is_cacheable_error(error):
                    cache.put(
                        key,
                        error=error,
                        latency_ms=0.0,
                        provider=call.spec.provider,
                        model=call.spec.model,
                    )
                raise error
            await self._sleep(plan.policy.delay(error, retries_done))
            retries_done += 1

    def _settle(self, plan: _Plan, response: Answer, cache: ResponseCache | None, key: str) -> None:
        """An answer arrived: price it, count it toward the budget, store it if asked."""
        call, meta = plan.call, response.harness
        meta.model = call.spec.name
        price = call.spec.price
        if price is not None:
            usage = response.usage
            meta.cost_usd = price.cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
        hold, plan.hold = plan.hold, None
        if self.budget is not None and plan.family not in _OFFLINE:
            if hold is not None:
                self.budget.settle(hold, meta.cost_usd or 0.0)
                if meta.cost_usd and meta.cost_usd > hold.amount > 0:
                    self._learn_estimate(plan, meta.cost_usd)
            elif meta.cost_usd:
                self.budget.add(meta.cost_usd)
        if cache is not None and plan.record:
            raw, chunks = _recording(plan)
            cache.put(
                key,
                response=response,
                raw=raw,
                chunks=chunks,
                latency_ms=meta.latency_ms,
                ttft_ms=meta.ttft_ms,
                provider=call.spec.provider,
                model=call.spec.model,
            )

    async def _attempt(self, plan: _Plan, provider: Any, send: Send) -> tuple[Answer, float]:
        """One attempt inside the model's slot, bounded by the timeout.

        Returns the response and when the attempt started (after any wait for a slot).
        """
        async with self._slot(plan) as slot:
            # Reserved inside the model's slot, just before sending: a call waiting for its
            # slot holds nothing, so queued (prefetched) calls cannot crowd the cap.
            hold = None if self.budget is None else await self._reserve(plan)
            try:
                start = time.perf_counter()
                async with asyncio.timeout(plan.timeout):
                    response: Answer = await self._generate(plan, provider, send)
                slot.tokens = response.usage.total_tokens
            except BaseException:
                self._release(hold)
                raise
        plan.hold = hold  # spent by _settle
        return response, start

    def _slot(self, plan: _Plan) -> contextlib.AbstractAsyncContextManager[_Slot]:
        """Hold one of the model's slots for the block (``async with self._slot(plan)``).

        With a shared limiter (``rpm``/``tpm`` configured, or ``limits=`` given), the slot,
        the rate windows and the cool-down after a 429 are shared by every process using
        the same file: a ``RateLimitError`` from the block slows the model down for
        everyone, and on success the block's ``slot.tokens`` count toward ``tpm``.
        Otherwise a per-loop semaphore bounds ``max_concurrency``; with no limit at all the
        block runs at once (the common case costs no generator).
        """
        spec = plan.call.spec
        limit = spec.max_concurrency or self.config.max_concurrency
        if limit is None and plan.family not in _OFFLINE:
            limit = self._max_concurrency
        shared = self._shared_limiter(spec)
        if shared is not None:
            return self._shared_slot(shared, plan, limit)
        sem = self._semaphore(spec, limit)
        return _Slot() if sem is None else self._local_slot(sem)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _shared_slot(
        shared: SharedLimiter, plan: _Plan, limit: int | None
    ) -> AsyncIterator[_Slot]:
        call = plan.call
        spec = call.spec
        name = spec.full_name
        slot = _Slot()
        lease = None
        try:
            async with shared.acquire(
                name,
                max_concurrency=limit,
                rpm=spec.rpm,
                tpm=spec.tpm,
                tokens=_estimate_tokens(call),
                lease_seconds=plan.timeout + 60.0,
            ) as lease:
                yield slot
        except RateLimitError as exc:
            # Slow the model down for everyone, not just this call's retry.
            shared.report_rate_limited(name, exc.retry_after, lease=lease)
            raise
        shared.report_success(name, slot.tokens, lease=lease)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _local_slot(sem: asyncio.Semaphore) -> AsyncIterator[_Slot]:
        async with sem:
            yield _Slot()

    def estimate_cost(self, model: str, messages: list[dict[str, Any]], **params: Any) -> float:
        """What the cost cap reserves for this call before sending it, in dollars.

        The prompt's tokens estimated from its characters (``estimate_prompt_tokens``) at
        the input price, plus ``max_tokens`` (else ``DEFAULT_MAX_OUTPUT_TOKENS``) at the
        output price; ``0.0`` for a model with no price. Once a call of the model has cost
        more than its estimate, this harness scales the model's estimates by the largest
        such ratio seen, so one low estimate does not repeat.
        """
        spec = self._spec(model, params)
        return self._estimate(self._plan(spec, validate_messages(messages), params))

    def _estimate(self, plan: _Plan) -> float:
        """``_cost_estimate``, scaled up for a model whose calls cost more than estimated."""
        return _cost_estimate(plan) * self._estimate_scale.get(plan.call.spec.full_name, 1.0)

    def _learn_estimate(self, plan: _Plan, cost: float) -> None:
        """A call cost more than its estimate: scale the model's later estimates to match."""
        raw = _cost_estimate(plan)
        if raw > 0:
            name = plan.call.spec.full_name
            self._estimate_scale[name] = max(self._estimate_scale.get(name, 1.0), cost / raw)

    async def _reserve(self, plan: _Plan) -> BudgetHold | None:
        """Reserve the call's estimated cost, or raise ``BudgetExceededError`` (unsent).

        When the estimate does not fit only because of what the calls in flight hold, wait
        for them to settle (they may cost less than they hold), at most the call's timeout;
        when it would not fit even if they cost nothing, fail at once. Offline models are not
        budgeted; a network model with no price reserves nothing and is stopped once the
        spend reaches the cap.
        """
        budget = self.budget if plan.family not in _OFFLINE else None
        if budget is None:
            return None
        estimate = self._estimate(plan)
        pause = 0.002
        loop = asyncio.get_running_loop()
        give_up = loop.time() + plan.timeout  # a hold is never kept longer than a call lasts
        while True:
            hold = budget.reserve(estimate)
            if hold is not None:
                return hold
            spent, held = budget.totals()
            waiting_helps = held > 0.0 and spent < budget.limit_usd
            if not waiting_helps or spent + estimate > budget.limit_usd or loop.time() > give_up:
                raise _over_budget(plan, budget.limit_usd, spent, held, estimate)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _release(self, hold: BudgetHold | None) -> None:
        if hold is not None and self.budget is not None:
            self.budget.release(hold)

    @contextlib.asynccontextmanager
    async def _stream_gate(self, plan: _Plan, stream: ResponseStream) -> AsyncIterator[None]:
        """What a caller's stream runs inside: the model's slot, then the cost reservation.

        ``_settle`` (the stream's ``on_complete``) spends the reservation; a stream that
        ends otherwise releases it here.
        """
        async with self._slot(plan) as slot:
            hold = plan.hold = await self._reserve(plan)
            try:
                yield
            finally:
                if plan.hold is hold:
                    plan.hold = None
                    self._release(hold)
            if stream.response is not None:
                slot.tokens = stream.response.usage.total_tokens

    async def _generate(self, plan: _Plan, provider: Any, send: Send) -> Answer:
        if plan.embedding:
            embedded: EmbeddingResponse = await provider.embed(plan.call, send)
            return embedded
        if not plan.stream:
            response: ModelResponse = await provider.generate(plan.call, send)
            return response
        send_stream = self._clients.stream_sender() if provider.needs_network else _no_network
        stream: ResponseStream = provider.stream(plan.call, send_stream)
        stream.record = plan.record
        plan.live = stream
        signal = plan.on_first_token
        async with stream:
            async for _ in stream:
                if signal is not None and stream.ttft_ms is not None:
                    signal()
                    signal = None
        assembled = stream.response
        assert assembled is not None  # a stream that ends normally has one
        return assembled

    def _shared_limiter(self, spec: ModelSpec) -> SharedLimiter | None:
        if self._shared is None and (spec.rpm or spec.tpm):
            self._shared = SharedLimiter(
                self._limits_path or self.config.limits.path or DEFAULT_LIMITS_PATH
            )
        return self._shared

    async def _run_safe(self, plan: _Plan) -> Result:
        """``_run`` with any failure returned as a ``HarnessError`` instead of raised."""
        try:
            return await self._run(plan)
        except HarnessError as exc:
            return exc
        except Exception as exc:  # a bug in an adapter must not sink the batch
            return _unexpected(plan, exc)

    async def _run_typed(self, plan: _Plan) -> ModelResponse:
        """``_run``, raising only ``HarnessError``s: a bug in an adapter must not escape raw."""
        try:
            return await self._run(plan)
        except HarnessError:
            raise
        except Exception as exc:
            raise _unexpected(plan, exc) from exc

    # --- async API ----------------------------------------------------------------------

    async def acompletion(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
        """One chat completion. Raises the call's ``HarnessError`` on failure.

        With ``stream=True`` it returns a ``ResponseStream`` instead (see ``astream``), as
        LiteLLM's ``acompletion`` returns an async iterator of chunks.
        """
        if params.get("stream"):
            return self.astream(model, messages, **params)
        spec = self._spec(model, params)
        return await self._run(self._plan(spec, validate_messages(messages), params))

    def astream(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ResponseStream:
        """Stream one answer: an async iterator of OpenAI-shaped chunks.

        After the iteration, ``.response`` is the assembled ``ModelResponse`` with
        ``harness.ttft_ms`` and its cost. Bad input raises here, before anything is sent,
        and so does a replay-mode miss. A stream is not retried (its output has already
        been handed out).

        The call's timeout bounds the wait for each chunk (a stalled stream fails with
        ``TimeoutError``); the whole stream may take longer.

        With the response store on, a stored answer is replayed as its recorded chunks
        (at once, not paced; ``ttft_ms``/``latency_ms`` are the recorded ones and
        ``harness.replayed`` is true), and a streamed answer is stored with its chunks'
        timing and raw bytes.
        """
        plan = self._plan(
            self._spec(model, params), validate_messages(messages), {**params, "stream": True}
        )
        cache, key, entry = self._stored(plan)
        if entry is not None:
            stream = _replay_stream(entry, plan.call.spec.name)
        else:
            provider = get_provider(plan.family)
            stream = provider.stream(plan.call, _StreamSender(self))
            stream.record = plan.record
            plan.live = stream
            stream.on_complete = functools.partial(self._settle, plan, cache=cache, key=key)
            stream.gate = functools.partial(self._stream_gate, plan, stream)
            stream.idle_timeout = plan.timeout
        options = params.get("stream_options")
        stream.include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        return stream

    async def abatch_completion(
        self,
        model: str,
        messages: list[list[dict[str, Any]]],
        *,
        max_workers: int | None = 100,
        on_result: OnResult | None = None,
        **params: Any,
    ) -> list[Result]:
        """Many conversations to one model, answers in input order, errors in their slots.

        ``on_result(index, result)`` is called as each answer arrives (e.g. to write it).
        """
        spec = self._spec(model, params)
        conversations = validate_conversations(messages)
        template = self._plan(spec, [], params)
        plans = [template.with_messages(conv) for conv in conversations]
        return await self._gather(plans, max_workers or 100, on_result)

    async def _gather(
        self, plans: Sequence[_Plan], workers: int, on_result: OnResult | None
    ) -> list[Result]:
        results: list[Result | None] = [None] * len(plans)
        indices = iter(range(len(plans)))

        async def worker() -> None:
            for i in indices:
                result = results[i] = await self._run_safe(plans[i])
                if on_result is not None:
                    on_result(i, result)

        count = min(max(workers, 1), len(plans))
        if count == 1:
            await worker()
        elif count:
            await asyncio.gather(*(worker() for _ in range(count)))
        return results  # type: ignore[return-value]

    async def abatch_completion_models(
        self,
        models: Sequence[str],
        messages: list[dict[str, Any]],
        *,
        race_on: str = "complete",
        **params: Any,
    ) -> ModelResponse:
        """Race: the first successful answer wins and the other calls are cancelled.

        ``race_on="first_token"`` streams every contestant and the first to deliver output
        wins: the others are aborted mid-stream at once, and the winner's stream is read to
        its end (if it then fails, its error is raised). The winner's ``harness.race`` says
        who won, each contestant's latency and TTFT, and whether a cancelled loser had
        already received its first byte. Raises ``AllModelsFailed`` (with every model's
        error) when no model succeeds.
        """
        if race_on not in ("complete", "first_token"):
            raise ConfigError(f"race_on must be 'complete' or 'first_token', got {race_on!r}")
        first_token = race_on == "first_token"
        if first_token:
            params = {**params, "stream": True}
        plans = self._plans_for_models(models, messages, params)
        return await Race([self._entrant(plan) for plan in plans], first_token=first_token).run()

    def _entrant(self, plan: _Plan) -> Entrant[ModelResponse]:
        """``plan`` as a race contestant."""

        def start(on_first_output: Callable[[], None] | None) -> Awaitable[ModelResponse]:
            plan.on_first_token = on_first_output
            return self._run_typed(plan)

        def first_byte() -> bool | None:
            return None if plan.live is None else plan.live.ttfb_ms is not None

        return Entrant(
            plan.call.spec.name,
            start,
            first_byte,
            functools.partial(self._account_contestant, plan=plan),
        )

    def _account_contestant(
        self, entry: Contestant, task: asyncio.Task[ModelResponse], *, plan: _Plan
    ) -> None:
        """Fill in the tokens and cost a contestant consumed, as far as they were reported.

        An answer carries its usage and cost. A loser stopped mid-stream has what its
        provider reported before the stop (``ResponseStream.usage_so_far``); that spend was
        real, so it also counts toward the session's cost cap.
        """
        if entry.outcome in ("winner", "finished"):
            response = task.result()
            entry.prompt_tokens = response.usage.prompt_tokens
            entry.completion_tokens = response.usage.completion_tokens
            entry.cost_usd = response.harness.cost_usd
            return
        usage = plan.live.usage_so_far() if plan.live is not None else None
        self.charge_stopped(entry, usage, plan.call.spec, offline=plan.family in _OFFLINE)

    def charge_stopped(
        self, entry: Contestant, usage: Usage | None, spec: ModelSpec, *, offline: bool = False
    ) -> None:
        """Record and price what a contestant stopped mid-answer had consumed.

        ``usage`` is what its provider reported before the stop
        (``ResponseStream.usage_so_far()``); that spend was real, so it counts toward the
        cost cap (unless the model is offline).
        """
        if usage is None:
            return
        entry.prompt_tokens, entry.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        price = spec.price
        if price is not None:
            entry.cost_usd = price.cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
            if self.budget is not None and entry.cost_usd and not offline:
                self.budget.add(entry.cost_usd)

    async def abatch_completion_models_all_responses(
        self, models: Sequence[str], messages: list[dict[str, Any]], **params: Any
    ) -> list[Result]:
        """Every model's answer, in the order of ``models``, errors in their slots."""
        plans = self._plans_for_models(models, messages, params)
        return await self._gather(plans, len(plans), None)

    async def aembedding(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        dimensions: int | None = None,
        encoding_format: str | None = None,
        timeout: float | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        """Embed one text or a list of texts: LiteLLM's ``aembedding``.

        Returns OpenAI's embedding list (``data[i].embedding`` for ``input[i]``) with
        ``usage``, the cost in ``harness.cost_usd`` and ``_hidden_params["response_cost"]``.
        A list goes in one request, or in the provider's batch size (2048 for OpenAI and
        Azure, 100 for Gemini, 96 for Cohere) with the batches sent at once and re-joined in
        order; each batch is one call with the model's limits, retries, timeout, the cost
        cap and the response store (its key is not a completion's). ``dimensions`` asks
        for shorter vectors, ``encoding_format`` (OpenAI) for ``base64`` on the wire (the
        answer is floats either way); other parameters (``input_type`` for Cohere,
        ``task_type`` for Gemini, ``user``, ``mock_response``, ``num_retries``) pass as for
        completions. Bad input, and a provider without embeddings (Anthropic), raise
        before anything is sent; a failed call raises its ``HarnessError``.
        """
        plans = self._embedding_plans(
            model,
            input,
            {
                **params,
                "dimensions": dimensions,
                "encoding_format": encoding_format,
                "timeout": timeout,
                "api_key": api_key,
                "api_base": api_base,
            },
        )
        if len(plans) == 1:
            return await self._embed(plans[0])
        tasks = [asyncio.ensure_future(self._embed(plan)) for plan in plans]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return merge_responses(parts, plans[0].call.spec.name)

    def _embedding_plans(self, model: str, input: Any, params: Mapping[str, Any]) -> list[_Plan]:
        """The checked plans of one embeddings call: one per provider-sized batch."""
        spec = self._spec(model, params)
        texts = embedding_inputs(input, provider=spec.provider, model=spec.name)
        check_dimensions(params.get("dimensions"), provider=spec.provider, model=spec.name)
        asked = {k: v for k, v in params.items() if k not in ("stream", "stream_options")}
        scripted = asked.get("mock_response") is not None or asked.get("mock_timeout")
        if not scripted and not get_provider(spec.family).supports_embeddings:
            raise no_embeddings(Call(spec, []))  # before looking for a key
        plan = self._plan(spec, [], {**asked, "input": texts})
        call = plan.call
        for name in _CHAT_ONLY.intersection(spec.params).difference(asked):
            call.params.pop(name, None)
        provider = get_provider(plan.family)
        plan.embedding = True
        size = provider.max_embedding_inputs
        if not size or len(texts) <= size:
            return [plan]
        return [
            replace(plan, call=replace(call, params={**call.params, "input": texts[i : i + size]}))
            for i in range(0, len(texts), size)
        ]

    async def _embed(self, plan: _Plan) -> EmbeddingResponse:
        """One batch of an embeddings call, raising only ``HarnessError``s."""
        try:
            response = await self._answer(plan)
        except HarnessError:
            raise
        except Exception as exc:
            raise _unexpected(plan, exc) from exc
        assert isinstance(response, EmbeddingResponse)
        return response

    def _plans_for_models(
        self, models: Sequence[str], messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> list[_Plan]:
        if isinstance(models, str):
            raise TypeError(
                f"models must be a list of model names, got the string {models!r}; "
                f"write models=[{models!r}]"
            )
        if not isinstance(models, Sequence) or not models:
            raise ConfigError(f"models must be a non-empty list of model names, got {models!r}")
        checked = validate_messages(messages)
        return [self._plan(self._spec(m, params), checked, params) for m in models]

    # --- background submission -----------------------------------------------------------

    def submit_many(
        self, requests: Sequence[tuple[str, list[dict[str, Any]], Mapping[str, Any]]]
    ) -> list[concurrent.futures.Future[Result]]:
        """Start many calls at once on the background loop and return their futures.

        Each request is ``(model, messages, params)``; each future resolves to the answer or
        the ``HarnessError`` (it never raises). Bad input (unknown model, malformed messages,
        missing key) resolves its future to the ``ConfigError``/``BadRequestError`` without a
        call. The pytest plugin prefetches suite answers this way; each model's
        ``max_concurrency`` still bounds how many run at once. Cancelling a future cancels
        its call (its socket is closed).
        """
        plans: list[_Plan | HarnessError] = []
        for model, messages, params in requests:
            try:
                spec = self._spec(model, params)
                plans.append(self._plan(spec, validate_messages(messages), params))
            except HarnessError as exc:
                plans.append(exc)
        futures: list[concurrent.futures.Future[Result]] = [
            concurrent.futures.Future() for _ in plans
        ]

        async def start() -> None:
            loop = asyncio.get_running_loop()
            for plan, future in zip(plans, futures, strict=True):
                if isinstance(plan, HarnessError):
                    future.set_result(plan)
                    continue
                task = asyncio.ensure_future(self._run_safe(plan))
                task.add_done_callback(functools.partial(_resolve_future, future))
                # Cancelling the future (a caller that stopped waiting) cancels the call.
                future.add_done_callback(functools.partial(_cancel_task, loop, task))
                _running.add(task)
                task.add_done_callback(_running.discard)

        submit(start())
        return futures

    # --- sync API -----------------------------------------------------------------------

    def completion(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
        """Sync twin of ``acompletion``; works in scripts, threads and inside running loops.

        With ``stream=True`` it returns a sync iterator of chunks (with ``.response`` after).
        """
        if params.get("stream"):
            return SyncStream(self.astream(model, messages, **params))
        return run_sync(self.acompletion(model, messages, **params))

    def batch_completion(
        self,
        model: str,
        messages: list[list[dict[str, Any]]],
        *,
        max_workers: int | None = 100,
        on_result: OnResult | None = None,
        **params: Any,
    ) -> list[Result]:
        """Sync twin of ``abatch_completion``."""
        return run_sync(
            self.abatch_completion(
                model, messages, max_workers=max_workers, on_result=on_result, **params
            )
        )

    def batch_completion_models(
        self, models: Sequence[str], messages: list[dict[str, Any]], **params: Any
    ) -> ModelResponse:
        """Sync twin of ``abatch_completion_models`` (race)."""
        if isinstance(models, str):  # fail before entering the loop thread
            self._plans_for_models(models, messages, params)
        return run_sync(self.abatch_completion_models(models, messages, **params))

    def batch_completion_models_all_responses(
        self, models: Sequence[str], messages: list[dict[str, Any]], **params: Any
    ) -> list[Result]:
        """Sync twin of ``abatch_completion_models_all_responses``."""
        return run_sync(self.abatch_completion_models_all_responses(models, messages, **params))

    def embedding(self, model: str, input: str | Sequence[str], **params: Any) -> EmbeddingResponse:
        """Sync twin of ``aembedding`` (same parameters)."""
        return run_sync(self.aembedding(model, input, **params))

    async def aclose(self) -> None:
        """Close the running loop's HTTP client (idle keep-alive sockets)."""
        await self._clients.aclose()

    def close(self) -> None:
        """Drop every HTTP client this harness made (closes idle sockets)."""
        self._clients.close_all()


def _split_params(
    spec: ModelSpec, params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The provider's params (the model's own, then the call's) and the harness's own."""
    merged: dict[str, Any] = dict(spec.params)
    harness_args: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or key == "stream":
            continue
        if key == "stream_options" and not params.get("stream"):
            continue  # only valid with a stream
        if key in _HARNESS_PARAMS:
            harness_args[key] = value
        else:
            merged[key] = value
    return merged, harness_args


def _endpoint(
    spec: ModelSpec, harness_args: Mapping[str, Any], replaying: bool
) -> tuple[str | None, str | None]:
    """The base URL and key of a network call.

    No key when replaying without one (replay never sends), or when it would travel in
    clear to a host the user did not choose.
    """
    chosen_base = harness_args.get("api_base") or harness_args.get("base_url")
    api_base = spec.resolve_api_base(chosen_base)
    try:
        api_key = spec.resolve_api_key(harness_args.get("api_key"), api_base)
    except ConfigError:
        if not replaying:  # replay never sends, so it needs no key
            raise
        return api_base, None
    if api_key is None:
        return api_base, None
    if (
        not harness_args.get("api_key")
        and not (chosen_base or spec.api_base)
        and _in_clear(api_base)
    ):
        _warn_unsent_key(spec, api_base)
        return api_base, None
    return api_base, secret(api_key)


def _offline_miss(spec: ModelSpec, path: os.PathLike[str]) -> ConfigError:
    """The refusal of an offline call whose answer the store does not hold."""
    return ConfigError(
        f"offline mode: model {spec.name!r} ({spec.full_name}): this call's answer is not in "
        f"the response store ({path}); run once online with --harness-cache use (or record) "
        "to store it, or use --harness-cache replay, which serves only stored answers and "
        "fails the whole item on any miss",
        provider=spec.provider,
        model=spec.name,
    )


def _embedded_text(call: Call) -> list[dict[str, Any]]:
    """An embeddings call's first text as a user message (a replay miss quotes it)."""
    return [{"role": "user", "content": call.params["input"][0]}]


def _cost_estimate(plan: _Plan) -> float:
    """The most the call should cost: estimated prompt tokens, ``max_tokens`` of output."""
    call = plan.call
    price = call.spec.price
    if price is None:
        return 0.0
    if plan.embedding:
        texts = call.params.get("input") or ()
        return price.cost(estimate_prompt_tokens((), [str(t) for t in texts]), 0)
    params = call.params
    limit = params.get("max_tokens") or params.get("max_completion_tokens")
    prompt = estimate_prompt_tokens(call.messages, tools=params.get("tools"))
    return price.cost(prompt, int(limit or DEFAULT_MAX_OUTPUT_TOKENS))


def _over_budget(
    plan: _Plan, cap: float, spent: float, held: float, estimate: float
) -> HarnessError:
    """The unsent call's error: ``cost cap $0.00001 reached: $0.0068 spent; …``.

    When the spend is below the cap but the call's estimate does not fit, it says ``would
    be exceeded`` with what the calls in flight hold and the call's estimate.
    """
    from harness.report.formatting import usd_brief

    cap_text = usd_brief(cap, 6)
    if spent >= cap:
        text = f"cost cap {cap_text} reached: {usd_brief(spent)} spent"
    else:
        text = f"cost cap {cap_text} would be exceeded: {usd_brief(spent)} spent"
        if held > 0:
            text += f", {usd_brief(held)} held by calls in flight"
        text += f", and this call may cost up to {usd_brief(estimate)}"
    return plan.call.error(BudgetExceededError, text + "; the request was not sent")


def _estimate_tokens(call: Call) -> int:
    """A rough token estimate for ``tpm`` before the answer says: prompt chars / 4 + max tokens."""
    chars = sum(len(str(m.get("content") or "")) for m in call.messages)
    texts = call.params.get("input")
    if texts and not call.messages:  # an embeddings call
        chars += sum(len(t) for t in texts)
    limit = call.params.get("max_tokens") or call.params.get("max_completion_tokens") or 256
    return chars // 4 + int(limit)


class _Slot:
    """What the block holding a model's slot reports back: the tokens the call used.

    Also the context manager of a slot that needs no waiting (no limit configured).
    """

    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens = 0

    async def __aenter__(self) -> _Slot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _replay_stream(entry: CachedEntry, model: str) -> ResponseStream:
    """A stream that replays a stored answer: its recorded chunks, or its answer as chunks."""

    async def produce(stream: ResponseStream) -> AsyncGenerator[StreamChunk, None]:
        if entry.is_error:
            raise entry.to_error()
        response = entry.to_model_response()
        response.harness.model = model
        if entry.chunks:
            chunks = [StreamChunk.from_dict(chunk) for _, chunk in entry.chunks]
        else:
            chunks = response_chunks(response)
        for chunk in chunks:
            yield chunk
        stream.complete_replayed(response)

    return ResponseStream(produce)


def _recording(plan: _Plan) -> tuple[bytes | None, list[tuple[float, dict[str, Any]]] | None]:
    """The raw body and (for a stream) the timed chunks of the attempt that answered."""
    stream = plan.live if plan.stream else None
    if stream is None:
        return plan.call.raw_body, None
    chunks = [(round(ms, 3), chunk.to_dict()) for ms, chunk in stream.timeline]
    return (b"".join(stream.raw) if stream.raw else None), chunks


class _StreamSender:
    """Resolves the running loop's streaming ``send`` when the stream starts."""

    def __init__(self, harness: Harness) -> None:
        self._harness = harness

    async def __call__(self, request: httpx.Request) -> httpx.Response | RawStream:
        return await self._harness._clients.stream_sender()(request)


class SyncStream:
    """A ``ResponseStream`` iterated from sync code, on the harness's background loop."""

    def __init__(self, stream: ResponseStream) -> None:
        self.stream = stream

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        try:
            return run_sync(self.stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def response(self) -> ModelResponse | None:
        """The assembled answer once the iteration has ended."""
        return self.stream.response

    def close(self) -> None:
        """Stop early and close the connection."""
        run_sync(self.stream.aclose())


_running: set[asyncio.Task[Result]] = set()


def _cancel_task(
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[Result],
    future: concurrent.futures.Future[Result],
) -> None:
    if future.cancelled() and not task.done():
        loop.call_soon_threadsafe(task.cancel)


def _resolve_future(future: concurrent.futures.Future[Result], task: asyncio.Task[Result]) -> None:
    """Hand a finished task's outcome to the caller's future (unless it gave up)."""
    if future.cancelled():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


async def _no_network(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("offline provider tried to send a request")


class InsecureKeyWarning(UserWarning):
    """A key from the environment was not sent to a plain-``http://`` remote host."""


_warned_hosts: set[tuple[str, str]] = set()


def _in_clear(api_base: str | None) -> bool:
    """Whether ``api_base`` is plain ``http://`` to a host that is not this machine."""
    if not api_base:
        return False
    url = httpx.URL(api_base)
    if url.scheme != "http":
        return False
    host = url.host.strip("[]").lower()
    if host in ("localhost", "::1") or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


def _warn_unsent_key(spec: ModelSpec, api_base: str | None) -> None:
    """Warn once per model and host that its key stays home (it would travel unencrypted)."""
    host = httpx.URL(api_base or "").host
    if (spec.name, host) in _warned_hosts:
        return
    _warned_hosts.add((spec.name, host))
    warnings.warn(
        f"model {spec.name!r}: not sending its API key to {host} over plain http:// (the "
        "base URL came from the environment or a default, not from your config); set "
        "api_base for this model in the config, or pass api_base=/api_key= explicitly, to "
        "send it anyway",
        InsecureKeyWarning,
        stacklevel=4,
    )


def _unexpected(plan: _Plan, exc: Exception) -> HarnessError:
    """The typed error for a foreign exception from a call (a bug in an adapter)."""
    error = plan.call.error(HarnessError, f"unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _byte_limit(value: Any) -> int:
    """``max_response_bytes`` checked (a call parameter is not validated by the config)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ConfigError(f"max_response_bytes: expected an integer >= 1024, got {value!r}")
    return value


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _with_retries(policy: RetryPolicy, retries: int) -> RetryPolicy:
    return replace(policy, retries=retries)


_default: Harness | None = None


def get_default_harness() -> Harness:
    """The ``Harness`` behind the module-level functions (config from the working directory)."""
    global _default
    if _default is None:
        _default = Harness()
    return _default


def set_default_harness(harness: Harness | None) -> None:
    """Replace the default ``Harness`` (``None`` resets it to a fresh one on next use)."""
    global _default
    _default = harness
