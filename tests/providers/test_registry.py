"""The provider table: third-party providers (by call and by entry point), lazy adapters."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from harness import Harness
from harness.config import PROVIDERS, parse_model_string
from harness.errors import ConfigError, InternalServerError
from harness.providers import ProviderInfo, register_provider, registry
from harness.providers.base import Call, Provider, Send, get_provider
from harness.providers.wire import FinishReasons, map_finish_reason
from harness.types import ModelResponse, ResponseMeta

USER = [{"role": "user", "content": "say it backwards"}]


class TinyProvider(Provider):
    """A third party's offline adapter: answers with the last user message reversed."""

    family = "tiny-test"
    needs_network = False

    async def generate(self, call: Call, send: Send) -> ModelResponse:
        """Reverse the last message; no network."""
        text = str(call.messages[-1]["content"])[::-1]
        return ModelResponse(
            id="tiny-1",
            model=call.spec.model,
            choices=[{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            usage={"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            harness=ResponseMeta(provider=call.spec.provider, model=call.spec.name),
        )


TINY = ProviderInfo("tiny-test", None, key_required=False)


def tiny_info() -> ProviderInfo:
    """The entry point's factory (``tests.providers.test_registry:tiny_info``)."""
    return TINY


@pytest.fixture(autouse=True)
def restore_table() -> Iterator[None]:
    """Leave the provider table as it was: registrations are process-wide."""
    saved = dict(registry._PROVIDERS)
    yield
    registry._PROVIDERS.clear()
    registry._PROVIDERS.update(saved)


def _entry_points(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> list[str]:
    """Make ``importlib.metadata.entry_points`` list one provider entry point; log lookups."""
    groups: list[str] = []
    entry = importlib.metadata.EntryPoint(name, value, registry.ENTRY_POINT_GROUP)

    def entry_points(**kw: Any) -> list[importlib.metadata.EntryPoint]:
        groups.append(kw.get("group", ""))
        return [entry] if kw.get("group") == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return groups


def test_a_registered_provider_completes_a_call_through_its_adapter() -> None:
    register_provider("tiny", TINY)

    spec = parse_model_string("tiny/rev-1")
    response = Harness().completion("tiny/rev-1", USER)

    assert (spec.provider, spec.family, spec.model) == ("tiny", "tiny-test", "rev-1")
    assert "tiny" in PROVIDERS
    assert response.choices[0].message.content == "sdrawkcab ti yas"
    assert response.harness.provider == "tiny"
    assert isinstance(get_provider("tiny-test"), TinyProvider)


def test_an_entry_point_is_read_for_an_unknown_provider_name(monkeypatch) -> None:
    groups = _entry_points(monkeypatch, "tinyep", "tests.providers.test_registry:tiny_info")

    assert "tinyep" not in PROVIDERS
    response = Harness().completion("tinyep/rev-1", USER)

    assert groups == [registry.ENTRY_POINT_GROUP]
    assert PROVIDERS["tinyep"] is TINY
    assert response.choices[0].message.content == "sdrawkcab ti yas"
    parse_model_string("tinyep/again")
    assert groups == [registry.ENTRY_POINT_GROUP]  # read once: the name is known now


def test_an_unknown_provider_is_still_a_config_error_naming_the_known_ones(monkeypatch) -> None:
    groups = _entry_points(monkeypatch, "other", "tests.providers.test_registry:tiny_info")

    with pytest.raises(ConfigError, match=r"unknown provider 'nope'.*known providers: .*openai"):
        parse_model_string("nope/model")
    assert groups == [registry.ENTRY_POINT_GROUP]
    assert "other" not in PROVIDERS


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tests.providers.test_registry:USER", "gave list, not a ProviderInfo"),
        ("tests.providers.no_such_module:info", "failed: ModuleNotFoundError"),
    ],
)
def test_a_broken_entry_point_is_a_config_error_naming_it(monkeypatch, value, message) -> None:
    _entry_points(monkeypatch, "broken", value)

    with pytest.raises(ConfigError, match=message) as info:
        parse_model_string("broken/model")
    assert value in str(info.value)


def test_a_taken_name_needs_replace_and_a_name_has_no_slash() -> None:
    register_provider("tiny", TINY)
    register_provider("tiny", TINY)  # the same declaration again: a no-op

    other = ProviderInfo("tiny-test", "http://localhost:9/v1", key_required=False)
    with pytest.raises(ValueError, match="already registered"):
        register_provider("tiny", other)
    register_provider("tiny", other, replace=True)
    with pytest.raises(ValueError, match="without '/'"):
        register_provider("a/b", TINY)

    assert PROVIDERS["tiny"] is other
    assert parse_model_string("tiny/m").resolve_api_base() == "http://localhost:9/v1"


def test_the_base_url_is_the_call_then_config_then_environment_then_default(monkeypatch) -> None:
    spec = parse_model_string("anthropic/claude")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert Call(spec, USER).base_url() == "https://api.anthropic.com"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://env:1/")
    assert Call(spec, USER).base_url() == "http://env:1"
    configured = replace(spec, api_base="http://conf:2/")
    assert Call(configured, USER).base_url() == "http://conf:2"
    assert Call(configured, USER, api_base="http://call:3/").base_url() == "http://call:3"
    for var in PROVIDERS["azure"].base_env:
        monkeypatch.delenv(var, raising=False)
    assert Call(parse_model_string("azure/dep"), USER).base_url() is None


def test_finish_reason_tables_map_flag_filter_and_fail() -> None:
    a = FinishReasons({"done": "stop"}, flagged=frozenset({"done"}))
    b = FinishReasons({"cut": "length"}, frozenset({"BLOCKED"}), {"BROKE": InternalServerError})
    both = a | b

    assert map_finish_reason("done", both) == ("stop", ["done"])
    assert map_finish_reason("cut", both) == ("length", [])
    assert map_finish_reason("BLOCKED", both) == ("content_filter", [])
    assert map_finish_reason(None, both) == ("stop", [])
    assert map_finish_reason("cut", a) == ("stop", ["unknown_finish_reason:cut"])
    with pytest.raises(InternalServerError, match="'BROKE'"):
        map_finish_reason("BROKE", both)


def test_resolving_model_strings_imports_no_adapter_and_no_httpx() -> None:
    code = (
        "import sys, harness\n"
        "from harness.config import parse_model_string\n"
        "for name in ('openai/a', 'anthropic/b', 'gemini/c', 'cohere/d', 'groq/e', 'mock/f'):\n"
        "    parse_model_string(name).resolve_api_base()\n"
        "print(sorted(m for m in sys.modules if m == 'httpx' or m.startswith('harness.providers')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['harness.providers', 'harness.providers.registry']"
