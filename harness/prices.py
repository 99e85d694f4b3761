"""Model prices: the ``Price`` type and a built-in, dated table of list prices.

This module owns ``Price`` (US dollars per million prompt, completion and cached prompt
tokens, and the cost of one call) and a small table of the list prices of the current chat
models (and the embeddings models, priced per input token only) of the providers that
publish one price per model name: ``openai``, ``anthropic``,
``gemini``, ``cohere``, ``mistral``, ``deepseek`` and ``groq``. ``builtin_price`` looks a
``provider/model`` pair up, ``known_prices`` lists the whole table.

``estimate_prompt_tokens`` and ``DEFAULT_MAX_OUTPUT_TOKENS`` give the cost cap its
estimate of a call before it is sent (``Price.cost(estimate_prompt_tokens(messages),
max_tokens or DEFAULT_MAX_OUTPUT_TOKENS)``): no tokenizer, a character count.

Some providers get no built-in price on purpose:

* ``azure``: a model is named by its deployment, which is an arbitrary name chosen by the
  user, and Azure's prices vary with the region and the deployment type;
* ``together``, ``openrouter`` and the local servers (``ollama``, ``vllm``, ``llamacpp``,
  ``lm_studio``): they host other publishers' models, so the price depends on the host
  (and is nothing at all on your own machine).

Give those a ``price`` in the config. The figures are a snapshot (see ``PRICES_AS_OF``):
list prices change, and a configured ``price`` always wins over this table. The table is a
plain literal, so importing this module reads no file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "PRICES_AS_OF",
    "Price",
    "builtin_price",
    "estimate_prompt_tokens",
    "known_prices",
]

DEFAULT_MAX_OUTPUT_TOKENS = 1024
"""Completion tokens the cost cap assumes for a call that sets no ``max_tokens``."""

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4  # role and separators, as OpenAI's chat format counts them
_TOKENS_PER_REPLY = 3  # the assistant turn the answer starts
_TOKENS_PER_NON_TEXT_PART = 85  # an image part at low detail (OpenAI)


def _text_tokens(text: str) -> int:
    return -(-len(text) // _CHARS_PER_TOKEN)  # characters / 4, rounded up


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], texts: Sequence[str] = (), tools: Any = None
) -> int:
    """A cheap estimate of a call's prompt tokens, for the cost cap (no tokenizer).

    Each message counts its text at four characters a token, rounded up, plus 4 tokens
    (role, separators), and the reply 3 more; a non-text content part (an image) counts
    85; ``tools`` count their JSON text. Embeddings ``texts`` count their characters only.
    English prose is about four characters a token; code and other scripts use more
    tokens per character, so the estimate can be low for them.
    """
    tokens = sum(_text_tokens(t) for t in texts)
    if messages:
        tokens += _TOKENS_PER_REPLY
    for message in messages:
        tokens += _TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            tokens += _text_tokens(content)
        elif isinstance(content, Sequence):
            for part in content:
                text = part.get("text") if isinstance(part, Mapping) else part
                if isinstance(text, str):
                    tokens += _text_tokens(text)
                else:
                    tokens += _TOKENS_PER_NON_TEXT_PART
        for key in ("tool_calls", "function_call", "name"):
            if message.get(key):
                tokens += _text_tokens(_json(message[key]))
    if tools:
        tokens += _text_tokens(_json(tools))
    return tokens


def _json(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, default=str)


@dataclass(frozen=True, slots=True)
class Price:
    """Token prices in US dollars per million tokens."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None
    """Price of a cached prompt token; ``None`` means the same as ``input_per_mtok``."""

    def cost(
        self, prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None
    ) -> float:
        """Cost in dollars of one call with these token counts.

        Args:
            prompt_tokens: All prompt tokens, cached ones included (OpenAI's convention).
            completion_tokens: Completion tokens, reasoning included.
            cached_tokens: How many of the prompt tokens were read from the provider's
                prompt cache; clamped to ``[0, prompt_tokens]``. ``None`` or ``0`` bills
                the whole prompt at ``input_per_mtok``.

        Returns:
            The cost in US dollars.
        """
        if not cached_tokens or self.cached_input_per_mtok is None:
            return (
                prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
            ) / 1e6
        cached = min(max(cached_tokens, 0), max(prompt_tokens, 0))
        return (
            (prompt_tokens - cached) * self.input_per_mtok
            + cached * self.cached_input_per_mtok
            + completion_tokens * self.output_per_mtok
        ) / 1e6


# The figures below were taken from each provider's pricing page (cited above its group) as
# mirrored in LiteLLM's public price map, version 1.110.2, on this date.
PRICES_AS_OF = "2026-12-07"
"""The date of the figures in the built-in table (ISO 8601)."""

