"""Judge checks: the built-in rubrics, the judge record, the retry, the judge model, the store."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

# pytester's in-process runs drop modules first imported inside them; PyYAML's C extension
# cannot be imported twice, so load it out here once.
import harness.suites  # noqa: F401
from harness import Harness
from harness.checks import (
    CheckContext,
    CheckSpecError,
    llm_judge,
    parse_judge_reply,
    run_check,
    validate_check_spec,
)
from harness.checks.judge import (
    FACTUALITY,
    G_EVAL,
    JUDGE_SYSTEM_PROMPT,
    JUDGE_SYSTEM_PROMPT_1_TO_5,
    NO_JUDGE_MODEL,
    RETRY_PROMPT,
    RUBRICS,
    judge_model_for,
)
from harness.config import HarnessConfig
from harness.providers.offline_judge import judge_reply, overlap
from harness.suites import SuiteError, load_suite
from harness.types import Choice, Message, ModelResponse

ROOT = Path(__file__).resolve().parents[1]


def reply(text: str) -> ModelResponse:
    return ModelResponse(choices=[Choice(0, Message(content=text), finish_reason="stop")])


class ScriptedJudge:
    """A stand-in harness answering judge calls in turn from a script; records each call."""

    config = HarnessConfig()

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, list[dict], dict]] = []

    def completion(self, model, messages, **params):
        self.calls.append((model, messages, params))
        return reply(self.replies[min(len(self.calls), len(self.replies)) - 1])


QUESTION = [{"role": "user", "content": "What is the capital of Australia?"}]


def ctx(output: str, harness, **vars) -> CheckContext:
    return CheckContext.from_result(output, vars=vars, messages=QUESTION, harness=harness)


# --- built-in rubrics -------------------------------------------------------------------------


def test_every_rubric_is_versioned_and_documented():
    doc = (ROOT / "docs" / "judges.md").read_text()
    assert set(RUBRICS) == {"factuality", "relevance", "faithfulness", "g_eval"}
    for rubric in RUBRICS.values():
        assert rubric.id == f"{rubric.name}@{rubric.version}"
        assert rubric.id in doc and rubric.text in doc.replace("\n", " ")
    assert JUDGE_SYSTEM_PROMPT in doc.replace("\n", " ")
    assert JUDGE_SYSTEM_PROMPT_1_TO_5 in doc.replace("\n", " ")


def test_factuality_shows_the_reference_var_and_records_the_judgment():
    judge = ScriptedJudge('{"score": 0.9, "reason": "Matches the reference."}')
    result = run_check(
        {"llm_judge": {"template": "factuality", "model": "mock/j"}},
        ctx("Canberra.", judge, reference="Canberra is the capital."),
    )
    assert result.passed and result.score == pytest.approx(0.9)
    ((model, messages, params),) = judge.calls
    assert model == "mock/j" and params == {"temperature": 0}  # judges default to temperature 0
    assert messages[0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT}
    user = messages[1]["content"]
    assert f"<rubric>\n{FACTUALITY.text}\n</rubric>" in user
    assert "<reference>\nCanberra is the capital.\n</reference>" in user
    assert "<question>\nWhat is the capital of Australia?\n</question>" in user
    assert "<answer>\nCanberra.\n</answer>" in user
    assert result.judge == {
        "model": "mock/j",
        "score": 0.9,
        "reason": "Matches the reference.",
        "rubric": "factuality",
        "version": "factuality@1",
    }
    assert result.to_dict()["judge"] == result.judge
    assert "on factuality@1: Matches the reference." in result.detail


def test_an_explicit_reference_wins_over_the_case_var_and_renders_vars():
    judge = ScriptedJudge('{"score": 1, "reason": "ok"}')
    llm_judge(
        ctx("x", judge, reference="from the var", city="Canberra"),
        template="faithfulness",
        context="{{ city }} is the capital.",
        model="mock/j",
    )
    user = judge.calls[0][1][1]["content"]
    assert "<context>\nCanberra is the capital.\n</context>" in user
    assert "from the var" not in user


def test_g_eval_scores_1_to_5_normalised_with_criteria_and_numbered_steps():
    judge = ScriptedJudge('{"score": 4, "reason": "Mostly."}')
    result = run_check(
        {
            "llm_judge": {
                "template": "g_eval",
                "criteria": "Short and keeps the key fact.",
                "steps": ["List the facts", "Check each"],
                "model": "mock/j",
                "threshold": 0.8,
            }
        },
        ctx("Canberra.", judge),
    )
    assert not result.passed and result.score == pytest.approx(0.75)
    assert result.judge is not None and result.judge["raw_score"] == 4
    assert result.judge["version"] == G_EVAL.id
    messages = judge.calls[0][1]
    assert messages[0]["content"] == JUDGE_SYSTEM_PROMPT_1_TO_5
    assert "<steps>\n1. List the facts\n2. Check each\n</steps>" in messages[1]["content"]
    assert "<criteria>\nShort and keeps the key fact.\n</criteria>" in messages[1]["content"]
    assert "scored 0.75 (4 of 1-5) (< threshold 0.8)" in result.detail


def test_g_eval_score_outside_1_to_5_is_unreadable():
    judge = ScriptedJudge('{"score": 0.5}')
    result = llm_judge(ctx("x", judge), template="g_eval", criteria="c", model="mock/j")
    assert not result and "is not a number from 1 to 5" in result.detail


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"rubric": "ok?", "template": "relevance"}, "give either 'rubric'"),
        ({"template": "truthiness"}, "'template' must be one of factuality, relevance"),
        ({"template": "g_eval"}, "template 'g_eval' needs 'criteria'"),
        (
            {"template": "relevance", "reference": "x"},
            "'reference' is only used by template factuality",
        ),
        (
            {"template": "g_eval", "criteria": "c", "steps": "one"},
            "'steps' must be a non-empty list",
        ),
        ({"rubric": "ok?", "criteria": "c"}, "'criteria' is only used by template g_eval"),
    ],
)
def test_bad_judge_specs_are_precise(spec, message):
    with pytest.raises(CheckSpecError, match="check 'llm_judge'") as info:
        validate_check_spec({"llm_judge": spec})
    assert message in str(info.value)


def test_factuality_without_a_reference_is_a_load_error_naming_the_case(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent("""
        prompt: "{{ q }}"
        cases:
          - id: ok
            vars: { q: a, reference: b }
            assert: [{ llm_judge: { template: factuality } }]
          - id: bad
            vars: { q: a }
            assert:
              - contains: a
              - llm_judge: { template: factuality }
    """)
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value) == (
        f"{path}:11: case 'bad': assert[1]: check 'llm_judge': template 'factuality' needs a "
        "reference: give 'reference: ...' in the check or a case variable 'reference'"
    )


def test_relevance_without_a_question_fails_the_check():
    judge = ScriptedJudge("1")
    result = llm_judge(
        CheckContext.from_result("x", harness=judge), template="relevance", model="m"
    )
    assert not result and "needs the question" in result.detail and judge.calls == []


# --- unreadable replies -------------------------------------------------------------------------


def test_an_unreadable_reply_is_asked_again_once_in_a_follow_up_turn():
    judge = ScriptedJudge("It is great!", '{"score": 0.8, "reason": "Fine."}')
    result = llm_judge(ctx("answer", judge), "ok?", model="mock/j")
    assert result.passed and result.score == pytest.approx(0.8)
    first, second = judge.calls
    assert second[1] == [
        *first[1],
        {"role": "assistant", "content": "It is great!"},
        {"role": "user", "content": RETRY_PROMPT},
    ]


def test_a_reply_unreadable_twice_fails_showing_the_raw_answer():
    judge = ScriptedJudge("It is great!", "Really, it is great.")
    result = llm_judge(ctx("answer", judge), "ok?", model="mock/j")
    assert not result and result.score is None and len(judge.calls) == 2
    assert "did not give a readable score, asked twice" in result.detail
    assert "'Really, it is great.'" in result.detail and "'It is great!'" in result.detail
    assert result.judge is not None and result.judge["raw"] == "Really, it is great."
    assert result.to_dict()["judge"]["score"] is None


# --- the judge model --------------------------------------------------------------------------


def test_judge_model_precedence():
    both = HarnessConfig.from_dict(
        {"judge_model": "mock/configured", "models": {"judge": {"model": "mock/alias"}}}
    )
    alias = HarnessConfig.from_dict({"models": {"judge": {"model": "mock/alias"}}})
    assert judge_model_for(Harness(config=both), "mock/explicit") == "mock/explicit"
    assert judge_model_for(Harness(config=both)) == "mock/configured"
    assert judge_model_for(Harness(config=alias)) == "judge"
    with pytest.raises(LookupError, match=r"add a \[models.judge\] table"):
        judge_model_for(Harness(config=HarnessConfig()))


def test_a_bad_judge_model_value_is_a_config_error():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="judge_model: expected a string"):
        HarnessConfig.from_dict({"judge_model": 3})


# --- the offline judge ------------------------------------------------------------------------


def test_the_offline_judge_grades_by_overlap_deterministically():
    h = Harness(config={"judge_model": "mock/judge"})
    good = llm_judge(
        ctx("Canberra is the capital.", h, reference="Canberra is the capital."),
        template="factuality",
    )
    half = llm_judge(
        ctx("Canberra.", h, reference="Canberra is the capital."), template="factuality"
    )
    bad = llm_judge(ctx("Sydney.", h, reference="Canberra is the capital."), template="factuality")
    assert (good.score, half.score, bad.score) == (1.0, 0.5, 0.0)
    assert bad.judge is not None and bad.judge["reason"].startswith("offline judge:")
    g = llm_judge(ctx("Canberra capital", h), template="g_eval", criteria="c")
    assert g.judge is not None and g.judge["raw_score"] == 1 + round(
        4 * overlap("Canberra capital", QUESTION[0]["content"])
    )


def test_the_offline_judge_picks_the_answer_closer_to_the_reference_and_is_biased_on_close_calls():
    from harness.providers.offline_judge import PAIRWISE_MARK

    def ask(a: str, b: str) -> dict:
        user = f"<reference>\nCanberra is the capital\n</reference>\n\n<answer_a>\n{a}\n</answer_a>\n\n<answer_b>\n{b}\n</answer_b>"
        return json.loads(
            judge_reply(
                [{"role": "system", "content": PAIRWISE_MARK}, {"role": "user", "content": user}]
            )
        )

    assert ask("Canberra is the capital", "Sydney")["winner"] == "A"
    assert ask("Sydney", "Canberra is the capital")["winner"] == "B"
    assert ask("Canberra", "the capital Canberra")["winner"] == "B"
    # a close call goes to the first answer: a position bias that swapping the order cancels
    assert ask("Sydney", "Melbourne")["winner"] == "A"
    assert ask("Melbourne", "Sydney")["winner"] == "A"


# --- under pytest -------------------------------------------------------------------------------

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]

[tool.harness.models.good]
model = "mock/good"
"""

