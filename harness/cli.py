"""The ``harness`` command: re-render, compare and merge saved runs; maintain the store.

::

    harness report results.json [--baseline old.json] [--out DIR] [--format html,md,json]
    harness compare old.json new.json [--alpha 0.05]     # exit 1 on a significant regression
    harness compare last current [--dir reports]         # the newest kept run vs the latest
    harness power --cases 200 --repeats 3 --pass-rate 0.8 [--drop 10pp] [--power 0.8,0.9]
    harness merge a.json b.json ... --out merged.json      # sharded CI jobs → one run
    harness runs [--dir reports] [--json]                  # the kept runs, newest first
    harness pairwise results.json --models a,b [--judge J] [--rubric TEXT] [--out DIR]
    harness demo                                           # the offline three-shapes demo
    harness checks [--markdown]                            # the checks; the full reference
    harness cache stats|prune --older-than 7d|export F|import F   # the response store
    harness serve [--config F] [--host H] [--port P] [--api-key K] [--cache MODE] [--record-dir D]
                  [--cache-path F] [--max-cost USD]
    harness init [DIR]                                     # a starter project, offline
    harness --version

Exit status: 0 on success, 1 when ``compare`` finds a significant regression, 2 on bad
input (a missing or malformed results file, an out-of-range ``power`` argument, an
unusable cache or export file, files ``init`` would overwrite), with one line on stderr
saying which. Piped into a reader that stops early (``harness checks | head -1``), a
command stops writing quietly and exits 141 (128 + SIGPIPE, as ``cat`` killed by the
signal does), without a traceback.

``compare``'s α is the gate's family-wise error rate: comparing two runs with no real
change exits 1 with probability at most α, over every model and case together
(``harness.report.compare``). ``power`` sizes a suite for that gate: the smallest drop in
pass rate it detects with the given power, and with ``--drop`` the repeats needed
(``harness.stats.gate_power`` states the scenario; ``docs/statistics.md`` the validation).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.paths import DEFAULT_CACHE_PATH

__all__ = [
    "BROKEN_PIPE_STATUS",
    "cache_command",
    "init_command",
    "main",
    "parse_duration",
    "serve_command",
]

FORMATS = ("json", "html", "md")

_DIR_HELP = (
    "the report directory whose runs/ last, previous and last~N name (and whose results.json "
    "current names; default reports)"
)


def _formats(value: str) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in value.split(",") if f.strip())
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) if bad else repr(value)}; "
            f"choose from {', '.join(FORMATS)}"
        )
    return chosen


def _parser() -> argparse.ArgumentParser:
    from harness._version import __version__

    ap = argparse.ArgumentParser(prog="harness", description="Reports for harness runs.")
    ap.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="render reports from a saved results.json")
    rep.add_argument("results", type=Path, help="results.json (or results.jsonl)")
    rep.add_argument(
        "--baseline", type=Path, help="a previous results.json to compare with, or last[~N]"
    )
    rep.add_argument("--dir", type=Path, default=Path("reports"), help=_DIR_HELP)
    rep.add_argument("--out", type=Path, help="output directory (default: next to the results)")
    rep.add_argument(
        "--format",
        type=_formats,
        default=("html", "md"),
        help="comma-separated: html, md, json (default html,md)",
    )
    cmp_ = sub.add_parser("compare", help="the regression table of two runs")
    cmp_.add_argument("baseline", type=Path, help="results.json, or last, previous, last~N")
    cmp_.add_argument("current", type=Path, help="results.json, or current")
    cmp_.add_argument("--dir", type=Path, default=Path("reports"), help=_DIR_HELP)
    cmp_.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="the gate's false-alarm rate: with no real change, exit 1 at most this often (0.05)",
    )
    pow_ = sub.add_parser(
        "power",
        help="the smallest drop in pass rate the gate detects, or the repeats a drop needs",
        description=(
            "Power of the regression gate for a suite shape. Assumes every case passes with "
            "the same probability and a drop shifts every case (a mix of reliable and flaky "
            "cases at the same mean pass rate gives more power). Rates accept 0.8, 80 or 80%; "
            "drops 0.1, 10, 10% or 10pp."
        ),
    )
    pow_.add_argument("--cases", help="cases per model in the suite")
    pow_.add_argument("--repeats", help="repeats per case in each run")
    pow_.add_argument("--pass-rate", help="the baseline pass rate of a case")
    pow_.add_argument("--alpha", default="0.05", help="the gate's alpha (0.05)")
    pow_.add_argument("--drop", help="a drop to size the repeats for")
    pow_.add_argument("--power", default="0.8,0.9", help="comma-separated powers (0.8,0.9)")
    pow_.add_argument("--models", default="1", help="models compared at once (1)")
    pow_.add_argument(
        "--max-repeats", default="100", help="the most repeats to consider with --drop (100)"
    )
    mer = sub.add_parser("merge", help="merge runs from sharded jobs into one")
    mer.add_argument("inputs", type=Path, nargs="+")
    mer.add_argument("--out", type=Path, required=True, help="the merged results.json")
    runs = sub.add_parser("runs", help="the runs kept in <report-dir>/runs, newest first")
    runs.add_argument(
        "--dir", type=Path, default=Path("reports"), help="the report directory (reports)"
    )
    runs.add_argument("--json", action="store_true", help="one JSON object per run, in a list")
    pw = sub.add_parser("pairwise", help="judge two models of a saved run head to head")
    pw.add_argument("results", type=Path, help="results.json (or results.jsonl)")
    pw.add_argument("--models", required=True, help="the two models, as A,B")
    pw.add_argument("--judge", help="the judge model (default: judge_model, else 'judge')")
    pw.add_argument("--rubric", help="what makes an answer better (default: pairwise@1)")
    pw.add_argument("--config", type=Path, help="harness.toml or pyproject.toml")
    pw.add_argument("--cache-path", type=Path, default=DEFAULT_CACHE_PATH)
    pw.add_argument("--out", type=Path, help="report directory (default: the results' folder)")
    sub.add_parser("demo", help="the offline demo of the three call shapes")
    chk = sub.add_parser("checks", help="the checks a suite's assert: list can use")
    chk.add_argument(
        "--markdown", action="store_true", help="the full reference (docs/checks.md) as Markdown"
    )
    sub.add_parser("cache", help="the response store: stats, prune, export, import", add_help=False)
    ini = sub.add_parser("init", help="write a starter project (offline models, a suite, CI)")
    ini.add_argument("dir", nargs="?", type=Path, default=Path("."), help="where (default: .)")
    srv = sub.add_parser("serve", help="an OpenAI-compatible HTTP server over the models")
    srv.add_argument("--config", type=Path, help="harness.toml or pyproject.toml")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=4000, help="0: any free port")
    srv.add_argument("--api-key", help="required as Bearer (default: HARNESS_SERVE_API_KEY)")
    srv.add_argument("--cache", dest="cache_mode", help="use, replay, record, refresh-failed, off")
    srv.add_argument("--cache-path", type=Path, help="the response store's SQLite file")
    srv.add_argument("--record-dir", type=Path, help="append results.jsonl records there")
    srv.add_argument("--max-cost", type=float, help="cost cap in USD for the server's life")
    return ap


def serve_command(args: argparse.Namespace) -> int:
    """``harness serve``: run the ASGI app under uvicorn until SIGINT/SIGTERM."""
    try:
        import uvicorn
    except ImportError:
        print('harness serve needs uvicorn: pip install "llm-harness[serve]"', file=sys.stderr)
        return 2
    import asyncio

    from harness.errors import HarnessError
    from harness.serve import create_app

    try:
        app = create_app(
            args.config,
            api_key=args.api_key,
            cache_mode=args.cache_mode,
            cache_path=args.cache_path,
            record_dir=args.record_dir,
            max_cost=args.max_cost,
        )
    except (HarnessError, ValueError, OSError) as exc:
        print(f"harness serve: {exc}", file=sys.stderr)
        return 2

    class _Server(uvicorn.Server):
        """Announces the bound address; a stop signal also cancels the calls in flight."""

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            if self.should_exit:
                return
            port = args.port
            for server in getattr(self, "servers", []):
                for sock in server.sockets:
                    port = sock.getsockname()[1]
                    break
            print(f"harness serve: listening on http://{args.host}:{port}", flush=True)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # a clean stop: exit 0, not death by the signal
            try:
                loop.call_soon_threadsafe(app.cancel_inflight)
            except RuntimeError:  # the loop is already closed
                pass

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="on")
    server = _Server(config)
    with asyncio.Runner() as runner:  # closes async generators (the HTTP clients' sentinels)
        loop = runner.get_loop()
        runner.run(server.serve())
    return 0 if server.started else 1


class _BadInput(ValueError):
    """An out-of-range ``power`` argument: one line on stderr, exit 2."""


def _count(value: str | None, name: str, low: int = 1) -> int:
    if value is None:
        raise _BadInput(f"{name} is required")
    try:
        number = int(value)
    except ValueError:
        raise _BadInput(f"{name} must be a whole number, got {value!r}") from None
    if number < low:
        raise _BadInput(f"{name} must be at least {low}, got {number}")
    return number


def _fraction(value: str | None, name: str, *, units: tuple[str, ...] = ("%",)) -> float:
    """``0.8``, ``80``, ``80%`` (or ``10pp`` for a drop) → 0.8; a bare number > 1 is a percent."""
    if value is None:
        raise _BadInput(f"{name} is required")
    text = value.strip().lower()
    percent = False
    for unit in units:
        if text.endswith(unit):
            text, percent = text[: -len(unit)].strip(), True
            break
    try:
        number = float(text)
    except ValueError:
        raise _BadInput(f"{name} must be a number such as 0.8 or 80%, got {value!r}") from None
    if not math.isfinite(number):
        raise _BadInput(f"{name} must be a finite number, got {value!r}")
    if percent or number > 1:
        number /= 100
    if not 0 < number <= 1:
        raise _BadInput(f"{name} must be above 0 and at most 100%, got {value!r}")
    return number


def _power(args: argparse.Namespace) -> int:
    """``harness power``: the detectable drop for a suite shape, and the repeats a drop needs."""
    from harness.report.formatting import percent
    from harness.stats import detectable_drop, gate_power, repeats_needed

    try:
        cases = _count(args.cases, "--cases")
        repeats = _count(args.repeats, "--repeats")
        pass_rate = _fraction(args.pass_rate, "--pass-rate")
        alpha = _fraction(args.alpha, "--alpha")
        if alpha >= 0.5:
            raise _BadInput(f"--alpha must be below 0.5, got {args.alpha!r}")
        models = _count(args.models, "--models")
        max_repeats = _count(args.max_repeats, "--max-repeats")
        powers = [_fraction(p, "--power") for p in str(args.power).split(",") if p.strip()]
        if not powers or any(p >= 1 for p in powers):
            raise _BadInput(f"--power must be powers below 100%, got {args.power!r}")
        drop = None
        if args.drop is not None:
            drop = _fraction(args.drop, "--drop", units=("pp", "%"))
            if drop > pass_rate:
                raise _BadInput(
                    f"--drop {args.drop} is more than the pass rate {percent(pass_rate, 0)}: "
                    "a pass rate cannot fall below 0"
                )
    except _BadInput as exc:
        print(f"harness power: {exc}", file=sys.stderr)
        return 2
    shape = (
        f"{cases:,} case(s) × {repeats} repeat(s) per run, pass rate {percent(pass_rate, 0)}, "
        f"alpha={alpha:g}" + (f", {models} models" if models > 1 else "")
    )
    print(f"Regression gate power for {shape}:")
    for power in powers:
        smallest = detectable_drop(cases, repeats, pass_rate, power, alpha=alpha, models=models)
        if smallest is None:
            print(f"  {percent(power, 0)} power: no drop is detected that often (not even to 0%)")
        else:
            print(
                f"  {percent(power, 0)} power: a drop of {smallest * 100:.1f} pp "
                f"({percent(pass_rate, 0)} → {percent(pass_rate - smallest)})"
            )
    if drop is not None:
        print(f"Repeats per case to detect a drop of {drop * 100:.1f} pp with {cases:,} case(s):")
        for power in powers:
            needed = repeats_needed(
                cases, pass_rate, drop, power, alpha=alpha, models=models, max_repeats=max_repeats
            )
            if needed is None:
                print(f"  {percent(power, 0)} power: not within {max_repeats} repeats — add cases")
            else:
                reached = gate_power(cases, needed, pass_rate, drop, alpha=alpha, models=models)
                print(
                    f"  {percent(power, 0)} power: {needed} repeat(s) (power {percent(reached, 0)})"
                )
    print(
        "Assumes every case passes with that probability and the drop shifts every case "
        "(normal approximation of the stratified test); a mix of reliable and flaky cases "
        "at the same mean gives more power. See docs/statistics.md."
    )
    return 0


# --- harness cache ---------------------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or ``1d12h``.

    Raises:
        ValueError: naming the accepted form.
    """
    compact = str(text).strip().lower().replace(" ", "")
    if not compact or not re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", compact):
        raise ValueError(
            f"bad duration {text!r}: use a number with a unit s, m, h, d or w "
            "(e.g. 30m, 12h, 7d, 1d12h)"
        )
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(compact))


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cache_parser() -> argparse.ArgumentParser:
    path_opt = argparse.ArgumentParser(add_help=False)
    path_opt.add_argument(
        "--path",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"the cache database (default {DEFAULT_CACHE_PATH})",
    )
    ap = argparse.ArgumentParser(
        prog="harness cache",
        description="Inspect and maintain the response cache.",
        parents=[path_opt],
    )
    sub = ap.add_subparsers(dest="action", required=True)
    stats = sub.add_parser("stats", parents=[path_opt], help="entries, errors, size, models")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    prune = sub.add_parser("prune", parents=[path_opt], help="delete old entries")
    prune.add_argument(
        "--older-than",
        type=_duration_arg,
        required=True,
        metavar="DURATION",
        help="age to delete beyond: 30m, 12h, 7d, …",
    )
    exp = sub.add_parser("export", parents=[path_opt], help="write all entries as JSON lines")
    exp.add_argument("file", type=Path)
    imp = sub.add_parser("import", parents=[path_opt], help="merge an export (newer wins)")
    imp.add_argument("file", type=Path)
    return ap


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _print_stats(stats: Mapping[str, Any]) -> None:
    print(f"cache:   {stats['path']}")
    print(f"entries: {stats['entries']} ({stats['errors']} errors)")
    print(f"size:    {_size(stats['size_bytes'])}")
    print(f"oldest:  {_when(stats['oldest'])}")
    print(f"newest:  {_when(stats['newest'])}")
    for name, counts in stats["models"].items():
        print(f"  {name}: {counts['entries']} ({counts['errors']} errors)")


