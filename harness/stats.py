"""The statistics of the regression gate: exact conditional tests, multiplicity, power.

Pure functions, stdlib only (``math``, ``fractions``, ``statistics``), used by
``harness.report.compare`` and ``harness power``; the reasoning is in ``docs/statistics.md``.

Per case the data are a 2×2 table: the baseline's passes ``x`` of ``n1`` repeats and the
current run's passes ``y`` of ``n2``. Under "no change" (both runs draw each repeat with
the same, unknown pass probability) and given the total ``t = x + y``, ``y`` is
hypergeometric whatever that probability is, so every test here is *conditional* on the
per-case totals and needs no assumption about how flaky a case is:

* ``fisher_one_sided`` — one case: the exact one-sided Fisher test (``P[Y ≤ y]`` for a
  drop, ``P[Y ≥ y]`` for a rise), and ``min_attainable_p``, the smallest p-value a case
  can reach given its totals (Tarone's criterion for which tests can matter at all);
* ``stratified_test`` — one model over all its cases: the sum of the current passes
  ``S = Σ y`` (the Cochran–Mantel–Haenszel statistic stratified by case), one-sided, exact
  (the convolution of the per-case hypergeometric distributions, truncated at the observed
  value) when that is cheap, else the normal approximation with a continuity correction.
  Cases where every repeat passed (or failed) on both sides carry no information and drop
  out;
* ``Design`` — how a run sampled a case: a fixed number of repeats, or adaptive repeats
  (``harness.sequential``), which stop depending on the outcomes. Then the number of repeats
  carries information, so the tests condition on each case's total passes *and* total
  repeats: every pair of pass/fail sequences the two designs could have produced with
  those totals is equally likely under "no change", and the statistic is the current run's
  passes minus their share, ``U = y − n2·t/N``. With fixed repeats on both sides this is
  the hypergeometric test above; ``case_test`` and ``stratified_test`` take the designs;
* ``holm_tarone`` — Holm's step-down adjustment, counting only the hypotheses that could
  still be rejected (Tarone), so untestable cases do not dilute the others;
* ``gate_power``, ``detectable_drop`` and ``repeats_needed`` — the normal-approximation power
  of the model-level test for a suite shape (``harness power``); the scenario is stated on
  ``gate_power``.

The gate's α is split: ``MODEL_ALPHA_SHARE`` of it for the model-level tests (Holm across
models), the rest for the case-level tests (Holm–Tarone across every case × model). When no
case can reach significance at its share, the models get the whole α (``gate_alphas``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

__all__ = [
    "CASE_ALPHA_SHARE",
    "EXACT_BUDGET",
    "EXACT_BUDGET_ADAPTIVE",
    "MODEL_ALPHA_SHARE",
    "Alternative",
    "Design",
    "StratifiedTest",
    "case_test",
    "detectable_drop",
    "fisher_one_sided",
    "gate_alphas",
    "gate_power",
    "holm_tarone",
    "hypergeom_pmf",
    "min_attainable_p",
    "normal_cdf",
    "repeats_needed",
    "score_distribution",
    "stratified_test",
]

Alternative = Literal["less", "greater"]
"""``less``: the current run passes less often (a regression); ``greater``: more often."""

MODEL_ALPHA_SHARE = 0.8
"""The part of α spent on the model-level tests (0.04 of α = 0.05)."""

CASE_ALPHA_SHARE = 1.0 - MODEL_ALPHA_SHARE
"""The part of α spent on the case-level tests (0.01 of α = 0.05), when any can use it."""

EXACT_BUDGET = 200_000
"""The most multiply-adds the exact stratified test may spend (≈ 10–20 ms in CPython);
beyond it the normal approximation is used."""

EXACT_BUDGET_ADAPTIVE = 10_000
"""The same for adaptive designs, whose values are fractions: exact only while the product
of the cases' numbers of possible values stays below it (≈ 30 ms at most)."""

_STANDARD = NormalDist()


