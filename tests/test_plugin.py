"""The pytest plugin, driven through pytester: options, suites, fixtures, markers, gates."""

from __future__ import annotations

import json
import textwrap

import pytest

# pytester's in-process runs drop modules first imported inside them; PyYAML's C extension
# cannot be imported twice, so load it out here once.
import harness.suites  # noqa: F401

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]

[tool.harness.models.good]
model = "mock/good"

[tool.harness.models.parrot]
model = "echo/parrot"

[tool.harness.models.flaky]
model = "mock/flaky"
responses = ["star", "nope", "star"]
"""

SUITE = """
description: demo
models: [good, parrot]
prompt: "Tell me about {{ thing }}"
cases:
  - id: sun
    vars: { thing: the sun }
    assert:
      - icontains: star
    mock_response: "The sun is a star."
  - id: moon
    vars: { thing: the moon }
    assert:
      - icontains: rock
    mock_response: "The moon is a big rock."
    tags: [smoke]
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "demo.yaml").write_text(SUITE)
    return pytester


def records(pytester: pytest.Pytester) -> list[dict]:
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_suite_cases_become_items_per_model(project):
    result = project.runpytest("--co", "-q", "suites")
    result.stdout.fnmatch_lines([
        "suites/demo.yaml::sun[[]good[]]",
        "suites/demo.yaml::sun[[]parrot[]]",
        "suites/demo.yaml::moon[[]good[]]",
        "suites/demo.yaml::moon[[]parrot[]]",
    ])
    assert result.ret == 0


def test_suite_run_checks_answers_and_records_them(project):
    result = project.runpytest("suites")
    result.assert_outcomes(passed=2, failed=2)  # the parrot echoes the prompt
    result.stdout.fnmatch_lines([
        "*sun [[]parrot[]] failed*",
        "*icontains: *star*output: 'Tell me about the sun'*",
    ])
    recs = [r for r in records(project) if r["kind"] == "result"]
    assert len(recs) == 4
    good_sun = next(r for r in recs if r["test_id"].endswith("sun[good]"))
    assert good_sun["passed"] is True
    assert good_sun["response"]["choices"][0]["message"]["content"] == "The sun is a star."
    assert good_sun["checks"][0]["name"] == "icontains" and good_sun["case_id"] == "sun"
    assert records(project)[0]["kind"] == "run"


def test_terminal_summary_has_a_row_per_model_and_names_the_file(project):
    result = project.runpytest("suites")
    result.stdout.fnmatch_lines([
        "*harness summary*",
        "*model*passed/items*pass rate*",  # fitted to the terminal's 80 columns
        "good*2/2*100.0% *",
        "parrot*0/2*0.0% *",
        "results: *results.jsonl",
    ])


def test_models_option_overrides_the_suite(project):
    result = project.runpytest("--co", "-q", "suites", "--harness-models", "good")
    result.stdout.fnmatch_lines(["suites/demo.yaml::sun[[]good[]]", "suites/demo.yaml::moon[[]good[]]"])
    assert "parrot" not in result.stdout.str()


def test_k_and_m_select_suite_items(project):
    result = project.runpytest("suites", "-k", "moon and good")
    result.assert_outcomes(passed=1)
    result = project.runpytest("suites", "-m", "smoke")
    result.assert_outcomes(passed=1, failed=1)


def test_repeat_and_threshold_judge_the_pass_rate(project):
    (project.path / "suites" / "flaky.yaml").write_text(textwrap.dedent("""
        models: [flaky]
        prompt: "Sun?"
        cases:
          - id: lenient
            repeat: 3
            threshold: 0.6
            assert: [{ contains: star }]
          - id: strict
            repeat: 3
            threshold: 0.9
            assert: [{ contains: star }]
    """))
    result = project.runpytest("suites/flaky.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*strict [[]flaky[]]: 2/3 repeats passed (67%; needs 90%)*"])
    item_recs = [r for r in records(project) if r.get("case_id") == "strict"]
    assert [r["repeat"] for r in item_recs] == [0, 1, 2]


