"""harness.sequential: curtailment, confident early stops, batches, and the agreement guarantee."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sequential import Decision, SequentialPlan, required_passes

THRESHOLDS = (1.0, 0.8, 0.67)
MAX_REPEATS = (3, 5, 10, 20)


def test_required_passes_follow_the_runners_float_rule():
    # passes/N ≥ t, as pytest_plugin compares: 2/3 = 0.667 < 0.67, so t=0.67 of 3 needs 3
    table = {n: [required_passes(n, t) for t in THRESHOLDS] for n in MAX_REPEATS}
    assert table == {3: [3, 3, 3], 5: [5, 4, 4], 10: [10, 8, 7], 20: [20, 16, 14]}
    assert required_passes(4, 0.0) == 0
    assert required_passes(4, 0.5) == 2


def test_the_fixed_rule_at_max_repeats():
    plan = SequentialPlan(5, 0.8)
    assert plan.decide(4, 5) == Decision("pass", "max")
    assert plan.decide(3, 5) == Decision("fail", "max")
    assert plan.fixed_verdict(4) == "pass" and plan.fixed_verdict(3) == "fail"


def test_curtailment():
    plan = SequentialPlan(10, 0.8)  # needs 8 of 10
    assert plan.decide(8, 8) == Decision("pass", "curtailed")
    assert plan.decide(0, 3) == Decision("fail", "curtailed")  # 0 + 7 < 8
    # 2 of 4: the last six must all pass; likely not, but not unlikely enough to stop
    assert plan.decide(2, 4) == Decision(None, "undecided")
    assert plan.flip_probability(2, 4) == pytest.approx(0.0698, abs=1e-4)
    strict = SequentialPlan(20, 1.0)
    assert strict.decide(0, 1) == Decision("fail", "curtailed")  # one failure settles t=1
    assert strict.next_batch(0, 0) == 1


def test_before_any_repeat_nothing_is_decided_unless_curtailed():
    for n in MAX_REPEATS:
        for t in THRESHOLDS:
            plan = SequentialPlan(n, t)
            assert plan.decide(0, 0) == Decision(None, "undecided")
            assert 1 <= plan.next_batch(0, 0) <= n
    zero = SequentialPlan(5, 0.0)  # anything passes
    assert zero.decide(0, 0) == Decision("pass", "curtailed")
    assert zero.next_batch(0, 0) == 0


def test_a_confident_stop_has_a_small_predictive_flip_probability():
    plan = SequentialPlan(20, 0.8)
    assert 0 < plan.level <= 0.05
    found = 0
    for n in range(1, 20):
        for k in range(n + 1):
            decision = plan.decide(k, n)
            if decision.reason == "confident":
                found += 1
                assert plan.flip_probability(k, n) < plan.level <= 1 - plan.confidence
    assert found
    # twelve of twelve: the remaining eight need only four passes; six of eight: undecided
    assert plan.decide(12, 12) == Decision("pass", "confident")
    assert plan.decide(6, 8) == Decision(None, "undecided")


def test_confidence_one_only_curtails():
    plan = SequentialPlan(10, 0.8, confidence=1.0)
    assert plan.level == 0
    assert all(
        plan.decide(k, n).reason != "confident" for n in range(11) for k in range(n + 1)
    )


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        SequentialPlan(0, 0.5)
    with pytest.raises(ValueError):
        SequentialPlan(5, 1.5)
    with pytest.raises(ValueError):
        SequentialPlan(5, 0.5, confidence=0.3)
    with pytest.raises(TypeError):
        SequentialPlan(5.0, 0.5)  # type: ignore[arg-type]
    plan = SequentialPlan(5, 0.5)
    with pytest.raises(ValueError):
        plan.decide(3, 2)
    with pytest.raises(ValueError):
        plan.next_batch(0, 6)
    with pytest.raises(ValueError):
        plan.agreement(1.5)


# --------------------------------------------------------------------------- properties

plans = st.builds(
    SequentialPlan,
    st.sampled_from([1, 2, 3, 5, 8, 10, 20]),
    st.sampled_from([0.0, 0.3, 0.5, 0.67, 0.8, 0.9, 1.0]),
    st.sampled_from([0.9, 0.95, 0.99]),
)


@st.composite
def plan_and_state(draw):
    plan = draw(plans)
    repeats = draw(st.integers(0, plan.max_repeats))
    passes = draw(st.integers(0, repeats))
    return plan, passes, repeats


@settings(max_examples=300, deadline=None)
@given(plan_and_state())
def test_more_passes_never_turn_pass_into_fail(state):
    plan, passes, repeats = state
    verdict = plan.decide(passes, repeats).verdict
    if passes < repeats and verdict == "pass":
        assert plan.decide(passes + 1, repeats).verdict == "pass"
    if passes > 0 and verdict == "fail":
        assert plan.decide(passes - 1, repeats).verdict == "fail"


@settings(max_examples=300, deadline=None)
@given(plan_and_state())
def test_a_curtailed_verdict_is_the_verdict_of_every_completion(state):
    plan, passes, repeats = state
    decision = plan.decide(passes, repeats)
    if decision.reason in ("curtailed", "max"):
        remaining = plan.max_repeats - repeats
        for more in range(remaining + 1):
            assert plan.fixed_verdict(passes + more) == decision.verdict


@settings(max_examples=300, deadline=None)
@given(plan_and_state())
def test_next_batch_is_the_smallest_that_can_decide(state):
    plan, passes, repeats = state
    batch = plan.next_batch(passes, repeats)
    if plan.decide(passes, repeats).verdict is not None:
        assert batch == 0
        return
    assert 1 <= batch <= plan.max_repeats - repeats

    def can_decide(size):
        return any(
            plan.decide(passes + j, repeats + size).verdict is not None for j in range(size + 1)
        )

    assert can_decide(batch)
    assert not any(can_decide(smaller) for smaller in range(1, batch))


# --------------------------------------------------------------------------- the guarantee


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("max_repeats", MAX_REPEATS)
def test_agreement_with_the_fixed_verdict_is_at_least_the_confidence(threshold, max_repeats):
    plan = SequentialPlan(max_repeats, threshold, 0.95)
    grid = [i / 200 for i in range(201)]
    worst = min(plan.agreement(p) for p in grid)
    assert worst >= 0.95 - 1e-9
    # and it saves repeats somewhere: a case that always fails stops at once
    assert plan.expected_repeats(0.0) < max_repeats or max_repeats == 1
    assert all(plan.expected_repeats(p) <= max_repeats + 1e-9 for p in (0.1, 0.5, 0.9))


def simulate(plan, p, runs, rng):
    """Run the plan as a prefetching runner would: batches from next_batch until decided."""
    agree = used = 0
    for _ in range(runs):
        outcomes = [rng.random() < p for _ in range(plan.max_repeats)]
        passes = repeats = 0
        while (batch := plan.next_batch(passes, repeats)) > 0:
            passes += sum(outcomes[repeats : repeats + batch])
            repeats += batch
        decision = plan.decide(passes, repeats)
        agree += decision.verdict == plan.fixed_verdict(sum(outcomes))
        used += repeats
    return agree / runs, used / runs


@pytest.mark.parametrize(("max_repeats", "threshold"), [(10, 0.8), (20, 0.8), (20, 0.67)])
def test_simulation_matches_the_exact_figures(max_repeats, threshold):
    rng = random.Random(max_repeats * 7 + int(threshold * 100))
    plan = SequentialPlan(max_repeats, threshold)
    for p in (0.5, threshold, 0.95):
        agree, used = simulate(plan, p, 1500, rng)
        assert agree == pytest.approx(plan.agreement(p), abs=0.02)
        assert used == pytest.approx(plan.expected_repeats(p), rel=0.05)
        assert agree >= 0.95 - 0.02


def test_the_uncalibrated_predictive_rule_would_break_the_guarantee():
    """Why the level is calibrated: 1 − c as the level agrees only ~84% at t=0.8, N=20."""
    from harness.sequential import _run

    plan = SequentialPlan(20, 0.8)
    naive = _run(20, plan.required, 0.05, [0.8])[0][0]
    assert naive < 0.9
    assert plan.level < 0.05 and plan.agreement(0.8) >= 0.95


# --------------------------------------------------------------------------- where plans stop


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("max_repeats", MAX_REPEATS)
def test_outcome_counts_are_the_plans_endings(threshold, max_repeats):
    plan = SequentialPlan(max_repeats, threshold)
    counts = plan.outcome_counts()
    # every ending is a decided state, and the endings' probabilities sum to 1 for any p
    assert all(plan.decide(k, n).verdict is not None for k, n in counts)
    for p in (0.0, 0.13, 0.5, 0.8, 0.97, 1.0):
        total = sum(w * p**k * (1 - p) ** (n - k) for (k, n), w in counts.items())
        assert total == pytest.approx(1.0)
    # and they match what a runner sees
    rng = random.Random(max_repeats)
    for _ in range(200):
        passes = repeats = 0
        while (batch := plan.next_batch(passes, repeats)) > 0:
            passes += sum(rng.random() < 0.75 for _ in range(batch))
            repeats += batch
        assert (passes, repeats) in counts


def test_stopping_at_the_first_failure_has_one_sequence_per_ending():
    assert SequentialPlan(5, 1.0).outcome_counts() == {
        (0, 1): 1,
        (1, 2): 1,
        (2, 3): 1,
        (3, 4): 1,
        (4, 5): 1,
        (5, 5): 1,
    }
