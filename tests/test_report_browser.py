"""report.html in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

The page is opened from disk (file://). Skipped when Playwright or the browser is missing;
never downloads a browser. One browser per module; each test gets a fresh page.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from harness.report.html import render_html  # noqa: E402
from tests.benchmarks.make_results import make_results  # noqa: E402
from tests.helpers.report_docs import document, record  # noqa: E402

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

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)

expect = sync_api.expect
CASES = 120
LONG_TAIL = "TAIL-MARKER-END"
IMG_XSS = '<img src=x onerror="window.__xss=1">'
SCRIPT_XSS = "<script>window.__xss=2</script>"
BREAKOUT_XSS = "</script><script>window.__xss=3</script>"


def case(i: int) -> str:
    return f"suites/s.yaml::c{i:03d}"


def failing_rows() -> set[int]:
    """Rows where some model failed or errored, by construction below."""
    return {i for i in range(CASES) if i % 10 == 3 or i % 40 == 7} | {0}


def main_document() -> dict[str, Any]:
    """120 cases × 3 models: b fails every 10th from 3, c errors every 40th from 7, row 0
    carries XSS payloads (c fails there), row 5 has a long output, rows 10/20/30 hold
    "zebra" in an output, a var and a prompt."""
    recs = []
    for i in range(CASES):
        cid = f"c{i:03d}"
        vars_ = {"n": i}
        prompt = f"Question {i}"
        out_a = f"answer {i}"
        if i == 0:
            out_a = f"{IMG_XSS} {SCRIPT_XSS} {BREAKOUT_XSS}"
            vars_["payload"] = IMG_XSS
        if i == 5:
            out_a = "\n".join(f"line {n} of a long answer" for n in range(100)) + LONG_TAIL
        if i == 20:
            vars_["animal"] = "zebra"
        if i == 30:
            prompt = "Describe a Zebra"
        recs.append(record(cid, "a", out_a, vars=vars_, prompt=prompt, latency_ms=100.0 + i))
        out_b = "a zebra crossing" if i == 10 else f"b says {i}"
        recs.append(
            record(cid, "b", out_b, passed=i % 10 != 3, vars=vars_, prompt=prompt, latency_ms=50.0)
        )
        if i % 40 == 7:
            recs.append(
                record(
                    cid,
                    "c",
                    None,
                    vars=vars_,
                    prompt=prompt,
                    error={"type": "Timeout", "message": "too slow"},
                )
            )
        else:
            checks = [
                {"name": "safe", "passed": i != 0, "score": None, "detail": f"detail {SCRIPT_XSS}"}
            ]
            recs.append(
                record(
                    cid,
                    "c",
                    "c answer",
                    passed=i != 0,
                    vars=vars_,
                    prompt=prompt,
                    checks=checks,
                    latency_ms=3000.0 if i == 77 else 20.0,
                )
            )
    return document(recs)


def comparison() -> dict[str, Any]:
    def entry(i: int, model: str, status: str) -> dict[str, Any]:
        return {
            "case": case(i),
            "model": model,
            "status": status,
            "baseline_pass_rate": None,
            "current_pass_rate": None,
            "p_value": None,
            "significant": False,
        }

    return {
        "alpha": 0.05,
        "models": [
            {
                "model": m,
                "baseline_pass_rate": 0.9,
                "current_pass_rate": 0.88,
                "delta": -0.02,
                "p_value": 0.5,
                "significant": False,
                "direction": "unchanged",
                "regressions": 2 if m == "b" else 0,
                "fixes": 1 if m == "a" else 0,
                "new": 1 if m == "c" else 0,
                "removed": 0,
                "latency_p50_delta_ms": 1.0,
                "cost_delta_usd": 0.0,
            }
            for m in "abc"
        ],
        "cases": [
            entry(3, "b", "regression"),
            entry(13, "b", "regression"),
            entry(50, "a", "fix"),
            entry(100, "c", "new"),
            entry(60, "a", "unchanged-pass"),
        ],
        "significant_regressions": [],
    }


CHANGED = {3, 13, 50, 100}


def replay_document() -> dict[str, Any]:
    """One case: a's answer replayed from the response store (recorded 812 ms), b's live."""
    replayed = record("c000", "a", "from the store", latency_ms=812.0)
    replayed.update(cache_hit=True, cost_usd=None, saved_cost_usd=0.0012)
    return document([replayed, record("c000", "b", "live", latency_ms=90.0)])


@pytest.fixture(scope="module")
def browser():
    # Playwright gives every launch a fresh, empty --user-data-dir of its own.
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    files = {
        "main": render_html(main_document()),
        "baseline": render_html(main_document(), baseline_comparison=comparison()),
        "synthetic": render_html(make_results(1_500, 3, seed=11, race_fraction=0.1)),
        "replay": render_html(replay_document()),
    }
    out = {}
    for name, html in files.items():
        path = folder / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        out[name] = path
    return out


class Page:
    """A fresh page that records console errors and uncaught page errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on(
            "console",
            lambda m: (
                self.errors.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def open(self, path: Path) -> Any:
        self.page.goto(path.as_uri())
        self.page.wait_for_function("window.__reportReady === true")
        return self.page


@pytest.fixture(scope="module")
def context(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield context
    context.close()


@pytest.fixture
def tab(context):
    page = context.new_page()
    yield Page(page)
    page.close()


def rows(page: Any) -> Any:
    return page.locator("#rows tr.mrow")


def row_cases(page: Any) -> list[str]:
    return rows(page).locator("th .case").all_text_contents()


# --------------------------------------------------------------------------- tests


def test_no_console_errors_while_using_the_page(tab, pages):
    for name in ("main", "baseline", "synthetic"):
        page = tab.open(pages[name])
        page.locator(".more").first.click()
        page.select_option("#sort", "latency")
        page.click("#last")
        page.click("#first")
        page.click("button[data-filter=failures]")
        page.fill("#search", "zebra")
        page.fill("#search", "")
        expect(page.locator("#app")).to_be_visible()
    assert tab.errors == []


def test_summary_shows_each_model(tab, pages):
    page = tab.open(pages["main"])
    models = page.locator("#summary tr.model-row")
    expect(models).to_have_count(3)
    expect(models.locator(".model-name")).to_have_text(["a", "b", "c"])
    expect(page.locator("#charts figure.chart")).to_have_count(3)


def test_summary_needs_no_javascript(browser, pages):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(pages["main"].as_uri())
        expect(page.locator("#summary tr.model-row")).to_have_count(3)
        expect(page.locator("#summary svg.bar")).to_have_count(3)
        expect(page.locator("#app")).to_be_hidden()
    finally:
        context.close()


def test_first_page_is_rendered_lazily(tab, pages):
    page = tab.open(pages["main"])
    expect(rows(page)).to_have_count(50)
    expect(page.locator("#pageinfo")).to_have_text("page 1 of 3")
    assert row_cases(page)[0] == case(0)


def test_failures_filter_keeps_only_rows_with_a_failure(tab, pages):
    page = tab.open(pages["main"])
    page.click("button[data-filter=failures]")
    want = sorted(failing_rows())
    expect(rows(page)).to_have_count(len(want))
    assert row_cases(page) == [case(i) for i in want]
    for i in range(len(want)):
        expect(rows(page).nth(i).locator(".badge.fail, .badge.error").first).to_be_visible()
    expect(page.locator("button[data-filter=failures]")).to_have_attribute("aria-pressed", "true")


def test_errors_and_disagree_filters(tab, pages):
    page = tab.open(pages["main"])
    page.click("button[data-filter=errors]")
    expect(rows(page)).to_have_count(3)
    assert row_cases(page) == [case(7), case(47), case(87)]
    page.click("button[data-filter=disagree]")
    expect(rows(page)).to_have_count(len(failing_rows()))  # a passes every row
    page.click("button[data-filter=all]")
    expect(rows(page)).to_have_count(50)


def test_search_narrows_rows_to_matching_text(tab, pages):
    page = tab.open(pages["main"])
    page.fill("#search", "ZEBRA")  # case-insensitive; an output, a var and a prompt
    expect(rows(page)).to_have_count(3)
    assert row_cases(page) == [case(10), case(20), case(30)]
    page.fill("#search", "c042")  # the case name
    expect(rows(page)).to_have_count(1)
    page.fill("#search", "no such text anywhere")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()


def test_expanding_a_long_cell_shows_the_full_text(tab, pages):
    page = tab.open(pages["main"])
    out = rows(page).nth(5).locator("td").nth(0).locator(".out")
    expect(out).not_to_contain_text(LONG_TAIL)
    expect(out).to_contain_text("line 0 of a long answer")
    out.locator(".more").click()
    expect(out).to_contain_text(LONG_TAIL)
    expect(out).to_contain_text("line 99 of a long answer")
    out.locator(".more").click()
    expect(out).not_to_contain_text(LONG_TAIL)


def test_pager_reaches_the_last_row(tab, pages):
    page = tab.open(pages["main"])
    page.click("#next")
    expect(page.locator("#pageinfo")).to_have_text("page 2 of 3")
    assert row_cases(page)[0] == case(50)
    page.click("#last")
    expect(page.locator("#pageinfo")).to_have_text("page 3 of 3")
    expect(rows(page)).to_have_count(CASES - 100)
    assert row_cases(page)[-1] == case(CASES - 1)
    expect(page.locator("#next")).to_be_disabled()


def test_sorts(tab, pages):
    page = tab.open(pages["main"])
    page.select_option("#sort", "latency")
    expect(rows(page).first.locator("th .case")).to_have_text(case(77))  # 3 s on model c
    page.select_option("#sort", "failures")
    want = sorted(failing_rows(), key=lambda i: (i % 40 != 7, i))  # errors first, then run order
    expect(rows(page).locator("th .case")).to_contain_text([case(i) for i in want])
    assert row_cases(page)[: len(want)] == [case(i) for i in want]
    page.select_option("#sort", "case")
    expect(rows(page).first.locator("th .case")).to_have_text(case(0))


def test_xss_payload_renders_as_text_and_does_not_execute(tab, pages):
    tab.page.add_init_script("window.__xss = undefined;")
    page = tab.open(pages["main"])
    first = rows(page).first
    expect(first.locator("td").nth(0).locator(".out")).to_have_text(
        f"{IMG_XSS} {SCRIPT_XSS} {BREAKOUT_XSS}"
    )
    expect(first.locator("th .vars")).to_contain_text(IMG_XSS)
    expect(first.locator("td").nth(2).locator(".checks")).to_contain_text(SCRIPT_XSS)
    assert page.locator("#rows img, #rows script").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert tab.errors == []


def test_changed_since_baseline_filter(tab, pages):
    page = tab.open(pages["baseline"])
    page.click("button[data-filter=changed]")
    expect(rows(page)).to_have_count(len(CHANGED))
    assert row_cases(page) == [case(i) for i in sorted(CHANGED)]
    expect(rows(page).nth(0).locator(".mark.regression")).to_have_text("REGRESSION")
    expect(rows(page).nth(2).locator(".mark.fix")).to_have_text("FIX")
    expect(rows(page).nth(3).locator(".mark.new")).to_have_text("NEW")
    expect(page.locator("#baseline")).to_be_visible()


def test_no_changed_filter_without_a_baseline(tab, pages):
    page = tab.open(pages["main"])
    expect(page.locator("button[data-filter=changed]")).to_have_count(0)


def test_a_replayed_cell_shows_the_badge_and_the_recorded_latency(tab, pages):
    page = tab.open(pages["replay"])
    first, second = rows(page).first.locator("td").nth(0), rows(page).first.locator("td").nth(1)
    badge = first.locator(".replayed")
    expect(badge).to_have_text("replayed")
    expect(badge).to_have_attribute("title", re.compile("replayed from the response store"))
    expect(first.locator(".lat")).to_have_text("812 ms (recorded)")
    expect(first.locator(".saved")).to_have_text("saved $0.001200")
    expect(first.locator(".cost")).to_have_count(0)
    expect(second.locator(".replayed")).to_have_count(0)
    expect(second.locator(".lat")).to_have_text("90 ms")
    assert tab.errors == []


def test_filter_counts_match_the_data(tab, pages):
    page = tab.open(pages["synthetic"])
    data = page.evaluate("JSON.parse(document.getElementById('data').textContent)")
    bad = sum(any(c and c["s"] != "pass" for c in row["cells"]) for row in data["rows"])
    expect(page.locator("button[data-filter=failures] .count")).to_have_text(f"({bad})")
    page.click("button[data-filter=failures]")
    pages_total = -(-bad // 50)
    expect(page.locator("#pageinfo")).to_have_text(f"page 1 of {pages_total}")
    page.click("#last")
    expect(rows(page)).to_have_count(bad - 50 * (pages_total - 1))


def head_to_head_document() -> dict[str, Any]:
    """Three cases of a and b judged by the offline judge; b's answer to c2 is an XSS payload."""
    from harness import Harness
    from harness._sync import run_sync  # playwright's sync API holds this thread's loop
    from harness.pairwise import PairSpec, judge_pairs

    answers = {  # case: (a's answer, b's answer, the reference)
        "c1": ("Canberra is the capital of Australia", "Sydney", "Canberra is the capital"),
        "c2": (
            f"Paris {IMG_XSS}",
            f"Paris is the capital of France {SCRIPT_XSS}",
            "Paris is the capital of France",
        ),
        "c3": ("Eight planets", "Eight planets", "Eight planets"),
    }
    recs = []
    for cid, (a, b, reference) in answers.items():
        vars_ = {"reference": reference}
        recs.append(record(cid, "a", a, vars=vars_, prompt=f"Question {cid}"))
        recs.append(record(cid, "b", b, vars=vars_, prompt=f"Question {cid}"))
    harness = Harness(config={"judge_model": "mock/judge"})
    pairwise = run_sync(judge_pairs(harness, recs, PairSpec(("a", "b")), "mock/judge"))
    doc = document(recs)
    doc["pairwise"] = pairwise
    return doc


def test_the_head_to_head_table_in_chromium(tab, tmp_path):
    path = tmp_path / "h2h.html"
    path.write_text(render_html(head_to_head_document()), encoding="utf-8")
    page = tab.open(path)
    section = page.locator("#head-to-head")
    expect(section.locator("h3.pair")).to_have_text("a vs b (judge mock/judge)")
    expect(section.locator("table.head-to-head thead th")).to_have_text(
        ["Prompt", "Cases", "a wins", "Ties", "b wins", "Win rate of a", "95% CI"]
    )
    row = section.locator("tr.h2h-row")
    expect(row).to_have_count(1)
    expect(row.locator("th, td")).to_have_text(["all", "3", "1", "1", "1", "50.0%", "12.5%–87.5%"])
    differ = section.locator("tr.differ-row")
    expect(differ).to_have_count(2)
    expect(differ.nth(0).locator("td")).to_have_text(
        ["suites/s.yaml::c1", "a", "Canberra is the capital of Australia", "Sydney"]
    )
    expect(differ.nth(1).locator("td").nth(1)).to_have_text("b")
    expect(differ.nth(1).locator("td").nth(3)).to_have_text(
        f"Paris is the capital of France {SCRIPT_XSS}"
    )
    assert page.evaluate("window.__xss") is None
    assert section.locator("img, script").count() == 0
    assert tab.errors == []