def normal_cdf(z: float) -> float:
    """The standard normal distribution function ``Φ(z)``, accurate in the far tails."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


# --------------------------------------------------------------------------- one case


def _check_counts(passes: int, repeats: int, side: str) -> None:
    if repeats < 0 or passes < 0 or passes > repeats:
        raise ValueError(f"{side}: need 0 ≤ passes ≤ repeats, got {passes}/{repeats}")


@lru_cache(maxsize=65_536)
def hypergeom_pmf(n1: int, n2: int, t: int) -> tuple[int, tuple[float, ...]]:
    """The conditional distribution of the current run's passes given the case's total.

    ``P[Y = y] = C(t, y)·C(n1 + n2 − t, n2 − y) / C(n1 + n2, n2)``, computed with exact
    integers and divided once, for ``y`` from ``lo = max(0, t − n1)`` to
    ``hi = min(t, n2)``.

    Args:
        n1: Baseline repeats.
        n2: Current repeats.
        t: Passes on both sides together.

    Returns:
        ``(lo, pmf)`` where ``pmf[i] = P[Y = lo + i]``.

    Raises:
        ValueError: Negative counts or ``t > n1 + n2``.
    """
    total = n1 + n2
    if n1 < 0 or n2 < 0 or t < 0 or t > total:
        raise ValueError(f"bad margins: n1={n1}, n2={n2}, t={t}")
    lo, hi = max(0, t - n1), min(t, n2)
    denom = math.comb(total, n2)
    return lo, tuple(
        math.comb(t, y) * math.comb(total - t, n2 - y) / denom for y in range(lo, hi + 1)
    )


@lru_cache(maxsize=65_536)
def _tail(n1: int, n2: int, t: int, y: int, alternative: Alternative) -> float:
    total = n1 + n2
    lo, hi = max(0, t - n1), min(t, n2)
    ys = range(lo, y + 1) if alternative == "less" else range(y, hi + 1)
    weight = sum(math.comb(t, k) * math.comb(total - t, n2 - k) for k in ys)
    return min(1.0, weight / math.comb(total, n2))


def fisher_one_sided(
    baseline_passes: int,
    baseline_repeats: int,
    current_passes: int,
    current_repeats: int,
    alternative: Alternative = "less",
) -> float:
    """The exact one-sided Fisher test of one case's repeats.

    Args:
        baseline_passes: Passing repeats in the baseline.
        baseline_repeats: Repeats in the baseline.
        current_passes: Passing repeats in the current run.
        current_repeats: Repeats in the current run.
        alternative: ``less`` — ``P[Y ≤ y]``, evidence that the current run passes less
            often; ``greater`` — ``P[Y ≥ y]``.

    Returns:
        The p-value in ``[0, 1]``; 1.0 when either side has no repeats.

    Raises:
        ValueError: Passes outside ``0 … repeats``.
    """
    _check_counts(baseline_passes, baseline_repeats, "baseline")
    _check_counts(current_passes, current_repeats, "current")
    if baseline_repeats == 0 or current_repeats == 0:
        return 1.0
    return _tail(
        baseline_repeats,
        current_repeats,
        baseline_passes + current_passes,
        current_passes,
        alternative,
    )


def min_attainable_p(n1: int, n2: int, t: int, alternative: Alternative = "less") -> float:
    """The smallest one-sided Fisher p-value a case with these margins can reach.

    ``P[Y = lo]`` for ``less`` and ``P[Y = hi]`` for ``greater``; 1.0 for an uninformative
    case (all repeats passed, or all failed, or one side empty). A case whose minimum
    exceeds the level it would be tested at can never be significant, so Tarone's
    procedure leaves it out of the multiplicity count.

    Args:
        n1: Baseline repeats.
        n2: Current repeats.
        t: Passes on both sides together.
        alternative: Which tail.

    Returns:
        The minimum attainable p-value in ``(0, 1]``.
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    _, pmf = hypergeom_pmf(n1, n2, t)
    return pmf[0] if alternative == "less" else pmf[-1]


# --------------------------------------------------------------------------- designs


