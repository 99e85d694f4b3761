"""Gateway overhead: ``harness serve`` driven by the official ``openai`` SDK vs. the provider.

One fake provider (``fake_server.py``, every answer after L = 50 ms) and, in front of it, a
``harness serve`` process (``--port 0 --cache off``, model ``fast`` = ``openai/fast`` with
``max_concurrency = 1000``). For each scenario (N requests, C in flight) and each round, in
this order (alternating, so a noisy moment hits both alike):

* ``direct``  — the ``openai`` SDK (``AsyncOpenAI``, ``max_retries=0``, one client whose
  connection pool holds C keep-alive connections) straight at the fake provider: the baseline;
* ``harness`` — the same client and workload through ``harness serve``;
* ``litellm`` — with ``--litellm PATH``: the same through the LiteLLM proxy
  (``litellm --config <yaml> --port <free>``, the same model at the same provider).

The client (``--client``) is the ``openai`` SDK (``sdk``, the issue's driver) or ``raw``, a
minimal keep-alive client on asyncio streams that leaves the CPU to the gateway (the SDK costs
~1.7 ms of CPU per request, so with it even ``direct`` is ~3.5 x ideal at C = 100 here).
Every measurement runs in a fresh child process (the client) that warms up with one batch of
C requests, then times N requests with C workers. Reported: wall time, the ideal
``ceil(N/C) * L``, wall/ideal, requests/s, the p50/p99 latency of one request as the client
saw it and what the gateway ADDED to them (gateway minus ``direct`` in the same round), the
gateway's CPU per request (``/proc/<pid>/stat`` utime + stime around the measured batch), the
client's CPU per request, the provider's peak in-flight requests and new connections, and
errors. Targets (issue 13): wall/ideal <= 1.3 at C = 100, added p50 <= 2 ms.

    python tests/benchmarks/bench_serve.py [--quick] [--scenario c100,c500] [--rounds 2]
        [--client sdk,raw] [--litellm /tmp/litellm-venv/bin/litellm]
        [--gateway-python PATH] [--gateway-uvloop] [--profile] [--json]

``--gateway-python`` runs the gateway with another interpreter (e.g. a venv with httptools
and uvloop; this checkout's ``harness`` goes first on its path), ``--gateway-uvloop`` on
uvloop's event loop.

``--profile`` runs the gateway under cProfile, switched on for the measured batches only
(SIGUSR1/SIGUSR2), and prints its top functions to stderr; its rows are slower for it.
With ``--json`` the table goes to stderr and a JSON list of rows to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib
import importlib.util
import io
import itertools
import json
import math
import os
import pstats
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import (  # noqa: E402
    fake_server,
    fetch_stats,
    reset_stats,
    stop_server_process,
)

MODEL = "fast"
LATENCY_MS = 50.0
SCENARIOS: dict[str, tuple[int, int]] = {"c100": (2000, 100), "c500": (5000, 500)}
QUICK_N = {"c100": 500, "c500": 1000}
MAX_CONCURRENCY = 1000
START_TIMEOUT_S = 60.0
LITELLM_START_TIMEOUT_S = 180.0
CHILD_TIMEOUT_S = 600
TARGET_WALL_OVER_IDEAL = 1.3
TARGET_ADDED_P50_MS = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
LITELLM_KEY = "sk-bench-serve-0123456789abcdef"  # the proxy refuses to start without one
CLIENTS = ("sdk", "raw")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the gateways ----------------------------------------------------------------------------


def _write_config(workdir: Path, provider_port: int) -> Path:
    path = workdir / "harness.toml"
    path.write_text(
        f"""[cache]
mode = "off"

[limits]
path = "{workdir / 'limits.sqlite'}"

