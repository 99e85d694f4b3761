"""The provider table: what the harness knows about each named provider before any config.

A provider name (``openai``, ``groq``, ``anthropic``, ``mock``, …) maps to a light
``ProviderInfo``: the adapter family that speaks its API, its default base URL, the
environment variables of its key and base URL, and the module that defines the adapter,
imported only when a call needs it. Resolving ``provider/model`` strings and
``import harness`` read this table and never import an adapter (nor httpx).

Third parties add providers without editing the harness, in either of two ways:

* call ``register_provider(name, info)`` (also ``harness.providers.register_provider``);
* declare an entry point in the ``harness.providers`` group, named after the provider, whose
  object is a ``ProviderInfo`` or a callable returning one. It is read lazily, the first
  time a model string names a provider the table does not know.

The adapter is a ``Provider`` subclass (``harness.providers.base``) whose ``family`` is
``info.family``; defining the class registers it, and ``info.module`` names the module to
import when the class is not defined yet. The built-in adapters declare the rest of their
knowledge (finish reasons, error mapping, request building, parsing) in their own modules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from harness.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROVIDERS",
    "ProviderInfo",
    "adapter_class",
    "provider_info",
    "register_adapter",
    "register_provider",
    "resolve_api_base",
]

ENTRY_POINT_GROUP = "harness.providers"
"""The entry-point group read for provider names the table does not know."""


class ProviderInfo(NamedTuple):
    """What the harness knows about a named provider before any config.

    A named tuple: immutable, and six times cheaper to define at import time than a frozen
    dataclass (``import harness`` reads this table).
    """

    family: str
    """The adapter that speaks its API: openai, azure, anthropic, gemini, cohere, echo, mock,
    or a third party's."""
    api_base: str | None
    """The default base URL; ``None`` when each user must configure one (Azure)."""
    key_env: tuple[str, ...] = ()
    """Environment variables that may hold the key, first found wins."""
    key_required: bool = True
    base_env: tuple[str, ...] = ()
    """Environment variables that may override the base URL."""
    openai_native: bool = False
    """OpenAI itself (sends ``max_completion_tokens``); compatible servers get ``max_tokens``."""
    module: str | None = None
    """The module defining the adapter of ``family``, imported on first use; ``None`` when
    the adapter class is defined (so registered) before the first call."""


def _openai(base: str, *key_env: str, required: bool = True) -> ProviderInfo:
    return ProviderInfo("openai", base, key_env, key_required=required, module=_OPENAI)


_OPENAI = "harness.providers.openai"
_OFFLINE = "harness.providers.offline"

