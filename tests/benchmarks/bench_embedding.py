"""Embeddings throughput: ``Harness.aembedding`` against the fake server, vs. the floor.

For each scenario (calls, inputs per call, the model's ``max_concurrency`` C, server latency
L = 50 ms) and each client:

* ``lean`` — ``Harness(transport="lean", max_concurrency=C)``: all the calls at once with
  ``asyncio.gather(*(harness.aembedding(model, input) ...))``, the model's limit holding C
  requests in flight; a call with more inputs than the provider takes in one request is
  split by the harness (Cohere: 96 texts) and its batches sent at once;
* ``lean-workers`` — the same harness driven by C worker coroutines that each await one
  ``aembedding`` after another (as ``abatch_completion`` and ``raw`` do): with ``gather``
  every call is planned and checked before the first answer is read, which the
  ``lean`` row pays at the start and this one does not;
* ``raw`` — the floor: a keep-alive HTTP/1.1 client on asyncio streams with C workers that
  ``json.dumps`` each request body (the same batches), writes it, reads the answer and
  ``json.loads`` it, and does nothing else.

Scenarios (``--quick`` in brackets):

* ``c100``    — 2,000 [500] calls of 1 text to ``openai/fast``, C = 100;
* ``batched`` — 200 [50] calls of 64 texts to ``openai/fast``, C = 20;
* ``split``   — 1 call of 5,000 [2,000] texts to ``cohere/fast`` (96 per request: 53
  requests), C = 16.

Every vector has 256 floats (the server's ``--embedding-dims``). The ideal is
``ceil(requests / C) * L``; the columns are those of ``bench_batch.py`` plus the vectors per
second. Each (scenario, client, round) runs in a fresh child process that warms up with the
scenario's first C calls (at most) before the measured run.

    python tests/benchmarks/bench_embedding.py [--quick] [--scenario c100,batched,split]
        [--client lean,lean-workers,raw] [--rounds 3] [--profile] [--json]

With ``--json`` the tables go to stderr and a JSON list of rows to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_batch import _profiled, _rss_mb  # noqa: E402
from fake_server import fake_server, fetch_stats, reset_stats  # noqa: E402

LATENCY_MS = 50.0
DIMS = 256
CLIENTS = ("lean", "lean-workers", "raw")
CHILD_TIMEOUT_S = 900
BATCH_LIMIT = {"openai": 2048, "cohere": 96}
"""Texts per request, as the adapters split them (``max_embedding_inputs``)."""


@dataclass(frozen=True)
class Scenario:
    """One workload: ``calls`` calls of ``inputs`` texts each, C = ``concurrency``."""

    model: str
    calls: int
    inputs: int
    concurrency: int
    quick_calls: int
    quick_inputs: int

    @property
    def family(self) -> str:
        """The provider part of the model name."""
        return self.model.partition("/")[0]


SCENARIOS: dict[str, Scenario] = {
    "c100": Scenario("openai/fast", 2000, 1, 100, 500, 1),
    "batched": Scenario("openai/fast", 200, 64, 20, 50, 64),
    "split": Scenario("cohere/fast", 1, 5000, 16, 1, 2000),
}


def _inputs(calls: int, inputs: int) -> list[str | list[str]]:
    """The calls' ``input``: one text as a string, several as a list."""
    out: list[str | list[str]] = []
    for c in range(calls):
        texts = [f"Passage {c}.{i}: a short paragraph about topic {i % 17}." for i in range(inputs)]
        out.append(texts[0] if inputs == 1 else texts)
    return out


def _requests(family: str, call_inputs: list[str | list[str]]) -> list[list[str]]:
    """The texts of every HTTP request the calls make, batched as the adapter does."""
    size = BATCH_LIMIT[family]
    out: list[list[str]] = []
    for value in call_inputs:
        texts = [value] if isinstance(value, str) else value
        out.extend(texts[i : i + size] for i in range(0, len(texts), size))
    return out


