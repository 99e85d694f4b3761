"""The regression gate's error rates, and the adaptive repeats' agreement and savings.

Simulates pairs of runs, builds both run documents (``schema``/``run``/``items``/``records``
in the shape ``tests/test_report_compare.py`` uses — one record per answer, items with the
suite default threshold 1.0), calls ``harness.report.compare.compare`` and reads
``has_significant_regression`` — exactly what ``harness compare`` turns into exit 1 and
``--harness-fail-on-regression`` into a failed session. For each scenario it prints the rate
at which the gate fires with a Wilson 95% interval, next to the rate of the previous design
(two-sided Fisher per case and exact McNemar on item outcomes per model, each at α with no
correction; reimplemented here on the same simulated runs).

Per-case pass probabilities (drawn afresh for every simulated suite; both runs share them):

* ``flaky``    — every case passes with p = 0.8 (the issue's example);
* ``reliable`` — 80% of cases at p = 0.98, 20% with p uniform in [0.4, 0.95] (mean 0.92).

A/A rows: both runs draw from the same probabilities (no real change), over cases 10, 50,
200, 2,000 × repeats 1, 3, 5, 20 × both mixes, one model; plus three models at once,
unequal repeats (baseline 5, current 3), and adaptive repeats (``harness.sequential``, as
the prefetcher runs them: both runs adaptive, or a fixed baseline against an adaptive
run). The false-alarm rate must stay ≤ α = 0.05.

Power rows: the current run's probabilities fall by ``d`` in one of two shapes —

* ``shift`` — every case loses d (p → max(0, p − d); no clipping happens in these mixes);
* ``break`` — cases chosen at random break (p → 0) until the mean has fallen by d, the
  last one partly;

for the two targets (a 20-point drop at 50 cases × 3 repeats: ≥ 90%; a 10-point drop at
200 cases × 1 repeat: ≥ 80%), once with three models of which one drops, and, for
information, a 10-point drop under adaptive repeats.

The sequential section tabulates ``harness.sequential.SequentialPlan`` for t ∈ {1.0, 0.8,
0.67} × N ∈ {3, 5, 10, 20} at confidence 0.95: the calibrated level, the worst exact
agreement with the fixed-N verdict over p ∈ [0, 1], a simulated check at p = t, and the
mean repeats used (exact) at several p.

    python tests/benchmarks/bench_verdicts.py [--sims 800] [--big-sims 200] [--seed 1]
                                              [--jobs 2] [--only gate|sequential]
                                              [--match TEXT] [--json]

``--sims`` is per scenario, except that scenarios with 20,000 or more answers per model and
run (2,000 cases × 20 repeats: about 0.6 s per simulated pair, most of it building and
reading 80,000 records) get ``--big-sims``. The defaults take about five minutes on two
quiet cores (eleven with the machine busy); the same seed gives the same table.
``--match adaptive`` runs only the scenarios whose name contains "adaptive".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from harness.report.compare import compare, fisher_exact, mcnemar_exact
from harness.results import wilson_interval
from harness.sequential import SequentialPlan

ALPHA = 0.05


@dataclass(frozen=True)
class Scenario:
    """One row: a suite shape, a mix, and the drop (0 for A/A)."""

    name: str
    cases: int
    repeats: int
    mix: str
    drop: float = 0.0
    shape: str = "shift"
    models: int = 1
    current_repeats: int | None = None  # unequal repeats; None: the same as the baseline
    target: str = ""
    adaptive: tuple[int, float] | None = None  # (max repeats, threshold) of the current run
    adaptive_baseline: bool = True  # the baseline adaptive too (else fixed max repeats)


def probabilities(mix: str, cases: int, rng: random.Random) -> list[float]:
    """The per-case pass probabilities of one simulated suite."""
    if mix == "flaky":
        return [0.8] * cases
    if mix == "reliable":
        return [0.98 if rng.random() < 0.8 else rng.uniform(0.4, 0.95) for _ in range(cases)]
    raise ValueError(mix)


def dropped(ps: Sequence[float], drop: float, shape: str, rng: random.Random) -> list[float]:
    """The current run's probabilities: every case shifted, or random cases broken."""
    if drop <= 0:
        return list(ps)
    if shape == "shift":
        return [max(0.0, p - drop) for p in ps]
    out = list(ps)
    budget = drop * len(ps)
    for i in rng.sample(range(len(ps)), len(ps)):
        take = min(out[i], budget)
        out[i] -= take
        budget -= take
        if budget <= 1e-12:
            break
    return out


