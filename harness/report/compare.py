"""The baseline comparison: what changed between two run documents, and whether it is noise.

``compare(baseline, current)`` matches rows by ``(record["case"], model)`` and gives:

* per case and model — the pass rate over repeats on each side (an error is a failure),
  a status (``regression``: passed → failed, ``fix``: failed → passed, ``new``, ``removed``,
  ``unchanged-pass``, ``unchanged-fail``) and a two-sided Fisher exact test on the
  passes/fails of the repeats. With one repeat per side a single flip gives p = 1: one
  flipped answer is never called a significant regression on its own;
* per model — over the cases present in both runs, the item-level pass rate on each side,
  its change, and an exact McNemar test on the paired item outcomes (b = pass → fail,
  c = fail → pass); plus the counts of regressions, fixes, new and removed cases and the
  change in p50 latency and in cost;
* ``significant_regressions`` — every model whose pass rate fell significantly and every
  case whose regression is significant on its own, each with a one-line reason.

Both tests are computed exactly with integer arithmetic (``math.comb``), no SciPy.
``format_table`` renders the comparison as plain text for ``harness compare``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from tabulate import tabulate

from harness.report.results import case_key
from harness.report.summary import model_summaries

__all__ = [
    "MODEL_HEADERS",
    "CaseChange",
    "Comparison",
    "ModelChange",
    "Regression",
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


@dataclass(frozen=True)
class CaseChange:
    """One (case, model) row of the comparison.

    Attributes:
        case: The matrix row key (``record["case"]``).
        model: The model alias.
        status: ``regression``, ``fix``, ``new``, ``removed``, ``unchanged-pass`` or
            ``unchanged-fail``.
        baseline_pass_rate: Passes / repeats in the baseline; ``None`` when absent there.
        current_pass_rate: Passes / repeats in the current run; ``None`` when absent.
        p_value: Fisher exact test on the repeats; ``None`` for new and removed cases.
        significant: ``p_value < alpha``.
        baseline_passes: Passing repeats in the baseline (0 when absent).
        baseline_repeats: Repeats in the baseline (0 when absent).
        current_passes: Passing repeats in the current run (0 when absent).
        current_repeats: Repeats in the current run (0 when absent).
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON form documented for ``Comparison.to_dict()["cases"]``."""
        return {
            "case": self.case,
            "model": self.model,
            "status": self.status,
            "baseline_pass_rate": self.baseline_pass_rate,
            "current_pass_rate": self.current_pass_rate,
            "p_value": self.p_value,
            "significant": self.significant,
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
        p_value: Exact McNemar test on the paired item outcomes.
        significant: ``p_value < alpha``.
        direction: ``regression`` / ``improvement`` when significant, else ``unchanged``.
        regressions: Cases that went passed → failed.
        fixes: Cases that went failed → passed.
        new: Cases only in the current run.
        removed: Cases only in the baseline.
        latency_p50_delta_ms: Current minus baseline p50 latency over the model's records.
        cost_delta_usd: Current minus baseline cost; ``None`` when either side is unpriced.
        shared: Number of cases present in both runs.
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON form documented for ``Comparison.to_dict()["models"]``."""
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
        }