def test_a_broken_suite_fails_collection_with_file_and_line(project):
    (project.path / "suites" / "broken.yaml").write_text(
        "models: [good]\nprompt: hi\ncases:\n  - id: a\n    assert:\n      - contans: x\n"
    )
    result = project.runpytest("suites/broken.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*suites/broken.yaml:*contans*"])
    assert "Traceback" not in result.stdout.str()


def test_an_unknown_model_is_a_usage_error_before_collection(project):
    result = project.runpytest("suites", "--harness-models", "nope/model")
    result.stderr.fnmatch_lines(["*--harness-models: unknown model 'nope/model': unknown provider 'nope'*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_offline_mode_refuses_network_models(project):
    result = project.runpytest("suites", "--harness-offline", "--harness-models", "openai/gpt-4o-mini")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*offline mode: model 'openai/gpt-4o-mini'*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--harness-repeat", "0"], "--harness-repeat: expected an integer >= 1, got '0'"),
        (["--harness-min-pass-rate", "90"], "--harness-min-pass-rate: expected a number from 0 to 1*"),
        (["--harness-max-concurrency", "x"], "--harness-max-concurrency: expected an integer >= 1*"),
        (["--harness-config", "missing.toml"], "--harness-config: no such file: missing.toml"),
    ],
)
def test_bad_option_values_are_usage_errors(project, args, message):
    result = project.runpytest("suites", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_ini_sets_models_and_command_line_wins(project):
    project.makepyprojecttoml(CONFIG.replace("[tool.pytest.ini_options]", '[tool.pytest.ini_options]\nharness_models = "parrot"'))
    result = project.runpytest("--co", "-q", "suites")
    assert "sun[parrot]" in result.stdout.str() and "sun[good]" not in result.stdout.str()
    result = project.runpytest("--co", "-q", "suites", "--harness-models", "good")
    assert "sun[good]" in result.stdout.str() and "sun[parrot]" not in result.stdout.str()


def test_min_pass_rate_gate_fails_the_session(project):
    result = project.runpytest("suites", "-k", "good", "--harness-min-pass-rate", "0.9")
    assert result.ret == 0
    result = project.runpytest("suites", "--harness-min-pass-rate", "0.9")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*pass rate below --harness-min-pass-rate 90%: overall 50.0%, parrot 0.0%*"])


def test_plugin_can_be_disabled(project):
    result = project.runpytest("-p", "no:harness", "suites")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_junitxml_includes_suite_items(project):
    result = project.runpytest("suites", "--junitxml=out.xml")
    xml = (project.path / "out.xml").read_text()
    assert 'name="sun[good]"' in xml and "<failure" in xml
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_model_fixture_parametrises_and_markers_narrow(project):
    project.makepyfile(test_models="""
        import pytest

        def test_each(model):
            assert model in ("good", "parrot")

        @pytest.mark.models("parrot")
        def test_narrowed(model):
            assert model == "parrot"

        @pytest.mark.models("flaky", replace=True)
        def test_replaced(model):
            assert model == "flaky"
    """)
    result = project.runpytest("test_models.py", "-v", "--harness-models", "good,parrot")
    result.stdout.fnmatch_lines([
        "*test_each[[]good[]] PASSED*",
        "*test_each[[]parrot[]] PASSED*",
        "*test_narrowed[[]parrot[]] PASSED*",
        "*test_replaced[[]flaky[]] PASSED*",
    ])
    result.assert_outcomes(passed=4)


def test_no_models_selected_skips_with_a_reason(project):
    project.makepyfile(test_none="def test_x(model):\n    pass\n")
    result = project.runpytest("test_none.py", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no models selected*"])


def test_shape_fixtures_record_every_answer(project):
    project.makepyfile(test_shapes="""
        import pytest
        from harness import ModelResponse

        Q = [{"role": "user", "content": "hello"}]

        def test_batch(batch, model):
            results = batch([Q, [{"role": "user", "content": "bye"}]], mock_response="ok")
            assert [r.content for r in results] == ["ok", "ok"]

        def test_race(race):
            winner = race(Q, models=["parrot", "good"])
            assert isinstance(winner, ModelResponse)

        def test_all(all_responses):
            results = all_responses(Q, models=["good", "parrot"])
            assert [r.content for r in results] == ["hello", "hello"]

        @pytest.mark.harness(mock_response="from the marker")
        def test_marker_params(batch):
            [r] = batch([Q], model="good")
            assert r.content == "from the marker"

        def test_failing(batch):
            [r] = batch([Q], model="parrot")
            assert r.content == "something else"
    """)
    result = project.runpytest("test_shapes.py", "--harness-models", "good")
    result.assert_outcomes(passed=4, failed=1)
    recs = [r for r in records(project) if r["kind"] == "result"]
    by_test = {}
    for r in recs:
        by_test.setdefault(r["test_id"].split("::")[1], []).append(r)
    assert [r["shape"] for r in by_test["test_batch[good]"]] == ["batch", "batch"]
    assert by_test["test_race"][0]["race"]["winner"] in ("parrot", "good")
    assert [r["model"] for r in by_test["test_all"]] == ["good", "parrot"]
    assert by_test["test_failing"][0]["passed"] is False
    assert all(r["passed"] for r in by_test["test_batch[good]"])


def test_failing_check_in_python_fails_like_an_assert_with_the_output(project):
    project.makepyfile(test_checks="""
        from harness import checks

        def test_it(batch):
            [r] = batch([[{"role": "user", "content": "the moon is cheese"}]], model="parrot")
            checks.assert_passes(checks.icontains(r, "rock"))
    """)
    result = project.runpytest("test_checks.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*icontains*", "*the moon is cheese*"])


def test_repeat_marker_judges_python_tests_by_pass_rate(project):
    project.makepyfile(test_rep="""
        import itertools
        import pytest

        counter = itertools.count()

        @pytest.mark.repeat(4, threshold=0.5)
        def test_half():
            assert next(counter) % 2 == 0

        other = itertools.count()

        @pytest.mark.repeat(4, threshold=0.75)
        def test_strict():
            assert next(other) % 2 == 0
    """)
    result = project.runpytest("test_rep.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*2/4 repeats passed (50%; needs 75%)*"])


