"""The baseline comparison: what changed between two run documents, and whether it is noise.

``compare(baseline, current)`` matches rows by ``(record["case"], model)`` and gives:

* per case and model — the pass rate over repeats on each side (an error is a failure),
  a status (``regression``: passed → failed, ``fix``: failed → passed, ``new``, ``removed``,
  ``unchanged-pass``, ``unchanged-fail``) and an exact one-sided Fisher test on the
  passes/fails of the repeats, in the direction the pass rate moved, with its Holm–Tarone
  adjusted p-value; ``significant`` means significant *after* that correction;
* per model — over the cases present in both runs, the item-level pass rate on each side
  and its change, and a one-sided Cochran–Mantel–Haenszel test stratified by case on the
  repeats (``harness.stats.stratified_test``: exact when cheap, else normal with a
  continuity correction), Holm-adjusted across models; plus the counts of regressions,
  fixes, new and removed cases and the change in p50 latency and in cost;
* ``significant_regressions`` — the gate: every model whose pass rate fell significantly and
  every case that went pass → fail with a significant fall, each with a one-line reason.

**What α means.** Under "no real change" (each case's repeats drawn with the same pass
probability in both runs, however flaky), the gate fails with probability at most α,
over all models and cases together. α is split: ``MODEL_ALPHA_SHARE`` (0.8) for the
model-level tests, Holm across models, and the rest for the case-level tests, Holm across
every case × model, counting only cases that could reach significance at all (Tarone).
When no case can (e.g. fewer than five repeats), the models get all of α. Every test is
conditional on each case's total passes, so the split and the counts depend only on those
totals and the bound holds exactly for the exact tests. Only a fall in pass rate can fail
the gate; rises are tested the same way, separately, for the reports (``fix
(significant)``, ``improvement``). See ``docs/statistics.md``.

**Adaptive repeats** (items with ``max_repeats``, ``stopped`` and ``confidence``): how many
repeats ran depends on their outcomes, so a case whose runs share a plan is tested given its
total passes *and* total repeats (``harness.stats.Design``); a case adaptive in one run only
(or under other settings) is tested on the first repeats both runs always ran, and
``Comparison.notes`` says so.

``fisher_exact`` (two-sided) and ``mcnemar_exact`` are kept for callers; the gate no longer
uses them. ``format_table`` renders the comparison as plain text for ``harness compare``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from tabulate import tabulate

from harness.report.document import case_key
from harness.report.formatting import ms, percent, points, signed, usd
from harness.report.formatting import p_text as format_p
from harness.report.summary import model_summaries
from harness.results import RunDocument
from harness.sequential import SequentialPlan
from harness.stats import (
    CASE_ALPHA_SHARE,
    Alternative,
    Design,
    case_test,
    gate_alphas,
    holm_tarone,
    stratified_test,
)

__all__ = [
    "CASE_HEADERS",
    "MODEL_HEADERS",
    "CaseChange",
    "Comparison",
    "ModelChange",
    "Regression",
    "alpha_sentence",
    "case_rows",
    "changed_cases",
    "compare",
    "fisher_exact",
    "format_p",
    "format_table",
    "mcnemar_exact",
    "model_rows",
]

CaseStatus = Literal["regression", "fix", "new", "removed", "unchanged-pass", "unchanged-fail"]
Direction = Literal["regression", "improvement", "unchanged"]


# --------------------------------------------------------------------------- statistics


def fisher_exact(table: tuple[tuple[int, int], tuple[int, int]]) -> float:
    """Two-sided Fisher exact test on a 2×2 table of counts.

    The p-value is the sum of the hypergeometric probabilities (margins fixed) of every
    table at most as likely as the observed one. Probabilities are compared as exact
    integers, so ties are never lost to rounding.

    Args:
        table: ``((a, b), (c, d))``, e.g. ``((passes, fails) baseline, (passes, fails) current)``.

    Returns:
        The p-value in ``[0, 1]``; 1.0 for an empty table.

    Raises:
        ValueError: A count is negative.
    """
    (a, b), (c, d) = table
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be non-negative: {table!r}")
    row1, col1, total = a + b, a + c, a + b + c + d
    if total == 0:
        return 1.0
    low, high = max(0, col1 - (total - row1)), min(row1, col1)

    def weight(x: int) -> int:
        # proportional to P[X = x]; the common denominator is comb(total, col1)
        return math.comb(row1, x) * math.comb(total - row1, col1 - x)

    observed = weight(a)
    tail = sum(w for w in (weight(x) for x in range(low, high + 1)) if w <= observed)
    return min(1.0, float(Fraction(tail, math.comb(total, col1))))


def mcnemar_exact(b: int, c: int) -> float:
    """Exact (binomial) McNemar test on the discordant pairs of a paired comparison.

    ``p = min(1, 2·P[X ≤ min(b, c)])`` with ``X ~ Binomial(b + c, 1/2)``; 1.0 when there
    are no discordant pairs.

    Args:
        b: Pairs that went pass → fail.
        c: Pairs that went fail → pass.

    Returns:
        The two-sided p-value in ``[0, 1]``.

    Raises:
        ValueError: A count is negative.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative: b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, float(Fraction(2 * tail, 2**n)))


