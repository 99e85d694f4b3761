"""SharedLimiter and CostBudget: slots, windows, cool-downs and the adaptive rule, across processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.limits import AdaptiveRule, AdaptiveState, CostBudget, Lease, SharedLimiter

SPAWN = multiprocessing.get_context("spawn")
JOIN = 120.0  # seconds: a guard against a hung child, never reached when things work


class ManualClock:
    """A clock that moves only when told."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FastClock:
    """Wall time running ``speed`` times faster from ``origin`` (shared by spawned processes)."""

    def __init__(self, origin: float, speed: float) -> None:
        self.origin = origin
        self.speed = speed

    def __call__(self) -> float:
        return self.origin + (time.time() - self.origin) * self.speed


class TickingClock:
    """A clock shared across processes that moves ``step`` seconds each time it is read."""

    def __init__(self, value: Any, step: float) -> None:
        self.value = value
        self.step = step

    def __call__(self) -> float:
        with self.value.get_lock():
            self.value.value += self.step
            return float(self.value.value)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "limits.sqlite")


@pytest.fixture
def limiter(db: str, clock: ManualClock) -> Iterator[SharedLimiter]:
    lim = SharedLimiter(db, clock=clock)
    yield lim
    lim.close()


def run_processes(target: Any, args_list: list[tuple[Any, ...]]) -> None:
    procs = [SPAWN.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs)


# --- workers run in spawned processes --------------------------------------------------------


def slot_worker(
    path: str, go: Any, lock: Any, full: Any, current: Any, peak: Any, done: Any
) -> None:
    go.wait(JOIN)
    asyncio.run(_slot_tasks(path, lock, full, current, peak, done))


async def _slot_tasks(path: str, lock: Any, full: Any, current: Any, peak: Any, done: Any) -> None:
    limiter = SharedLimiter(path)

    async def one() -> None:
        async with limiter.acquire("m", max_concurrency=3):
            with lock:
                current.value += 1
                peak.value = max(peak.value, current.value)
                if current.value == 3:
                    full.set()
            # The first holders keep their slots until all three slots are taken at once.
            await asyncio.to_thread(full.wait, JOIN)
            with lock:
                current.value -= 1
                done.value += 1

    await asyncio.gather(*(one() for _ in range(25)))
    limiter.close()


def rpm_worker(path: str, clock: FastClock, go: Any, starts: Any, count: Any) -> None:
    go.wait(JOIN)
    asyncio.run(_rpm_tasks(path, clock, starts, count))


async def _rpm_tasks(path: str, clock: FastClock, starts: Any, count: Any) -> None:
    limiter = SharedLimiter(path, clock=clock, hint_max=0.01)

    async def one() -> None:
        async with limiter.acquire("r", rpm=30) as lease:
            with count.get_lock():
                starts[count.value] = lease.started
                count.value += 1

    await asyncio.gather(*(one() for _ in range(25)))
    limiter.close()


def holder_worker(path: str, holding: Any) -> None:
    asyncio.run(_hold(path, holding))


async def _hold(path: str, holding: Any) -> None:
    limiter = SharedLimiter(path)
    async with limiter.acquire("c", max_concurrency=1):
        holding.set()
        await asyncio.Event().wait()  # held until the process is killed


def cooled_worker(path: str, clock: TickingClock, started: Any) -> None:
    asyncio.run(_cooled(path, clock, started))


async def _cooled(path: str, clock: TickingClock, started: Any) -> None:
    limiter = SharedLimiter(path, clock=clock, hint_max=0.005)
    async with limiter.acquire("k") as lease:
        started.value = lease.started
    limiter.close()


def budget_worker(path: str) -> None:
    budget = CostBudget(100.0, path, key="run")
    for _ in range(10):
        budget.add(0.25)
    budget.close()


# --- across processes ------------------------------------------------------------------------


