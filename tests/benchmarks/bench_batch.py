"""Batch throughput: ``Harness.abatch_completion`` against the fake server, vs. the floor.

For each scenario (N requests, C workers, L ms server latency) and each client:

* ``lean``      — ``Harness(transport="lean")``, ``abatch_completion`` (the default path);
* ``lean-capped`` — the same with a priced model and a cost cap (``--harness-max-cost``) far
  above the spend: every call reserves its estimated cost and settles it (SQLite);
* ``lean-sync`` — the same harness through the sync ``batch_completion``;
* ``lean-stream`` — the lean harness with ``stream=True``: every answer is streamed (SSE,
  first chunk at 20 ms, the rest at L) and assembled, with its time to first token;
* ``httpx``     — ``Harness(transport="httpx")``: httpx's own transport (httpcore);
* ``raw``       — the floor: a tiny keep-alive HTTP/1.1 client on asyncio streams with C
  workers that only ``json.dumps`` the body, writes it, reads the answer and ``json.loads`` it;

it reports wall time, the ideal ``ceil(N/C) * L``, wall/ideal, requests/s, peak RSS, client
CPU per request and the server's peak in-flight requests. Every (scenario, client) pair runs
in a fresh child process, so CPU time and peak RSS belong to that client alone; the server is
another process. Each child warms up with one batch of C requests (imports, code paths,
and C keep-alive connections) before the measured batch.

    python tests/benchmarks/bench_batch.py [--quick] [--scenario c100,c1000]
        [--transport lean,lean-sync,lean-stream,httpx,raw] [--json]

With ``--json`` the table goes to stderr and a JSON list of rows to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import fake_server, fetch_stats, reset_stats  # noqa: E402

MODEL = "openai/fast"
LATENCY_MS = 50.0
SCENARIOS: dict[str, tuple[int, int]] = {"c100": (2000, 100), "c1000": (5000, 1000)}
QUICK_N = {"c100": 500, "c1000": 1000}
TRANSPORTS = ("lean", "lean-capped", "lean-sync", "lean-stream", "httpx", "raw")
CAP_USD = 1e9
"""``lean-capped``: a cap far above the spend, so every call reserves and settles its cost."""
TTFT_MS = 20.0
CHILD_TIMEOUT_S = 900


def _conversations(n: int) -> list[list[dict[str, Any]]]:
    return [
        [{"role": "user", "content": f"Say hello to conversation number {i}, briefly."}]
        for i in range(n)
    ]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


@contextlib.contextmanager
def _profiled(enabled: bool, label: str) -> Iterator[None]:
    """Profile the block with cProfile and print the top functions to stderr."""
    if not enabled:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        print(f"--- cProfile of the measured batch ({label}): by own time, then cumulative ---",
              file=sys.stderr)
        print(text.getvalue(), file=sys.stderr)


# --- the raw floor ---------------------------------------------------------------------------


class _RawClient:
    """Keep-alive HTTP/1.1 over asyncio streams; a pool of idle connections across batches."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Authorization: Bearer bench-key\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nContent-Length: " % port
        )

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def batch(self, conversations: list[list[dict[str, Any]]], workers: int) -> list[Any]:
        results: list[Any] = [None] * len(conversations)
        indices = iter(range(len(conversations)))

        async def worker() -> None:
            reader, writer = await self._conn()
            for i in indices:
                body = json.dumps(
                    {"model": "fast", "messages": conversations[i]}, separators=(",", ":")
                ).encode()
                writer.write(self.head + b"%d\r\n\r\n" % len(body) + body)
                head = await reader.readuntil(b"\r\n\r\n")
                start = head.lower().find(b"content-length:") + 15
                length = int(head[start : head.find(b"\r\n", start)])
                results[i] = json.loads(await reader.readexactly(length))
            self.idle.append((reader, writer))

        await asyncio.gather(*(worker() for _ in range(min(workers, len(conversations)))))
        return results

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


