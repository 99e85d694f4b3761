"""Python tests that call several models (``all_responses``, ``race``): items per real model."""

from __future__ import annotations

import json

import pytest

import harness.suites  # noqa: F401  (PyYAML's C extension: import once, outside pytester)
from harness.report.document import load_document
from harness.report.summary import model_summaries
from tests.test_plugin import CONFIG

TESTS = """
Q = [{"role": "user", "content": "hello there"}]

def test_all(all_responses):
    results = all_responses(Q, models=["good", "parrot"])
    assert [r.content for r in results] == ["hello there", "hello there"]

def test_all_fails(all_responses):
    all_responses(Q, models=["good", "parrot"])
    assert False, "judged wrong"

def test_race(race):
    winner = race(Q, models=["parrot"])
    assert winner.content == "hello there"
"""


@pytest.fixture
def run(pytester: pytest.Pytester) -> dict:
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(test_several=TESTS)
    result = pytester.runpytest("test_several.py")
    result.assert_outcomes(passed=2, failed=1)
    return json.loads((pytester.path / "reports" / "results.json").read_text())


def test_all_responses_records_one_item_per_model_with_the_tests_outcome(run):
    items = {(i["test_id"].split("::")[1], i["model"]): i for i in run["items"]}
    assert set(items) == {
        ("test_all", "good"),
        ("test_all", "parrot"),
        ("test_all_fails", "good"),
        ("test_all_fails", "parrot"),
        ("test_race", "parrot"),
    }
    assert all(i["model"] != "(several)" for i in run["items"])
    assert items[("test_all", "good")]["outcome"] == "passed"
    assert items[("test_all_fails", "parrot")]["outcome"] == "failed"
    assert items[("test_all", "parrot")]["case"] == items[("test_all", "good")]["case"]


def test_per_model_summaries_count_items_and_tokens_of_the_real_models(run):
    by_model = {s["model"]: s for s in model_summaries(run)}
    assert set(by_model) == {"good", "parrot"}
    assert by_model["good"]["items"] == 2
    assert by_model["good"]["passed"] == 1
    assert by_model["parrot"]["items"] == 3
    assert by_model["parrot"]["passed"] == 2
    assert by_model["parrot"]["total_tokens"] > 0
    assert by_model["parrot"]["records"] == 3


def test_items_rebuilt_from_the_stream_are_per_model_too(pytester, run):
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if json.loads(line).get("kind") == "result"]
    path = pytester.path / "stream.json"
    path.write_text(json.dumps({**run, "items": [], "records": records}))
    rebuilt = load_document(path)
    assert sorted((i["test_id"].split("::")[1], i["model"]) for i in rebuilt["items"]) == sorted(
        (i["test_id"].split("::")[1], i["model"]) for i in run["items"]
    )
