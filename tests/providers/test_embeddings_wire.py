"""Embeddings on the wire: each provider family's request and answer over real HTTP.

Every test sends through ``Harness.embedding`` to the local server (the lean transport,
real sockets), which records what arrived and answers in the provider's own format.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from harness import (
    AuthenticationError,
    BadRequestError,
    EmbeddingResponse,
    Harness,
    InvalidResponseError,
    RateLimitError,
)
from harness.embeddings import Embedding
from tests.helpers.local_server import Reply, Request

KEY = "sk-embed-test-0123456789abcdef"


def harness(base: str, model: str, **model_table: Any) -> Harness:
    return Harness({"models": {"e": {"model": model, "api_base": base, **model_table}}}, retries=0)


def openai_body(vectors: list[list[float]], prompt_tokens: int = 7) -> dict[str, Any]:
    # Served in reverse order: the client must sort by index.
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v}
            for i, v in reversed(list(enumerate(vectors)))
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


# --- OpenAI and compatible servers ---------------------------------------------------------


def test_openai_posts_input_and_parameters_and_keeps_input_order(local_server):
    server = local_server(lambda r: Reply(body=openai_body([[1.0, 0.0], [0.0, 1.0]], 9)))
    h = harness(server.url + "/v1", "openai/text-embedding-3-small")
    response = h.embedding(
        "e", ["first", "second"], dimensions=2, user="u1", input_type="ignored", api_key=KEY
    )
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/embeddings")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
        "dimensions": 2,
        "user": "u1",
    }
    assert isinstance(response, EmbeddingResponse)
    assert response.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert [d.index for d in response.data] == [0, 1]
    assert response.usage.prompt_tokens == 9 and response.usage.total_tokens == 9
    # text-embedding-3-small lists at $0.02 per million input tokens.
    assert response.harness.cost_usd == pytest.approx(9 * 0.02 / 1e6)
    assert response._hidden_params["response_cost"] == response.harness.cost_usd
    assert response.harness.provider == "openai" and response.harness.model == "e"


def test_openai_base64_vectors_are_decoded_to_floats(local_server):
    packed = base64.b64encode(struct.pack("<3f", 0.5, -1.0, 2.0)).decode()
    server = local_server(lambda r: Reply(body=openai_body([packed])))  # type: ignore[list-item]
    h = harness(server.url, "openai/text-embedding-3-small")
    response = h.embedding("e", "x", encoding_format="base64", api_key=KEY)
    assert server.requests[0].json()["encoding_format"] == "base64"
    assert response.vectors == [[0.5, -1.0, 2.0]]


def test_a_compatible_server_gets_the_same_request(local_server):
    server = local_server(lambda r: Reply(body=openai_body([[0.25]])))
    h = Harness(retries=0)
    response = h.embedding("ollama/nomic-embed-text", ["hi"], api_base=server.url + "/v1")
    assert server.requests[0].path == "/v1/embeddings"
    assert server.requests[0].json() == {"model": "nomic-embed-text", "input": ["hi"]}
    assert response.vectors == [[0.25]]
    assert response.harness.cost_usd is None  # a local server has no list price


@pytest.mark.parametrize(
    ("status", "payload", "cls"),
    [
        (
            401,
            {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}},
            AuthenticationError,
        ),
        (429, {"error": {"message": "Rate limit reached", "type": "requests"}}, RateLimitError),
        (
            400,
            {"error": {"message": "'input' is too long", "type": "invalid_request_error"}},
            BadRequestError,
        ),
    ],
)
def test_openai_errors_are_typed(local_server, status, payload, cls):
    server = local_server(lambda r: Reply(status=status, body=payload))
    h = harness(server.url, "openai/text-embedding-3-small")
    with pytest.raises(cls) as info:
        h.embedding("e", ["x"], api_key=KEY)
    assert info.value.status == status
    assert payload["error"]["message"] in info.value.message
    assert KEY not in str(info.value)


def test_a_server_answering_too_few_vectors_is_an_invalid_response(local_server):
    server = local_server(lambda r: Reply(body=openai_body([[1.0]])))
    h = harness(server.url, "openai/text-embedding-3-small")
    with pytest.raises(InvalidResponseError, match="1 embedding\\(s\\) for 2 input\\(s\\)"):
        h.embedding("e", ["a", "b"], api_key=KEY)


def test_a_body_that_is_not_an_embedding_list_is_an_invalid_response(local_server):
    server = local_server(lambda r: Reply(body={"data": [{"index": 0, "embedding": {"x": 1}}]}))
    h = harness(server.url, "openai/text-embedding-3-small")
    with pytest.raises(InvalidResponseError, match="unexpected response shape"):
        h.embedding("e", "a", api_key=KEY)


def test_max_response_bytes_bounds_an_embeddings_body(local_server):
    big = openai_body([[0.123456789] * 2000])
    server = local_server(lambda r: Reply(body=big))
    h = harness(server.url, "openai/text-embedding-3-small", max_response_bytes=4096)
    with pytest.raises(InvalidResponseError, match="4096"):
        h.embedding("e", "a", api_key=KEY)


# --- Azure ---------------------------------------------------------------------------------


def test_azure_uses_the_deployment_url_api_version_and_api_key_header(local_server):
    server = local_server(lambda r: Reply(body=openai_body([[0.1, 0.2]])))
    h = harness(server.url, "azure/embed-prod", api_version="2024-10-21")
    response = h.embedding("e", "hello", api_key=KEY)
    (request,) = server.requests
    assert request.path == "/openai/deployments/embed-prod/embeddings?api-version=2024-10-21"
    assert request.headers["api-key"] == KEY and "authorization" not in request.headers
    assert request.json() == {"model": "embed-prod", "input": ["hello"]}
    assert response.vectors == [[0.1, 0.2]]


def test_azure_v1_surface(local_server):
    server = local_server(lambda r: Reply(body=openai_body([[0.3]])))
    h = harness(server.url + "/openai/v1", "azure/embed-prod")
    h.embedding("e", "hello", api_key=KEY)
    assert server.requests[0].path == "/openai/v1/embeddings"


# --- Gemini --------------------------------------------------------------------------------


def gemini_handler(request: Request) -> Reply:
    texts = [r["content"]["parts"][0]["text"] for r in request.json()["requests"]]
    return Reply(body={"embeddings": [{"values": [float(len(t)), 1.0]} for t in texts]})


def test_gemini_batch_embed_contents(local_server):
    server = local_server(gemini_handler)
    h = harness(server.url + "/v1beta", "gemini/gemini-embedding-001")
    response = h.embedding(
        "e", ["abcd", "abcdefgh"], dimensions=2, task_type="SEMANTIC_SIMILARITY", api_key=KEY
    )
    (request,) = server.requests
    assert request.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json() == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 2,
                "taskType": "SEMANTIC_SIMILARITY",
            }
            for text in ["abcd", "abcdefgh"]
        ]
    }
    assert response.vectors == [[4.0, 1.0], [8.0, 1.0]]
    # No token count in Gemini's answer: estimated at four characters a token, and flagged.
    assert response.usage.prompt_tokens == 1 + 2
    assert "usage_estimated" in response.harness.flags


def test_gemini_splits_more_than_100_texts_into_batches_in_order(local_server):
    server = local_server(gemini_handler)
    h = harness(server.url, "gemini/gemini-embedding-001")
    texts = ["x" * (i + 1) for i in range(230)]
    response = h.embedding("e", texts, api_key=KEY)
    sizes = sorted(len(r.json()["requests"]) for r in server.requests)
    assert sizes == [30, 100, 100]
    assert [v[0] for v in response.vectors] == [float(i + 1) for i in range(230)]
    assert [d.index for d in response.data] == list(range(230))


def test_gemini_error_status_is_typed(local_server):
    body = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    server = local_server(lambda r: Reply(status=429, body=body))
    h = harness(server.url, "gemini/gemini-embedding-001")
    with pytest.raises(RateLimitError, match="Resource exhausted"):
        h.embedding("e", "x", api_key=KEY)


# --- Cohere --------------------------------------------------------------------------------


def cohere_handler(request: Request) -> Reply:
    texts = request.json()["texts"]
    return Reply(
        body={
            "id": "emb-1",
            "embeddings": {"float": [[float(len(t))] for t in texts]},
            "texts": texts,
            "meta": {"billed_units": {"input_tokens": 3 * len(texts)}},
        }
    )


def test_cohere_v2_embed_with_the_default_input_type(local_server):
    server = local_server(cohere_handler)
    h = harness(server.url, "cohere/embed-v4.0")
    response = h.embedding("e", ["ab", "abc"], dimensions=256, api_key=KEY)
    (request,) = server.requests
    assert request.path == "/v2/embed"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "embed-v4.0",
        "texts": ["ab", "abc"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    assert response.vectors == [[2.0], [3.0]]
    assert response.usage.prompt_tokens == 6
    # embed-v4.0 lists at $0.12 per million input tokens.
    assert response.harness.cost_usd == pytest.approx(6 * 0.12 / 1e6)


def test_cohere_input_type_passes_through_and_96_texts_make_a_batch(local_server):
    server = local_server(cohere_handler)
    h = harness(server.url, "cohere/embed-v4.0")
    response = h.embedding("e", ["t"] * 100, input_type="search_query", api_key=KEY)
    assert sorted(len(r.json()["texts"]) for r in server.requests) == [4, 96]
    assert {r.json()["input_type"] for r in server.requests} == {"search_query"}
    assert len(response.data) == 100 and response.usage.prompt_tokens == 300
    assert response.harness.cost_usd == pytest.approx(300 * 0.12 / 1e6)


def test_cohere_error_is_typed(local_server):
    server = local_server(
        lambda r: Reply(status=401, body={"id": "x", "message": "invalid api token"})
    )
    h = harness(server.url, "cohere/embed-v4.0")
    with pytest.raises(AuthenticationError, match="invalid api token"):
        h.embedding("e", "x", api_key=KEY)


def test_one_failed_batch_fails_the_call(local_server):
    def handler(request: Request) -> Reply:
        if len(request.json()["texts"]) == 4:
            return Reply(status=400, body={"id": "x", "message": "bad batch"})
        return cohere_handler(request)

    server = local_server(handler)
    h = harness(server.url, "cohere/embed-v4.0")
    with pytest.raises(BadRequestError, match="bad batch"):
        h.embedding("e", ["t"] * 100, api_key=KEY)


# --- no embeddings API ---------------------------------------------------------------------


def test_anthropic_has_no_embeddings_and_nothing_is_sent(local_server):
    server = local_server(lambda r: Reply(body={}))
    h = harness(server.url, "anthropic/claude-haiku-4-5")
    with pytest.raises(BadRequestError, match="anthropic API has no embeddings endpoint.*'e'"):
        h.embedding("e", "x", api_key=KEY)
    with pytest.raises(BadRequestError, match="no embeddings endpoint"):
        h.embedding("e", "x")  # refused before looking for a key
    assert server.requests == []


def test_embedding_objects_take_both_access_styles():
    item = Embedding([0.5], 0)
    assert item["embedding"] == item.embedding == [0.5]
    assert item.to_dict() == {"object": "embedding", "index": 0, "embedding": [0.5]}
