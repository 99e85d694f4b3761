"""report.html at scale: render time, file size, and time to first render in Chromium.

A synthetic run (``make_results.py``: by default 10,000 records, 3 models, repeats, races,
failures, errors, long and unicode outputs, XSS payloads) is rendered with
``harness.report.html.render_html`` (with and without a baseline comparison) and written with
``harness.report.write_reports``. Reported:

* ``render_html`` wall time (median / min of ``--repeat`` runs; target < 2 s);
* ``write_reports`` wall time, with every format it knows (target < 2 s);
* the size of ``report.html`` (target well under 10 MB; promptfoo's is 12.5 MB for 3,000
  results), and of ``results.json`` for scale;
* in headless Chromium (Debian's, via Playwright; skipped with ``--no-browser`` or when
  either is missing): ``page.goto`` of the file until the page's ``window.__reportReady``
  flag (summary and first matrix page drawn; target < 2 s), the in-page time of that flag
  (``performance.now()``), and the in-page time of a filter click and of a search over
  every row (the first search builds the search index).

    python tests/benchmarks/bench_report.py [--records 10000] [--models 3] [--repeat 5]
                                             [--no-browser] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_results import make_results  # noqa: E402

from harness.report.html import render_html  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_S = 2.0
TARGET_MB = 10.0


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def _comparison(current: dict[str, Any], seed: int, records: int, models: int) -> Any:
    try:
        from harness.report.compare import compare
    except ImportError:
        return None
    baseline = make_results(records, models, seed=seed + 1)
    return compare(baseline, current).to_dict()


def _write_reports(document: dict[str, Any], out: Path, repeat: int) -> dict[str, Any] | None:
    try:
        from harness.report import write_reports
    except ImportError:
        return None
    times, written = _timed(lambda: write_reports(document, out), repeat)
    per_format = {}
    for fmt in ("json", "html", "md"):
        fmt_times, _ = _timed(partial(write_reports, document, out, formats=(fmt,)), repeat)
        per_format[fmt] = statistics.median(fmt_times)
    return {
        **_stats(times),
        "per_format_median_s": per_format,
        "files": {Path(p).name: Path(p).stat().st_size for p in written},
    }


_INTERACT = """async () => {
  const t0 = performance.now();
  document.querySelector('button[data-filter=failures]').click();
  const filter = performance.now() - t0;
  const rowsAfterFilter = document.querySelectorAll('#rows tr.mrow').length;
  document.querySelector('button[data-filter=all]').click();
  const search = document.getElementById('search');
  let t = performance.now();
  search.value = 'timeout'; search.dispatchEvent(new Event('input'));
  const firstSearch = performance.now() - t;
  t = performance.now();
  search.value = 'refund'; search.dispatchEvent(new Event('input'));
  const secondSearch = performance.now() - t;
  t = performance.now();
  document.getElementById('last').click();
  const lastPage = performance.now() - t;
  return {filter, rowsAfterFilter, firstSearch, secondSearch, lastPage};
}"""


def _browser(path: Path, repeat: int) -> dict[str, Any] | str:
    if not os.path.exists(CHROMIUM):
        return f"skipped: {CHROMIUM} is missing"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "skipped: playwright is not installed"
    loads, ready, interactions, rows = [], [], [], 0
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(repeat + 1):  # the first load warms the browser up
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                t0 = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_function("window.__reportReady === true")
                elapsed = time.perf_counter() - t0
                rows = page.locator("#rows tr.mrow").count()
                if i:
                    loads.append(elapsed)
                    ready.append(page.evaluate("window.__reportReadyMs") / 1000.0)
                    interactions.append(page.evaluate(_INTERACT))
                context.close()
        finally:
            browser.close()
    return {
        "goto_to_ready": _stats(loads),
        "ready_in_page": _stats(ready),
        "first_page_rows": rows,
        "filter_ms": statistics.median(x["filter"] for x in interactions),
        "first_search_ms": statistics.median(x["firstSearch"] for x in interactions),
        "search_ms": statistics.median(x["secondSearch"] for x in interactions),
        "last_page_ms": statistics.median(x["lastPage"] for x in interactions),
        "console_errors": errors,
    }


def measure(
    records: int, models: int, seed: int, repeat: int, browser: bool, keep: str | None
) -> dict[str, Any]:
    """Every measure for one synthetic run."""
    t0 = time.perf_counter()
    document = make_results(records, models, seed=seed)
    generate_s = time.perf_counter() - t0
    comparison = _comparison(document, seed, records, models)
    render_html(document)  # warm-up: templates compiled and cached
    times, html = _timed(lambda: render_html(document), repeat)
    result: dict[str, Any] = {
        "records": len(document["records"]),
        "items": len(document["items"]),
        "cases": len({r["case"] for r in document["records"]}),
        "models": models,
        "generate_s": generate_s,
        "render": _stats(times),
        "html_bytes": len(html.encode("utf-8")),
        "results_json_bytes": len(json.dumps(document, ensure_ascii=False).encode("utf-8")),
    }
    if comparison is not None:
        times_b, html_b = _timed(
            lambda: render_html(document, baseline_comparison=comparison), repeat
        )
        result["render_with_baseline"] = _stats(times_b)
        result["html_with_baseline_bytes"] = len(html_b.encode("utf-8"))
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result["write_reports"] = _write_reports(document, folder / "reports", repeat)
        page = folder / "report.html"
        page.write_text(html, encoding="utf-8")
        result["browser"] = _browser(page, repeat) if browser else "skipped: --no-browser"
    return result


def _verdict(value: float, target: float) -> str:
    return "ok" if value < target else "OVER"


def _print(result: dict[str, Any], load: str, out: Any) -> None:
    print(
        f"synthetic run: {result['records']:,} records, {result['items']:,} items, "
        f"{result['cases']:,} cases, {result['models']} models "
        f"(generated in {result['generate_s']:.2f} s); load average before: {load}",
        file=out,
    )
    rows: list[list[Any]] = []
    render = result["render"]
    rows.append(
        [
            "render_html",
            f"{render['median_s']:.3f} s",
            f"{render['min_s']:.3f} s",
            f"< {TARGET_S:g} s",
            _verdict(render["median_s"], TARGET_S),
        ]
    )
    if "render_with_baseline" in result:
        rb = result["render_with_baseline"]
        rows.append(
            [
                "render_html + baseline",
                f"{rb['median_s']:.3f} s",
                f"{rb['min_s']:.3f} s",
                f"< {TARGET_S:g} s",
                _verdict(rb["median_s"], TARGET_S),
            ]
        )
    wr = result["write_reports"]
    if wr:
        rows.append(
            [
                "write_reports (" + ", ".join(wr["files"]) + ")",
                f"{wr['median_s']:.3f} s",
                f"{wr['min_s']:.3f} s",
                f"< {TARGET_S:g} s",
                _verdict(wr["median_s"], TARGET_S),
            ]
        )
        for fmt, seconds in wr["per_format_median_s"].items():
            rows.append([f"· write_reports formats=({fmt!r},)", f"{seconds:.3f} s", "", "", ""])
    mb = result["html_bytes"] / 1e6
    rows.append(
        ["report.html size", f"{mb:.2f} MB", "", f"< {TARGET_MB:g} MB", _verdict(mb, TARGET_MB)]
    )
    if "html_with_baseline_bytes" in result:
        mbb = result["html_with_baseline_bytes"] / 1e6
        rows.append(
            [
                "report.html size + baseline",
                f"{mbb:.2f} MB",
                "",
                f"< {TARGET_MB:g} MB",
                _verdict(mbb, TARGET_MB),
            ]
        )
    rows.append(
        ["· bytes per record", f"{result['html_bytes'] / result['records']:.0f} B", "", "", ""]
    )
    rows.append(
        [
            "results.json size (for scale)",
            f"{result['results_json_bytes'] / 1e6:.2f} MB",
            "",
            "",
            "",
        ]
    )
    b = result["browser"]
    if isinstance(b, dict):
        g, r = b["goto_to_ready"], b["ready_in_page"]
        rows.append(
            [
                "Chromium goto → __reportReady",
                f"{g['median_s']:.3f} s",
                f"{g['min_s']:.3f} s",
                f"< {TARGET_S:g} s",
                _verdict(g["median_s"], TARGET_S),
            ]
        )
        rows.append(
            [
                "· ready, in-page performance.now()",
                f"{r['median_s']:.3f} s",
                f"{r['min_s']:.3f} s",
                "",
                "",
            ]
        )
        rows.append(["· rows on the first page", b["first_page_rows"], "", "50", ""])
        rows.append(["· filter 'failures' (in page)", f"{b['filter_ms']:.1f} ms", "", "", ""])
        rows.append(["· first search (builds index)", f"{b['first_search_ms']:.1f} ms", "", "", ""])
        rows.append(["· next search", f"{b['search_ms']:.1f} ms", "", "", ""])
        rows.append(["· last page", f"{b['last_page_ms']:.1f} ms", "", "", ""])
        rows.append(
            [
                "· console / page errors",
                len(b["console_errors"]),
                "",
                "0",
                "ok" if not b["console_errors"] else "ERRORS",
            ]
        )
    else:
        rows.append(["Chromium", b, "", "", ""])
    print(tabulate(rows, headers=["measure", "median", "min", "target", ""]), file=out)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--keep", help="write report.html (and write_reports' files) here")
    parser.add_argument(
        "--json", action="store_true", help="JSON on stdout; the table goes to stderr"
    )
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result = measure(
        args.records, args.models, args.seed, args.repeat, not args.no_browser, args.keep
    )
    result["load_average_before"] = load
    _print(result, load, sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
