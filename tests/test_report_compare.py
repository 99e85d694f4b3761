"""The baseline comparison: statuses, the one-sided tests, the correction, the gate, the table."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.report.compare import (
    Comparison,
    compare,
    fisher_exact,
    format_p,
    format_table,
    mcnemar_exact,
)
from harness.sequential import SequentialPlan
from harness.stats import fisher_one_sided

Outcome = bool | str  # True / False / "error"


def make_doc(
    rows: Mapping[tuple[str, str], Sequence[Outcome]],
    *,
    latency_ms: float | None = 100.0,
    cost_usd: float | None = None,
    threshold: float = 1.0,
    with_items: bool = True,
) -> dict[str, Any]:
    """A run document from ``{(case, model): [outcome per repeat]}``.

    Records look like real ones (test id ``case[model]``); each item passes when its pass
    rate reaches ``threshold``.
    """
    records: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for (case, model), outcomes in rows.items():
        test_id = f"{case}[{model}]"
        for repeat, outcome in enumerate(outcomes):
            errored = outcome == "error"
            records.append(
                {
                    "test_id": test_id,
                    "case": case,
                    "model": model,
                    "repeat": repeat,
                    # an errored record may even claim passed: the error still fails it
                    "passed": True if errored else bool(outcome),
                    "error": {"type": "ProviderError", "message": "boom"} if errored else None,
                    "checks": [],
                    "latency_ms": latency_ms,
                    "cost_usd": cost_usd,
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                }
            )
        passes = sum(o is True for o in outcomes)
        rate = passes / len(outcomes)
        items.append(
            {
                "test_id": test_id,
                "model": model,
                "case": case,
                "outcome": "passed" if rate >= threshold else "failed",
                "errored": all(o == "error" for o in outcomes),
                "repeats": len(outcomes),
                "passes": passes,
                "pass_rate": rate,
                "threshold": threshold,
            }
        )
    return {
        "schema": "harness.results",
        "schema_version": 1,
        "run": {"duration_s": 1.0},
        "items": items if with_items else [],
        "records": records,
    }


def case_of(comparison: Comparison, case: str, model: str = "m") -> Any:
    return next(c for c in comparison.cases if (c.case, c.model) == (case, model))


def model_of(comparison: Comparison, model: str = "m") -> Any:
    return next(m for m in comparison.models if m.model == model)


# --------------------------------------------------------------------------- statistics


def hypergeom(a: int, row1: int, col1: int, total: int) -> float:
    return math.comb(row1, a) * math.comb(total - row1, col1 - a) / math.comb(total, col1)


def test_fisher_known_value():
    # [[8,2],[1,5]]: rows 10/6, first column 9, so a runs 3..9 with weights
    # C(10,a)·C(6,9-a) = 120, 1260, 3780, 4200, 1800, 270, 10. At most as likely as a=8
    # (270): a=3, 8, 9, so p = 400 / C(16,9) = 400/11440; R's fisher.test gives 0.03497.
    by_hand = sum(hypergeom(a, 10, 9, 16) for a in (3, 8, 9))
    assert by_hand == pytest.approx(400 / 11440)
    assert fisher_exact(((8, 2), (1, 5))) == pytest.approx(by_hand, rel=1e-12)
    assert fisher_exact(((8, 2), (1, 5))) == pytest.approx(0.03497, abs=1e-5)


def test_fisher_edge_cases():
    assert fisher_exact(((0, 0), (0, 0))) == 1.0
    assert fisher_exact(((1, 0), (0, 1))) == 1.0  # one repeat each side, flipped
    # 3/3 → 0/3: only this table and its mirror image are as extreme: 2 / C(6,3)
    assert fisher_exact(((3, 0), (0, 3))) == pytest.approx(2 / 20)
    assert fisher_exact(((10, 0), (0, 10))) == pytest.approx(2 / math.comb(20, 10))
    with pytest.raises(ValueError):
        fisher_exact(((-1, 0), (0, 1)))


def test_mcnemar_known_value():
    # b=10, c=1: 2·P[X ≤ 1], X ~ Bin(11, 1/2) = 2·(1 + 11)/2048 = 0.01171875
    assert mcnemar_exact(10, 1) == pytest.approx(2 * (1 + 11) / 2**11)
    assert mcnemar_exact(10, 1) == pytest.approx(0.01172, abs=1e-5)
    assert mcnemar_exact(1, 10) == mcnemar_exact(10, 1)


def test_mcnemar_edge_cases():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # capped at 1
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_format_p():
    assert format_p(None) == "—"
    assert format_p(0.0004) == "p<0.001"
    assert format_p(0.0042) == "p=0.004"
    assert format_p(1.0) == "p=1.000"


# --------------------------------------------------------------------------- statuses


def test_every_status():
    baseline = make_doc(
        {
            ("c-reg", "m"): [True],
            ("c-fix", "m"): [False],
            ("c-pass", "m"): [True],
            ("c-fail", "m"): [False],
            ("c-gone", "m"): [True],
        }
    )
    current = make_doc(
        {
            ("c-reg", "m"): [False],
            ("c-fix", "m"): [True],
            ("c-pass", "m"): [True],
            ("c-fail", "m"): [False],
            ("c-new", "m"): [True],
        }
    )
    result = compare(baseline, current)
    statuses = {c.case: c.status for c in result.cases}
    assert statuses == {
        "c-reg": "regression",
        "c-fix": "fix",
        "c-pass": "unchanged-pass",
        "c-fail": "unchanged-fail",
        "c-new": "new",
        "c-gone": "removed",
    }
    new, gone = case_of(result, "c-new"), case_of(result, "c-gone")
    assert (new.baseline_pass_rate, new.current_pass_rate, new.p_value) == (None, 1.0, None)
    assert (gone.baseline_pass_rate, gone.current_pass_rate, gone.p_value) == (1.0, None, None)
    assert not new.significant and not gone.significant
    m = model_of(result)
    assert (m.regressions, m.fixes, m.new, m.removed) == (1, 1, 1, 1)
    # pass rates over the four shared cases only: reg+pass vs fix+pass
    assert (m.baseline_pass_rate, m.current_pass_rate, m.delta) == (0.5, 0.5, 0.0)


def test_a_single_repeat_flip_is_a_regression_but_not_significant():
    result = compare(make_doc({("c", "m"): [True]}), make_doc({("c", "m"): [False]}))
    row = case_of(result, "c")
    assert row.status == "regression"
    # one-sided: a coin toss; no case can be significant with one repeat, so adjusted is 1
    assert row.p_value == 0.5 and row.adjusted_p_value == 1.0 and not row.significant
    assert row.verdict == "changed, not significant"
    assert model_of(result).direction == "unchanged"
    assert model_of(result).verdict == "changed, not significant"
    assert not result.has_significant_regression
    assert result.significant_regressions == []


def test_a_consistent_flip_over_many_repeats_is_a_significant_regression():
    result = compare(make_doc({("c", "m"): [True] * 10}), make_doc({("c", "m"): [False] * 10}))
    row = case_of(result, "c")
    assert row.status == "regression" and row.significant
    assert row.p_value == pytest.approx(1 / math.comb(20, 10))  # one-sided
    # the only testable case: Tarone counts 1, then ÷ the case share (0.01 of 0.05)
    assert row.adjusted_p_value == pytest.approx(5 / math.comb(20, 10))
    assert row.verdict == "regression (significant)"
    # the model's stratified test sees it too
    assert [(r.model, r.case) for r in result.significant_regressions] == [("m", None), ("m", "c")]
    assert "10/10 → 0/10" in result.significant_regressions[1].reason
    assert "Fisher p<0.001, adjusted p<0.001" in result.significant_regressions[1].reason
    assert result.has_significant_regression
    assert (result.alpha_models, result.alpha_cases) == (0.04, 0.01)


def test_an_improvement_never_fails_the_gate():
    result = compare(make_doc({("c", "m"): [False] * 10}), make_doc({("c", "m"): [True] * 10}))
    row, m = case_of(result, "c"), model_of(result)
    assert row.status == "fix" and row.significant and row.verdict == "fix (significant)"
    assert m.direction == "improvement" and m.verdict == "improvement (significant)"
    assert not result.has_significant_regression


def test_a_significant_fall_that_keeps_the_item_passing_is_shown_but_not_gated_per_case():
    # threshold 0.3: 10/10 → 3/10 still passes the item (one-sided p ≈ 0.0015)
    rows_old = {("c", "m"): [True] * 10}
    rows_new = {("c", "m"): [True] * 3 + [False] * 7}
    result = compare(make_doc(rows_old, threshold=0.3), make_doc(rows_new, threshold=0.3))
    row = case_of(result, "c")
    assert row.status == "unchanged-pass" and row.significant
    assert row.verdict == "fell (significant)"
    # the model-level test counts it; the case list of the gate only has pass → fail flips
    assert [(r.model, r.case) for r in result.significant_regressions] == [("m", None)]


def test_many_individually_significant_cases_are_not_significant_after_correction():
    # ten cases each fall 10/10 → 3/10: p = 286/C(20,10) ≈ 0.0015 apiece, below the case
    # share 0.01 on its own, but ten of them are tested: Holm–Tarone multiplies by 7
    old = {(f"c{i}", "m"): [True] * 10 for i in range(10)}
    new = {(f"c{i}", "m"): [True] * 3 + [False] * 7 for i in range(10)}
    result = compare(make_doc(old), make_doc(new))
    for i in range(10):
        row = case_of(result, f"c{i}")
        assert row.p_value == pytest.approx(286 / math.comb(20, 10))
        assert row.p_value < 0.01 < row.adjusted_p_value
        assert not row.significant and row.verdict == "changed, not significant"
    # together they are an obvious fall of the model
    assert model_of(result).direction == "regression"
    assert [(r.model, r.case) for r in result.significant_regressions] == [("m", None)]


def test_untestable_cases_do_not_dilute_a_strong_one():
    # 300 single-repeat cases flip at random (none can ever be significant: min p = 0.5);
    # one ten-repeat case goes 10/10 → 0/10 and keeps its full share of alpha
    rng = random.Random(5)
    old = {(f"n{i}", "m"): [rng.random() < 0.7] for i in range(300)}
    new = {(f"n{i}", "m"): [rng.random() < 0.7] for i in range(300)}
    old[("strong", "m")], new[("strong", "m")] = [True] * 10, [False] * 10
    row = case_of(compare(make_doc(old), make_doc(new)), "strong")
    assert row.significant and row.adjusted_p_value == pytest.approx(5 / math.comb(20, 10))


def test_errors_count_as_failures():
    result = compare(make_doc({("c", "m"): [True, True]}), make_doc({("c", "m"): ["error", True]}))
    row = case_of(result, "c")
    assert row.current_pass_rate == 0.5
    assert row.status == "regression"


def test_item_outcome_wins_over_the_pass_rate():
    # with a 0.5 threshold, 1/2 passes: the item passed, so this is no regression
    rows = {("c", "m"): [True, True]}
    result = compare(
        make_doc(rows, threshold=0.5), make_doc({("c", "m"): [True, False]}, threshold=0.5)
    )
    assert case_of(result, "c").status == "unchanged-pass"
    assert case_of(result, "c").current_pass_rate == 0.5
    # without items, "passed" means every repeat passed
    result = compare(
        make_doc(rows, with_items=False), make_doc({("c", "m"): [True, False]}, with_items=False)
    )
    assert case_of(result, "c").status == "regression"


def test_case_key_is_derived_when_records_lack_it():
    baseline = make_doc({("t.py::test_a", "m"): [True]})
    current = make_doc({("t.py::test_a", "m"): [False]})
    for doc in (baseline, current):
        for entry in doc["records"] + doc["items"]:
            del entry["case"]
    result = compare(baseline, current)
    assert [(c.case, c.status) for c in result.cases] == [("t.py::test_a", "regression")]


# --------------------------------------------------------------------------- per model


def test_many_flips_make_a_significant_model_regression():
    cases = [f"c{i}" for i in range(12)]
    baseline = make_doc({(c, "m"): [True] for c in cases} | {("other", "ok"): [True]})
    # 10 of the 12 flip to fail (b=10, c=0); the other model does not change
    current = make_doc(
        {(c, "m"): [i >= 10] for i, c in enumerate(cases)} | {("other", "ok"): [True]}
    )
    result = compare(baseline, current)
    m = model_of(result)
    assert (m.regressions, m.fixes) == (10, 0)
    assert m.p_value == pytest.approx(1 / 2**10)  # the one-sided sign test
    # single repeats: no case is testable, so the models get all of alpha; "ok" has
    # nothing informative, so Tarone counts one model
    assert m.adjusted_p_value == pytest.approx(1 / 2**10)
    assert m.significant and m.direction == "regression"
    assert (m.method, m.informative) == ("exact", 10)
    assert m.baseline_pass_rate == 1.0 and m.current_pass_rate == pytest.approx(2 / 12)
    assert m.baseline_answer_rate == 1.0 and m.current_answer_rate == pytest.approx(2 / 12)
    assert m.delta == pytest.approx(2 / 12 - 1)
    # each single-repeat case is noise on its own: the only regression is the model's
    assert [(r.model, r.case) for r in result.significant_regressions] == [("m", None)]
    assert (
        result.significant_regressions[0].reason
        == "pass rate 100.0% → 16.7% (CMH p<0.001, adjusted p<0.001)"
    )
    assert model_of(result, "ok").direction == "unchanged"
    assert model_of(result, "ok").verdict == "unchanged"
    assert (result.alpha_models, result.alpha_cases) == (0.05, 0.0)


def test_with_one_repeat_the_model_test_is_one_sided_mcnemar():
    cases = [f"c{i}" for i in range(11)]
    baseline = make_doc({(c, "m"): [i < 10] for i, c in enumerate(cases)})
    current = make_doc({(c, "m"): [i == 10] for i, c in enumerate(cases)})
    m = model_of(compare(baseline, current))
    assert (m.regressions, m.fixes) == (10, 1)
    assert m.p_value == pytest.approx(mcnemar_exact(10, 1) / 2)
    assert m.direction == "regression"
    # and the other way round it is an improvement
    m = model_of(compare(current, baseline))
    assert (m.regressions, m.fixes) == (1, 10)
    assert m.direction == "improvement"


def test_latency_and_cost_deltas():
    rows = {("c", "m"): [True]}
    result = compare(
        make_doc(rows, latency_ms=100.0, cost_usd=0.01),
        make_doc(rows, latency_ms=250.0, cost_usd=0.03),
    )
    m = model_of(result)
    assert m.latency_p50_delta_ms == pytest.approx(150.0)
    assert m.cost_delta_usd == pytest.approx(0.02)
    result = compare(make_doc(rows, cost_usd=0.01), make_doc(rows, latency_ms=None))
    m = model_of(result)
    assert m.cost_delta_usd is None and m.latency_p50_delta_ms is None


def test_a_model_in_one_run_only():
    result = compare(make_doc({("c", "old"): [True]}), make_doc({("c", "new"): [True]}))
    old, new = model_of(result, "old"), model_of(result, "new")
    assert (old.removed, old.new, new.new, new.removed) == (1, 0, 1, 0)
    assert old.baseline_pass_rate is None and old.delta is None
    assert old.p_value == 1.0 and old.direction == "unchanged"
    assert [m.model for m in result.models] == ["new", "old"]


# --------------------------------------------------------------------------- output


def test_to_dict_shape():
    baseline = make_doc({("c", "m"): [True] * 10})
    current = make_doc({("c", "m"): [False] * 10, ("d", "m"): [True]})
    data = compare(baseline, current, alpha=0.01).to_dict()
    # backward compatible: every earlier key is still there (keys are only added)
    assert set(data) >= {"alpha", "models", "cases", "significant_regressions"}
    assert set(data) - {"alpha", "models", "cases", "significant_regressions"} == {
        "alpha_models",
        "alpha_cases",
        "notes",
    }
    assert data["alpha"] == 0.01
    assert set(data["models"][0]) >= {
        "model",
        "baseline_pass_rate",
        "current_pass_rate",
        "delta",
        "p_value",
        "significant",
        "direction",
        "regressions",
        "fixes",
        "new",
        "removed",
        "latency_p50_delta_ms",
        "cost_delta_usd",
    }
    assert {"adjusted_p_value", "verdict", "method"} <= set(data["models"][0])
    assert set(data["cases"][0]) >= {
        "case",
        "model",
        "status",
        "baseline_pass_rate",
        "current_pass_rate",
        "p_value",
        "significant",
    }
    assert {"adjusted_p_value", "verdict"} <= set(data["cases"][0])
    assert data["cases"][0]["verdict"] == "regression (significant)"
    assert [(r["model"], r["case"]) for r in data["significant_regressions"]] == [
        ("m", None),
        ("m", "c"),
    ]
    assert set(data["significant_regressions"][1]) == {"model", "case", "reason"}


def test_alpha_decides_significance():
    baseline = make_doc({("c", "m"): [True] * 5})
    current = make_doc({("c", "m"): [False] * 5})
    # one-sided p = 1/C(10,5) = 1/252 ≈ 0.004: within the case share of 0.05 (0.01), not
    # of 0.01 (0.002) — the case cannot be significant there, so the model gets all of α
    assert case_of(compare(baseline, current, alpha=0.05), "c").significant
    tight = compare(baseline, current, alpha=0.01)
    assert not case_of(tight, "c").significant
    assert (tight.alpha_models, tight.alpha_cases) == (0.01, 0.0)
    assert model_of(tight).direction == "regression"
    assert not model_of(compare(baseline, current, alpha=0.003)).significant
    with pytest.raises(ValueError):
        compare(baseline, current, alpha=0)


def test_format_table():
    cases = [f"c{i}" for i in range(10)]
    baseline = make_doc({(c, "m"): [True] for c in cases})
    current = make_doc({(c, "m"): [i == 0] for i, c in enumerate(cases)})
    text = format_table(compare(baseline, current))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["model", "baseline", "current", "change"]
    assert set(lines[1]) == {"-", " "}
    assert lines[0].split()[4:7] == ["CMH", "p", "adj."]
    # nine of ten flipped: one-sided sign test 1/2^9
    assert lines[2].split()[:7] == ["m", "100.0%", "10.0%", "-90.0", "pp", "p=0.002", "p=0.002"]
    assert "regression (significant)" in lines[2]
    assert "c1" in text and "Fisher p" in text and "changed, not significant" in text
    assert "1 significant regression(s)" in text
    assert "a run with no real change fails this gate with probability at most 5%" in text
    quiet = format_table(compare(baseline, baseline))
    assert "No significant regressions" in quiet and "Fisher" not in quiet
    assert "probability at most 5%" in quiet


# --------------------------------------------------------------------------- properties

outcome = st.sampled_from([True, False, "error"])
run_rows = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.sampled_from(["m1", "m2"])),
    st.lists(outcome, min_size=1, max_size=4),
    max_size=10,
)


@given(run_rows)
def test_comparing_a_run_with_itself_changes_nothing(rows):
    doc = make_doc(rows)
    result = compare(doc, doc)
    assert not result.has_significant_regression
    assert all(c.status in ("unchanged-pass", "unchanged-fail") for c in result.cases)
    assert all(c.p_value == 1.0 for c in result.cases)
    assert all(m.p_value == 1.0 and m.direction == "unchanged" for m in result.models)
    assert all(m.regressions == m.fixes == m.new == m.removed == 0 for m in result.models)


@given(run_rows, run_rows)
def test_swapping_the_runs_swaps_regressions_and_fixes(old_rows, new_rows):
    forward = compare(make_doc(old_rows), make_doc(new_rows))
    backward = compare(make_doc(new_rows), make_doc(old_rows))
    swap = {"regression": "fix", "fix": "regression", "new": "removed", "removed": "new"}
    there = {(c.case, c.model): c for c in forward.cases}
    back = {(c.case, c.model): c for c in backward.cases}
    assert set(there) == set(back)
    for key, row in there.items():
        assert back[key].status == swap.get(row.status, row.status)
        assert back[key].p_value == row.p_value
        assert back[key].adjusted_p_value == pytest.approx(row.adjusted_p_value)
        assert back[key].significant == row.significant
    for m in forward.models:
        b = model_of(backward, m.model)
        assert (b.regressions, b.fixes, b.new, b.removed) == (
            m.fixes,
            m.regressions,
            m.removed,
            m.new,
        )
        assert b.p_value == pytest.approx(m.p_value)
        flipped = {"regression": "improvement", "improvement": "regression"}
        assert b.direction == flipped.get(m.direction, m.direction)


@given(run_rows, run_rows, st.floats(0.001, 0.5))
def test_p_values_are_probabilities(old_rows, new_rows, alpha):
    result = compare(make_doc(old_rows), make_doc(new_rows), alpha=alpha)
    for c in result.cases:
        assert c.p_value is None or 0.0 <= c.p_value <= 1.0
        assert (c.p_value is None) == (c.adjusted_p_value is None)
        if c.p_value is not None:
            assert c.p_value <= c.adjusted_p_value <= 1.0
        assert c.significant == (c.adjusted_p_value is not None and c.adjusted_p_value <= alpha)
    for m in result.models:
        assert 0.0 <= m.p_value <= m.adjusted_p_value <= 1.0
        assert m.significant == (m.adjusted_p_value <= alpha)
    gated = {(r.model, r.case) for r in result.significant_regressions}
    assert gated == {(m.model, None) for m in result.models if m.direction == "regression"} | {
        (c.model, c.case)
        for c in result.cases
        if c.status == "regression" and c.significant and c.moved == "less"
    }


@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_fisher_is_a_probability_and_symmetric(a, b, c, d):
    p = fisher_exact(((a, b), (c, d)))
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(fisher_exact(((c, d), (a, b))))
    assert p == pytest.approx(fisher_exact(((b, a), (d, c))))


# --------------------------------------------------------------------------- the gate's error rates
# Seeded simulations through compare(): the false-alarm rate of the whole gate with no real
# change, and the two power targets. tests/benchmarks/bench_verdicts.py runs the full grid.


def pass_probabilities(mix: str, cases: int, rng: random.Random) -> list[float]:
    """``flaky``: every case passes with p = 0.8; ``reliable``: 80% at 0.98, 20% U(0.4, 0.95)."""
    if mix == "flaky":
        return [0.8] * cases
    return [0.98 if rng.random() < 0.8 else rng.uniform(0.4, 0.95) for _ in range(cases)]


def gate_rate(cases, repeats, mix, drop, sims, seed, models=("m",)):
    """How often compare() flags a significant regression; ``drop`` shifts every case."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(sims):
        old: dict[tuple[str, str], list[Outcome]] = {}
        new: dict[tuple[str, str], list[Outcome]] = {}
        for model in models:
            for i, p in enumerate(pass_probabilities(mix, cases, rng)):
                old[(f"c{i}", model)] = [rng.random() < p for _ in range(repeats)]
                new[(f"c{i}", model)] = [rng.random() < p - drop for _ in range(repeats)]
        hits += compare(make_doc(old), make_doc(new)).has_significant_regression
    return hits / sims


