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
        (
            "[models.m]\nmodel = 'mock/x'\nttft_ms = 'soon'\n",
            r"\[models.m\].ttft_ms: expected a non-negative number",
        ),
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


# --------------------------------------------------------------------------- hardening


@pytest.mark.parametrize(
    ("raw", "offset", "line"),
    [
        (b"[defaults]\n# caf\xe9\n", 16, 2),
        (b"\xef\xbb\xbfa = \xff\n", 7, 1),  # the offset counts the BOM
    ],
)
def test_a_config_file_that_is_not_utf8_names_the_byte(tmp_path: Path, raw, offset, line):
    path = tmp_path / "harness.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: not UTF-8 text: ")
    assert str(info.value).endswith(f"at byte {offset} (line {line})")


def test_a_pyproject_that_is_not_utf8_is_a_config_error_when_it_configures_harness(
    tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(b'[tool.harness.models.m]\nmodel = "mock/m"  # \xff\n')
    with pytest.raises(
        ConfigError, match=r"pyproject.toml: not UTF-8 text: .* at byte 44 \(line 2\)"
    ):
        load_config()
    # a broken pyproject that does not mention tool.harness is none of the harness's business
    pyproject.write_bytes(b'[project]\nname = "\xff"\n')
    assert load_config() == HarnessConfig()
    pyproject.write_bytes(b"[tool.harness\n")  # invalid TOML is reported, no longer ignored
    with pytest.raises(ConfigError, match="pyproject.toml: invalid TOML"):
        load_config()


def test_a_pyproject_whose_tool_is_not_a_table_is_a_config_error(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text("tool = 3\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool\]: expected a table, got int"):
        load_config(path)


@pytest.mark.parametrize(
    "toml",
    [
        "a = " + "[" * 5000,  # tomllib recurses
        "a = " + "1" * 5000,  # more digits than int() takes
    ],
)
def test_toml_the_parser_chokes_on_is_a_config_error(tmp_path: Path, toml):
    path = tmp_path / "harness.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


_MODEL = "[models.m]\nmodel = 'mock/m'\n"


@pytest.mark.parametrize(
    ("toml", "field", "problem"),
    [
        ("[defaults]\ntimeout = nan\n", "[defaults].timeout", "above 0 and at most 86400, got nan"),
        ("[defaults]\ntimeout = inf\n", "[defaults].timeout", "got inf"),
        ("[defaults]\ntimeout = 0\n", "[defaults].timeout", "got 0"),
        ("[defaults]\ntimeout = -1.5\n", "[defaults].timeout", "got -1.5"),
        ("[defaults]\ntimeout = 1e300\n", "[defaults].timeout", "got 1e+300"),
        ("[defaults]\nretries = -1\n", "[defaults].retries", "expected an integer >= 0"),
        ("[defaults]\nretries = 100000\n", "[defaults].retries", "from 0 to 100, got 100000"),
        ("[defaults]\nretries = nan\n", "[defaults].retries", "got nan"),
        ("[defaults]\nmax_concurrency = 0\n", "[defaults].max_concurrency", ">= 1, got 0"),
        (_MODEL + "timeout = nan\n", "[models.m].timeout", "got nan"),
        (_MODEL + "timeout = -inf\n", "[models.m].timeout", "got -inf"),
        (_MODEL + "retries = -3\n", "[models.m].retries", ">= 0, got -3"),
        (_MODEL + "max_concurrency = -1\n", "[models.m].max_concurrency", ">= 1, got -1"),
        (_MODEL + "rpm = 0\n", "[models.m].rpm", ">= 1, got 0"),
        (_MODEL + "tpm = -5\n", "[models.m].tpm", ">= 1, got -5"),
        (_MODEL + "tpm = 1" + "0" * 30 + "\n", "[models.m].tpm", "from 1 to 9223372036854775807"),
        (_MODEL + "latency_ms = nan\n", "[models.m].latency_ms", "non-negative number, got nan"),
        (_MODEL + "ttft_ms = -1\n", "[models.m].ttft_ms", "non-negative number, got -1"),
        (_MODEL + "ttft_ms = 1e20\n", "[models.m].ttft_ms", "at most 8.64e+07"),
        (
            _MODEL + "price = { input_per_mtok = nan }\n",
            "[models.m].price.input_per_mtok",
            "non-negative number, got nan",
        ),
        (
            _MODEL + "price = { output_per_mtok = inf }\n",
            "[models.m].price.output_per_mtok",
            "got inf",
        ),
        (
            _MODEL + "price = { cached_input_per_mtok = -0.1 }\n",
            "[models.m].price.cached_input_per_mtok",
            "got -0.1",
        ),
        (
            '[prices."openai/x"]\ninput_per_mtok = -inf\n',
            "[prices.'openai/x'].input_per_mtok",
            "got -inf",
        ),
        (
            '[prices."openai/x"]\noutput_per_mtok = nan\n',
            "[prices.'openai/x'].output_per_mtok",
            "got nan",
        ),
        (
            "[defaults]\nmax_response_bytes = 1023\n",
            "[defaults].max_response_bytes",
            ">= 1024, got 1023",
        ),
        (
            "[defaults]\nmax_response_bytes = 2048.0\n",
            "[defaults].max_response_bytes",
            "got 2048.0",
        ),
        (
            _MODEL + "max_response_bytes = -1\n",
            "[models.m].max_response_bytes",
            ">= 1024, got -1",
        ),
        (
            _MODEL + "max_response_bytes = 'big'\n",
            "[models.m].max_response_bytes",
            "got 'big'",
        ),
    ],
)
def test_bad_numbers_are_refused_naming_the_field(tmp_path: Path, toml, field, problem):
    path = tmp_path / "harness.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: expected ")
    assert problem in message


def test_max_response_bytes_in_defaults_and_per_model(tmp_path: Path):
    path = tmp_path / "harness.toml"
    path.write_text(
        "[defaults]\nmax_response_bytes = 33_554_432\n\n"
        "[models.big]\nmodel = 'mock/big'\nmax_response_bytes = 1024\n\n"
        "[models.plain]\nmodel = 'mock/plain'\n"
    )
    config = load_config(path)
    assert config.max_response_bytes == 32 * 1024 * 1024
    assert config.resolve("big").max_response_bytes == 1024
    assert config.resolve("plain").max_response_bytes is None
    assert HarnessConfig().max_response_bytes is None
    assert HarnessConfig.from_dict({}).max_response_bytes is None


def test_valid_edge_numbers_still_load(tmp_path: Path):
    path = tmp_path / "harness.toml"
    path.write_text(
        "[defaults]\ntimeout = 86400\nretries = 0\n\n"
        "[models.m]\nmodel = 'mock/m'\ntimeout = 0.001\nretries = 100\nlatency_ms = 0\n"
        "price = { input_per_mtok = 0, output_per_mtok = 1e3 }\n"
    )
    config = load_config(path)
    assert (config.timeout, config.retries) == (86400.0, 0)
    spec = config.resolve("m")
    assert (spec.timeout, spec.retries, spec.mock["latency_ms"]) == (0.001, 100, 0.0)


def test_non_string_keys_from_python_are_named_not_a_type_error():
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) 1, x"):
        HarnessConfig.from_dict({1: {}, "x": {}})  # type: ignore[dict-item]


