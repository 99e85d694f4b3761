"""Shared limits: a model's ``max_concurrency`` holds at the server across xdist workers.

Generates a suite of ``--cases`` cases (default 400) for one model whose config says
``max_concurrency = --limit`` (default 4), pointing at the fake server (``--latency-ms``
50), and runs plain ``pytest`` with ``-n`` for each of ``--workers`` (default 0,4; 0 means
without xdist), with the response store off so every case is a call.

Each worker process has its own runner; the slots are leases in one SQLite file
(``.harness/limits.sqlite``) that every worker shares, so the server must never see more
than ``--limit`` requests at once however many workers there are (per-process semaphores
would allow workers × limit). Reported per run: the server's peak in-flight requests
(``ok`` when ≤ limit), the wall time, and the ideal for the calls, ceil(cases / limit) ·
latency, with the collect-only time for reference. The script exits 1 if the limit was
exceeded.

    python tests/benchmarks/bench_limits.py [--cases 400] [--limit 4] [--latency-ms 50]
        [--workers 0,4] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_suite import run_pytest, write_project  # noqa: E402
from fake_server import fake_server  # noqa: E402


def main() -> None:
    """Run the scenarios and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=400)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--workers", default="0,4", help="xdist worker counts; 0 = without xdist")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows: list[dict[str, Any]] = []
    ideal = math.ceil(args.cases / args.limit) * args.latency_ms / 1000
    with fake_server(latency_ms=args.latency_ms) as server, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(
            root, server.base_url, args.cases, 1, f"max_concurrency = {args.limit}\n"
        )
        for workers in [int(w) for w in args.workers.split(",")]:
            xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
            co_wall, _ = run_pytest(root, [*xdist, "--co"])
            server.reset()
            wall, says = run_pytest(root, [*xdist, "--harness-cache", "off"])
            stats = server.stats()
            peak = stats["peak_inflight"]
            rows.append({
                "xdist workers": workers or "off",
                "limit": args.limit,
                "srv peak in-flight": peak,
                "held": "ok" if peak <= args.limit else "EXCEEDED",
                "srv requests": stats["completed"],
                "wall s": round(wall, 2),
                "collect-only s": round(co_wall, 2),
                "calls ideal s": round(ideal, 2),
                "(wall-collect)/ideal": round((wall - co_wall) / ideal, 2),
                "pytest says": says.strip("= "),
            })
    out = sys.stderr if args.json else sys.stdout
    print(f"{args.cases} cases, one model with max_concurrency={args.limit}, server "
          f"{args.latency_ms:g} ms; load average before: {load}", file=out)
    print(tabulate(rows, headers="keys"), file=out)
    if args.json:
        print(json.dumps(rows, indent=2))
    if any(r["held"] != "ok" for r in rows):
        raise SystemExit("the concurrency limit was exceeded at the server")


if __name__ == "__main__":
    main()
