"""The run document: build, load, validate, merge; the harness CLI; the per-model summary."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.report.document import (
    SCHEMA,
    ResultsError,
    build_document,
    case_key,
    load_document,
    merge_documents,
    write_document,
)
from harness.report.summary import (
    REPLAYED_HEADER,
    SUMMARY_HEADERS,
    TTFT_HEADER,
    contestant_usage,
    losers_text,
    model_summaries,
    overall_summary,
    race_summary,
    replayed_text,
    summary_headers,
    summary_rows,
    summary_table,
)


def rec(test_id, model, passed=True, repeat=0, **kw):
    return {"test_id": test_id, "model": model, "passed": passed, "repeat": repeat, **kw}


def test_case_key_strips_the_model_parameter_only():
    assert case_key(rec("t.py::test_a[fast]", "fast")) == "t.py::test_a"
    assert case_key(rec("t.py::test_a[x-fast]", "fast")) == "t.py::test_a[x-fast]"
    assert case_key(rec("s.yaml::sun[fast]", "fast", suite="s.yaml", case_id="sun")) == "s.yaml::sun"


def test_round_trip_through_a_file(tmp_path):
    doc = build_document([rec("a[m]", "m"), rec("b[m]", "m", passed=False)], run={"started": 1.0, "finished": 3.5})
    path = write_document(doc, tmp_path / "out" / "results.json")
    loaded = load_document(path)
    assert loaded["schema"] == SCHEMA and loaded["run"]["duration_s"] == 2.5
    assert [r["case"] for r in loaded["records"]] == ["a", "b"]
    assert [i["outcome"] for i in loaded["items"]] == ["passed", "failed"]  # rebuilt from records


def test_a_jsonl_stream_loads_as_a_document(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(
        json.dumps({"kind": "run", "started": 5}) + "\n"
        + json.dumps({"kind": "result", **rec("a[m]", "m")}) + "\n"
        + '{"kind": "result", "test_id": "torn'
    )
    doc = load_document(path)
    assert doc["run"]["started"] == 5 and len(doc["records"]) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"a": 1}', "not a harness results file"),
        (json.dumps({"schema": SCHEMA, "schema_version": 99, "run": {}, "items": [], "records": []}), "schema_version 99 is newer"),
        (json.dumps({"schema": SCHEMA, "schema_version": 1, "run": [], "items": [], "records": []}), "field 'run' must be a dict"),
        (json.dumps({"schema": SCHEMA, "schema_version": 1, "run": {}, "items": [], "records": [{"x": 1}]}), r"records\[0\] needs"),
    ],
)
def test_bad_files_name_the_file_and_field(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message) as info:
        load_document(path)
    assert str(path) in str(info.value)


def test_merge_keeps_every_shard_and_replaces_duplicates():
    a = build_document([rec("x[m]", "m"), rec("y[m]", "m")], run={"started": 10, "finished": 20})
    b = build_document([rec("y[m]", "m", passed=False), rec("z[m]", "m")], run={"started": 12, "finished": 30})
    merged = merge_documents([a, b])
    by_id = {r["test_id"]: r["passed"] for r in merged["records"]}
    assert by_id == {"x[m]": True, "y[m]": False, "z[m]": True}
    assert merged["run"]["started"] == 10 and merged["run"]["finished"] == 30
    assert merged["run"]["merged_from"] == 2 and merged["run"]["duration_s"] == 20


def test_cli_merge_and_errors(tmp_path, capsys):
    a = write_document(build_document([rec("x[m]", "m")]), tmp_path / "a.json")
    b = write_document(build_document([rec("y[m]", "m")]), tmp_path / "b.json")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m.json")]) == 0
    assert len(load_document(tmp_path / "m.json")["records"]) == 2
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(a), "--format", "pdf"])
    assert "unknown format(s) pdf" in capsys.readouterr().err


def _run(passed: bool, repeats: int = 8):
    recs = [rec("s.yaml::steady[m]", "m", passed=passed, repeat=i, suite="s.yaml", case_id="steady",
                response=None) for i in range(repeats)]
    items = [{"test_id": "s.yaml::steady[m]", "model": "m", "case": "s.yaml::steady",
              "outcome": "passed" if passed else "failed", "repeats": repeats,
              "passes": repeats if passed else 0}]
    return build_document(recs, items)


def test_cli_report_renders_html_and_markdown(tmp_path, capsys):
    path = write_document(_run(True), tmp_path / "results.json")
    baseline = write_document(_run(False), tmp_path / "old.json")
    out = tmp_path / "site"
    assert main(["report", str(path), "--baseline", str(baseline), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]
    assert "wrote" in capsys.readouterr().out
    assert "<!DOCTYPE html>" in (out / "report.html").read_text()[:200]


def test_cli_compare_exits_1_only_on_a_significant_regression(tmp_path, capsys):
    good = write_document(_run(True), tmp_path / "good.json")
    bad = write_document(_run(False), tmp_path / "bad.json")
    assert main(["compare", str(good), str(good)]) == 0
    assert main(["compare", str(good), str(bad)]) == 1
    assert "steady" in capsys.readouterr().out
    assert main(["compare", str(bad), str(good)]) == 0  # a fix is not a regression
    assert main(["compare", str(good), str(bad), "--alpha", "2"]) == 2


# --------------------------------------------------------------------------- summary: replays


def replayed(test_id, model, saved, **kw):
    """A record replayed from the response store: no cost spent, the recorded cost saved."""
    return rec(
        test_id, model, cache_hit=True, cost_usd=None, saved_cost_usd=saved, latency_ms=812.0, **kw
    )


def test_summary_sums_what_replays_saved():
    doc = build_document(
        [
            replayed("a[m]", "m", 0.001),
            replayed("b[m]", "m", 0.002),
            rec("c[m]", "m", cost_usd=0.003, latency_ms=100.0),
            replayed("a[n]", "n", None),  # recorded without a price
            rec("b[n]", "n", cost_usd=None),
        ]
    )
    m, n = model_summaries(doc)
    assert (m["cache_hits"], m["saved_usd"], m["cost_usd"]) == (2, pytest.approx(0.003), 0.003)
    assert m["latency_p50_ms"] == 812.0  # the recorded latency counts, never a fake 0 ms
    assert (n["cache_hits"], n["saved_usd"], n["cost_usd"]) == (1, None, None)
    overall = overall_summary(doc)
    assert overall["cache_hits"] == 3 and overall["saved_usd"] == pytest.approx(0.003)


def test_the_replayed_column_appears_only_when_something_was_replayed():
    live = build_document([rec("a[m]", "m", cost_usd=0.001)])
    assert summary_headers(live) == SUMMARY_HEADERS
    assert len(summary_rows(live)[0]) == len(SUMMARY_HEADERS)
    assert REPLAYED_HEADER not in summary_table(live)
    mixed = build_document([replayed("a[m]", "m", 0.0123), rec("a[n]", "n")])
    assert summary_headers(mixed) == (*SUMMARY_HEADERS, REPLAYED_HEADER)
    assert [row[-1] for row in summary_rows(mixed)] == ["1 · saved $0.0123", "0"]
    assert "1 · saved $0.0123" in summary_table(mixed)
    assert summary_headers(mixed, replayed=False) == SUMMARY_HEADERS
    assert summary_rows(live, replayed=True)[0][-1] == "0"
    assert replayed_text(4, None) == "4"


def test_the_ttft_column_appears_when_answers_were_streamed():
    live = build_document([rec("a[m]", "m")])
    assert TTFT_HEADER not in summary_headers(live)
    streamed = build_document([rec("a[m]", "m", ttft_ms=210.0), rec("a[n]", "n")])
    headers = summary_headers(streamed)
    assert headers[headers.index("p95 ms") + 1] == TTFT_HEADER
    rows = summary_rows(streamed)
    at = headers.index(TTFT_HEADER)
    assert [row[at] for row in rows] == ["210", "—"] and len(rows[0]) == len(headers)


def test_old_records_without_the_new_keys_count_as_live():
    old = build_document([rec("a[m]", "m", cost_usd=0.5)])  # no cache_hit, no saved_cost_usd
    (m,) = model_summaries(old)
    assert (m["cache_hits"], m["saved_usd"], m["cost_usd"]) == (0, None, 0.5)
    overall = overall_summary(old)
    assert (overall["cache_hits"], overall["saved_usd"]) == (0, None)
    assert race_summary(old) is None


# --------------------------------------------------------------------------- summary: races


def contestant(model, outcome, latency_ms=100.0, **kw):
    return {"model": model, "outcome": outcome, "latency_ms": latency_ms, "error": None, **kw}


def usage(prompt, completion, cost):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost}


def race_record(test_id, contestants):
    winner = next(c["model"] for c in contestants if c["outcome"] == "winner")
    return rec(test_id, winner, race={"winner": winner, "contestants": contestants})


def test_race_tallies_count_what_losers_consumed():
    doc = build_document(
        [
            race_record(
                "r1",
                [
                    contestant("a", "winner", first_byte=True, **usage(10, 5, 0.0002)),
                    contestant("b", "cancelled", first_byte=True, **usage(10, 2, 0.00005)),
                    contestant("c", "cancelled", first_byte=False, **usage(None, None, None)),
                ],
            ),
            race_record(
                "r2",
                [
                    contestant("a", "finished", **usage(10, 7, 0.0003)),
                    contestant("b", "winner", **usage(10, 4, 0.0001)),
                    contestant("c", "failed", error="Boom"),
                ],
            ),
            race_record("r3", [contestant("a", "winner"), contestant("c", "cancelled")]),
        ]
    )
    summary = race_summary(doc)
    assert summary["races"] == 3 and summary["reported_races"] == 2
    by_model = {t["model"]: t for t in summary["models"]}
    assert [t["model"] for t in summary["models"]] == ["a", "b", "c"]  # most wins first
    a, b, c = by_model["a"], by_model["b"], by_model["c"]
    assert (a["races"], a["winner"], a["finished"]) == (3, 2, 1)
    assert (a["lost_tokens"], a["lost_cost_usd"]) == (17, 0.0003)  # its wins do not count
    assert (b["races"], b["winner"], b["cancelled"]) == (2, 1, 1)
    assert b["cancelled_after_first_byte"] == 1
    assert (b["lost_tokens"], b["lost_cost_usd"]) == (12, 0.00005)
    assert (c["cancelled"], c["failed"], c["cancelled_after_first_byte"]) == (2, 1, 0)
    assert (c["lost_tokens"], c["lost_cost_usd"]) == (None, None)  # never reported
    assert summary["lost_tokens"] == 29
    assert summary["lost_cost_usd"] == pytest.approx(0.00035)
    want = "Losers consumed 29 tokens ($0.000350) across 2 races where reported."
    assert losers_text(summary) == want


def test_races_without_reported_usage():
    old = [
        {"model": "a", "outcome": "winner", "latency_ms": 5.0, "error": None},
        {"model": "b", "outcome": "cancelled", "latency_ms": 6.0, "error": None},
    ]
    summary = race_summary(build_document([race_record("r", old)]))
    assert summary["reported_races"] == 0
    assert summary["lost_tokens"] is None and summary["lost_cost_usd"] is None
    assert all(t["lost_tokens"] is None for t in summary["models"])
    assert losers_text(summary).startswith("No losing contestant reported its usage")
    tokens_only = race_summary(
        build_document([race_record("r", [old[0], {**old[1], **usage(40, None, None)}])])
    )
    assert losers_text(tokens_only) == "Losers consumed 40 tokens across 1 race where reported."


def test_contestant_usage_reads_only_numbers():
    assert contestant_usage({}) == (None, None)
    assert contestant_usage(usage(3, None, 0.5)) == (3, 0.5)
    assert contestant_usage(usage(3, 4, None)) == (7, None)
    assert contestant_usage({"prompt_tokens": True, "cost_usd": "1"}) == (None, None)
