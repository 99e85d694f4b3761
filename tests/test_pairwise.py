"""Head-to-head comparison: verdicts, both orders, the statistic, compare:, the reports."""

from __future__ import annotations

import asyncio
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
from harness.pairwise import (
    DEFAULT_PAIRWISE_RUBRIC,
    PAIRWISE_SYSTEM_PROMPT,
    RETRY_PROMPT,
    PairSpec,
    head_to_head,
    judge_pairs,
    parse_verdict,
    tally_text,
    wilson_interval_fraction,
)
from harness.report.document import load_document, merge_documents
from harness.report.markdown import render_markdown
from harness.results import wilson_interval
from harness.suites import SuiteError, load_suite
from harness.types import Choice, Message, ModelResponse
from tests.helpers.report_docs import record

ROOT = Path(__file__).resolve().parents[1]


# --- reading a verdict -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "winner", "reason"),
    [
        ('{"winner": "A", "reason": "More complete."}', "A", "More complete."),
        ('Thinking...\n```json\n{"winner": "b", "reason": "x"}\n```', "B", "x"),
        ('{"winner": "Tie"}', "tie", ""),
        ("B.", "B", ""),
    ],
)
def test_parse_verdict_reads_the_winner(reply, winner, reason):
    assert parse_verdict(reply) == (winner, reason)


@pytest.mark.parametrize(
    ("reply", "phrase"),
    [
        ("A is better", "could not read a verdict"),
        ('{"winner": "C"}', "the judge's winner 'C' is not A, B or tie"),
        ('{"reason": "no winner"}', "could not read a verdict"),
    ],
)
def test_parse_verdict_names_an_unreadable_reply(reply, phrase):
    with pytest.raises(ValueError, match=phrase):
        parse_verdict(reply)


# --- judging both orders ----------------------------------------------------------------------


class Judge:
    """A stand-in async harness: answers by the order of the answers it is shown."""

    def __init__(self, decide):
        self.decide = decide
        self.calls: list[list[dict]] = []

    async def acompletion(self, model, messages, **params):
        self.calls.append(messages)
        assert params == {"temperature": 0}
        user = messages[1]["content"]
        first = user.split("<answer_a>\n")[1].split("\n</answer_a>")[0]
        text = self.decide(first, messages)
        if isinstance(text, Exception):
            raise text
        return ModelResponse(choices=[Choice(0, Message(content=text), finish_reason="stop")])


def records(*answers: tuple[str, str, str]) -> list[dict]:
    out = []
    for case_id, a, b in answers:
        out.append(record(case_id, "a", a, prompt=f"Q {case_id}"))
        out.append(record(case_id, "b", b, prompt=f"Q {case_id}"))
        out.append(record(case_id, "a", "a later repeat", prompt=f"Q {case_id}", repeat=1))
    return out


AB = PairSpec(("a", "b"))


def run(judge, recs, spec=AB):
    return asyncio.run(judge_pairs(judge, recs, spec, "the-judge"))


def test_each_case_is_judged_in_both_orders_and_agreement_decides():
    judge = Judge(
        lambda first, m: '{"winner": "A", "reason": "r"}' if first == "good" else '{"winner": "B"}'
    )
    (rec,) = run(judge, records(("c1", "good", "bad")))
    assert len(judge.calls) == 2
    assert [v["order"] for v in rec["verdicts"]] == [["a", "b"], ["b", "a"]]
    assert [v["winner"] for v in rec["verdicts"]] == ["a", "a"]
    assert rec["winner"] == "a" and rec["answers"] == ["good", "bad"]
    assert rec["judge"] == "the-judge" and rec["rubric"] == DEFAULT_PAIRWISE_RUBRIC
    assert rec["version"] == "pairwise@1" and rec["question"] == "Q c1"
    assert judge.calls[0][0] == {"role": "system", "content": PAIRWISE_SYSTEM_PROMPT}
    assert "<answer_a>\ngood\n</answer_a>" in judge.calls[0][1]["content"]
    assert "<answer_a>\nbad\n</answer_a>" in judge.calls[1][1]["content"]


def test_a_judge_that_always_picks_the_first_answer_gives_a_tie():
    (rec,) = run(Judge(lambda first, m: '{"winner": "A"}'), records(("c1", "x", "y")))
    assert [v["winner"] for v in rec["verdicts"]] == ["a", "b"]
    assert rec["winner"] == "tie"


