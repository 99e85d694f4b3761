"""harness: test and compare LLMs under plain pytest.

The public API is LiteLLM's batch-completion call shapes, done right::

    from harness import batch_completion, batch_completion_models

    answers = batch_completion(model="mock/demo", messages=[[{"role": "user", "content": "hi"}]])
    fastest = batch_completion_models(models=["echo/a", "mock/b"], messages=[...])

Each function uses a default ``Harness`` configured from ``harness.toml`` or
``[tool.harness]`` in the working directory; build your own ``Harness(config=...)`` for
anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness._version import __version__
from harness.config import HarnessConfig, ModelSpec, Price, load_config
from harness.errors import (
    AllModelsFailed,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    ConfigError,
    ConflictError,
    ContentFilterError,
    ContextWindowExceededError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplayMissError,
    ServiceUnavailableError,
    TimeoutError,
)
from harness.retry import RetryPolicy
from harness.types import (
    Choice,
    ChunkChoice,
    Contestant,
    Delta,
    FunctionCall,
    Message,
    ModelResponse,
    RaceInfo,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from harness.providers.base import ResponseStream
    from harness.runner import Harness, Result, get_default_harness, set_default_harness

# The runner pulls in asyncio and httpx (~110 ms); it is imported on first use, so that
# ``import harness`` stays cheap for tools that only need the types or the config.
_LAZY = {
    "Harness": "harness.runner",
    "Result": "harness.runner",
    "get_default_harness": "harness.runner",
    "set_default_harness": "harness.runner",
    "ResponseStream": "harness.providers.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AllModelsFailed",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "Choice",
    "ChunkChoice",
    "ConfigError",
    "ConflictError",
    "ContentFilterError",
    "Contestant",
    "ContextWindowExceededError",
    "Delta",
    "FunctionCall",
    "Harness",
    "HarnessConfig",
    "HarnessError",
    "InternalServerError",
    "InvalidResponseError",
    "Message",
    "ModelResponse",
    "ModelSpec",
    "NotFoundError",
    "PermissionDeniedError",
    "Price",
    "RaceInfo",
    "RateLimitError",
    "ReplayMissError",
    "ResponseMeta",
    "ResponseStream",
    "Result",
    "RetryPolicy",
    "ServiceUnavailableError",
    "StreamChunk",
    "TimeoutError",
    "ToolCall",
    "Usage",
    "__version__",
    "abatch_completion",
    "abatch_completion_models",
    "abatch_completion_models_all_responses",
    "acompletion",
    "batch_completion",
    "batch_completion_models",
    "batch_completion_models_all_responses",
    "completion",
    "get_default_harness",
    "load_config",
    "set_default_harness",
]


def completion(model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    """One chat completion with the default harness (see ``Harness.completion``).

    Returns a ``ModelResponse``, or with ``stream=True`` an iterator of chunks.
    """
    return _default().completion(model, messages, **params)


async def acompletion(model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    """Async ``completion`` (``stream=True`` returns an async iterator of chunks)."""
    return await _default().acompletion(model, messages, **params)


def batch_completion(
    model: str,
    messages: list[list[dict[str, Any]]],
    *,
    max_workers: int | None = 100,
    **params: Any,
) -> list[Result]:
    """Many conversations to one model; answers in order, errors in their slots."""
    return _default().batch_completion(model, messages, max_workers=max_workers, **params)


async def abatch_completion(
    model: str,
    messages: list[list[dict[str, Any]]],
    *,
    max_workers: int | None = 100,
    **params: Any,
) -> list[Result]:
    """Async ``batch_completion``."""
    return await _default().abatch_completion(model, messages, max_workers=max_workers, **params)


def batch_completion_models(
    models: list[str], messages: list[dict[str, Any]], **params: Any
) -> ModelResponse:
    """Race: one conversation to many models; the first successful answer wins."""
    return _default().batch_completion_models(models, messages, **params)


async def abatch_completion_models(
    models: list[str], messages: list[dict[str, Any]], **params: Any
) -> ModelResponse:
    """Async ``batch_completion_models``."""
    return await _default().abatch_completion_models(models, messages, **params)


def batch_completion_models_all_responses(
    models: list[str], messages: list[dict[str, Any]], **params: Any
) -> list[Result]:
    """Every model's answer, aligned with ``models``, errors in place."""
    return _default().batch_completion_models_all_responses(models, messages, **params)


async def abatch_completion_models_all_responses(
    models: list[str], messages: list[dict[str, Any]], **params: Any
) -> list[Result]:
    """Async ``batch_completion_models_all_responses``."""
    return await _default().abatch_completion_models_all_responses(models, messages, **params)


for _name in __all__:
    if _name in _LAZY:
        continue
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("harness.") and not _name.startswith("_"):
        try:
            _obj.__module__ = "harness"
        except (AttributeError, TypeError):
            pass


def _default() -> Harness:
    from harness.runner import get_default_harness

    return get_default_harness()
