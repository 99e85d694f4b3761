"""Adaptive repeats: when a case's verdict is settled before all its repeats have run.

A case with threshold ``t`` and ``N`` repeats passes when ``passes / N ≥ t`` (the same
float comparison as the suite runner). ``SequentialPlan(N, t, confidence)`` decides,
after each batch of repeats, whether running the rest is still worth it:

* **curtailed** — the remaining repeats cannot change the fixed-``N`` verdict (enough
  passes already, or too few repeats left to reach the threshold). Exact: the verdict is
  the one all ``N`` repeats would give, whatever they are;
* **confident** — the predictive probability that finishing would flip the verdict is
  small: with a Jeffreys prior ``Beta(½, ½)`` on the pass probability, the passes still to
  come are beta-binomial, and the plan stops when the probability that they move the
  total across the threshold is below its ``level``;
* **max** — all ``N`` repeats ran: the fixed rule;
* **undecided** — run more (``next_batch`` says how many).

**The guarantee.** For every true pass probability ``p`` (independent repeats), the
adaptive verdict equals the fixed-``N`` verdict with probability at least ``confidence``.
A Bayesian predictive rule alone does not promise that for every ``p`` (it looks after
every batch, and near the threshold early luck is common: with ``1 − confidence`` as its
level, ``t = 0.8, N = 20`` agrees only 84% of the time at ``p = 0.8``). So each plan
*calibrates* its level: the largest value on the ladder ``(1 − confidence)·0.8^i`` for
which the agreement, computed exactly by dynamic programming over the plan's own batch
schedule, is at least ``confidence`` at every ``p`` on a grid of 101 values, refined by a
second grid of 101 between the worst one's neighbours. The level is never above
``1 − confidence``, so the predictive flip probability at a confident stop is below
``1 − confidence`` too; with ``confidence = 1`` only curtailment stops early.
``agreement(p)`` and ``expected_repeats(p)`` give the exact figures;
``docs/statistics.md`` tabulates them. Calibration runs once per ``(N, required passes,
confidence)`` and is cached: about 0.06 s for ``N = 20``, 0.3 s for 50, 1.4 s for 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = ["Decision", "SequentialPlan", "required_passes"]

Verdict = Literal["pass", "fail"]
Reason = Literal["curtailed", "confident", "max", "undecided"]

_LADDER = 40
"""Rungs of the level ladder ``(1 − confidence)·0.8^i``; below the last, curtailment only."""

_GRID = 101
"""Pass probabilities the calibration checks (refined around the worst one)."""


def required_passes(max_repeats: int, threshold: float) -> int:
    """The passes out of ``max_repeats`` that the fixed rule needs (``passes/N ≥ t``).

    Args:
        max_repeats: ``N``.
        threshold: ``t`` in ``[0, 1]``.

    Returns:
        The least ``k`` with ``not (k / N < t)``; ``N + 1`` if none (never happens for
        ``t ≤ 1``).
    """
    for k in range(max_repeats + 1):
        if not k / max_repeats < threshold:
            return k
    return max_repeats + 1


@dataclass(frozen=True)
class Decision:
    """What ``SequentialPlan.decide`` concluded.

    Attributes:
        verdict: ``pass`` / ``fail``, or ``None`` while undecided.
        reason: ``curtailed`` (exact: no completion can change it), ``confident``
            (predictive early stop), ``max`` (all repeats ran) or ``undecided``.
    """

    verdict: Verdict | None
    reason: Reason


_UNDECIDED = Decision(None, "undecided")


# --------------------------------------------------------------------------- the maths


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@lru_cache(maxsize=4096)
def _reach_probability(passes: int, repeats: int, max_repeats: int, need: int) -> float:
    """Predictive ``P[passes + F ≥ need]``, ``F ~ BetaBinomial(N − n, passes + ½, fails + ½)``."""
    remaining, short = max_repeats - repeats, need - passes
    if short <= 0:
        return 1.0
    if short > remaining:
        return 0.0
    a, b = passes + 0.5, repeats - passes + 0.5
    base = _log_beta(a, b)
    log_choose = math.lgamma(remaining + 1)
    total = math.fsum(
        math.exp(
            log_choose
            - math.lgamma(j + 1)
            - math.lgamma(remaining - j + 1)
            + _log_beta(a + j, b + remaining - j)
            - base
        )
        for j in range(short, remaining + 1)
    )
    return min(1.0, max(0.0, total))


def _decide(passes: int, repeats: int, max_repeats: int, need: int, level: float) -> Decision:
    if repeats >= max_repeats:
        return Decision("pass" if passes >= need else "fail", "max")
    if passes >= need:
        return Decision("pass", "curtailed")
    if passes + max_repeats - repeats < need:
        return Decision("fail", "curtailed")
    if repeats == 0 or level <= 0:
        return _UNDECIDED
    reach = _reach_probability(passes, repeats, max_repeats, need)
    if 1.0 - reach < level:
        return Decision("pass", "confident")
    if reach < level:
        return Decision("fail", "confident")
    return _UNDECIDED


def _next_batch(passes: int, repeats: int, max_repeats: int, need: int, level: float) -> int:
    if _decide(passes, repeats, max_repeats, need, level).verdict is not None:
        return 0
    remaining = max_repeats - repeats
    for batch in range(1, remaining + 1):
        after = repeats + batch
        if any(
            _decide(passes + j, after, max_repeats, need, level).verdict is not None
            for j in range(batch + 1)
        ):
            return batch
    return remaining  # pragma: no cover - the last batch always reaches "max"


@lru_cache(maxsize=64)
def _schedule(max_repeats: int, need: int, level: float) -> dict[tuple[int, int], Decision | int]:
    """Every state the plan can reach from ``(0, 0)``: its decision, or its next batch."""
    plan: dict[tuple[int, int], Decision | int] = {}
    frontier = [(0, 0)]
    while frontier:
        state = frontier.pop()
        if state in plan:
            continue
        passes, repeats = state
        decision = _decide(passes, repeats, max_repeats, need, level)
        if decision.verdict is not None:
            plan[state] = decision
            continue
        batch = _next_batch(passes, repeats, max_repeats, need, level)
        plan[state] = batch
        frontier.extend((passes + j, repeats + batch) for j in range(batch + 1))
    return plan


@lru_cache(maxsize=64)
def _endings(max_repeats: int, need: int, level: float) -> dict[tuple[int, int], int]:
    """For every state the plan stops in: how many pass/fail sequences end there.

    Judging one answer at a time and stopping at the first decided state gives the same
    endings as the batch schedule: inside a batch no state is decided (that is how
    ``next_batch`` chooses its size).
    """
    paths: dict[tuple[int, int], int] = {(0, 0): 1}
    endings: dict[tuple[int, int], int] = {}
    for repeats in range(max_repeats + 1):
        for passes in range(repeats + 1):
            count = paths.pop((passes, repeats), 0)
            if not count:
                continue
            if _decide(passes, repeats, max_repeats, need, level).verdict is not None:
                endings[(passes, repeats)] = count
                continue
            for state in ((passes + 1, repeats + 1), (passes, repeats + 1)):
                paths[state] = paths.get(state, 0) + count
    return endings


def _binomials(n: int, ps: Sequence[float]) -> list[list[float]]:
    """``out[j][i] = P[Binomial(n, ps[i]) = j]``."""
    return [[math.comb(n, j) * p**j * (1.0 - p) ** (n - j) for p in ps] for j in range(n + 1)]


def _run(
    max_repeats: int, need: int, level: float, ps: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Exact agreement with the fixed-N verdict and expected repeats, at each ``p`` in ``ps``.

    A forward pass over the plan's reachable states in order of repeats judged, carrying
    one probability per ``p``.
    """
    schedule = _schedule(max_repeats, need, level)
    size = len(ps)
    agree, used = [0.0] * size, [0.0] * size
    pmfs: dict[int, list[list[float]]] = {}

    def pmf(n: int) -> list[list[float]]:
        if n not in pmfs:
            pmfs[n] = _binomials(n, ps)
        return pmfs[n]

    layers: dict[int, dict[int, list[float]]] = {0: {0: [1.0] * size}}
    for repeats in range(max_repeats + 1):
        for passes, weight in sorted(layers.pop(repeats, {}).items()):
            step = schedule[(passes, repeats)]
            if isinstance(step, Decision):
                used = [u + w * repeats for u, w in zip(used, weight, strict=True)]
                if step.reason != "confident":
                    agree = [a + w for a, w in zip(agree, weight, strict=True)]
                    continue
                rest = pmf(max_repeats - repeats)
                reach = [math.fsum(col) for col in zip(*rest[max(0, need - passes) :], strict=True)]
                if step.verdict == "fail":
                    reach = [1.0 - r for r in reach]
                agree = [a + w * r for a, w, r in zip(agree, weight, reach, strict=True)]
                continue
            layer = layers.setdefault(repeats + step, {})
            for j, chance in enumerate(pmf(step)):
                old = layer.get(passes + j)
                moved = [w * c for w, c in zip(weight, chance, strict=True)]
                layer[passes + j] = (
                    moved if old is None else [o + m for o, m in zip(old, moved, strict=True)]
                )
    return agree, used


