"""Suite throughput: ``pytest suites/`` runs at the speed of the slowest call, not the sum.

Generates a suite of ``--cases`` cases (default 1,000) for ``--models`` models (default 3)
in a temporary project whose models point at the fake server (50 ms per answer), then runs
plain ``pytest`` on it in a subprocess, without xdist and with ``-n 2``. The plugin
prefetches every call when the first item runs, so the model calls overlap; each model is
bounded by ``--harness-max-concurrency`` (default 32).

Reported per run: wall time; the ideal for the calls, ceil(cases / C) · latency (the models
run side by side); the same run with collection only (``--co``), which is pytest's own
fixed cost for these items; and the ratios. Sequential calls would need cases · models ·
latency. The response store is off (``--harness-args``), so every run makes every call;
suite calls stream under the hood, as they do by default.

    python tests/benchmarks/bench_suite.py [--cases 1000] [--models 3] [--workers 0,2]
        [--harness-args "--harness-cache off"] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import fake_server  # noqa: E402


def write_project(
    root: Path, base_url: str, cases: int, models: int, model_toml: str = ""
) -> list[str]:
    """A harness.toml with the models (each with ``model_toml`` lines added) and one suite."""
    names = [f"m{i}" for i in range(1, models + 1)]
    toml = "".join(
        f'[models.{n}]\nmodel = "openai/{n}"\napi_base = "{base_url}"\napi_key_env = "NONE"\n'
        f"{model_toml}\n"
        for n in names
    )
    (root / "harness.toml").write_text(toml)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suites").mkdir()
    lines = [f"models: [{', '.join(names)}]", 'prompt: "Case {{ n }}: say hi"', "cases:"]
    for i in range(cases):
        lines += [f"  - id: c{i}", f"    vars: {{ n: {i} }}", "    assert: [{ equals: ok }]"]
    (root / "suites" / "bench.yaml").write_text("\n".join(lines) + "\n")
    return names


DEV_PLUGINS = ["-p", "no:hypothesispytest", "-p", "no:respx", "-p", "no:asyncio"]
"""Plugins of this repository's dev dependencies, which a user's project would not load
(they add ~0.4 s to every pytest start)."""


def run_pytest(root: Path, extra: list[str]) -> tuple[float, str]:
    """Run pytest in ``root``; return the wall time and the last output line.

    Bytecode caching is on even where the environment sets ``PYTHONDONTWRITEBYTECODE`` (as
    these machines do): without it every run compiles pytest, the plugins and their
    dependencies from source, a second or more that no ordinary installation pays.
    """
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DEV_PLUGINS,
           "suites", *extra]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, env=env)
    wall = time.perf_counter() - t0
    tail = [line for line in done.stdout.splitlines() if line.strip()]
    summary = next((line for line in reversed(tail) if " in " in line and "passed" in line), "")
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return wall, summary


def main() -> None:
    """Run the scenarios and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", default="0,2", help="xdist worker counts; 0 = without xdist")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--harness-args",
        default="--harness-cache off",
        help="extra pytest arguments for every run (default: the response store off, so "
        "every run makes every call; suites stream by default, add --harness-no-stream)",
    )
    args = ap.parse_args()
    args.harness_args = args.harness_args.split()

    rows: list[dict[str, Any]] = []
    with fake_server(latency_ms=args.latency_ms) as server, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, server.base_url, args.cases, args.models)
        calls = args.cases * args.models
        ideal = math.ceil(args.cases / args.concurrency) * args.latency_ms / 1000
        for workers in [int(w) for w in args.workers.split(",")]:
            xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
            co_wall, _ = run_pytest(root, [*xdist, "--co"])
            server.reset()
            wall, summary = run_pytest(
                root,
                [*xdist, "--harness-max-concurrency", str(args.concurrency), *args.harness_args],
            )
            stats = server.stats()
            rows.append(
                {
                    "xdist workers": workers or "off",
                    "items": calls,
                    "wall s": round(wall, 2),
                    "collect-only s": round(co_wall, 2),
                    "calls ideal s": round(ideal, 2),
                    "wall/ideal": round(wall / ideal, 2),
                    "(wall-collect)/ideal": round((wall - co_wall) / ideal, 2),
                    "sequential s": round(calls * args.latency_ms / 1000, 1),
                    "srv requests": stats.get("completed"),
                    "srv peak in-flight": stats.get("peak_inflight"),
                    "pytest says": summary.strip("= "),
                }
            )
    out = sys.stderr if args.json else sys.stdout
    print(
        f"{args.cases} cases x {args.models} models at {args.latency_ms:g} ms, "
        f"C={args.concurrency} per model, {' '.join(args.harness_args) or 'defaults'}; "
        "load average before: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        file=out,
    )
    print(tabulate(rows, headers="keys"), file=out)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