def test_suite_calls_are_prefetched_before_the_first_item_runs(project):
    project.makeconftest("""
        import pytest
        from harness.providers import offline

        started = []
        original = offline.MockProvider.stream  # suites stream by default

        def counting(self, call, send_stream, **kw):
            started.append(call.spec.name)
            return original(self, call, send_stream, **kw)

        offline.MockProvider.stream = counting
        seen = {}

        @pytest.hookimpl(trylast=True)
        def pytest_runtest_teardown(item):
            seen.setdefault("first", len(started))

        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line(f"STARTED-AT-FIRST-ITEM={seen.get('first')} TOTAL={len(started)}")
    """)
    cases = "\n".join(
        f"  - id: c{i}\n    mock_response: ok\n    assert: [{{ contains: ok }}]" for i in range(20)
    )
    (project.path / "suites" / "many.yaml").write_text(
        f"models: [good]\nprompt: hi\ndefaults: {{ repeat: 2 }}\ncases:\n{cases}\n"
    )
    result = project.runpytest("suites/many.yaml")
    result.assert_outcomes(passed=20)
    result.stdout.fnmatch_lines(["STARTED-AT-FIRST-ITEM=40 TOTAL=40"])


def test_xdist_workers_report_to_the_controller_only(project):
    result = project.runpytest_subprocess("suites", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=2, failed=2)
    recs = [r for r in records(project) if r["kind"] == "result"]
    assert sorted(r["test_id"] for r in recs) == sorted([
        "suites/demo.yaml::sun[good]", "suites/demo.yaml::sun[parrot]",
        "suites/demo.yaml::moon[good]", "suites/demo.yaml::moon[parrot]",
    ])
    result.stdout.fnmatch_lines(["*harness summary*", "good*2*2*"])
    assert result.stdout.str().count("harness summary") == 1


@pytest.mark.parametrize("n", ["0", "2"])
def test_xdist_modes_give_the_same_results(project, n):
    result = project.runpytest_subprocess("suites", "-n", n, "-p", "xdist")
    result.assert_outcomes(passed=2, failed=2)
    assert len([r for r in records(project) if r["kind"] == "result"]) == 4


