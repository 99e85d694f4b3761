"""The report a comparison needs, without a browser: per-suite pass rates, every repeat of a
case whose repeats disagree, and the quality / cost / latency scatters and table."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.formatting import usd
from harness.report.html import REPEAT_OUTPUT_CHARS, REPEATS_SHOWN, render_html, scatter_svg
from harness.report.markdown import render_markdown
from harness.report.summary import (
    record_verdict,
    repeats_differ,
    suite_of,
    suite_summaries,
    suite_table,
    tradeoff_rows,
    tradeoff_summaries,
)
from tests.helpers.report_docs import document, record

XSS = '<img src=x onerror="window.__xss=1">'
FAILED = [{"name": "icontains", "passed": False, "score": None, "detail": "no 'star'"}]


def data_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match, "no data island"
    return json.loads(match.group(1))


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"no section {name}"
    return match.group(1)


def cell(html: str, case: str, model: str) -> dict[str, Any]:
    data = data_of(html)
    index = [m["name"] for m in data["models"]].index(model)
    return next(row["cells"][index] for row in data["rows"] if row["c"] == case)


def py_record(test: str, model: str, passed: bool, cost: float | None = 0.002) -> dict:
    """A Python test's record: no suite, the test id names its module."""
    rec = record(test, model, "py", passed=passed, cost_usd=cost)
    rec.update(suite=None, case_id=None, test_id=f"tests/test_m.py::{test}[{model}]")
    return rec


def two_suites() -> dict[str, Any]:
    """suites/s.yaml: a passes 2/2, b 1/2; suites/t.yaml: a 0/1, b 1/1; a Python module: a 1/1."""
    recs = [
        record("c1", "a"),
        record("c2", "a"),
        record("c1", "b"),
        record("c2", "b", passed=False),
        record("d1", "a", passed=False, suite="suites/t.yaml"),
        record("d1", "b", suite="suites/t.yaml"),
        py_record("test_x", "a", True),
    ]
    return document(recs)


# --------------------------------------------------------------------------- suites


def test_suite_summaries_count_items_per_suite_and_model_with_wilson_intervals():
    got = {(s["suite"], s["model"]): s for s in suite_summaries(two_suites())}
    assert list(got) == [
        ("suites/s.yaml", "a"),
        ("suites/s.yaml", "b"),
        ("suites/t.yaml", "a"),
        ("suites/t.yaml", "b"),
        ("tests/test_m.py", "a"),
    ]
    assert (got[("suites/s.yaml", "b")]["passed"], got[("suites/s.yaml", "b")]["items"]) == (1, 2)
    assert got[("suites/s.yaml", "b")]["pass_rate"] == 0.5
    lo, hi = got[("suites/s.yaml", "b")]["pass_rate_ci95"]
    assert lo == pytest.approx(0.0945, abs=1e-3) and hi == pytest.approx(0.9055, abs=1e-3)
    assert got[("suites/t.yaml", "a")]["failed"] == 1
    assert got[("tests/test_m.py", "a")]["records"] == 1


def test_suite_of_uses_the_suite_then_the_test_module():
    assert suite_of({"suite": "suites/s.yaml", "test_id": "x::y"}) == "suites/s.yaml"
    assert suite_of({"test_id": "tests/test_m.py::test_x[a]"}) == "tests/test_m.py"
    assert suite_of({"test_id": "c1[a]"}) is None


def test_suite_table_needs_two_suites_and_reads_per_model():
    one = document([record("c1", "a"), record("c1", "b", passed=False)])
    assert suite_table(one) == ""
    text = suite_table(two_suites())
    lines = text.splitlines()
    assert lines[0].split() == ["suite", "a", "b", "all", "models"]
    row = next(line for line in lines if line.startswith("suites/s.yaml"))
    assert "100.0% [" in row and "2/2" in row and "1/2" in row and "3/4" in row
    width = max(len(line) for line in lines)
    assert suite_table(two_suites(), max_width=width) == text
    assert suite_table(two_suites(), max_width=width - 1) == ""  # too wide for the terminal


def test_markdown_has_the_suite_table_only_with_several_suites():
    md = render_markdown(two_suites())
    assert "### Suites (3)" in md
    assert re.search(r"\| suites/t\.yaml +\| +0\.0% \[0\.0–79\.3\] 0/1 \|", md)
    assert "### Suites" not in render_markdown(document([record("c1", "a")]))


