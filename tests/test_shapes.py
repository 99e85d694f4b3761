"""Semantics of the three call shapes: order, errors in place, race winner and cancellation."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

import harness
from harness import (
    AllModelsFailed,
    BadRequestError,
    ConfigError,
    Harness,
    HarnessError,
    ModelResponse,
    RateLimitError,
    ServiceUnavailableError,
)
from harness.limits import CostBudget
from tests.helpers import virtual_time
from tests.helpers.local_server import Reply, Request, chat_body

USER = [{"role": "user", "content": "hello"}]


def convs(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


# --- batch ----------------------------------------------------------------------------


def test_batch_keeps_input_order_when_answers_complete_in_reverse():
    # One batch, every request in flight at once; the server answers the last first and
    # each earlier one only after the later one's result has been handed back, so the
    # answers complete in exactly the reverse of the input order.
    n = 5
    gates: list[asyncio.Event] = []
    arrived = 0
    completed: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        i = int(json.loads(request.content)["messages"][0]["content"].split()[-1])
        arrived += 1
        if arrived == n:
            gates[n - 1].set()
        await gates[i].wait()
        return httpx.Response(200, json=chat_body(f"answer {i}"))

    def on_result(i: int, result: object) -> None:
        completed.append(i)
        if i > 0:
            gates[i - 1].set()

    async def main() -> list:
        gates.extend(asyncio.Event() for _ in range(n))
        h = Harness(transport=httpx.MockTransport(handler), retries=0)
        async with asyncio.timeout(30):  # a guard against a hang, never reached
            return await h.abatch_completion(
                "openai/m", convs(n), max_workers=n, on_result=on_result, api_key="k" * 10
            )

    results = asyncio.run(main())
    assert completed == [4, 3, 2, 1, 0]
    assert [r.content for r in results] == [f"answer {i}" for i in range(n)]


def test_batch_with_fewer_workers_than_conversations_keeps_input_order():
    echo = Harness(retries=0).batch_completion("echo/e", convs(50), max_workers=7)
    assert [r.content for r in echo] == [f"question {i}" for i in range(50)]


def test_batch_puts_errors_in_their_slots_and_raises_nothing(local_server):
    h = Harness(retries=0)
    server_replies = {
        1: Reply(status=429, body={"error": {"message": "slow down"}}),
        3: Reply(status=400, body={"error": {"message": "bad", "type": "invalid_request_error"}}),
    }

    def handler(request: Request) -> Reply:
        idx = int(request.json()["messages"][0]["content"].split()[-1])
        return server_replies.get(idx, Reply(body=chat_body(f"ok {idx}")))

    server = local_server(handler)
    results = h.batch_completion(
        "openai/test",
        convs(5),
        api_base=server.url + "/v1",
        api_key="sk-test-key-123456",
    )
    assert len(results) == 5
    assert isinstance(results[1], RateLimitError) and results[1].status == 429
    assert isinstance(results[3], BadRequestError) and results[3].status == 400
    assert [r.content for i, r in enumerate(results) if i not in (1, 3)] == ["ok 0", "ok 2", "ok 4"]


def test_batch_concurrency_is_bounded_by_max_workers():
    # The first requests are held until four are in flight, and then until every other task
    # has had many turns of the loop (nothing here does I/O, so a fifth request would have
    # arrived by then); after that, none waits.
    in_flight = 0
    peak = 0
    full = asyncio.Event()
    releaser: list[asyncio.Task[None]] = []

    async def release_later() -> None:
        for _ in range(100):
            await asyncio.sleep(0)
        full.set()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 4 and not full.is_set():
            releaser.append(asyncio.create_task(release_later()))
        await full.wait()
        in_flight -= 1
        return httpx.Response(200, json=chat_body())

    async def main() -> list:
        h = Harness(transport=httpx.MockTransport(handler), retries=0)
        async with asyncio.timeout(30):  # a guard against a hang, never reached
            return await h.abatch_completion("openai/t", convs(30), max_workers=4, api_key="k" * 10)

    results = asyncio.run(main())
    assert all(isinstance(r, ModelResponse) for r in results)
    assert peak == 4


def test_batch_respects_the_models_configured_concurrency():
    h = Harness(
        {"models": {"small": {"model": "mock/small", "max_concurrency": 2, "latency_ms": 5}}}
    )
    active = 0
    peak = 0

    async def main() -> list:
        nonlocal active, peak
        from harness.providers import offline

        original = offline.MockProvider.generate

        async def counting(self, call, send):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                return await original(self, call, send)
            finally:
                active -= 1

        offline.MockProvider.generate = counting  # type: ignore[method-assign]
        try:
            return await h.abatch_completion("small", convs(12), max_workers=10)
        finally:
            offline.MockProvider.generate = original  # type: ignore[method-assign]

    results, _ = virtual_time.run(main())
    assert len(results) == 12 and peak == 2


def test_batch_rejects_malformed_input_before_any_call():
    calls = []
    transport = httpx.MockTransport(
        lambda r: calls.append(r) or httpx.Response(200, json=chat_body())
    )
    h = Harness(transport=transport)
    bad = convs(3)
    bad[2] = [{"role": "user"}]
    with pytest.raises(BadRequestError, match=r"messages\[2\]\[0\]: missing 'content'"):
        h.batch_completion("openai/x", bad, api_key="k" * 10)
    with pytest.raises(BadRequestError, match="single conversation"):
        h.batch_completion("openai/x", USER, api_key="k" * 10)
    assert calls == []


def test_failed_retries_report_attempts():
    h = Harness(retry_policy=harness.RetryPolicy(base=0.001, cap=0.001))
    [result] = h.batch_completion("mock/m", [USER], mock_response=[{"error": 503}], num_retries=2)
    assert isinstance(result, ServiceUnavailableError)
    assert result.attempts == 3
    [ok] = h.batch_completion(
        "mock/m", [USER], mock_response=[{"error": 503}, "fine"], num_retries=2
    )
    assert ok.content == "fine" and ok.harness.attempts == 2


# --- race -----------------------------------------------------------------------------


def test_race_winner_is_the_fastest_success_not_the_first_listed():
    cfg = {
        "models": {
            "slow": {"model": "mock/slow", "latency_ms": 400, "responses": ["slow"]},
            "fast": {"model": "mock/fast", "latency_ms": 10, "responses": ["fast"]},
            "mid": {"model": "mock/mid", "latency_ms": 200, "responses": ["mid"]},
        }
    }
    h = Harness(cfg, retries=0)
    r, elapsed = virtual_time.run(h.abatch_completion_models(["slow", "fast", "mid"], USER))
    assert r.content == "fast"
    assert elapsed == pytest.approx(0.010)  # the losers were not waited for
    race = r.harness.race
    assert race is not None and race.winner == "fast"
    outcomes = {c.model: c.outcome for c in race.contestants}
    assert outcomes == {"slow": "cancelled", "fast": "winner", "mid": "cancelled"}
    assert [c.model for c in race.contestants] == ["slow", "fast", "mid"]


def test_race_a_fast_failure_does_not_win():
    cfg = {
        "models": {
            "broken": {"model": "mock/broken", "latency_ms": 1, "error": 500},
            "ok": {"model": "mock/ok", "latency_ms": 30, "responses": ["ok"]},
        }
    }
    r, _ = virtual_time.run(
        Harness(cfg, retries=0).abatch_completion_models(["broken", "ok"], USER)
    )
    assert r.content == "ok"
    outcomes = {c.model: (c.outcome, c.error) for c in r.harness.race.contestants}
    assert outcomes["broken"][0] == "failed" and "InternalServerError" in outcomes["broken"][1]


def test_race_all_failed_carries_each_models_error():
    cfg = {
        "models": {
            "a": {"model": "mock/a", "error": 429},
            "b": {"model": "mock/b", "error": 401},
            "c": {"model": "mock/c", "error": "timeout"},
        }
    }
    with pytest.raises(AllModelsFailed) as info:
        Harness(cfg, retries=0).batch_completion_models(["a", "b", "c"], USER)
    errors = info.value.errors
    assert list(errors) == ["a", "b", "c"]
    assert isinstance(errors["a"], RateLimitError)
    assert isinstance(errors["b"], harness.AuthenticationError)
    assert isinstance(errors["c"], harness.TimeoutError)
    assert "3 models failed" in str(info.value)


def test_race_rejects_a_plain_string_for_models():
    with pytest.raises(TypeError, match=r"models=\['echo/a'\]"):
        harness.batch_completion_models(models="echo/a", messages=USER)
    with pytest.raises(ConfigError, match="non-empty list"):
        harness.batch_completion_models(models=[], messages=USER)


def test_race_losers_are_disconnected_at_the_server(local_server):
    release = threading.Event()

    def handler(request: Request) -> Reply:
        model = request.json()["model"]
        if model == "fast":
            return Reply(body=chat_body("fast wins", model))
        return Reply(body=chat_body("too late", model), release=release)  # held until released

    try:
        server = local_server(handler)
        h = Harness(retries=0)
        r = h.batch_completion_models(
            ["openai/slow1", "openai/fast", "openai/slow2"],
            USER,
            api_base=server.url,
            api_key="k" * 10,
        )
        assert r.content == "fast wins" and r.harness.race.winner == "openai/fast"
        # Both losers' sockets were closed while the server still held their requests.
        assert server.wait_until(lambda: server.disconnects == 2)
        assert {c.outcome for c in r.harness.race.contestants if c.model != "openai/fast"} == {
            "cancelled"
        }
    finally:
        release.set()


@pytest.mark.asyncio
async def test_async_race_cancellation_reaches_the_transport():
    started: list[str] = []
    cancelled: list[str] = []
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        started.append(model)
        if model == "fast":
            return httpx.Response(200, json=chat_body("fast", model))
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.append(model)
            raise
        return httpx.Response(200, json=chat_body("slow", model))

    h = Harness(transport=httpx.MockTransport(handler), retries=0)
    r = await h.abatch_completion_models(["openai/slow", "openai/fast"], USER, api_key="k" * 10)
    assert r.content == "fast"
    assert cancelled == ["slow"]


# --- all responses ----------------------------------------------------------------------


def test_all_responses_align_with_models_and_keep_errors():
    cfg = {
        "models": {
            "slow": {"model": "mock/slow", "latency_ms": 60, "responses": ["slow"]},
            "bad": {"model": "mock/bad", "error": 404},
            "fast": {"model": "mock/fast", "responses": ["fast"]},
        }
    }
    results, _ = virtual_time.run(
        Harness(cfg, retries=0).abatch_completion_models_all_responses(
            models=["slow", "bad", "fast", "echo/e"], messages=USER
        )
    )
    assert len(results) == 4
    assert results[0].content == "slow"
    assert isinstance(results[1], harness.NotFoundError) and results[1].model == "bad"
    assert results[2].content == "fast"
    assert results[3].content == "hello"


def test_all_responses_run_concurrently():
    h = Harness(retries=0)
    results, elapsed = virtual_time.run(
        h.abatch_completion_models_all_responses(
            ["mock/a", "mock/b", "mock/c"], USER, mock_latency_ms=300
        )
    )
    assert [r.content for r in results] == ["hello"] * 3
    assert elapsed == pytest.approx(0.300)  # one after the other would take 0.9 s


def test_unknown_model_in_a_list_fails_before_any_call():
    calls = []
    h = Harness(transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)))
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        h.batch_completion_models_all_responses(["echo/a", "nope/x"], USER)
    assert calls == []


# --- sync from anywhere -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_sync_functions_work_inside_a_running_loop():
    assert asyncio.get_running_loop().is_running()
    r = harness.completion("echo/x", USER)
    assert r.content == "hello"
    assert [x.content for x in harness.batch_completion("echo/x", convs(2))] == [
        "question 0",
        "question 1",
    ]
    assert harness.batch_completion_models(["echo/a", "echo/b"], USER).content == "hello"
    # and the async twins, on this loop
    assert (await harness.acompletion("echo/x", USER)).content == "hello"
    all_ = await harness.abatch_completion_models_all_responses(["echo/a", "mock/b"], USER)
    assert [x.content for x in all_] == ["hello", "hello"]


def test_sync_functions_work_from_many_threads():
    out: dict[int, str | None] = {}

    def work(i: int) -> None:
        out[i] = harness.completion("echo/x", [{"role": "user", "content": f"t{i}"}]).content

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: f"t{i}" for i in range(8)}


def test_connections_are_reused_across_sync_calls(local_server):
    server = local_server(lambda r: Reply(body=chat_body()))
    h = Harness(retries=0)
    for _ in range(5):
        h.completion("openai/x", USER, api_base=server.url, api_key="k" * 10)
    h.batch_completion(
        "openai/x", convs(10), max_workers=2, api_base=server.url, api_key="k" * 10
    )
    assert len(server.requests) == 15
    assert server.connections <= 2


def test_unexpected_adapter_bug_becomes_an_error_in_its_slot(monkeypatch):
    from harness.providers import offline

    async def broken(self, call, send):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(offline.EchoProvider, "generate", broken)
    results = Harness().batch_completion_models_all_responses(["echo/a", "mock/b"], USER)
    assert isinstance(results[0], HarnessError) and "ZeroDivisionError" in str(results[0])
    assert results[1].content == "hello"


def test_explicit_mock_response_answers_offline_for_any_model():
    h = Harness(retries=0)
    assert h.completion("echo/x", USER, mock_response="scripted").content == "scripted"
    # a real model with mock_response needs no key and sends nothing
    assert h.completion("openai/gpt-4o-mini", USER, mock_response="offline").content == "offline"


def test_race_on_first_token_lets_the_first_streamer_win_and_aborts_the_rest():
    cfg = {"models": {
        "early": {"model": "mock/early", "responses": [{"content": "early bird", "ttft_ms": 1}]},
        "late": {"model": "mock/late", "responses": [{"content": "late answer", "ttft_ms": 400}]},
    }}
    h = Harness(cfg, retries=0)
    r, elapsed = virtual_time.run(
        h.abatch_completion_models(["late", "early"], USER, race_on="first_token")
    )
    assert r.content == "early bird" and r.harness.race.winner == "early"
    assert elapsed < 0.4  # the late one was not waited for
    outcomes = {c.model: c for c in r.harness.race.contestants}
    assert outcomes["late"].outcome == "cancelled" and outcomes["early"].ttft_ms is not None
    assert r.harness.ttft_ms is not None
    with pytest.raises(ConfigError, match="race_on must be"):
        h.batch_completion_models(["early"], USER, race_on="fastest")


def test_first_token_race_over_http_records_first_byte_of_losers(local_server):
    release = threading.Event()
    sse = (
        'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fast","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )

    def handler(request: Request) -> Reply:
        model = request.json()["model"]
        if model == "fast":
            return Reply(body=sse, headers={"content-type": "text/event-stream"})
        return Reply(body=sse, headers={"content-type": "text/event-stream"}, release=release)

    try:
        server = local_server(handler)
        r = Harness(retries=0).batch_completion_models(
            ["openai/slow", "openai/fast"], USER, race_on="first_token",
            api_base=server.url, api_key="k" * 10,
        )
        assert r.content == "hi" and r.harness.race.winner == "openai/fast"
        slow = next(c for c in r.harness.race.contestants if c.model == "openai/slow")
        assert slow.outcome == "cancelled" and slow.first_byte is False
        assert server.disconnected.wait(10)
    finally:
        release.set()


def _anthropic_events(*events: dict) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


@pytest.mark.asyncio
async def test_race_records_what_each_contestant_consumed(tmp_path):
    """The loser stopped mid-stream keeps the input tokens Anthropic reported at its start."""
    loser_started = asyncio.Event()
    start = {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                    "content": [], "usage": {"input_tokens": 1200, "output_tokens": 1}},
    }
    winner_events = _anthropic_events(
        {**start, "message": {**start["message"], "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    )

    async def loser_body():
        yield _anthropic_events(start)[0]
        loser_started.set()  # asked for more: the first event has been parsed
        await asyncio.Event().wait()  # then nothing more, ever
        yield b""

    async def winner_body():
        await loser_started.wait()
        for event in winner_events:
            yield event

    def handler(request: httpx.Request) -> httpx.Response:
        body = loser_body() if json.loads(request.content)["model"] == "slow" else winner_body()
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    price = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
    models = {
        name: {"model": f"anthropic/{name}", "api_key_env": "NONE", "price": price}
        for name in ("slow", "fast")
    }
    budget = CostBudget(100.0, tmp_path / "limits.sqlite")
    h = Harness({"models": models}, transport=httpx.MockTransport(handler), budget=budget,
                retries=0)
    answer = await h.abatch_completion_models(
        ["slow", "fast"], USER, race_on="first_token", api_key="k" * 12
    )
    race = answer.harness.race
    assert answer.content == "hi" and race.winner == "fast"
    slow, fast = race.contestants
    assert (slow.outcome, slow.first_byte) == ("cancelled", True)
    assert (slow.prompt_tokens, slow.completion_tokens) == (1200, 1)
    assert slow.cost_usd == pytest.approx(1.2 + 0.002)
    assert (fast.prompt_tokens, fast.completion_tokens) == (10, 3)
    assert fast.cost_usd == pytest.approx(answer.harness.cost_usd)
    assert budget.spent() == pytest.approx(slow.cost_usd + fast.cost_usd)
    assert race.to_dict()["contestants"][0]["prompt_tokens"] == 1200


def test_a_race_loser_cancelled_before_any_usage_reports_none(local_server):
    release = threading.Event()

    def handler(request: Request) -> Reply:
        if request.json()["model"] == "fast":
            return Reply(body=chat_body("won"))
        return Reply(body=chat_body("late"), release=release)

    try:
        server = local_server(handler)
        r = Harness(retries=0).batch_completion_models(
            ["openai/slow", "openai/fast"], USER, api_base=server.url, api_key="k" * 10
        )
        slow = r.harness.race.contestants[0]
        assert slow.outcome == "cancelled"
        assert (slow.prompt_tokens, slow.completion_tokens, slow.cost_usd) == (None, None, None)
        fast = r.harness.race.contestants[1]
        assert (fast.prompt_tokens, fast.completion_tokens) == (3, 1)
    finally:
        release.set()
