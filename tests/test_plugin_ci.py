"""CI gates a team can trust: records and counts that survive real pytest usage.

Each test drives pytest through pytester the way a CI job does — with pytest-rerunfailures,
pytest-timeout, ``--lf``/``--ff``/``--sw``, replay from the store, sharded runs merged, two
sessions sharing a report directory — and checks the counts, the records and the exit
status.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness.suites  # noqa: F401  (PyYAML's C extension must be imported only once)
from harness.report.document import load_document, merge_documents
from tests.helpers.pytester_ini import PYTESTER_INI

CONFIG = PYTESTER_INI + """
[tool.harness.models.good]
model = "mock/good"

[tool.harness.models.flaky]
model = "mock/flaky"
responses = ["nope", "a star", "nope", "a star"]
"""

SUITE = """
models: [good]
prompt: "Tell me about {{ thing }}"
cases:
  - id: sun
    vars: { thing: the sun }
    assert: [{ icontains: star }]
    mock_response: "The sun is a star."
  - id: moon
    vars: { thing: the moon }
    assert: [{ icontains: rock }]
    mock_response: "The moon is a star."
  - id: mars
    vars: { thing: mars }
    assert: [{ icontains: planet }]
    mock_response: "Mars is a planet."
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "demo.yaml").write_text(SUITE)
    return pytester


def document(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "reports" / "results.json").read_text())


def lines(pytester: pytest.Pytester) -> list[dict]:
    text = (pytester.path / "reports" / "results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


# --- --lf / --ff / --sw select suite items as they do Python tests ------------------------


def test_last_failed_reruns_only_the_failing_suite_items(project):
    project.runpytest("suites").assert_outcomes(passed=2, failed=1)
    again = project.runpytest("suites", "--lf", "-v")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*rerun previous 1 failure*", "*demo.yaml::moon?good? FAILED*"])
    assert "sun" not in again.stdout.str()


def test_failed_first_runs_the_failing_suite_item_first(project):
    project.runpytest("suites").assert_outcomes(passed=2, failed=1)
    again = project.runpytest("suites", "--ff", "-v")
    again.stdout.fnmatch_lines(["*demo.yaml::moon?good? FAILED*", "*demo.yaml::sun?good? PASSED*"])


def test_stepwise_resumes_at_the_failing_suite_item(project):
    project.runpytest("suites", "--sw").assert_outcomes(passed=1, failed=1)
    again = project.runpytest("suites", "--sw", "-v")
    again.stdout.fnmatch_lines(["*skipping 1 already passed items*"])
    again.assert_outcomes(failed=1, deselected=1)


# --- pytest-rerunfailures: an item counts once, earlier attempts are history -------------


def test_reruns_count_each_item_once_with_its_final_outcome(project):
    (project.path / "suites" / "demo.yaml").write_text(SUITE + textwrap.dedent("""
          - id: flaky-star
            models: [flaky]
            vars: { thing: stars }
            assert: [{ icontains: star }]
    """).replace("\n", "\n  ").rstrip() + "\n")
    (project.path / "suites" / "demo.yaml").write_text(
        (project.path / "suites" / "demo.yaml").read_text().replace("models: [good]", "models: [good, flaky]", 1)
    )
    result = project.runpytest("suites", "-k", "flaky-star", "-p", "rerunfailures", "--reruns", "2")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1, "deselected": 6}
    doc = document(project)
    assert len(doc["items"]) == 1 and doc["items"][0]["outcome"] == "passed"
    assert doc["items"][0]["reruns"] == 1
    assert len(doc["records"]) == 1
    assert doc["records"][0]["response"]["choices"][0]["message"]["content"] == "a star"
    assert len(doc["history"]) == 1
    assert doc["history"][0]["attempt"] == 0 and not doc["history"][0]["passed"]
    kinds = [line["kind"] for line in lines(project)]
    assert kinds.count("result") == 1 and kinds.count("rerun") == 1
    result.stdout.fnmatch_lines(["flaky *1/1 *100.0%*"])  # passed/items


