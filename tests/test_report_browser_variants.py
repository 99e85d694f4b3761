"""report.html's prompt-variant view in a real headless Chromium (Debian's /usr/bin/chromium
driven by Playwright): the prompt × model pass-rate table and the matrix columns grouped by
prompt or by model. Skipped when Playwright or the browser is missing; never downloads one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from harness.report.compare import compare  # noqa: E402
from harness.report.html import render_html  # noqa: E402
from tests.helpers.report_docs import document, record  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)

expect = sync_api.expect
XSS = '<img src=x onerror="window.__xss=1">'


def variant(case_id: str, prompt: str, model: str, passed: bool, output: str = "ok") -> dict:
    rec = record(case_id, model, output, passed=passed, prompt=f"{prompt} asks {case_id}")
    rec["test_id"] = f"suites/s.yaml::{case_id}[{prompt}-{model}]"
    rec["prompt"] = prompt
    return rec


def variants_document(flip: bool = False) -> dict[str, Any]:
    """Cases c1, c2 × prompts plain, terse × models a, b; only (c2, terse, b) fails, and
    (c1, plain, a) answers with markup. A plain suite's case (no variants) runs on a too."""
    recs = [
        variant(c, p, m, not (c == "c2" and p == "terse" and m == "b") ^ flip, out)
        for c in ("c1", "c2")
        for p in ("plain", "terse")
        for m in ("a", "b")
        for out in [XSS if (c, p, m) == ("c1", "plain", "a") else f"{c} {p} {m}"]
    ]
    recs.append(record("solo", "a", "alone", suite="suites/other.yaml"))
    doc = document(recs)
    for item in doc["items"]:
        prompt = next((r.get("prompt") for r in recs if r["test_id"] == item["test_id"]), None)
        if prompt:
            item["prompt"] = prompt
    return doc


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("variants")
    current = variants_document()
    baseline = compare(variants_document(flip=True), current).to_dict()
    out = {}
    for name, html in {
        "variants": render_html(current),
        "baseline": render_html(current, baseline_comparison=baseline),
    }.items():
        out[name] = folder / f"{name}.html"
        out[name].write_text(html, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    context.close()
    assert errors == []


def open_page(page: Any, path: Path) -> Any:
    page.goto(path.as_uri())
    page.wait_for_function("window.__reportReady === true")
    return page


def texts(locator: Any) -> list[str]:
    return [" ".join(t.split()) for t in locator.all_inner_texts()]


def cells(page: Any, row: int) -> list[tuple[str, str, str]]:
    """(prompt, model, badge) of each cell of a matrix row, in the order shown."""
    tds = page.locator("#rows tr.mrow").nth(row).locator("td")
    return [
        (td.get_attribute("data-prompt"), td.get_attribute("data-model"), td.inner_text())
        for td in tds.all()
    ]


def test_the_prompt_table_shows_each_prompt_and_model_with_intervals(page, pages):
    open_page(page, pages["variants"])
    table = page.locator("#prompt-table")
    expect(table.locator("thead th")).to_have_text(["Prompt", "a", "b", "All models"])
    expect(table.locator("tr.prompt-row th")).to_have_text(["plain", "terse"])
    plain = texts(table.locator("tr.prompt-row").nth(0).locator("td"))
    terse = texts(table.locator("tr.prompt-row").nth(1).locator("td"))
    assert plain == [
        "100.0% 34.2%–100.0% 2/2",
        "100.0% 34.2%–100.0% 2/2",
        "100.0% 51.0%–100.0% 4/4",
    ]
    assert terse == ["100.0% 34.2%–100.0% 2/2", "50.0% 9.5%–90.5% 1/2", "75.0% 30.1%–95.4% 3/4"]
    expect(table.locator("tr.prompt-row").nth(1).locator("td.failing")).to_have_count(2)
    expect(table.locator("svg.bar")).to_have_count(6)


def test_the_matrix_groups_columns_by_prompt_then_by_model(page, pages):
    open_page(page, pages["variants"])
    head = page.locator("#matrix-head")
    expect(head.locator("th.group")).to_have_text(["plain", "terse", "(no variants)"])
    expect(head.locator("th.col")).to_have_text(["a", "b", "a", "b", "a", "b"])
    expect(page.locator(".grouping button[data-group=prompt]")).to_have_attribute(
        "aria-pressed", "true"
    )
    rows = page.locator("#rows tr.mrow")
    expect(rows.locator("th .case")).to_have_text(
        ["suites/s.yaml::c1", "suites/s.yaml::c2", "suites/other.yaml::solo"]
    )
    shown = cells(page, 1)
    assert [(p, m) for p, m, _ in shown] == [
        ("plain", "a"),
        ("plain", "b"),
        ("terse", "a"),
        ("terse", "b"),
        ("(no variants)", "a"),
        ("(no variants)", "b"),
    ]
    assert [text.split()[0] if text.strip() else "" for _, _, text in shown] == (
        ["PASS"] * 3 + ["FAIL"] + ["", ""]
    )
    # a column of a variant the case does not have is blank, not "not run"
    expect(rows.nth(1).locator("td.na")).to_have_count(2)
    expect(rows.nth(2).locator("td.na")).to_have_count(4)
    assert "PASS" in cells(page, 2)[4][2]  # the suite without variants has its own group

    page.click(".grouping button[data-group=model]")
    expect(head.locator("th.group")).to_have_text(["a", "b"])
    expect(head.locator("th.col")).to_have_text(
        ["plain", "terse", "(no variants)", "plain", "terse", "(no variants)"]
    )
    expect(page.locator(".grouping button[data-group=model]")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator(".grouping button[data-group=prompt]")).to_have_attribute(
        "aria-pressed", "false"
    )
    shown = cells(page, 1)
    assert [(p, m) for p, m, _ in shown] == [
        ("plain", "a"),
        ("terse", "a"),
        ("(no variants)", "a"),
        ("plain", "b"),
        ("terse", "b"),
        ("(no variants)", "b"),
    ]
    assert shown[4][2].split()[0] == "FAIL"

    page.click("button[data-filter=failures]")  # the grouping survives filtering
    expect(rows).to_have_count(1)
    assert cells(page, 0)[4][:2] == ("terse", "b")
    page.click(".grouping button[data-group=prompt]")
    expect(head.locator("th.group")).to_have_text(["plain", "terse", "(no variants)"])
    assert cells(page, 0)[3][:2] == ("terse", "b")


def test_the_row_shows_each_variants_prompt_and_output_stays_text(page, pages):
    open_page(page, pages["variants"])
    first = page.locator("#rows tr.mrow").nth(0)
    expect(first.locator(".prompt")).to_have_text("[plain] plain asks c1\n[terse] terse asks c1")
    expect(first.locator("td").nth(0).locator(".out")).to_have_text(XSS)
    assert page.evaluate("window.__xss") is None


def test_baseline_marks_land_on_the_variant_that_changed(page, pages):
    open_page(page, pages["baseline"])
    marked = [(p, m) for p, m, text in cells(page, 1) if "REGRESSION" in text]
    assert marked == [("terse", "b")]
    fixes = [(p, m) for p, m, text in cells(page, 1) if "FIX" in text]
    assert fixes == [("plain", "a"), ("plain", "b"), ("terse", "a")]