# --- one measurement (runs in a child process) ----------------------------------------------


def _capped_harness() -> Any:
    """A lean harness with a priced model and a cost cap in a fresh limits file."""
    import tempfile

    from harness import Harness
    from harness.config import load_config
    from harness.limits import CostBudget

    folder = tempfile.mkdtemp(prefix="bench-cap-")
    config = os.path.join(folder, "harness.toml")
    with open(config, "w", encoding="utf-8") as f:
        f.write('[models.fast]\nmodel = "openai/fast"\n'
                "price = { input_per_mtok = 1.0, output_per_mtok = 2.0 }\n")
    budget = CostBudget(CAP_USD, os.path.join(folder, "limits.sqlite"))
    return Harness(load_config(config), transport="lean", budget=budget)


def _measure(transport: str, n: int, workers: int, port: int, profile: bool) -> dict[str, Any]:
    conversations = _conversations(n)
    warm = conversations[:workers]
    rss_base = _rss_mb()
    params: dict[str, Any] = {
        "api_base": f"http://127.0.0.1:{port}/v1", "api_key": "bench-key", "num_retries": 0,
    }
    if transport == "raw":
        client = _RawClient(port)

        async def both() -> tuple[list[Any], float, float, float, float]:
            await client.batch(warm, workers)
            reset_stats(port)
            t0, c0 = time.perf_counter(), time.process_time()
            with _profiled(profile, f"raw N={n} C={workers}"):
                out = await client.batch(conversations, workers)
            t1, c1 = time.perf_counter(), time.process_time()
            client.close()
            return out, t0, c0, t1, c1

        results, t0, c0, t1, c1 = asyncio.run(both())
        errors = sum(1 for r in results if not isinstance(r, dict) or "choices" not in r)
    else:
        from harness import Harness, HarnessConfig

        kind = "lean" if transport.startswith("lean") else transport
        model = "fast" if transport == "lean-capped" else MODEL
        if transport == "lean-stream":
            params["stream"] = True
        harness = (
            _capped_harness()
            if transport == "lean-capped"
            else Harness(HarnessConfig(), transport=kind)  # type: ignore[arg-type]
        )
        if transport == "lean-sync":
            harness.batch_completion(MODEL, warm, max_workers=workers, **params)
            reset_stats(port)
            t0, c0 = time.perf_counter(), time.process_time()
            results = harness.batch_completion(MODEL, conversations, max_workers=workers, **params)
            t1, c1 = time.perf_counter(), time.process_time()
        else:

            async def both() -> tuple[list[Any], float, float, float, float]:
                await harness.abatch_completion(model, warm, max_workers=workers, **params)
                reset_stats(port)
                t0, c0 = time.perf_counter(), time.process_time()
                with _profiled(profile, f"{transport} N={n} C={workers}"):
                    out = await harness.abatch_completion(
                        model, conversations, max_workers=workers, **params
                    )
                t1, c1 = time.perf_counter(), time.process_time()
                await harness.aclose()
                return out, t0, c0, t1, c1

            results, t0, c0, t1, c1 = asyncio.run(both())
        harness.close()
        errors = sum(1 for r in results if isinstance(r, BaseException))
        first_error = next((repr(r) for r in results if isinstance(r, BaseException)), None)
    stats = fetch_stats(port)
    wall = t1 - t0
    ideal = math.ceil(n / workers) * LATENCY_MS / 1000.0
    out = {
        "transport": transport,
        "n": n,
        "workers": workers,
        "latency_ms": LATENCY_MS,
        "wall_s": wall,
        "ideal_s": ideal,
        "wall_over_ideal": wall / ideal,
        "req_per_s": n / wall,
        "cpu_ms_per_req": (c1 - c0) / n * 1000.0,
        "peak_rss_mb": _rss_mb(),
        "rss_before_mb": rss_base,
        "server_peak_inflight": stats["peak_inflight"],
        "server_completed": stats["completed"],
        "server_new_connections": stats["connections"],
        "errors": errors,
    }
    if transport != "raw" and errors:
        out["first_error"] = first_error
    return out


