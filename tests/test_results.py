"""Records, the JSONL stream and the statistics."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import Harness, RateLimitError
from harness.report.document import build_document
from harness.results import (
    CheckRecord,
    ErrorRecord,
    ItemRecord,
    JsonlWriter,
    ResultRecord,
    RunDocument,
    make_record,
    percentile,
    read_jsonl,
    wilson_interval,
)

USER = [{"role": "user", "content": "hi"}]


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_rate(counts):
    passed, total = counts
    lo, hi = wilson_interval(passed, total)
    assert 0.0 <= lo <= passed / total + 1e-12
    assert passed / total - 1e-12 <= hi <= 1.0


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_is_within_range_and_monotone(values, q):
    p = percentile(values, q)
    assert min(values) <= p <= max(values)
    assert percentile(values, 0) == min(values) and percentile(values, 100) == max(values)
    assert percentile(values, 50) <= percentile(values, 95) or math.isclose(
        percentile(values, 50), percentile(values, 95)
    )


def test_records_carry_response_numbers_and_errors():
    h = Harness({"models": {"m": {"model": "mock/m", "price": {"input_per_mtok": 1, "output_per_mtok": 2}}}})
    ok = h.completion("m", USER, mock_response="hello there")
    rec = make_record(test_id="t", model="m", result=ok, messages=USER)
    json.dumps(rec)
    assert rec["passed"] and rec["provider"] == "mock" and rec["total_tokens"] == 3
    assert rec["cost_usd"] == pytest.approx((1 * 1 + 2 * 2) / 1e6)
    err = make_record(test_id="t", model="m", result=RateLimitError("slow", status=429))
    assert err["passed"] is False and err["error"]["type"] == "RateLimitError" and err["response"] is None


def test_records_have_exactly_the_fields_their_typed_dicts_declare():
    h = Harness({"models": {"m": {"model": "mock/m"}}})
    ok = h.completion("m", USER, mock_response="hello there")
    check = {"name": "c", "passed": True, "score": 1.0, "detail": ""}
    rec = make_record(test_id="t", model="m", result=ok, checks=[check], messages=USER)
    required, optional = ResultRecord.__required_keys__, ResultRecord.__optional_keys__
    assert required <= set(rec) <= required | optional
    assert set(rec["checks"][0]) == CheckRecord.__required_keys__
    err = make_record(test_id="t", model="m", result=RateLimitError("slow", status=429))
    assert required <= set(err) <= required | optional
    assert ErrorRecord.__required_keys__ <= set(err["error"]) <= set(ErrorRecord.__annotations__)
    item = {"test_id": "t", "model": "m", "outcome": "passed", "errored": False}
    document = build_document([rec, err], [item])
    assert set(document) == RunDocument.__required_keys__
    assert all(ItemRecord.__required_keys__ <= set(item) for item in document["items"])
    assert all("case" in record for record in document["records"])


def test_jsonl_is_appended_and_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "r" / "results.jsonl"
    writer = JsonlWriter(path)
    writer.write({"a": 1})
    writer.write({"a": 2})
    writer.close()
    with path.open("a") as f:
        f.write('{"a": 3')  # a crash mid-write
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="results.jsonl:2"):
        read_jsonl(path)