[models.{MODEL}]
model = "openai/fast"
api_base = "http://127.0.0.1:{provider_port}/v1"
api_key_env = "NONE"
max_concurrency = {MAX_CONCURRENCY}
"""
    )
    return path


@contextlib.contextmanager
def harness_gateway(
    workdir: Path, provider_port: int, profile_to: Path | None, python: str, uvloop: bool
) -> Iterator[tuple[int, int]]:
    """``harness serve`` on a free port for the block: yields (pid, port).

    ``python`` runs it (another venv: this checkout's ``harness`` goes first on its path);
    with ``profile_to`` or ``uvloop`` it runs inside this script's ``--wrap-serve``.
    """
    config = _write_config(workdir, provider_port)
    serve_args = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0",
                  "--cache", "off"]
    if profile_to is None and not uvloop:
        cmd = [python, "-m", "harness.cli", *serve_args]
    else:
        wrap = json.dumps({"profile_to": profile_to and str(profile_to), "uvloop": uvloop})
        cmd = [python, os.path.abspath(__file__), "--wrap-serve", wrap, *serve_args]
    env = dict(os.environ)
    spec = importlib.util.find_spec("harness")
    if spec is not None and spec.origin is not None:
        root = str(Path(spec.origin).parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while not line.startswith("harness serve: listening on http://"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
            line = proc.stdout.readline() if ready else ""
            if not ready or (not line and proc.poll() is not None):
                raise RuntimeError(f"harness serve did not start (exit {proc.poll()})")
        port = int(line.strip().rsplit(":", 1)[1])
        yield proc.pid, port
    finally:
        stop_server_process(proc, 10.0)


@contextlib.contextmanager
def litellm_gateway(exe: str, workdir: Path, provider_port: int) -> Iterator[tuple[int, int]]:
    """The LiteLLM proxy (one worker) on a free port for the block: yields (pid, port)."""
    config = workdir / "litellm.yaml"
    config.write_text(
        f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/fast
      api_base: http://127.0.0.1:{provider_port}/v1
      api_key: bench-key
litellm_settings:
  telemetry: false
"""
    )
    port = _free_port()
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
               LITELLM_MASTER_KEY=LITELLM_KEY)
    log = (workdir / "litellm.log").open("w")
    proc = subprocess.Popen(
        [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", "1"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + LITELLM_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"litellm exited with {proc.returncode}; see its log")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health/liveliness", timeout=2
                ) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("litellm did not become ready")
            time.sleep(0.25)
        yield proc.pid, port
    finally:
        stop_server_process(proc, 10.0)
        log.close()


def _wrapped_serve(wrap: dict[str, Any], serve_args: list[str]) -> None:
    """Run ``harness serve`` in this process, on uvloop's event loop if asked; with a
    ``profile_to`` path, SIGUSR1 starts cProfile (the loop's thread) and SIGUSR2 dumps it."""
    profile = cProfile.Profile()
    profile_to = wrap["profile_to"]

    def start(signum: int, frame: Any) -> None:
        profile.enable()

    def dump(signum: int, frame: Any) -> None:
        profile.disable()
        profile.dump_stats(profile_to)

    if profile_to:
        signal.signal(signal.SIGUSR1, start)
        signal.signal(signal.SIGUSR2, dump)
    if wrap["uvloop"]:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # the CLI's new_event_loop()
    from harness.cli import main

    sys.exit(main(serve_args))


# --- one measurement (runs in a child process: the client) ----------------------------------


class _RawClient:
    """The floor: keep-alive HTTP/1.1 on asyncio streams, C connections, json in and out."""

    def __init__(self, port: int, api_key: str) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nContent-Length: " % (port, api_key.encode())
        )

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def create(self, messages: list[dict[str, str]], conn: Any) -> dict[str, Any]:
        reader, writer = conn
        body = json.dumps({"model": MODEL, "messages": messages}, separators=(",", ":")).encode()
        writer.write(self.head + b"%d\r\n\r\n" % len(body) + body)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        start = head.find(b"content-length:")
        if start >= 0:
            start += 15
            data = await reader.readexactly(int(head[start : head.find(b"\r\n", start)]))
        else:  # chunked
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append((await reader.readexactly(size + 2))[:-2])
            await reader.readuntil(b"\r\n")
            data = b"".join(parts)
        answer: dict[str, Any] = json.loads(data)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
        return answer

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    n, workers = spec["n"], spec["workers"]
    pid = spec["gateway_pid"]
    if spec["client"] == "raw":
        raw = _RawClient(spec["port"], spec["api_key"])

        async def one(messages: list[dict[str, str]], conn: Any) -> str | None:
            answer = await raw.create(messages, conn)
            content: str | None = answer["choices"][0]["message"]["content"]
            return content
    else:
        import openai

        # the SDK's own HTTP library (httpx, or the fork it ships with), for its pool limits
        http = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__
                                       .partition(".")[0])
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{spec['port']}/v1", api_key=spec["api_key"],
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=http.Limits(max_connections=workers, max_keepalive_connections=workers)
            ),
        )

        async def one(messages: list[dict[str, str]], conn: Any) -> str | None:
            response = await client.chat.completions.create(
                model=MODEL, messages=messages  # type: ignore[arg-type]
            )
            return response.choices[0].message.content

    async def batch(count: int) -> tuple[list[float], int, str | None]:
        latencies: list[float] = []
        errors = 0
        first_error: str | None = None
        indices = iter(range(count))

        async def worker() -> None:
            nonlocal errors, first_error
            conn = await raw._conn() if spec["client"] == "raw" else None
            for i in indices:
                messages = [{"role": "user", "content": f"Say hello to number {i}, briefly."}]
                t0 = time.perf_counter()
                try:
                    if not await one(messages, conn):
                        raise ValueError("empty answer")
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors += 1
                    first_error = first_error or repr(exc)[:300]
                    if conn is not None:
                        conn = await asyncio.open_connection("127.0.0.1", spec["port"])
                    continue
                latencies.append((time.perf_counter() - t0) * 1000.0)
            if conn is not None:
                raw.idle.append(conn)

        await asyncio.gather(*(worker() for _ in range(min(workers, count))))
        return latencies, errors, first_error

    await batch(workers)  # warm-up: imports, code paths, C keep-alive connections everywhere
    reset_stats(spec["provider_port"])
    if spec["profile"] and pid is not None:
        os.kill(pid, signal.SIGUSR1)
    g0, c0, t0 = _proc_cpu_s(pid), time.process_time(), time.perf_counter()
    latencies, errors, first_error = await batch(n)
    t1, c1, g1 = time.perf_counter(), time.process_time(), _proc_cpu_s(pid)
    if spec["profile"] and pid is not None:
        os.kill(pid, signal.SIGUSR2)
    if spec["client"] == "raw":
        raw.close()
    else:
        await client.close()
    stats = fetch_stats(spec["provider_port"])
    wall = t1 - t0
    ideal = math.ceil(n / workers) * LATENCY_MS / 1000.0
    return {
        "n": n,
        "workers": workers,
        "latency_ms": LATENCY_MS,
        "wall_s": wall,
        "ideal_s": ideal,
        "wall_over_ideal": wall / ideal,
        "req_per_s": n / wall,
        "p50_ms": _percentile(latencies, 0.50) if latencies else None,
        "p99_ms": _percentile(latencies, 0.99) if latencies else None,
        "gateway_cpu_ms_per_req": (g1 - g0) / n * 1000.0 if g0 is not None and g1 is not None
        else None,
        "client_cpu_ms_per_req": (c1 - c0) / n * 1000.0,
        "provider_peak_inflight": stats["peak_inflight"],
        "provider_new_connections": stats["connections"],
        "errors": errors,
        "first_error": first_error,
    }


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
            capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {CHILD_TIMEOUT_S} s"}
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"failed": lines[-1] if lines else f"exit {proc.returncode}"}
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


