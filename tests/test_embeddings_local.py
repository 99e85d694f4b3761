"""The ``wordllama/`` provider: a real embedding model from the ``embeddings`` extra, offline."""

from __future__ import annotations

import math

import pytest

from harness import BadRequestError, Harness
from harness.checks import CheckContext
from harness.checks.similarity import similar
from harness.embeddings import cosine

pytest.importorskip("wordllama", reason="the embeddings extra is not installed")

MODEL = "wordllama/l2_supercat"


def test_paraphrases_score_higher_than_unrelated_texts_with_no_network():
    h = Harness(offline=True)  # refuses any call that would use the network
    response = h.embedding(
        MODEL,
        [
            "The Eiffel Tower is in Paris.",
            "Where can I find the famous iron tower of France?",
            "Bananas are yellow.",
        ],
    )
    tower, paraphrase, banana = response.vectors
    assert len(tower) == 256
    assert math.isclose(math.fsum(x * x for x in tower), 1.0, rel_tol=1e-5)
    assert cosine(tower, paraphrase) > 0.4 > 0.1 > cosine(tower, banana)
    assert response.usage.prompt_tokens == 6 + 10 + 3  # words
    assert response.harness.provider == "wordllama" and response.harness.cost_usd is None


def test_dimensions_truncate_and_renormalise():
    full = Harness().embedding(MODEL, "a small test").vectors[0]
    short = Harness().embedding(MODEL, "a small test", dimensions=64).vectors[0]
    assert len(short) == 64
    assert math.isclose(math.fsum(x * x for x in short), 1.0, rel_tol=1e-5)
    assert cosine(short, full[:64]) == pytest.approx(1.0)
    with pytest.raises(BadRequestError, match="has 256, got 512"):
        Harness().embedding(MODEL, "x", dimensions=512)


def test_it_serves_similar_checks_and_refuses_to_chat():
    h = Harness({"models": {"embedder": {"model": MODEL}}, "embedding_model": "embedder"})
    result = similar(
        CheckContext(output="The meeting was moved to Thursday.", harness=h),
        "We now meet on Thursday.",
        scorer="embedding",
        threshold=0.5,
    )
    assert result.passed, result.detail
    with pytest.raises(BadRequestError, match="is an embeddings model"):
        h.completion(MODEL, [{"role": "user", "content": "hi"}])


def test_a_model_not_in_the_package_is_a_config_error_not_a_download():
    from harness import ConfigError

    with pytest.raises(ConfigError, match="nothing is downloaded"):
        Harness().embedding("wordllama/l3_supercat", "x")
