"""Checks made before any call: model names with a did-you-mean, and missing API keys.

``unknown_model`` words why a name resolves to no model and suggests the nearest alias or
provider (``difflib``); ``check_selected_models`` turns every unknown name of
``--harness-models`` into one ``pytest.UsageError``, and ``check_marker_models`` every
unknown name of a ``@pytest.mark.models(...)`` into a collection error of that test.
``missing_keys`` finds, at collection, the items whose model needs an API key that is not
set; the plugin skips them with a short reason and says so once (``key_lines``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness import Harness
    from harness.config import HarnessConfig

__all__ = [
    "MissingKey",
    "check_marker_models",
    "check_selected_models",
    "key_lines",
    "missing_keys",
    "no_key_key",
    "suggest_model",
    "unknown_model",
]

MissingKey = tuple[str, str, str]
"""``(model, provider/name, variables to set)`` of a model whose API key is not set."""

no_key_key = pytest.StashKey[MissingKey]()
"""On an item skipped for want of a key: which model and what to set."""


def suggest_model(file: HarnessConfig, name: str) -> str | None:
    """The nearest valid spelling of ``name``: an alias, or the name with a known provider."""
    from harness.providers.registry import PROVIDERS

    aliases = list(file.models)
    provider, sep, rest = name.partition("/")
    if sep:
        close = difflib.get_close_matches(provider, sorted(PROVIDERS), n=1, cutoff=0.6)
        if close and rest:
            return f"{close[0]}/{rest}"
        close = difflib.get_close_matches(name, aliases, n=1, cutoff=0.6)
        return close[0] if close else None
    close = difflib.get_close_matches(name, aliases, n=1, cutoff=0.6)
    if close:
        return close[0]
    close = difflib.get_close_matches(name, sorted(PROVIDERS), n=1, cutoff=0.8)
    return f"{close[0]}/<model>" if close else None


def unknown_model(file: HarnessConfig, name: str) -> str | None:
    """Why ``name`` is no model, with a did-you-mean; ``None`` when it resolves."""
    from harness.errors import ConfigError
    from harness.providers.registry import PROVIDERS

    try:
        file.resolve(name)
    except ConfigError:
        pass
    else:
        return None
    provider, sep, rest = name.partition("/")
    if sep and rest and provider not in PROVIDERS:
        problem = f"unknown provider {provider!r}"
    else:
        problem = "not an alias of the config nor 'provider/model'"
    hint = suggest_model(file, name)
    if hint is not None:
        return f"{name!r}: {problem}; did you mean {hint!r}?"
    aliases = ", ".join(sorted(file.models)) or "none"
    return f"{name!r}: {problem} (aliases: {aliases}; providers: {', '.join(sorted(PROVIDERS))})"


def check_selected_models(file: HarnessConfig, models: Sequence[str], flag: str) -> None:
    """Raise one ``pytest.UsageError`` listing every unknown model of the selection."""
    problems = [p for p in (unknown_model(file, m) for m in models) if p is not None]
    if not problems:
        return
    if len(problems) == 1:
        raise pytest.UsageError(f"{flag}: unknown model {problems[0]}")
    lines = "\n".join(f"  {p}" for p in problems)
    raise pytest.UsageError(f"{flag}: {len(problems)} unknown models:\n{lines}")


def check_marker_models(definition: pytest.Item, file: HarnessConfig) -> None:
    """Fail the collection of a test whose ``@pytest.mark.models(...)`` names no model."""
    marker = definition.get_closest_marker("models")
    if marker is None:
        return
    problems = [p for p in (unknown_model(file, str(m)) for m in marker.args) if p is not None]
    if problems:
        raise pytest.Collector.CollectError(
            f"{definition.nodeid}: @pytest.mark.models(...): unknown model " + "; ".join(problems)
        )


def _item_model(item: pytest.Item) -> str | None:
    """The one model an item runs against: a suite item's, or a test's ``model`` param."""
    model = getattr(item, "model", None)
    if isinstance(model, str):
        return model
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("model") if callspec is not None else None
    if not isinstance(value, str) or not _plugin_model(item):
        return None
    return value


def _plugin_model(item: pytest.Item) -> bool:
    """Whether the test's ``model`` is the plugin's fixture (not the test's own parameter).

    A test that parametrises ``model`` itself, or a conftest's ``model`` fixture, chooses
    its own models and keys; the plugin leaves those alone.
    """
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.get("model") if info is not None else None
    if not defs:
        return False
    func = getattr(defs[-1], "func", None)
    return getattr(func, "__module__", None) == "pytest_plugin._fixtures"


def _missing_key(harness: Harness, model: str) -> MissingKey | None:
    from harness.errors import ConfigError

    try:
        spec = harness.resolve(model)
    except ConfigError:
        return None  # an unknown model: collection says so elsewhere
    try:
        spec.resolve_api_key(None, spec.resolve_api_base())
    except ConfigError:
        names = (spec.api_key_env,) if spec.api_key_env else spec.info.key_env
        return model, spec.full_name, " or ".join(n for n in names if n) or "an api_key_env"
    return None


def missing_keys(
    items: Iterable[pytest.Item], get_harness: Callable[[], Harness]
) -> list[MissingKey]:
    """Skip every item whose model needs a key that is not set; the models, in order.

    Nothing is sent: the key is looked up the way a call would (``api_key_env``, then the
    provider's variables). Offline runs and ``replay`` need no key, so they skip nothing.
    The harness is made only when an item has a model.
    """
    from harness.cache import CacheMode

    found: dict[str, MissingKey | None] = {}
    for item in items:
        model = _item_model(item)
        if model is None:
            continue
        if not found:
            harness = get_harness()
            if harness.offline or harness.cache_mode is CacheMode.REPLAY:
                return []
        if model not in found:
            found[model] = _missing_key(harness, model)
        missing = found[model]
        if missing is not None:
            item.stash[no_key_key] = missing
            item.add_marker(pytest.mark.skip(reason=f"no API key: set {missing[2]}"))
    return [m for m in found.values() if m is not None]


def key_lines(missing: Sequence[MissingKey]) -> list[str]:
    """One line per model whose key is missing, naming what to set."""
    return [
        f"harness: no API key for model {model!r} ({full}): set {hint}; its items are skipped, "
        "nothing is sent"
        for model, full, hint in missing
    ]
