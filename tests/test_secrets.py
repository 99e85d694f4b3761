"""No API key in any output: terminal, junit, reports, the response store, logs.

A local server echoes the Authorization header (and the other credential headers) into
its 401 error bodies, as some gateways do. A suite and a Python test run with fake keys
under ``--showlocals -vv --tb=long --junitxml`` and a log file; then every byte written
anywhere under the project, and everything pytest printed, is searched for the keys.
"""

from __future__ import annotations

import json
import textwrap

import pytest

import harness.suites  # noqa: F401  (PyYAML's C extension must be imported only once)
from tests.helpers.local_server import Reply, Request, chat_body


def _fake_key(prefix: str) -> str:
    # Built at run time so secret scanners do not flag the source.
    return prefix + "-" + "".join(chr(ord("a") + (i * 7) % 26) for i in range(40))


OPENAI_KEY = _fake_key("sk" + "-proj")
ANTHROPIC_KEY = _fake_key("sk" + "-ant-api03")
CUSTOM_TOKEN = _fake_key("tok")
KEYS = (OPENAI_KEY, ANTHROPIC_KEY, CUSTOM_TOKEN)


def _echo(request: Request) -> Reply:
    """401 with every credential header echoed back, for every model but 'ok'."""
    body = request.json() if request.body else {}
    if body.get("model") in ("ok", "ok-claude"):
        if request.path.endswith("/messages"):
            return Reply(body={
                "id": "msg_1", "type": "message", "role": "assistant", "model": "ok-claude",
                "content": [{"type": "text", "text": "fine"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            })
        return Reply(body=chat_body("fine"))
    echoed = {k: v for k, v in request.headers.items() if k in ("authorization", "x-api-key", "x-custom-auth")}
    return Reply(
        status=401,
        body={"error": {"message": f"invalid credentials {json.dumps(echoed)}", "type": "auth"}},
    )


def test_no_key_reaches_any_output(local_server, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("TEST_CUSTOM_TOKEN", CUSTOM_TOKEN)
    server = local_server(_echo)
    pytester.makepyprojecttoml(textwrap.dedent(f"""
        [tool.pytest.ini_options]
        asyncio_default_fixture_loop_scope = "function"
        addopts = "-p no:hypothesispytest -p no:randomly"

        [tool.harness.models.gpt]
        model = "openai/echo"
        api_base = "{server.url}/v1"

        [tool.harness.models.gpt-ok]
        model = "openai/ok"
        api_base = "{server.url}/v1"

        [tool.harness.models.claude]
        model = "anthropic/echo"
        api_base = "{server.url}"

        [tool.harness.models.claude-ok]
        model = "anthropic/ok-claude"
        api_base = "{server.url}"
    """))
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "keys.yaml").write_text(textwrap.dedent("""
        models: [gpt, claude, gpt-ok, claude-ok]
        prompt: "hello"
        defaults: { params: { num_retries: 0 } }
        cases:
          - id: hello
            assert: [{ contains: fine }]
    """))
    pytester.makepyfile(test_api=f"""
        import os

        import harness
        from harness import Harness

        def test_python_api_failure():
            h = Harness(retries=0)
            response = h.completion(
                "openai/echo", [{{"role": "user", "content": "hi"}}],
                api_base="{server.url}/v1",
                extra_headers={{"X-Custom-Auth": os.environ["TEST_CUSTOM_TOKEN"]}},
            )
            assert response.content == "never"

        def test_fixture_failure(batch):
            [answer] = batch([[{{"role": "user", "content": "hi"}}]], model="claude")
            assert not isinstance(answer, Exception), answer

        def test_stream_failure():
            stream = harness.completion(
                "openai/echo", [{{"role": "user", "content": "hi"}}], stream=True,
                api_base="{server.url}/v1", num_retries=0,
            )
            list(stream)
    """)
    result = pytester.runpytest(
        "suites", "test_api.py", "--showlocals", "-vv", "--tb=long",
        "--junitxml=junit.xml", "--log-file=run.log", "--log-file-level=DEBUG",
        "-o", "log_level=DEBUG", "-rA",
    )
    result.assert_outcomes(passed=2, failed=5)
    assert "AuthenticationError" in result.stdout.str()  # the failures were the echoing ones
    printed = result.stdout.str() + result.stderr.str()
    for key in KEYS:
        assert key not in printed, f"a key was printed: {key[:8]}…"
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.name == "junit.xml" for p in written)
    assert any(p.name == "results.json" for p in written)
    assert any(p.suffix == ".sqlite" for p in written)
    for path in written:
        data = path.read_bytes()
        for key in KEYS:
            # Keys may not appear in any file written by the run (the test file itself and
            # the pyproject are the user's own, and hold no key).
            assert key.encode() not in data, f"{path.relative_to(pytester.path)} holds a key"


# --- keys never show in repr, and never travel in clear to another host -------------------


def test_a_prepared_call_never_shows_its_key(monkeypatch):
    from harness import Harness

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    call = Harness().prepare(
        "openai/gpt-4o-mini",
        [{"role": "user", "content": "hi"}],
        {"extra_headers": {"X-Custom-Auth": CUSTOM_TOKEN, "X-Trace": "visible"}},
    )
    shown = repr(call)
    assert OPENAI_KEY not in shown and CUSTOM_TOKEN not in shown
    assert "api_key='***'" in shown and "'X-Trace': 'visible'" in shown
    assert call.api_key == OPENAI_KEY  # still the key where it is used


def test_a_credential_header_in_the_config_never_shows(tmp_path):
    from harness.config import load_config
    from harness.errors import scrub

    path = tmp_path / "harness.toml"
    path.write_text(
        '[models.gw]\nmodel = "openai/gpt-4o-mini"\n'
        f'headers = {{ "X-Gateway-Key" = "{CUSTOM_TOKEN}", "X-Team" = "evals" }}\n'
    )
    spec = load_config(path).models["gw"]
    shown = repr(spec)
    assert CUSTOM_TOKEN not in shown and "'X-Team': 'evals'" in shown
    assert spec.headers["X-Gateway-Key"] == CUSTOM_TOKEN  # still sent as configured
    assert CUSTOM_TOKEN not in scrub(f"the gateway said: bad key {CUSTOM_TOKEN}")


def test_harness_log_lines_are_scrubbed(caplog):
    from harness.errors import get_logger, register_secret

    register_secret(OPENAI_KEY)
    with caplog.at_level("WARNING", logger="harness.test"):
        get_logger("harness.test").warning("server said %s", f"Bearer {OPENAI_KEY}")
    assert OPENAI_KEY not in caplog.text and "Bearer ***" in caplog.text


def _sent_key(monkeypatch, *, env_base: str | None, **params) -> str | None:
    import httpx
    import respx

    from harness import Harness

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    if env_base:
        monkeypatch.setenv("OPENAI_BASE_URL", env_base)
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=chat_body())

    with respx.mock(assert_all_called=False) as router:
        router.route().mock(side_effect=answer)
        Harness(transport="httpx", retries=0).completion(
            "openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], **params
        )
    return seen[0]