def run_adaptive(plan: SequentialPlan, p: float, rng: random.Random) -> list[bool]:
    """One case under adaptive repeats, as the prefetcher runs it: batches until decided."""
    outcomes: list[bool] = []
    while (batch := plan.next_batch(sum(outcomes), len(outcomes))) > 0:
        outcomes += [rng.random() < p for _ in range(batch)]
    return outcomes


def run_document(
    counts: dict[tuple[str, str], list[bool]],
    label: str,
    plan: SequentialPlan | None = None,
) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[int, int, bool]]]:
    """A run document from per-(case, model) outcomes, and the counts the old rule needs.

    With ``plan`` the items carry what an adaptive run writes (``max_repeats``, ``stopped``,
    ``confidence``) and pass by the plan's verdict.
    """
    records: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    summary: dict[tuple[str, str], tuple[int, int, bool]] = {}
    for (case, model), outcomes in counts.items():
        test_id = f"{case}[{model}]"
        for repeat, ok in enumerate(outcomes):
            records.append(
                {
                    "test_id": test_id,
                    "case": case,
                    "model": model,
                    "repeat": repeat,
                    "shape": "suite",
                    "passed": ok,
                    "error": None,
                    "checks": [],
                    "latency_ms": 100.0,
                    "cost_usd": None,
                }
            )
        passes = sum(outcomes)
        item: dict[str, Any] = {
            "test_id": test_id,
            "model": model,
            "case": case,
            "errored": False,
            "repeats": len(outcomes),
            "passes": passes,
            "pass_rate": passes / len(outcomes),
            "threshold": 1.0,  # the suite default
        }
        passed = passes == len(outcomes)
        if plan is not None:
            decision = plan.decide(passes, len(outcomes))
            passed = decision.verdict == "pass"
            item.update(
                threshold=plan.threshold,
                max_repeats=plan.max_repeats,
                stopped=decision.reason,
                confidence=plan.confidence,
            )
        item["outcome"] = "passed" if passed else "failed"
        items.append(item)
        summary[(case, model)] = (passes, len(outcomes), passed)
    document = {
        "schema": "harness.results",
        "schema_version": 1,
        "run": {"started": 0.0, "finished": 1.0, "duration_s": 1.0, "command": [label]},
        "items": items,
        "records": records,
    }
    return document, summary


def old_gate(
    old: dict[tuple[str, str], tuple[int, int, bool]],
    new: dict[tuple[str, str], tuple[int, int, bool]],
) -> bool:
    """The previous design: any two-sided Fisher or McNemar (regression) below α."""
    flips: dict[str, list[int]] = {}
    fired = False
    for key, (x, n1, was) in old.items():
        y, n2, now = new[key]
        tally = flips.setdefault(key[1], [0, 0])
        if was and not now:
            tally[0] += 1
            if fisher_exact(((x, n1 - x), (y, n2 - y))) < ALPHA:
                fired = True
        elif now and not was:
            tally[1] += 1
    for b, c in flips.values():
        if b > c and mcnemar_exact(b, c) < ALPHA:
            fired = True
    return fired


def simulate(scenario: Scenario, sims: int, seed: int) -> tuple[int, int, float]:
    """``(new gate fired, old gate fired, seconds in compare)`` over ``sims`` pairs."""
    rng = random.Random(seed)
    new_hits = old_hits = 0
    spent = 0.0
    plan = SequentialPlan(*scenario.adaptive) if scenario.adaptive else None
    base_plan = plan if scenario.adaptive_baseline else None
    for _ in range(sims):
        base: dict[tuple[str, str], list[bool]] = {}
        cur: dict[tuple[str, str], list[bool]] = {}
        for m in range(scenario.models):
            model = f"model{m}"
            ps = probabilities(scenario.mix, scenario.cases, rng)
            qs = dropped(ps, scenario.drop, scenario.shape, rng) if m == 0 else ps
            r2 = scenario.current_repeats or scenario.repeats
            for i, (p, q) in enumerate(zip(ps, qs, strict=True)):
                key = (f"suite.yaml::case{i}", model)
                if base_plan is not None:
                    base[key] = run_adaptive(base_plan, p, rng)
                else:
                    base[key] = [rng.random() < p for _ in range(scenario.repeats)]
                if plan is not None:
                    cur[key] = run_adaptive(plan, q, rng)
                else:
                    cur[key] = [rng.random() < q for _ in range(r2)]
        old_doc, old_counts = run_document(base, "baseline", base_plan)
        new_doc, new_counts = run_document(cur, "current", plan)
        start = time.perf_counter()
        comparison = compare(old_doc, new_doc, alpha=ALPHA)
        spent += time.perf_counter() - start
        new_hits += comparison.has_significant_regression
        old_hits += old_gate(old_counts, new_counts)
    return new_hits, old_hits, spent


