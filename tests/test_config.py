"""Config loading, model strings, aliases and key lookup: precise errors before any request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import ConfigError, Harness, HarnessConfig, load_config
from harness.config import PROVIDERS, parse_model_string

USER = [{"role": "user", "content": "hi"}]


def test_model_strings_resolve_to_providers():
    spec = parse_model_string("anthropic/claude-3-5-haiku-latest")
    assert (spec.provider, spec.model, spec.family) == (
        "anthropic",
        "claude-3-5-haiku-latest",
        "anthropic",
    )
    groq = parse_model_string("groq/llama-3.1-8b-instant")
    assert groq.family == "openai" and groq.resolve_api_base() == "https://api.groq.com/openai/v1"
    assert parse_model_string("openrouter/meta-llama/llama-3-70b").model == "meta-llama/llama-3-70b"


@pytest.mark.parametrize(
    ("bare", "provider"),
    [
        ("gpt-3.5-turbo", "openai"),
        ("claude-instant-1.2", "anthropic"),
        ("command-nightly", "cohere"),
        ("gemini-2.5-flash", "gemini"),
        ("o3-mini", "openai"),
        ("deepseek-chat", "deepseek"),
    ],
)
def test_litellm_style_bare_names_are_inferred(bare, provider):
    assert parse_model_string(bare).provider == provider


def test_unknown_provider_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown provider 'nope'.*known providers: anthropic"):
        parse_model_string("nope/model")
    with pytest.raises(ConfigError, match="not of the form 'provider/model'.*aliases fast"):
        HarnessConfig.from_dict({"models": {"fast": {"model": "mock/a"}}}).resolve("llama")


def test_missing_key_is_a_config_error_before_any_request(monkeypatch):
    calls: list[httpx.Request] = []
    h = Harness(transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)))
    with pytest.raises(ConfigError, match="set ANTHROPIC_API_KEY"):
        h.completion("anthropic/claude-3-5-haiku-latest", USER)
    with pytest.raises(ConfigError, match="set GEMINI_API_KEY or GOOGLE_API_KEY"):
        h.batch_completion_models_all_responses(["echo/x", "gemini/gemini-2.5-flash"], USER)
    assert calls == []
    monkeypatch.setenv("GOOGLE_API_KEY", "test-google-key-123")
    assert h.prepare("gemini/gemini-2.5-flash", USER, {}).api_key == "test-google-key-123"


def test_local_servers_need_no_key():
    h = Harness()
    assert h.prepare("ollama/llama3.2", USER, {}).api_key is None
    call = h.prepare("openai/my-model", USER, {"api_base": "http://127.0.0.1:8000/v1"})
    assert call.api_key is None and call.api_base == "http://127.0.0.1:8000/v1"


def test_harness_toml_is_found_and_aliases_apply(tmp_path: Path, monkeypatch):
    (tmp_path / "harness.toml").write_text(
        """
[defaults]
timeout = 30
retries = 1

[models.fast]
model = "openai/gpt-4o-mini"
max_concurrency = 16
params = { temperature = 0 }
price = { input_per_mtok = 0.15, output_per_mtok = 0.60 }

[models.local]
model = "openai/llama3.2"
api_base = "http://localhost:11434/v1"
api_key_env = "NONE"
"""
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.timeout == 30 and cfg.retries == 1 and cfg.source.endswith("harness.toml")
    fast = cfg.resolve("fast")
    assert fast.max_concurrency == 16 and dict(fast.params) == {"temperature": 0}
    assert fast.price is not None and fast.price.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    local = Harness().prepare("local", USER, {})
    assert local.api_key is None and local.api_base == "http://localhost:11434/v1"
    assert local.params == {}


def test_pyproject_tool_harness_table_is_read(tmp_path: Path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.harness.models.demo]\nmodel = "mock/demo"\nresponses = ["hey"]\n'
    )
    monkeypatch.chdir(tmp_path)
    assert Harness().completion("demo", USER).content == "hey"


@pytest.mark.asyncio
async def test_a_configured_mock_ttft_paces_its_stream(tmp_path: Path, monkeypatch):
    (tmp_path / "harness.toml").write_text(
        '[models.demo]\nmodel = "mock/demo"\nlatency_ms = 40\nttft_ms = 15\nresponses = ["a b c"]\n'
    )
    monkeypatch.chdir(tmp_path)
    [answer] = await Harness().abatch_completion("demo", [USER], stream=True)
    assert answer.content == "a b c"
    assert answer.harness.ttft_ms is not None and answer.harness.latency_ms is not None
    assert answer.harness.ttft_ms < answer.harness.latency_ms
    assert load_config().resolve("demo").mock["ttft_ms"] == 15


def test_no_config_file_means_empty_defaults(tmp_path: Path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config() == HarnessConfig()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[models.fast]\nmodle = 'openai/x'\n", r"\[models.fast\]: unknown key\(s\) modle"),
        ("[models.fast]\ntimeout = 1\n", r"\[models.fast\]: missing 'model'"),
        ("[models.fast]\nmodel = 'zzz/x'\n", r"\[models.fast\].model: unknown provider 'zzz'"),
        (
            "[models.fast]\nmodel = 'mock/x'\nmax_concurrency = 0\n",
            r"max_concurrency: expected an integer >= 1",
        ),
        (
            "[models.fast]\nmodel = 'mock/x'\nprice = { input = 1 }\n",
            r"price: unknown key\(s\) input",
        ),
        ("[defaults]\nretries = -1\n", r"\[defaults\].retries: expected an integer >= 0"),
        ("[default]\nretries = 1\n", r"unknown top-level key\(s\) default"),
        ("[models\nfast", "invalid TOML"),
        ("[models.m]\nmodel = 'mock/x'\nttft_ms = 'soon'\n", r"\[models.m\].ttft_ms: expected a non-negative number"),
        ("models = 3\n", r"\[models\]: expected a table"),
    ],
)
def test_broken_config_files_name_the_file_and_field(tmp_path: Path, toml, message):
    path = tmp_path / "harness.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_call_params_override_model_defaults():
    h = Harness(
        {"models": {"m": {"model": "mock/m", "params": {"temperature": 0, "max_tokens": 5}}}}
    )
    call = h.prepare("m", USER, {"temperature": 0.7, "top_p": None, "timeout": 3})
    assert call.params == {"temperature": 0.7, "max_tokens": 5}  # None dropped, timeout not a param


@given(
    st.sampled_from(sorted(PROVIDERS)), st.text(min_size=1).filter(lambda s: s.strip() == s and s)
)
def test_any_provider_slash_name_parses(provider, name):
    spec = parse_model_string(f"{provider}/{name}")
    assert (
        spec.provider == provider and spec.model == name and spec.full_name == f"{provider}/{name}"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[cache]\nmode = "sometimes"\n', r"\[cache\].mode: 'sometimes' is not one of use, replay"),
        ('[cache]\nfile = "x"\n', r"\[cache\]: unknown key\(s\) file; expected mode, path"),
        ("[cache]\npath = 3\n", r"\[cache\].path: expected a string"),
    ],
)
def test_broken_cache_table_is_named(tmp_path: Path, toml, message):
    path = tmp_path / "harness.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