@dataclass(frozen=True)
class Design:
    """How one run sampled one case: where it could stop, and in how many ways.

    ``endings`` lists ``(passes, repeats, sequences)`` for every state the run can end in:
    with a fixed number ``n`` of repeats, ``(k, n, C(n, k))`` for every ``k``; with adaptive
    repeats, ``SequentialPlan.outcome_counts()``. A run with pass probability ``p`` ends
    in ``(k, n)`` with probability ``sequences · p^k (1 − p)^(n − k)``.

    Attributes:
        endings: The states, sorted, each with its number of sequences.
    """

    endings: tuple[tuple[int, int, int], ...]
    _table: dict[tuple[int, int], int] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._table.update({(k, n): w for k, n, w in self.endings})

    @classmethod
    def fixed(cls, repeats: int) -> Design:
        """``repeats`` repeats, whatever their outcomes."""
        return _fixed_design(repeats)

    @classmethod
    def from_counts(cls, counts: Mapping[tuple[int, int], int]) -> Design:
        """From ``{(passes, repeats): sequences}`` (``SequentialPlan.outcome_counts()``)."""
        return cls(tuple(sorted((k, n, w) for (k, n), w in counts.items() if w > 0)))

    def count(self, passes: int, repeats: int) -> int:
        """Sequences that end in ``(passes, repeats)``; 0 where the run cannot end."""
        return self._table.get((passes, repeats), 0)


@lru_cache(maxsize=256)
def _fixed_design(repeats: int) -> Design:
    return Design(tuple((k, repeats, math.comb(repeats, k)) for k in range(repeats + 1)))


@lru_cache(maxsize=16_384)
def score_distribution(
    baseline: Design, current: Design, passes: int, repeats: int
) -> tuple[tuple[Fraction, ...], tuple[float, ...]]:
    """The null distribution of ``U = y − n2·t/N`` given a case's totals.

    Given ``t`` passes in ``N`` repeats over both runs, every pair of sequences the two
    designs could end with is equally likely under "no change" (each has probability
    ``p^t (1 − p)^(N − t)``), so ``P[(n1, x), (n2, y)] ∝ baseline.count(x, n1) ·
    current.count(y, n2)``.

    Args:
        baseline: The baseline's design.
        current: The current run's design.
        passes: ``t``, passes over both runs.
        repeats: ``N``, repeats over both runs.

    Returns:
        ``(values, probabilities)``, values ascending; empty when no pair fits.
    """
    weights: dict[Fraction, int] = {}
    for (x, n1), w1 in baseline._table.items():
        n2, y = repeats - n1, passes - x
        if n2 < 0 or not 0 <= y <= n2:
            continue
        w2 = current.count(y, n2)
        if w2:
            value = Fraction(y * repeats - n2 * passes, repeats) if repeats else Fraction(0)
            weights[value] = weights.get(value, 0) + w1 * w2
    total = sum(weights.values())
    values = tuple(sorted(weights))
    return values, tuple(weights[v] / total for v in values)


def _score(x: int, n1: int, y: int, n2: int) -> Fraction:
    total = n1 + n2
    return Fraction(y * total - n2 * (x + y), total) if total else Fraction(0)