def scenarios() -> list[Scenario]:
    """The A/A grid, the extra A/A rows, and the power rows."""
    out = [
        Scenario(f"A/A {mix} {cases}×{repeats}", cases, repeats, mix)
        for mix in ("reliable", "flaky")
        for cases in (10, 50, 200, 2000)
        for repeats in (1, 3, 5, 20)
    ]
    out += [
        Scenario("A/A flaky 200×5, 3 models", 200, 5, "flaky", models=3),
        Scenario("A/A reliable 50×3, 3 models", 50, 3, "reliable", models=3),
        Scenario("A/A flaky 200, 5 vs 3 repeats", 200, 5, "flaky", current_repeats=3),
        Scenario("A/A flaky 200, adaptive N=10 t=0.8", 200, 10, "flaky", adaptive=(10, 0.8)),
        Scenario("A/A reliable 200, adaptive N=5 t=1", 200, 5, "reliable", adaptive=(5, 1.0)),
        Scenario(
            "A/A flaky 200, fixed 10 vs adaptive",
            200,
            10,
            "flaky",
            adaptive=(10, 0.8),
            adaptive_baseline=False,
        ),
    ]
    for cases, repeats, drop, target in ((50, 3, 0.2, "≥ 90%"), (200, 1, 0.1, "≥ 80%")):
        for mix in ("reliable", "flaky"):
            for shape in ("shift", "break"):
                out.append(
                    Scenario(
                        f"−{drop * 100:.0f} pp {shape} {mix} {cases}×{repeats}",
                        cases,
                        repeats,
                        mix,
                        drop,
                        shape,
                        target=target,
                    )
                )
        out.append(
            Scenario(
                f"−{drop * 100:.0f} pp shift flaky {cases}×{repeats}, 1 of 3 models",
                cases,
                repeats,
                "flaky",
                drop,
                "shift",
                models=3,
                target=target,
            )
        )
    out += [
        Scenario(
            "−10 pp shift flaky 200, adaptive N=10 t=0.8",
            200,
            10,
            "flaky",
            0.1,
            adaptive=(10, 0.8),
            target="(info)",
        ),
        Scenario(
            "−10 pp shift reliable 200, adaptive N=5 t=1",
            200,
            5,
            "reliable",
            0.1,
            adaptive=(5, 1.0),
            target="(info)",
        ),
        Scenario(
            "−10 pp shift flaky 200, fixed 10 vs adaptive",
            200,
            10,
            "flaky",
            0.1,
            adaptive=(10, 0.8),
            adaptive_baseline=False,
            target="(info)",
        ),
    ]
    return out


def _task(args: tuple[Scenario, int, int]) -> tuple[str, int, int, int, float]:
    scenario, sims, seed = args
    new, old, spent = simulate(scenario, sims, seed)
    return scenario.name, sims, new, old, spent


def _interval(hits: int, sims: int) -> str:
    lo, hi = wilson_interval(hits, sims)
    return f"{hits / sims:.1%} [{lo:.1%}–{hi:.1%}]"


BIG = 20_000
"""Answers per model and run from which a scenario gets ``--big-sims``."""


