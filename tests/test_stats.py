"""harness.stats: the exact conditional tests, Holm–Tarone, the α split and the power maths."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.compare import fisher_exact, mcnemar_exact
from harness.stats import (
    CASE_ALPHA_SHARE,
    MODEL_ALPHA_SHARE,
    Design,
    case_test,
    detectable_drop,
    fisher_one_sided,
    gate_alphas,
    gate_power,
    holm_tarone,
    hypergeom_pmf,
    min_attainable_p,
    normal_cdf,
    repeats_needed,
    score_distribution,
    stratified_test,
)

# --------------------------------------------------------------------------- one case


def test_hypergeometric_distribution_by_hand():
    # 3 repeats each side, 4 passes in all: the current side holds 1, 2 or 3 of them
    lo, pmf = hypergeom_pmf(3, 3, 4)
    assert lo == 1
    assert pmf == pytest.approx([3 / 15, 9 / 15, 3 / 15])
    assert hypergeom_pmf(1, 1, 1) == (0, (0.5, 0.5))
    with pytest.raises(ValueError):
        hypergeom_pmf(2, 2, 5)


def test_fisher_one_sided_known_values():
    # 3/3 → 0/3: only the observed table is as extreme, 1 / C(6, 3)
    assert fisher_one_sided(3, 3, 0, 3) == pytest.approx(1 / 20)
    assert fisher_one_sided(10, 10, 0, 10) == pytest.approx(1 / math.comb(20, 10))
    # 7/10 → 1/10: 8 passes in all, P[Y ≤ 1] = (C(8,0)·C(12,10) + C(8,1)·C(12,9)) / C(20,10)
    # = 1826 / 184756; SciPy's fisher_exact([[1, 9], [7, 3]], "less") gives 0.0098833
    assert fisher_one_sided(7, 10, 1, 10) == pytest.approx(1826 / 184756)
    assert fisher_one_sided(7, 10, 1, 10) == pytest.approx(0.0098833, abs=1e-7)
    # the other tail of the same table
    assert fisher_one_sided(7, 10, 1, 10, "greater") == pytest.approx(1 - 66 / 184756)
    # with one repeat per side a single flip is a coin toss
    assert fisher_one_sided(1, 1, 0, 1) == 0.5
    assert fisher_one_sided(0, 0, 0, 3) == 1.0  # nothing to compare with
    with pytest.raises(ValueError):
        fisher_one_sided(4, 3, 0, 3)


def test_one_sided_halves_the_symmetric_two_sided_test():
    for n in range(1, 9):
        for x, y in itertools.product(range(n + 1), repeat=2):
            if x > y and x + y == n:  # symmetric margins: two-sided = 2 × one tail
                two = fisher_exact(((x, n - x), (y, n - y)))
                assert min(1.0, 2 * fisher_one_sided(x, n, y, n)) == pytest.approx(two)


@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_tails_are_probabilities_that_cover_everything(n1, n2, data):
    x = data.draw(st.integers(0, n1))
    y = data.draw(st.integers(0, n2))
    less, greater = fisher_one_sided(x, n1, y, n2, "less"), fisher_one_sided(x, n1, y, n2)
    assert 0 < less <= 1 and 0 < greater <= 1
    lo, pmf = hypergeom_pmf(n1, n2, x + y)
    point = pmf[y - lo]
    assert less + fisher_one_sided(x, n1, y, n2, "greater") == pytest.approx(1 + point)
    assert greater == less
    # the minimum attainable p-value is the probability of the most extreme table
    assert min_attainable_p(n1, n2, x + y, "less") == pytest.approx(pmf[0])
    assert min_attainable_p(n1, n2, x + y, "less") <= less + 1e-12
    assert min_attainable_p(n1, n2, x + y, "greater") <= fisher_one_sided(
        x, n1, y, n2, "greater"
    ) + 1e-12


def test_min_attainable_p():
    assert min_attainable_p(3, 3, 3) == pytest.approx(1 / 20)
    assert min_attainable_p(5, 5, 5) == pytest.approx(1 / 252)
    assert min_attainable_p(5, 5, 10) == 1.0  # all passed: no information
    assert min_attainable_p(0, 5, 3) == 1.0


# --------------------------------------------------------------------------- stratified


def brute_force_tail(strata, alternative):
    """P[S ≤ s] (or ≥) by enumerating every combination of per-case outcomes."""
    supports = []
    observed = 0
    for x, n1, y, n2 in strata:
        lo, pmf = hypergeom_pmf(n1, n2, x + y)
        supports.append([(lo + i, p) for i, p in enumerate(pmf)])
        observed += y
    total = 0.0
    for combo in itertools.product(*supports):
        s = sum(v for v, _ in combo)
        if (s <= observed) if alternative == "less" else (s >= observed):
            total += math.prod(p for _, p in combo)
    return total


strata_lists = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
        lambda n: st.tuples(
            st.integers(0, n[0]), st.just(n[0]), st.integers(0, n[1]), st.just(n[1])
        )
    ),
    min_size=1,
    max_size=5,
)


@given(strata_lists, st.sampled_from(["less", "greater"]))
def test_the_exact_stratified_test_is_the_convolution(strata, alternative):
    result = stratified_test(strata, alternative)
    assert result.p_value == pytest.approx(brute_force_tail(strata, alternative), abs=1e-12)
    assert result.method in ("exact", "none")
    assert 0 < result.min_p <= result.p_value + 1e-12 or result.method == "none"


@given(strata_lists)
def test_swapping_the_runs_swaps_the_tails(strata):
    swapped = [(y, n2, x, n1) for x, n1, y, n2 in strata]
    assert stratified_test(strata, "less").p_value == pytest.approx(
        stratified_test(swapped, "greater").p_value
    )


def test_one_stratum_is_the_one_sided_fisher_test():
    assert stratified_test([(7, 10, 1, 10)]).p_value == pytest.approx(
        fisher_one_sided(7, 10, 1, 10)
    )


def test_one_repeat_per_side_is_the_one_sided_sign_test():
    # 10 cases went pass → fail, 1 fail → pass, 5 unchanged: McNemar's exact test, one tail
    strata = [(1, 1, 0, 1)] * 10 + [(0, 1, 1, 1)] + [(1, 1, 1, 1)] * 5
    result = stratified_test(strata)
    assert result.p_value == pytest.approx(mcnemar_exact(10, 1) / 2)
    assert result.informative == 11
    assert result.statistic == 1 and result.expected == pytest.approx(5.5)


def test_uninformative_cases_drop_out():
    result = stratified_test([(3, 3, 3, 3), (0, 3, 0, 3), (0, 0, 2, 2)])
    assert (result.p_value, result.method, result.informative) == (1.0, "none", 0)
    assert stratified_test([]).p_value == 1.0


def test_normal_approximation_is_close_to_exact_in_the_tail():
    rng = random.Random(7)
    for _ in range(20):
        strata = []
        for _ in range(120):
            p = rng.choice([0.6, 0.8, 0.95])
            x = sum(rng.random() < p for _ in range(5))
            y = sum(rng.random() < p - 0.05 for _ in range(5))
            strata.append((x, 5, y, 5))
        exact = stratified_test(strata, exact_budget=10**9)
        normal = stratified_test(strata, exact_budget=0)
        assert exact.method == "exact" and normal.method == "normal"
        assert normal.p_value == pytest.approx(exact.p_value, abs=0.01, rel=0.15)


def test_large_suites_switch_to_the_normal_approximation():
    # How long it takes is measured by tests/benchmarks/bench_verdicts.py (column ms, rows
    # of 2,000 cases).
    rng = random.Random(3)
    strata = [(sum(rng.random() < 0.8 for _ in range(20)), 20, 0, 20) for _ in range(2000)]
    strata = [(x, 20, sum(rng.random() < 0.8 for _ in range(20)), 20) for x, *_ in strata]
    result = stratified_test(strata)
    assert result.method == "normal" and result.informative > 1500


@pytest.mark.parametrize(
    ("cases", "repeats", "p"),
    [(50, 3, 0.8), (200, 1, 0.5), (10, 5, 0.9), (300, 20, 0.8), (100, 2, 0.97)],
)
def test_no_change_rejects_at_most_alpha(cases, repeats, p):
    """Type-I error of the model-level test alone, through both branches (seeded)."""
    rng = random.Random(cases * 1000 + repeats)
    sims, alpha, hits = 400, 0.05, 0
    for _ in range(sims):
        strata = [
            (
                sum(rng.random() < p for _ in range(repeats)),
                repeats,
                sum(rng.random() < p for _ in range(repeats)),
                repeats,
            )
            for _ in range(cases)
        ]
        hits += stratified_test(strata).p_value <= alpha
    # one-sided 99.9% binomial bound above alpha for 400 draws
    assert hits / sims <= alpha + 3.1 * math.sqrt(alpha * (1 - alpha) / sims)


# --------------------------------------------------------------------------- multiplicity


def test_plain_holm():
    assert holm_tarone([0.01, 0.04, 0.03, 0.005], 0.05) == pytest.approx(
        [0.03, 0.06, 0.06, 0.02]
    )
    assert holm_tarone([], 0.05) == []
    assert holm_tarone([0.5, 0.9], 0.05) == pytest.approx([1.0, 1.0])


def test_tarone_leaves_out_hypotheses_that_cannot_reach_significance():
    # 100 single-repeat cases (min p 0.5) and one with ten repeats each side:
    # plain Holm multiplies by 101, Tarone by 1
    p_values = [0.5] * 100 + [1e-4]
    min_p = [0.5] * 100 + [1 / math.comb(20, 10)]
    assert holm_tarone(p_values, 0.01)[-1] == pytest.approx(101e-4)
    assert holm_tarone(p_values, 0.01, min_p)[-1] == pytest.approx(1e-4)
    with pytest.raises(ValueError):
        holm_tarone([0.1], 0.05, [0.1, 0.2])


def naive_step_down(p_values, level, min_p):
    """Holm–Tarone written the slow, obvious way: the rejected set."""
    remaining = set(range(len(p_values)))
    rejected = set()
    while remaining:
        k = 1
        while sum(min_p[i] <= level / k for i in remaining) > k:
            k += 1
        best = min(remaining, key=lambda i: (p_values[i], i))
        if p_values[best] * k > level:
            break
        rejected.add(best)
        remaining.remove(best)
    return rejected


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.floats(1e-6, 1.0), st.floats(0.0, 1.0)).map(
            lambda t: (max(t[0], t[0] * t[1]), t[0] * t[1] + 1e-9)  # min_p ≤ p
        ),
        max_size=12,
    ),
    st.sampled_from([0.01, 0.04, 0.05]),
)
def test_adjusted_values_reject_exactly_the_step_down_set(pairs, level):
    p_values = [min(1.0, max(p, m)) for p, m in pairs]
    min_p = [min(m, p) for (_, m), p in zip(pairs, p_values, strict=True)]
    adjusted = holm_tarone(p_values, level, min_p)
    assert all(a >= p - 1e-15 for a, p in zip(adjusted, p_values, strict=True))
    ordered = sorted(range(len(p_values)), key=lambda i: p_values[i])
    assert all(adjusted[a] <= adjusted[b] for a, b in itertools.pairwise(ordered))
    by_adjustment = {i for i, a in enumerate(adjusted) if a <= level}
    assert by_adjustment == naive_step_down(p_values, level, min_p)


def test_the_alpha_split():
    assert MODEL_ALPHA_SHARE + CASE_ALPHA_SHARE == pytest.approx(1)
    assert gate_alphas(0.05, True) == (0.04, 0.01)
    assert gate_alphas(0.05, False) == (0.05, 0.0)
    model, case = gate_alphas(0.1, True)
    assert model + case == pytest.approx(0.1)


# --------------------------------------------------------------------------- power


def test_normal_cdf():
    assert normal_cdf(0) == 0.5
    assert normal_cdf(1.959963984540054) == pytest.approx(0.975)
    assert normal_cdf(-10) == pytest.approx(7.62e-24, rel=1e-2)


def simulated_power(cases, repeats, p0, drop, alpha, sims, seed):
    """The model-level test at the level ``gate_power`` assumes, on simulated runs."""
    rng = random.Random(seed)
    best_case = 1 / math.comb(2 * repeats, repeats)
    level = alpha if best_case > CASE_ALPHA_SHARE * alpha else MODEL_ALPHA_SHARE * alpha
    hits = 0
    for _ in range(sims):
        strata = [
            (
                sum(rng.random() < p0 for _ in range(repeats)),
                repeats,
                sum(rng.random() < p0 - drop for _ in range(repeats)),
                repeats,
            )
            for _ in range(cases)
        ]
        hits += stratified_test(strata).p_value <= level
    return hits / sims


@pytest.mark.parametrize(
    ("cases", "repeats", "p0", "drop"),
    [(50, 3, 0.8, 0.15), (200, 1, 0.8, 0.1), (100, 5, 0.9, 0.06), (30, 10, 0.7, 0.1)],
)
def test_the_power_approximation_matches_simulation(cases, repeats, p0, drop):
    predicted = gate_power(cases, repeats, p0, drop)
    simulated = simulated_power(cases, repeats, p0, drop, 0.05, sims=300, seed=cases + repeats)
    assert 0.2 < predicted < 0.98  # a scenario where the comparison means something
    assert simulated == pytest.approx(predicted, abs=0.07)


def test_detectable_drop_and_repeats_needed_agree_with_gate_power():
    drop = detectable_drop(50, 3, 0.8, 0.9)
    assert drop is not None
    assert gate_power(50, 3, 0.8, drop) >= 0.9
    assert gate_power(50, 3, 0.8, drop - 0.002) < 0.9
    # more repeats, more cases and a lower bar all shrink the detectable drop
    assert detectable_drop(50, 10, 0.8, 0.9) < drop
    assert detectable_drop(500, 3, 0.8, 0.9) < drop
    assert detectable_drop(50, 3, 0.8, 0.8) < drop
    # several models: Holm's first step is stricter
    assert detectable_drop(50, 3, 0.8, 0.9, models=3) > drop
    needed = repeats_needed(200, 0.8, 0.05, 0.8)
    assert needed is not None
    assert gate_power(200, needed, 0.8, 0.05) >= 0.8
    assert gate_power(200, needed - 1, 0.8, 0.05) < 0.8
    assert repeats_needed(10, 0.8, 0.02, 0.9, max_repeats=20) is None
    assert detectable_drop(3, 1, 0.5, 0.99) is None  # three coin flips detect nothing


def test_power_arguments_are_checked():
    with pytest.raises(ValueError):
        gate_power(0, 3, 0.8, 0.1)
    with pytest.raises(ValueError):
        gate_power(10, 3, 1.5, 0.1)
    with pytest.raises(ValueError):
        detectable_drop(10, 3, 0.8, 1.0)
    with pytest.raises(ValueError):
        repeats_needed(10, 0.5, 0.6, 0.8)
    assert gate_power(10, 3, 0.8, 0.0) == 0.0


# --------------------------------------------------------------------------- adaptive designs


def adaptive_design(max_repeats, threshold):
    from harness.sequential import SequentialPlan

    return Design.from_counts(SequentialPlan(max_repeats, threshold).outcome_counts())


def run_plan(max_repeats, threshold, p, rng):
    from harness.sequential import SequentialPlan

    plan = SequentialPlan(max_repeats, threshold)
    passes = repeats = 0
    while (batch := plan.next_batch(passes, repeats)) > 0:
        passes += sum(rng.random() < p for _ in range(batch))
        repeats += batch
    return passes, repeats


@given(st.integers(1, 8), st.integers(1, 8), st.data())
def test_fixed_designs_give_the_hypergeometric_test(n1, n2, data):
    x, y = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    for side in ("less", "greater"):
        general = case_test(x, n1, y, n2, Design.fixed(n1), Design.fixed(n2), side)
        assert general[0] == pytest.approx(fisher_one_sided(x, n1, y, n2, side))
        assert general[1] == pytest.approx(min_attainable_p(n1, n2, x + y, side))
        assert case_test(x, n1, y, n2, alternative=side) == pytest.approx(general)


def test_score_distribution_is_a_distribution():
    design = adaptive_design(10, 0.8)
    rng = random.Random(4)
    for _ in range(30):
        (x, n1), (y, n2) = run_plan(10, 0.8, 0.7, rng), run_plan(10, 0.8, 0.7, rng)
        values, probs = score_distribution(design, design, x + y, n1 + n2)
        assert Fraction(y * (n1 + n2) - n2 * (x + y), n1 + n2) in values
        assert math.fsum(probs) == pytest.approx(1.0)
        assert list(values) == sorted(values)


def test_stopping_at_the_first_failure_compares_who_failed_first():
    # t = 1: each run stops at its first failure. Baseline 5/5, current 2 passes then a
    # failure: given 7 passes in 8 repeats, the only other way is the mirror image
    design = adaptive_design(5, 1.0)
    assert case_test(5, 5, 2, 3, design, design) == (0.5, 0.5)
    assert case_test(2, 3, 5, 5, design, design)[0] == 1.0
    # a side whose observed state its design cannot end in is treated as fixed
    assert case_test(3, 5, 2, 5, design, design) == case_test(3, 5, 2, 5)


@pytest.mark.parametrize(("max_repeats", "threshold", "p"), [(10, 0.8, 0.8), (5, 1.0, 0.9)])
def test_adaptive_designs_keep_the_level(max_repeats, threshold, p):
    """With adaptive repeats the hypergeometric test is not valid; the design-aware one is."""
    design = adaptive_design(max_repeats, threshold)
    rng = random.Random(max_repeats)
    sims, hits = 120, 0
    for _ in range(sims):
        strata = [
            (*run_plan(max_repeats, threshold, p, rng), *run_plan(max_repeats, threshold, p, rng))
            for _ in range(120)
        ]
        hits += stratified_test(strata, designs=[(design, design)] * 120).p_value <= 0.05
    assert hits / sims <= upper(0.05, sims)


def upper(alpha, sims):
    return alpha + 3.1 * math.sqrt(alpha * (1 - alpha) / sims)


def test_adaptive_designs_detect_a_drop():
    design = adaptive_design(5, 1.0)
    rng = random.Random(2)
    hits = 0
    for _ in range(40):
        strata = [(*run_plan(5, 1.0, 0.95, rng), *run_plan(5, 1.0, 0.8, rng)) for _ in range(100)]
        result = stratified_test(strata, designs=[(design, design)] * 100)
        hits += result.p_value <= 0.05
    assert hits >= 36


# --------------------------------------------------------------------------- harness power


def test_cli_power_prints_the_detectable_drop_and_the_repeats_needed(capsys):
    from harness.cli import main

    assert main(["power", "--cases", "200", "--repeats", "1", "--pass-rate", "80%"]) == 0
    out = capsys.readouterr().out
    smallest = detectable_drop(200, 1, 0.8, 0.8)
    assert f"80% power: a drop of {smallest * 100:.1f} pp" in out
    assert "90% power: a drop of" in out
    assert main(
        ["power", "--cases", "200", "--repeats", "1", "--pass-rate", "0.8", "--drop", "5pp"]
    ) == 0
    out = capsys.readouterr().out
    needed = repeats_needed(200, 0.8, 0.05, 0.8)
    assert f"80% power: {needed} repeat(s)" in out
    assert main(
        ["power", "--cases", "10", "--repeats", "1", "--pass-rate", "0.8", "--drop", "0.02",
         "--max-repeats", "20", "--power", "0.9"]
    ) == 0
    assert "not within 20 repeats" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeats", "3", "--pass-rate", "0.8"], "--cases is required"),
        (["--cases", "x", "--repeats", "3", "--pass-rate", "0.8"], "--cases must be a whole"),
        (["--cases", "0", "--repeats", "3", "--pass-rate", "0.8"], "--cases must be at least 1"),
        (["--cases", "5", "--repeats", "3", "--pass-rate", "150%"], "--pass-rate must be above"),
        (["--cases", "5", "--repeats", "3", "--pass-rate", "0.5", "--drop", "60pp"], "more than"),
        (["--cases", "5", "--repeats", "3", "--pass-rate", "0.5", "--power", "1"], "--power"),
        (["--cases", "5", "--repeats", "3", "--pass-rate", "0.5", "--alpha", "0.6"], "--alpha"),
    ],
)
def test_cli_power_rejects_bad_input_with_one_line(args, message, capsys):
    from harness.cli import main

    assert main(["power", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness power: ") and message in lines[0]