def case_test(
    baseline_passes: int,
    baseline_repeats: int,
    current_passes: int,
    current_repeats: int,
    baseline: Design | None = None,
    current: Design | None = None,
    alternative: Alternative = "less",
) -> tuple[float, float]:
    """One case's one-sided conditional test, for any designs: ``(p_value, min_p)``.

    With both designs fixed (``None``) this is ``fisher_one_sided`` and
    ``min_attainable_p``; otherwise the tail of ``score_distribution`` at the observed
    ``U``. A side whose observed state its design cannot end in is treated as fixed.

    Args:
        baseline_passes: Passing repeats in the baseline.
        baseline_repeats: Repeats in the baseline.
        current_passes: Passing repeats in the current run.
        current_repeats: Repeats in the current run.
        baseline: The baseline's design (``None``: fixed).
        current: The current run's design (``None``: fixed).
        alternative: ``less`` (a fall) or ``greater`` (a rise).

    Returns:
        The p-value and the smallest p-value these totals allow (Tarone's criterion).
    """
    x, n1, y, n2 = baseline_passes, baseline_repeats, current_passes, current_repeats
    _check_counts(x, n1, "baseline")
    _check_counts(y, n2, "current")
    baseline, current = _designs(x, n1, y, n2, baseline, current)
    if baseline is None and current is None:
        return (
            fisher_one_sided(x, n1, y, n2, alternative),
            min_attainable_p(n1, n2, x + y, alternative),
        )
    if n1 == 0 or n2 == 0:
        return 1.0, 1.0
    values, probs = score_distribution(
        baseline or Design.fixed(n1), current or Design.fixed(n2), x + y, n1 + n2
    )
    observed = _score(x, n1, y, n2)
    if alternative == "less":
        tail = math.fsum(p for v, p in zip(values, probs, strict=True) if v <= observed)
        least = probs[0]
    else:
        tail = math.fsum(p for v, p in zip(values, probs, strict=True) if v >= observed)
        least = probs[-1]
    return min(1.0, tail), least


def _designs(
    x: int, n1: int, y: int, n2: int, baseline: Design | None, current: Design | None
) -> tuple[Design | None, Design | None]:
    """Drop a design that cannot have produced the observed state (treat that side as fixed)."""
    if baseline is not None and not baseline.count(x, n1):
        baseline = None
    if current is not None and not current.count(y, n2):
        current = None
    return baseline, current


# --------------------------------------------------------------------------- one model


@dataclass(frozen=True)
class StratifiedTest:
    """The one-sided stratified (CMH) test of one model over its cases.

    Attributes:
        p_value: The one-sided p-value.
        statistic: ``S``, the current run's passes over the informative cases (with
            adaptive designs: ``Σ U``).
        expected: ``E[S]`` under no change, given every case's totals.
        variance: ``Var[S]`` under no change, given the totals.
        informative: Cases that carry information (some repeats passed and some failed).
        method: ``exact`` (convolution), ``normal`` (approximation) or ``none`` (nothing
            informative: p = 1).
        min_p: The smallest p-value this model could have reached given the totals.
    """

    p_value: float
    statistic: float
    expected: float
    variance: float
    informative: int
    method: Literal["exact", "normal", "none"]
    min_p: float


def _truncated_convolution(pmfs: Sequence[Sequence[float]], cutoff: int) -> float:
    """``P[Σ Z ≤ cutoff]`` for independent ``Z_i ≥ 0`` with ``P[Z_i = j] = pmfs[i][j]``."""
    dist = [1.0]
    for pmf in pmfs:
        size = min(len(dist) + len(pmf) - 1, cutoff + 1)
        new = [0.0] * size
        for j, weight in enumerate(pmf):
            if j >= size:
                break
            span = min(len(dist), size - j)
            new[j : j + span] = [
                s + weight * d for s, d in zip(new[j : j + span], dist[:span], strict=True)
            ]
        dist = new
    return min(1.0, math.fsum(dist))


def _convolution_cost(widths: Sequence[int], cutoff: int) -> int:
    length, cost = 1, 0
    for width in widths:
        cost += min(length, cutoff + 1) * width
        length = min(length + width - 1, cutoff + 1)
    return cost