# --- the driver ------------------------------------------------------------------------------


def _print_profile(path: Path, label: str) -> None:
    for _ in range(50):  # the gateway writes it on SIGUSR2, a moment after the batch
        if path.exists() and path.stat().st_size:
            break
        time.sleep(0.1)
    else:
        print(f"--- no profile from the gateway ({label}) ---", file=sys.stderr)
        return
    time.sleep(0.2)
    text = io.StringIO()
    stats = pstats.Stats(str(path), stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(45)
    print(f"--- cProfile of the gateway, measured batch ({label}): own time, then cumulative ---",
          file=sys.stderr)
    print(text.getvalue(), file=sys.stderr)
    path.unlink()


def _added(rows: list[dict[str, Any]]) -> None:
    """Fill ``added_p50_ms``/``added_p99_ms``: a gateway row minus its round's direct row."""
    direct = {(r["scenario"], r["client"], r["round"]): r for r in rows
              if r["target"] == "direct" and "failed" not in r}
    for r in rows:
        base = direct.get((r["scenario"], r["client"], r["round"]))
        if r["target"] == "direct" or base is None or "failed" in r or r["p50_ms"] is None:
            continue
        r["added_p50_ms"] = r["p50_ms"] - base["p50_ms"]
        r["added_p99_ms"] = r["p99_ms"] - base["p99_ms"]


def _fmt(value: Any, spec: str, signed: bool = False) -> str:
    if value is None:
        return "-"
    return format(value, ("+" if signed else "") + spec)


def _table(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        head = [r["scenario"], r["client"], r["target"], r["round"]]
        if "failed" in r:
            body.append([*head, "FAILED: " + r["failed"]])
            continue
        body.append([
            *head, r["n"], r["workers"], f"{r['wall_s']:.3f}", f"{r['ideal_s']:.2f}",
            f"{r['wall_over_ideal']:.2f}", f"{r['req_per_s']:,.0f}",
            _fmt(r["p50_ms"], ".1f"), _fmt(r["p99_ms"], ".1f"),
            _fmt(r.get("added_p50_ms"), ".1f", True), _fmt(r.get("added_p99_ms"), ".1f", True),
            _fmt(r["gateway_cpu_ms_per_req"], ".3f"), f"{r['client_cpu_ms_per_req']:.3f}",
            r["provider_peak_inflight"], r["provider_new_connections"], r["errors"],
        ])
    return tabulate(body, headers=[
        "scenario", "client", "target", "round", "N", "C", "wall s", "ideal s", "wall/ideal", "req/s",
        "p50 ms", "p99 ms", "added p50", "added p99", "gw CPU ms/req", "client CPU ms/req",
        "prov peak in-flight", "prov new conns", "errors",
    ])


def _verdict(rows: list[dict[str, Any]], client: str) -> list[str]:
    """The issue's targets, on the median over rounds of the harness rows at C = 100."""
    ok = [r for r in rows if r["target"] == "harness" and r["scenario"] == "c100"
          and r["client"] == client and "failed" not in r]
    if not ok:
        return []
    ratio = statistics.median(r["wall_over_ideal"] for r in ok)
    added = [r["added_p50_ms"] for r in ok if "added_p50_ms" in r]
    lines = [f"{client} client: target wall/ideal <= {TARGET_WALL_OVER_IDEAL} at C=100: median {ratio:.2f} "
             f"({'met' if ratio <= TARGET_WALL_OVER_IDEAL else 'MISSED'})"]
    if added:
        mid = statistics.median(added)
        lines.append(f"{client} client: target added p50 <= {TARGET_ADDED_P50_MS:g} ms: median {mid:+.1f} ms "
                     f"({'met' if mid <= TARGET_ADDED_P50_MS else 'MISSED'})")
    return lines


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=500 (C=100) and N=1000 (C=500)")
    parser.add_argument("--scenario", default=",".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=2, help="direct/gateway(s) alternations")
    parser.add_argument("--litellm", metavar="PATH",
                        help="the LiteLLM proxy's `litellm` script: add its rows")
    parser.add_argument("--client", default="sdk,raw",
                        help="sdk (the openai SDK, the issue's driver) and/or raw (a minimal "
                             "client that leaves the CPU to the gateway); default both")
    parser.add_argument("--no-direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the gateway over each measured batch; to stderr")
    parser.add_argument("--json", action="store_true", help="JSON rows to stdout, table to stderr")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--gateway-python", default=sys.executable, metavar="PATH",
                        help="the interpreter that runs `harness serve` (e.g. a venv with "
                             "httptools/uvloop); this checkout's harness is put on its path")
    parser.add_argument("--gateway-uvloop", action="store_true",
                        help="run the gateway on uvloop's event loop (needs uvloop there)")
    parser.add_argument("--wrap-serve", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.wrap_serve:
        _wrapped_serve(json.loads(args.wrap_serve), rest)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.child:
        print(json.dumps(asyncio.run(_drive(json.loads(args.child)))))
        return
    for name in args.scenario.split(","):
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; choose from {tuple(SCENARIOS)}")
    clients = args.client.split(",")
    for client in clients:
        if client not in CLIENTS:
            raise SystemExit(f"unknown client {client!r}; choose from {CLIENTS}")
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serve-")))
        provider = stack.enter_context(fake_server(latency_ms=LATENCY_MS,
                                                   model_latency={MODEL: LATENCY_MS}))
        profile_path = workdir / "gateway.prof" if args.profile else None
        gw_pid, gw_port = stack.enter_context(harness_gateway(
            workdir, provider.port, profile_path, args.gateway_python, args.gateway_uvloop))
        targets: list[tuple[str, int | None, int, str]] = [
            ("harness", gw_pid, gw_port, "bench-key")]
        if not args.no_direct:
            targets.insert(0, ("direct", None, provider.port, "bench-key"))
        if args.litellm:
            try:
                ll_pid, ll_port = stack.enter_context(
                    litellm_gateway(args.litellm, workdir, provider.port))
                targets.append(("litellm", ll_pid, ll_port, LITELLM_KEY))
            except RuntimeError as exc:
                print(f"litellm: {exc}", file=sys.stderr)
                log = workdir / "litellm.log"
                if log.exists():
                    print(log.read_text()[-3000:], file=sys.stderr)
        for name in args.scenario.split(","):
            n, workers = SCENARIOS[name]
            if args.quick:
                n = QUICK_N[name]
            for round_, client in itertools.product(range(1, args.rounds + 1), clients):
                for target, pid, port, key in targets:
                    profiled = args.profile and target == "harness"
                    row = _run_child({
                        "n": n, "workers": workers, "gateway_pid": pid, "port": port,
                        "api_key": key, "client": client, "provider_port": provider.port,
                        "profile": profiled,
                    })
                    row.update(scenario=name, client=client, round=round_,
                               target=target + (" (profiled)" if profiled else ""))
                    rows.append(row)
                    print(f"  done {name} {client} {target} round {round_}", file=sys.stderr,
                          flush=True)
                    if profiled and profile_path is not None:
                        _print_profile(profile_path, f"{name} {client} round {round_}")
    _added(rows)
    out = sys.stderr if args.json else sys.stdout
    load = ", ".join(f"{x:.2f}" for x in load_before)
    print(f"provider latency {LATENCY_MS:g} ms, model {MODEL}, cpus {len(os.sched_getaffinity(0))}; "
          f"load average before: {load}", file=out)
    print(_table(rows), file=out)
    for line in [line for client in clients for line in _verdict(rows, client)]:
        print(line, file=out)
    for r in rows:
        if r.get("first_error"):
            print(f"  {r['scenario']} {r['client']} {r['target']} round {r['round']}: first error "
                  f"{r['first_error']}", file=out)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