def test_concurrency_limit_holds_across_processes(db: str) -> None:
    go, lock, full = SPAWN.Event(), SPAWN.Lock(), SPAWN.Event()
    current, peak, done = (SPAWN.Value("i", 0, lock=False) for _ in range(3))
    procs = [
        SPAWN.Process(target=slot_worker, args=(db, go, lock, full, current, peak, done))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(JOIN)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert done.value == 100
    assert peak.value == 3  # 100 calls wanted in: all three slots were in use, never more
    assert current.value == 0
    limiter = SharedLimiter(db)
    assert limiter.state("m")["in_flight"] == 0
    limiter.close()


def test_rpm_holds_in_every_60s_window_across_processes(db: str) -> None:
    clock = FastClock(time.time(), speed=1000.0)  # a minute passes in 60 ms
    go, starts, count = SPAWN.Event(), SPAWN.Array("d", 100), SPAWN.Value("i", 0)
    procs = [
        SPAWN.Process(target=rpm_worker, args=(db, clock, go, starts, count)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(JOIN)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert count.value == 100
    times = sorted(starts[:])
    per_window = [bisect_left(times, t + 60.0) - i for i, t in enumerate(times)]
    assert max(per_window) <= 30


@pytest.mark.asyncio
async def test_slot_of_a_killed_process_is_reclaimed(db: str) -> None:
    holding = SPAWN.Event()
    proc = SPAWN.Process(target=holder_worker, args=(db, holding))
    proc.start()
    limiter = SharedLimiter(db)
    try:
        assert holding.wait(JOIN)
        assert limiter.state("c")["in_flight"] == 1
        assert limiter.try_acquire("c", max_concurrency=1) is None  # the owner is alive
    finally:
        proc.kill()
        proc.join(JOIN)
    async with asyncio.timeout(JOIN):
        async with limiter.acquire("c", max_concurrency=1) as lease:
            assert lease.id is not None
            assert limiter.state("c")["in_flight"] == 1
    assert limiter.state("c")["in_flight"] == 0
    limiter.close()


def test_cooldown_is_respected_by_another_process(db: str) -> None:
    clock = TickingClock(SPAWN.Value("d", 1000.0), step=0.5)
    limiter = SharedLimiter(db, clock=clock)
    assert limiter.report_rate_limited("k", retry_after=30.0) == 30.0
    cool_until = 1000.5 + 30.0  # the report read the clock once
    started = SPAWN.Value("d", 0.0)
    run_processes(cooled_worker, [(db, clock, started)])
    assert started.value >= cool_until
    limiter.close()


def test_cost_budget_is_shared_across_processes(db: str) -> None:
    run_processes(budget_worker, [(db,)] * 2)
    budget = CostBudget(5.0, db, key="run")
    assert budget.spent() == 5.0
    assert budget.exhausted()
    budget.close()


# --- slots and leases ------------------------------------------------------------------------


def test_slots_up_to_the_limit_then_none_until_one_is_released(limiter: SharedLimiter) -> None:
    leases = [limiter.try_acquire("m", max_concurrency=3) for _ in range(3)]
    assert all(isinstance(lease, Lease) for lease in leases)
    assert limiter.try_acquire("m", max_concurrency=3) is None
    assert limiter.try_acquire("other", max_concurrency=3) is not None  # limits are per model
    limiter.release(leases[0])  # type: ignore[arg-type]
    assert limiter.try_acquire("m", max_concurrency=3) is not None


def test_an_expired_lease_frees_its_slot(limiter: SharedLimiter, clock: ManualClock) -> None:
    assert limiter.try_acquire("m", max_concurrency=1, lease_seconds=10) is not None
    clock.advance(9.9)
    assert limiter.try_acquire("m", max_concurrency=1) is None
    clock.advance(0.2)
    assert limiter.try_acquire("m", max_concurrency=1) is not None


@pytest.mark.asyncio
async def test_acquire_waits_for_a_slot_and_releases_on_exit(limiter: SharedLimiter) -> None:
    held = limiter.try_acquire("m", max_concurrency=1)
    assert held is not None
    waiter = asyncio.create_task(_enter_and_report(limiter))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    limiter.release(held)
    async with asyncio.timeout(JOIN):
        assert await waiter == 1
    assert limiter.state("m")["in_flight"] == 0


class Peak:
    """Counts calls inside a critical section and remembers the most at once (thread-safe).

    With ``latch``, the first callers hold their slots until ``limit`` of them are inside at
    once, so that the limit is reached whatever the threads' scheduling.
    """

    def __init__(self, *, latch: bool = False) -> None:
        self.lock = threading.Lock()
        self.now = self.most = self.done = 0
        self.full = threading.Event() if latch else None

    async def visit(self, limiter: SharedLimiter, key: str, limit: int) -> None:
        async with limiter.acquire(key, max_concurrency=limit):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
                if self.full is not None and self.now == limit:
                    self.full.set()
            if self.full is not None:
                await asyncio.to_thread(self.full.wait, JOIN)
            for _ in range(3):
                await asyncio.sleep(0)
            with self.lock:
                self.now -= 1
                self.done += 1


@pytest.mark.asyncio
async def test_many_tasks_of_one_process_share_the_slots(limiter: SharedLimiter) -> None:
    peak = Peak()
    async with asyncio.timeout(JOIN):
        await asyncio.gather(*(peak.visit(limiter, "m", 2) for _ in range(40)))
    assert (peak.done, peak.most) == (40, 2)
    assert limiter.state("m")["in_flight"] == 0


def test_event_loops_in_several_threads_share_the_slots(db: str) -> None:
    limiter = SharedLimiter(db)
    peak = Peak(latch=True)

    async def batch() -> None:
        async with asyncio.timeout(JOIN):
            await asyncio.gather(*(peak.visit(limiter, "m", 2) for _ in range(20)))

    threads = [threading.Thread(target=asyncio.run, args=(batch(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak.done == 60
    assert peak.most == 2
    limiter.close()


async def _enter_and_report(limiter: SharedLimiter) -> int:
    async with limiter.acquire("m", max_concurrency=1):
        in_flight: int = limiter.state("m")["in_flight"]
    return in_flight


@pytest.mark.asyncio
async def test_slot_released_on_exception(limiter: SharedLimiter) -> None:
    with pytest.raises(RuntimeError):
        async with limiter.acquire("m", max_concurrency=1):
            assert limiter.state("m")["in_flight"] == 1
            raise RuntimeError("boom")
    assert limiter.state("m")["in_flight"] == 0


@pytest.mark.asyncio
async def test_slot_released_on_cancellation_inside_and_while_waiting(
    limiter: SharedLimiter,
) -> None:
    entered = asyncio.Event()

    async def hold() -> None:
        async with limiter.acquire("m", max_concurrency=1):
            entered.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold())
    await entered.wait()
    waiter = asyncio.create_task(_enter_and_report(limiter))
    for _ in range(5):
        await asyncio.sleep(0)
    waiter.cancel()
    holder.cancel()
    for task in (waiter, holder):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert limiter.state("m")["in_flight"] == 0
    assert limiter.try_acquire("m", max_concurrency=1) is not None


def test_a_busy_database_means_not_yet_not_a_block(limiter: SharedLimiter, db: str) -> None:
    assert limiter.try_acquire("m", max_concurrency=2) is not None
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert limiter.try_acquire("m", max_concurrency=2) is None
    finally:
        other.execute("COMMIT")
        other.close()
    assert limiter.try_acquire("m", max_concurrency=2) is not None


def test_bad_limits_are_refused(limiter: SharedLimiter) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        limiter.acquire("m", max_concurrency=-1)
    with pytest.raises(ValueError, match="tokens"):
        limiter.acquire("m", tokens=-5)


# --- rpm and tpm -----------------------------------------------------------------------------


def test_rpm_admits_again_when_the_oldest_start_leaves_the_window(
    limiter: SharedLimiter, clock: ManualClock
) -> None:
    for _ in range(3):
        lease = limiter.try_acquire("m", rpm=3)
        assert lease is not None
        limiter.release(lease)
        clock.advance(1.0)
    assert limiter.try_acquire("m", rpm=3) is None
    clock.advance(56.9)  # the first start was 59.9 s ago
    assert limiter.try_acquire("m", rpm=3) is None
    assert limiter.state("m")["requests_in_window"] == 3
    clock.advance(0.2)
    assert limiter.try_acquire("m", rpm=3) is not None


def test_tpm_counts_estimates_then_actual_tokens(limiter: SharedLimiter) -> None:
    first = limiter.try_acquire("m", tpm=100, tokens=40)
    assert first is not None
    assert limiter.try_acquire("m", tpm=100, tokens=40) is not None
    assert limiter.try_acquire("m", tpm=100, tokens=40) is None
    limiter.report_success("m", 10, lease=first)  # it used 10, not 40
    assert limiter.state("m")["tokens_in_window"] == 50
    assert limiter.try_acquire("m", tpm=100, tokens=40) is not None


def test_a_request_bigger_than_tpm_goes_when_the_window_is_empty(
    limiter: SharedLimiter, clock: ManualClock
) -> None:
    assert limiter.try_acquire("m", tpm=100, tokens=500) is not None
    assert limiter.try_acquire("m", tpm=100, tokens=1) is None
    clock.advance(60.0)
    assert limiter.try_acquire("m", tpm=100, tokens=1) is not None


def test_tokens_reported_without_a_lease_are_added(limiter: SharedLimiter) -> None:
    assert limiter.try_acquire("m", tpm=100, tokens=0) is not None
    limiter.report_success("m", 100)
    state = limiter.state("m")
    assert (state["requests_in_window"], state["tokens_in_window"]) == (1, 100)
    assert limiter.try_acquire("m", tpm=100, tokens=1) is None


# --- cool-down and adaptive limit through the limiter ----------------------------------------


def test_cooldown_seen_by_another_limiter_after_refresh(db: str, clock: ManualClock) -> None:
    mine = SharedLimiter(db, clock=clock, refresh=0.1)
    theirs = SharedLimiter(db, clock=clock)
    assert mine.try_acquire("m") is not None
    theirs.report_rate_limited("m", retry_after=5.0)
    clock.advance(0.2)
    assert mine.try_acquire("m") is None
    assert mine.state("m")["cooldown_remaining"] == pytest.approx(4.8)
    clock.advance(5.0)
    lease = mine.try_acquire("m")
    assert lease is not None and lease.id is not None  # restricted now: a real slot
    mine.close()
    theirs.close()


@pytest.mark.asyncio
async def test_unlimited_model_makes_no_database_trips(db: str, clock: ManualClock) -> None:
    limiter = SharedLimiter(db, clock=clock, refresh=0.1)
    async with limiter.acquire("free") as lease:
        limiter.report_success("free", 10, lease=lease)
    trips = limiter.round_trips
    for _ in range(200):
        async with limiter.acquire("free") as lease:
            assert lease.id is None
        limiter.report_success("free", 10, lease=lease)
    assert limiter.round_trips == trips
    clock.advance(0.2)
    async with limiter.acquire("free"):
        pass
    assert limiter.round_trips == trips + 1  # one read after the refresh interval
    limiter.close()


def test_rate_limit_halves_the_limit_for_everyone_then_recovers(
    limiter: SharedLimiter, clock: ManualClock, db: str
) -> None:
    first = limiter.try_acquire("m", max_concurrency=8)
    assert first is not None
    limiter.release(first)
    limiter.report_rate_limited("m", retry_after=2.0, lease=first)
    other = SharedLimiter(db, clock=clock)
    assert other.try_acquire("m", max_concurrency=8) is None  # cooling down
    clock.advance(2.0)
    held = [other.try_acquire("m", max_concurrency=8) for _ in range(4)]
    assert all(held)
    assert other.try_acquire("m", max_concurrency=8) is None
    state = other.state("m")
    assert (state["adaptive_limit"], state["effective_limit"], state["in_flight"]) == (4, 4, 4)
    clock.advance(5.0)  # the quiet period
    for _ in range(10):
        limiter.report_success("m")
    assert other.state("m")["effective_limit"] == 5
    assert other.try_acquire("m", max_concurrency=8) is not None
    other.close()


def test_a_burst_of_429s_cuts_the_limit_once(limiter: SharedLimiter) -> None:
    leases = [limiter.try_acquire("m", max_concurrency=8) for _ in range(4)]
    for lease in leases:
        limiter.report_rate_limited("m", 0.0, lease=lease)
    assert limiter.state("m")["adaptive_limit"] == 4


def test_unconfigured_model_is_cut_from_what_is_in_flight(
    limiter: SharedLimiter,
) -> None:
    for _ in range(6):
        assert limiter.try_acquire("m", rpm=1000) is not None
    limiter.report_rate_limited("m", 0.0)
    assert limiter.state("m")["effective_limit"] == 3


def test_default_cooldown_doubles_while_429s_continue(limiter: SharedLimiter) -> None:
    cooldowns = [limiter.report_rate_limited("m") for _ in range(3)]
    assert cooldowns == [1.0, 2.0, 4.0]
    assert limiter.state("m")["rate_limited_in_a_row"] == 3


# --- the adaptive rule (pure) ----------------------------------------------------------------

RULE = AdaptiveRule(recover_after=3, quiet_period=5.0, decrease_gap=1.0)


def test_rule_halves_the_configured_limit_down_to_one() -> None:
    state = AdaptiveState()
    limits = []
    for i in range(5):
        state = RULE.on_rate_limited(state, now=10.0 * i, configured=10, in_flight=0)
        limits.append(state.limit)
    assert limits == [5, 2, 1, 1, 1]
    assert state.ceiling == 10
    assert state.strikes == 5


def test_rule_cuts_once_per_burst() -> None:
    state = RULE.on_rate_limited(AdaptiveState(), now=100.0, configured=16, in_flight=0)
    again = RULE.on_rate_limited(state, now=100.5, configured=16, in_flight=0)
    assert again.limit == 8 and again.strikes == 2
    older = RULE.on_rate_limited(state, now=103.0, configured=16, in_flight=0, started=99.0)
    assert older.limit == 8
    newer = RULE.on_rate_limited(state, now=103.0, configured=16, in_flight=0, started=101.0)
    assert newer.limit == 4
    later = RULE.on_rate_limited(state, now=101.0, configured=16, in_flight=0)
    assert later.limit == 4


def test_rule_without_configured_limit_cuts_from_in_flight() -> None:
    state = RULE.on_rate_limited(AdaptiveState(), now=0.0, configured=None, in_flight=9)
    assert (state.limit, state.ceiling) == (4, 9)
    lone = RULE.on_rate_limited(AdaptiveState(), now=0.0, configured=None, in_flight=0)
    assert (lone.limit, lone.ceiling) == (1, 1)


def test_rule_recovers_one_step_per_n_successes_after_the_quiet_period() -> None:
    state = RULE.on_rate_limited(AdaptiveState(), now=0.0, configured=4, in_flight=0)
    assert state.limit == 2
    for _ in range(10):  # too soon: not counted
        state = RULE.on_success(state, now=4.9, configured=4)
    assert (state.limit, state.successes, state.strikes) == (2, 0, 0)
    seen = []
    for _ in range(6):
        state = RULE.on_success(state, now=5.0, configured=4)
        seen.append(state.limit)
    assert seen == [2, 2, 3, 3, 3, None]  # back at the ceiling: restriction lifted
    assert state.calm


def test_rule_a_429_resets_the_success_count() -> None:
    state = AdaptiveState(limit=4, ceiling=8, successes=2, last_limited=0.0, last_decrease=0.0)
    state = RULE.on_rate_limited(state, now=0.5, configured=8, in_flight=0)
    assert (state.limit, state.successes, state.last_limited) == (4, 0, 0.5)


def test_rule_lifts_at_a_lowered_configured_limit() -> None:
    state = AdaptiveState(limit=3, ceiling=16, successes=2, last_limited=0.0, last_decrease=0.0)
    state = RULE.on_success(state, now=10.0, configured=4)
    assert state.limit is None


def test_rule_cooldown_honours_retry_after_within_the_cap() -> None:
    assert RULE.cooldown(7.5, strikes=1) == 7.5
    assert RULE.cooldown(0.0, strikes=3) == 0.0
    assert RULE.cooldown(-3.0, strikes=1) == 0.0
    assert RULE.cooldown(3600.0, strikes=1) == 60.0
    assert [RULE.cooldown(None, strikes=s) for s in (1, 2, 3, 8)] == [1.0, 2.0, 4.0, 60.0]


def test_rule_forgets_an_old_restriction() -> None:
    state = RULE.on_rate_limited(AdaptiveState(), now=0.0, configured=8, in_flight=0)
    assert RULE.current(state, 600.0) == state
    assert RULE.current(state, 600.1) == AdaptiveState()


events = st.lists(
    st.tuples(
        st.sampled_from(["429", "ok"]),
        st.floats(0.0, 20.0),
        st.integers(0, 40),
        st.booleans(),
    ),
    max_size=60,
)


@given(events, st.one_of(st.none(), st.integers(1, 32)))
def test_rule_limit_stays_between_one_and_the_ceiling(
    history: list[tuple[str, float, int, bool]], configured: int | None
) -> None:
    state, now = AdaptiveState(), 0.0
    for kind, step, in_flight, with_start in history:
        now += step
        if kind == "429":
            started = now - step / 2 if with_start else None
            state = RULE.on_rate_limited(
                state, now=now, configured=configured, in_flight=in_flight, started=started
            )
        else:
            state = RULE.on_success(state, now=now, configured=configured)
        if state.limit is not None:
            assert state.ceiling is not None
            assert 1 <= state.limit < state.ceiling or state.limit == state.ceiling == 1
            if configured is not None:
                assert state.limit <= configured


# --- cost budget -----------------------------------------------------------------------------


def test_cost_budget_adds_up_and_is_shared_by_instances(db: str) -> None:
    budget = CostBudget(1.0, db)
    other = CostBudget(1.0, db)
    assert (budget.spent(), budget.exhausted(), budget.remaining()) == (0.0, False, 1.0)
    assert budget.add(0.25) == 0.25
    assert other.add(0.5) == 0.75
    assert budget.remaining() == 0.25
    assert not budget.exhausted()
    other.add(0.25)
    assert budget.exhausted()
    assert CostBudget(1.0, db, key="another").spent() == 0.0
    budget.reset()
    assert other.spent() == 0.0
    budget.close()
    other.close()