def test_an_env_key_is_not_sent_in_clear_to_a_remote_env_base(monkeypatch, recwarn):
    from harness.runner import InsecureKeyWarning

    assert _sent_key(monkeypatch, env_base="http://10.1.2.3/v1") is None
    [warning] = [w for w in recwarn if w.category is InsecureKeyWarning]
    assert "10.1.2.3" in str(warning.message) and "openai/gpt-4o-mini" in str(warning.message)
    assert _sent_key(monkeypatch, env_base="http://10.1.2.3/v1") is None
    assert len([w for w in recwarn if w.category is InsecureKeyWarning]) == 1  # warned once


@pytest.mark.parametrize(
    ("env_base", "params"),
    [
        ("https://gateway.example/v1", {}),  # encrypted
        ("http://127.0.0.1:8080/v1", {}),  # this machine
        ("http://localhost:8080/v1", {}),
        (None, {"api_base": "http://10.1.2.3/v1"}),  # the user chose the host for this call
        ("http://10.1.2.3/v1", {"api_key": OPENAI_KEY}),  # and this key
    ],
)
def test_the_key_is_sent_where_the_user_chose_it(monkeypatch, recwarn, env_base, params):
    assert _sent_key(monkeypatch, env_base=env_base, **params) == f"Bearer {OPENAI_KEY}"