# provider -> model -> (input, output, cached input) in USD per million tokens; a cached
# input of None means the provider lists no separate price for cache reads.
_TABLE: Mapping[str, Mapping[str, tuple[float, float, float | None]]] = MappingProxyType(
    {
        # https://developers.openai.com/api/docs/pricing
        "openai": {
            "gpt-4o": (2.5, 10.0, 1.25),
            "gpt-4o-mini": (0.15, 0.6, 0.075),
            "gpt-4.1": (2.0, 8.0, 0.5),
            "gpt-4.1-mini": (0.4, 1.6, 0.1),
            "gpt-5": (1.25, 10.0, 0.125),
            "gpt-5-mini": (0.25, 2.0, 0.025),
            "gpt-5-nano": (0.05, 0.4, 0.005),
            "gpt-5.1": (1.25, 10.0, 0.125),
            "gpt-5.2": (1.75, 14.0, 0.175),
            "gpt-5.4": (2.5, 15.0, 0.25),
            "gpt-5.4-mini": (0.75, 4.5, 0.075),
            "gpt-5.4-nano": (0.2, 1.25, 0.02),
            "gpt-5.5": (5.0, 30.0, 0.5),
            "gpt-5.5-cyber": (12.5, 75.0, 1.25),
            "gpt-5.5-cyber-preview": (12.5, 75.0, 1.25),
            "gpt-5.6": (4.0, 20.0, 0.4),
            "gpt-5.6-sol": (4.0, 20.0, 0.4),
            "gpt-5.6-terra": (2.0, 12.0, 0.2),
            "gpt-5.6-luna": (0.2, 1.2, 0.02),
            "gpt-5.6-cyber": (12.5, 75.0, 1.25),
            "gpt-6-astra": (10.0, 50.0, 1.0),
            "gpt-6-astra-law": (10.0, 50.0, 1.0),
            "gpt-6-sol": (2.0, 10.0, 0.2),
            "gpt-6-luna": (0.1, 0.5, 0.01),
            "gpt-6-cyber": (20.0, 100.0, 2.0),
            "gpt-6-rosalind": (15.0, 75.0, 1.5),
            "gpt-6.1-sol": (2.0, 10.0, 0.1),
            "gpt-6.1-terra": (1.0, 5.0, 0.05),
            "o3": (2.0, 8.0, 0.5),
            # Embeddings: input tokens only.
            "text-embedding-3-small": (0.02, 0.0, None),
            "text-embedding-3-large": (0.13, 0.0, None),
            "text-embedding-ada-002": (0.1, 0.0, None),
        },
        # https://platform.claude.com/docs/en/about-claude/pricing
        "anthropic": {
            "claude-haiku-4-5": (1.0, 5.0, 0.1),
            "claude-sonnet-4-6": (3.0, 15.0, 0.3),
            "claude-opus-4-5": (5.0, 25.0, 0.5),
            "claude-opus-4-6": (5.0, 25.0, 0.5),
            "claude-opus-4-7": (5.0, 25.0, 0.5),
            "claude-opus-4-8": (5.0, 25.0, 0.5),
            "claude-haiku-5-5": (0.1, 0.5, 0.01),
            "claude-sonnet-5": (2.0, 10.0, 0.2),
            "claude-sonnet-5-5": (2.0, 10.0, 0.1),
            "claude-opus-5": (5.0, 25.0, 0.5),
            "claude-opus-5-5": (4.0, 20.0, 0.2),
            "claude-fable-5": (10.0, 50.0, 1.0),
            "claude-fable-5-1": (10.0, 50.0, 0.25),
            "claude-mythos-5": (10.0, 50.0, 1.0),
            "claude-mythos-5-1": (10.0, 50.0, 0.25),
        },
        # https://ai.google.dev/gemini-api/docs/pricing
        "gemini": {
            "gemini-2.5-flash-lite": (0.1, 0.4, 0.01),
            "gemini-3-flash-preview": (0.5, 3.0, 0.05),
            "gemini-3.1-flash-lite": (0.25, 1.5, 0.025),
            "gemini-3.1-pro-preview": (2.0, 12.0, 0.2),
            "gemini-3.1-pro-preview-customtools": (2.0, 12.0, 0.2),
            "gemini-3.5-flash": (1.5, 9.0, 0.15),
            "gemini-3.5-flash-lite": (0.3, 2.5, 0.03),
            "gemini-3.6-flash": (0.75, 3.75, 0.075),
            "gemini-3.7-flash": (0.75, 3.75, 0.075),
            "gemini-3.8-flash": (0.75, 3.75, 0.075),
            "gemini-flash-latest": (0.75, 3.75, 0.075),
            "gemini-flash-lite-latest": (0.3, 2.5, 0.03),
            "gemini-pro-latest": (2.0, 12.0, 0.2),
            # Embeddings: input tokens only.
            "gemini-embedding-001": (0.15, 0.0, None),
        },
        # https://cohere.com/pricing
        # Cohere publishes dated names only; they are the keys here.
        "cohere": {
            "command-a-03-2025": (2.5, 10.0, None),
            "command-r-08-2024": (0.15, 0.6, None),
            "command-r-plus-08-2024": (2.5, 10.0, None),
            "command-r7b-12-2024": (0.0375, 0.15, None),
            # Embeddings (text input): input tokens only.
            "embed-v4.0": (0.12, 0.0, None),
            "embed-english-v3.0": (0.1, 0.0, None),
            "embed-multilingual-v3.0": (0.1, 0.0, None),
        },
        # https://mistral.ai/pricing
        "mistral": {
            "mistral-large-latest": (0.5, 1.5, 0.05),
            "mistral-large-3": (0.5, 1.5, 0.05),
            "mistral-large-4": (0.7, 2.1, 0.07),
            "mistral-medium-latest": (1.5, 7.5, 0.15),
            "mistral-medium-3": (1.5, 7.5, 0.15),
            "mistral-medium-3.5": (1.5, 7.5, 0.15),
            "mistral-medium-3-5": (1.5, 7.5, 0.15),
            "mistral-small-latest": (0.15, 0.6, 0.015),
            "magistral-medium-latest": (1.5, 7.5, 0.15),
            "magistral-small-latest": (0.15, 0.6, 0.015),
            "codestral-latest": (0.3, 0.9, 0.03),
            "devstral-latest": (0.4, 2.0, 0.04),
            "devstral-medium-latest": (0.4, 2.0, 0.04),
            "devstral-small-latest": (0.1, 0.3, 0.01),
            "ministral-3b-latest": (0.1, 0.1, 0.01),
            "ministral-8b-latest": (0.15, 0.15, 0.015),
            "ministral-14b-latest": (0.2, 0.2, 0.02),
            "pixtral-large-latest": (2.0, 6.0, 0.2),
            "open-mistral-nemo": (0.3, 0.3, 0.03),
            "mistral-code-latest": (0.3, 0.9, 0.03),
            "mistral-code-agent-latest": (0.4, 2.0, 0.04),
        },
        # https://api-docs.deepseek.com/quick_start/pricing
        "deepseek": {
            "deepseek-v4-flash": (0.3, 1.2, 0.006),
            "deepseek-v4-pro": (1.32, 3.96, 0.044),
            "deepseek-flash": (0.3, 1.2, 0.006),
            "deepseek-v4-flash-vision-exp": (0.3, 1.2, 0.006),
        },
        # https://groq.com/pricing
        # Groq's model names carry the publisher: ``groq/openai/gpt-oss-120b``.
        "groq": {
            "openai/gpt-oss-120b": (0.15, 0.6, 0.075),
            "openai/gpt-oss-20b": (0.075, 0.3, 0.0375),
        },
    }
)

