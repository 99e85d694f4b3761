"""LiteLLM's helper functions over our types: ``completion_cost`` and ``stream_chunk_builder``.

Code written for LiteLLM calls these on answers and streamed chunks; here they work on
``ModelResponse`` and ``StreamChunk`` (or their OpenAI-shaped dicts):

* ``completion_cost(response)`` — what an answer cost in US dollars: the cost the runner
  already put on it (``response.harness.cost_usd``, from the configured price or the
  built-in table in ``harness.prices``), else the model's price applied to its usage.
* ``stream_chunk_builder(chunks)`` — the ``ModelResponse`` a list of chunks adds up to,
  assembled by the OpenAI stream parser (the same code that assembles every live stream).

The module imports nothing heavy at import time; the runner and the parser load on use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from harness.errors import ConfigError, HarnessError
from harness.prices import Price, builtin_price
from harness.types import ModelResponse, StreamChunk

__all__ = ["completion_cost", "stream_chunk_builder"]

_OFFLINE = ("echo", "mock")
USAGE_UNKNOWN = "usage_unknown"
"""The flag ``stream_chunk_builder`` sets when the chunks carried no usage."""


def completion_cost(
    completion_response: ModelResponse | Mapping[str, Any] | None = None,
    model: str | None = None,
    **_litellm_only: Any,
) -> float:
    """The cost of an answer in US dollars, as LiteLLM's ``completion_cost`` returns it.

    Args:
        completion_response: the answer (a ``ModelResponse`` or its OpenAI dict).
        model: price the answer as this model (an alias or ``provider/model``) instead of
            the model that answered.
        **_litellm_only: LiteLLM's other parameters (``prompt``, ``messages``, ...) are
            accepted and ignored: the harness prices answers by their reported usage and
            never counts tokens itself.

    Returns:
        The cost: ``0.0`` for a replayed answer (nothing was spent) and for offline models
        without a configured price.

    Raises:
        ConfigError: no answer was given, no price is known for the model (configure
            ``price`` on its alias or a ``[prices."provider/model"]`` table), or the
            answer's usage is unknown (chunks assembled without the usage chunk).
    """
    if completion_response is None:
        raise ConfigError(
            "completion_cost needs the answer (completion_response=...): the harness prices "
            "answers by the usage the provider reported and does not count tokens itself"
        )
    response = (
        completion_response
        if isinstance(completion_response, ModelResponse)
        else ModelResponse.from_dict(completion_response)
    )
    meta = response.harness
    if model is None and meta.cost_usd is not None:
        return meta.cost_usd
    if meta.replayed:
        return 0.0
    if USAGE_UNKNOWN in meta.flags:
        raise ConfigError(
            "the answer's usage is unknown: its chunks carried none; stream with "
            "stream_options={'include_usage': True}, or price stream.response instead"
        )
    provider, price = _price_of(model or meta.model or response.model, meta.provider)
    if price is None:
        if provider in _OFFLINE:
            return 0.0
        shown = model or meta.model or response.model
        raise ConfigError(
            f"no price is known for model {shown!r}: give its alias a price = "
            "{input_per_mtok = ..., output_per_mtok = ...}, or add a "
            '[prices."provider/model"] table to the config',
            model=shown,
        )
    usage = response.usage
    return price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


def _price_of(name: str, provider: str) -> tuple[str | None, Price | None]:
    """The provider and price of ``name``: the default harness's config, else the table."""
    from harness.runner import get_default_harness

    try:
        spec = get_default_harness().resolve(name)
    except HarnessError:
        # The provider's own model name (``gpt-4o-mini-2024-07-18``) under the provider
        # that answered.
        return provider or None, builtin_price(provider, name) if provider else None
    return spec.provider, spec.price


def stream_chunk_builder(
    chunks: Iterable[StreamChunk | Mapping[str, Any]],
    messages: list[dict[str, Any]] | None = None,
) -> ModelResponse:
    """The ``ModelResponse`` that streamed chunks add up to (LiteLLM's function).

    Text, reasoning, refusals and tool-call fragments are joined per choice, finish reasons
    and usage are taken from the chunks. Chunks without a usage chunk (a stream without
    ``stream_options={"include_usage": True}``) give zero usage, flagged ``usage_unknown``
    in ``harness.flags``; ``stream.response`` of a harness stream always has the usage.

    Args:
        chunks: ``StreamChunk`` objects or their OpenAI-shaped dicts, in order.
        messages: accepted for LiteLLM's signature; not needed.

    Raises:
        InvalidResponseError: the chunks have no choices or do not parse.
    """
    from harness.config import ModelSpec
    from harness.providers.base import Call, get_provider
    from harness.providers.openai import OpenAIProvider

    items = list(chunks)
    first = items[0] if items else {}
    model = str(first.get("model") or "")
    call = Call(spec=ModelSpec(name=model or "stream", provider="openai", model=model), messages=[])
    adapter = get_provider("openai")
    assert isinstance(adapter, OpenAIProvider)
    parser = adapter.stream_parser(call)
    has_usage = False
    for chunk in items:
        data = chunk.to_dict() if isinstance(chunk, StreamChunk) else dict(chunk)
        has_usage = has_usage or bool(data.get("usage"))
        parser.feed(None, json.dumps(data))
    parser.feed(None, "[DONE]")
    response = parser.finish()
    response.harness.provider = ""
    response.harness.model = model
    if not has_usage:
        response.harness.flags.append(USAGE_UNKNOWN)
    return response