def test_an_unreadable_verdict_is_asked_again_then_recorded_as_not_judged():
    def decide(first, messages):
        if first == "x":
            return "hmm" if len(messages) == 2 else '{"winner": "B"}'
        return "still hmm"

    (rec,) = run(Judge(decide), records(("c1", "x", "y")))
    assert rec["verdicts"][0]["winner"] == "b" and rec["verdicts"][1]["winner"] is None
    assert rec["winner"] is None and "asked twice" in rec["error"]
    judge = Judge(decide)
    run(judge, records(("c1", "x", "y")))
    follow_up = next(c for c in judge.calls if len(c) == 4)
    assert follow_up[2:] == [
        {"role": "assistant", "content": "hmm"},
        {"role": "user", "content": RETRY_PROMPT},
    ]


def test_a_failed_judge_call_and_a_missing_answer_are_not_counted():
    from harness.errors import RateLimitError

    recs = records(("c1", "x", "y"), ("c2", "x", "y"))
    recs[3]["error"], recs[3]["response"] = {"type": "RateLimitError", "message": "429"}, None
    (one, two) = run(Judge(lambda first, m: RateLimitError("slow down")), recs)
    assert one["winner"] is None and "RateLimitError: slow down" in one["error"]
    assert two["winner"] is None and "has no answer" in two["error"]
    assert head_to_head([one, two])[0]["overall"]["n"] == 0


def test_only_cases_both_models_answered_are_judged():
    recs = records(("c1", "x", "y")) + [record("c2", "a", "only a")]
    assert [r["case_id"] for r in run(Judge(lambda f, m: "tie"), recs)] == ["c1"]


# --- the statistic -----------------------------------------------------------------------------


def pair(case, winner, prompt=None, agree=True):
    other = "b" if winner == "a" else "a"
    verdicts = [{"winner": winner}, {"winner": winner if agree else other}]
    return {
        "models": ["a", "b"],
        "judge": "j",
        "case": case,
        "prompt": prompt,
        "winner": winner,
        "verdicts": verdicts,
    }


def test_head_to_head_counts_ties_as_half_and_splits_by_prompt():
    recs = [
        pair("c1", "a", "p1"),
        pair("c2", "a", "p1"),
        pair("c3", "tie", "p2", agree=False),
        pair("c4", "b", "p2"),
    ]
    (h,) = head_to_head(recs)
    overall = h["overall"]
    assert (overall["n"], overall["wins"], overall["ties"], overall["losses"]) == (4, 2, 1, 1)
    assert overall["win_rate"] == pytest.approx(2.5 / 4)
    assert overall["ci95"] == pytest.approx(list(wilson_interval_fraction(2.5, 4)))
    assert h["prompts"]["p1"]["win_rate"] == 1.0 and h["prompts"]["p2"]["win_rate"] == 0.25
    assert [r["case"] for r in h["differ"]] == ["c1", "c2", "c4"]
    assert (
        tally_text(h)
        == "head to head a vs b: won 2, tied 1, lost 1 of 4 (judge j); win rate 62% [22%–91%]"
    )


@given(st.integers(0, 200), st.integers(1, 200))
def test_the_fractional_wilson_interval_is_wilson_for_whole_counts(k, n):
    k = min(k, n)
    assert wilson_interval_fraction(k, n) == pytest.approx(wilson_interval(k, n))


@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_the_win_rate_interval_holds_the_win_rate(wins, ties, losses):
    n = wins + ties + losses
    recs = (
        [pair(f"w{i}", "a") for i in range(wins)]
        + [pair(f"t{i}", "tie", agree=False) for i in range(ties)]
        + [pair(f"l{i}", "b") for i in range(losses)]
    )
    if not n:
        assert head_to_head(recs) == []
        return
    overall = head_to_head(recs)[0]["overall"]
    low, high = overall["ci95"]
    assert 0.0 <= low <= overall["win_rate"] <= high <= 1.0


# --- compare: in a suite -----------------------------------------------------------------------


