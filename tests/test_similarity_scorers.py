"""The reference-metric scorers and ``similar``'s ``scorer: embedding``."""

from __future__ import annotations

import math
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.suites  # noqa: F401  (PyYAML's C extension must be imported only once)
from harness import Harness
from harness.checks import CheckContext, run_checks, validate_check_spec
from harness.checks.core import CheckSpecError
from harness.checks.metrics import bleu, levenshtein, rouge_l
from harness.checks.similarity import SCORERS, embedding_model_problem, similar
from harness.config import HarnessConfig
from harness.embeddings import cosine, hashed_embedding
from harness.errors import ConfigError
from tests.helpers.pytester_ini import PYTESTER_INI

# --- hand-computed values ------------------------------------------------------------------

CAT = "The cat sat on the mat."
REF = "the cat is on the mat"


def test_rouge_l_is_the_f1_of_the_longest_common_word_subsequence():
    # LCS = the cat on the mat (5 of 6 words on each side): P = R = 5/6.
    assert rouge_l(CAT, REF) == pytest.approx(5 / 6)
    # LCS = "a c" (2); P = 2/3, R = 2/4: F1 = 2PR/(P+R) = 4/7.
    assert rouge_l("a b c", "a x c y") == pytest.approx(4 / 7)
    assert rouge_l("one two", "three four") == 0.0


def test_bleu_matches_the_hand_computed_sentence_score():
    # Clipped precisions 5/6, 3/5, 1/4 and 0/3 -> smoothed 0.1/3; equal lengths: BP = 1.
    expected = ((5 / 6) * (3 / 5) * (1 / 4) * (0.1 / 3)) ** 0.25
    assert bleu(CAT, REF) == pytest.approx(expected)


def test_bleu_brevity_penalty_and_short_outputs():
    # Two words against six: orders 1 and 2 only, both precisions 1; BP = exp(1 - 6/2).
    assert bleu("the cat", REF) == pytest.approx(math.exp(-2))
    # Clipping: "the the the" matches "the" at most twice.
    # p1 = 2/3; no bigram or trigram matches: 0.1/2 and 0.1/1; equal lengths: BP = 1.
    expected = math.exp((math.log(2 / 3) + math.log(0.1 / 2) + math.log(0.1 / 1)) / 3)
    assert bleu("the the the", "the cat the") == pytest.approx(expected)


