"""The ``harness`` command: re-render, compare and merge saved runs outside pytest.

::

    harness report results.json [--baseline old.json] [--out DIR] [--format html,md,json]
    harness compare old.json new.json [--alpha 0.05]     # exit 1 on a significant regression
    harness merge a.json b.json ... --out merged.json      # sharded CI jobs → one run
    harness demo                                           # the offline three-shapes demo
    harness cache stats|prune --older-than 7d|export F|import F   # the response store

Exit status: 0 on success, 1 when ``compare`` finds a significant regression, 2 on bad
input (a missing or malformed results file), with one line on stderr saying which.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

FORMATS = ("json", "html", "md")


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
    ap = argparse.ArgumentParser(prog="harness", description="Reports for harness runs.")
    sub = ap.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="render reports from a saved results.json")
    rep.add_argument("results", type=Path, help="results.json (or results.jsonl)")
    rep.add_argument("--baseline", type=Path, help="a previous results.json to compare with")
    rep.add_argument("--out", type=Path, help="output directory (default: next to the results)")
    rep.add_argument(
        "--format",
        type=_formats,
        default=("html", "md"),
        help="comma-separated: html, md, json (default html,md)",
    )
    cmp_ = sub.add_parser("compare", help="the regression table of two runs")
    cmp_.add_argument("baseline", type=Path)
    cmp_.add_argument("current", type=Path)
    cmp_.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    mer = sub.add_parser("merge", help="merge runs from sharded jobs into one")
    mer.add_argument("inputs", type=Path, nargs="+")
    mer.add_argument("--out", type=Path, required=True, help="the merged results.json")
    sub.add_parser("demo", help="the offline demo of the three call shapes")
    sub.add_parser("cache", help="the response store: stats, prune, export, import", add_help=False)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from harness.report import write_reports
    from harness.report.results import ResultsError, load_document, merge_documents, write_document

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cache"]:
        from harness.cache import cache_command

        return cache_command(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from harness.demo import main as demo

            demo()
            return 0
        if args.command == "report":
            document = load_document(args.results)
            baseline = load_document(args.baseline) if args.baseline else None
            out = args.out or args.results.parent
            for path in write_reports(document, out, baseline=baseline, formats=args.format):
                print(f"wrote {path}")
            return 0
        if args.command == "compare":
            from harness.report.compare import compare, format_table

            if not 0 < args.alpha < 1:
                raise ResultsError(f"--alpha must be between 0 and 1, got {args.alpha}")
            comparison = compare(
                load_document(args.baseline), load_document(args.current), alpha=args.alpha
            )
            print(format_table(comparison))
            return 1 if comparison.has_significant_regression else 0
        if args.command == "merge":
            merged = merge_documents([load_document(p) for p in args.inputs])
            print(
                f"wrote {write_document(merged, args.out)} "
                f"({len(merged['records'])} records from {len(args.inputs)} runs)"
            )
            return 0
    except ResultsError as exc:
        print(f"harness {args.command}: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
