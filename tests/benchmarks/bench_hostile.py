"""Hostile suites: how long loading takes to refuse a YAML alias bomb and a looping template.

The tests check that both are refused (the alias count, the render deadline on an injected
clock); this script measures the real time it takes, ``--runs`` times each, on

* the "billion laughs" suite (nine levels of nine aliases), with a plain prompt and with
  a prompt that uses the largest value: refused at the level that passes 1,000,000 nodes;
* a prompt whose nested loops would run 10^10 times, with ``MAX_RENDER_SECONDS`` set to
  ``--render-seconds``: refused once the deadline has passed (the overshoot is the figure).

Targets (the bounds the tests used to assert): the alias bomb refused in under 1 s; the loop,
with a 0.2 s deadline, in under 5 s.

    python tests/benchmarks/bench_hostile.py [--runs 5] [--render-seconds 0.2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

import harness.suites
from harness.suites import SuiteError, load_suite

_LEVELS = "\n".join(
    f"  lol{n}: &lol{n} [" + ",".join([f"*lol{n - 1}"] * 9) + "]" for n in range(2, 10)
)
LAUGHS = (
    "prompt: {prompt}\nvars:\n"
    '  lol1: &lol1 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + _LEVELS
    + "\ncases: [{{id: a}}]\n"
)
LOOP = (
    'prompt: "{% set r = range(100000)|list %}'
    '{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}"\n'
    "cases: [{id: a}]\n"
)


def refusal_ms(directory: Path, text: str) -> float:
    """Milliseconds ``load_suite`` takes to refuse the suite ``text``."""
    path = directory / "suite.yaml"
    path.write_text(text)
    start = time.perf_counter()
    try:
        load_suite(path)
    except SuiteError as exc:
        elapsed = (time.perf_counter() - start) * 1000.0
        if "aliases expand" not in str(exc) and "rendering took longer" not in str(exc):
            raise SystemExit(f"refused for another reason: {exc}") from None
        return elapsed
    raise SystemExit(f"not refused:\n{text}")


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--render-seconds", type=float, default=0.2)
    parser.add_argument(
        "--json", action="store_true", help="JSON on stdout; the table goes to stderr"
    )
    args = parser.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bench_hostile: --runs {args.runs}; load average {load}", file=out)
    harness.suites.MAX_RENDER_SECONDS = args.render_seconds
    scenarios = {
        "alias bomb, plain prompt": (LAUGHS.format(prompt="hi"), 1000.0),
        "alias bomb, prompt uses lol9": (LAUGHS.format(prompt="'{{ lol9 }}'"), 1000.0),
        f"loop, deadline {args.render_seconds:g} s": (
            LOOP,
            args.render_seconds * 1000.0 + 4800.0,
        ),
    }
    rows: list[list[str]] = []
    result: dict[str, Any] = {"runs": args.runs, "render_seconds": args.render_seconds}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (text, target) in scenarios.items():
            times = [refusal_ms(Path(tmp), text) for _ in range(args.runs)]
            median = statistics.median(times)
            result[name] = {"median_ms": median, "max_ms": max(times), "target_ms": target}
            rows.append(
                [
                    name,
                    f"{median:.1f}",
                    f"{max(times):.1f}",
                    f"< {target:.0f}",
                    "ok" if max(times) < target else "MISSED",
                ]
            )
    print(
        tabulate(
            rows, headers=["suite", "median ms", "max ms", "target", ""], disable_numparse=True
        ),
        file=out,
    )
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
