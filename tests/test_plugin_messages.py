"""The plugin's first-hour messages, through pytester: skipped tests, typos, keys, offline."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

# pytester's in-process runs drop modules first imported inside them; PyYAML's C extension
# cannot be imported twice, so load it out here once.
import harness.suites  # noqa: F401
from harness.config import HarnessConfig
from pytest_plugin._preflight import suggest_model, unknown_model

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]

[tool.harness.models.fast]
model = "mock/fast"

[tool.harness.models.a]
model = "echo/a"
"""

PY_TESTS = """
def test_one(model):
    assert model

def test_two(model):
    assert model

def test_plain():
    assert True
"""


def records(pytester: pytest.Pytester) -> list[dict]:
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# --- Python tests skipped for want of a model --------------------------------------------------

NO_MODEL = "harness: 2 Python test(s) skipped: no model selected — pass --harness-models*"


def test_skipped_python_tests_are_counted_once_in_the_summary(pytester):
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(test_mod=PY_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([NO_MODEL])
    assert result.stdout.str().count("Python test(s) skipped") == 1
    with_models = pytester.runpytest("--harness-models", "fast")
    with_models.assert_outcomes(passed=3)
    assert "no model selected" not in with_models.stdout.str()


def test_skipped_python_tests_are_counted_once_under_xdist(pytester):
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(test_mod=PY_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([NO_MODEL])
    assert result.stdout.str().count("Python test(s) skipped") == 1


# --- unknown models: the marker and the selection ------------------------------------------------


def test_a_typo_in_the_models_marker_is_a_collection_error_with_a_suggestion(pytester):
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.models("fsat")
        def test_typo(model):
            assert model
        """,
        test_other="""
        def test_fine():
            pass
        """,
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_mod.py::test_typo: @pytest.mark.models(...): unknown model 'fsat': "
            "not an alias of the config nor 'provider/model'; did you mean 'fast'?"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_the_models_marker_accepts_aliases_and_provider_strings(pytester):
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.models("fast", "echo/x", replace=True)
        def test_ok(model):
            assert model
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_every_unknown_selected_model_is_one_usage_error(pytester):
    pytester.makepyprojecttoml(CONFIG)
    pytester.makeconftest("""
        def pytest_collection(session):
            raise AssertionError("collected")
    """)
    result = pytester.runpytest("--harness-models", "a,fsat,openai/gpt-4o,opnai/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--harness-models: 2 unknown models:",
            "*'fsat': not an alias of the config nor 'provider/model'; did you mean 'fast'?",
            "*'opnai/x': unknown provider 'opnai'; did you mean 'openai/x'?",
        ]
    )
    assert "collected" not in result.stdout.str() + result.stderr.str()


def test_an_unknown_model_in_the_ini_names_the_ini_key(pytester):
    pytester.makepyprojecttoml(
        CONFIG.replace(
            "[tool.pytest.ini_options]\n",
            '[tool.pytest.ini_options]\nharness_models = "fast, zzzzzz"\n',
        )
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*harness_models: unknown model 'zzzzzz': *(aliases: *"])


def test_a_typo_in_a_suites_models_gets_a_suggestion(pytester):
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "s.yaml").write_text(
        "models: [fsat]\nprompt: hi\ncases:\n  - { id: a, assert: [{ contains: hi }] }\n"
    )
    result = pytester.runpytest("suites")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*suites/s.yaml: model 'fsat' is not of the form*did you mean 'fast'?"]
    )


def test_suggestions_over_aliases_and_providers():
    config = HarnessConfig.from_dict({"models": {"fast": {"model": "mock/f"}}})
    assert unknown_model(config, "fast") is None
    assert unknown_model(config, "anthropic/claude-x") is None
    assert suggest_model(config, "fsat") == "fast"
    assert suggest_model(config, "antropic/claude-x") == "anthropic/claude-x"
    assert suggest_model(config, "qwertyuiop") is None


@given(st.text(min_size=1, max_size=30))
def test_unknown_model_is_none_exactly_when_the_name_resolves(name):
    from harness.errors import ConfigError

    config = HarnessConfig.from_dict({"models": {"fast": {"model": "mock/f"}}})
    try:
        config.resolve(name)
    except ConfigError:
        resolves = False
    else:
        resolves = True
    problem = unknown_model(config, name)
    assert (problem is None) == resolves
    if problem is not None:
        assert problem.startswith(repr(name))


# --- missing API keys ----------------------------------------------------------------------------


def _key_project(pytester, server_url: str) -> None:
    pytester.makepyprojecttoml(
        CONFIG
        + f'\n[tool.harness.models.smart]\nmodel = "anthropic/claude-x"\napi_base = "{server_url}"\n'
    )
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "s.yaml").write_text(
        textwrap.dedent("""
        models: [smart, fast]
        prompt: "Question {{ n }}"
        cases:
          - { id: a, vars: { n: 1 }, mock_response: "answer", assert: [{ contains: answer }] }
          - { id: b, vars: { n: 2 }, mock_response: "answer", assert: [{ contains: answer }] }
    """)
    )
    pytester.makepyfile(
        test_py="""
        import pytest

        @pytest.mark.models("smart", replace=True)
        def test_uses_it(model):
            raise AssertionError("must not run")
        """
    )


KEY_LINE = (
    "harness: no API key for model 'smart' (anthropic/claude-x): set ANTHROPIC_API_KEY; "
    "its items are skipped, nothing is sent"
)


def test_a_missing_key_is_said_once_and_its_items_are_skipped_unsent(local_server, pytester):
    from tests.helpers.local_server import Reply

    server = local_server(lambda r: Reply(status=500))
    _key_project(pytester, server.url)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=2, skipped=3)
    assert result.stdout.str().count("no API key for model 'smart'") == 1
    result.stdout.fnmatch_lines(
        ["collected 5 items", KEY_LINE, "*no API key: set ANTHROPIC_API_KEY*"]
    )
    result.stdout.fnmatch_lines(["*3 item(s) skipped: no API key, nothing sent*"])
    assert server.requests == []
    assert result.ret == pytest.ExitCode.OK  # no gate: skipped is fine locally


def test_a_missing_key_is_said_once_under_xdist(local_server, pytester):
    from tests.helpers.local_server import Reply

    server = local_server(lambda r: Reply(status=500))
    _key_project(pytester, server.url)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=2, skipped=3)
    assert result.stdout.str().count("no API key for model 'smart'") == 1
    result.stdout.fnmatch_lines([KEY_LINE])
    assert server.requests == []


def test_items_skipped_for_a_missing_key_fail_a_gate(local_server, pytester):
    from tests.helpers.local_server import Reply

    server = local_server(lambda r: Reply(status=500))
    _key_project(pytester, server.url)
    result = pytester.runpytest(
        "--harness-gate", "rate", "--harness-min-pass-rate", "0.5", "suites"
    )
    result.assert_outcomes(passed=2, skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*harness: 2 item(s) not run for want of an API key (smart); the gates cannot pass "
            "on items that never ran*"
        ]
    )
    assert server.requests == []


def test_a_set_key_or_replay_skips_nothing(local_server, pytester, monkeypatch):
    from tests.helpers.local_server import Reply

    server = local_server(lambda r: Reply(status=500))
    _key_project(pytester, server.url)
    replay = pytester.runpytest("suites", "--harness-cache", "replay")
    replay.assert_outcomes(passed=2, failed=2)  # nothing stored: misses, but not skipped
    assert "no API key" not in replay.stdout.str()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    result = pytester.runpytest("suites")
    assert "no API key" not in result.stdout.str()
    result.assert_outcomes(passed=2, failed=2)  # the server answers 500
    assert server.requests


# --- offline with a store ------------------------------------------------------------------------


def test_offline_replays_stored_answers_and_refuses_only_misses(local_server, pytester):
    from tests.helpers.local_server import Reply, chat_body

    server = local_server(lambda r: Reply(body=chat_body("answer")))
    pytester.makepyprojecttoml(
        CONFIG + f'\n[tool.harness.models.net]\nmodel = "openai/net"\n'
        f'api_base = "{server.url}/v1"\napi_key_env = "NONE"\n'
    )
    (pytester.path / "suites").mkdir()
    suite = pytester.path / "suites" / "net.yaml"
    suite.write_text(
        textwrap.dedent("""
        models: [net]
        prompt: "Question {{ n }}"
        cases:
          - { id: a, vars: { n: 1 }, assert: [{ contains: answer }] }
          - { id: b, vars: { n: 2 }, assert: [{ contains: answer }] }
    """)
    )
    pytester.runpytest("suites").assert_outcomes(passed=2)
    assert len(server.requests) == 2
    assert (pytester.path / ".harness" / "cache.sqlite").is_file()

    offline = pytester.runpytest("suites", "--harness-offline")
    offline.assert_outcomes(passed=2)
    assert len(server.requests) == 2  # nothing reached the server
    recs = [r for r in records(pytester) if r["kind"] == "result"]
    assert len(recs) == 2 and all(r["cache_hit"] for r in recs)

    suite.write_text(suite.read_text().replace("n: 2", "n: 3"))
    miss = pytester.runpytest("suites", "--harness-offline")
    miss.assert_outcomes(passed=1, failed=1)
    assert len(server.requests) == 2
    miss.stdout.fnmatch_lines(
        [
            "*offline mode: model 'net' (openai/net): this call's answer is not in the response "
            "store (*cache.sqlite); run once online with --harness-cache use (or record) to store "
            "it, or use --harness-cache replay, which serves only stored answers and fails the "
            "whole item on any miss*"
        ]
    )

    off = pytester.runpytest("suites", "--harness-offline", "--harness-cache", "off")
    off.assert_outcomes(failed=2)
    off.stdout.fnmatch_lines(["*offline mode: model 'net' (openai/net) would call the network*"])
    assert len(server.requests) == 2


def test_offline_replays_answers_of_a_model_whose_key_is_gone(local_server, pytester, monkeypatch):
    from tests.helpers.local_server import Reply

    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "answer"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    server = local_server(lambda r: Reply(body=message))
    pytester.makepyprojecttoml(
        CONFIG + f'\n[tool.harness.models.smart]\nmodel = "anthropic/claude-x"\n'
        f'api_base = "{server.url}"\n'
    )
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "s.yaml").write_text(
        'models: [smart]\nprompt: "Question"\ncases:\n  - { id: a, assert: [{ contains: answer }] }\n'
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    pytester.runpytest("suites", "--harness-no-stream").assert_outcomes(passed=1)
    assert len(server.requests) == 1
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    offline = pytester.runpytest("suites", "--harness-no-stream", "--harness-offline")
    offline.assert_outcomes(passed=1)  # no key needed: nothing is sent
    assert len(server.requests) == 1


def test_a_test_that_parametrises_model_itself_is_left_alone(pytester):
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.parametrize("model", ["openai/gpt-4o"])
        def test_own(model):
            assert model == "openai/gpt-4o"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "no API key" not in result.stdout.str()