# --------------------------------------------------------------------------- result types


def _case_verdict(status: str, moved: str | None, significant: bool) -> str:
    """The case's label in every report (see ``CaseChange.verdict``)."""
    if status in ("new", "removed"):
        return status
    if significant and moved == "less":
        return "regression (significant)" if status == "regression" else "fell (significant)"
    if significant and moved == "greater":
        return "fix (significant)" if status == "fix" else "rose (significant)"
    if moved is not None or status in ("regression", "fix"):
        return "changed, not significant"
    return "unchanged"


@dataclass(frozen=True)
class CaseChange:
    """One (case, model) row of the comparison.

    Attributes:
        case: The matrix row key (``record["case"]``).
        model: The model alias.
        status: ``regression``, ``fix``, ``new``, ``removed``, ``unchanged-pass`` or
            ``unchanged-fail`` (from the item outcomes).
        baseline_pass_rate: Passes / repeats in the baseline; ``None`` when absent there.
        current_pass_rate: Passes / repeats in the current run; ``None`` when absent.
        p_value: One-sided exact Fisher test on the repeats, in the direction the pass rate
            moved (``P[Y ≤ y]`` after a fall, ``P[Y ≥ y]`` after a rise); 1.0 when it did
            not move; ``None`` for new and removed cases.
        significant: Significant after correction: ``adjusted_p_value ≤ alpha``.
        baseline_passes: Passing repeats in the baseline (0 when absent).
        baseline_repeats: Repeats in the baseline (0 when absent).
        current_passes: Passing repeats in the current run (0 when absent).
        current_repeats: Repeats in the current run (0 when absent).
        adjusted_p_value: ``p_value`` after the Holm–Tarone correction across every case ×
            model, on the scale of the gate's α (``None`` for new and removed cases).
    """

    case: str
    model: str
    status: CaseStatus
    baseline_pass_rate: float | None
    current_pass_rate: float | None
    p_value: float | None
    significant: bool
    baseline_passes: int = 0
    baseline_repeats: int = 0
    current_passes: int = 0
    current_repeats: int = 0
    adjusted_p_value: float | None = None

    @property
    def moved(self) -> Alternative | None:
        """``less`` when the pass rate fell, ``greater`` when it rose, else ``None``."""
        if self.baseline_pass_rate is None or self.current_pass_rate is None:
            return None
        old = self.baseline_passes * self.current_repeats
        new = self.current_passes * self.baseline_repeats
        return "less" if new < old else "greater" if new > old else None

    @property
    def verdict(self) -> str:
        """The label the reports show for this row.

        ``regression (significant)`` / ``fix (significant)``; ``fell (significant)`` /
        ``rose (significant)`` for a significant move that did not flip the item;
        ``changed, not significant``; ``unchanged``; ``new``; ``removed``.
        """
        return _case_verdict(self.status, self.moved, self.significant)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``Comparison.to_dict()["cases"]`` (keys are only ever added)."""
        return {
            "case": self.case,
            "model": self.model,
            "status": self.status,
            "baseline_pass_rate": self.baseline_pass_rate,
            "current_pass_rate": self.current_pass_rate,
            "p_value": self.p_value,
            "significant": self.significant,
            "adjusted_p_value": self.adjusted_p_value,
            "verdict": self.verdict,
            "baseline_passes": self.baseline_passes,
            "baseline_repeats": self.baseline_repeats,
            "current_passes": self.current_passes,
            "current_repeats": self.current_repeats,
        }


@dataclass(frozen=True)
class ModelChange:
    """One model's change between the runs (pass rates over the cases both runs have).

    Attributes:
        model: The model alias.
        baseline_pass_rate: Item pass rate in the baseline over the shared cases (``None``
            when there are none).
        current_pass_rate: The same in the current run.
        delta: ``current_pass_rate - baseline_pass_rate`` (``None`` without shared cases).
        p_value: The one-sided stratified (CMH) test on the repeats of the shared cases, in
            the direction the passes moved; 1.0 when they did not move.
        significant: Significant after correction: ``adjusted_p_value ≤ alpha``.
        direction: ``regression`` / ``improvement`` when significant, else ``unchanged``.
        regressions: Cases that went passed → failed.
        fixes: Cases that went failed → passed.
        new: Cases only in the current run.
        removed: Cases only in the baseline.
        latency_p50_delta_ms: Current minus baseline p50 latency over the model's records.
        cost_delta_usd: Current minus baseline cost; ``None`` when either side is unpriced.
        shared: Number of cases present in both runs.
        adjusted_p_value: ``p_value`` after Holm across models, on the scale of α.
        method: How the p-value was computed: ``exact``, ``normal`` or ``none`` (no case
            informs the test: every repeat passed, or every one failed, on both sides).
        informative: Shared cases that inform the test.
        baseline_answer_rate: Passing repeats / repeats in the baseline over shared cases.
        current_answer_rate: The same in the current run.
        moved: ``less`` / ``greater`` when the current passes fell / rose against their
            expectation given each case's total, else ``None``.
    """

    model: str
    baseline_pass_rate: float | None
    current_pass_rate: float | None
    delta: float | None
    p_value: float
    significant: bool
    direction: Direction
    regressions: int
    fixes: int
    new: int
    removed: int
    latency_p50_delta_ms: float | None
    cost_delta_usd: float | None
    shared: int = 0
    adjusted_p_value: float = 1.0
    method: str = "none"
    informative: int = 0
    baseline_answer_rate: float | None = None
    current_answer_rate: float | None = None
    moved: Alternative | None = None

    @property
    def verdict(self) -> str:
        """The label the reports show for this model.

        ``regression (significant)``, ``improvement (significant)``, ``changed, not
        significant`` or ``unchanged``.
        """
        if self.direction != "unchanged":
            return f"{self.direction} (significant)"
        if self.moved is not None or self.regressions or self.fixes:
            return "changed, not significant"
        return "unchanged"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``Comparison.to_dict()["models"]`` (keys are only ever added)."""
        return {
            "model": self.model,
            "baseline_pass_rate": self.baseline_pass_rate,
            "current_pass_rate": self.current_pass_rate,
            "delta": self.delta,
            "p_value": self.p_value,
            "significant": self.significant,
            "direction": self.direction,
            "regressions": self.regressions,
            "fixes": self.fixes,
            "new": self.new,
            "removed": self.removed,
            "latency_p50_delta_ms": self.latency_p50_delta_ms,
            "cost_delta_usd": self.cost_delta_usd,
            "adjusted_p_value": self.adjusted_p_value,
            "verdict": self.verdict,
            "method": self.method,
            "informative": self.informative,
            "shared": self.shared,
            "baseline_answer_rate": self.baseline_answer_rate,
            "current_answer_rate": self.current_answer_rate,
        }