def stratified_test(
    strata: Iterable[tuple[int, int, int, int]],
    alternative: Alternative = "less",
    *,
    exact_budget: int = EXACT_BUDGET,
    designs: Sequence[tuple[Design | None, Design | None]] | None = None,
) -> StratifiedTest:
    """The one-sided Cochran–Mantel–Haenszel test stratified by case.

    Each stratum is one case's ``(baseline_passes, baseline_repeats, current_passes,
    current_repeats)``. Given each case's total passes the current passes are
    hypergeometric; the statistic is their sum ``S``. The p-value ``P[S ≤ s]`` (``less``)
    or ``P[S ≥ s]`` (``greater``) is computed exactly, by convolving the per-case
    distributions up to the observed value, when that costs at most ``exact_budget``
    multiply-adds, else from the normal approximation with a continuity correction,
    ``Φ((s − E[S] + ½) / √Var[S])``. Strata with both sides empty or no variation carry no
    information and are skipped.

    With ``designs`` (one ``(baseline, current)`` pair per stratum, ``None`` for fixed
    repeats) and any adaptive one among them, each case contributes
    ``U = y − n2·t/N`` with its ``score_distribution`` instead, and ``statistic`` is
    ``Σ U`` (``expected`` its null mean): exact by convolving those distributions when
    that is cheap, else the normal approximation with the same continuity correction of
    ½ (``U`` moves by about one pass at a time; smaller corrections let the false-alarm
    rate creep up to α in simulations).

    Args:
        strata: One 4-tuple of counts per case.
        alternative: ``less`` (a regression) or ``greater`` (an improvement).
        exact_budget: The most multiply-adds the exact computation may spend.
        designs: Per stratum, the two runs' designs (``None``: fixed repeats).

    Returns:
        The ``StratifiedTest``.

    Raises:
        ValueError: Passes outside ``0 … repeats`` in a stratum.
    """
    strata = list(strata)
    if designs is not None and any(a is not None or b is not None for a, b in designs):
        return _general_stratified_test(strata, designs, alternative, exact_budget)
    pmfs: list[tuple[float, ...]] = []
    statistic = 0
    floor = 0  # Σ of the smallest values in the tail's direction
    expected = variance = 0.0
    log_min_p = 0.0
    for x, n1, y, n2 in strata:
        _check_counts(x, n1, "baseline")
        _check_counts(y, n2, "current")
        t, total = x + y, n1 + n2
        if n1 == 0 or n2 == 0 or t == 0 or t == total:
            continue
        lo, pmf = hypergeom_pmf(n1, n2, t)
        hi = lo + len(pmf) - 1
        expected += n2 * t / total
        variance += n1 * n2 * t * (total - t) / (total * total * (total - 1))
        if alternative == "less":
            pmfs.append(pmf)
            statistic += y - lo
            floor += lo
            log_min_p += math.log(pmf[0])
        else:
            pmfs.append(pmf[::-1])
            statistic += hi - y
            floor += hi
            log_min_p += math.log(pmf[-1])
    if not pmfs:
        return StratifiedTest(1.0, 0, 0.0, 0.0, 0, "none", 1.0)
    observed = floor + statistic if alternative == "less" else floor - statistic
    min_p = math.exp(log_min_p)
    # the exact tail is cheap when few values lie on the tail's side: truncate there
    exact = None
    if _convolution_cost([len(p) for p in pmfs], statistic) <= exact_budget:
        exact = _truncated_convolution(pmfs, statistic)
    return _stratified_result(exact, observed, expected, variance, alternative, len(pmfs), min_p)


def _stratified_result(
    exact: float | None,
    observed: float,
    expected: float,
    variance: float,
    alternative: Alternative,
    informative: int,
    min_p: float,
) -> StratifiedTest:
    """The test's result: the exact tail if computed, else the normal approximation (±½)."""
    method: Literal["exact", "normal"] = "exact"
    p_value = exact
    if p_value is None:
        shift = observed - expected if alternative == "less" else expected - observed
        p_value, method = normal_cdf((shift + 0.5) / math.sqrt(variance)), "normal"
    return StratifiedTest(
        p_value=max(min(p_value, 1.0), 0.0),
        statistic=observed,
        expected=expected,
        variance=variance,
        informative=informative,
        method=method,
        min_p=min_p,
    )