def test_a_rerun_of_a_python_test_starts_its_records_afresh(project):
    project.makepyfile(test_py="""
        import itertools
        tries = itertools.count()

        def test_twice(batch):
            answers = batch([[{"role": "user", "content": "q"}]] * 2, model="good")
            assert next(tries) > 0
    """)
    result = project.runpytest("test_py.py", "-p", "rerunfailures", "--reruns", "1")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    doc = document(project)
    assert len(doc["items"]) == 1 and doc["items"][0]["outcome"] == "passed"
    assert len(doc["records"]) == 2 and len(doc["history"]) == 2


# --- replay: a missing recording fails the item as an error -------------------------------


def test_replay_mode_fails_an_item_with_a_missing_recording(local_server, pytester):
    from tests.helpers.local_server import Reply, chat_body

    (pytester.path / "suites").mkdir()
    suite = pytester.path / "suites" / "net.yaml"
    suite.write_text(textwrap.dedent("""
        models: [net]
        prompt: "Question {{ n }}"
        defaults: { repeat: 3, threshold: 0.6 }
        cases:
          - { id: a, vars: { n: 1 }, assert: [{ contains: answer }] }
    """))
    server = local_server(lambda r: Reply(body=chat_body("answer")))
    pytester.makepyprojecttoml(
        CONFIG + "\n[tool.harness.models.net]\n"
        f'model = "openai/net"\napi_base = "{server.url}/v1"\napi_key_env = "NONE"\n'
    )
    pytester.runpytest("suites").assert_outcomes(passed=1)
    suite.write_text(suite.read_text().replace("repeat: 3", "repeat: 4"))
    replay = pytester.runpytest("suites", "--harness-cache", "replay")
    replay.assert_outcomes(failed=1)  # 3/4 would pass the 0.6 threshold: it must not
    replay.stdout.fnmatch_lines([
        "*a [[]net[]]: not recorded: repeat 4 of 4*",
        "*ReplayMissError*",
        "net *0/1 *1 *0.0%*",  # passed/items, errors: the miss is an error
    ])
    item = document(pytester)["items"][0]
    assert item["errored"] is True and item["passes"] == 3


def test_the_config_files_cache_mode_is_honoured_under_pytest(pytester):
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "net.yaml").write_text(textwrap.dedent("""
        models: [net]
        prompt: "Question"
        cases:
          - { id: a, assert: [{ contains: answer }] }
    """))
    # Nothing listens on port 9: if the plugin called the network, the call would fail
    # with a connection error instead of "not recorded".
    pytester.makepyprojecttoml(
        CONFIG + '\n[tool.harness.cache]\nmode = "replay"\n'
        '\n[tool.harness.models.net]\nmodel = "openai/net"\n'
        'api_base = "http://127.0.0.1:9/v1"\napi_key_env = "NONE"\n'
    )
    result = pytester.runpytest("suites")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not recorded: repeat 1 of 1*"])
    assert "APIConnectionError" not in result.stdout.str()
    # An option given on the command line still wins over the file.
    result = pytester.runpytest("suites", "--harness-cache", "off")
    result.stdout.fnmatch_lines(["*APIConnectionError*"])


# --- pytest-timeout: the hanging item fails with its records, the reports are written ----


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_a_hanging_call_under_pytest_timeout_fails_its_item_and_keeps_the_rest(project, method):
    (project.path / "suites" / "demo.yaml").write_text(SUITE.replace(
        'mock_response: "The moon is a star."',
        'mock_response: { content: "The moon is a rock.", latency_ms: 600000 }',
    ))
    result = project.runpytest(
        "suites", "-p", "timeout", "--timeout", "3", "--timeout-method", method
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*moon [[]good[]] failed*",
        "*TimeoutError*no answer within 2.4 s*pytest-timeout*",
        "*harness summary*",
        "good *2/3 *1 *",
        "report: *report.html",
    ])
    doc = document(project)
    assert len(doc["items"]) == 3
    moon = next(r for r in doc["records"] if r["case_id"] == "moon")
    assert moon["error"]["type"] == "TimeoutError"


# --- sharded runs merge without losing a record ------------------------------------------


def test_merging_shards_keeps_every_record_of_a_multi_call_test(project):
    project.makepyfile(test_py="""
        def test_three_calls(batch):
            batch([[{"role": "user", "content": f"q{i}"}] for i in range(3)], model="good")

        def test_one_call(batch):
            batch([[{"role": "user", "content": "q"}]], model="good")
    """)
    project.runpytest("test_py.py", "-k", "three").assert_outcomes(passed=1)
    shard1 = load_document(project.path / "reports" / "results.json")
    project.runpytest("test_py.py", "-k", "one").assert_outcomes(passed=1)
    shard2 = load_document(project.path / "reports" / "results.json")
    merged = merge_documents([shard1, shard2])
    assert len(merged["records"]) == 4
    assert len(merged["items"]) == 2
    assert "merge_replaced" not in merged["run"]


