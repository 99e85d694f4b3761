"""report.html without a browser: self-contained, the right numbers, safe embedding of untrusted text."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.document import build_document
from harness.report.html import OUTPUT_CHARS, dump_data, render_html
from harness.report.summary import model_summaries, overall_summary
from tests.benchmarks.make_results import make_results
from tests.helpers.report_docs import document, record

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "<!--",
    "a\u2028b\u2029c",
]
ALL_XSS = " ".join(XSS)


def data_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match, "no data island"
    return json.loads(match.group(1))


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"no section {name}"
    return match.group(1)


def overall_line(html: str) -> str:
    match = re.search(r'<p class="overall".*?</p>', html, re.S)
    assert match, "no overall line"
    return match.group(0)


def cells(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    names = [m["name"] for m in data["models"]]
    return {
        (row["c"], names[i]): cell
        for row in data["rows"]
        for i, cell in enumerate(row["cells"])
        if cell is not None
    }


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    return make_results(600, 3, seed=7, race_fraction=0.1)


# --------------------------------------------------------------------------- self-contained


REMOTE = [
    re.compile(r"""\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?\s*(?:https?:)?//""", re.I),
    re.compile(r"@import", re.I),
    re.compile(r"url\(", re.I),
    re.compile(r"<link\b(?![^>]*href=\"data:)", re.I),
    re.compile(r"<script\b[^>]*\bsrc\s*=", re.I),
]


