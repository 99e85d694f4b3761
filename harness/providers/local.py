"""A real sentence-embedding model on the CPU, with no network: ``wordllama/<config>``.

This module owns the ``wordllama`` family: embeddings from WordLlama (the optional extra
``llm-harness[embeddings]``), whose default model ``l2_supercat`` (256 dimensions, trained
with Matryoshka truncation) ships inside the package's wheel. It is loaded from the
installed package only (``disable_download=True``, its own directory as the cache), once
per process and config, in a worker thread; nothing is downloaded at run time.
``dimensions`` below 256 truncate the vectors and normalise them again. Usage counts words,
as the offline models do. These models only embed: a completion is refused.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from harness.embeddings import Embedding, EmbeddingResponse
from harness.errors import BadRequestError, ConfigError
from harness.providers.base import Call, Provider, Send
from harness.providers.offline import count_tokens
from harness.types import ResponseMeta, Usage

__all__ = ["WORDLLAMA_DIMENSIONS", "WordLlamaProvider"]

WORDLLAMA_DIMENSIONS = 256
"""The size of the vectors of the model in the wheel (smaller ``dimensions`` truncate)."""

_models: dict[str, Any] = {}
_lock = threading.Lock()


def _load(config: str) -> Any:
    """The WordLlama model ``config`` from the installed package (loaded once)."""
    with _lock:
        model = _models.get(config)
        if model is None:
            import wordllama

            model = _models[config] = wordllama.WordLlama.load(
                config,
                cache_dir=Path(wordllama.__file__).parent,
                dim=WORDLLAMA_DIMENSIONS,
                disable_download=True,
            )
        return model


def _embed(config: str, texts: list[str], dimensions: int) -> list[list[float]]:
    vectors = _load(config).embed(texts, norm=False)[:, :dimensions]
    norms = (vectors * vectors).sum(axis=1, keepdims=True) ** 0.5
    norms[norms == 0] = 1.0
    return [[float(x) for x in row] for row in vectors / norms]


class WordLlamaProvider(Provider):
    """WordLlama embeddings on the CPU, from the weights in the installed package."""

    family = "wordllama"
    needs_network = False
    supports_embeddings = True

    async def generate(self, call: Call, send: Send) -> Any:
        """Refuse: a WordLlama model embeds, it does not chat."""
        raise call.error(
            BadRequestError, f"model {call.spec.name!r} is an embeddings model: use embedding()"
        )

    async def embed(self, call: Call, send: Send) -> EmbeddingResponse:
        """Embed the texts in a worker thread (the first call loads the model).

        Raises:
            ConfigError: the ``embeddings`` extra is not installed, or the model is not in
                the installed package.
            BadRequestError: ``dimensions`` is more than 256.
        """
        texts: list[str] = call.params["input"]
        dimensions = int(call.params.get("dimensions") or WORDLLAMA_DIMENSIONS)
        if dimensions > WORDLLAMA_DIMENSIONS:
            raise call.error(
                BadRequestError,
                f"dimensions: {call.spec.full_name} has {WORDLLAMA_DIMENSIONS}, got {dimensions}",
            )
        try:
            vectors = await asyncio.to_thread(_embed, call.spec.model, texts, dimensions)
        except ImportError:
            raise call.error(
                ConfigError,
                "wordllama/ models need the embeddings extra: "
                "pip install 'llm-harness[embeddings]'",
            ) from None
        except (FileNotFoundError, AttributeError, ValueError) as exc:
            raise call.error(
                ConfigError,
                f"cannot load WordLlama model {call.spec.model!r} from the installed package "
                f"(only its bundled models load, nothing is downloaded): {exc}",
            ) from None
        tokens = sum(count_tokens(text) for text in texts)
        return EmbeddingResponse(
            model=call.spec.model,
            data=[Embedding(v, i) for i, v in enumerate(vectors)],
            usage=Usage(tokens, 0, tokens),
            harness=ResponseMeta(provider=call.spec.provider, model=call.spec.name),
        )