JUDGED = """
models: [good]
prompt: "What is the capital of Australia?"
cases:
  - id: capital
    vars: { reference: Canberra is the capital. }
    assert:
      - contains: Canberra
      - llm_judge: { template: factuality, threshold: 0.6 }
    mock_response: "Canberra is the capital."
"""


def test_a_suite_with_a_judge_and_no_judge_model_fails_collection_saying_how(pytester):
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "j.yaml").write_text(JUDGED)
    result = pytester.runpytest("suites")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*suites/j.yaml:9: case 'capital': llm_judge: no judge model is configured: add a [[]models.judge[]] table*judge_model*"
        ]
    )
    assert NO_JUDGE_MODEL.split(":")[0] in result.stdout.str()
    assert result.stdout.str().count("no judge model is configured") == 1


def test_judge_model_in_the_config_lets_the_suite_run_and_records_the_judgment(pytester):
    pytester.makepyprojecttoml(
        CONFIG.replace(
            "[tool.harness.models.good]",
            '[tool.harness]\njudge_model = "mock/offline-judge"\n\n[tool.harness.models.good]',
        )
    )
    (pytester.path / "suites").mkdir()
    wrong = (
        JUDGED.split("cases:\n")[1]
        .replace("id: capital", "id: wrong")
        .replace("- contains: Canberra", "- icontains: a")
    )
    (pytester.path / "suites" / "j.yaml").write_text(
        JUDGED
        + wrong.replace('mock_response: "Canberra is the capital."', 'mock_response: "Sydney."')
    )
    pytester.runpytest("suites").assert_outcomes(passed=1, failed=1)
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    record, failed = [r for r in map(json.loads, lines) if r["kind"] == "result"]
    judged = record["checks"][1]
    assert judged["judge"] == {
        "model": "mock/offline-judge",
        "score": 1.0,
        "reason": "offline judge: the answer has 100% of the reference's key words",
        "rubric": "factuality",
        "version": "factuality@1",
    }
    assert failed["checks"][1]["judge"]["score"] == 0.0
    reason = "offline judge: the answer has 0% of the reference's key words"
    assert reason in (pytester.path / "reports" / "report.md").read_text()
    assert reason in (pytester.path / "reports" / "report.html").read_text()