def test_html_suite_table_has_a_row_per_suite_and_a_cell_per_model():
    html = render_html(two_suites())
    table = section(html, "suites")
    suites = re.findall(r'<tr class="suite-row" data-suite="([^"]*)"', table)
    assert suites == ["suites/s.yaml", "suites/t.yaml", "tests/test_m.py"]
    assert table.count('class="bar"') == 5 + 3  # five pairs that ran, plus the pooled column
    assert "<b>50.0%</b>" in table and "1/2" in table
    assert '<section id="suites">' not in render_html(document([record("c1", "a")]))


# --------------------------------------------------------------------------- repeats


def disagreeing() -> dict[str, Any]:
    return document(
        [
            record("c1", "a", "a star", repeat=0),
            record("c1", "a", XSS, passed=False, repeat=1, checks=FAILED),
            record("c1", "a", "a star", repeat=2),
            record("c2", "a", "same", passed=False, repeat=0, checks=FAILED),
            record("c2", "a", "same", passed=False, repeat=1, checks=FAILED),
            record("c3", "a", "one", repeat=0),
            record("c3", "a", "two", repeat=1),
        ]
    )


def test_record_verdict_and_repeats_differ():
    assert record_verdict(record("c", "a")) == ("PASS", "")
    assert record_verdict(record("c", "a", passed=False, checks=FAILED)) == (
        "FAIL",
        "icontains: no 'star'",
    )
    error = {"type": "RateLimitError", "message": "slow"}
    assert record_verdict(record("c", "a", error=error)) == ("ERROR", "RateLimitError: slow")
    same = [record("c", "a", "x"), record("c", "a", "x")]
    assert not repeats_differ(same, lambda r: r["response"]["choices"][0]["message"]["content"])
    assert not repeats_differ(same[:1], lambda r: 0)
    assert repeats_differ([record("c", "a"), record("c", "a", passed=False)], lambda r: 0)


def test_the_data_island_lists_every_repeat_only_when_they_disagree():
    html = render_html(disagreeing())
    mixed = cell(html, "suites/s.yaml::c1", "a")
    assert mixed["r"] == [
        ["PASS", "", "a star"],
        ["FAIL", "icontains: no 'star'", XSS],
        ["PASS", "", "a star"],
    ]
    assert "r" not in cell(html, "suites/s.yaml::c2", "a")  # same verdict, same output
    assert [r[2] for r in cell(html, "suites/s.yaml::c3", "a")["r"]] == ["one", "two"]
    assert XSS not in html  # the island escapes < and >


def test_the_repeat_list_stays_bounded():
    recs = [
        record("c1", "a", f"{i} " + "y" * (REPEAT_OUTPUT_CHARS * 2), passed=i % 2 == 0, repeat=i)
        for i in range(REPEATS_SHOWN + 7)
    ]
    got = cell(render_html(document(recs)), "suites/s.yaml::c1", "a")
    assert len(got["r"]) == REPEATS_SHOWN and got["rm"] == 7
    assert all(len(r[2]) < REPEAT_OUTPUT_CHARS + 40 for r in got["r"])
    assert [r[2].split()[0] for r in got["r"]] == [str(i) for i in range(REPEATS_SHOWN)]


def test_markdown_failing_case_shows_every_repeat_escaped():
    md = render_markdown(disagreeing())
    row = next(line for line in md.splitlines() if "suites/s.yaml::c1" in line)
    assert "repeat 1 PASS: <code>a star</code>" in row
    assert "repeat 2 FAIL (icontains: no 'star'): <code>&lt;img" in row
    assert "repeat 3 PASS" in row and "<img" not in row
    same = next(line for line in md.splitlines() if "suites/s.yaml::c2" in line)
    assert "repeat 1" not in same and "<code>same</code>" in same


# --------------------------------------------------------------------------- quality / cost / latency


def priced() -> dict[str, Any]:
    """a: 2 items, $0.001 each, 100 ms; b: 2 items at $0.5, 900 ms; c: unpriced."""
    recs = []
    for case in ("c1", "c2"):
        recs.append(record(case, "a", cost_usd=0.001, latency_ms=100.0))
        recs.append(record(case, "b", cost_usd=0.5, latency_ms=900.0, passed=case == "c1"))
        recs.append(record(case, "c", cost_usd=None, latency_ms=300.0))
    return document(recs)


