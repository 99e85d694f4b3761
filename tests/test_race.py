"""Races whose contestants finish close together: the race never raises anything but the
winner's answer or ``AllModelsFailed``.

A contestant's finish time used to be stamped by a task done-callback, which can run one
loop iteration after the race has already seen the task done; a race between contestants
finishing in adjacent iterations then raised a bare ``KeyError``. The first test forces that
ordering deterministically; the second runs many close races against a local server, which answers a race's three
requests at once.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from harness import AllModelsFailed, Choice, Harness, HarnessError, Message, ModelResponse
from tests.helpers.local_server import Reply, Request, chat_body

USER = [{"role": "user", "content": "who is first?"}]


def _answer(name: str) -> ModelResponse:
    return ModelResponse(id=f"r-{name}", model=name, choices=[Choice(0, Message(name))])


@pytest.mark.asyncio
async def test_contestants_finishing_in_adjacent_loop_iterations_pick_the_first():
    """A finishes; in the next iteration B finishes before A's done-callbacks woke the race."""
    loop = asyncio.get_running_loop()
    gates = {"mock/a": loop.create_future(), "mock/b": loop.create_future()}
    waiting: list[str] = []

    def release_a_then_b() -> None:
        gates["mock/a"].set_result(None)  # A's task resumes in the next iteration ...
        loop.call_soon(gates["mock/b"].set_result, None)  # ... and B's right after it

    async def gated_run(plan: Any) -> ModelResponse:
        name = plan.call.spec.name
        waiting.append(name)
        if len(waiting) == len(gates):
            loop.call_soon(release_a_then_b)
        await gates[name]
        return _answer(name)

    h = Harness(retries=0)
    h._run = gated_run  # type: ignore[method-assign]  # the seam under every contestant
    response = await h.abatch_completion_models(["mock/a", "mock/b"], USER)

    assert response.content == "mock/a"
    race = response.harness.race
    assert race is not None and race.winner == "mock/a"
    outcomes = {c.model: c.outcome for c in race.contestants}
    assert outcomes == {"mock/a": "winner", "mock/b": "finished"}
    a, b = race.contestants
    assert a.latency_ms <= b.latency_ms


@pytest.mark.asyncio
async def test_a_contestant_that_raises_a_foreign_exception_is_a_typed_failure():
    async def run(plan: Any) -> ModelResponse:
        if plan.call.spec.name == "mock/bug":
            raise KeyError("adapter bug")
        await asyncio.sleep(0)
        return _answer(plan.call.spec.name)

    h = Harness(retries=0)
    h._run = run  # type: ignore[method-assign]
    response = await h.abatch_completion_models(["mock/bug", "mock/ok"], USER)
    assert response.content == "mock/ok"
    failed = response.harness.race.contestants[0]
    assert failed.outcome == "failed"
    assert failed.error == "HarnessError: [mock/bug] unexpected KeyError: 'adapter bug'"

    with pytest.raises(AllModelsFailed) as info:
        await h.abatch_completion_models(["mock/bug", "mock/bug"], USER)
    assert all(isinstance(e, HarnessError) for e in info.value.errors.values())


CLOSE_RACES = 1000
IN_FLIGHT = 50


@pytest.mark.asyncio
async def test_many_close_races_against_a_local_server_never_raise(local_server):
    """1,000 races of three models, 50 at a time; the server holds a race's three requests
    until all three have arrived and then answers them at once, so finishes are close."""
    lock = threading.Lock()
    arrived: dict[str, int] = {}
    gates: dict[str, threading.Event] = {}

    def handler(request: Request) -> Reply:
        model = request.json()["model"]
        race_id = request.json()["messages"][0]["content"]
        with lock:
            gate = gates.setdefault(race_id, threading.Event())
            arrived[race_id] = arrived.get(race_id, 0) + 1
            if arrived[race_id] == 3:
                gate.set()
        return Reply(body=chat_body(model, model), release=gate)

    h = Harness(retries=0)
    failures: list[BaseException] = []
    winners: dict[str, int] = {}
    server = local_server(handler)
    params = {"api_base": server.url, "api_key": "k" * 10}

    async def race(k: int) -> None:
        messages = [{"role": "user", "content": f"race {k}"}]
        try:
            r = await h.abatch_completion_models(
                ["openai/a", "openai/b", "openai/c"], messages, **params
            )
        except BaseException as exc:  # anything at all is a failure of this test
            failures.append(exc)
            return
        info = r.harness.race
        assert info is not None and r.content == info.winner.removeprefix("openai/")
        assert [c.outcome for c in info.contestants].count("winner") == 1
        assert {c.outcome for c in info.contestants} <= {"winner", "cancelled", "finished"}
        winners[info.winner] = winners.get(info.winner, 0) + 1

    for start in range(0, CLOSE_RACES, IN_FLIGHT):
        await asyncio.gather(*(race(k) for k in range(start, start + IN_FLIGHT)))
    await h.aclose()

    assert failures == []
    assert sum(winners.values()) == CLOSE_RACES
    assert len(arrived) == CLOSE_RACES and set(arrived.values()) == {3}