def test_judge_calls_go_through_the_store_and_are_not_repeated_on_a_rerun(local_server, pytester):
    from tests.helpers.local_server import Reply, chat_body

    server = local_server(lambda r: Reply(body=chat_body('{"score": 0.9, "reason": "Right."}')))
    pytester.makepyprojecttoml(
        CONFIG
        + f'\n[tool.harness.models.judge]\nmodel = "openai/judge"\napi_base = "{server.url}/v1"\napi_key_env = "NONE"\n'
    )
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "j.yaml").write_text(JUDGED)
    pytester.runpytest("suites").assert_outcomes(passed=1)
    assert len(server.requests) == 1
    assert server.requests[0].json()["temperature"] == 0
    pytester.runpytest("suites").assert_outcomes(passed=1)
    assert len(server.requests) == 1  # the judgment is replayed from the store
    pytester.runpytest("suites", "--harness-cache", "replay", "--harness-offline").assert_outcomes(
        passed=1
    )
    assert len(server.requests) == 1


def test_judge_calls_count_toward_the_cost_cap(local_server, pytester):
    from tests.helpers.local_server import Reply, chat_body

    body = chat_body('{"score": 0.9, "reason": "Right."}')
    body["usage"] = {"prompt_tokens": 1000, "completion_tokens": 1, "total_tokens": 1001}
    server = local_server(lambda r: Reply(body=body))
    pytester.makepyprojecttoml(
        CONFIG
        + f'\n[tool.harness.models.judge]\nmodel = "openai/judge"\napi_base = "{server.url}/v1"\napi_key_env = "NONE"\n'
        + "price = { input_per_mtok = 1000000, output_per_mtok = 1000000 }\n"
    )
    (pytester.path / "suites").mkdir()
    two = JUDGED + JUDGED.split("cases:\n")[1].replace("id: capital", "id: again").replace(
        'Canberra is the capital."', 'Canberra is the capital!"'
    )
    (pytester.path / "suites" / "j.yaml").write_text(two)
    # $1 a token: a judgment is estimated at its prompt plus 1,024 output tokens (about
    # $1,300), so the first fits under $2,000; it spends $1,001, and the second no longer fits.
    result = pytester.runpytest("suites", "--harness-max-cost", "2000", "--harness-cache", "off")
    assert len(server.requests) == 1  # the first judgment spent the cap; the second was not sent
    result.stdout.fnmatch_lines(["*cost cap $2,000.00 would be exceeded: $1,001.00 spent*"])