def write(tmp_path: Path, compare: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("prompt: hi\n" + compare + "cases:\n  - id: c\n")
    return path


def test_compare_loads_as_a_pair_spec(tmp_path):
    suite = load_suite(
        write(tmp_path, "compare: {models: [a, b], rubric: Shorter is better, judge: j}\n")
    )
    assert suite.compare == PairSpec(("a", "b"), "Shorter is better", "j")
    assert suite.compare_line == 2


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        (
            "compare: {models: [a]}\n",
            ":2: compare.models: expected two different models, got ['a']",
        ),
        ("compare: {models: [a, a]}\n", "compare.models: expected two different models"),
        (
            "compare:\n  models: [a, b]\n  judge: 3\n",
            ":4: compare.judge: expected a non-empty string, got 3",
        ),
        ("compare: {rubric: x}\n", ":2: compare: needs 'models: [a, b]'"),
        ("compare:\n  models: [a, b]\n  rubirc: x\n", ":4: compare: unknown key 'rubirc'"),
        ("compare: [a, b]\n", ":2: compare: expected a mapping"),
    ],
)
def test_bad_compare_is_a_precise_load_error(tmp_path, compare, message):
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, compare))
    assert message in str(info.value)


# --- under pytest ------------------------------------------------------------------------------

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]
"""


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    """This repository's models (careful, quick, the offline judge) and suites/compare.yaml."""
    models = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[0]
    pytester.makepyprojecttoml(models + CONFIG)
    (pytester.path / "suites").mkdir()
    shutil.copy(ROOT / "suites" / "compare.yaml", pytester.path / "suites")
    return pytester


def lines_of(pytester: pytest.Pytester) -> list[dict]:
    return [
        json.loads(x)
        for x in (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    ]


def test_the_example_suite_judges_careful_against_quick_offline(example):
    result = example.runpytest("suites")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(
        [
            "head to head careful vs quick: won 3, tied 1, lost 1 of 5 (judge judge); win rate 70% [[]30%–93%[]]"
        ]
    )
    pairwise = [r for r in lines_of(example) if r["kind"] == "pairwise"]
    assert {r["case_id"]: r["winner"] for r in pairwise} == {
        "capital": "careful",
        "boiling": "careful",
        "photosynthesis": "quick",
        "planets": "tie",  # a close call: the offline judge's position bias, cancelled
        "author": "careful",
    }
    planets = next(r for r in pairwise if r["case_id"] == "planets")
    assert [v["winner"] for v in planets["verdicts"]] == ["careful", "quick"]
    doc = json.loads((example.path / "reports" / "results.json").read_text())
    assert [r["case_id"] for r in doc["pairwise"]] == [r["case_id"] for r in pairwise]
    assert all("kind" not in r for r in doc["pairwise"])
    md = (example.path / "reports" / "report.md").read_text()
    assert (
        "### Head to head" in md
        and "| careful vs quick | all      |       5 |      3 |      1 |        1 | 70.0% [29.9%–92.7%] |"
        in md
    )
    assert "<code>Sydney, I think.</code>" in md
    # harness report re-renders them; the stream reads back the same
    assert load_document(example.path / "reports" / "results.jsonl")["pairwise"] == doc["pairwise"]
    assert "### Head to head" in render_markdown(
        load_document(example.path / "reports" / "results.json")
    )


def test_merge_keeps_pairwise_records_and_the_later_judgment_wins(example):
    example.runpytest("suites").assert_outcomes(passed=10)
    doc = load_document(example.path / "reports" / "results.json")
    later = json.loads(json.dumps(doc))
    later["pairwise"][0]["winner"] = "quick"
    merged = merge_documents([doc, later])
    assert len(merged["pairwise"]) == 5 and merged["pairwise"][0]["winner"] == "quick"


def test_the_pairwise_option_compares_in_every_suite(pytester):
    pytester.makepyprojecttoml(
        CONFIG
        + '\n[tool.harness]\njudge_model = "mock/judge"\n\n[tool.harness.models.x]\nmodel = "mock/x"\n\n[tool.harness.models.y]\nmodel = "mock/y"\n'
    )
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "s.yaml").write_text(
        textwrap.dedent("""
        models: [x, y]
        prompt: "Name a red fruit"
        cases:
          - { id: one, vars: { reference: a red apple }, mock_responses: { x: "A red apple.", y: "A banana." } }
    """)
    )
    result = pytester.runpytest("suites", "--harness-pairwise", "y,x")
    result.assert_outcomes(passed=2)
    (rec,) = [r for r in lines_of(pytester) if r["kind"] == "pairwise"]
    assert rec["models"] == ["y", "x"] and rec["winner"] == "x" and rec["judge"] == "mock/judge"
    result.stdout.fnmatch_lines(
        ["head to head y vs x: won 0, tied 0, lost 1 of 1 (judge mock/judge)*"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--harness-pairwise", "careful"],
            "--harness-pairwise: expected two different models as A,B, got 'careful'",
        ),
        (["--harness-pairwise", "careful,careful"], "expected two different models"),
        (["--harness-pairwise", "careful,nope"], "--harness-pairwise: *nope*"),
        (
            ["--harness-pairwise", "careful,quick", "--harness-pairwise-judge", "nope"],
            "--harness-pairwise-judge: *nope*",
        ),
    ],
)
def test_bad_pairwise_options_are_usage_errors(example, args, message):
    result = example.runpytest("suites", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_compare_with_an_unknown_model_fails_collection_naming_the_line(example):
    path = example.path / "suites" / "compare.yaml"
    path.write_text(
        path.read_text().replace(
            "models: [careful, quick]\n  judge", "models: [careful, sloppy]\n  judge"
        )
    )
    result = example.runpytest("suites")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["suites/compare.yaml:3: compare: *sloppy*"])


