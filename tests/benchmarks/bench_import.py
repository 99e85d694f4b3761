"""Import time: how long ``import harness`` takes in a fresh interpreter.

Runs ``--runs`` fresh subprocesses per measure and reports the median and min/max of

* ``import harness`` alone, timed inside the child with ``perf_counter`` (the target's number),
  with a warm bytecode cache — what users see after the first import;
* the same with ``PYTHONDONTWRITEBYTECODE=1`` and no prefix: the installed packages' own
  ``__pycache__`` is used, but harness is compiled from source unless ``harness/__pycache__``
  already exists (this is what a checkout sees when the environment sets that variable);
* the whole ``python -c "import harness"`` process (warm cache), timed from outside;
* the bare interpreter, ``python -c pass``, for reference;

then runs ``python -X importtime -c "import harness"`` (warm cache) and lists the 10 modules
with the largest cumulative import time (a package's cumulative time includes everything it
imports) and the 10 with the largest self time (their own top-level code: where time can be
saved).

The warm cache lives in a temporary ``PYTHONPYCACHEPREFIX`` directory, filled by one
unmeasured run and deleted at the end, so the project tree is never written to.

    python tests/benchmarks/bench_import.py [--runs 10] [--top 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from tabulate import tabulate

_TIMED = (
    "import time; _t = time.perf_counter(); import harness; "
    "print((time.perf_counter() - _t) * 1000.0)"
)


def _env(pycache: str | None) -> dict[str, str]:
    """The child environment: a bytecode cache under ``pycache``, or no bytecode writing."""
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def _process_ms(code: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60,
                   env=env)
    return (time.perf_counter() - t0) * 1000.0


def _import_ms(env: dict[str, str]) -> float:
    proc = subprocess.run([sys.executable, "-c", _TIMED], check=True, capture_output=True,
                          text=True, timeout=60, env=env)
    return float(proc.stdout.strip())


def _summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values)}


def importtime(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every module's self and cumulative import time from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import harness"],
        check=True, capture_output=True, text=True, timeout=60, env=env,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        rows.append({
            "module": name.strip(),
            "depth": (len(name) - len(name.lstrip()) - 1) // 2,
            "self_ms": int(self_us) / 1000.0,
            "cumulative_ms": int(cumulative_us) / 1000.0,
        })
    return rows


def measure(runs: int, top: int) -> dict[str, Any]:
    """Every measure, with the warm cache in a temporary directory."""
    cold = _env(None)
    with tempfile.TemporaryDirectory(prefix="harness-pycache-") as pycache:
        warm = _env(pycache)
        _import_ms(warm)  # fill the bytecode cache and the disk cache
        result: dict[str, Any] = {
            "runs": runs,
            "import_harness": _summary([_import_ms(warm) for _ in range(runs)]),
            "import_harness_dont_write_bytecode": _summary(
                [_import_ms(cold) for _ in range(runs)]
            ),
            "process_with_import": _summary([_process_ms("import harness", warm)
                                             for _ in range(runs)]),
            "bare_interpreter": _summary([_process_ms("pass", warm) for _ in range(runs)]),
        }
        modules = importtime(warm)
    result["top_cumulative"] = sorted(modules, key=lambda r: -r["cumulative_ms"])[:top]
    result["top_self"] = sorted(modules, key=lambda r: -r["self_ms"])[:top]
    return result


def _print(result: dict[str, Any], top: int, load: str, out: Any) -> None:
    print(f"{result['runs']} fresh interpreters each ({sys.executable}); "
          f"load average before: {load}", file=out)
    rows = (
        ("import harness (timed inside)", "import_harness"),
        ("  same, PYTHONDONTWRITEBYTECODE=1", "import_harness_dont_write_bytecode"),
        ('python -c "import harness"', "process_with_import"),
        ('python -c "pass"', "bare_interpreter"),
    )
    print(tabulate(
        [[label, f"{result[key]['median_ms']:.1f}", f"{result[key]['min_ms']:.1f}",
          f"{result[key]['max_ms']:.1f}"] for label, key in rows],
        headers=["measure", "median ms", "min ms", "max ms"],
    ), file=out)
    print(f"\n-X importtime: top {top} by cumulative time", file=out)
    print(tabulate(
        [[("  " * r["depth"]) + r["module"], f"{r['cumulative_ms']:.1f}", f"{r['self_ms']:.1f}"]
         for r in result["top_cumulative"]],
        headers=["module (indent = nesting)", "cumulative ms", "self ms"],
    ), file=out)
    print(f"\n-X importtime: top {top} by self time (a module's own top-level code)", file=out)
    print(tabulate(
        [[r["module"], f"{r['self_ms']:.1f}", f"{r['cumulative_ms']:.1f}"]
         for r in result["top_self"]],
        headers=["module", "self ms", "cumulative ms"],
    ), file=out)


def main() -> None:
    """Command-line entry point."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="JSON to stdout, tables to stderr")
    args = parser.parse_args()
    result = measure(args.runs, args.top)
    _print(result, args.top, load, sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
