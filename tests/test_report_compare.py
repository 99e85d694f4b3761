"""The baseline comparison: statuses, the exact tests, significance and the plain-text table."""

from __future__ import annotations

import math
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
    assert row.p_value == 1.0 and not row.significant
    assert model_of(result).direction == "unchanged"
    assert not result.has_significant_regression
    assert result.significant_regressions == []


def test_a_consistent_flip_over_many_repeats_is_a_significant_case_regression():
    result = compare(make_doc({("c", "m"): [True] * 10}), make_doc({("c", "m"): [False] * 10}))
    row = case_of(result, "c")
    assert row.status == "regression" and row.significant
    assert row.p_value == pytest.approx(2 / math.comb(20, 10))
    assert [(r.model, r.case) for r in result.significant_regressions] == [("m", "c")]
    assert "10/10 → 0/10" in result.significant_regressions[0].reason
    assert "Fisher p<0.001" in result.significant_regressions[0].reason
    assert result.has_significant_regression


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
    assert m.p_value == pytest.approx(2 / 2**10)
    assert m.significant and m.direction == "regression"
    assert m.baseline_pass_rate == 1.0 and m.current_pass_rate == pytest.approx(2 / 12)
    assert m.delta == pytest.approx(2 / 12 - 1)
    # each single-repeat case is noise on its own: the only regression is the model's
    assert [(r.model, r.case) for r in result.significant_regressions] == [("m", None)]
    assert result.significant_regressions[0].reason == "pass rate 100.0% → 16.7% (McNemar p=0.002)"
    assert model_of(result, "ok").direction == "unchanged"


def test_mcnemar_on_the_model_matches_b_and_c():
    cases = [f"c{i}" for i in range(11)]
    baseline = make_doc({(c, "m"): [i < 10] for i, c in enumerate(cases)})
    current = make_doc({(c, "m"): [i == 10] for i, c in enumerate(cases)})
    m = model_of(compare(baseline, current))
    assert (m.regressions, m.fixes) == (10, 1)
    assert m.p_value == pytest.approx(0.01171875)
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
    assert set(data) == {"alpha", "models", "cases", "significant_regressions"}
    assert data["alpha"] == 0.01
    assert set(data["models"][0]) == {
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
    assert set(data["cases"][0]) == {
        "case",
        "model",
        "status",
        "baseline_pass_rate",
        "current_pass_rate",
        "p_value",
        "significant",
    }
    assert data["significant_regressions"] == [
        {"model": "m", "case": "c", "reason": data["significant_regressions"][0]["reason"]}
    ]


def test_alpha_decides_significance():
    baseline = make_doc({("c", "m"): [True] * 4})
    current = make_doc({("c", "m"): [False] * 4})
    p = fisher_exact(((4, 0), (0, 4)))  # 2/70 ≈ 0.029
    assert case_of(compare(baseline, current, alpha=0.05), "c").significant
    assert not case_of(compare(baseline, current, alpha=0.01), "c").significant
    assert p == pytest.approx(2 / 70)


def test_format_table():
    cases = [f"c{i}" for i in range(10)]
    baseline = make_doc({(c, "m"): [True] for c in cases})
    current = make_doc({(c, "m"): [i == 0] for i, c in enumerate(cases)})
    text = format_table(compare(baseline, current))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["model", "baseline", "current", "change"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split()[:6] == ["m", "100.0%", "10.0%", "-90.0", "pp", "p=0.004"]
    assert "regression" in lines[2]
    assert "c1" in text and "Fisher" in text
    assert "1 significant regression(s)" in text
    quiet = format_table(compare(baseline, baseline))
    assert "No significant regressions" in quiet and "Fisher" not in quiet


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
    for m in forward.models:
        b = model_of(backward, m.model)
        assert (b.regressions, b.fixes, b.new, b.removed) == (
            m.fixes,
            m.regressions,
            m.removed,
            m.new,
        )
        assert b.p_value == m.p_value


@given(run_rows, run_rows, st.floats(0.001, 0.5))
def test_p_values_are_probabilities(old_rows, new_rows, alpha):
    result = compare(make_doc(old_rows), make_doc(new_rows), alpha=alpha)
    for c in result.cases:
        assert c.p_value is None or 0.0 <= c.p_value <= 1.0
        assert c.significant == (c.p_value is not None and c.p_value < alpha)
    for m in result.models:
        assert 0.0 <= m.p_value <= 1.0
        assert m.significant == (m.p_value < alpha)


@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_fisher_is_a_probability_and_symmetric(a, b, c, d):
    p = fisher_exact(((a, b), (c, d)))
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(fisher_exact(((c, d), (a, b))))
    assert p == pytest.approx(fisher_exact(((b, a), (d, c))))