_NO_SNAPSHOT_FALLBACK: frozenset[tuple[str, str]] = frozenset(
    {
        # Priced 5.00 / 15.00, unlike later gpt-4o snapshots; retired, so no price at all.
        ("openai", "gpt-4o-2024-05-13"),
    }
)
"""Dated names whose price differed from their undated base: never resolved by stripping."""

_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{2}-\d{4})$")
"""A snapshot suffix: ``-2024-07-18``, ``-20251001`` or ``-08-2024``."""


def _price(row: tuple[float, float, float | None]) -> Price:
    return Price(row[0], row[1], row[2])


@lru_cache(maxsize=1024)
def builtin_price(provider: str, model: str) -> Price | None:
    """The built-in list price of ``provider/model``, or ``None`` if the table lacks it.

    The exact name is looked up first; failing that, one dated snapshot suffix
    (``-YYYY-MM-DD``, ``-YYYYMMDD`` or ``-MM-YYYY``) is stripped and the undated name looked
    up, so ``gpt-4o-mini-2024-07-18`` gets the price of ``gpt-4o-mini``.

    Args:
        provider: The provider part of a ``provider/model`` string (``"openai"``).
        model: The provider's model name (``"gpt-4o-mini"``).

    Returns:
        The price as of ``PRICES_AS_OF``, or ``None`` for an unknown model and for providers
        without built-in prices (Azure, Together, OpenRouter, local servers).
    """
    models = _TABLE.get(provider)
    if models is None:
        return None
    row = models.get(model)
    if row is None:
        match = _DATED.search(model)
        if match is None or (provider, model) in _NO_SNAPSHOT_FALLBACK:
            return None
        row = models.get(model[: match.start()])
        if row is None:
            return None
    return _price(row)


def known_prices() -> Mapping[str, Price]:
    """Every built-in price, keyed by ``provider/model``, for docs and tests.

    Returns:
        A new read-only mapping from ``"provider/model"`` to its ``Price``.
    """
    return MappingProxyType(
        {
            f"{provider}/{model}": _price(row)
            for provider, models in _TABLE.items()
            for model, row in models.items()
        }
    )