def test_an_item_in_two_shards_is_taken_from_the_later_one_and_named():
    def shard(passed: bool) -> dict:
        record = {"test_id": "t.py::test_a", "model": "m", "repeat": 0, "passed": passed}
        item = {"test_id": "t.py::test_a", "model": "m", "outcome": "passed" if passed else "failed"}
        return {"run": {}, "records": [record, dict(record)], "items": [item]}

    merged = merge_documents([shard(False), shard(True)])
    assert [r["passed"] for r in merged["records"]] == [True, True]
    assert merged["items"][0]["outcome"] == "passed"
    assert merged["run"]["merge_replaced"] == ["t.py::test_a"]
    assert [r["superseded"] for r in merged["history"]] == ["merge", "merge"]


# --- two sessions sharing a report directory lose nothing --------------------------------


def test_a_second_session_appends_instead_of_truncating(project):
    from harness.results import JsonlWriter
    from pytest_plugin._collector import SharedStream

    jsonl = project.path / "reports" / "results.jsonl"
    jsonl.parent.mkdir()
    running = SharedStream(jsonl)  # another session is writing right now
    assert running.alone
    writer = JsonlWriter(jsonl)
    writer.write({"kind": "result", "session": "other", "test_id": "x", "model": "m"})
    project.runpytest("suites").assert_outcomes(passed=2, failed=1)
    writer.write({"kind": "result", "session": "other", "test_id": "y", "model": "m"})
    writer.close()
    running.release()
    got = lines(project)
    assert [r["test_id"] for r in got if r.get("session") == "other"] == ["x", "y"]
    assert sum(1 for r in got if r["kind"] == "result" and r["session"] != "other") == 3
    # Alone again, the next session starts the file afresh.
    project.runpytest("suites")
    assert all(r["session"] != "other" for r in lines(project))


def _append_big_lines(path: str, tag: str, count: int) -> None:
    from harness.results import JsonlWriter

    writer = JsonlWriter(path)
    for i in range(count):
        writer.write({"kind": "result", "who": tag, "i": i, "text": tag * 200_000})
    writer.close()


def test_lines_from_concurrent_writers_never_interleave(tmp_path):
    path = str(tmp_path / "results.jsonl")
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=_append_big_lines, args=(path, tag, 20)) for tag in ("a", "b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert sorted((r["who"], r["i"]) for r in got) == sorted(
        (who, i) for who in ("a", "b") for i in range(20)
    )


# --- gate semantics -----------------------------------------------------------------------