def upper_bound(rate_alpha: float, sims: int) -> float:
    """alpha plus 3.1 standard errors: a one-sided 99.9% allowance for simulation noise."""
    return rate_alpha + 3.1 * math.sqrt(rate_alpha * (1 - rate_alpha) / sims)


@pytest.mark.parametrize(
    ("cases", "repeats", "mix", "models"),
    [
        (200, 5, "flaky", ("m",)),  # the scenario: the old gate failed 33–42%
        (50, 3, "flaky", ("a", "b", "c")),  # three models at once
        (50, 20, "reliable", ("m",)),  # testable cases: the α split is in force
    ],
)
def test_no_real_change_fails_the_gate_at_most_alpha(cases, repeats, mix, models):
    sims = 200 if len(models) == 1 else 100
    rate = gate_rate(cases, repeats, mix, 0.0, sims, seed=cases + repeats, models=models)
    assert rate <= upper_bound(0.05, sims)


@pytest.mark.parametrize("mix", ["flaky", "reliable"])
def test_a_20_point_drop_at_50_cases_and_3_repeats_is_caught(mix):
    assert gate_rate(50, 3, mix, 0.2, 200, seed=11) >= 0.9


def test_a_10_point_drop_at_200_cases_and_1_repeat_is_caught_when_most_cases_are_reliable():
    # with every case at p = 0.8 the best possible power is ~75% (docs/statistics.md)
    assert gate_rate(200, 1, "reliable", 0.1, 200, seed=12) >= 0.82
    assert gate_rate(200, 1, "flaky", 0.1, 200, seed=13) >= 0.6


