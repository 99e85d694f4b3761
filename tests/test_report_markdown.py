"""report.md: tables, numbers, the size limit, escaping of model output, the step summary."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.compare import compare
from harness.report.markdown import append_step_summary, escape_markdown, render_markdown


def record(
    case: str,
    model: str,
    *,
    passed: bool,
    output: str | None = "ok",
    repeat: int = 0,
    detail: str = "expected something else",
    error: dict[str, Any] | None = None,
    latency_ms: float = 100.0,
    cost_usd: float | None = 0.001,
) -> dict[str, Any]:
    response = None
    if error is None:
        response = {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": output},
                    "finish_reason": "stop",
                }
            ],
        }
    return {
        "test_id": f"{case}[{model}]",
        "case": case,
        "model": model,
        "repeat": repeat,
        "passed": passed,
        "checks": [
            {
                "name": "contains",
                "passed": passed,
                "score": None,
                "detail": "found" if passed else detail,
            },
            {"name": "max_words", "passed": True, "score": None, "detail": "3 words"},
        ],
        "response": response,
        "error": error,
        "latency_ms": latency_ms,
        "cost_usd": cost_usd,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    }


def document(records: Sequence[dict[str, Any]], duration_s: float | None = 0.6) -> dict[str, Any]:
    """A run document with one item per (case, model), passed when every repeat passed."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["case"], r["model"]), []).append(r)
    items = []
    for (case, model), recs in groups.items():
        passes = sum(bool(r["passed"]) and not r["error"] for r in recs)
        items.append(
            {
                "test_id": f"{case}[{model}]",
                "model": model,
                "case": case,
                "outcome": "passed" if passes == len(recs) else "failed",
                "errored": all(r["error"] for r in recs),
                "repeats": len(recs),
                "passes": passes,
                "pass_rate": passes / len(recs),
            }
        )
    return {
        "schema": "harness.results",
        "schema_version": 1,
        "run": {"duration_s": duration_s},
        "items": items,
        "records": list(records),
    }


def small_run() -> dict[str, Any]:
    """3 models × 4 cases: good passes all, fair fails c3, bad errors on c0 and fails c2, c3."""
    recs = []
    for i in range(4):
        recs.append(record(f"s.yaml::c{i}", "good", passed=True, latency_ms=100 + i))
        recs.append(record(f"s.yaml::c{i}", "fair", passed=i != 3, output=f"fair answer {i}"))
        if i == 0:
            recs.append(
                record(
                    "s.yaml::c0",
                    "bad",
                    passed=False,
                    cost_usd=None,
                    error={"type": "RateLimitError", "message": "slow down"},
                )
            )
        else:
            recs.append(
                record(
                    f"s.yaml::c{i}", "bad", passed=i == 1, cost_usd=None, output=f"bad answer {i}"
                )
            )
    return document(recs)


# --------------------------------------------------------------------------- table parsing


def columns(line: str) -> int:
    """Cells in a markdown table row, honouring backslash escapes."""
    assert line.startswith("|") and line.endswith("|"), line
    pipes, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        pipes += line[i] == "|"
        i += 1
    return pipes - 1


