"""A case's verdict over its repeats: the one rule both plugin paths use."""

from __future__ import annotations

import pytest

from harness.sequential import SequentialPlan
from harness.verdict import case_verdict


@pytest.mark.parametrize(
    ("passes", "repeats", "threshold", "passed"),
    [(3, 3, 1.0, True), (2, 3, 1.0, False), (2, 3, 0.66, True), (2, 3, 0.67, False), (0, 0, 0.0, True)],
)
def test_fixed_repeats_pass_when_the_rate_reaches_the_threshold(passes, repeats, threshold, passed):
    verdict = case_verdict(passes, repeats, threshold)
    assert verdict.passed is passed
    summary = verdict.summary()
    assert summary["repeats"] == repeats and summary["passes"] == passes
    assert "max_repeats" not in summary
    lo, hi = summary["ci95"]
    assert 0.0 <= lo <= verdict.pass_rate <= hi <= 1.0


def test_an_adaptive_case_takes_the_plans_decision_and_says_why_it_stopped():
    plan = SequentialPlan(10, 0.8)
    verdict = case_verdict(0, 3, 0.8, plan)  # three failures: 8 of 10 is out of reach
    assert verdict.passed is False
    summary = verdict.summary()
    assert summary["max_repeats"] == 10 and summary["confidence"] == plan.confidence
    assert summary["stopped"] == plan.decide(0, 3).reason
    assert verdict.headline() == (
        "0/3 repeats passed (0%; needs 80%); stopped after 3 of up to 10 repeats: decided"
    )
    assert case_verdict(2, 2, 1.0).headline() == "2/2 repeats passed (100%; needs 100%)"