def _worst_agreement(max_repeats: int, need: int, level: float) -> float:
    """The least agreement over ``p ∈ [0, 1]``: a grid, then a fine grid around its minimum."""
    grid = [i / (_GRID - 1) for i in range(_GRID)]
    values = _run(max_repeats, need, level, grid)[0]
    worst = min(range(_GRID), key=values.__getitem__)
    lo = grid[max(0, worst - 1)]
    step = (grid[min(_GRID - 1, worst + 1)] - lo) / (_GRID - 1)
    fine = [lo + i * step for i in range(_GRID)]
    return min(values[worst], *_run(max_repeats, need, level, fine)[0])


@lru_cache(maxsize=256)
def _calibrated_level(max_repeats: int, need: int, confidence: float) -> float:
    """The largest rung of ``(1 − c)·0.8^i`` whose worst-case agreement is ≥ ``c``."""
    if confidence >= 1.0 or need <= 0 or need > max_repeats:
        return 0.0  # nothing to calibrate: curtailment decides at once, or only it may

    def ok(rung: int) -> bool:
        level = (1.0 - confidence) * 0.8**rung
        return _worst_agreement(max_repeats, need, level) >= confidence

    # agreement rises as the level falls (fewer early stops): bisect, then make sure
    low, high = 0, _LADDER
    while low < high:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid + 1
    while low < _LADDER and not ok(low):
        low += 1  # pragma: no cover - only if agreement were not monotone in the level
    return 0.0 if low >= _LADDER else (1.0 - confidence) * 0.8**low


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class SequentialPlan:
    """When to stop repeating one case; see the module docstring for the guarantee.

    Attributes:
        max_repeats: ``N``, the repeats of the fixed rule (at least 1).
        threshold: ``t`` in ``[0, 1]``: the case passes when ``passes / N ≥ t``.
        confidence: ``c`` in ``[0.5, 1]``: the least probability, for every true pass
            probability, that the adaptive verdict equals the fixed-``N`` one.
    """

    max_repeats: int
    threshold: float
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.max_repeats, bool) or not isinstance(self.max_repeats, int):
            raise TypeError(f"max_repeats must be an int, got {self.max_repeats!r}")
        if self.max_repeats < 1:
            raise ValueError(f"max_repeats must be at least 1, got {self.max_repeats}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.5 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0.5, 1], got {self.confidence}")

    @property
    def required(self) -> int:
        """Passes out of ``max_repeats`` the fixed rule needs."""
        return required_passes(self.max_repeats, self.threshold)

    @property
    def level(self) -> float:
        """The calibrated predictive flip probability below which the plan stops early.

        At most ``1 − confidence``; 0 when only curtailment may stop early. Computed once
        per ``(max_repeats, required, confidence)`` and cached (milliseconds for ``N ≤ 20``).
        """
        return _calibrated_level(self.max_repeats, self.required, self.confidence)

    def fixed_verdict(self, passes: int) -> Verdict:
        """The verdict of the fixed rule for ``passes`` out of ``max_repeats``."""
        return "pass" if passes >= self.required else "fail"

    def _check(self, passes: int, repeats: int) -> None:
        if not 0 <= passes <= repeats <= self.max_repeats:
            raise ValueError(
                f"need 0 ≤ passes ≤ repeats ≤ {self.max_repeats}, got {passes}/{repeats}"
            )

    def decide(self, passes: int, repeats: int) -> Decision:
        """Whether the case is decided after ``passes`` of ``repeats`` repeats passed.

        Args:
            passes: Passing repeats so far.
            repeats: Repeats judged so far (at most ``max_repeats``).

        Returns:
            The ``Decision``: curtailed, confident, max (at ``max_repeats``: the fixed
            rule) or undecided (``verdict is None``).

        Raises:
            ValueError: Not ``0 ≤ passes ≤ repeats ≤ max_repeats``.
        """
        self._check(passes, repeats)
        return _decide(passes, repeats, self.max_repeats, self.required, self.level)

    def next_batch(self, passes: int, repeats: int) -> int:
        """How many more repeats to request now.

        0 when decided; otherwise the smallest batch after which some outcome would decide
        the case (at least 1, at most what remains). ``next_batch(0, 0)`` is the first
        batch to prefetch.

        Args:
            passes: Passing repeats so far.
            repeats: Repeats judged so far.

        Returns:
            The batch size.

        Raises:
            ValueError: Not ``0 ≤ passes ≤ repeats ≤ max_repeats``.
        """
        self._check(passes, repeats)
        return _next_batch(passes, repeats, self.max_repeats, self.required, self.level)

    def flip_probability(self, passes: int, repeats: int) -> float:
        """The predictive probability that the fixed-``N`` verdict is not the likelier one.

        ``min(q, 1 − q)`` with ``q`` the beta-binomial (Jeffreys) probability that the
        remaining repeats bring the passes to ``required``; 0 once curtailed.
        """
        self._check(passes, repeats)
        reach = _reach_probability(passes, repeats, self.max_repeats, self.required)
        return min(reach, 1.0 - reach)

    def outcome_counts(self) -> dict[tuple[int, int], int]:
        """Where the plan can stop, and in how many ways.

        ``{(passes, repeats): sequences}``: for every state at which the plan stops, the
        number of pass/fail sequences that end there. The run with pass probability ``p``
        ends in ``(k, n)`` with probability ``sequences · p^k (1 − p)^(n − k)``; the
        regression tests (``harness.stats.Design``) condition on this, because with
        adaptive repeats how many repeats ran depends on their outcomes.
        """
        return dict(_endings(self.max_repeats, self.required, self.level))

    def agreement(self, p: float) -> float:
        """The exact probability that the adaptive verdict equals the fixed-``N`` one.

        At true pass probability ``p``, by dynamic programming over the batch schedule.
        """
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        return _run(self.max_repeats, self.required, self.level, [p])[0][0]

    def expected_repeats(self, p: float) -> float:
        """Exact expected number of repeats the plan runs at true pass probability ``p``."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        return _run(self.max_repeats, self.required, self.level, [p])[1][0]