def test_the_default_gate_fails_on_any_failing_item(project):
    result = project.runpytest("suites", "--harness-min-pass-rate", "0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_rate_gate_lets_the_pass_rate_decide(project):
    result = project.runpytest("suites", "--harness-gate", "rate", "--harness-min-pass-rate", "0.6")
    result.assert_outcomes(passed=2, failed=1)  # the failing item is still reported
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*gate 'rate': 1 failing item(s) reported*"])
    assert document(project)["run"]["gate"] == "rate"
    strict = project.runpytest("suites", "--harness-gate", "rate", "--harness-min-pass-rate", "0.7")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*pass rate below --harness-min-pass-rate 70%*"])


def test_the_rate_gate_still_fails_on_other_failures(project):
    project.makepyfile(test_plain="def test_broken():\n    assert False\n")
    result = project.runpytest("--harness-gate", "rate", "--harness-min-pass-rate", "0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_rate_gate_needs_a_gate(project):
    result = project.runpytest("suites", "--harness-gate", "rate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-gate rate*--harness-min-pass-rate*"])


def test_the_reports_of_a_session_survive_its_exit_code(project):
    """The gate never stops the reports being written (checked with a real subprocess)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "-q", "--harness-gate", "rate",
         "--harness-min-pass-rate", "0.9"],
        cwd=project.path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert (project.path / "reports" / "report.html").is_file()
    assert len(document(project)["items"]) == 3


# --- adaptive repeats ---------------------------------------------------------------------

ADAPTIVE = """
models: [good]
prompt: "Tell me about {{ thing }}"
defaults: { repeat: { max: 10, until: decided } }
cases:
  - id: always
    vars: { thing: the sun }
    assert: [{ icontains: star }]
    mock_response: "The sun is a star."
  - id: never
    vars: { thing: the moon }
    assert: [{ icontains: rock }]
    mock_response: "The moon is a star."
  - id: lenient
    vars: { thing: mars }
    threshold: 0.5
    assert: [{ icontains: planet }]
    mock_response: "Mars is a planet."
"""


def test_adaptive_repeats_stop_once_the_verdict_is_decided(project):
    (project.path / "suites" / "demo.yaml").write_text(ADAPTIVE)
    result = project.runpytest("suites")
    result.assert_outcomes(passed=2, failed=1)
    items = {i["test_id"].split("::")[1]: i for i in document(project)["items"]}
    # Threshold 1: every repeat must pass, so a pass needs all 10; the first failure decides.
    assert (items["always[good]"]["repeats"], items["always[good]"]["stopped"]) == (10, "max")
    assert (items["never[good]"]["repeats"], items["never[good]"]["stopped"]) == (1, "curtailed")
    # Threshold 0.5: five passes decide it for certain; the plan may stop sooner, confident.
    assert items["lenient[good]"]["repeats"] <= 5
    assert items["lenient[good]"]["stopped"] in ("curtailed", "confident")
    assert all(i["max_repeats"] == 10 for i in items.values())
    used = sum(i["repeats"] for i in items.values())
    assert len(document(project)["records"]) == used
    result.stdout.fnmatch_lines([
        "*never [[]good[]] failed; stopped after 1 of up to 10 repeats: decided*",
        f"adaptive repeats: {used} of up to 30 calls asked for 3 item(s); {30 - used} saved",
    ])


def test_repeat_auto_on_the_command_line_makes_every_case_adaptive(project):
    result = project.runpytest("suites", "--harness-repeat", "auto:6")
    result.assert_outcomes(passed=2, failed=1)
    items = {i["test_id"].split("::")[1]: i for i in document(project)["items"]}
    assert items["moon[good]"]["repeats"] == 1 and items["sun[good]"]["repeats"] == 6
    assert {i["max_repeats"] for i in items.values()} == {6}


def test_repeat_auto_stops_repeat_marked_python_tests_early(project):
    project.makepyfile(test_py="""
        import pytest

        @pytest.mark.repeat(8)
        def test_always_fails():
            assert False
    """)
    result = project.runpytest("test_py.py", "--harness-repeat", "auto")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*0/1 repeats passed*"])


@pytest.mark.parametrize(
    ("repeat", "message"),
    [
        ("{ max: 10, until: always }", "repeat.until: expected 'decided', got 'always'"),
        ("{ until: decided }", "repeat: adaptive repeats need 'max'*"),
        ("{ max: 10, confidence: 2 }", "repeat.confidence: expected a number from 0.5*"),
        ("{ max: 0 }", "repeat.max: expected an integer >= 1, got 0"),
    ],
)
def test_a_bad_adaptive_repeat_names_the_line_and_field(project, repeat, message):
    (project.path / "suites" / "demo.yaml").write_text(
        ADAPTIVE.replace("{ max: 10, until: decided }", repeat)
    )
    result = project.runpytest("suites")
    result.stdout.fnmatch_lines([f"*suites/demo.yaml:4*defaults.{message}*"])


def test_harness_merge_warns_about_an_item_in_two_inputs(tmp_path, capsys):
    from harness.cli import main
    from harness.report.document import build_document, write_document

    record = {"test_id": "t.py::test_a", "model": "m", "repeat": 0, "passed": True}
    first = write_document(build_document([record]), tmp_path / "a.json")
    second = write_document(build_document([{**record, "passed": False}]), tmp_path / "b.json")
    assert main(["merge", str(first), str(second), "--out", str(tmp_path / "m.json")]) == 0
    err = capsys.readouterr().err
    assert "1 item(s) in more than one input" in err and "t.py::test_a" in err
    merged = json.loads((tmp_path / "m.json").read_text())
    assert [r["passed"] for r in merged["records"]] == [False]
    assert len(merged["history"]) == 1
