"""``harness serve``: the OpenAI-compatible server, driven by the openai SDK and raw httpx.

A real uvicorn server (``tests/helpers/serve.py``) serves models that point at the session's
local provider (which records requests and disconnects) and offline ``mock/`` models.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from harness import Harness
from harness.cli import main
from harness.serve import create_app
from tests.conftest import Serve
from tests.helpers.local_server import LocalServer, Reply, Request, chat_body
from tests.helpers.serve import running

SECRET = "sk-serve-secret-0123456789abcdef"
USER = [{"role": "user", "content": "hello"}]
ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, server: LocalServer) -> Path:
    """fast, slow, broken, limited, bad_gateway, unavailable, gateway_timeout → the local
    server (the model name picks the reply); offline → a mock model."""
    names = ["fast", "slow", "broken", "limited", "bad_gateway", "unavailable", "gateway_timeout"]
    tables = "".join(
        f'[models.{name}]\nmodel = "openai/{name}"\napi_base = "{server.url}/v1"\n'
        f'api_key_env = "SERVE_TEST_API_KEY"\nretries = 0\n\n'
        for name in names
    )
    tables += '[models.offline]\nmodel = "mock/offline"\nresponses = ["offline answer"]\n'
    path.write_text(tables)
    return path


class Provider:
    """The local provider's script: replies chosen by the requested model name."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        name = body["model"]
        if name == "slow":
            return Reply(body=chat_body("slow answer", name), release=self.release)
        if name == "broken":
            return Reply(status=400, body={"error": {"message": "broken model refuses"}})
        if name == "limited":
            return Reply(
                status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "7"}
            )
        statuses = {"bad_gateway": 502, "unavailable": 503, "gateway_timeout": 504}
        if name in statuses:
            return Reply(status=statuses[name], body={"error": {"message": "upstream trouble"}})
        if body.get("stream"):
            events = [
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": name,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": part},
                            "finish_reason": None,
                        }
                    ],
                }
                for part in ("fast ", "answer")
            ]
            events.append(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": name,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
            )
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return Reply(body=text, headers={"content-type": "text/event-stream"})
        return Reply(body=chat_body("fast answer", name))


