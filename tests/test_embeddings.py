"""Embeddings through the runner: the answer type, offline vectors, store, limits, budget."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness
from harness import (
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    EmbeddingResponse,
    Harness,
    ModelResponse,
    ReplayMissError,
    ServiceUnavailableError,
)
from harness.cache import ResponseCache
from harness.embeddings import (
    cosine,
    decode_base64_embedding,
    embedding_inputs,
    hashed_embedding,
    merge_responses,
)
from harness.limits import CostBudget
from harness.providers import offline
from tests.helpers import virtual_time
from tests.helpers.local_server import chat_body

KEY = "sk-embed-runner-0123456789abcdef"


def openai_embeddings(request: httpx.Request) -> httpx.Response:
    texts = json.loads(request.content)["input"]
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), float(i)]}
                for i, t in enumerate(texts)
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 5 * len(texts), "total_tokens": 5 * len(texts)},
        },
    )


def counting(handler=openai_embeddings):
    seen: list[httpx.Request] = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json=chat_body("chat"))
        return handler(request)

    return seen, httpx.MockTransport(wrapped)


# --- the answer type ---------------------------------------------------------------------------


def test_the_answer_has_openais_shape_and_litellms_idioms():
    response = Harness().embedding("mock/e", ["a cat", "a dog"])
    dumped = response.model_dump()
    assert dumped["object"] == "list" and dumped["model"] == "e"
    assert [d["index"] for d in dumped["data"]] == [0, 1]
    assert dumped["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert response["data"][1]["embedding"] == response.data[1].embedding
    assert len(response.data[0].embedding) == 256
    assert response._hidden_params["custom_llm_provider"] == "mock"
    again = EmbeddingResponse.from_dict(json.loads(response.model_dump_json()))
    assert again.vectors == response.vectors
    assert "2 vector(s) of 256" in repr(response)
    # The OpenAI SDK's own type accepts the data as it is.
    from openai.types import CreateEmbeddingResponse

    CreateEmbeddingResponse.model_validate(dumped)


def test_module_level_functions_use_the_default_harness():
    harness.set_default_harness(Harness({}))
    try:
        assert harness.embedding("echo/e", "hi").vectors == [hashed_embedding("hi")]
        import asyncio

        answer = asyncio.run(harness.aembedding("echo/e", ["hi"], dimensions=4))
        assert answer.vectors == [hashed_embedding("hi", 4)]
    finally:
        harness.set_default_harness(None)


def test_merging_batches_renumbers_and_sums():
    h = Harness()
    parts = [h.embedding("mock/e", ["a b", "c"]), h.embedding("mock/e", ["d e f"])]
    parts[0].harness.cost_usd, parts[1].harness.cost_usd = 0.5, 0.25
    merged = merge_responses(parts, "e")
    assert [d.index for d in merged.data] == [0, 1, 2]
    assert merged.vectors == parts[0].vectors + parts[1].vectors
    assert merged.usage.prompt_tokens == 6 and merged.harness.cost_usd == 0.75


# --- the offline vectorizer --------------------------------------------------------------------


@given(st.text(max_size=200), st.integers(min_value=1, max_value=512))
def test_offline_vectors_are_deterministic_unit_vectors_of_the_asked_size(text, dims):
    vector = hashed_embedding(text, dims)
    assert len(vector) == dims
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-9)
    assert vector == hashed_embedding(text, dims)


@given(st.text(alphabet="abcdefgh ", min_size=1, max_size=60))
def test_offline_vectors_ignore_case(text):
    assert hashed_embedding(text.upper()) == hashed_embedding(text.lower())


def test_related_texts_score_higher_than_unrelated_ones():
    base = hashed_embedding("The capital of France is Paris.")
    related = hashed_embedding("Paris is the capital city of France")
    unrelated = hashed_embedding("Photosynthesis converts light into chemical energy")
    assert cosine(base, related) > 0.6 > 0.2 > cosine(base, unrelated)


def test_offline_vectors_are_the_same_in_another_process():
    code = "from harness.embeddings import hashed_embedding; print(hashed_embedding('stable text', 16))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {repr(hashed_embedding("stable text", 16)) + "\n"}


def test_base64_decoding_refuses_a_partial_float():
    assert decode_base64_embedding("AACAPw==") == [1.0]
    with pytest.raises(ValueError, match="not a float32 array"):
        decode_base64_embedding("AACA")


# --- input checks: before any request -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "input: expected a string or a non-empty list of strings, got int"),
        ([], "got an empty list"),
        (["ok", None], r"input\[1\]: expected a string, got NoneType"),
    ],
)
def test_bad_input_is_refused_before_sending(value, message):
    seen, transport = counting()
    with pytest.raises(BadRequestError, match=message):
        Harness(transport=transport).embedding("openai/text-embedding-3-small", value, api_key=KEY)
    assert seen == []
    with pytest.raises(BadRequestError, match=message):
        embedding_inputs(value)


@pytest.mark.parametrize("dims", [0, -3, 1.5, True, 70_000])
def test_bad_dimensions_are_refused_before_sending(dims):
    seen, transport = counting()
    with pytest.raises(BadRequestError, match="dimensions: expected an integer"):
        Harness(transport=transport).embedding(
            "openai/text-embedding-3-small", "x", dimensions=dims, api_key=KEY
        )
    assert seen == []


def test_an_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown provider"):
        Harness().embedding("nope/x", "hi")


def test_a_models_chat_parameters_are_not_sent_to_the_embeddings_endpoint():
    seen, transport = counting()
    h = Harness(
        {
            "models": {
                "e": {
                    "model": "openai/text-embedding-3-small",
                    "params": {"temperature": 0, "max_tokens": 9, "dimensions": 2},
                }
            }
        },
        transport=transport,
    )
    h.embedding("e", "x", api_key=KEY)
    assert json.loads(seen[0].content) == {
        "model": "text-embedding-3-small",
        "dimensions": 2,
        "input": ["x"],
    }


# --- offline models ---------------------------------------------------------------------------


def test_mock_and_echo_embed_offline_and_honour_dimensions():
    h = Harness(offline=True)
    assert h.embedding("echo/a", "hello there", dimensions=32).vectors == [
        hashed_embedding("hello there", 32)
    ]
    response = h.embedding("mock/a", ["x y z"])
    assert response.vectors == [hashed_embedding("x y z")]
    assert response.usage.prompt_tokens == 3 and response.harness.cost_usd is None


def test_offline_mode_refuses_a_network_embeddings_model():
    with pytest.raises(ConfigError, match="offline mode"):
        Harness(offline=True).embedding("openai/text-embedding-3-small", "x", api_key=KEY)


def test_a_mock_error_script_is_retried_like_a_completion():
    h = Harness(retries=1, sleep=_no_sleep)
    response = h.embedding("mock/e", "x", mock_response=[{"error": 503}, "ok"])
    assert response.harness.attempts == 2
    with pytest.raises(ServiceUnavailableError):
        Harness(retries=0).embedding("mock/e", "x", mock_response=[{"error": 503}])
    configured = Harness({"models": {"down": {"model": "mock/down", "error": 503}}}, retries=0)
    with pytest.raises(ServiceUnavailableError):
        configured.embedding("down", "x")


async def _no_sleep(_seconds: float) -> None:
    return None


def test_the_timeout_ends_a_stalled_embedding():
    async def main() -> None:
        await Harness(retries=0).aembedding("mock/e", "x", mock_timeout=True, timeout=2)

    with pytest.raises(harness.TimeoutError, match="no answer within 2 s"):
        virtual_time.run(main())


# --- the response store ------------------------------------------------------------------------


def test_the_store_replays_the_same_vectors_and_never_mixes_them_with_completions(tmp_path):
    seen, transport = counting()
    path = tmp_path / "c.sqlite"
    h = Harness(transport=transport, cache=path)
    first = h.embedding("openai/text-embedding-3-small", ["What is 2+2?"], api_key=KEY)
    second = h.embedding("openai/text-embedding-3-small", ["What is 2+2?"], api_key=KEY)
    assert len(seen) == 1
    assert second.vectors == first.vectors and second.harness.replayed
    assert not first.harness.replayed and first.harness.cost_usd == pytest.approx(5 * 0.02 / 1e6)
    assert second.harness.cost_usd is None
    assert second.harness.saved_cost_usd == pytest.approx(first.harness.cost_usd)
    # The same text as a completion of the same model is its own entry.
    chat = h.completion(
        "openai/text-embedding-3-small", [{"role": "user", "content": "What is 2+2?"}], api_key=KEY
    )
    assert isinstance(chat, ModelResponse) and len(seen) == 2
    # Other dimensions are another request.
    h.embedding("openai/text-embedding-3-small", ["What is 2+2?"], dimensions=1, api_key=KEY)
    assert len(seen) == 3
    h.cache.flush()
    stats = ResponseCache(path).stats()
    assert stats["entries"] == 3
    assert stats["models"]["openai/text-embedding-3-small"]["entries"] == 3


def test_replay_needs_no_key_nor_network_and_names_a_miss(tmp_path):
    seen, transport = counting()
    path = tmp_path / "c.sqlite"
    Harness(transport=transport, cache=path).embedding(
        "openai/text-embedding-3-small", ["alpha", "beta"], api_key=KEY
    )
    replay = Harness(transport=transport, cache=path, cache_mode="replay", offline=True)
    again = replay.embedding("openai/text-embedding-3-small", ["alpha", "beta"])
    assert again.vectors == [[5.0, 0.0], [4.0, 1.0]] and again.harness.replayed
    with pytest.raises(ReplayMissError, match="gamma"):
        replay.embedding("openai/text-embedding-3-small", ["gamma"])
    assert len(seen) == 1


def test_each_batch_is_stored_on_its_own(tmp_path, monkeypatch):
    seen, transport = counting()
    monkeypatch.setattr(
        type(harness.runner.get_provider("openai")), "max_embedding_inputs", 2, raising=True
    )
    h = Harness(transport=transport, cache=tmp_path / "c.sqlite")
    first = h.embedding("openai/text-embedding-3-small", ["a", "bb", "ccc"], api_key=KEY)
    assert len(seen) == 2
    assert [v[0] for v in first.vectors] == [1.0, 2.0, 3.0]
    assert first.usage.prompt_tokens == 15
    # The first batch again is served from the store; only the new one is sent.
    h.embedding("openai/text-embedding-3-small", ["a", "bb", "dddd"], api_key=KEY)
    assert len(seen) == 3 and json.loads(seen[-1].content)["input"] == ["dddd"]


# --- limits and budget --------------------------------------------------------------------------


def test_batches_run_at_once_within_the_models_max_concurrency(monkeypatch):
    monkeypatch.setattr(offline.MockProvider, "max_embedding_inputs", 1)
    original = offline.MockProvider.embed
    active = peak = 0

    async def counting_embed(self, call, send):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            return await original(self, call, send)
        finally:
            active -= 1

    monkeypatch.setattr(offline.MockProvider, "embed", counting_embed)
    h = Harness({"models": {"e": {"model": "mock/e", "max_concurrency": 3, "latency_ms": 10}}})

    async def main() -> EmbeddingResponse:
        return await h.aembedding("e", [f"text {i}" for i in range(10)])

    response, _ = virtual_time.run(main())
    assert peak == 3
    assert response.vectors == [hashed_embedding(f"text {i}") for i in range(10)]


def test_embeddings_count_toward_the_cost_cap_and_stop_at_it(tmp_path):
    seen, transport = counting()
    budget = CostBudget(1e-7, path=tmp_path / "limits.sqlite")
    h = Harness(transport=transport, budget=budget)
    h.embedding("openai/text-embedding-3-small", ["a"], api_key=KEY)  # 5 tokens: $1e-7
    assert budget.spent() == pytest.approx(1e-7)
    with pytest.raises(BudgetExceededError, match="was not sent"):
        h.embedding("openai/text-embedding-3-small", ["b"], api_key=KEY)
    assert len(seen) == 1


def test_an_embeddings_key_differs_from_the_same_calls_completion_key():
    from harness.cache_keys import key_for_call
    from harness.config import parse_model_string
    from harness.providers.base import Call

    call = Call(parse_model_string("openai/m"), [], {"input": ["x"]})
    assert key_for_call(call, embedding=True) != key_for_call(call)
    assert key_for_call(call, embedding=True) == key_for_call(call, embedding=True)


def test_wordllama_without_the_extra_names_the_extra(monkeypatch):
    from harness.providers import local

    monkeypatch.setitem(sys.modules, "wordllama", None)  # import wordllama -> ImportError
    monkeypatch.setattr(local, "_models", {})
    with pytest.raises(ConfigError, match=r"pip install 'llm-harness\[embeddings\]'"):
        Harness().embedding("wordllama/l2_supercat", "x")


def test_the_offline_demo_shows_embeddings(capsys):
    from harness import demo

    demo.main()
    out = capsys.readouterr().out
    assert "== embeddings" in out
    related, unrelated = (float(line.split()[0]) for line in out.splitlines()[-2:])
    assert related > 0.6 > unrelated