_PROVIDERS: dict[str, ProviderInfo] = {
    # harness.providers.openai: OpenAI, Azure OpenAI and the OpenAI-compatible servers
    "openai": ProviderInfo(
        "openai",
        "https://api.openai.com/v1",
        ("OPENAI_API_KEY",),
        base_env=("OPENAI_BASE_URL",),
        openai_native=True,
        module=_OPENAI,
    ),
    "azure": ProviderInfo(
        "azure",
        None,
        ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY"),
        base_env=("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE"),
        module=_OPENAI,
    ),
    "ollama": _openai("http://localhost:11434/v1", required=False),
    "vllm": _openai("http://localhost:8000/v1", "VLLM_API_KEY", required=False),
    "hosted_vllm": _openai("http://localhost:8000/v1", "VLLM_API_KEY", required=False),
    "llamacpp": _openai("http://127.0.0.1:8080/v1", "LLAMA_API_KEY", required=False),
    "lm_studio": _openai("http://localhost:1234/v1", "LM_STUDIO_API_KEY", required=False),
    "groq": _openai("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": _openai("https://api.together.xyz/v1", "TOGETHER_API_KEY", "TOGETHERAI_API_KEY"),
    "together_ai": _openai(
        "https://api.together.xyz/v1", "TOGETHER_API_KEY", "TOGETHERAI_API_KEY"
    ),
    "openrouter": _openai("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "mistral": _openai("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": _openai("https://api.deepseek.com", "DEEPSEEK_API_KEY"),
    # harness.providers.anthropic
    "anthropic": ProviderInfo(
        "anthropic",
        "https://api.anthropic.com",
        ("ANTHROPIC_API_KEY",),
        base_env=("ANTHROPIC_BASE_URL",),
        module="harness.providers.anthropic",
    ),
    # harness.providers.gemini
    "gemini": ProviderInfo(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        base_env=("GOOGLE_GEMINI_BASE_URL",),
        module="harness.providers.gemini",
    ),
    # harness.providers.cohere
    "cohere": ProviderInfo(
        "cohere",
        "https://api.cohere.com",
        ("CO_API_KEY", "COHERE_API_KEY"),
        base_env=("CO_API_URL",),
        module="harness.providers.cohere",
    ),
    # harness.providers.offline
    "echo": ProviderInfo("echo", None, key_required=False, module=_OFFLINE),
    "mock": ProviderInfo("mock", None, key_required=False, module=_OFFLINE),
    # harness.providers.local: embeddings on the CPU (the ``embeddings`` extra)
    "wordllama": ProviderInfo(
        "wordllama", None, key_required=False, module="harness.providers.local"
    ),
}

PROVIDERS: Mapping[str, ProviderInfo] = MappingProxyType(_PROVIDERS)
"""Every provider known so far, by name (read-only; grows with ``register_provider``)."""

_ADAPTERS: dict[str, Any] = {}
"""Adapter classes by family, filled as ``Provider`` subclasses are defined."""


def register_provider(name: str, info: ProviderInfo, *, replace: bool = False) -> ProviderInfo:
    """Add the provider ``name`` (models ``name/<model>``), described by ``info``.

    Registering the same ``info`` again is a no-op; a different one for a known name needs
    ``replace=True``. Returns ``info``.

    Raises:
        ValueError: ``name`` is empty or contains ``/``, or is taken and ``replace`` is off.
    """
    if not name or "/" in name:
        raise ValueError(f"a provider name is a non-empty string without '/', got {name!r}")
    known = _PROVIDERS.get(name)
    if known is not None and known != info and not replace:
        raise ValueError(f"provider {name!r} is already registered; pass replace=True")
    _PROVIDERS[name] = info
    return info


def provider_info(name: str) -> ProviderInfo | None:
    """The table entry of ``name``; an unknown name is looked up in the entry points.

    Raises:
        ConfigError: the entry point of ``name`` fails to load or gives no ``ProviderInfo``.
    """
    info = _PROVIDERS.get(name)
    if info is not None:
        return info
    return _from_entry_point(name)


def _from_entry_point(name: str) -> ProviderInfo | None:
    from importlib import metadata

    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name != name:
            continue
        try:
            loaded = entry.load()
            info = loaded() if callable(loaded) else loaded
        except Exception as exc:  # a third party's import or factory failed
            raise ConfigError(
                f"provider {name!r}: entry point {entry.value!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(info, ProviderInfo):
            raise ConfigError(
                f"provider {name!r}: entry point {entry.value!r} gave "
                f"{type(info).__name__}, not a ProviderInfo"
            )
        return register_provider(name, info, replace=True)
    return None


def register_adapter(family: str, cls: Any) -> None:
    """Record ``cls`` as the adapter of ``family`` (``Provider.__init_subclass__`` calls it)."""
    _ADAPTERS[family] = cls


def adapter_class(family: str) -> Any:
    """The adapter class of ``family``, importing the module the table names for it.

    Raises:
        KeyError: no adapter of ``family`` is defined, even after the import.
    """
    cls = _ADAPTERS.get(family)
    if cls is None:
        modules = [i.module for i in _PROVIDERS.values() if i.family == family and i.module]
        if modules:
            import importlib

            importlib.import_module(modules[0])
        cls = _ADAPTERS[family]
    return cls


def resolve_api_base(
    info: ProviderInfo, configured: str | None = None, override: str | None = None
) -> str | None:
    """The base URL of a call, without a trailing ``/``: the one place that decides it.

    The call's ``override`` (``api_base=``/``base_url=``), then the ``configured`` one (the
    model's ``api_base``), then the first of ``info.base_env`` that is set, then the
    provider's default (``None`` when it has none).
    """
    if override:
        return override.rstrip("/")
    if configured:
        return configured.rstrip("/")
    for var in info.base_env:
        value = os.environ.get(var)
        if value:
            return value.rstrip("/")
    return info.api_base