def _general_stratified_test(
    strata: Sequence[tuple[int, int, int, int]],
    designs: Sequence[tuple[Design | None, Design | None]],
    alternative: Alternative,
    exact_budget: int,
) -> StratifiedTest:
    """``stratified_test`` on ``Σ U = Σ (y − n2·t/N)`` when some run used adaptive repeats."""
    if len(designs) != len(strata):
        raise ValueError("strata and designs differ in length")
    # each case as Z ≥ 0 whose low end is the tail of interest: U − min U for a fall,
    # max U − U for a rise
    dists: list[tuple[list[Fraction], list[float]]] = []
    cutoff = Fraction(0)
    observed = expected = variance = log_min_p = 0.0
    for (x, n1, y, n2), (d1, d2) in zip(strata, designs, strict=True):
        _check_counts(x, n1, "baseline")
        _check_counts(y, n2, "current")
        if n1 == 0 or n2 == 0:
            continue
        d1, d2 = _designs(x, n1, y, n2, d1, d2)
        values, probs = score_distribution(
            d1 or Design.fixed(n1), d2 or Design.fixed(n2), x + y, n1 + n2
        )
        if len(values) < 2:
            continue  # nothing else could have happened: no information
        score = _score(x, n1, y, n2)
        mean = math.fsum(float(v) * p for v, p in zip(values, probs, strict=True))
        expected += mean
        variance += math.fsum(
            (float(v) - mean) ** 2 * p for v, p in zip(values, probs, strict=True)
        )
        observed += float(score)
        if alternative == "less":
            dists.append(([v - values[0] for v in values], list(probs)))
            cutoff += score - values[0]
        else:
            dists.append(([values[-1] - v for v in reversed(values)], list(reversed(probs))))
            cutoff += values[-1] - score
        log_min_p += math.log(dists[-1][1][0])
    if not dists:
        return StratifiedTest(1.0, 0, 0.0, 0.0, 0, "none", 1.0)
    exact = _fraction_convolution(dists, cutoff, min(exact_budget, EXACT_BUDGET_ADAPTIVE))
    return _stratified_result(
        exact, observed, expected, variance, alternative, len(dists), math.exp(log_min_p)
    )


def _fraction_convolution(
    dists: Sequence[tuple[Sequence[Fraction], Sequence[float]]], cutoff: Fraction, budget: int
) -> float | None:
    """``P[Σ Z ≤ cutoff]`` for independent ``Z_i ≥ 0`` on rational values.

    ``None`` when the partial sums would cost more than ``budget`` operations.
    """
    bound = 1
    for values, _ in dists:  # without truncation there are at most Π |values| sums
        bound *= len(values)
        if bound > budget:
            return None
    sums: dict[Fraction, float] = {Fraction(0): 1.0}
    spent = 0
    for values, probs in dists:
        spent += len(sums) * len(values)
        if spent > budget:
            return None
        grown: dict[Fraction, float] = {}
        for total, weight in sums.items():
            for value, prob in zip(values, probs, strict=True):
                key = total + value
                if key <= cutoff:
                    grown[key] = grown.get(key, 0.0) + weight * prob
        sums = grown
    return min(1.0, math.fsum(sums.values()))


# --------------------------------------------------------------------------- multiplicity


def _tarone_count(sorted_min_p: Sequence[float], level: float) -> int:
    """Tarone's K: the least ``k ≥ 1`` with at most ``k`` hypotheses able to reach ``level/k``."""
    n = len(sorted_min_p)
    low, high = 1, max(1, n)
    while low < high:  # "count(k) ≤ k" is monotone in k
        mid = (low + high) // 2
        if _count_at_most(sorted_min_p, level / mid) <= mid:
            high = mid
        else:
            low = mid + 1
    return low


def _count_at_most(sorted_values: Sequence[float], bound: float) -> int:
    lo, hi = 0, len(sorted_values)
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_values[mid] <= bound:
            lo = mid + 1
        else:
            hi = mid
    return lo