# --- the raw floor ---------------------------------------------------------------------------


class _RawClient:
    """Keep-alive HTTP/1.1 over asyncio streams; a pool of idle connections across runs."""

    def __init__(self, port: int, family: str) -> None:
        self.port = port
        self.family = family
        path = b"/v2/embed" if family == "cohere" else b"/v1/embeddings"
        self.head = (
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Authorization: Bearer bench-key\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nContent-Length: " % (path, port)
        )
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def _body(self, texts: list[str]) -> dict[str, Any]:
        if self.family == "cohere":
            return {
                "model": "fast",
                "texts": texts,
                "input_type": "search_document",
                "embedding_types": ["float"],
            }
        return {"model": "fast", "input": texts}

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def run(self, requests: list[list[str]], workers: int) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        indices = iter(range(len(requests)))

        async def worker() -> None:
            reader, writer = await self._conn()
            for i in indices:
                body = json.dumps(self._body(requests[i]), separators=(",", ":")).encode()
                writer.write(self.head + b"%d\r\n\r\n" % len(body) + body)
                head = await reader.readuntil(b"\r\n\r\n")
                start = head.lower().find(b"content-length:") + 15
                length = int(head[start : head.find(b"\r\n", start)])
                results[i] = json.loads(await reader.readexactly(length))
            self.idle.append((reader, writer))

        await asyncio.gather(*(worker() for _ in range(min(workers, len(requests)))))
        return results

    def vectors(self, answer: Any) -> list[Any]:
        """The vectors of one answer (empty when it is not a valid one)."""
        if not isinstance(answer, dict):
            return []
        if self.family == "cohere":
            return list((answer.get("embeddings") or {}).get("float") or [])
        return [item.get("embedding") for item in answer.get("data") or []]

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