def test_python_checks_import_from_the_project_root(project):
    (project.path / "mychecks.py").write_text(
        "def short(ctx):\n    return len(ctx.output) < 40\n"
    )
    (project.path / "suites" / "custom.yaml").write_text(textwrap.dedent("""
        models: [good]
        prompt: hi
        cases:
          - id: a
            mock_response: "short answer"
            assert: [{ python: "mychecks:short" }]
    """))
    result = project.runpytest("suites/custom.yaml")
    result.assert_outcomes(passed=1)


def test_per_model_mock_responses(project):
    (project.path / "suites" / "per_model.yaml").write_text(textwrap.dedent("""
        models: [good, flaky]
        prompt: hi
        cases:
          - id: a
            mock_response: "default answer"
            mock_responses: { flaky: "special answer" }
            assert: [{ contains: answer }]
    """))
    result = project.runpytest("suites/per_model.yaml")
    result.assert_outcomes(passed=2)
    contents = {r["model"]: r["response"]["choices"][0]["message"]["content"]
                for r in records(project) if r["kind"] == "result"}
    assert contents == {"good": "default answer", "flaky": "special answer"}


def test_report_dir_option_and_repeat_override(project):
    result = project.runpytest("suites", "-k", "good", "--harness-report-dir", "out/runs", "--harness-repeat", "3")
    result.assert_outcomes(passed=2)
    lines = (project.path / "out" / "runs" / "results.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines if '"kind": "result"' in line]
    assert sorted((r["case_id"], r["repeat"]) for r in recs) == [
        ("moon", 0), ("moon", 1), ("moon", 2), ("sun", 0), ("sun", 1), ("sun", 2)
    ]
    assert not (project.path / "reports").exists()
    result.stdout.fnmatch_lines(["results: *out/runs/results.jsonl"])


def test_the_config_files_tables_set_what_no_option_gives(project):
    project.makepyprojecttoml(CONFIG + textwrap.dedent("""
        [tool.harness.report]
        dir = "out/cfg"

        [tool.harness.suites]
        glob = ["evals/**/*.yaml"]

        [tool.harness.cache]
        path = "store/answers.sqlite"

        [tool.harness.limits]
        path = "store/limits.sqlite"
    """))
    (project.path / "evals").mkdir()
    (project.path / "suites" / "demo.yaml").rename(project.path / "evals" / "demo.yaml")
    (project.path / "suites" / "other.yaml").write_text(SUITE)  # not under the glob now
    project.makepyfile(test_paths="""
        from pathlib import Path

        def test_the_store_and_the_limits_are_where_the_file_says(harness, request):
            root = request.config.rootpath
            assert harness.cache.path == root / "store" / "answers.sqlite"
            assert harness.cache_mode.value == "use"
            assert harness.budget is not None  # --harness-max-cost: its file is [limits] path
            assert (root / "store" / "limits.sqlite").is_file()
    """)
    result = project.runpytest("-k", "good or paths", "--harness-max-cost", "5")
    result.assert_outcomes(passed=3)
    assert (project.path / "out" / "cfg" / "results.jsonl").is_file()
    assert not (project.path / "reports").exists()
    # the command line (and ini) still win over the file
    result = project.runpytest("-k", "good", "--harness-report-dir", "out/cli")
    result.assert_outcomes(passed=2)
    assert (project.path / "out" / "cli" / "results.jsonl").is_file()


def test_a_mistake_in_the_config_files_tables_stops_the_session(project):
    project.makepyprojecttoml(CONFIG + '\n[tool.harness.suites]\nglobs = "evals/*.yaml"\n')
    result = project.runpytest("suites")
    result.stderr.fnmatch_lines(["*[[]suites[]]: unknown key(s) globs; expected glob*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_async_tests_await_the_fixtures(project):
    project.makepyfile(test_async="""
        import pytest

        Q = [{"role": "user", "content": "hello"}]

        @pytest.mark.asyncio
        async def test_batch(batch):
            [r] = await batch.acall([Q], model="good", mock_response="async ok")
            assert r.content == "async ok"

        @pytest.mark.asyncio
        async def test_race_and_all(race, all_responses):
            winner = await race.acall(Q, models=["good", "parrot"])
            assert winner.content == "hello"
            results = await all_responses.acall(Q, models=["parrot", "good"])
            assert [r.content for r in results] == ["hello", "hello"]

        @pytest.mark.asyncio
        async def test_sync_call_inside_the_loop(batch):
            [r] = batch([Q], model="parrot")
            assert r.content == "hello"
    """)
    result = project.runpytest("test_async.py")
    result.assert_outcomes(passed=3)
    recs = [r for r in records(project) if r["kind"] == "result"]
    assert {r["shape"] for r in recs} == {"batch", "race", "all"}


def test_every_session_writes_json_html_and_markdown_reports(project):
    result = project.runpytest("suites")
    reports = project.path / "reports"
    for name in ("results.json", "report.html", "report.md", "results.jsonl"):
        assert (reports / name).is_file(), name
    result.stdout.fnmatch_lines(["report: *results.json", "report: *report.html", "report: *report.md"])
    doc = json.loads((reports / "results.json").read_text())
    assert doc["schema"] == "harness.results" and len(doc["records"]) == 4 and len(doc["items"]) == 4
    assert {m["name"] for m in doc["run"]["models"]} == {"good", "parrot"}
    assert "sk-" not in (reports / "results.json").read_text()


def test_step_summary_gets_the_markdown(project, monkeypatch):
    summary = project.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    project.runpytest("suites")
    assert "| good" in summary.read_text() and "| parrot" in summary.read_text()


def test_baseline_regressions_fail_the_session_when_asked(project):
    flips = textwrap.dedent("""
        models: [good]
        prompt: hi
        cases:
          - id: steady
            repeat: 8
            threshold: 0.5
            mock_response: "ok"
            assert: [{ contains: ok }]
    """)
    (project.path / "suites" / "demo.yaml").unlink()
    (project.path / "suites" / "flip.yaml").write_text(flips)
    assert project.runpytest("suites").ret == 0
    baseline = project.path / "baseline.json"
    baseline.write_bytes((project.path / "reports" / "results.json").read_bytes())
    (project.path / "suites" / "flip.yaml").write_text(flips.replace('mock_response: "ok"', 'mock_response: "no"'))
    result = project.runpytest("suites", "--harness-baseline", "baseline.json", "--harness-fail-on-regression")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*harness: significant regression vs baseline:*steady*"])
    md = (project.path / "reports" / "report.md").read_text()
    assert "regression" in md.lower()


def test_bad_baseline_is_a_usage_error(project):
    (project.path / "old.json").write_text("{}")
    result = project.runpytest("suites", "--harness-baseline", "old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-baseline: *old.json: not a harness results file*"])
    result = project.runpytest("suites", "--harness-fail-on-regression")
    result.stderr.fnmatch_lines(["*--harness-fail-on-regression needs --harness-baseline PATH*"])


def test_cache_records_then_replays_with_the_server_stopped(local_server, pytester):
    from tests.helpers.local_server import Reply, chat_body

    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "net.yaml").write_text(textwrap.dedent("""
        models: [net]
        prompt: "Question {{ n }}"
        defaults: { repeat: 2 }
        cases:
          - { id: a, vars: { n: 1 }, assert: [{ contains: answer }] }
          - { id: b, vars: { n: 2 }, assert: [{ contains: answer }] }
    """))
    server = local_server(lambda r: Reply(body=chat_body("answer")))
    pytester.makepyprojecttoml(
        CONFIG + f'\n[tool.harness.models.net]\nmodel = "openai/net"\napi_base = "{server.url}/v1"\napi_key_env = "NONE"\n'
    )
    first = pytester.runpytest("suites")
    first.assert_outcomes(passed=2)
    assert len(server.requests) == 4  # 2 cases x 2 repeats: repeats are separate answers
    second = pytester.runpytest("suites")
    second.assert_outcomes(passed=2)
    assert len(server.requests) == 4  # all served from the store
    replay = pytester.runpytest("suites", "--harness-cache", "replay", "--harness-offline")
    replay.assert_outcomes(passed=2)
    recs = [r for r in records(pytester) if r["kind"] == "result"]
    assert all(r["cache_hit"] for r in recs) and all(r["latency_ms"] > 0 for r in recs)
    (pytester.path / "suites" / "net.yaml").write_text(
        (pytester.path / "suites" / "net.yaml").read_text().replace("Question", "Query")
    )
    miss = pytester.runpytest("suites", "--harness-cache", "replay")
    miss.assert_outcomes(failed=2)
    miss.stdout.fnmatch_lines(["*ReplayMissError*Query 1*"])


def test_bad_cache_mode_is_a_usage_error(project):
    result = project.runpytest("suites", "--harness-cache", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-cache:*sometimes*"])


def test_model_concurrency_limit_holds_across_xdist_workers(local_server, pytester):
    import threading

    from tests.helpers.local_server import Reply, chat_body

    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    full = threading.Event()  # the first requests are held until two are in flight at once

    def handler(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            if state["now"] == 2:
                full.set()
        return Reply(body=chat_body("answer"), release=full)

    cases = "\n".join(f"  - {{ id: c{i}, vars: {{ n: {i} }}, assert: [{{ contains: answer }}] }}" for i in range(16))
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "net.yaml").write_text(f'models: [net]\nprompt: "Q {{{{ n }}}}"\ncases:\n{cases}\n')
    server = local_server(handler)

    def over(request, reply):  # a request is over once its reply is written
        with lock:
            state["now"] -= 1

    server.on_reply = over
    pytester.makepyprojecttoml(
        CONFIG + f'\n[tool.harness.models.net]\nmodel = "openai/net"\napi_base = "{server.url}/v1"\n'
        'api_key_env = "NONE"\nmax_concurrency = 2\n'
    )
    result = pytester.runpytest_subprocess("suites", "-n", "2", "--harness-cache", "off")
    result.assert_outcomes(passed=16)
    assert len(server.requests) == 16
    assert state["peak"] == 2


def test_suites_stream_by_default_and_record_time_to_first_token(project):
    result = project.runpytest("suites", "-k", "good")
    result.assert_outcomes(passed=2)
    recs = [r for r in records(project) if r["kind"] == "result"]
    assert recs and all(r["ttft_ms"] is not None for r in recs)
    result = project.runpytest("suites", "-k", "good", "--harness-no-stream")
    result.assert_outcomes(passed=2)
    assert all(r["ttft_ms"] is None for r in records(project) if r["kind"] == "result")
    project.makeini("[pytest]\nharness_stream = false\n")
    project.runpytest("suites", "-k", "good", "--harness-stream").assert_outcomes(passed=2)
    assert all(r["ttft_ms"] is not None for r in records(project) if r["kind"] == "result")


def test_max_cost_stops_sending_and_skips_the_rest(local_server, pytester):
    from tests.helpers.local_server import Reply, chat_body

    cases = "\n".join(f"  - {{ id: c{i}, vars: {{ n: {i} }}, assert: [{{ contains: hi }}] }}" for i in range(6))
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "paid.yaml").write_text(f'models: [paid]\nprompt: "Q {{{{ n }}}}"\ncases:\n{cases}\n')
    server = local_server(lambda r: Reply(body=chat_body("hi")))
    pytester.makepyprojecttoml(
        CONFIG + f'\n[tool.harness.models.paid]\nmodel = "openai/paid"\napi_base = "{server.url}/v1"\n'
        'api_key_env = "NONE"\nmax_concurrency = 1\nprice = { input_per_mtok = 1000000, output_per_mtok = 0 }\n'
    )
    # A call is estimated at 8 prompt tokens ("Q n": 1 token, 4 per message, 3 for the reply):
    # $8 reserved; chat_body reports 3: $3 spent. Under $20 five calls fit (15 + 8 > 20).
    result = pytester.runpytest("suites", "--harness-max-cost", "20", "--harness-cache", "off", "-rs")
    result.assert_outcomes(passed=5, skipped=1)
    assert len(server.requests) == 5
    result.stdout.fnmatch_lines(
        [
            "harness: cost cap $20.00 reached: 1 item(s) skipped, their requests not sent",
            "SKIPPED *harness: cost cap $20.00 would be exceeded: $15.00 spent, and this call may cost"
            " up to $8.00; the request was not sent",
        ]
    )


def test_bad_max_cost_is_a_usage_error(project):
    result = project.runpytest("suites", "--harness-max-cost", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-max-cost: expected dollars*'lots'*"])