def test_pairwise_judge_calls_go_through_the_store(local_server, example):
    from tests.helpers.local_server import Reply, chat_body

    server = local_server(lambda r: Reply(body=chat_body('{"winner": "A", "reason": "first"}')))
    pyproject = example.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '[tool.harness.models.judge]\nmodel = "mock/judge"',
            f'[tool.harness.models.judge]\nmodel = "openai/judge"\napi_base = "{server.url}/v1"\napi_key_env = "NONE"',
        )
    )
    example.runpytest("suites").assert_outcomes(passed=10)
    assert len(server.requests) == 10  # 5 cases x 2 orders
    assert all(r["winner"] == "tie" for r in lines_of(example) if r["kind"] == "pairwise")
    example.runpytest("suites").assert_outcomes(passed=10)
    assert len(server.requests) == 10  # replayed from the store, not billed again


def test_the_pairwise_prompts_are_documented():
    from harness.pairwise import RETRY_PROMPT as PAIR_RETRY

    doc = (ROOT / "docs" / "judges.md").read_text().replace("\n", " ")
    for text in (PAIRWISE_SYSTEM_PROMPT, DEFAULT_PAIRWISE_RUBRIC, PAIR_RETRY, "pairwise@1"):
        assert text in doc


def test_dump_suite_keeps_compare(tmp_path):
    import yaml

    from harness.suites import dump_suite

    suite = load_suite(write(tmp_path, "compare: {models: [a, b], judge: j}\n"))
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(dump_suite(suite)))
    assert load_suite(again).compare == suite.compare == PairSpec(("a", "b"), None, "j")


def test_the_pairwise_command_judges_a_saved_run(tmp_path, capsys):
    from harness.cli import main
    from harness.report.document import write_document
    from tests.helpers.report_docs import document

    recs = [
        record("c1", "a", "Canberra is the capital", vars={"reference": "Canberra is the capital"}),
        record("c1", "b", "Sydney", vars={"reference": "Canberra is the capital"}),
    ]
    path = write_document(document(recs), tmp_path / "results.json")
    config = tmp_path / "harness.toml"
    config.write_text('judge_model = "mock/judge"\n')
    args = ["pairwise", str(path), "--models", "b,a", "--config", str(config)]
    assert main([*args, "--cache-path", str(tmp_path / "c.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "head to head b vs a: won 0, tied 0, lost 1 of 1 (judge mock/judge)" in out
    (rec,) = load_document(path)["pairwise"]
    assert rec["winner"] == "a" and rec["models"] == ["b", "a"]
    assert "### Head to head" in (tmp_path / "report.md").read_text()
    assert main(["pairwise", str(path), "--models", "a"]) == 2
    assert "--models: expected A,B" in capsys.readouterr().err


@given(st.text())
def test_reading_any_verdict_gives_a_b_tie_or_one_precise_error(text):
    try:
        winner, reason = parse_verdict(text)
    except ValueError as exc:
        assert "verdict" in str(exc) or "winner" in str(exc)
    else:
        assert winner in ("A", "B", "tie") and isinstance(reason, str)