# --- one measurement (runs in a child process) ----------------------------------------------


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    scenario = Scenario(**spec["scenario"])
    client_name, port, profile = spec["client"], spec["port"], spec["profile"]
    calls, inputs, workers = spec["calls"], spec["inputs"], scenario.concurrency
    call_inputs = _inputs(calls, inputs)
    warm = call_inputs[:workers]
    requests = _requests(scenario.family, call_inputs)
    label = f"{client_name} {calls} x {inputs} C={workers}"
    errors = 0
    first_error: str | None = None
    server_cpu0 = [0.0]
    if client_name == "raw":
        raw = _RawClient(port, scenario.family)

        async def both() -> tuple[list[Any], float, float, float, float]:
            await raw.run(_requests(scenario.family, warm), workers)
            server_cpu0[0] = reset_stats(port)["cpu_s"]
            t0, c0 = time.perf_counter(), time.process_time()
            with _profiled(profile, label):
                out = await raw.run(requests, workers)
            t1, c1 = time.perf_counter(), time.process_time()
            raw.close()
            return out, t0, c0, t1, c1

        results, t0, c0, t1, c1 = asyncio.run(both())
        for texts, answer in zip(requests, results, strict=True):
            vectors = raw.vectors(answer)
            if len(vectors) != len(texts) or any(len(v) != DIMS for v in vectors):
                errors += 1
                first_error = first_error or repr(answer)[:200]
    else:
        from harness import Harness, HarnessConfig

        harness = Harness(HarnessConfig(), transport="lean", max_concurrency=workers)
        base = f"http://127.0.0.1:{port}" + ("" if scenario.family == "cohere" else "/v1")
        params: dict[str, Any] = {"api_base": base, "api_key": "bench-key", "num_retries": 0}

        async def run(values: list[str | list[str]]) -> list[Any]:
            if client_name == "lean":
                return await asyncio.gather(
                    *(harness.aembedding(scenario.model, value, **params) for value in values),
                    return_exceptions=True,
                )
            out: list[Any] = [None] * len(values)
            indices = iter(range(len(values)))

            async def worker() -> None:
                for i in indices:
                    try:
                        out[i] = await harness.aembedding(scenario.model, values[i], **params)
                    except Exception as exc:  # a HarnessError: counted as an error below
                        out[i] = exc

            await asyncio.gather(*(worker() for _ in range(min(workers, len(values)))))
            return out

        async def both() -> tuple[list[Any], float, float, float, float]:
            await run(warm)
            server_cpu0[0] = reset_stats(port)["cpu_s"]
            t0, c0 = time.perf_counter(), time.process_time()
            with _profiled(profile, label):
                out = await run(call_inputs)
            t1, c1 = time.perf_counter(), time.process_time()
            await harness.aclose()
            return out, t0, c0, t1, c1

        results, t0, c0, t1, c1 = asyncio.run(both())
        harness.close()
        for answer in results:
            if isinstance(answer, BaseException):
                errors += 1
                first_error = first_error or repr(answer)[:200]
            elif len(answer.data) != inputs or any(len(d.embedding) != DIMS for d in answer.data):
                errors += 1
                first_error = first_error or f"{len(answer.data)} vectors for {inputs} inputs"
    stats = fetch_stats(port)
    wall = t1 - t0
    ideal = math.ceil(len(requests) / workers) * LATENCY_MS / 1000.0
    row: dict[str, Any] = {
        "client": client_name,
        "model": scenario.model,
        "calls": calls,
        "inputs": inputs,
        "requests": len(requests),
        "workers": workers,
        "latency_ms": LATENCY_MS,
        "dims": DIMS,
        "wall_s": wall,
        "ideal_s": ideal,
        "wall_over_ideal": wall / ideal,
        "req_per_s": len(requests) / wall,
        "vectors_per_s": calls * inputs / wall,
        "cpu_ms_per_req": (c1 - c0) / len(requests) * 1000.0,
        "cpu_us_per_vector": (c1 - c0) / (calls * inputs) * 1e6,
        "peak_rss_mb": _rss_mb(),
        "server_peak_inflight": stats["peak_inflight"],
        "server_completed": stats["completed"],
        "server_new_connections": stats["connections"],
        "server_cpu_ms_per_req": (stats["cpu_s"] - server_cpu0[0]) / len(requests) * 1000.0,
        "errors": errors,
    }
    if first_error:
        row["first_error"] = first_error
    return row


# --- the driver ------------------------------------------------------------------------------


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    head = {"client": spec["client"], "calls": spec["calls"], "inputs": spec["inputs"]}
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {**head, "failed": f"timed out after {CHILD_TIMEOUT_S} s"}
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {**head, "failed": lines[-1] if lines else "?"}
    if spec["profile"]:
        print(proc.stderr, file=sys.stderr)
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    raw_cpu: dict[tuple[str, int], float] = {}
    for r in rows:
        if r["client"] == "raw" and "failed" not in r:
            raw_cpu.setdefault((r["scenario"], r["round"]), r["cpu_ms_per_req"])
    body = []
    for r in rows:
        lead = [r["scenario"], r["client"], r["round"], r["calls"], r["inputs"]]
        if "failed" in r:
            body.append([*lead, "FAILED: " + r["failed"]])
            continue
        floor = raw_cpu.get((r["scenario"], r["round"]))
        body.append(
            [
                *lead,
                r["requests"],
                r["workers"],
                f"{r['wall_s']:.3f}",
                f"{r['ideal_s']:.2f}",
                f"{r['wall_over_ideal']:.2f}",
                f"{r['req_per_s']:,.0f}",
                f"{r['vectors_per_s']:,.0f}",
                f"{r['cpu_ms_per_req']:.3f}",
                f"{r['cpu_ms_per_req'] / floor:.1f}x" if floor else "-",
                f"{r['cpu_us_per_vector']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['server_cpu_ms_per_req']:.3f}",
                r["server_peak_inflight"],
                r["server_new_connections"],
                r["errors"],
            ]
        )
    return tabulate(
        body,
        headers=[
            "scenario",
            "client",
            "round",
            "calls",
            "inputs",
            "requests",
            "C",
            "wall s",
            "ideal s",
            "wall/ideal",
            "req/s",
            "vectors/s",
            "CPU ms/req",
            "CPU vs raw",
            "CPU µs/vector",
            "peak RSS MB",
            "srv CPU ms/req",
            "srv peak in-flight",
            "new conns",
            "errors",
        ],
    )


