"""The run document: build, load, validate, merge; and the harness CLI."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.report.results import (
    SCHEMA,
    ResultsError,
    build_document,
    case_key,
    load_document,
    merge_documents,
    write_document,
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