# --------------------------------------------------------------------------- adaptive repeats


def run_adaptive(plan, p, rng):
    """The outcomes a prefetching runner records for one case under ``plan``."""
    outcomes: list[Outcome] = []
    while (batch := plan.next_batch(sum(o is True for o in outcomes), len(outcomes))) > 0:
        outcomes += [rng.random() < p for _ in range(batch)]
    return outcomes


def make_adaptive_doc(rows, plan):
    """``make_doc`` with the item fields an adaptive run writes."""
    doc = make_doc(rows, threshold=plan.threshold)
    for item in doc["items"]:
        decision = plan.decide(item["passes"], item["repeats"])
        item.update(
            max_repeats=plan.max_repeats,
            stopped=decision.reason,
            confidence=plan.confidence,
            outcome="passed" if decision.verdict == "pass" else "failed",
        )
    return doc


def test_adaptive_runs_are_tested_given_how_their_repeats_stopped():
    plan = SequentialPlan(5, 1.0)  # stops at the first failure
    old = make_adaptive_doc({("c", "m"): [True] * 5}, plan)
    new = make_adaptive_doc({("c", "m"): [True, True, False]}, plan)
    row = case_of(compare(old, new), "c")
    # given 7 passes in 8 repeats the only other way is the mirror image: p = 1/2, where
    # the hypergeometric test (wrong here) would say 21/56
    assert row.p_value == 0.5
    assert fisher_one_sided(5, 5, 2, 3) == pytest.approx(21 / 56)
    assert compare(old, new).notes == []