@pytest.fixture
def provider(local_server: Serve, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    monkeypatch.setenv("SERVE_TEST_API_KEY", SECRET)
    script = Provider()
    local_server(script)
    yield script
    script.release.set()


@pytest.fixture
def upstream(local_server: Serve, provider: Provider) -> LocalServer:
    return local_server(provider)


@pytest.fixture
def config_path(tmp_path: Path, upstream: LocalServer) -> Path:
    return write_config(tmp_path / "harness.toml", upstream)


@pytest.fixture
def base(config_path: Path) -> Iterator[str]:
    with running(create_app(config_path)) as url:
        yield url


def sdk(base: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def post(base: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(base + "/v1/chat/completions", json=body, timeout=30, **kwargs)


# --- the three shapes ---------------------------------------------------------------------------


def test_one_model_through_the_sync_sdk(base: str, upstream: LocalServer) -> None:
    answer = sdk(base).chat.completions.create(model="fast", messages=USER)
    assert answer.choices[0].message.content == "fast answer"
    assert answer.object == "chat.completion"
    sent = upstream.requests[0]
    assert sent.json()["model"] == "fast"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"  # our key, to the provider only


def test_unknown_fields_reach_the_provider(base: str, upstream: LocalServer) -> None:
    sdk(base).chat.completions.create(
        model="fast",
        messages=USER,
        temperature=0.25,
        extra_body={"top_k": 3},
    )
    sent = upstream.requests[0].json()
    assert sent["temperature"] == 0.25 and sent["top_k"] == 3


def test_offline_mock_model(base: str) -> None:
    answer = sdk(base).chat.completions.create(model="offline", messages=USER)
    assert answer.choices[0].message.content == "offline answer"


@pytest.mark.asyncio
async def test_streaming_through_the_async_sdk_ends_in_done(base: str) -> None:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
    stream = await client.chat.completions.create(model="fast", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "fast answer"
    await client.close()
    async with httpx.AsyncClient(timeout=30) as raw:
        response = await raw.post(
            base + "/v1/chat/completions", json={"model": "fast", "messages": USER, "stream": True}
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_streaming_sync_sdk_offline(base: str) -> None:
    chunks = sdk(base).chat.completions.create(model="offline", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "offline answer"
    )


def test_all_responses_comma_form_aligned_with_an_error_slot(base: str) -> None:
    response = post(base, {"model": "fast, offline ,broken", "messages": USER})
    assert response.status_code == 200
    fast, offline, broken = response.json()
    assert fast["choices"][0]["message"]["content"] == "fast answer"
    assert offline["choices"][0]["message"]["content"] == "offline answer"
    assert set(broken["error"]) == {"message", "type", "param", "code"}
    assert "broken model refuses" in broken["error"]["message"]
    assert broken["error"]["code"] == "BadRequestError"


def test_all_responses_list_form_through_the_sdk(base: str) -> None:
    raw = sdk(base).chat.completions.with_raw_response.create(
        model="ignored",
        messages=USER,
        extra_body={"model": ["offline", "fast"]},
    )
    first, second = raw.http_response.json()
    assert first["choices"][0]["message"]["content"] == "offline answer"
    assert second["choices"][0]["message"]["content"] == "fast answer"


def test_all_responses_every_model_failed_is_an_error(base: str) -> None:
    response = post(base, {"model": ["broken", "broken"], "messages": USER})
    assert response.status_code == 400
    body = response.json()
    assert "error" in body and len(body["responses"]) == 2


def test_race_returns_the_fastest_and_closes_the_losers_connection(
    base: str, upstream: LocalServer
) -> None:
    raw = sdk(base).chat.completions.with_raw_response.create(
        model="slow,fast",
        messages=USER,
        extra_body={"fastest_response": True},
    )
    assert raw.headers["x-harness-fastest-response"] == "fast"
    assert raw.parse().choices[0].message.content == "fast answer"
    # The loser's request was held open at the provider; the race closed its connection.
    assert upstream.wait_until(lambda: upstream.disconnects >= 1)


def test_race_streamed_is_decided_on_the_first_token(base: str, upstream: LocalServer) -> None:
    response = post(
        base,
        {"model": ["slow", "fast"], "messages": USER, "stream": True, "fastest_response": True},
    )
    assert response.status_code == 200
    assert response.headers["x-harness-fastest-response"] == "fast"
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "fast answer"
    )
    assert upstream.wait_until(lambda: upstream.disconnects >= 1)


def test_race_streamed_skips_a_model_that_fails_before_output(base: str) -> None:
    response = post(
        base,
        {"model": "broken,fast", "messages": USER, "stream": True, "fastest_response": True},
    )
    assert response.status_code == 200
    assert response.headers["x-harness-fastest-response"] == "fast"
    assert response.text.endswith("data: [DONE]\n\n")
    failed = post(
        base,
        {"model": "broken,limited", "messages": USER, "stream": True, "fastest_response": True},
    )
    assert failed.status_code == 502 and "all 2 models failed" in failed.json()["error"]["message"]


def test_race_all_failed(base: str) -> None:
    response = post(base, {"model": "broken,limited", "messages": USER, "fastest_response": True})
    assert response.status_code == 502  # a 400 and a 429: no common status
    assert "all 2 models failed" in response.json()["error"]["message"]


# --- models, health, auth -------------------------------------------------------------------------


def test_models_and_health(base: str) -> None:
    ids = [m.id for m in sdk(base).models.list()]
    assert ids == [
        "fast",
        "slow",
        "broken",
        "limited",
        "bad_gateway",
        "unavailable",
        "gateway_timeout",
        "offline",
    ]
    assert httpx.get(base + "/models").json()["object"] == "list"
    unprefixed = httpx.post(
        base + "/chat/completions", json={"model": "offline", "messages": USER}, timeout=30
    )
    assert unprefixed.json()["choices"][0]["message"]["content"] == "offline answer"
    assert httpx.get(base + "/v1/chat/completions").status_code == 405
    assert httpx.get(base + "/v2/nothing").status_code == 404
    health = httpx.get(base + "/health")
    assert health.status_code == 200
    from harness import __version__

    assert health.json()["version"] == __version__


def test_auth_with_a_bearer_key(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_SERVE_API_KEY", "gateway-key")
    with running(create_app(config_path)) as base:
        with pytest.raises(openai.AuthenticationError):
            sdk(base, "wrong").chat.completions.create(model="offline", messages=USER)
        assert post(base, {"model": "offline", "messages": USER}).status_code == 401
        assert httpx.get(base + "/v1/models").status_code == 401
        answer = sdk(base, "gateway-key").chat.completions.create(model="offline", messages=USER)
        assert answer.choices[0].message.content == "offline answer"
        assert httpx.get(base + "/health").status_code == 200


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": 3, "messages": USER}, "model"),
        ({"model": "fast"}, "messages"),
        ({"model": "fast", "messages": "hi"}, "messages"),
        ({"model": "fast", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "fast", "messages": USER, "api_base": "http://evil.example"}, "api_base"),
        ({"model": "fast", "messages": USER, "api_key": "mine"}, "api_key"),
    ],
)
def test_bad_requests_are_400_naming_the_field(base: str, body: Any, param: str) -> None:
    response = post(base, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_malformed_body_and_messages_are_400(base: str, upstream: LocalServer) -> None:
    for body in (b"{nope", b"[" * 200_000, b"\xff\xfe"):
        response = httpx.post(base + "/v1/chat/completions", content=body, timeout=30)
        assert response.status_code == 400
    response = post(base, {"model": "fast", "messages": [{"role": "nobody"}]})
    assert response.status_code == 400
    assert upstream.requests == []


def test_unknown_model_is_404_listing_the_configured_ones(base: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(base).chat.completions.create(model="nope", messages=USER)
    message = info.value.body["message"]
    assert "nope" in message and "fast" in message and "offline" in message


def test_body_too_large_is_413(config_path: Path) -> None:
    app = create_app(config_path)
    app.max_body_bytes = 1000
    with running(app) as base:
        response = post(
            base, {"model": "fast", "messages": [{"role": "user", "content": "x" * 2000}]}
        )
    assert response.status_code == 413


def test_rate_limit_is_429_with_retry_after(base: str) -> None:
    response = post(base, {"model": "limited", "messages": USER})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("model", "status"), [("bad_gateway", 502), ("unavailable", 503), ("gateway_timeout", 504)]
)
def test_upstream_failures(base: str, model: str, status: int) -> None:
    response = post(base, {"model": model, "messages": USER})
    assert response.status_code == status
    assert "upstream trouble" in response.json()["error"]["message"]


def test_the_cost_cap_is_402_before_sending(config_path: Path, upstream: LocalServer) -> None:
    with running(create_app(config_path, max_cost=0.0)) as base:
        response = post(base, {"model": "fast", "messages": USER})
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "BudgetExceededError"
    assert upstream.requests == []


@pytest.mark.parametrize("where", ["acompletion", "resolve"])
def test_an_unexpected_error_is_a_bare_500(config_path: Path, where: str) -> None:
    harness = Harness(config_path)

    async def async_boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"internal detail {SECRET}")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"internal detail {SECRET}")

    # inside the call's task, or before it (while checking the request)
    setattr(harness, where, async_boom if where == "acompletion" else boom)
    with running(create_app(harness=harness)) as base:
        response = post(base, {"model": "fast", "messages": USER})
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "internal server error"
    assert SECRET not in response.text and "Traceback" not in response.text


def test_provider_key_never_in_responses(base: str, upstream: LocalServer) -> None:
    def leaky(request: Request) -> Reply:
        return Reply(status=400, body={"error": {"message": f"bad key {SECRET}"}})

    upstream.reset(leaky)
    response = post(base, {"model": "fast", "messages": USER})
    assert response.status_code == 400
    assert SECRET not in response.text


# --- cancellation ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_client_disconnect_cancels_the_upstream_call(
    base: str, upstream: LocalServer
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        call = asyncio.create_task(
            client.post(base + "/v1/chat/completions", json={"model": "slow", "messages": USER})
        )
        assert await asyncio.to_thread(upstream.wait_until, lambda: len(upstream.requests) == 1)
        call.cancel()  # the client gives up: its connection to our server closes
        with pytest.raises(asyncio.CancelledError):
            await call
    assert await asyncio.to_thread(upstream.wait_until, lambda: upstream.disconnects == 1)


@pytest.mark.asyncio
async def test_client_disconnect_cancels_a_stream(base: str, upstream: LocalServer) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        call = asyncio.create_task(
            client.post(
                base + "/v1/chat/completions",
                json={"model": "slow", "messages": USER, "stream": True},
            )
        )
        assert await asyncio.to_thread(upstream.wait_until, lambda: len(upstream.requests) == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert await asyncio.to_thread(upstream.wait_until, lambda: upstream.disconnects == 1)


# --- store and records ------------------------------------------------------------------------------------


def test_replay_answers_with_the_provider_down(
    config_path: Path, tmp_path: Path, upstream: LocalServer
) -> None:
    store = tmp_path / "store.sqlite"
    with running(create_app(config_path, cache_mode="record", cache_path=store)) as base:
        recorded = post(base, {"model": "fast", "messages": USER}).json()
    assert len(upstream.requests) == 1

    def down(request: Request) -> Reply:
        return Reply(status=503, body={"error": {"message": "provider down"}})

    upstream.reset(down)
    with running(create_app(config_path, cache_mode="replay", cache_path=store)) as base:
        replayed = post(base, {"model": "fast", "messages": USER})
        missing = post(base, {"model": "fast", "messages": [{"role": "user", "content": "new"}]})
    assert replayed.status_code == 200
    assert replayed.json()["choices"] == recorded["choices"]
    assert missing.status_code == 503 and missing.json()["error"]["code"] == "ReplayMissError"
    assert upstream.requests == []


def test_record_dir_feeds_harness_report(config_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "records"
    with running(create_app(config_path, record_dir=out)) as base:
        post(base, {"model": "fast", "messages": USER})
        post(base, {"model": "offline,broken", "messages": USER})
        post(base, {"model": "slow,fast", "messages": USER, "fastest_response": True})
        post(
            base,
            {"model": "fast", "messages": USER, "stream": True},
            headers={"x-harness-test-id": "checkout.test.ts > greets"},
        )
    text = (out / "results.jsonl").read_text()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    results = [line for line in lines if line["kind"] == "result"]
    assert [(r["shape"], r["model"]) for r in results] == [
        ("completion", "fast"),
        ("all", "offline"),
        ("all", "broken"),
        ("race", "fast"),
        ("completion", "fast"),
    ]
    assert results[-1]["ttft_ms"] is not None and results[0]["latency_ms"] is not None
    assert results[0]["total_tokens"] == 4
    assert results[3]["race"]["winner"] == "fast"
    case = results[0]["test_id"].removesuffix("[fast]")
    assert case.startswith("serve::") and results[2]["test_id"] == case + "[broken]"
    assert results[-1]["test_id"] == "checkout.test.ts > greets[fast]"
    assert results[2]["error"]["type"] == "BadRequestError"
    assert main(["report", str(out / "results.jsonl"), "--format", "md,json"]) == 0
    assert "fast" in (out / "report.md").read_text()


# --- the command ----------------------------------------------------------------------------------------


def _start_cli(config: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("harness serve: listening on http://127.0.0.1:"), line + (
        proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
    )
    return proc, line.strip().rsplit(" ", 1)[1]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()  # reaps it and closes the pipes


def test_cli_serves_and_stops_on_sigterm_cancelling_calls(
    config_path: Path, upstream: LocalServer
) -> None:
    proc, base = _start_cli(config_path)
    try:
        assert base.rsplit(":", 1)[1] != "0"
        assert httpx.get(base + "/health").status_code == 200
        answers: list[httpx.Response] = []
        caller = threading.Thread(
            target=lambda: answers.append(post(base, {"model": "slow", "messages": USER}))
        )
        caller.start()
        assert upstream.wait_until(lambda: len(upstream.requests) == 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        caller.join(timeout=30)
        assert upstream.wait_until(lambda: upstream.disconnects == 1)
        assert answers and answers[0].status_code == 503
    finally:
        _stop(proc)


def test_cli_sigint_and_api_key(config_path: Path) -> None:
    proc, base = _start_cli(config_path, "--api-key", "k1")
    try:
        assert post(base, {"model": "offline", "messages": USER}).status_code == 401
        ok = post(
            base, {"model": "offline", "messages": USER}, headers={"authorization": "Bearer k1"}
        )
        assert ok.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)


def test_cli_without_uvicorn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve"]) == 2
    assert 'pip install "llm-harness[serve]"' in capsys.readouterr().err


def test_create_app_does_not_need_uvicorn() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from harness.serve import create_app\n"
        "from harness.config import HarnessConfig\n"
        "create_app(HarnessConfig.from_dict({}))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