def holm_tarone(
    p_values: Sequence[float],
    level: float,
    min_p: Sequence[float] | None = None,
) -> list[float]:
    """Holm's step-down adjustment at ``level``, counting only testable hypotheses (Tarone).

    At each step the smallest remaining p-value is multiplied by ``K``, the number of
    remaining hypotheses that could still reach significance (Tarone's count from their
    minimum attainable p-values; without ``min_p``, all remaining ones — plain Holm). The
    adjusted values are made non-decreasing in the order of the p-values, so
    ``adjusted ≤ level`` is exactly the step-down procedure's rejection, and the family-wise
    error is at most ``level`` (given the margins the minima come from). The count depends
    on ``level``, so an adjusted value above ``level`` is not an adjusted p-value at other
    levels.

    Args:
        p_values: One p-value per hypothesis.
        level: The family's significance level (its share of α).
        min_p: Each hypothesis's minimum attainable p-value (same order), or ``None``.

    Returns:
        The adjusted p-values, in the input order, capped at 1.
    """
    n = len(p_values)
    if min_p is not None and len(min_p) != n:
        raise ValueError("p_values and min_p differ in length")
    order = sorted(range(n), key=lambda i: p_values[i])
    remaining_min = sorted(min_p) if min_p is not None else None
    adjusted = [1.0] * n
    running = 0.0
    for step, i in enumerate(order):
        if remaining_min is None:
            k = n - step
        else:
            k = _tarone_count(remaining_min, level)
            # the hypothesis leaves the remaining set; take out its minimum
            at = _count_at_most(remaining_min, min_p[i]) - 1  # type: ignore[index]
            remaining_min.pop(max(at, 0))
        running = max(running, min(1.0, k * p_values[i]))
        adjusted[i] = running
        if running >= 1.0:  # every later value is 1 as well
            break
    return adjusted


def gate_alphas(alpha: float, any_case_testable: bool) -> tuple[float, float]:
    """The gate's α split into ``(model_level, case_level)``.

    ``MODEL_ALPHA_SHARE``/``CASE_ALPHA_SHARE`` of α when some case could reach significance
    at the case-level share; otherwise the case family is empty and the models get all of
    α. Which cases can reach significance depends only on the margins (each case's repeats
    and total passes), on which both families are conditioned, so the union of the two
    families errs with probability at most α either way.

    Args:
        alpha: The gate's significance level.
        any_case_testable: Whether some case's minimum attainable p-value is at most
            ``CASE_ALPHA_SHARE · alpha``.

    Returns:
        ``(model_alpha, case_alpha)`` summing to ``alpha``.
    """
    if not any_case_testable:
        return alpha, 0.0
    model_alpha = round(MODEL_ALPHA_SHARE * alpha, 12)  # 0.04, not 0.04000000000000001
    return model_alpha, round(alpha - model_alpha, 12)


# --------------------------------------------------------------------------- power