def test_tradeoff_summaries_cost_per_1k_cases_and_p50_latency():
    got = {t["model"]: t for t in tradeoff_summaries(priced())}
    assert got["a"]["cost_per_1k_usd"] == pytest.approx(1.0)
    assert got["b"]["cost_per_1k_usd"] == pytest.approx(500.0)
    assert got["c"]["cost_per_1k_usd"] is None
    assert got["b"]["latency_p50_ms"] == 900.0 and got["b"]["pass_rate"] == 0.5
    rows = {r[0]: r for r in tradeoff_rows(priced())}
    assert rows["a"][2] == usd(1.0) and rows["c"][2] == "—" and rows["b"][3] == "900"


def test_replayed_answers_count_at_their_recorded_cost():
    rec = record("c1", "a", cost_usd=None)
    rec.update(cache_hit=True, saved_cost_usd=0.004)
    [t] = tradeoff_summaries(document([rec]))
    assert t["cost_per_1k_usd"] == pytest.approx(4.0)


def test_markdown_quality_cost_latency_table():
    md = render_markdown(priced())
    assert "### Quality, cost and latency" in md
    assert re.search(r"\| b +\| +50\.0% \[9\.5–90\.5\] \| +\$500\.00 \| +900 \|", md)


def points(svg: str) -> list[str]:
    return re.findall(r'<g class="point" data-model="([^"]*)"', svg)


def test_html_scatters_one_labelled_point_per_model_and_a_note_for_unpriced():
    html = render_html(priced())
    cost = re.search(r'<figure class="tradeoff-chart scatter-cost".*?</figure>', html, re.S)
    latency = re.search(r'<figure class="tradeoff-chart scatter-latency".*?</figure>', html, re.S)
    assert cost and latency
    assert points(cost.group(0)) == ["a", "b"]
    assert "not shown (no cost known): c" in cost.group(0)
    assert points(latency.group(0)) == ["a", "b", "c"]
    assert re.findall(r'<text class="label"[^>]*>([^<]*)</text>', latency.group(0)) == [
        "a",
        "b",
        "c",
    ]
    assert "log scale" in cost.group(0)  # $1 to $500 per 1k cases: more than 100×
    assert "log scale" not in latency.group(0)


def test_scatter_axis_is_linear_within_100x_and_handles_one_model():
    one = str(scatter_svg([("only", 2.0, 0.5, 0.2, 0.8)], "cost", usd))
    assert points(one) == ["only"] and "log scale" not in one
    wide = str(scatter_svg([("x", 1.0, 1.0, 0.5, 1.0), ("y", 101.0, 0.0, 0.0, 0.5)], "c", usd))
    assert "c, log scale" in wide
    narrow = str(scatter_svg([("x", 1.0, 1.0, 0.5, 1.0), ("y", 99.0, 0.0, 0.0, 0.5)], "c", usd))
    assert "log scale" not in narrow
    with_zero = str(scatter_svg([("x", 0.0, 1.0, 0.5, 1.0), ("y", 500.0, 0.0, 0.0, 0.5)], "c", usd))
    assert "log scale" not in with_zero and points(with_zero) == ["x", "y"]


def test_scatter_points_sit_by_their_values():
    svg = str(scatter_svg([("lo", 10.0, 0.0, 0.0, 0.1), ("hi", 30.0, 1.0, 0.9, 1.0)], "c", usd))
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)
    (x1, y1), (x2, y2) = [(float(x), float(y)) for x, y in circles]
    assert x2 > x1 and y2 < y1  # more cost to the right, higher pass rate further up


def test_scatter_labels_are_escaped():
    doc = document([record("c1", XSS, cost_usd=0.01), record("c1", "b", cost_usd=0.02)])
    html = render_html(doc)
    charts = section(html, "charts")
    assert XSS not in charts and "&lt;img src=x" in charts


def test_no_scatter_without_items():
    assert '<figure class="tradeoff-chart' not in render_html(document([]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=12),
            st.floats(min_value=0, max_value=1e9, allow_nan=False),
            st.floats(min_value=0, max_value=1),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_scatter_draws_every_point_inside_the_plot_for_any_values(values):
    svg = str(scatter_svg([(n, x, r, r, r) for n, x, r in values], "cost", usd))
    circles = [
        (float(x), float(y)) for x, y in re.findall(r'<circle cx="([^"]+)" cy="([^"]+)"', svg)
    ]
    assert len(circles) == len(values)
    assert all(0 <= x <= 440 and 0 <= y <= 260 for x, y in circles)
