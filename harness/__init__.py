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
from harness.compat import completion_cost, stream_chunk_builder
from harness.config import HarnessConfig, ModelSpec, Price, load_config
from harness.embeddings import Embedding, EmbeddingResponse
from harness.errors import (
    AllModelsFailed,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    ConfigError,
    ConflictError,
    ContentFilterError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    HarnessError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplayMissError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    Timeout,
    TimeoutError,
    UnprocessableEntityError,
)
from harness.retry import RetryPolicy
from harness.types import (
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    Contestant,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCall,
    Message,
    ModelResponse,
    PromptTokensDetails,
    RaceInfo,
    ResponseMeta,
    StreamChunk,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from harness.providers.streams import ResponseStream
    from harness.runner import Harness, Result, get_default_harness, set_default_harness

# The runner pulls in asyncio and httpx (~110 ms); it is imported on first use, so that
# ``import harness`` stays cheap for tools that only need the types or the config.
_LAZY = {
    "Harness": "harness.runner",
    "Result": "harness.runner",
    "get_default_harness": "harness.runner",
    "set_default_harness": "harness.runner",
    "ResponseStream": "harness.providers.streams",
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
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "AllModelsFailed",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ConfigError",
    "ConflictError",
    "ContentFilterError",
    "ContentPolicyViolationError",
    "Contestant",
    "ContextWindowExceededError",
    "Delta",
    "DeltaFunction",
    "DeltaToolCall",
    "Embedding",
    "EmbeddingResponse",
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
    "PromptTokensDetails",
    "RaceInfo",
    "RateLimitError",
    "ReplayMissError",
    "ResponseMeta",
    "ResponseStream",
    "ResponseTooLargeError",
    "Result",
    "RetryPolicy",
    "ServiceUnavailableError",
    "StreamChunk",
    "Timeout",
    "TimeoutError",
    "ToolCall",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "abatch_completion",
    "abatch_completion_models",
    "abatch_completion_models_all_responses",
    "acompletion",
    "aembedding",
    "batch_completion",
    "batch_completion_models",
    "batch_completion_models_all_responses",
    "completion",
    "completion_cost",
    "embedding",
    "get_default_harness",
    "load_config",
    "mock_completion",
    "set_default_harness",
    "stream_chunk_builder",
]


def completion(model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    """One chat completion with the default harness (see ``Harness.completion``).

    Returns a ``ModelResponse``, or with ``stream=True`` an iterator of chunks.
    """
    return _default().completion(model, messages, **params)


async def acompletion(model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    """Async ``completion`` (``stream=True`` returns an async iterator of chunks)."""
    return await _default().acompletion(model, messages, **params)


def mock_completion(
    model: str,
    messages: list[dict[str, Any]],
    stream: bool = False,
    n: int | None = None,
    mock_response: Any = "This is a mock request",
    mock_tool_calls: list[dict[str, Any]] | None = None,
    mock_timeout: bool = False,
    **params: Any,
) -> Any:
    """A scripted answer with no network call (LiteLLM's ``mock_completion``).

    ``mock_response`` is the answer (or an exception, or an error class's name);
    ``mock_tool_calls`` makes it a tool call; ``mock_timeout`` never answers, so the call
    times out. Returns what ``completion`` returns.
    """
    if mock_tool_calls is not None:
        mock_response = {"content": None, "tool_calls": mock_tool_calls}
    return completion(
        model,
        messages,
        stream=stream,
        n=n,
        mock_response=mock_response,
        mock_timeout=mock_timeout,
        **params,
    )


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


def embedding(model: str, input: str | list[str], **params: Any) -> EmbeddingResponse:
    """Embed a text or a list of texts with the default harness (see ``Harness.aembedding``).

    Returns OpenAI's embedding list: ``response.data[i].embedding`` for ``input[i]``.
    """
    return _default().embedding(model, input, **params)


async def aembedding(model: str, input: str | list[str], **params: Any) -> EmbeddingResponse:
    """Async ``embedding``."""
    return await _default().aembedding(model, input, **params)


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
