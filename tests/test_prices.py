"""Model prices: ``Price.cost`` with cached tokens, and the built-in dated price table."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import Price as ConfigPrice
from harness.prices import PRICES_AS_OF, Price, builtin_price, known_prices

TOKENS = st.integers(min_value=0, max_value=10**9)
RATES = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)


def test_price_is_reexported_from_config():
    assert ConfigPrice is Price
    assert Price(1.0, 2.0) == Price(input_per_mtok=1.0, output_per_mtok=2.0)
    assert Price(1.0, 2.0).cached_input_per_mtok is None


def test_cost_without_cached_tokens():
    price = Price(2.0, 8.0)
    assert price.cost(1_000_000, 500_000) == 6.0
    assert price.cost(0, 0) == 0.0
    assert Price().cost(123, 456) == 0.0


def test_cost_with_cached_tokens_at_the_cached_rate():
    price = Price(2.0, 8.0, 0.5)
    # 600k fresh * 2.0 + 400k cached * 0.5 + 1M out * 8.0 = 1.2 + 0.2 + 8.0
    assert price.cost(1_000_000, 1_000_000, cached_tokens=400_000) == pytest.approx(9.4)
    assert price.cost(1_000_000, 0, cached_tokens=1_000_000) == 0.5
    assert price.cost(1_000_000, 0, cached_tokens=0) == 2.0
    assert price.cost(1_000_000, 0, cached_tokens=None) == 2.0


def test_cached_tokens_without_a_cached_rate_cost_the_input_rate():
    price = Price(2.0, 8.0)
    assert price.cost(1_000_000, 0, cached_tokens=400_000) == 2.0


def test_cached_tokens_are_clamped_to_the_prompt():
    price = Price(2.0, 8.0, 0.5)
    assert price.cost(1_000_000, 0, cached_tokens=5_000_000) == price.cost(1_000_000, 0, 1_000_000)
    assert price.cost(1_000_000, 0, cached_tokens=-7) == price.cost(1_000_000, 0)


@given(TOKENS, TOKENS, RATES, RATES, st.one_of(st.none(), RATES))
def test_no_cached_tokens_equals_the_old_formula(prompt, completion, inp, out, cached_rate):
    price = Price(inp, out, cached_rate)
    old = (prompt * inp + completion * out) / 1e6
    assert price.cost(prompt, completion) == old
    assert price.cost(prompt, completion, None) == old
    assert price.cost(prompt, completion, 0) == old


@given(TOKENS, TOKENS, TOKENS, RATES, RATES)
def test_cached_tokens_never_cost_more_when_cheaper(prompt, completion, cached, inp, out):
    price = Price(inp, out, inp / 10)
    assert price.cost(prompt, completion, cached) <= price.cost(prompt, completion) * (1 + 1e-12)


def test_spot_facts():
    assert builtin_price("openai", "gpt-4o-mini") == Price(0.15, 0.60, 0.075)
    assert builtin_price("anthropic", "claude-haiku-4-5") == Price(1.00, 5.00, 0.10)
    assert builtin_price("gemini", "gemini-2.5-flash-lite") == Price(0.10, 0.40, 0.01)
    assert builtin_price("cohere", "command-r-08-2024") == Price(0.15, 0.60, None)
    assert builtin_price("groq", "openai/gpt-oss-120b") == Price(0.15, 0.60, 0.075)


def test_dated_snapshots_resolve_to_the_undated_name():
    assert builtin_price("openai", "gpt-4o-mini-2024-07-18") == builtin_price(
        "openai", "gpt-4o-mini"
    )
    assert builtin_price("anthropic", "claude-haiku-4-5-20251001") == builtin_price(
        "anthropic", "claude-haiku-4-5"
    )
    assert builtin_price("openai", "gpt-4o-mini-2024-07-18-2024-07-18") is None
    assert builtin_price("cohere", "command-a-03-2026") is None  # no undated "command-a"


def test_a_snapshot_priced_unlike_its_base_gets_no_price():
    assert builtin_price("openai", "gpt-4o") is not None
    assert builtin_price("openai", "gpt-4o-2024-05-13") is None


def test_unknown_models_and_providers_get_none():
    assert builtin_price("openai", "no-such-model") is None
    assert builtin_price("openai", "no-such-model-2024-07-18") is None
    assert builtin_price("nope", "gpt-4o-mini") is None
    assert builtin_price("openai", "") is None


@pytest.mark.parametrize("provider", ["azure", "together", "openrouter", "ollama", "vllm"])
def test_hosts_without_builtin_prices(provider):
    assert builtin_price(provider, "gpt-4o-mini") is None


def test_known_prices_covers_every_provider_and_matches_lookup():
    prices = known_prices()
    providers = {key.partition("/")[0] for key in prices}
    assert providers == {
        "openai",
        "anthropic",
        "gemini",
        "cohere",
        "mistral",
        "deepseek",
        "groq",
    }
    assert 60 <= len(prices) <= 120
    for key, price in prices.items():
        provider, _, model = key.partition("/")
        assert builtin_price(provider, model) == price


def test_every_entry_is_sane():
    for key, price in known_prices().items():
        assert price.input_per_mtok > 0, key
        # Embeddings models bill input tokens only.
        assert price.output_per_mtok > 0 or "embed" in key, key
        if price.cached_input_per_mtok is not None:
            assert 0 <= price.cached_input_per_mtok <= price.input_per_mtok, key
        for value in (price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok):
            if value is not None:
                assert value == float(f"{value:.6g}"), key


def test_prices_as_of_is_an_iso_date():
    assert dt.date.fromisoformat(PRICES_AS_OF).isoformat() == PRICES_AS_OF


# --- prices in use: config overrides, and the cost on answers -----------------------------


def test_model_strings_and_bare_litellm_names_get_the_builtin_price():
    from harness.config import HarnessConfig

    config = HarnessConfig()
    assert config.resolve("openai/gpt-4o-mini").price == Price(0.15, 0.60, 0.075)
    assert config.resolve("gpt-4o-mini").price == Price(0.15, 0.60, 0.075)
    assert config.resolve("openai/my-finetune").price is None
    assert config.resolve("mock/x").price is None


def test_config_prices_override_the_table_and_an_alias_price_overrides_both(tmp_path):
    from harness.config import load_config

    path = tmp_path / "harness.toml"
    path.write_text(
        '[prices."openai/gpt-4o-mini"]\n'
        "input_per_mtok = 1.0\noutput_per_mtok = 2.0\ncached_input_per_mtok = 0.5\n"
        '[prices."openai/in-house"]\ninput_per_mtok = 3.0\noutput_per_mtok = 4.0\n'
        '[models.fast]\nmodel = "openai/gpt-4o-mini"\n'
        '[models.own]\nmodel = "openai/gpt-4o-mini"\nprice = { input_per_mtok = 9.0 }\n'
        '[models.listed]\nmodel = "anthropic/claude-haiku-4-5"\n'
    )
    config = load_config(path)
    assert config.resolve("openai/gpt-4o-mini").price == Price(1.0, 2.0, 0.5)
    assert config.resolve("fast").price == Price(1.0, 2.0, 0.5)
    assert config.resolve("own").price == Price(9.0, 0.0, None)
    assert config.resolve("listed").price == builtin_price("anthropic", "claude-haiku-4-5")
    assert config.resolve("openai/in-house").price == Price(3.0, 4.0, None)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[prices."openai/x"]\ninput_per_mtk = 1\n', r"\[prices\.'openai/x'\]: unknown key\(s\) input_per_mtk"),
        ('[prices."openai/x"]\ninput_per_mtok = -1\n', r"\[prices\.'openai/x'\]\.input_per_mtok: expected a non-negative"),
        ('[prices."nope/x"]\ninput_per_mtok = 1\n', r"\[prices\.'nope/x'\]: unknown provider 'nope'"),
    ],
)
def test_a_bad_prices_table_names_the_file_and_field(tmp_path, toml, message):
    from harness import ConfigError
    from harness.config import load_config

    path = tmp_path / "harness.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=str(path).replace("\\", "\\\\") + ": " + message):
        load_config(path)


def test_answers_are_priced_from_the_table_with_cached_tokens_at_the_cached_rate():
    import httpx
    import respx

    import harness

    body = {
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 100_000,
                  "total_tokens": 1_100_000, "prompt_tokens_details": {"cached_tokens": 400_000}},
    }
    with respx.mock:
        respx.post("https://api.openai.com/v1/chat/completions").mock(
            return_value=httpx.Response(200, json=body)
        )
        h = harness.Harness(transport="httpx")
        r = h.completion("openai/gpt-4o-mini", [{"role": "user", "content": "x"}], api_key="k" * 12)
    # 600k fresh x 0.15 + 400k cached x 0.075 + 100k out x 0.60, per million
    assert r.harness.cost_usd == pytest.approx(0.09 + 0.03 + 0.06)
    assert harness.completion_cost(r) == r.harness.cost_usd == r._hidden_params["response_cost"]