def test_the_example_suite_judges_offline(pytester):
    pytester.makepyprojecttoml(
        (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[0]
        + CONFIG.split("[tool.harness.models.good]")[0]
    )
    (pytester.path / "suites").mkdir()
    shutil.copy(ROOT / "suites" / "judges.yaml", pytester.path / "suites")
    result = pytester.runpytest("suites")
    result.assert_outcomes(passed=4, failed=4)
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    scores = {
        (r["case_id"], r["model"]): [c["judge"]["score"] for c in r["checks"] if "judge" in c]
        for r in map(json.loads, lines)
        if r["kind"] == "result"
    }
    assert all(s >= 0.6 for s in scores["capital", "careful"]) and scores["capital", "quick"] == [
        0.0,
        0.0,
    ]
    assert len({s for ss in scores.values() for s in ss}) > 3  # graded, not all-or-nothing


def test_a_failed_judge_call_still_records_which_judge_and_rubric():
    h = Harness(config={})
    result = llm_judge(
        ctx("x", h), "Is it polite?", model="mock/j", mock_response={"error": 500}, num_retries=0
    )
    assert not result and result.judge is not None
    assert result.judge["model"] == "mock/j" and result.judge["rubric"] == "Is it polite?"
    assert result.judge["score"] is None and result.judge["version"] is None


@given(st.text())
def test_reading_any_reply_gives_a_score_in_range_or_one_precise_error(text):
    for scale in ((0, 1), (1, 5)):
        try:
            score, reason = parse_judge_reply(text, scale)
        except ValueError as exc:
            assert "score" in str(exc)
        else:
            assert scale[0] <= score <= scale[1] and isinstance(reason, str)


@given(st.integers(1, 5), st.text(max_size=50), st.text(max_size=30))
def test_a_g_eval_reply_in_prose_is_read_back(score, reason, prose):
    reply = prose.replace("{", "") + json.dumps({"score": score, "reason": reason})
    assert parse_judge_reply(reply, (1, 5)) == (score, reason.strip())


def test_a_case_var_reference_is_shown_as_data_not_rendered():
    judge = ScriptedJudge('{"score": 1, "reason": "ok"}')
    llm_judge(ctx("x", judge, reference="use {{ braces }} as is"), template="factuality", model="m")
    assert "<reference>\nuse {{ braces }} as is\n</reference>" in judge.calls[0][1][1]["content"]
