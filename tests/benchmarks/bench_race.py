"""Race latency: ``abatch_completion_models`` returns as soon as the fastest model answers.

One fake server answers ``fast`` in 50 ms, ``mid`` in 200 ms and ``slow`` in 1000 ms.
Each variant is raced ``--repeat`` times (after one warm-up race) per transport:

* ``all-ok``    — models fast, mid, slow: ``openai/fast`` must win every race and the two
  losers must be cancelled, which the server sees as 2 client disconnects per race;
* ``fast-fails`` — models fail-503 (answers 503 at once), mid, slow with ``num_retries=0``:
  ``openai/mid`` must win, the failure is reported as ``failed``, and only ``slow`` is
  disconnected (1 per race).

Reported: the median, p95 and max of (time the race returned minus the winning model's
server latency) in ms, the winners seen, and the disconnects the server counted.

    python tests/benchmarks/bench_race.py [--repeat 20] [--transport lean,httpx] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import FakeServer, fake_server  # noqa: E402

LATENCIES = {"fast": 50.0, "mid": 200.0, "slow": 1000.0}
MESSAGES = [{"role": "user", "content": "Which of you answers first?"}]
DISCONNECT_WAIT_S = 2.0


@dataclass(frozen=True)
class Variant:
    """One race setup and what must happen in it."""

    name: str
    models: tuple[str, ...]
    winner: str
    winner_latency_ms: float
    disconnects: int


VARIANTS = (
    Variant("all-ok", ("openai/fast", "openai/mid", "openai/slow"), "openai/fast", 50.0, 2),
    Variant("fast-fails", ("openai/fail-503", "openai/mid", "openai/slow"), "openai/mid", 200.0, 1),
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _disconnects(server: FakeServer, expected: int) -> int:
    """The server's disconnect count, waiting (bounded) for it to reach ``expected``."""
    deadline = time.perf_counter() + DISCONNECT_WAIT_S
    stats = server.stats()
    while stats["disconnects"] < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
        stats = server.stats()
    return int(stats["disconnects"])


async def _run_variant(
    harness: Any, server: FakeServer, variant: Variant, repeat: int
) -> dict[str, Any]:
    params = {"api_base": server.base_url, "api_key": "bench-key", "num_retries": 0}
    server.reset()
    await harness.abatch_completion_models(list(variant.models), MESSAGES, **params)  # warm-up
    await _disconnects(server, variant.disconnects)
    overheads: list[float] = []
    winners: dict[str, int] = {}
    disconnects: list[int] = []
    outcomes: set[str] = set()
    for _ in range(repeat):
        await asyncio.sleep(0.02)  # let the previous race's aborted sockets reach the server
        server.reset()
        t0 = time.perf_counter()
        response = await harness.abatch_completion_models(list(variant.models), MESSAGES, **params)
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        overheads.append(elapsed_ms - variant.winner_latency_ms)
        race = response.harness.race
        winners[race.winner] = winners.get(race.winner, 0) + 1
        outcomes.add(", ".join(f"{c.model.split('/')[-1]}:{c.outcome}" for c in race.contestants))
        disconnects.append(await _disconnects(server, variant.disconnects))
    return {
        "variant": variant.name,
        "models": list(variant.models),
        "races": repeat,
        "median_ms": statistics.median(overheads),
        "p95_ms": _percentile(overheads, 0.95),
        "max_ms": max(overheads),
        "winners": winners,
        "winner_ok": winners == {variant.winner: repeat},
        "disconnects_per_race": sorted(set(disconnects)),
        "disconnects_ok": all(d == variant.disconnects for d in disconnects),
        "expected_disconnects": variant.disconnects,
        "outcomes": sorted(outcomes),
    }


def run(transport: str, server: FakeServer, repeat: int) -> list[dict[str, Any]]:
    """Every variant on one transport."""
    from harness import Harness, HarnessConfig

    harness = Harness(HarnessConfig(), transport=transport)  # type: ignore[arg-type]

    async def all_variants() -> list[dict[str, Any]]:
        try:
            return [await _run_variant(harness, server, v, repeat) for v in VARIANTS]
        finally:
            await harness.aclose()

    rows = asyncio.run(all_variants())
    for row in rows:
        row["transport"] = transport
    return rows


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--transport", default="lean,httpx")
    parser.add_argument("--json", action="store_true", help="JSON rows to stdout, table to stderr")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with fake_server(latency_ms=50.0, model_latency=LATENCIES) as server:
        for transport in args.transport.split(","):
            rows.extend(run(transport, server, args.repeat))
    table = tabulate(
        [[r["transport"], r["variant"], r["races"], f"{r['median_ms']:.1f}", f"{r['p95_ms']:.1f}",
          f"{r['max_ms']:.1f}", " ".join(f"{k}×{v}" for k, v in r["winners"].items()),
          "ok" if r["winner_ok"] else "WRONG",
          f"{r['disconnects_per_race']} (want {r['expected_disconnects']})",
          "ok" if r["disconnects_ok"] else "WRONG"] for r in rows],
        headers=["transport", "variant", "races", "median ms", "p95 ms", "max ms",
                 "winners", "winner", "srv disconnects/race", "cancel"],
    )
    out = sys.stderr if args.json else sys.stdout
    print("overhead = race returned-at minus the winning model's server latency "
          f"({', '.join(f'{k}={v:g}' for k, v in LATENCIES.items())} ms)", file=out)
    print(table, file=out)
    for r in rows:
        print(f"  {r['transport']}/{r['variant']} outcomes: {'; '.join(r['outcomes'])}", file=out)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    if not all(r["winner_ok"] and r["disconnects_ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