def _check_shape(cases: int, repeats: int, pass_rate: float, alpha: float, models: int) -> None:
    if cases < 1:
        raise ValueError(f"cases must be at least 1, got {cases}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not 0.0 < pass_rate <= 1.0:
        raise ValueError(f"pass rate must be in (0, 1], got {pass_rate}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if models < 1:
        raise ValueError(f"models must be at least 1, got {models}")


def _model_level(alpha: float, repeats: int, models: int) -> float:
    """The level the first Holm step tests a model at, for ``repeats`` per side."""
    # a case can only be significant if its best table (t = repeats) reaches the case share
    best_case = 1.0 / math.comb(2 * repeats, repeats)
    model_alpha, _ = gate_alphas(alpha, best_case <= CASE_ALPHA_SHARE * alpha)
    return model_alpha / models


def gate_power(
    cases: int,
    repeats: int,
    pass_rate: float,
    drop: float,
    *,
    alpha: float = 0.05,
    models: int = 1,
) -> float:
    """The probability that the model-level test flags a drop (normal approximation).

    The scenario: ``cases`` cases, each with pass probability ``pass_rate`` in the baseline
    and ``pass_rate − drop`` in the current run (a uniform shift), ``repeats`` repeats on
    each side, and the model tested at the first Holm step, ``α_model / models`` (with
    ``α_model`` the model share of α, or all of it when no case could be significant with
    this many repeats). Case-level tests, which can only add detections, are ignored, so
    this is a slight underestimate when they matter. Heterogeneous pass rates (a mix of
    reliable and flaky cases) at the same mean give *more* power, since reliable cases add
    little noise; this is the conservative, flat case.

    With ``D = Σ(y − x)/2`` the test statistic's distance from its null mean, the null
    variance ``V0 = cases · E[t(2R − t)] / (4(2R − 1))`` (``t`` the case's total passes,
    ``R`` the repeats) and the variance under the drop ``V1 = cases · R(p0q0 + p1q1) / 4``,
    the power is ``Φ((cases·R·drop/2 − ½ − z₁₋ₐ √V0) / √V1)``.

    Args:
        cases: Cases in the suite (per model).
        repeats: Repeats per case in each run.
        pass_rate: The baseline pass probability of every case.
        drop: The fall in pass probability (a fraction: 0.1 is 10 points).
        alpha: The gate's α.
        models: Models compared (the Holm correction across them).

    Returns:
        The approximate power in ``[0, 1]``.

    Raises:
        ValueError: An argument out of range.
    """
    _check_shape(cases, repeats, pass_rate, alpha, models)
    if drop <= 0:
        return 0.0
    p0 = pass_rate
    p1 = max(0.0, p0 - drop)
    r = repeats
    mean_t = r * (p0 + p1)
    var_t = r * (p0 * (1 - p0) + p1 * (1 - p1))
    e_t_rest = 2 * r * mean_t - (var_t + mean_t * mean_t)  # E[t(2R − t)]
    v0 = cases * e_t_rest / (4 * (2 * r - 1))
    v1 = cases * var_t / 4
    shift = cases * r * (p0 - p1) / 2
    if v0 <= 0 or v1 <= 0:
        return 1.0 if shift > 0.5 else 0.0
    z = _STANDARD.inv_cdf(1 - _model_level(alpha, repeats, models))
    return normal_cdf((shift - 0.5 - z * math.sqrt(v0)) / math.sqrt(v1))


def detectable_drop(
    cases: int,
    repeats: int,
    pass_rate: float,
    power: float,
    *,
    alpha: float = 0.05,
    models: int = 1,
) -> float | None:
    """The smallest uniform drop that ``gate_power`` detects with at least ``power``.

    Args:
        cases: Cases in the suite.
        repeats: Repeats per case in each run.
        pass_rate: The baseline pass probability of every case.
        power: The wanted power, in ``(0, 1)``.
        alpha: The gate's α.
        models: Models compared.

    Returns:
        The drop as a fraction (to 1e-4), or ``None`` when even a fall to 0 is not
        detected that often.
    """
    _check_shape(cases, repeats, pass_rate, alpha, models)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if gate_power(cases, repeats, pass_rate, pass_rate, alpha=alpha, models=models) < power:
        return None
    low, high = 0.0, pass_rate
    while high - low > 1e-5:
        mid = (low + high) / 2
        if gate_power(cases, repeats, pass_rate, mid, alpha=alpha, models=models) >= power:
            high = mid
        else:
            low = mid
    return high


def repeats_needed(
    cases: int,
    pass_rate: float,
    drop: float,
    power: float,
    *,
    alpha: float = 0.05,
    models: int = 1,
    max_repeats: int = 100,
) -> int | None:
    """The fewest repeats per case with which ``gate_power`` reaches ``power`` for ``drop``.

    Args:
        cases: Cases in the suite.
        pass_rate: The baseline pass probability of every case.
        drop: The fall in pass probability to detect (a fraction).
        power: The wanted power, in ``(0, 1)``.
        alpha: The gate's α.
        models: Models compared.
        max_repeats: The most repeats considered.

    Returns:
        The repeats, or ``None`` when ``max_repeats`` are not enough.
    """
    _check_shape(cases, 1, pass_rate, alpha, models)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if not 0.0 < drop <= pass_rate:
        raise ValueError(f"drop must be in (0, pass rate], got {drop}")
    for repeats in range(1, max_repeats + 1):
        if gate_power(cases, repeats, pass_rate, drop, alpha=alpha, models=models) >= power:
            return repeats
    return None
