"""Replay: a suite re-run entirely from the response store vs. the run that recorded it.

Generates a suite of ``--cases`` cases (default 200) for ``--models`` models (default 2)
in a temporary project whose models point at the fake server, which answers like a hosted
LLM (``--latency-ms`` 800, first token at ``--ttft-ms`` 250, at most ``--concurrency`` 8
requests per model at once). Then, in subprocesses running plain ``pytest``:

1. ``--co``: collection only, pytest's own fixed cost for these items;
2. ``--harness-cache record``: every call goes to the server and is stored;
3. the server is **stopped**, then ``--harness-cache replay``: every answer must come from
   the store (a miss would fail the run, and there is no server to reach).

Reported: the two wall times and their ratio (the issue's target: the replay run under 5% of
the recorded run), the same ratio without pytest's fixed cost, requests the server saw, and
from the replayed ``results.json``: how many records were replayed, their recorded median
latency and TTFT (replayed answers keep the recorded timings), and the cost they saved.

    python tests/benchmarks/bench_cache.py [--cases 200] [--models 2] [--latency-ms 800]
        [--ttft-ms 250] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_suite import run_pytest, write_project  # noqa: E402
from fake_server import fetch_stats, start_server_process, stop_server_process  # noqa: E402

PRICE = "price = { input_per_mtok = 2.5, output_per_mtok = 10.0 }\n"


def _replayed(root: Path) -> dict[str, Any]:
    records = json.loads((root / "reports" / "results.json").read_text())["records"]
    hits = [r for r in records if r.get("cache_hit")]
    latencies = [r["latency_ms"] for r in hits if r.get("latency_ms") is not None]
    ttfts = [r["ttft_ms"] for r in hits if r.get("ttft_ms") is not None]
    saved = sum(r.get("saved_cost_usd") or 0.0 for r in hits)
    return {
        "records": len(records),
        "replayed": len(hits),
        "recorded p50 latency ms": round(statistics.median(latencies)) if latencies else None,
        "recorded p50 TTFT ms": round(statistics.median(ttfts)) if ttfts else None,
        "saved $": round(saved, 4),
    }


def main() -> None:
    """Run the three passes and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=800.0)
    ap.add_argument("--ttft-ms", type=float, default=250.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    limit = ["--harness-max-concurrency", str(args.concurrency), "-p", "no:xdist"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, port = start_server_process(args.latency_ms, ttft_ms=args.ttft_ms)
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            write_project(root, base_url, args.cases, args.models, PRICE)  # savings show
            co_wall, _ = run_pytest(root, ["--co", *limit])
            rec_wall, rec_says = run_pytest(root, ["--harness-cache", "record", *limit])
            served = fetch_stats(port)
        finally:
            stop_server_process(proc)
        rep_wall, rep_says = run_pytest(root, ["--harness-cache", "replay", *limit])
        replay = _replayed(root)
    calls = args.cases * args.models
    ideal = math.ceil(args.cases / args.concurrency) * args.latency_ms / 1000
    row = {
        "items": calls,
        "collect-only s": round(co_wall, 2),
        "recorded run s": round(rec_wall, 2),
        "calls ideal s": round(ideal, 2),
        "replay run s": round(rep_wall, 2),
        "replay/recorded": f"{rep_wall / rec_wall:.1%}",
        "(replay-collect)/(recorded-collect)": f"{(rep_wall - co_wall) / (rec_wall - co_wall):.1%}",
        "server requests": served.get("received"),
        **replay,
    }
    out = sys.stderr if args.json else sys.stdout
    print(
        f"{args.cases} cases x {args.models} models; server {args.latency_ms:g} ms, first token "
        f"at {args.ttft_ms:g} ms, C={args.concurrency} per model; replay with the server stopped; "
        f"load average before: {load}",
        file=out,
    )
    print(tabulate([{k: v for k, v in row.items()}], headers="keys"), file=out)
    print(f"recorded: {rec_says}\nreplayed: {rep_says}", file=out)
    if args.json:
        print(json.dumps(row, indent=2))
    if replay["replayed"] != calls:
        raise SystemExit(f"only {replay['replayed']} of {calls} answers were replayed")


if __name__ == "__main__":
    main()