def gate_table(
    sims: int, big_sims: int, seed: int, jobs: int, match: str = ""
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Run every scenario whose name contains ``match`` (in chunks over ``jobs`` processes)."""
    chosen = [s for s in scenarios() if match in s.name]
    tasks = []
    for scenario in chosen:
        count = big_sims if scenario.cases * scenario.repeats >= BIG else sims
        chunk = max(25, count // 8)
        cell_seed = zlib.crc32(scenario.name.encode()) ^ seed
        for start in range(0, count, chunk):
            tasks.append((scenario, min(chunk, count - start), cell_seed + start))
    tasks.sort(key=lambda t: -t[0].cases * t[0].repeats * t[0].models * t[1])  # big first
    totals: dict[str, list[float]] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for name, n, new, old, spent in pool.map(_task, tasks):
            tally = totals.setdefault(name, [0, 0, 0, 0.0])
            tally[0] += n
            tally[1] += new
            tally[2] += old
            tally[3] += spent
    rows, data = [], []
    for scenario in chosen:
        n, new, old, spent = totals[scenario.name]
        n, new, old = int(n), int(new), int(old)
        kind = "false alarms" if scenario.drop == 0 else "power"
        rows.append(
            [
                scenario.name,
                kind,
                str(n),
                _interval(new, n),
                f"{old / n:.1%}",
                scenario.target or "≤ 5%",
                f"{spent / n * 1000:.1f}",
            ]
        )
        data.append(
            {
                "scenario": scenario.name,
                "kind": kind,
                "sims": n,
                "rate": new / n,
                "ci95": wilson_interval(new, n),
                "old_rate": old / n,
                "target": scenario.target or "<= 5%",
                "compare_ms": spent / n * 1000,
            }
        )
    return rows, data


def sequential_table(sims: int, seed: int) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Agreement and repeats of the adaptive plans (exact, plus a simulated check at p = t)."""
    rng = random.Random(seed)
    ps = (0.3, 0.5, 0.8, 0.9, 0.95, 0.99)
    grid = [i / 200 for i in range(201)]
    rows, data = [], []
    for t in (1.0, 0.8, 0.67):
        for n in (3, 5, 10, 20):
            plan = SequentialPlan(n, t, 0.95)
            agreement = [plan.agreement(p) for p in grid]
            worst = min(range(len(grid)), key=agreement.__getitem__)
            agree_sim = used_sim = 0
            for _ in range(sims):
                outcomes = [rng.random() < t for _ in range(n)]
                passes = repeats = 0
                while (batch := plan.next_batch(passes, repeats)) > 0:
                    passes += sum(outcomes[repeats : repeats + batch])
                    repeats += batch
                agree_sim += plan.decide(passes, repeats).verdict == plan.fixed_verdict(
                    sum(outcomes)
                )
                used_sim += repeats
            mean = {p: plan.expected_repeats(p) for p in ps}
            rows.append(
                [
                    f"t={t:g} N={n}",
                    plan.required,
                    f"{plan.level:.4f}",
                    f"{agreement[worst]:.3f} (p={grid[worst]:.3f})",
                    f"{agree_sim / sims:.3f}",
                    plan.next_batch(0, 0),
                    *(f"{mean[p]:.1f}" for p in ps),
                ]
            )
            data.append(
                {
                    "threshold": t,
                    "max_repeats": n,
                    "required": plan.required,
                    "level": plan.level,
                    "worst_agreement": agreement[worst],
                    "worst_p": grid[worst],
                    "simulated_agreement_at_t": agree_sim / sims,
                    "simulated_mean_repeats_at_t": used_sim / sims,
                    "first_batch": plan.next_batch(0, 0),
                    "mean_repeats": {str(p): mean[p] for p in ps},
                }
            )
    return rows, data


def main(argv: list[str] | None = None) -> int:
    """Run the simulations and print the tables (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=800, help="simulated pairs per scenario")
    parser.add_argument(
        "--big-sims", type=int, default=200, help="pairs for 2,000 × 20-repeat scenarios"
    )
    parser.add_argument("--seq-sims", type=int, default=4000, help="runs per sequential plan")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--only", choices=("gate", "sequential"), help="one section only")
    parser.add_argument("--match", default="", help="only the scenarios whose name has this")
    parser.add_argument(
        "--json", action="store_true", help="JSON on stdout; the tables go to stderr"
    )
    args = parser.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"bench_verdicts: --sims {args.sims} --big-sims {args.big_sims} --seed {args.seed} "
        f"--jobs {args.jobs}; "
        f"load average {load}",
        file=out,
    )
    result: dict[str, Any] = {
        "sims": args.sims,
        "big_sims": args.big_sims,
        "seed": args.seed,
        "alpha": ALPHA,
    }
    started = time.perf_counter()
    if args.only != "sequential":
        rows, result["gate"] = gate_table(
            args.sims, args.big_sims, args.seed, args.jobs, args.match
        )
        print(
            tabulate(
                rows,
                headers=[
                    "scenario",
                    "measure",
                    "sims",
                    "gate (95% CI)",
                    "old design",
                    "target",
                    "ms",
                ],
                disable_numparse=True,
            ),
            file=out,
        )
        print(
            f"(ms: compare() per pair; α = {ALPHA}; old design: two-sided Fisher per case + "
            "McNemar per model, uncorrected)\n",
            file=out,
        )
    if args.only != "gate":
        rows, result["sequential"] = sequential_table(args.seq_sims, args.seed)
        print(
            tabulate(
                rows,
                headers=[
                    "plan (c=0.95)",
                    "needs",
                    "level",
                    "worst agreement",
                    "sim. at p=t",
                    "1st batch",
                    *(f"E[n] p={p:g}" for p in (0.3, 0.5, 0.8, 0.9, 0.95, 0.99)),
                ],
                disable_numparse=True,
            ),
            file=out,
        )
    elapsed = time.perf_counter() - started
    result["seconds"] = elapsed
    print(f"\n{elapsed:.0f} s", file=out)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