def test_adaptive_in_one_run_only_compares_the_first_repeats():
    plan = SequentialPlan(10, 0.8)  # first batch: 2
    assert plan.next_batch(0, 0) == 2
    fixed = make_doc({("c", "m"): [True, True] + [True] * 8})
    adaptive = make_adaptive_doc({("c", "m"): [False, False]}, plan)
    result = compare(fixed, adaptive)
    row = case_of(result, "c")
    assert row.p_value == pytest.approx(fisher_one_sided(2, 2, 0, 2))  # 1/6
    assert row.baseline_repeats == 10 and row.current_repeats == 2  # shown as they ran
    assert len(result.notes) == 1 and "first repeats" in result.notes[0]
    assert "Note: 1 case(s) ran adaptive repeats in one run only" in format_table(result)
    # without per-repeat records: the totals, given how many repeats each run made
    for doc in (fixed, adaptive):
        for record in doc["records"]:
            del record["repeat"]
    assert "little power" in compare(fixed, adaptive).notes[0]


def test_adaptive_runs_keep_the_false_alarm_rate_and_catch_a_drop():
    plan = SequentialPlan(10, 0.8)
    rng = random.Random(21)

    def rate(drop, sims):
        hits = 0
        for _ in range(sims):
            old, new = {}, {}
            for i, p in enumerate(pass_probabilities("flaky", 100, rng)):
                old[(f"c{i}", "m")] = run_adaptive(plan, p, rng)
                new[(f"c{i}", "m")] = run_adaptive(plan, p - drop, rng)
            comparison = compare(make_adaptive_doc(old, plan), make_adaptive_doc(new, plan))
            hits += comparison.has_significant_regression
        return hits / sims

    assert rate(0.0, 120) <= upper_bound(0.05, 120)
    assert rate(0.2, 20) >= 0.9
