"""The cost cap holds: calls reserve their estimated cost before they are sent.

The estimate (``harness.prices.estimate_prompt_tokens`` and ``max_tokens``), the budget's
holds (``CostBudget.reserve``/``settle``/``release``, shared by processes), the runner
reserving inside the model's slot and waiting while calls in flight hold the rest, and the
readable message of an unsent call (``usd_brief``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import BadRequestError, BudgetExceededError, Harness
from harness.limits import CostBudget
from harness.prices import DEFAULT_MAX_OUTPUT_TOKENS, Price, estimate_prompt_tokens
from harness.report.formatting import usd_brief
from tests.helpers.local_server import Reply, Request, chat_body

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-" + "x" * 24
USER = [{"role": "user", "content": "Q 1"}]  # 1 token + 4 for the message + 3 for the reply
DOLLAR_A_TOKEN = {"input_per_mtok": 1_000_000.0, "output_per_mtok": 1_000_000.0}


# --- the estimate ------------------------------------------------------------------------------


def test_the_prompt_estimate_counts_characters_messages_parts_and_tools():
    assert estimate_prompt_tokens(USER) == 8
    two = [{"role": "system", "content": "x" * 9}, {"role": "user", "content": "y" * 8}]
    assert estimate_prompt_tokens(two) == 3 + (4 + 3) + (4 + 2)  # 9 chars: 3 tokens, 8: 2
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]}]
    assert estimate_prompt_tokens(parts) == 3 + 4 + 1 + 85
    assert estimate_prompt_tokens(USER, tools=[{"name": "f"}]) == 8 + 4  # '[{"name": "f"}]'
    assert estimate_prompt_tokens((), ["abcde", "f"]) == 2 + 1  # embeddings: characters only


@given(st.lists(st.text(max_size=200), min_size=1, max_size=5), st.text(max_size=50))
def test_the_prompt_estimate_covers_a_quarter_of_the_characters_and_grows(texts, more):
    messages = [{"role": "user", "content": t} for t in texts]
    chars = sum(len(t) for t in texts)
    estimate = estimate_prompt_tokens(messages)
    assert estimate >= chars / 4 + 4 * len(texts) + 3
    longer = [*messages[:-1], {"role": "user", "content": texts[-1] + more}]
    assert estimate_prompt_tokens(longer) >= estimate


def test_a_calls_estimate_is_its_prompt_and_max_tokens_at_the_models_price():
    paid = {"model": "openai/paid", "api_key_env": "NONE", "price": DOLLAR_A_TOKEN}
    h = Harness({"models": {"paid": paid}})
    assert h.estimate_cost("paid", USER, max_tokens=2) == pytest.approx(8 + 2)
    assert h.estimate_cost("paid", USER) == pytest.approx(8 + DEFAULT_MAX_OUTPUT_TOKENS)
    assert h.estimate_cost("paid", USER, max_completion_tokens=5) == pytest.approx(8 + 5)
    assert Harness().estimate_cost("openai/x", USER, api_key=KEY) == 0.0


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.00001, 6, "$0.00001"),
        (0.006834, 2, "$0.0068"),
        (0.0068, 2, "$0.0068"),
        (0.25, 2, "$0.25"),
        (0.5, 2, "$0.50"),
        (0.999, 2, "$1.00"),
        (12.5, 2, "$12.50"),
        (2000.0, 6, "$2,000.00"),
        (0.0, 2, "$0"),
        (-0.0068, 2, "-$0.0068"),
    ],
)
def test_usd_brief_shows_tiny_amounts_with_significant_digits(value, digits, text):
    assert usd_brief(value, digits) == text


# --- the budget's holds ------------------------------------------------------------------------


def test_a_hold_counts_until_it_is_settled_to_the_actual_cost(tmp_path):
    budget = CostBudget(10.0, tmp_path / "limits.sqlite")
    other = CostBudget(10.0, tmp_path / "limits.sqlite")  # another process's view
    first = budget.reserve(6.0)
    assert first is not None and other.totals() == (0.0, 6.0)
    assert other.reserve(5.0) is None  # 6 held + 5 > 10
    second = other.reserve(4.0)
    assert second is not None and budget.totals() == (0.0, 10.0)
    assert budget.settle(first, 1.5) == 1.5  # the hold goes, the actual cost stays
    assert budget.totals() == (1.5, 4.0)
    other.release(second)
    assert budget.totals() == (1.5, 0.0)
    assert budget.reserve(8.5) is not None and budget.reserve(0.0) is not None
    budget.reset()
    assert budget.totals() == (0.0, 0.0)
    budget.add(10.0)
    assert budget.reserve(0.0) is None  # at the cap even a free call is refused
    budget.close()
    other.close()


def test_the_holds_of_a_dead_process_stop_counting(tmp_path):
    path = tmp_path / "limits.sqlite"
    code = (
        "import os, sys; from harness.limits import CostBudget; "
        "assert CostBudget(10.0, sys.argv[1]).reserve(7.0) is not None; os._exit(0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env, timeout=60)
    budget = CostBudget(10.0, path)
    assert budget.totals() == (0.0, 0.0)  # the holder exited without releasing
    assert budget.reserve(7.0) is not None
    budget.close()


# --- the runner --------------------------------------------------------------------------------


def paid_harness(url: str, budget: CostBudget, **model: object) -> Harness:
    spec = {"model": "openai/paid", "api_base": f"{url}/v1", "price": DOLLAR_A_TOKEN, **model}
    return Harness({"models": {"paid": spec}}, budget=budget, retries=0, timeout=30)


def test_concurrent_calls_stay_under_the_cap_and_wait_for_what_is_held(local_server, tmp_path):
    # Each call is estimated at $10 (8 prompt tokens, max_tokens 2) and costs $4 (chat_body's
    # 3 + 1 tokens). Under $30 three fit at once; the fourth waits for one to settle.
    three_in_flight = threading.Event()
    arrived: list[int] = []

    def handler(request: Request) -> Reply:
        arrived.append(1)
        if len(arrived) >= 3:
            three_in_flight.set()
        return Reply(body=chat_body("hi"), release=three_in_flight)

    server = local_server(handler)
    budget = CostBudget(30.0, tmp_path / "limits.sqlite")
    h = paid_harness(server.url, budget)
    results = h.batch_completion("paid", [USER] * 40, max_tokens=2, api_key=KEY, max_workers=40)
    answered = [r for r in results if not isinstance(r, Exception)]
    unsent = [r for r in results if isinstance(r, BudgetExceededError)]
    # Sent while spent + $10 fits: after 0, 4, …, 20 dollars; 24 + 10 > 30 stops the rest.
    assert len(server.requests) == len(answered) == 6
    assert len(unsent) == 34
    assert budget.totals() == (pytest.approx(24.0), 0.0)  # nothing left held
    assert sum(r.harness.cost_usd for r in answered) <= 30.0
    assert str(unsent[0]) == (
        "[openai/paid] cost cap $30.00 would be exceeded: $24.00 spent, and this call may cost"
        " up to $10.00; the request was not sent"
    )


def test_a_low_estimate_overshoots_by_the_calls_in_flight_at_most(local_server, tmp_path):
    # The server bills 40 prompt tokens where 8 were estimated: $42 a call, $10 held.
    body = chat_body("hi")
    body["usage"] = {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}
    two_in_flight = threading.Event()
    arrived: list[int] = []

    def handler(request: Request) -> Reply:
        arrived.append(1)
        if len(arrived) >= 2:
            two_in_flight.set()
        return Reply(body=body, release=two_in_flight)

    server = local_server(handler)
    budget = CostBudget(20.0, tmp_path / "limits.sqlite")
    h = paid_harness(server.url, budget)
    results = h.batch_completion("paid", [USER] * 20, max_tokens=2, api_key=KEY, max_workers=20)
    # Two reservations fit under $20; both calls cost $42; nothing more is sent.
    assert len(server.requests) == 2
    assert budget.spent() == pytest.approx(84.0)  # cap + the underestimate of those in flight
    assert sum(isinstance(r, BudgetExceededError) for r in results) == 18
    assert "cost cap $20.00 reached: $84.00 spent; the request was not sent" in str(results[-1])


def test_a_model_that_costs_more_than_estimated_gets_larger_estimates(local_server, tmp_path):
    # Estimated $10, billed $42 (40 prompt tokens, 2 completion): after the first answer the
    # model's estimates are scaled by 4.2, so the third call (84 + 42 > 100) is not sent; with
    # the bare estimate it would have been (84 + 10 <= 100) and spent $126.
    body = chat_body("hi")
    body["usage"] = {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}
    server = local_server(lambda r: Reply(body=body))
    budget = CostBudget(100.0, tmp_path / "limits.sqlite")
    h = paid_harness(server.url, budget, max_concurrency=1)
    assert h.estimate_cost("paid", USER, max_tokens=2, api_key=KEY) == pytest.approx(10.0)
    results = h.batch_completion("paid", [USER] * 3, max_tokens=2, api_key=KEY)
    assert len(server.requests) == 2 and isinstance(results[2], BudgetExceededError)
    assert budget.spent() == pytest.approx(84.0)
    assert h.estimate_cost("paid", USER, max_tokens=2, api_key=KEY) == pytest.approx(42.0)
    assert "this call may cost up to $42.00" in str(results[2])


def test_a_call_too_big_for_the_whole_cap_is_not_sent(local_server, tmp_path):
    server = local_server(lambda r: Reply(body=chat_body("hi")))
    budget = CostBudget(0.00001, tmp_path / "limits.sqlite")
    h = paid_harness(server.url, budget)
    with pytest.raises(BudgetExceededError) as caught:
        h.completion("paid", USER, api_key=KEY)
    assert server.requests == []
    assert caught.value.message == (
        "cost cap $0.00001 would be exceeded: $0 spent, and this call may cost up to $1,032.00;"
        " the request was not sent"
    )


def test_a_failed_call_gives_its_hold_back(local_server, tmp_path):
    server = local_server(lambda r: Reply(status=400, body={"error": {"message": "bad"}}))
    budget = CostBudget(15.0, tmp_path / "limits.sqlite")
    h = paid_harness(server.url, budget)
    for _ in range(3):  # each reserves $10 of $15: only possible if the last one gave it back
        with pytest.raises(BadRequestError):
            h.completion("paid", USER, max_tokens=2, api_key=KEY)
    assert len(server.requests) == 3
    assert budget.totals() == (0.0, 0.0)


@pytest.mark.asyncio
async def test_a_stream_settles_its_hold_to_the_actual_cost(tmp_path):
    sse = (
        'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
        '[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],'
        '"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    budget = CostBudget(100.0, tmp_path / "limits.sqlite")
    config = {"models": {"paid": {"model": "openai/paid", "price": DOLLAR_A_TOKEN}}}
    h = Harness(config, transport=httpx.MockTransport(handler), budget=budget)
    stream = await h.acompletion("paid", USER, stream=True, max_tokens=2, api_key=KEY)
    async with stream:
        await stream.__anext__()
        assert budget.totals() == (0.0, pytest.approx(10.0))  # held while it streams
        async for _ in stream:
            pass
    assert budget.totals() == (pytest.approx(4.0), 0.0)
    assert Price(**DOLLAR_A_TOKEN).cost(3, 1) == pytest.approx(4.0)


def test_offline_models_are_not_budgeted(tmp_path):
    budget = CostBudget(0.0, tmp_path / "limits.sqlite")
    h = Harness(budget=budget)
    assert h.completion("mock/m", USER, mock_response="ok").content == "ok"
    assert budget.totals() == (0.0, 0.0)


# --- under pytest: the prefetcher starts every call at once -----------------------------------


def paid_project(pytester: pytest.Pytester, url: str, cases: int) -> None:
    rows = "\n".join(
        f"  - {{ id: c{i}, vars: {{ n: {i} }}, assert: [{{ contains: hi }}] }}"
        for i in range(cases)
    )
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "paid.yaml").write_text(
        f'models: [paid]\nprompt: "Q {{{{ n }}}}"\ncases:\n{rows}\n'
    )
    pytester.makepyprojecttoml(
        f'[tool.harness.models.paid]\nmodel = "openai/paid"\napi_base = "{url}/v1"\n'
        'api_key_env = "NONE"\nprice = { input_per_mtok = 1000000, output_per_mtok = 0 }\n'
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_prefetched_calls_without_a_concurrency_limit_stay_under_the_cap(
    local_server, pytester, workers
):
    # No max_concurrency: the prefetcher starts all 12 calls at once. Each is estimated at
    # $8 (8 prompt tokens) and costs $3; under $20 exactly five are sent (15 + 8 > 20),
    # in one process or shared by two xdist workers.
    server = local_server(lambda r: Reply(body=chat_body("hi")))
    paid_project(pytester, server.url, 12)
    result = pytester.runpytest_subprocess(
        "suites", "--harness-max-cost", "20", "--harness-cache", "off", "-rs", *workers
    )
    result.assert_outcomes(passed=5, skipped=7)
    assert len(server.requests) == 5
    result.stdout.fnmatch_lines(["*cost cap $20.00 would be exceeded: $15.00 spent*"])
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    costs = [json.loads(line).get("cost_usd") for line in lines if '"kind": "result"' in line]
    assert costs == [pytest.approx(3.0)] * 5


def test_the_issues_cap_sends_nothing_it_cannot_afford(local_server, pytester):
    server = local_server(lambda r: Reply(body=chat_body("hi")))
    paid_project(pytester, server.url, 4)
    result = pytester.runpytest_subprocess(
        "suites", "--harness-max-cost", "0.00001", "--harness-cache", "off", "-rs"
    )
    result.assert_outcomes(skipped=4)
    assert server.requests == []
    result.stdout.fnmatch_lines(
        [
            "harness: cost cap $0.00001 reached: 4 item(s) skipped, their requests not sent",
            "SKIPPED [[]4[]] *harness: cost cap $0.00001 would be exceeded: $0 spent, and this call"
            " may cost up to $8.00; the request was not sent",
        ]
    )