def _spread(values: list[float], fmt: str) -> str:
    """``median [min–max]`` of the rounds (just the value for one round)."""
    if len(values) == 1:
        return format(values[0], fmt)
    return (
        f"{format(statistics.median(values), fmt)} "
        f"[{format(min(values), fmt)}–{format(max(values), fmt)}]"
    )


def _summary(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if "failed" not in r:
            groups.setdefault((r["scenario"], r["client"]), []).append(r)
    body = [
        [
            scenario,
            client,
            len(group),
            _spread([r["wall_over_ideal"] for r in group], ".2f"),
            _spread([r["req_per_s"] for r in group], ",.0f"),
            _spread([r["cpu_ms_per_req"] for r in group], ".3f"),
            _spread([r["cpu_us_per_vector"] for r in group], ".1f"),
            max(r["server_peak_inflight"] for r in group),
            sum(r["errors"] for r in group),
        ]
        for (scenario, client), group in groups.items()
    ]
    return tabulate(
        body,
        headers=[
            "scenario",
            "client",
            "rounds",
            "wall/ideal",
            "req/s",
            "CPU ms/req",
            "CPU µs/vector",
            "max srv peak in-flight",
            "errors",
        ],
    )


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (see the docstring)")
    parser.add_argument("--scenario", default=",".join(SCENARIOS))
    parser.add_argument("--client", default=",".join(CLIENTS))
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement")
    parser.add_argument("--json", action="store_true", help="JSON rows to stdout, tables to stderr")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each measured run; to stderr"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(json.loads(args.child))))
        return
    plan: list[tuple[str, Scenario, str]] = []
    for name in args.scenario.split(","):
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; choose from {tuple(SCENARIOS)}")
        for client in args.client.split(","):
            if client not in CLIENTS:
                raise SystemExit(f"unknown client {client!r}; choose from {CLIENTS}")
            plan.append((name, SCENARIOS[name], client))
    cpus = os.sched_getaffinity(0)
    server_cpu = max(cpus) if len(cpus) > 1 else None
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with fake_server(
        latency_ms=LATENCY_MS,
        model_latency={"fast": LATENCY_MS},
        cpu=server_cpu,
        embedding_dims=DIMS,
    ) as server:
        for round_ in range(1, args.rounds + 1):
            for name, scenario, client in plan:
                spec = {
                    "scenario": scenario.__dict__,
                    "client": client,
                    "port": server.port,
                    "profile": args.profile,
                    "calls": scenario.quick_calls if args.quick else scenario.calls,
                    "inputs": scenario.quick_inputs if args.quick else scenario.inputs,
                }
                row = _run_child(spec)
                row.update(scenario=name, round=round_)
                rows.append(row)
                print(f"  done {name} {client} round {round_}", file=sys.stderr, flush=True)
    out = sys.stderr if args.json else sys.stdout
    load = ", ".join(f"{x:.2f}" for x in load_before)
    print(
        f"server latency {LATENCY_MS:g} ms, {DIMS} floats per vector, cpus {len(cpus)}"
        f"{f', server pinned to cpu {server_cpu}' if server_cpu is not None else ''}; "
        f"load average before: {load}",
        file=out,
    )
    print(_table(rows), file=out)
    if args.rounds > 1:
        print(f"\nover {args.rounds} rounds: median [min–max]", file=out)
        print(_summary(rows), file=out)
    for r in rows:
        if r.get("first_error"):
            print(
                f"  {r['scenario']} {r['client']} round {r['round']}: {r['first_error']}", file=out
            )
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