class Resources(HTMLParser):
    """Every URL-valued attribute of every tag, and the text of style elements."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append(name)
            if name in ("src", "href", "action", "poster", "data", "srcset", "xlink:href"):
                self.urls.append(value or "")
            if name == "style":
                self.styles.append(value or "")

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in_style = False


def test_one_file_with_no_remote_resources(sample):
    hostile = document(
        [
            record(
                "links",
                "a",
                'see https://evil.example/x.png <img src="https://evil.example/p.gif">'
                ' <link rel="stylesheet" href="//evil.example/s.css"> @import url(http://x)',
                vars={"url": "<script src='https://evil.example/a.js'></script>"},
            )
        ]
    )
    for doc in (sample, hostile):
        html = render_html(doc)
        assert html.startswith("<!DOCTYPE html>")
        parser = Resources()
        parser.feed(html)
        assert all(url.startswith(("#", "data:")) for url in parser.urls), parser.urls
        assert not any("@import" in s or "url(" in s for s in parser.styles)
        outside = re.sub(
            r'<script type="application/json" id="data">.*?</script>', "", html, flags=re.S
        )
        for pattern in REMOTE:
            assert not pattern.search(outside), pattern.pattern
        assert html.count("<script") == 2  # the data island and the page's own script
        assert html.count("<style") == 1


def test_content_security_policy_allows_only_the_inline_script():
    html = render_html(document([record("c1", "a")]))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    csp = unescape(csp)
    assert "default-src 'none'" in csp
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


# --------------------------------------------------------------------------- summary and header


def test_header_shows_run_facts_and_models():
    html = render_html(document([record("c1", "a"), record("c1", "b", passed=False)]))
    header = re.search(r"<header.*?</header>", html, re.S).group(0)
    assert "2026-09-21 14:13:20 UTC" in header  # started
    assert "1 min 6 s" in header  # 65.5 s
    assert "pytest suites/ --harness-models a,b" in header
    assert "9.8.7" in header and "feedc0ffee123456" in header
    assert "mock/alpha" in header and "mock/beta" in header
    assert "1/2</b> items passed" in header
    footer = re.search(r"<footer>.*?</footer>", html, re.S).group(0)
    from harness._version import __version__

    assert f"harness {__version__}" in footer


def test_summary_numbers_appear(sample):
    html = render_html(sample)
    summary = section(html, "summary")
    for s in model_summaries(sample):
        assert f'data-model="{s["model"]}"' in summary
        row = re.search(rf'data-model="{s["model"]}">(.*?)</tr>', summary, re.S).group(1)
        lo, hi = s["pass_rate_ci95"]
        assert f"{s['pass_rate'] * 100:.1f}%" in row
        assert f"{lo * 100:.1f}%–{hi * 100:.1f}%" in row
        assert f"{s['passed']:,}/{s['items']:,}" in row
        assert f">{s['failed']:,}<" in row and f">{s['errors']:,}<" in row
        assert f"{s['latency_p50_ms']:.0f} ms" in row
        assert f"{s['latency_p95_ms']:.0f} ms" in row
        assert f"{s['prompt_tokens']:,}" in row
        if s["cost_usd"] is not None:
            assert f"${s['cost_usd']:,.2f}" in row or f"${s['cost_usd']:.4f}" in row
        assert "<svg" in row and "95% interval" in row
    overall = overall_summary(sample)
    assert f"{overall['passed']:,}/{overall['items']:,}</b> items passed" in html


def test_one_chart_per_model_with_a_histogram(sample):
    charts = section(render_html(sample), "charts")
    names = [s["model"] for s in model_summaries(sample)]
    assert charts.count('<figure class="chart">') == len(names)
    assert charts.count('class="hist"') == len(names)
    assert charts.count('class="bar"') == len(names)
    for name in names:
        assert f"<b>{name}</b>" in charts


def test_races_show_winner_margin_and_contestants():
    race = {
        "winner": "a",
        "contestants": [
            {"model": "a", "outcome": "winner", "latency_ms": 100.0, "error": None},
            {"model": "b", "outcome": "finished", "latency_ms": 142.0, "error": None},
            {"model": "c", "outcome": "failed", "latency_ms": 20.0, "error": "Boom: <b>503</b>"},
        ],
    }
    html = render_html(document([record("r1", "a", race=race), record("c1", "a")]))
    races = section(html, "races")
    assert "42 ms" in races  # the margin over the late finisher
    assert "b · 142 ms · finished" in races
    assert "c · 20 ms · failed" in races
    assert 'title="Boom: &lt;b&gt;503&lt;/b&gt;"' in races
    assert '<section id="races">' not in render_html(document([record("c1", "a")]))
    # written before contestants carried usage: nothing reported, nothing made up
    tally = re.search(r'<tr class="race-tally"><th scope="row">b</th>(.*?)</tr>', races).group(1)
    assert tally.endswith('<td class="num">—</td><td class="num">—</td>')
    assert "No losing contestant reported its usage" in races
    assert "spent by race losers" not in html


def usage(prompt: int | None, completion: int | None, cost: float | None) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost}


def telemetry_race() -> dict[str, Any]:
    """a wins on its first token; b is cancelled after its first byte, c before it."""
    return {
        "winner": "a",
        "contestants": [
            {
                "model": "a",
                "outcome": "winner",
                "latency_ms": 300.0,
                "error": None,
                "ttft_ms": 40.0,
                "first_byte": True,
                **usage(10, 5, 0.0002),
            },
            {
                "model": "b",
                "outcome": "cancelled",
                "latency_ms": 41.0,
                "error": None,
                "ttft_ms": None,
                "first_byte": True,
                **usage(12, 3, 0.00005),
            },
            {
                "model": "c",
                "outcome": "cancelled",
                "latency_ms": 41.0,
                "error": None,
                "ttft_ms": None,
                "first_byte": False,
                **usage(None, None, None),
            },
            {"model": "d", "outcome": "cancelled", "latency_ms": 41.0, "error": None},
        ],
    }


def test_race_chips_show_ttft_first_byte_and_what_each_consumed():
    html = render_html(document([record("r1", "a", race=telemetry_race())]))
    races = section(html, "races")
    chips = re.findall(r'<span class="chip race-\w+">(.*?)</span>', races)
    assert chips == [
        "a · 300 ms · TTFT 40 ms · winner · 15 tokens · $0.000200",
        "b · 41 ms · cancelled after first byte · 15 tokens · $0.000050",
        "c · 41 ms · cancelled before first byte",
        "d · 41 ms · cancelled",  # first_byte unknown: no claim either way
    ]


def test_race_table_shows_what_losing_cost_per_model_and_in_all():
    lost = telemetry_race()
    second = {
        "winner": "b",
        "contestants": [
            {
                "model": "a",
                "outcome": "finished",
                "latency_ms": 90.0,
                "error": None,
                **usage(10, 10, 0.0003),
            },
            {
                "model": "b",
                "outcome": "winner",
                "latency_ms": 80.0,
                "error": None,
                **usage(10, 10, 0.0001),
            },
        ],
    }
    html = render_html(document([record("r1", "a", race=lost), record("r2", "b", race=second)]))
    races = section(html, "races")
    tallies = dict(re.findall(r'<tr class="race-tally"><th scope="row">(\w)</th>(.*?)</tr>', races))
    numbers = {m: re.findall(r'<td class="num">(.*?)</td>', row) for m, row in tallies.items()}
    # races, won, finished late, cancelled, failed, tokens while losing, cost while losing
    assert numbers["a"] == ["2", "1", "1", "0", "0", "20", "$0.000300"]
    assert numbers["b"] == ["2", "1", "0", "1 (1 after first byte)", "0", "15", "$0.000050"]
    assert numbers["c"] == ["1", "0", "0", "1", "0", "—", "—"]
    assert "Losers consumed 35 tokens ($0.000350) across 2 races where reported." in races
    assert "(+ $0.000350 spent by race losers)" in overall_line(html)


# --------------------------------------------------------------------------- replayed answers


def replayed(case_id: str, model: str, saved: float | None = 0.0012, **kw: Any) -> dict[str, Any]:
    """A record replayed from the response store: the recorded latency, no cost, cost saved."""
    r = record(case_id, model, latency_ms=812.0, **kw)
    r.update(cache_hit=True, cost_usd=None, saved_cost_usd=saved)
    return r


def test_replayed_cells_say_so_in_the_data_island():
    recs = [
        replayed("c1", "a"),
        record("c1", "b"),
        replayed("c2", "a", saved=0.002, repeat=0),
        record("c2", "a", repeat=1, latency_ms=100.0),
        replayed("c3", "a", saved=None),
    ]
    got = cells(data_of(render_html(document(recs))))
    only = got[("suites/s.yaml::c1", "a")]
    assert (only["rp"], only["sv"], only["l"]) == (1, 0.0012, 812.0)
    assert "$" not in only  # nothing was spent
    live = got[("suites/s.yaml::c1", "b")]
    assert "rp" not in live and "sv" not in live  # the island stays small
    mixed = got[("suites/s.yaml::c2", "a")]
    assert (mixed["n"], mixed["rp"], mixed["sv"], mixed["$"]) == (2, 1, 0.002, 0.001)
    unpriced = got[("suites/s.yaml::c3", "a")]
    assert unpriced["rp"] == 1 and "sv" not in unpriced


def test_summary_and_header_show_replays_and_their_savings():
    html = render_html(document([replayed("c1", "a"), replayed("c2", "a"), record("c1", "b")]))
    summary = section(html, "summary")
    assert ">Replayed</th>" in summary and "Cache hits" not in summary
    row_a = re.search(r'data-model="a">(.*?)</tr>', summary, re.S).group(1)
    assert "2 · saved $0.002400" in row_a
    row_b = re.search(r'data-model="b">(.*?)</tr>', summary, re.S).group(1)
    assert row_b.rstrip().endswith('<td class="num">0</td>')
    assert "2 replayed, saved $0.002400 by replay" in overall_line(html)
    assert "cost $0.001000" in overall_line(html)  # only b's live answer was paid for
    assert "replayed" not in overall_line(render_html(document([record("c1", "a")])))


def test_summary_shows_the_median_output_speed_of_streamed_answers():
    a1, a2, b = record("c1", "a"), record("c2", "a"), record("c1", "b")
    a1["tokens_per_s"], a2["tokens_per_s"] = 80.0, 120.0
    summary = section(render_html(document([a1, a2, b])), "summary")
    assert ">Tokens/s</th>" in summary
    row_a = re.search(r'data-model="a">(.*?)</tr>', summary, re.S).group(1)
    row_b = re.search(r'data-model="b">(.*?)</tr>', summary, re.S).group(1)
    assert '<td class="num">100</td>' in row_a and '<td class="num">—</td>' in row_b


def test_old_records_without_replay_keys_render():
    old = record("c1", "a")
    del old["cache_hit"]
    html = render_html(document([old]))
    assert "rp" not in cells(data_of(html))[("suites/s.yaml::c1", "a")]
    assert "replayed" not in overall_line(html)
    assert re.search(r'data-model="a">.*?<td class="num">0</td>\s*</tr>', html, re.S)


# --------------------------------------------------------------------------- matrix data


def test_embedded_json_holds_every_case_and_model(sample):
    data = data_of(render_html(sample))
    got = cells(data)
    expected = {(r["case"], r["model"]) for r in sample["records"]}
    assert set(got) == expected
    assert [m["name"] for m in data["models"]] == [s["model"] for s in model_summaries(sample)]
    outcome = {(i["case"], i["model"]): i for i in sample["items"]}
    for key, cell in got.items():
        item = outcome[key]
        want = "pass" if item["outcome"] == "passed" else "error" if item["errored"] else "fail"
        assert cell["s"] == want
        assert cell["n"] == item["repeats"] and cell["k"] == item["passes"]


def test_cells_carry_output_checks_error_and_numbers():
    recs = [
        record("c1", "a", "fine"),
        record(
            "c1",
            "b",
            "wrong",
            passed=False,
            checks=[
                {"name": "not_empty", "passed": True, "score": None, "detail": "ok"},
                {"name": "similar", "passed": False, "score": 0.25, "detail": "0.25 < 0.8"},
            ],
            latency_ms=250.0,
        ),
        record("c2", "a", None, error={"type": "RateLimitError", "message": "slow", "status": 429}),
    ]
    data = data_of(render_html(document(recs)))
    got = cells(data)
    assert got[("suites/s.yaml::c1", "a")]["o"] == "fine"
    bad = got[("suites/s.yaml::c1", "b")]
    assert bad["s"] == "fail" and bad["f"] == [["similar", "0.25 < 0.8", 0.25]]
    assert bad["l"] == 250.0 and bad["$"] == 0.001
    err = got[("suites/s.yaml::c2", "a")]
    assert err["s"] == "error" and err["e"] == "RateLimitError: slow (HTTP 429)"
    assert data["rows"][1]["cells"][1] is None  # b never ran c2
    assert data["rows"][0]["p"] == "Say hello"


def test_repeats_show_pass_count_and_the_failing_answer():
    recs = [
        record("c1", "a", "good", repeat=0),
        record("c1", "a", "bad answer", passed=False, repeat=1),
        record("c1", "a", "good", repeat=2),
    ]
    doc = document(recs)
    cell = cells(data_of(render_html(doc)))[("suites/s.yaml::c1", "a")]
    assert (cell["s"], cell["n"], cell["k"], cell["o"]) == ("fail", 3, 2, "bad answer")


def test_long_outputs_are_cut_with_a_marker_and_raw_fields_are_dropped():
    long = "x" * (OUTPUT_CHARS + 5_000)
    html = render_html(document([record("c1", "a", long)]))
    out = cells(data_of(html))[("suites/s.yaml::c1", "a")]["o"]
    assert out.startswith("x" * OUTPUT_CHARS)
    assert out.endswith("[truncated: 5,000 more characters]")
    assert "chatcmpl-secret-id-123" not in html  # response ids are not embedded
    assert "system prompt text" not in html  # only the last user message is kept


def test_tool_calls_and_content_parts_are_shown_as_text():
    rec = record("c1", "a", None)
    rec["response"] = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"function": {"name": "lookup", "arguments": '{"id": 3}'}, "id": "t1"}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    rec["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}
    ]
    row = data_of(render_html(document([rec])))["rows"][0]
    assert row["cells"][0]["o"] == '→ lookup({"id": 3})'
    assert row["cells"][0]["fr"] == "tool_calls"
    assert row["p"] == "hi\n[image_url]"


def test_an_empty_run_still_renders():
    html = render_html(build_document([], (), run={}))
    assert "No results in this run." in html
    assert data_of(html)["rows"] == []


# --------------------------------------------------------------------------- untrusted text


def hostile_document() -> dict[str, Any]:
    return document(
        [
            record(
                f"case {ALL_XSS}",
                "a",
                f"output {ALL_XSS}",
                passed=False,
                vars={"text": ALL_XSS, ALL_XSS: 1},
                checks=[
                    {
                        "name": f"check {XSS[1]}",
                        "passed": False,
                        "score": None,
                        "detail": f"detail {ALL_XSS}",
                    }
                ],
                prompt=f"prompt {ALL_XSS}",
            ),
            record("other", "b", None, error={"type": "Err", "message": ALL_XSS}),
            record(
                "race",
                "a",
                "won",
                race={
                    "winner": "a",
                    "contestants": [
                        {"model": "a", "outcome": "winner", "latency_ms": 1.0, "error": None},
                        {
                            "model": f"m{XSS[0]}",
                            "outcome": "failed",
                            "latency_ms": 1.0,
                            "error": ALL_XSS,
                        },
                    ],
                },
            ),
        ],
        command=["pytest", ALL_XSS],
        config_hash=XSS[2],
    )


def hostile_comparison() -> dict[str, Any]:
    case = f"suites/s.yaml::case {ALL_XSS}"
    return {
        "alpha": 0.05,
        "models": [
            {
                "model": "a",
                "baseline_pass_rate": 1.0,
                "current_pass_rate": 0.0,
                "delta": -1.0,
                "p_value": 0.01,
                "significant": True,
                "direction": "regression",
                "regressions": 1,
                "fixes": 0,
                "new": 0,
                "removed": 0,
                "latency_p50_delta_ms": None,
                "cost_delta_usd": None,
            }
        ],
        "cases": [
            {
                "case": case,
                "model": "a",
                "status": "regression",
                "baseline_pass_rate": 1.0,
                "current_pass_rate": 0.0,
                "p_value": 0.5,
                "significant": False,
            }
        ],
        "significant_regressions": [{"model": "a", "case": case, "reason": ALL_XSS}],
    }


def test_untrusted_text_never_appears_unescaped():
    html = render_html(hostile_document(), baseline_comparison=hostile_comparison())
    for payload in XSS[:3]:
        assert payload not in html
    assert "<!--" not in html
    assert "\u2028" not in html and "\u2029" not in html
    parser = Resources()
    parser.feed(html)
    assert "img" not in parser.tags
    assert parser.tags.count("script") == 2
    assert not [a for a in parser.attrs if a.startswith("on")]
    assert html.count("<script") == 2
    assert html.count("</script>") == 2
    # server-rendered places escape with entities
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_untrusted_text_round_trips_through_the_data_island():
    data = data_of(render_html(hostile_document()))
    row = data["rows"][0]
    assert row["c"] == f"suites/s.yaml::case {ALL_XSS}"
    assert row["p"] == f"prompt {ALL_XSS}"
    assert row["v"] == {"text": ALL_XSS, ALL_XSS: 1}
    cell = row["cells"][0]
    assert cell["o"] == f"output {ALL_XSS}"
    assert cell["f"] == [[f"check {XSS[1]}", f"detail {ALL_XSS}", None]]
    assert data["rows"][1]["cells"][1]["e"] == f"Err: {ALL_XSS}"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_outputs_round_trip_exactly(text):
    html = render_html(document([record("c1", "a", text), record("c1", "b", "x")]))
    cell = data_of(html)["rows"][0]["cells"][0]
    assert cell.get("o", "") == text


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_dump_data_is_inert_and_exact_for_any_string(text):
    dumped = dump_data({"o": text, "k": [text]})
    assert not re.search("[<>&\u2028\u2029\ud800-\udfff]", dumped)
    assert json.loads(dumped) == {"o": text, "k": [text]}


def test_lone_surrogates_do_not_break_the_page():
    html = render_html(document([record("c\ud800", "a", "out\udfff")]))
    html.encode("utf-8")  # would raise on a raw lone surrogate
    cell = data_of(html)["rows"][0]
    assert cell["c"] == "suites/s.yaml::c\ud800" and cell["cells"][0]["o"] == "out\udfff"


# --------------------------------------------------------------------------- baseline


def test_without_a_baseline_there_is_no_baseline_section_or_filter(sample):
    html = render_html(sample)
    assert '<section id="baseline">' not in html
    assert 'data-filter="changed"' not in html
    assert data_of(html)["baseline"] is False


def test_baseline_section_and_marks_from_a_hand_made_comparison():
    recs = [
        record("c1", "a", "now wrong", passed=False),
        record("c2", "a", "fixed"),
        record("c3", "a", "brand new"),
    ]
    comparison = {
        "alpha": 0.05,
        "models": [
            {
                "model": "a",
                "baseline_pass_rate": 0.5,
                "current_pass_rate": 0.5,
                "delta": 0.0,
                "p_value": 1.0,
                "significant": False,
                "direction": "unchanged",
                "regressions": 1,
                "fixes": 1,
                "new": 1,
                "removed": 1,
                "latency_p50_delta_ms": 12.0,
                "cost_delta_usd": -0.002,
            }
        ],
        "cases": [
            {
                "case": "suites/s.yaml::c1",
                "model": "a",
                "status": "regression",
                "baseline_pass_rate": 1.0,
                "current_pass_rate": 0.0,
                "p_value": 0.0004,
                "significant": True,
            },
            {
                "case": "suites/s.yaml::c2",
                "model": "a",
                "status": "fix",
                "baseline_pass_rate": 0.0,
                "current_pass_rate": 1.0,
                "p_value": 1.0,
                "significant": False,
            },
            {
                "case": "suites/s.yaml::c3",
                "model": "a",
                "status": "new",
                "baseline_pass_rate": None,
                "current_pass_rate": 1.0,
                "p_value": None,
                "significant": False,
            },
            {
                "case": "suites/s.yaml::gone",
                "model": "a",
                "status": "removed",
                "baseline_pass_rate": 1.0,
                "current_pass_rate": None,
                "p_value": None,
                "significant": False,
            },
        ],
        "significant_regressions": [
            {"model": "a", "case": "suites/s.yaml::c1", "reason": "passed 1/1 → 0/1"}
        ],
    }
    html = render_html(document(recs), baseline_comparison=comparison)
    base = section(html, "baseline")
    assert "+12 ms" in base and "-$0.002000" in base
    assert "&lt;0.001" in base and "★" in base
    assert "suites/s.yaml::gone" in base
    assert "passed 1/1 → 0/1" in base
    assert 'data-filter="changed"' in html
    data = data_of(html)
    assert data["baseline"] is True
    marks = {row["c"]: row["cells"][0].get("b") for row in data["rows"]}
    assert marks == {
        "suites/s.yaml::c1": "regression",
        "suites/s.yaml::c2": "fix",
        "suites/s.yaml::c3": "new",
    }


def test_baseline_from_the_real_compare_module():
    compare = pytest.importorskip("harness.report.compare")
    old = document([record("c1", "a", "yes"), record("c2", "a", "no", passed=False)])
    new = document([record("c1", "a", "no", passed=False), record("c2", "a", "yes")])
    comparison = compare.compare(old, new)
    for given_as in (comparison, comparison.to_dict()):
        data = data_of(render_html(new, baseline_comparison=given_as))
        marks = [row["cells"][0].get("b") for row in data["rows"]]
        assert marks == ["regression", "fix"]


def test_the_data_stays_compact():
    doc = make_results(2_000, 3, seed=3)
    size = len(render_html(doc).encode("utf-8"))
    assert size < 2_000 * 700, size  # ~10,000 results stay well under 10 MB
