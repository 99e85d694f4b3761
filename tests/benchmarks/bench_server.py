"""Load-test the fake server itself: can it sustain 20,000 requests/s on one core?

Starts ``fake_server.py`` (pinned to one CPU when the machine has more than one) with zero
latency, drives it with keep-alive load generators written on asyncio's ``Protocol`` API
(one or more processes, ``--conns`` connections each, one request at a time per
connection), and reports the requests/s achieved and the server's CPU time per request from
``/stats``. ``1 / cpu_per_request`` is the rate one core can serve; it is the number that
matters when the load generators, which share the machine, cannot saturate the server.

    python tests/benchmarks/bench_server.py [--seconds 3] [--conns 64] [--procs 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import fake_server  # noqa: E402

_BODY = json.dumps(
    {"model": "fast", "messages": [{"role": "user", "content": "Say hello, briefly."}]},
    separators=(",", ":"),
).encode()


class _Loader(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as an answer is complete."""

    def __init__(
        self, request: bytes, deadline: float, done: asyncio.Future[None], counts: list[int]
    ) -> None:
        self.request = request
        self.deadline = deadline
        self.done = done
        self.counts = counts
        self.buf = b""
        self.need = -1
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            i = buf.find(b"Content-Length: ", 0, end)
            j = buf.find(b"\r\n", i)
            self.need = end + 4 + int(buf[i + 16 : j])
        if len(buf) < self.need:
            self.buf = buf
            return
        self.buf = buf[self.need :]
        self.need = -1
        self.counts[0] += 1
        assert self.transport is not None
        if time.perf_counter() < self.deadline:
            self.transport.write(self.request)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts[1] += 1
        if self.counts[1] == self.counts[2] and not self.done.done():
            self.done.set_result(None)


async def _load(port: int, conns: int, seconds: float) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_BODY)
    ) + _BODY
    counts = [0, 0, conns]
    done: asyncio.Future[None] = loop.create_future()
    start = time.perf_counter()
    deadline = start + seconds
    for _ in range(conns):
        await loop.create_connection(
            lambda: _Loader(request, deadline, done, counts), "127.0.0.1", port
        )
    await asyncio.wait_for(done, seconds + 30)
    return counts[0], time.perf_counter() - start


def _load_process(port: int, conns: int, seconds: float, cpu: int | None, out: Any) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    out.put(asyncio.run(_load(port, conns, seconds)))


def run(seconds: float, conns: int, procs: int, parse: str) -> dict[str, Any]:
    """One load test; returns the achieved rate and the server's CPU per request."""
    ncpu = len(os.sched_getaffinity(0))
    server_cpu = max(os.sched_getaffinity(0)) if ncpu > 1 else None
    load_cpus = sorted(os.sched_getaffinity(0) - {server_cpu}) if server_cpu is not None else [None]
    with fake_server(latency_ms=0, parse=parse, cpu=server_cpu) as server:
        server.reset()
        cpu0 = server.stats()["cpu_s"]
        queue: Any = mp.Queue()
        workers = [
            mp.Process(target=_load_process,
                       args=(server.port, conns, seconds, load_cpus[i % len(load_cpus)], queue))
            for i in range(procs)
        ]
        for w in workers:
            w.start()
        try:
            results = [queue.get(timeout=seconds + 60) for _ in workers]
        finally:
            for w in workers:
                w.join(5)
                if w.is_alive():
                    w.kill()
        stats = server.stats()
    total = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    cpu = stats["cpu_s"] - cpu0
    return {
        "parse": parse,
        "procs": procs,
        "conns": conns * procs,
        "requests": total,
        "achieved_rps": total / wall,
        "server_cpu_us_per_req": cpu / max(stats["completed"], 1) * 1e6,
        "one_core_capacity_rps": stats["completed"] / cpu if cpu else float("inf"),
        "server_cpu_busy": cpu / wall,
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--parse", default="scan,json")
    parser.add_argument("--json", action="store_true", help="JSON to stdout, table to stderr")
    args = parser.parse_args()
    rows = [run(args.seconds, args.conns, args.procs, p) for p in args.parse.split(",")]
    table = tabulate(
        [[r["parse"], r["procs"], r["conns"], r["requests"], f"{r['achieved_rps']:,.0f}",
          f"{r['server_cpu_us_per_req']:.1f}", f"{r['one_core_capacity_rps']:,.0f}",
          f"{r['server_cpu_busy']:.0%}"] for r in rows],
        headers=["parse", "load procs", "conns", "requests", "achieved req/s",
                 "server CPU µs/req", "1-core capacity req/s", "server CPU busy"],
    )
    print(table, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