def _run_cache(args: argparse.Namespace, path: Path) -> int:
    from harness.cache import CacheError, ResponseCache

    if args.action != "import" and not path.exists():
        if args.action == "export":
            raise CacheError(f"no response cache at {path}")
        print(f"no response cache at {path} (0 entries)")
        return 0
    with ResponseCache(path) as cache:
        if args.action == "stats":
            stats = cache.stats()
            if args.json:
                print(json.dumps(stats, indent=2, sort_keys=True))
            else:
                _print_stats(stats)
        elif args.action == "prune":
            print(f"pruned {cache.prune(args.older_than)} entries from {path}")
        elif args.action == "export":
            print(f"exported {cache.export(args.file)} entries to {args.file}")
        else:
            print(f"imported {cache.import_(args.file)} entries from {args.file} into {path}")
    return 0


def cache_command(argv: Sequence[str]) -> int:
    """``harness cache stats|prune --older-than 7d|export FILE|import FILE [--path DB]``.

    Prints the outcome and returns the exit status: 0 on success, 2 on bad arguments or an
    unusable cache or export file (one line on stderr says which).
    """
    from harness.cache import CacheError

    try:
        args = _cache_parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse has printed the usage or the help
        return exc.code if isinstance(exc.code, int) else 2
    path = Path(getattr(args, "path", DEFAULT_CACHE_PATH))
    try:
        return _run_cache(args, path)
    except BrokenPipeError:
        raise  # the reader went away: main_exit ends quietly
    except (CacheError, OSError) as exc:
        message = exc.message if isinstance(exc, CacheError) else str(exc)
        print(f"harness cache {args.action}: {message}", file=sys.stderr)
        return 2