@dataclass(frozen=True)
class Regression:
    """A significant regression: a whole model (``case is None``) or one case of a model.

    Attributes:
        model: The model alias.
        case: The case key, or ``None`` for a model-level regression.
        reason: One line saying what fell and how sure we are, e.g.
            ``"pass rate 92% → 71% (McNemar p=0.004)"``.
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
        alpha: The significance level the tests were judged at.
        models: One entry per model of either run (current run's order, then removed models).
        cases: One entry per (case, model) of either run (current run's order, then removed).
        significant_regressions: Model-level regressions first, then case-level ones.
    """

    alpha: float
    models: list[ModelChange] = field(default_factory=list)
    cases: list[CaseChange] = field(default_factory=list)
    significant_regressions: list[Regression] = field(default_factory=list)

    @property
    def has_significant_regression(self) -> bool:
        """Whether any model or case regressed significantly."""
        return bool(self.significant_regressions)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: ``{"alpha", "models", "cases", "significant_regressions"}``."""
        return {
            "alpha": self.alpha,
            "models": [m.to_dict() for m in self.models],
            "cases": [c.to_dict() for c in self.cases],
            "significant_regressions": [r.to_dict() for r in self.significant_regressions],
        }


# --------------------------------------------------------------------------- gathering


@dataclass
class _Row:
    """What one run says about one (case, model)."""

    passes: int = 0
    repeats: int = 0
    outcomes: list[bool] = field(default_factory=list)  # item outcomes, when items are there

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


def _rows(document: Mapping[str, Any]) -> dict[tuple[str, str], _Row]:
    """(case, model) → passes and repeats from the records, outcome from the items."""
    rows: dict[tuple[str, str], _Row] = {}
    for record in document.get("records", []):
        row = rows.setdefault(_row_key(record), _Row())
        row.repeats += 1
        row.passes += int(bool(record.get("passed")) and not record.get("error"))
    for item in document.get("items", []):
        key = _row_key(item)
        row = rows.setdefault(key, _Row())
        row.outcomes.append(item.get("outcome") == "passed")
        if row.repeats == 0:  # an item without records (a trimmed file): use its counts
            row.repeats = int(item.get("repeats") or 0)
            row.passes = int(item.get("passes") or 0)
    return rows


def _ordered(*keysets: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for keys in keysets:
        for key in keys:
            seen.setdefault(key, None)
    return list(seen)


# --------------------------------------------------------------------------- comparing


def _status(was_passing: bool, is_passing: bool) -> CaseStatus:
    if was_passing:
        return "unchanged-pass" if is_passing else "regression"
    return "fix" if is_passing else "unchanged-fail"


def _case_change(
    key: tuple[str, str], old: _Row | None, new: _Row | None, alpha: float
) -> CaseChange:
    case, model = key
    status: CaseStatus
    p_value: float | None = None
    if old is None:
        status = "new"
    elif new is None:
        status = "removed"
    else:
        status = _status(old.passed, new.passed)
        p_value = fisher_exact(
            ((old.passes, old.repeats - old.passes), (new.passes, new.repeats - new.passes))
        )
    return CaseChange(
        case=case,
        model=model,
        status=status,
        baseline_pass_rate=old.pass_rate if old else None,
        current_pass_rate=new.pass_rate if new else None,
        p_value=p_value,
        significant=p_value is not None and p_value < alpha,
        baseline_passes=old.passes if old else 0,
        baseline_repeats=old.repeats if old else 0,
        current_passes=new.passes if new else 0,
        current_repeats=new.repeats if new else 0,
    )


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def _model_change(
    model: str,
    changes: list[CaseChange],
    old_summary: Mapping[str, Any],
    new_summary: Mapping[str, Any],
    alpha: float,
) -> ModelChange:
    shared = [c for c in changes if c.status not in ("new", "removed")]
    old_passed = sum(c.status in ("unchanged-pass", "regression") for c in shared)
    new_passed = sum(c.status in ("unchanged-pass", "fix") for c in shared)
    regressions = sum(c.status == "regression" for c in changes)
    fixes = sum(c.status == "fix" for c in changes)
    old_rate = old_passed / len(shared) if shared else None
    new_rate = new_passed / len(shared) if shared else None
    p_value = mcnemar_exact(regressions, fixes)
    significant = p_value < alpha
    direction: Direction = "unchanged"
    if significant and new_rate is not None and old_rate is not None:
        if new_rate < old_rate:
            direction = "regression"
        elif new_rate > old_rate:
            direction = "improvement"
    return ModelChange(
        model=model,
        baseline_pass_rate=old_rate,
        current_pass_rate=new_rate,
        delta=_delta(new_rate, old_rate),
        p_value=p_value,
        significant=significant,
        direction=direction,
        regressions=regressions,
        fixes=fixes,
        new=sum(c.status == "new" for c in changes),
        removed=sum(c.status == "removed" for c in changes),
        latency_p50_delta_ms=_delta(
            new_summary.get("latency_p50_ms"), old_summary.get("latency_p50_ms")
        ),
        cost_delta_usd=_delta(new_summary.get("cost_usd"), old_summary.get("cost_usd")),
        shared=len(shared),
    )


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


def format_p(p_value: float | None) -> str:
    """A p-value for people: ``p=0.004``, ``p<0.001``, or ``—`` when there is none."""
    if p_value is None:
        return "—"
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def _significant_regressions(
    models: list[ModelChange], cases: list[CaseChange]
) -> list[Regression]:
    out = [
        Regression(
            model=m.model,
            case=None,
            reason=(
                f"pass rate {_percent(m.baseline_pass_rate)} → {_percent(m.current_pass_rate)} "
                f"(McNemar {format_p(m.p_value)})"
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
                f"{c.current_passes}/{c.current_repeats} repeats (Fisher {format_p(c.p_value)})"
            ),
        )
        for c in cases
        if c.status == "regression" and c.significant
    )
    return out


def compare(
    baseline: Mapping[str, Any], current: Mapping[str, Any], *, alpha: float = 0.05
) -> Comparison:
    """Compare a run document with a baseline run document.

    Args:
        baseline: The earlier run (a loaded ``results.json``).
        current: The run under review.
        alpha: The significance level for the Fisher (per case) and McNemar (per model) tests.

    Returns:
        The ``Comparison``; see the module docstring for what it holds.
    """
    old_rows, new_rows = _rows(baseline), _rows(current)
    keys = _ordered(new_rows, old_rows)
    cases = [_case_change(k, old_rows.get(k), new_rows.get(k), alpha) for k in keys]
    old_summaries = {s["model"]: s for s in model_summaries(baseline)}
    new_summaries = {s["model"]: s for s in model_summaries(current)}
    model_names = list(dict.fromkeys([*new_summaries, *old_summaries, *(k[1] for k in keys)]))
    models = [
        _model_change(
            name,
            [c for c in cases if c.model == name],
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
    )


# --------------------------------------------------------------------------- plain text


def _signed(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, "+" + fmt)


MODEL_HEADERS = (
    "model",
    "baseline",
    "current",
    "change",
    "McNemar",
    "verdict",
    "regressed",
    "fixed",
    "new",
    "removed",
    "Δ p50 ms",
    "Δ cost $",
)
"""Columns of ``model_rows``: the per-model comparison table of every output format."""


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
            _percent(m.baseline_pass_rate),
            _percent(m.current_pass_rate),
            "—" if m.delta is None else f"{m.delta * 100:+.1f} pp",
            format_p(m.p_value),
            strong(m.direction) if m.direction == "regression" else m.direction,
            str(m.regressions),
            str(m.fixes),
            str(m.new),
            str(m.removed),
            _signed(m.latency_p50_delta_ms, ",.0f"),
            _signed(m.cost_delta_usd, ",.4f"),
        ]
        for m in comparison.models
    ]


def format_table(comparison: Comparison) -> str:
    """The comparison as plain text (tabulate ``simple``) for ``harness compare``.

    A per-model table (pass rates, change, McNemar p, verdict, counts, latency and cost
    deltas), then the cases that changed (regressions and fixes), then a verdict line.
    """
    parts = [
        tabulate(
            model_rows(comparison),
            headers=list(MODEL_HEADERS),
            tablefmt="simple",
            disable_numparse=True,
        )
    ]
    changed = [c for c in comparison.cases if c.status in ("regression", "fix")]
    if changed:
        case_rows = [
            [
                c.case,
                c.model,
                c.status + (" *" if c.significant else ""),
                f"{c.baseline_passes}/{c.baseline_repeats}",
                f"{c.current_passes}/{c.current_repeats}",
                format_p(c.p_value),
            ]
            for c in sorted(changed, key=lambda c: (c.status != "regression", c.model, c.case))
        ]
        parts.append(
            tabulate(
                case_rows,
                headers=["case", "model", "status", "baseline", "current", "Fisher"],
                tablefmt="simple",
                disable_numparse=True,
            )
        )
    parts.append(_verdict(comparison))
    return "\n\n".join(parts) + "\n"


def _verdict(comparison: Comparison) -> str:
    regressions = comparison.significant_regressions
    if not regressions:
        flips = sum(c.status == "regression" for c in comparison.cases)
        tail = f" ({flips} case(s) flipped pass → fail, within noise)" if flips else ""
        return f"No significant regressions at alpha={comparison.alpha:g}{tail}."
    lines = [f"{len(regressions)} significant regression(s) at alpha={comparison.alpha:g}:"]
    lines += [
        f"  {r.model}{'' if r.case is None else ' ' + r.case}: {r.reason}" for r in regressions
    ]
    return "\n".join(lines)
