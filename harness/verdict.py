"""A case's verdict over its repeats: pass rate, Wilson interval, threshold, adaptive stop.

One function, ``case_verdict``, decides whether a case (a YAML suite case against one
model, or a Python test marked ``repeat``) passed, from how many of its repeats passed. The
pytest plugin calls it from both paths, so the two report the same numbers in the same
shape (``CaseVerdict.summary``, the ``item`` object of ``docs/results-schema.md``) and fail
with the same headline.

With a ``SequentialPlan`` (adaptive repeats) the plan's decision is the verdict once it has
one; otherwise, and with fixed repeats, the case passes when its pass rate reaches the
threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.results import wilson_interval
from harness.sequential import SequentialPlan

__all__ = ["CaseVerdict", "case_verdict"]


@dataclass(frozen=True, slots=True)
class CaseVerdict:
    """How a case did over the repeats that ran."""

    passes: int
    repeats: int
    """The repeats that ran (adaptive: those asked before the verdict was decided)."""
    threshold: float
    passed: bool
    ci95: tuple[float, float]
    """Wilson 95% interval of the pass rate."""
    max_repeats: int | None = None
    """Adaptive repeats: the most that could have run; ``None`` with fixed repeats."""
    stopped: str | None = None
    """Adaptive repeats: why asking stopped (``SequentialDecision.reason``)."""
    confidence: float | None = None
    """Adaptive repeats: the plan's confidence."""

    @property
    def pass_rate(self) -> float:
        """Passing repeats over repeats run (0 when none ran)."""
        return self.passes / self.repeats if self.repeats else 0.0

    def summary(self) -> dict[str, Any]:
        """The item summary the reports read (``item`` in ``docs/results-schema.md``)."""
        out: dict[str, Any] = {
            "repeats": self.repeats,
            "passes": self.passes,
            "pass_rate": self.pass_rate,
            "threshold": self.threshold,
            "ci95": list(self.ci95),
        }
        if self.max_repeats is not None:
            out.update(
                max_repeats=self.max_repeats, stopped=self.stopped, confidence=self.confidence
            )
        return out

    def headline(self) -> str:
        """``"2/5 repeats passed (40%; needs 80%)"``, plus why an adaptive case stopped."""
        return (
            f"{self.passes}/{self.repeats} repeats passed "
            f"({self.pass_rate:.0%}; needs {self.threshold:.0%}){self.stop_note()}"
        )

    def stop_note(self) -> str:
        """Why an adaptive case stopped early (``"; stopped after 3 of 10 …"``) or ``""``."""
        if self.max_repeats is None or self.repeats >= self.max_repeats:
            return ""
        return f"; stopped after {self.repeats} of up to {self.max_repeats} repeats: decided"


def case_verdict(
    passes: int, repeats: int, threshold: float, plan: SequentialPlan | None = None
) -> CaseVerdict:
    """The verdict of a case whose ``passes`` of ``repeats`` passed."""
    lo, hi = wilson_interval(passes, repeats)
    rate = passes / repeats if repeats else 0.0
    passed = rate >= threshold
    if plan is None:
        return CaseVerdict(passes, repeats, threshold, passed, (lo, hi))
    decision = plan.decide(passes, repeats)
    if decision.verdict is not None:
        passed = decision.verdict == "pass"
    return CaseVerdict(
        passes,
        repeats,
        threshold,
        passed,
        (lo, hi),
        max_repeats=plan.max_repeats,
        stopped=decision.reason,
        confidence=plan.confidence,
    )