def test_the_settings_tables_are_typed_when_the_config_loads():
    from harness.config import CacheSettings, LimitsSettings, ReportSettings, SuiteSettings

    config = HarnessConfig.from_dict({
        "cache": {"mode": "replay"},
        "report": {"dir": "out"},
        "suites": {"glob": "evals/*.yaml more/*.yml"},
        "limits": {"path": "/tmp/limits.sqlite"},
    })
    assert config.cache == CacheSettings(mode="replay", path=None)
    assert config.report == ReportSettings(dir="out")
    assert HarnessConfig.from_dict({"report": {"keep_runs": 0}}).report == ReportSettings(None, 0)
    assert config.suites == SuiteSettings(globs=("evals/*.yaml", "more/*.yml"))
    assert config.limits == LimitsSettings(path="/tmp/limits.sqlite")
    empty = HarnessConfig.from_dict({})
    assert empty.cache is None and empty.report.dir is None and empty.suites.globs is None
    assert HarnessConfig.from_dict({"suites": {"glob": ["a/*.yaml", "b/*.yaml"]}}).suites.globs == (
        "a/*.yaml",
        "b/*.yaml",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"report": {"directory": "x"}}, "config: [report]: unknown key(s) directory; expected dir, keep_runs"),
        ({"report": {"keep_runs": -1}}, "config: [report].keep_runs: expected an integer >= 0, got -1"),
        ({"report": {"keep_runs": "5"}}, "config: [report].keep_runs: expected an integer >= 0"),
        ({"report": {"dir": 3}}, "config: [report].dir: expected a string, got int 3"),
        ({"suites": {"glob": 3}}, "config: [suites].glob: expected a string or a list of strings"),
        ({"suites": {"glob": " "}}, "config: [suites].glob: expected at least one pattern"),
        ({"limits": {"path": ["x"]}}, "config: [limits].path: expected a string"),
        ({"limits": "x"}, "config: [limits]: expected a table"),
        ({"cache": {"mode": "sometimes"}}, "config: [cache].mode: 'sometimes' is not one of"),
    ],
)
def test_a_bad_settings_table_names_the_table_and_key(data, message):
    with pytest.raises(ConfigError) as info:
        HarnessConfig.from_dict(data)
    assert str(info.value).startswith(message)