def _pairwise(args: argparse.Namespace, document: Any) -> int:
    """``harness pairwise``: judge two models' answers of a saved run; rewrite its reports."""
    from harness import Harness
    from harness._sync import run_sync
    from harness.checks.judge import JudgeModelError, judge_model_for
    from harness.config import load_config
    from harness.errors import HarnessError
    from harness.pairwise import PairSpec, head_to_head, judge_pairs, tally_text
    from harness.report import write_reports

    names = [n.strip() for n in str(args.models).split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        print(f"harness pairwise: --models: expected A,B, got {args.models!r}", file=sys.stderr)
        return 2
    try:
        harness = Harness(load_config(args.config), cache=args.cache_path)
    except HarnessError as exc:
        print(f"harness pairwise: {exc}", file=sys.stderr)
        return 2
    try:
        judge = judge_model_for(harness, args.judge)
        harness.resolve(judge)
        spec = PairSpec((names[0], names[1]), args.rubric, judge)
        made = run_sync(judge_pairs(harness, document["records"], spec, judge))
    except (HarnessError, JudgeModelError) as exc:
        print(f"harness pairwise: {exc}", file=sys.stderr)
        return 2
    finally:
        harness.close()
    kept = [p for p in document.get("pairwise") or [] if p.get("models") != list(spec.models)]
    document["pairwise"] = kept + [dict(p) for p in made]
    if not made:
        print(f"harness pairwise: no case was answered by both {names[0]} and {names[1]}")
    for pair in head_to_head(document["pairwise"]):
        print(tally_text(pair))
    for path in write_reports(document, args.out or args.results.parent):
        print(f"wrote {path}")
    return 0


def _runs(report_dir: Path, *, as_json: bool) -> int:
    """``harness runs``: the kept runs, newest first, with pass rates per model and cost."""
    from tabulate import tabulate

    from harness.report.formatting import percent, timestamp, usd
    from harness.report.history import RUNS_DIR, kept_runs, run_overview

    overviews = [run_overview(run) for run in kept_runs(report_dir)]
    if as_json:
        print(json.dumps(overviews, indent=2))
        return 0
    if not overviews:
        print(f"no kept runs in {report_dir / RUNS_DIR} (each pytest session keeps one)")
        return 0
    rows = []
    for o in overviews:
        if "error" in o:
            rows.append([o["id"], "", "", "", f"(unreadable) {o['error']}", "", ""])
            continue
        models = "  ".join(f"{name} {percent(rate)}" for name, rate in o["models"].items())
        command = " ".join(o["command"])
        short = command if len(command) <= 60 else command[:59] + "…"
        cells = [o["id"], timestamp(o["finished"]), o["items"], percent(o["pass_rate"])]
        rows.append([*cells, models, usd(o["cost_usd"]), short])
    headers = ["run", "finished", "items", "pass rate", "per model", "cost", "command"]
    print(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
    print(
        f"\n{len(overviews)} kept run(s) in {report_dir / RUNS_DIR}; compare with the newest: "
        "pytest --harness-baseline last"
    )
    return 0


def _document_arg(path: Path, report_dir: Path, *, of: Any = None) -> Any:
    """A run document named on the command line: a file, or a name for one in ``report_dir``.

    A path that exists is read as it is. Otherwise ``last``/``previous`` (``last~N``) name
    a kept run under ``report_dir/runs`` (the newest, or N before it), skipping the kept
    copy of ``of``, the run it is compared with; ``current`` names ``report_dir/results.json``.
    """
    from harness.report.document import ResultsError, load_document
    from harness.report.history import load_kept_run, parse_run_ref

    text = str(path)
    index = None if path.exists() else parse_run_ref(text)
    if index is None:
        if text == "current" and not path.exists():
            path = report_dir / "results.json"
        return load_document(path)
    session = of["run"].get("session") if isinstance(of, Mapping) else None
    document, _, notes = load_kept_run(report_dir, index, skip_session=session)
    if document is None:
        raise ResultsError(f"{text}: {notes[-1]}")
    return document


def _checks(*, markdown: bool) -> int:
    import harness.checks  # noqa: F401 - registers the built-in checks
    from harness.checks.reference import check_summaries, render_reference

    if markdown:
        sys.stdout.write(render_reference())
        return 0
    summaries = check_summaries()
    width = max(len(name) for name, _ in summaries)
    for name, summary in summaries:
        print(f"{name:<{width}}  {summary}")
    print("\nArguments and examples: harness checks --markdown (docs/checks.md)")
    return 0


def init_command(directory: Path) -> int:
    """``harness init [DIR]``: write the starter project, or refuse (exit 2) if any file exists."""
    from harness.starter import NEXT_STEPS, StarterExistsError, write_starter

    try:
        written = write_starter(directory)
    except StarterExistsError as exc:
        print(f"harness init: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"harness init: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print()
    print(NEXT_STEPS if directory == Path(".") else f"cd {directory}\n{NEXT_STEPS}", end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from harness.report import write_reports
    from harness.report.document import ResultsError, load_document, merge_documents, write_document

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cache"]:
        return cache_command(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve_command(args)
    try:
        if args.command == "demo":
            from harness.demo import main as demo

            demo()
            return 0
        if args.command == "checks":
            return _checks(markdown=args.markdown)
        if args.command == "runs":
            return _runs(args.dir, as_json=args.json)
        if args.command == "init":
            return init_command(args.dir)
        if args.command == "report":
            document = _document_arg(args.results, args.dir)
            baseline = (
                _document_arg(args.baseline, args.dir, of=document) if args.baseline else None
            )
            out = args.out or args.results.parent
            for path in write_reports(document, out, baseline=baseline, formats=args.format):
                print(f"wrote {path}")
            return 0
        if args.command == "compare":
            from harness.report.compare import compare, format_table

            if not 0 < args.alpha < 1:
                raise ResultsError(f"--alpha must be between 0 and 1, got {args.alpha}")
            current = _document_arg(args.current, args.dir)
            baseline = _document_arg(args.baseline, args.dir, of=current)
            comparison = compare(baseline, current, alpha=args.alpha)
            print(format_table(comparison))
            return 1 if comparison.has_significant_regression else 0
        if args.command == "pairwise":
            return _pairwise(args, load_document(args.results))
        if args.command == "power":
            return _power(args)
        if args.command == "merge":
            merged = merge_documents([load_document(p) for p in args.inputs])
            replaced = merged["run"].get("merge_replaced") or []
            if replaced:
                more = f", … {len(replaced) - 5} more" if len(replaced) > 5 else ""
                shown = ", ".join(replaced[:5]) + more
                print(
                    f"harness merge: warning: {len(replaced)} item(s) in more than one input; "
                    f"the later input's results were kept (the earlier ones are in history): "
                    f"{shown}",
                    file=sys.stderr,
                )
            print(
                f"wrote {write_document(merged, args.out)} "
                f"({len(merged['records'])} records from {len(args.inputs)} runs)"
            )
            return 0
    except ResultsError as exc:
        print(f"harness {args.command}: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


BROKEN_PIPE_STATUS = 141
"""The exit status when the reader of stdout went away (128 + SIGPIPE, as the shell shows)."""


def main_exit() -> None:
    """Console-script entry point; a reader that closes the pipe early ends it quietly."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python ignores SIGPIPE, so the write failed with EPIPE. Point stdout at devnull so
        # that the interpreter's final flush does not fail again and print a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = BROKEN_PIPE_STATUS
    sys.exit(status)


if __name__ == "__main__":
    main_exit()