@dataclass(frozen=True)
class Regression:
    """A significant regression: a whole model (``case is None``) or one case of a model.

    Attributes:
        model: The model alias.
        case: The case key, or ``None`` for a model-level regression.
        reason: One line saying what fell and how sure we are, e.g.
            ``"pass rate 92.0% → 71.0% (CMH p=0.004, adjusted p=0.008)"``.
    """

    model: str
    case: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{"model", "case", "reason"}``."""
        return {"model": self.model, "case": self.case, "reason": self.reason}


@dataclass(frozen=True)
class Comparison:
    """The result of ``compare``: per-model and per-case changes and the significant regressions.

    Attributes:
        alpha: The gate's significance level: with no real change, the chance that
            ``significant_regressions`` is non-empty is at most ``alpha``.
        models: One entry per model of either run (current run's order, then removed models).
        cases: One entry per (case, model) of either run (current run's order, then removed).
        significant_regressions: Model-level regressions first, then case-level ones.
        alpha_models: The part of ``alpha`` the model-level tests were given.
        alpha_cases: The part the case-level tests were given (0 when no case could
            reach significance, e.g. with fewer than five repeats).
        notes: Caveats about how cases were compared (adaptive repeats in one run only).
    """

    alpha: float
    models: list[ModelChange] = field(default_factory=list)
    cases: list[CaseChange] = field(default_factory=list)
    significant_regressions: list[Regression] = field(default_factory=list)
    alpha_models: float | None = None
    alpha_cases: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_significant_regression(self) -> bool:
        """Whether any model or case regressed significantly: the gate's verdict."""
        return bool(self.significant_regressions)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data.

        ``{"alpha", "models", "cases", "significant_regressions", "alpha_models",
        "alpha_cases", "notes"}`` (the last three added with the corrected gate; nothing
        is removed).
        """
        return {
            "alpha": self.alpha,
            "models": [m.to_dict() for m in self.models],
            "cases": [c.to_dict() for c in self.cases],
            "significant_regressions": [r.to_dict() for r in self.significant_regressions],
            "alpha_models": self.alpha_models,
            "alpha_cases": self.alpha_cases,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- gathering


@dataclass
class _Row:
    """What one run says about one (case, model)."""

    passes: int = 0
    repeats: int = 0
    outcomes: list[bool] = field(default_factory=list)  # item outcomes, when items are there
    by_repeat: dict[int, bool] = field(default_factory=dict)  # record outcomes by index
    plan: tuple[int, float, float] | None = None  # adaptive: (max_repeats, threshold, c)

    def first(self, count: int) -> int | None:
        """Passes among repeats ``0 … count − 1``; ``None`` unless all of them are recorded."""
        if count > len(self.by_repeat) or any(r not in self.by_repeat for r in range(count)):
            return None
        return sum(self.by_repeat[r] for r in range(count))

    @property
    def passed(self) -> bool:
        """The item outcome if recorded, else: every repeat passed."""
        if self.outcomes:
            return all(self.outcomes)
        return self.repeats > 0 and self.passes == self.repeats

    @property
    def pass_rate(self) -> float | None:
        return self.passes / self.repeats if self.repeats else None


def _row_key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return str(entry.get("case") or case_key(entry)), str(entry.get("model"))


def _rows(document: RunDocument) -> dict[tuple[str, str], _Row]:
    """(case, model) → passes and repeats from the records, outcome from the items."""
    rows: dict[tuple[str, str], _Row] = {}
    for record in document.get("records", []):
        case = record.get("case")
        key = (
            case if type(case) is str and case else _row_key(record)[0],
            str(record.get("model")),
        )
        row = rows.get(key)
        if row is None:
            row = rows[key] = _Row()
        row.repeats += 1
        ok = bool(record.get("passed")) and not record.get("error")
        row.passes += ok
        index = record.get("repeat")
        if type(index) is int:
            row.by_repeat[index] = ok
    for item in document.get("items", []):
        key = _row_key(item)
        row = rows.setdefault(key, _Row())
        row.outcomes.append(item.get("outcome") == "passed")
        if row.repeats == 0:  # an item without records (a trimmed file): use its counts
            row.repeats = int(item.get("repeats") or 0)
            row.passes = min(int(item.get("passes") or 0), row.repeats)
        row.plan = row.plan or _adaptive_plan(item)
    return rows


def _adaptive_plan(item: Mapping[str, Any]) -> tuple[int, float, float] | None:
    """``(max_repeats, threshold, confidence)`` of an item that ran adaptive repeats."""
    if not item.get("stopped"):
        return None
    try:
        plan = (int(item["max_repeats"]), float(item["threshold"]), float(item["confidence"]))
        SequentialPlan(*plan)
    except (KeyError, TypeError, ValueError):
        return None
    return plan


@lru_cache(maxsize=256)
def _design(plan: tuple[int, float, float]) -> Design:
    return Design.from_counts(SequentialPlan(*plan).outcome_counts())


@lru_cache(maxsize=256)
def _guaranteed(plan: tuple[int, float, float] | None, repeats: int) -> int:
    """Repeats a design always runs: all of them when fixed, else the plan's first batch."""
    return repeats if plan is None else SequentialPlan(*plan).next_batch(0, 0)


def _ordered(*keysets: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for keys in keysets:
        for key in keys:
            seen.setdefault(key, None)
    return list(seen)


# --------------------------------------------------------------------------- testing


def _status(was_passing: bool, is_passing: bool) -> CaseStatus:
    if was_passing:
        return "unchanged-pass" if is_passing else "regression"
    return "fix" if is_passing else "unchanged-fail"


_SIDES: tuple[Alternative, Alternative] = ("less", "greater")


@dataclass
class _Pair:
    """One (case, model) present in both runs, and its one-sided tests.

    The counts tested (``x, n1, y, n2``) are the rows' own, except when the runs used
    different designs (adaptive repeats in one, fixed or another plan in the other): then
    both are cut to the first repeats both designs always run (``truncated``).
    """

    key: tuple[str, str]
    x: int
    n1: int
    y: int
    n2: int
    design: Design | None = None  # both runs' adaptive design, when they share one
    truncated: bool = False
    moved: Alternative | None = None
    p: dict[str, float] = field(default_factory=dict)  # per tail; 1.0 away from the move
    min_p: dict[str, float] = field(default_factory=dict)
    adjusted: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, key: tuple[str, str], old: _Row, new: _Row) -> _Pair:
        pair = cls(key, old.passes, old.repeats, new.passes, new.repeats)
        # the direction is the rows' own, whatever is tested
        before, after = old.passes * new.repeats, new.passes * old.repeats
        pair.moved = "less" if after < before else "greater" if after > before else None
        if old.plan is not None and old.plan == new.plan:
            pair.design = _design(old.plan)
        elif old.plan is not None or new.plan is not None:
            common = min(_guaranteed(old.plan, old.repeats), _guaranteed(new.plan, new.repeats))
            x, y = old.first(common), new.first(common)
            if x is not None and y is not None:
                pair.x, pair.n1, pair.y, pair.n2 = x, common, y, common
                pair.truncated = True
            # else: the conditional test with each side's own design (valid, less power)
        return pair

    def designs(self, old: _Row, new: _Row) -> tuple[Design | None, Design | None]:
        if self.design is not None:
            return self.design, self.design
        if self.truncated:
            return None, None
        return (
            _design(old.plan) if old.plan else None,
            _design(new.plan) if new.plan else None,
        )

    def test(self, old: _Row, new: _Row) -> None:
        baseline, current = self.designs(old, new)
        for side in _SIDES:
            p_value, least = case_test(
                self.x, self.n1, self.y, self.n2, baseline, current, alternative=side
            )
            self.min_p[side] = least
            self.p[side] = p_value if side == self.moved else 1.0


@dataclass
class _ModelTest:
    """One model's stratified tests, one per tail (1.0 away from the move)."""

    moved: Alternative | None = None
    p: dict[str, float] = field(default_factory=dict)
    min_p: dict[str, float] = field(default_factory=dict)
    adjusted: dict[str, float] = field(default_factory=dict)
    method: str = "none"
    informative: int = 0


def _model_test(
    pairs: Sequence[_Pair], designs: Sequence[tuple[Design | None, Design | None]]
) -> _ModelTest:
    strata = [(p.x, p.n1, p.y, p.n2) for p in pairs]
    adaptive = any(a is not None or b is not None for a, b in designs)
    out = _ModelTest()
    # which way did the passes move against their expectation given the totals?
    probe = stratified_test(strata, "less", designs=designs if adaptive else None, exact_budget=0)
    if probe.statistic < probe.expected - 1e-9:
        out.moved = "less"
    elif probe.statistic > probe.expected + 1e-9:
        out.moved = "greater"
    out.informative = probe.informative
    for side in _SIDES:
        if side == out.moved:
            result = stratified_test(strata, side, designs=designs if adaptive else None)
            out.p[side], out.min_p[side] = result.p_value, result.min_p
            out.method = result.method
        else:
            out.p[side] = 1.0
            out.min_p[side] = math.exp(
                sum(math.log(p.min_p[side]) for p in pairs)
            )  # the product of the cases' minima: every case at its extreme
    return out


def _adjust(
    p_values: Sequence[float], min_p: Sequence[float], level: float, alpha: float
) -> list[float]:
    """Holm–Tarone at the family's ``level``, rescaled so that ``≤ alpha`` means rejected."""
    if level <= 0:
        return [1.0] * len(p_values)
    scale = alpha / level  # ≥ 1; the max() keeps rounding from dipping below the raw p
    adjusted = holm_tarone(p_values, level, min_p)
    return [min(1.0, max(p, a * scale)) for p, a in zip(p_values, adjusted, strict=True)]


def _families(
    pairs: Sequence[_Pair], models: Mapping[str, _ModelTest], alpha: float
) -> tuple[float, float]:
    """Adjust every case and model test, per tail; return the regression tail's α split."""
    split = (alpha, 0.0)
    for side in _SIDES:
        case_min = [p.min_p[side] for p in pairs]
        testable = any(m <= CASE_ALPHA_SHARE * alpha for m in case_min)
        model_alpha, case_alpha = gate_alphas(alpha, testable)
        if side == "less":
            split = (model_alpha, case_alpha)
        adjusted = _adjust([p.p[side] for p in pairs], case_min, case_alpha, alpha)
        for pair, value in zip(pairs, adjusted, strict=True):
            pair.adjusted[side] = value
        tests = list(models.values())
        adjusted = _adjust(
            [m.p[side] for m in tests], [m.min_p[side] for m in tests], model_alpha, alpha
        )
        for test, value in zip(tests, adjusted, strict=True):
            test.adjusted[side] = value
    return split


# --------------------------------------------------------------------------- comparing


def _case_change(
    key: tuple[str, str], old: _Row | None, new: _Row | None, pair: _Pair | None, alpha: float
) -> CaseChange:
    case, model = key
    status: CaseStatus
    p_value = adjusted = None
    if old is None:
        status = "new"
    elif new is None:
        status = "removed"
    else:
        status = _status(old.passed, new.passed)
        p_value = adjusted = 1.0
        if pair is not None and pair.moved is not None:
            p_value, adjusted = pair.p[pair.moved], pair.adjusted[pair.moved]
    return CaseChange(
        case=case,
        model=model,
        status=status,
        baseline_pass_rate=old.pass_rate if old else None,
        current_pass_rate=new.pass_rate if new else None,
        p_value=p_value,
        significant=adjusted is not None and adjusted <= alpha,
        baseline_passes=old.passes if old else 0,
        baseline_repeats=old.repeats if old else 0,
        current_passes=new.passes if new else 0,
        current_repeats=new.repeats if new else 0,
        adjusted_p_value=adjusted,
    )


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def _model_change(
    model: str,
    changes: list[CaseChange],
    test: _ModelTest,
    old_summary: Mapping[str, Any],
    new_summary: Mapping[str, Any],
    alpha: float,
) -> ModelChange:
    shared = [c for c in changes if c.status not in ("new", "removed")]
    old_passed = sum(c.status in ("unchanged-pass", "regression") for c in shared)
    new_passed = sum(c.status in ("unchanged-pass", "fix") for c in shared)
    old_rate = old_passed / len(shared) if shared else None
    new_rate = new_passed / len(shared) if shared else None
    old_repeats = sum(c.baseline_repeats for c in shared)
    new_repeats = sum(c.current_repeats for c in shared)
    p_value = adjusted = 1.0
    if test.moved is not None:
        p_value, adjusted = test.p[test.moved], test.adjusted[test.moved]
    significant = adjusted <= alpha
    direction: Direction = "unchanged"
    if significant:
        direction = "regression" if test.moved == "less" else "improvement"
    return ModelChange(
        model=model,
        baseline_pass_rate=old_rate,
        current_pass_rate=new_rate,
        delta=_delta(new_rate, old_rate),
        p_value=p_value,
        significant=significant,
        direction=direction,
        regressions=sum(c.status == "regression" for c in changes),
        fixes=sum(c.status == "fix" for c in changes),
        new=sum(c.status == "new" for c in changes),
        removed=sum(c.status == "removed" for c in changes),
        latency_p50_delta_ms=_delta(
            new_summary.get("latency_p50_ms"), old_summary.get("latency_p50_ms")
        ),
        cost_delta_usd=_delta(new_summary.get("cost_usd"), old_summary.get("cost_usd")),
        shared=len(shared),
        adjusted_p_value=adjusted,
        method=test.method,
        informative=test.informative,
        baseline_answer_rate=(
            sum(c.baseline_passes for c in shared) / old_repeats if old_repeats else None
        ),
        current_answer_rate=(
            sum(c.current_passes for c in shared) / new_repeats if new_repeats else None
        ),
        moved=test.moved,
    )


def _p_pair(p_value: float | None, adjusted: float | None) -> str:
    """``p=0.004, adjusted p=0.012`` — the raw and the corrected p-value."""
    return f"{format_p(p_value)}, adjusted {format_p(adjusted)}"


def _significant_regressions(
    models: list[ModelChange], cases: list[CaseChange]
) -> list[Regression]:
    out = [
        Regression(
            model=m.model,
            case=None,
            reason=(
                f"pass rate {percent(m.baseline_pass_rate)} → {percent(m.current_pass_rate)} "
                f"(CMH {_p_pair(m.p_value, m.adjusted_p_value)})"
            ),
        )
        for m in models
        if m.direction == "regression"
    ]
    out.extend(
        Regression(
            model=c.model,
            case=c.case,
            reason=(
                f"passed {c.baseline_passes}/{c.baseline_repeats} → "
                f"{c.current_passes}/{c.current_repeats} repeats "
                f"(Fisher {_p_pair(c.p_value, c.adjusted_p_value)})"
            ),
        )
        for c in cases
        if c.status == "regression" and c.significant and c.moved == "less"
    )
    return out


def compare(
    baseline: RunDocument, current: RunDocument, *, alpha: float = 0.05
) -> Comparison:
    """Compare a run document with a baseline run document.

    Args:
        baseline: The earlier run (a loaded ``results.json``).
        current: The run under review.
        alpha: The gate's significance level: with no real change in any model or case,
            the comparison reports a significant regression with probability at most
            ``alpha`` (see the module docstring for how it is split).

    Returns:
        The ``Comparison``; see the module docstring for what it holds.

    Raises:
        ValueError: ``alpha`` is not strictly between 0 and 1.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    old_rows, new_rows = _rows(baseline), _rows(current)
    keys = _ordered(new_rows, old_rows)
    pairs: dict[tuple[str, str], _Pair] = {}
    by_model: dict[str, list[tuple[_Pair, tuple[Design | None, Design | None]]]] = {}
    for key in keys:
        old, new = old_rows.get(key), new_rows.get(key)
        if old is not None and new is not None:
            pair = _Pair.of(key, old, new)
            pair.test(old, new)
            pairs[key] = pair
            by_model.setdefault(key[1], []).append((pair, pair.designs(old, new)))
    old_summaries = {s["model"]: s for s in model_summaries(baseline)}
    new_summaries = {s["model"]: s for s in model_summaries(current)}
    model_names = list(dict.fromkeys([*new_summaries, *old_summaries, *(k[1] for k in keys)]))
    tests = {
        name: _model_test(
            [pair for pair, _ in by_model.get(name, [])],
            [designs for _, designs in by_model.get(name, [])],
        )
        for name in model_names
    }
    alpha_models, alpha_cases = _families(list(pairs.values()), tests, alpha)
    cases = [_case_change(k, old_rows.get(k), new_rows.get(k), pairs.get(k), alpha) for k in keys]
    per_model: dict[str, list[CaseChange]] = {name: [] for name in model_names}
    for change in cases:
        per_model[change.model].append(change)
    models = [
        _model_change(
            name,
            per_model[name],
            tests[name],
            old_summaries.get(name, {}),
            new_summaries.get(name, {}),
            alpha,
        )
        for name in model_names
    ]
    return Comparison(
        alpha=alpha,
        models=models,
        cases=cases,
        significant_regressions=_significant_regressions(models, cases),
        alpha_models=alpha_models,
        alpha_cases=alpha_cases,
        notes=_notes(pairs.values(), old_rows, new_rows),
    )


def _notes(
    pairs: Iterable[_Pair],
    old_rows: Mapping[tuple[str, str], _Row],
    new_rows: Mapping[tuple[str, str], _Row],
) -> list[str]:
    """Say so when cases ran adaptive repeats in one run and not the same way in the other."""
    cut = mixed = 0
    for pair in pairs:
        old, new = old_rows[pair.key], new_rows[pair.key]
        if old.plan != new.plan:
            cut += pair.truncated
            mixed += not pair.truncated
    notes = []
    if cut:
        notes.append(
            f"{cut} case(s) ran adaptive repeats in one run only (or with other settings): "
            "they are tested on the first repeats both runs always ran"
        )
    if mixed:
        notes.append(
            f"{mixed} case(s) ran adaptive repeats in one run only and lack per-repeat records: "
            "they are tested on their totals given how many repeats each run made "
            "(valid, but with little power)"
        )
    return notes


# --------------------------------------------------------------------------- plain text


def alpha_sentence(alpha: float) -> str:
    """What α promises, in one sentence, for the verdict lines of every report."""
    return (
        f"α={alpha:g}: a run with no real change fails this gate with probability at most "
        f"{alpha * 100:g}%"
    )


MODEL_HEADERS = (
    "model",
    "baseline",
    "current",
    "change",
    "CMH p",
    "adj. p",
    "verdict",
    "regressed",
    "fixed",
    "new",
    "removed",
    "Δ p50 ms",
    "Δ cost",
)
"""Columns of ``model_rows``: the per-model comparison table of every output format.

``CMH p`` is the one-sided stratified test's p-value, ``adj. p`` the same after Holm across
models, on the scale of α; the verdict is ``regression (significant)`` when ``adj. p ≤ α``.
"""

CASE_HEADERS = ("case", "model", "status", "baseline", "current", "Fisher p", "adj. p", "verdict")
"""Columns of ``case_rows``: the changed cases of every output format."""


def _bare_ms(value: float) -> str:
    return ms(value, unit=False)


def model_rows(
    comparison: Comparison,
    escape: Callable[[str], str] = str,
    strong: Callable[[str], str] = str,
) -> list[list[str]]:
    """The per-model comparison rows, formatted.

    ``escape`` is applied to model names and ``strong`` emphasises a regression verdict
    (the markdown report passes its escaper and ``**…**``).
    """
    return [
        [
            escape(m.model),
            percent(m.baseline_pass_rate),
            percent(m.current_pass_rate),
            points(m.delta),
            format_p(m.p_value),
            format_p(m.adjusted_p_value),
            strong(m.verdict) if m.direction == "regression" else m.verdict,
            str(m.regressions),
            str(m.fixes),
            str(m.new),
            str(m.removed),
            signed(m.latency_p50_delta_ms, _bare_ms),
            signed(m.cost_delta_usd, usd),
        ]
        for m in comparison.models
    ]


def changed_cases(comparison: Comparison) -> list[CaseChange]:
    """The cases worth listing: every flip (regression, fix) and every significant move.

    Significant regressions first, then the other regressions, then significant moves
    that did not flip the item, then fixes; run order within each group.
    """

    def rank(c: CaseChange) -> int:
        if c.status == "regression":
            return 0 if c.significant else 1
        return 2 if c.status != "fix" else 3 if c.significant else 4

    listed = [c for c in comparison.cases if c.status in ("regression", "fix") or c.significant]
    return sorted(listed, key=rank)


def case_rows(
    cases: Sequence[CaseChange],
    escape: Callable[[str], str] = str,
    strong: Callable[[str], str] = str,
) -> list[list[str]]:
    """The rows of ``CASE_HEADERS`` for ``cases`` (e.g. ``changed_cases(comparison)``)."""
    return [
        [
            escape(c.case),
            escape(c.model),
            c.status,
            f"{c.baseline_passes}/{c.baseline_repeats}",
            f"{c.current_passes}/{c.current_repeats}",
            format_p(c.p_value),
            format_p(c.adjusted_p_value),
            strong(c.verdict) if c.significant and c.moved == "less" else c.verdict,
        ]
        for c in cases
    ]


def format_table(comparison: Comparison) -> str:
    """The comparison as plain text (tabulate ``simple``) for ``harness compare``.

    A per-model table (pass rates, change, CMH p and adjusted p, verdict, counts, latency
    and cost deltas), then the cases that changed with their one-sided Fisher p, adjusted p
    and verdict (``regression (significant)`` or ``changed, not significant``), then the
    verdict line, which says what α means.
    """
    parts = [
        tabulate(
            model_rows(comparison),
            headers=list(MODEL_HEADERS),
            tablefmt="simple",
            disable_numparse=True,
        )
    ]
    changed = changed_cases(comparison)
    if changed:
        parts.append(
            tabulate(
                case_rows(changed),
                headers=list(CASE_HEADERS),
                tablefmt="simple",
                disable_numparse=True,
            )
        )
    parts.append(_verdict(comparison))
    parts.extend(f"Note: {note}." for note in comparison.notes)
    return "\n\n".join(parts) + "\n"


def _verdict(comparison: Comparison) -> str:
    regressions = comparison.significant_regressions
    meaning = f"({alpha_sentence(comparison.alpha)})"
    if not regressions:
        flips = sum(c.status == "regression" for c in comparison.cases)
        tail = f"; {flips} case(s) flipped pass → fail, not significant" if flips else ""
        return f"No significant regressions at alpha={comparison.alpha:g}{tail}.\n{meaning}"
    lines = [f"{len(regressions)} significant regression(s) at alpha={comparison.alpha:g}:"]
    lines += [
        f"  {r.model}{'' if r.case is None else ' ' + r.case}: {r.reason}" for r in regressions
    ]
    lines.append(meaning)
    return "\n".join(lines)