def tables(markdown: str) -> list[list[str]]:
    """Every run of consecutive lines starting with ``|``."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in markdown.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def assert_tables_well_formed(markdown: str) -> None:
    for table in tables(markdown):
        assert len(table) >= 3, table  # header, separator, at least one row
        assert re.fullmatch(r"\|(?:[ :]?-+[ :]?\|)+", table[1]), table[1]
        widths = {columns(line) for line in table}
        assert len(widths) == 1, table


def cells(line: str) -> list[str]:
    parts, cell, i = [], "", 1
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            cell += line[i : i + 2]
            i += 2
            continue
        if ch == "|":
            parts.append(cell.strip())
            cell = ""
        else:
            cell += ch
        i += 1
    return parts


def assert_no_raw_markup(markdown: str) -> None:
    """No HTML but our own <code> tags, and no unescaped backtick."""
    assert "<" not in re.sub(r"</?code>", "", markdown)
    assert re.search(r"(?<!\\)(?:\\\\)*`", markdown) is None


# --------------------------------------------------------------------------- structure


def test_title_and_summary_table():
    md = render_markdown(small_run())
    lines = md.split("\n")
    assert lines[0] == (
        "**harness**: 8/12 items passed (66.7%) across 3 models in 0.60 s, 1 item errored"
    )
    assert_tables_well_formed(md)
    summary = tables(md)[0]
    assert cells(summary[0]) == [
        "model",
        "items",
        "passed",
        "failed",
        "errors",
        "pass rate [95% CI]",
        "p50 ms",
        "p95 ms",
        "tokens",
        "cost",
    ]
    rows = {cells(r)[0]: cells(r) for r in summary[2:]}
    assert list(rows) == ["good", "fair", "bad"]
    assert rows["good"][1:5] == ["4", "4", "0", "0"]
    assert rows["good"][5].startswith("100.0% [")
    assert rows["good"][6] == "102"  # p50 of 100..103
    assert rows["good"][8] == "60"  # 4 records × 15 tokens
    assert rows["good"][9] == "$0.004000"
    assert rows["fair"][1:6] == ["4", "3", "1", "0", "75.0% [30.1–95.4]"]
    assert rows["bad"][1:5] == ["4", "1", "2", "1"]
    assert rows["bad"][9] == "—"


def test_failing_cases_section():
    md = render_markdown(small_run())
    assert "### Failing cases (4)" in md
    failing = tables(md)[-1]
    assert cells(failing[0]) == ["case", "model", "why", "output"]
    rows = [cells(r) for r in failing[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("s.yaml::c0", "bad"),
        ("s.yaml::c2", "bad"),
        ("s.yaml::c3", "fair"),
        ("s.yaml::c3", "bad"),
    ]
    assert rows[0][2] == "RateLimitError: slow down" and rows[0][3] == ""
    assert rows[2][2] == "contains: expected something else"  # only the failed check
    assert rows[2][3] == "<code>fair answer 3</code>"
    assert "more failing cases" not in md


def test_repeats_and_tool_calls_in_the_failing_rows():
    recs = [record("c", "m", passed=p, repeat=i) for i, p in enumerate([True, False, True])]
    tool = record("t", "m", passed=False, output=None)
    tool["response"]["choices"][0]["message"]["tool_calls"] = [
        {
            "id": "1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
    ]
    md = render_markdown(document([*recs, tool]))
    rows = [cells(r) for r in tables(md)[-1][2:]]
    assert rows[0][2].startswith("2/3 repeats passed; contains:")
    assert rows[1][3] == '<code>get\\_weather({"city": "Oslo"})</code>'


def test_all_passing_run_has_no_failing_section():
    md = render_markdown(document([record("c", "m", passed=True)], duration_s=None))
    assert md.split("\n")[0] == "**harness**: 1/1 items passed (100.0%) across 1 model"
    assert "Failing" not in md and "baseline" not in md
    assert md.endswith("\n")


def test_empty_run():
    md = render_markdown(document([]))
    assert md == "**harness**: no test items ran\n"


# --------------------------------------------------------------------------- replays and races


def test_the_saved_column_appears_only_when_something_was_replayed():
    assert "replayed" not in render_markdown(small_run())
    run = small_run()
    for r in run["records"]:
        if r["model"] == "good" and r["case"] in ("s.yaml::c0", "s.yaml::c1"):
            r.update(cache_hit=True, cost_usd=None, saved_cost_usd=0.001)
    md = render_markdown(run)
    assert_tables_well_formed(md)
    summary = tables(md)[0]
    assert cells(summary[0])[-2:] == ["cost", "replayed"]
    rows = {cells(r)[0]: cells(r) for r in summary[2:]}
    assert rows["good"][-2:] == ["$0.002000", "2 · saved $0.002000"]
    assert rows["fair"][-1] == "0"


def contestant(model: str, outcome: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "outcome": outcome, "latency_ms": 50.0, "error": None, **kw}


def raced(case: str, winner: str, contestants: list[dict[str, Any]]) -> dict[str, Any]:
    r = record(case, winner, passed=True)
    r["race"] = {"winner": winner, "contestants": contestants}
    return r


def test_races_section_counts_outcomes_and_what_losing_cost():
    recs = [
        raced(
            "race::1",
            "fast",
            [
                contestant("fast", "winner", prompt_tokens=10, completion_tokens=5, cost_usd=0.001),
                contestant(
                    "slow|<b>",
                    "cancelled",
                    first_byte=True,
                    prompt_tokens=10,
                    completion_tokens=2,
                    cost_usd=0.0004,
                ),
                contestant("flaky", "failed", error="Boom"),
            ],
        ),
        raced(
            "race::2",
            "fast",
            [contestant("fast", "winner"), contestant("slow|<b>", "cancelled", first_byte=False)],
        ),
    ]
    md = render_markdown(document(recs))
    assert_tables_well_formed(md)
    assert_no_raw_markup(md)
    assert "### Races (2)" in md
    table = next(t for t in tables(md) if cells(t[0])[0:2] == ["model", "races"])
    assert cells(table[0]) == [
        "model",
        "races",
        "won",
        "finished late",
        "cancelled",
        "failed",
        "tokens while losing",
        "cost while losing",
    ]
    rows = {cells(r)[0]: cells(r)[1:] for r in table[2:]}
    assert rows["fast"] == ["2", "2", "0", "0", "0", "—", "—"]
    assert rows["slow\\|&lt;b&gt;"] == ["2", "0", "0", "2", "0", "12", "$0.000400"]
    assert rows["flaky"] == ["1", "0", "0", "0", "1", "—", "—"]
    assert "Losers consumed 12 tokens ($0.000400) across 1 race where reported." in md


def test_old_race_records_without_usage_and_runs_without_races():
    assert "### Races" not in render_markdown(small_run())
    old = raced("race::1", "a", [contestant("a", "winner"), contestant("b", "cancelled")])
    md = render_markdown(document([old]))
    assert "### Races (1)" in md
    assert "No losing contestant reported its usage" in md
    assert_tables_well_formed(md)


def test_a_race_heavy_run_stays_within_the_limit():
    recs = [
        raced(
            f"race::{i:05d}",
            f"model-{i % 7}",
            [
                contestant(
                    f"model-{(i + k) % 7}",
                    "winner" if k == 0 else "cancelled",
                    prompt_tokens=20,
                    completion_tokens=k,
                    cost_usd=0.0001 * k,
                )
                for k in range(4)
            ],
        )
        for i in range(3000)
    ]
    for r in recs[::3]:
        r["passed"] = False
        r["checks"][0].update(passed=False, detail="wrong " * 40)
    md = render_markdown(document(recs))
    assert len(md.encode("utf-8")) <= 60_000
    assert "### Races (3,000)" in md
    assert_tables_well_formed(md)
    # the races (one row per model) come before the failing cases, which are cut to fit
    assert md.index("### Races") < md.index("### Failing cases (1000)")
    assert md.rstrip("\n").endswith("more failing cases — see report.html")


# --------------------------------------------------------------------------- comparison


def test_regressions_section_only_with_a_comparison():
    current = small_run()
    assert "Compared with the baseline" not in render_markdown(current)
    # baseline: "fair" passed every case, with ten repeats; now c3 fails all of them
    base_recs = [
        record(f"s.yaml::c{i}", "fair", passed=True, repeat=k) for i in range(4) for k in range(10)
    ]
    cur_recs = [
        record(f"s.yaml::c{i}", "fair", passed=i != 3, repeat=k)
        for i in range(4)
        for k in range(10)
    ]
    comparison = compare(document(base_recs), document(cur_recs))
    md = render_markdown(document(cur_recs), comparison=comparison)
    # the model's stratified test sees c3's 10/10 → 0/10 too: model and case both regress
    assert md.split("\n")[0].endswith("— 2 significant regressions")
    assert "### Compared with the baseline" in md
    assert (
        "**2 significant regressions** (α=0.05: a run with no real change fails this gate "
        "with probability at most 5%)." in md
    )
    assert_tables_well_formed(md)
    change = tables(md)[1]
    assert cells(change[0])[:7] == [
        "model", "baseline", "current", "change", "CMH p", "adj. p", "verdict"
    ]
    row = cells(change[2])
    assert row[:7] == [
        "fair", "100.0%", "75.0%", "-25.0 pp", "p<0.001", "p<0.001",
        "**regression (significant)**",
    ]
    assert "Changed cases (1)" in md
    case_table = tables(md)[2]
    assert cells(case_table[0])[-3:] == ["Fisher p", "adj. p", "verdict"]
    assert cells(case_table[2]) == [
        "s.yaml::c3", "fair", "regression", "10/10", "0/10", "p<0.001", "p<0.001",
        "**regression (significant)**",
    ]
    # the regression is marked in the failing rows
    assert cells(tables(md)[-1][2])[2].startswith("regression; ")


def test_no_significant_regression_is_said_plainly():
    base = document([record("c", "m", passed=True)])
    cur = document([record("c", "m", passed=False)])
    md = render_markdown(cur, comparison=compare(base, cur))
    assert (
        "No significant regressions (α=0.05: a run with no real change fails this gate with "
        "probability at most 5%; 1 case went pass → fail, not significant)." in md
    )
    assert "changed, not significant" in md
    assert "Significant case regressions" not in md
    assert_tables_well_formed(md)


# --------------------------------------------------------------------------- escaping


NASTY = (
    "a | b || c\n```\nfenced\n```\n`tick` ``two`` <script>alert('x')</script> "
    "<img src=x onerror=alert(1)> **bold** [link](http://x) \\| \x1b[31mred\x00\r\nend"
)


def test_model_output_cannot_break_the_markdown():
    recs = [record("s.yaml::c|1", "m|<b>", passed=False, output=NASTY, detail=NASTY)]
    md = render_markdown(document(recs))
    assert_tables_well_formed(md)
    assert_no_raw_markup(md)
    assert "```" not in md and "\x1b" not in md and "\x00" not in md and "\r" not in md
    assert "&lt;script&gt;" in md
    assert not any(line.startswith("fenced") for line in md.split("\n"))
    row = cells(tables(md)[-1][2])
    assert row[0] == "s.yaml::c\\|1" and row[1] == "m\\|&lt;b&gt;"
    assert row[3].startswith("<code>a \\| b \\|\\| c ↵ \\`\\`\\` ↵ fenced")
    assert "\\*\\*bold\\*\\*" in row[3] and "\\[link\\](http://x)" in row[3]
    assert "\\\\\\|" in row[3]  # a backslash-pipe in the output stays literal


def test_excerpt_is_short():
    md = render_markdown(document([record("c", "m", passed=False, output="x" * 5000)]))
    excerpt = cells(tables(md)[-1][2])[3]
    assert excerpt.startswith("<code>x") and excerpt.endswith("…</code>")
    assert len(excerpt) - len("<code></code>") <= 200


def test_escape_markdown():
    assert escape_markdown("a|b") == "a\\|b"
    assert escape_markdown("<x> & y") == "&lt;x&gt; &amp; y"
    assert escape_markdown("line 1\n\nline 2\r\n") == "line 1 ↵↵ line 2"
    assert escape_markdown("*_~`[]\\") == "\\*\\_\\~\\`\\[\\]\\\\"
    assert escape_markdown("abcdef", limit=4) == "abc…"
    assert escape_markdown("bell\x07\u2028tab\tend") == "belltab end"


# --------------------------------------------------------------------------- size


def test_size_limit_on_a_large_run():
    recs = [
        record(
            f"suite.yaml::case-{i:05d}",
            f"model-{i % 3}",
            passed=False,
            output=f"answer {i} " + "lorem ipsum | <b> " * 60,
            detail="d" * 400,
        )
        for i in range(5000)
    ]
    md = render_markdown(document(recs))
    assert len(md.encode("utf-8")) <= 60_000
    assert_tables_well_formed(md)
    shown = len(tables(md)[-1]) - 2
    assert shown > 10
    assert md.rstrip("\n").split("\n")[-1] == (
        f"… and {5000 - shown} more failing cases — see report.html"
    )
    small = render_markdown(document(recs), limit_bytes=5_000, html_name="full.html")
    assert len(small.encode("utf-8")) <= 5_000
    assert small.rstrip("\n").endswith("more failing cases — see full.html")
    assert_tables_well_formed(small)


def test_tiny_limits_are_still_honoured():
    run = small_run()
    for limit in (10, 100, 300, 1000):
        md = render_markdown(run, limit_bytes=limit)
        assert len(md.encode("utf-8")) <= limit
        assert_tables_well_formed(md)


def test_multibyte_text_counts_in_bytes():
    recs = [record(f"c{i}", "m", passed=False, output="ü€😀" * 100) for i in range(500)]
    md = render_markdown(document(recs), limit_bytes=20_000)
    assert len(md.encode("utf-8")) <= 20_000
    assert "more failing cases" in md


@settings(max_examples=60, deadline=None)
@given(
    outputs=st.lists(st.text(max_size=300), min_size=1, max_size=40),
    names=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=3),
    limit=st.integers(200, 20_000),
)
def test_any_output_keeps_the_tables_intact(outputs, names, limit):
    recs = [
        record(
            f"case {i} {names[i % len(names)]}",
            names[i % len(names)],
            passed=i % 3 == 0,
            output=text,
            detail=text,
        )
        for i, text in enumerate(outputs)
    ]
    md = render_markdown(document(recs), limit_bytes=limit)
    assert len(md.encode("utf-8")) <= limit
    assert_tables_well_formed(md)
    assert_no_raw_markup(md)


# --------------------------------------------------------------------------- step summary


def test_append_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert append_step_summary("**harness**: ok") is True
    assert append_step_summary("second\n") is True
    assert target.read_text(encoding="utf-8") == "earlier step\n**harness**: ok\nsecond\n"


def test_append_step_summary_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_step_summary("x") is False
    assert append_step_summary("x", env={"GITHUB_STEP_SUMMARY": ""}) is False
    missing_dir = tmp_path / "no" / "such" / "dir" / "summary.md"
    assert append_step_summary("x", env={"GITHUB_STEP_SUMMARY": str(missing_dir)}) is False
    target = tmp_path / "s.md"
    assert append_step_summary("x", env={"GITHUB_STEP_SUMMARY": str(target)}) is True
    assert target.read_text(encoding="utf-8") == "x\n"
