"""report.html's comparison views in a real headless Chromium (Debian's /usr/bin/chromium
driven by Playwright): the suite × model table, every repeat of a case whose repeats
disagree, and the quality / cost / latency scatters. Skipped when Playwright or the browser
is missing; never downloads one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from harness.report.html import render_html  # noqa: E402
from tests.helpers.report_docs import document, record  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)

expect = sync_api.expect
XSS = '<img src=x onerror="window.__xss=1">'
FAILED = [{"name": "icontains", "passed": False, "score": None, "detail": "no 'star'"}]
LONG = "\n".join(f"line {n}" for n in range(40))


def breakdown_document() -> dict[str, Any]:
    """Two suites × models a, b, and an unpriced model c; (s.yaml::c1, a) has three repeats
    that disagree, the second answering with markup; (s.yaml::c2, a) two identical failures."""
    recs = [
        record("c1", "a", "a star", repeat=0, cost_usd=0.001, latency_ms=100.0),
        record("c1", "a", XSS, passed=False, repeat=1, checks=FAILED, cost_usd=0.001),
        record("c1", "a", LONG, repeat=2, cost_usd=0.001, latency_ms=100.0),
        record("c2", "a", "same", passed=False, repeat=0, checks=FAILED),
        record("c2", "a", "same", passed=False, repeat=1, checks=FAILED),
        record("c1", "b", "ok", cost_usd=0.5, latency_ms=900.0),
        record("c2", "b", "ok", cost_usd=0.5, latency_ms=900.0),
        record("d1", "a", "no", passed=False, suite="suites/t.yaml"),
        record("d1", "b", "yes", suite="suites/t.yaml", cost_usd=0.5),
        record("d1", "c", "yes", suite="suites/t.yaml", cost_usd=None, latency_ms=300.0),
    ]
    return document(recs)


@pytest.fixture(scope="module")
def page_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("breakdown") / "report.html"
    path.write_text(render_html(breakdown_document()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, page_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.goto(page_path.as_uri())
    tab.wait_for_function("window.__reportReady === true")
    yield tab
    context.close()
    assert errors == []


def test_suite_table_shows_each_suite_per_model(page):
    table = page.locator("#suite-table")
    expect(table).to_be_visible()
    expect(table.locator("thead th")).to_have_text(["Suite", "a", "b", "c", "All models"])
    expect(table.locator("tr.suite-row th .case")).to_have_text(["suites/s.yaml", "suites/t.yaml"])
    s_row = table.locator('tr.suite-row[data-suite="suites/s.yaml"]')
    expect(s_row.locator('td[data-model="a"] .counts')).to_have_text("0/2")
    expect(s_row.locator('td[data-model="b"] .counts')).to_have_text("2/2")
    expect(s_row.locator('td[data-model="c"]')).to_have_text("—")
    t_row = table.locator('tr.suite-row[data-suite="suites/t.yaml"]')
    expect(t_row.locator("td.all .counts")).to_have_text("2/3")
    expect(page.locator("nav.toc a[href='#suites']")).to_have_count(1)


def test_disagreeing_repeats_list_every_answer_and_verdict(page):
    row = page.locator("#rows tr.mrow", has_text="suites/s.yaml::c1")
    cell = row.locator("td.cell").first
    box = cell.locator("details.repeat-list")
    expect(box.locator("summary")).to_have_text("every repeat (3)")
    items = box.locator("li.repeat-item")
    expect(items).to_have_count(3)
    expect(items.first).to_be_hidden()  # collapsed until asked for
    box.locator("summary").click()
    expect(items.locator(".badge")).to_have_text(
        ["repeat 1 PASS", "repeat 2 FAIL", "repeat 3 PASS"]
    )
    expect(items.nth(1).locator(".why")).to_have_text(" (icontains: no 'star')")
    expect(items.nth(1).locator(".out")).to_have_text(XSS)  # text, not markup
    assert page.evaluate("window.__xss === undefined")
    assert items.nth(1).locator("img").count() == 0
    third = items.nth(2)
    expect(third.locator(".out")).not_to_contain_text("line 39")
    third.locator("button.more-repeat").click()
    expect(third.locator(".out")).to_contain_text("line 39")


def test_agreeing_repeats_show_no_repeat_list(page):
    row = page.locator("#rows tr.mrow", has_text="suites/s.yaml::c2")
    expect(row.locator("td.cell").first.locator(".repeats")).to_have_text("0/2 passed")
    expect(row.locator("details.repeat-list")).to_have_count(0)


def test_search_finds_text_of_any_repeat(page):
    page.fill("#search", "line 39")
    expect(page.locator("#rows tr.mrow th .case")).to_have_text(["suites/s.yaml::c1"])


def test_scatters_have_one_labelled_point_per_model(page):
    cost = page.locator("#tradeoff-cost")
    latency = page.locator("#tradeoff-latency")
    expect(cost.locator("svg.scatter g.point")).to_have_count(2)
    expect(cost.locator("svg.scatter g.point text.label")).to_have_text(["a", "b"])
    expect(cost.locator(".missing")).to_have_text("not shown (no cost known): c")
    expect(cost.locator("svg text.axis")).to_have_text("cost per 1k cases (USD), log scale")
    expect(latency.locator("svg.scatter g.point text.label")).to_have_text(["a", "b", "c"])
    expect(latency.locator("svg text.axis")).to_have_text("p50 latency (ms)")
    labels = latency.locator("text.label")
    boxes = [labels.nth(i).bounding_box() for i in range(3)]
    assert all(b is not None and b["width"] > 0 for b in boxes)  # drawn, not clipped away
    b_point = cost.locator('g.point[data-model="b"] circle').bounding_box()
    a_point = cost.locator('g.point[data-model="a"] circle').bounding_box()
    assert a_point is not None and b_point is not None
    assert b_point["x"] > a_point["x"]  # b costs more: further right
    assert b_point["y"] < a_point["y"]  # and passes more: higher up