def _child(spec: str) -> None:
    args = json.loads(spec)
    row = _measure(args["transport"], args["n"], args["workers"], args["port"], args["profile"])
    print(json.dumps(row))


# --- the driver ------------------------------------------------------------------------------


def _run_child(transport: str, n: int, workers: int, port: int, profile: bool) -> dict[str, Any]:
    spec = json.dumps(
        {"transport": transport, "n": n, "workers": workers, "port": port, "profile": profile}
    )
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", spec],
            capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"transport": transport, "n": n, "workers": workers,
                "failed": f"timed out after {CHILD_TIMEOUT_S} s"}
    if proc.returncode != 0:
        return {"transport": transport, "n": n, "workers": workers,
                "failed": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"}
    if profile:
        print(proc.stderr, file=sys.stderr)
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def _plan(args: argparse.Namespace) -> Iterator[tuple[str, int, int, str]]:
    for name in args.scenario.split(","):
        n, workers = SCENARIOS[name]
        if args.quick:
            n = QUICK_N[name]
        for transport in args.transport.split(","):
            if transport not in TRANSPORTS:
                raise SystemExit(f"unknown transport {transport!r}; choose from {TRANSPORTS}")
            yield name, n, workers, transport


def _table(rows: list[dict[str, Any]]) -> str:
    raw_cpu = {r["scenario"]: r["cpu_ms_per_req"] for r in rows if r["transport"] == "raw"
               and "failed" not in r}
    body = []
    for r in rows:
        if "failed" in r:
            failed = "FAILED: " + r["failed"]
            body.append([r["scenario"], r["transport"], r["n"], r["workers"], failed])
            continue
        floor = raw_cpu.get(r["scenario"])
        body.append([
            r["scenario"], r["transport"], r["n"], r["workers"],
            f"{r['wall_s']:.3f}", f"{r['ideal_s']:.2f}", f"{r['wall_over_ideal']:.2f}",
            f"{r['req_per_s']:,.0f}", f"{r['cpu_ms_per_req']:.3f}",
            f"{r['cpu_ms_per_req'] / floor:.1f}x" if floor else "-",
            f"{r['peak_rss_mb']:.0f}", r["server_peak_inflight"], r["server_new_connections"],
            r["errors"],
        ])
    return tabulate(body, headers=[
        "scenario", "client", "N", "C", "wall s", "ideal s", "wall/ideal", "req/s",
        "CPU ms/req", "CPU vs raw", "peak RSS MB", "srv peak in-flight", "new conns", "errors",
    ])


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=500 (C=100) and N=1000 (C=1000)")
    parser.add_argument("--scenario", default=",".join(SCENARIOS))
    parser.add_argument("--transport", default=",".join(TRANSPORTS))
    parser.add_argument("--json", action="store_true", help="JSON rows to stdout, table to stderr")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each measured async batch (not lean-sync); to stderr")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    cpus = os.sched_getaffinity(0)
    server_cpu = max(cpus) if len(cpus) > 1 else None
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with fake_server(latency_ms=LATENCY_MS, model_latency={"fast": LATENCY_MS},
                     cpu=server_cpu, ttft_ms=TTFT_MS) as server:
        for name, n, workers, transport in _plan(args):
            row = _run_child(transport, n, workers, server.port, args.profile)
            row["scenario"] = name
            rows.append(row)
            print(f"  done {name} {transport}", file=sys.stderr, flush=True)
    out = sys.stderr if args.json else sys.stdout
    load = ", ".join(f"{x:.2f}" for x in load_before)
    print(f"server latency {LATENCY_MS:g} ms, model {MODEL}, cpus {len(cpus)}"
          f"{f', server pinned to cpu {server_cpu}' if server_cpu is not None else ''}; "
          f"load average before: {load}", file=out)
    print(_table(rows), file=out)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