def test_levenshtein_is_one_minus_distance_over_the_longer_length():
    assert levenshtein("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert levenshtein("flaw", "lawn") == pytest.approx(1 - 2 / 4)
    assert levenshtein("Same", "same") == pytest.approx(1 - 1 / 4)  # case counts


@pytest.mark.parametrize("scorer", [rouge_l, bleu, levenshtein])
def test_empty_texts(scorer):
    assert scorer("", "") == 1.0
    assert scorer("", "something") == 0.0
    assert scorer("something", "") == 0.0


@pytest.mark.parametrize("scorer", [rouge_l, bleu, levenshtein])
@given(a=st.text(max_size=80), b=st.text(max_size=80))
def test_scores_are_fractions_and_identity_scores_one(scorer, a, b):
    assert 0.0 <= scorer(a, b) <= 1.0
    assert scorer(a, a) == pytest.approx(1.0)


def test_the_scorers_are_registered_for_similar():
    assert {"token_f1", "rouge_l", "bleu", "levenshtein"} <= set(SCORERS)
    result = similar("kitten", "sitting", scorer="levenshtein", threshold=0.5)
    assert result.passed and result.score == pytest.approx(4 / 7)
    assert "levenshtein similarity 0.571" in result.detail
    results = run_checks([{"similar": {"value": REF, "scorer": "rouge_l", "threshold": 0.9}}], CAT)
    assert not results[0].passed and results[0].score == pytest.approx(5 / 6)


def test_unknown_scorers_list_the_known_ones_including_embedding():
    with pytest.raises(CheckSpecError, match="bleu, embedding, levenshtein, rouge_l, token_f1"):
        validate_check_spec({"similar": {"value": "x", "scorer": "nope"}})
    validate_check_spec({"similar": {"value": "x", "scorer": "embedding", "model": "e"}})
    with pytest.raises(CheckSpecError, match="'model' is empty"):
        validate_check_spec({"similar": {"value": "x", "scorer": "embedding", "model": ""}})


# --- scorer: embedding ---------------------------------------------------------------------


def harness_with_embedder(**top):
    return Harness({"models": {"embedder": {"model": "mock/embedder"}}, **top})


def test_embedding_scorer_is_the_cosine_of_the_two_vectors():
    h = harness_with_embedder(embedding_model="embedder")
    ctx = CheckContext(output="The Eiffel Tower is in Paris.", harness=h)
    result = similar(ctx, "The Eiffel Tower stands in Paris.", scorer="embedding", threshold=0.5)
    expected = cosine(
        hashed_embedding("The Eiffel Tower is in Paris."),
        hashed_embedding("The Eiffel Tower stands in Paris."),
    )
    assert result.passed and result.score == pytest.approx(expected)
    assert "embedding similarity" in result.detail and "(embedder)" in result.detail
    far = similar(ctx, "Bananas are yellow.", scorer="embedding", threshold=0.5)
    assert not far.passed and far.score < 0.2


def test_the_checks_model_wins_over_the_config_and_calls_are_stored(tmp_path):
    h = Harness(
        {
            "models": {
                "embedder": {"model": "mock/embedder", "error": 503},
                "other": {"model": "echo/other"},
            },
            "embedding_model": "embedder",
        },
        retries=0,
    )
    ctx = CheckContext(output="same words", harness=h)
    assert similar(ctx, "same words", scorer="embedding", model="other").score == pytest.approx(1.0)
    failed = similar(ctx, "same words", scorer="embedding")
    assert not failed.passed and failed.score is None
    assert "the embedding call to 'embedder' failed" in failed.detail
    assert "ServiceUnavailableError" in failed.detail


def test_no_embedding_model_is_a_failed_check_naming_the_fix():
    result = similar(CheckContext(output="x", harness=Harness({})), "y", scorer="embedding")
    assert not result.passed
    assert "embedding_model" in result.detail and "model:" in result.detail


def test_model_given_to_a_text_scorer_is_a_spec_error():
    with pytest.raises(CheckSpecError, match="applies to scorer: embedding only"):
        similar("x", "x", scorer="bleu", model="embedder")


def test_the_embedding_model_problem_is_found_before_any_call():
    configured = HarnessConfig.from_dict(
        {"models": {"embedder": {"model": "mock/e"}}, "embedding_model": "embedder"}
    )
    bare = HarnessConfig()
    checks = [{"not-similar": {"value": "v", "scorer": "embedding"}}]
    assert embedding_model_problem(checks, configured) is None
    assert "embedding_model" in (embedding_model_problem(checks, bare) or "")
    named = [{"similar": {"value": "v", "scorer": "embedding", "model": "nope/x"}}]
    assert "unknown provider 'nope'" in (embedding_model_problem(named, bare) or "")
    assert embedding_model_problem([{"similar": "v"}, "is_json"], bare) is None


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "config: embedding_model: expected an alias or 'provider/model', got 3"),
        ("", "config: embedding_model: expected an alias"),
        ("missing", "config: embedding_model: model 'missing' is not of the form"),
    ],
)
def test_a_bad_embedding_model_names_the_field(value, message):
    with pytest.raises(ConfigError, match=message):
        HarnessConfig.from_dict({"embedding_model": value})


def test_embedding_model_from_a_pyproject(tmp_path):
    from harness.config import load_config

    path = tmp_path / "pyproject.toml"
    path.write_text(
        textwrap.dedent(
            """
            [tool.harness]
            embedding_model = "embedder"

            [tool.harness.models.embedder]
            model = "mock/embedder"
            """
        )
    )
    assert load_config(path).embedding_model == "embedder"
    assert HarnessConfig().embedding_model is None


# --- under pytest --------------------------------------------------------------------------

SUITE = """
models: [answer]
prompt: "Where is the Eiffel Tower?"
cases:
  - id: eiffel
    assert:
      - similar: { value: "The Eiffel Tower stands in Paris.", scorer: embedding, threshold: 0.6 }
      - similar: { value: "The Eiffel Tower is in Paris.", scorer: rouge_l, threshold: 0.9 }
    mock_response: "The Eiffel Tower is in Paris, France."
"""

CONFIG = PYTESTER_INI + """
[tool.harness]
embedding_model = "embedder"

[tool.harness.models.answer]
model = "mock/answer"

[tool.harness.models.embedder]
model = "mock/embedder"
"""


def test_a_suite_scores_by_embeddings_offline(pytester):
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "semantic.yaml").write_text(SUITE)
    result = pytester.runpytest("suites", "--harness-offline")
    result.assert_outcomes(passed=1)


def test_a_suite_without_an_embedding_model_fails_at_collection(pytester):
    pytester.makepyprojecttoml(CONFIG.replace('embedding_model = "embedder"', ""))
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "semantic.yaml").write_text(SUITE)
    result = pytester.runpytest("suites")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*suites/semantic.yaml: case 'eiffel': scorer: embedding needs*"])
