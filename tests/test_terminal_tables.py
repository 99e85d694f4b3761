"""The terminal's summary tables fit 100 columns (fewer on a narrower terminal).

``fitted_summary_table`` and ``fitted_prompt_tables`` (harness/report/summary.py), and the
plugin's terminal summary printing them; the reports keep every column.
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.report.summary import (
    fitted_prompt_tables,
    fitted_summary_table,
    prompt_table,
    shorten,
    summary_table,
)
from tests.helpers import report_docs

LONG = ("openrouter/meta-llama/llama-3.1-405b-instruct", "anthropic/claude-3-5-sonnet-20241022")


def busy_document() -> dict:
    """Long model names, errors, streamed and replayed answers: every optional column."""
    records = []
    for model in LONG:
        for case in ("c1", "c2", "c3"):
            rec = report_docs.record(case, model, latency_ms=12_345.0, cost_usd=0.001234)
            rec["ttft_ms"] = 1_234.0
            rec["total_tokens"], rec["prompt_tokens"] = 1_234_567, 1_234_000
            records.append(rec)
        failed = report_docs.record("c4", model, error={"type": "TimeoutError", "message": "x"})
        records.append(failed)
    records[0]["cache_hit"], records[0]["saved_cost_usd"] = True, 0.004321
    return report_docs.document(records)


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_the_full_table_is_too_wide_and_the_fitted_one_is_not():
    doc = busy_document()
    assert widest(summary_table(doc)) > 130  # what the terminal printed before
    text = fitted_summary_table(doc)
    assert widest(text) <= 100
    header = text.splitlines()[0]
    assert "passed/items" in header and "p50/p95 ms" in header and "errors" in header
    assert "failed" not in header  # it is items − passed − errors
    row = text.splitlines()[2]
    assert row.startswith("openrouter/") and "…" in row and "405b-instruct" in row
    assert "3/4" in row and "12,345/12,345" in row and "$0.003702" in row


@pytest.mark.parametrize("width", [90, 80, 70, 60])
def test_a_narrower_terminal_drops_more_columns(width):
    text = fitted_summary_table(busy_document(), width)
    assert widest(text) <= width
    header = text.splitlines()[0].split()
    assert header[:2] == ["model", "passed/items"] and header[-1] == "cost"
    assert len(text.splitlines()) == 2 + len(LONG)


def test_the_narrowest_table_keeps_the_essential_columns():
    text = fitted_summary_table(busy_document(), 20)
    assert text.splitlines()[0].split() == "model passed/items errors pass rate cost".split()
    assert widest(text) <= 60


def test_a_short_table_merges_and_leaves_out_the_column_of_zero_errors():
    doc = report_docs.document([report_docs.record("c1", "a"), report_docs.record("c1", "b")])
    assert widest(summary_table(doc)) > 100  # even two short names: 107 columns in full
    text = fitted_summary_table(doc)
    header = "model passed/items pass rate [95% CI] p50/p95 ms tokens cost"
    assert text.splitlines()[0].split() == header.split()
    assert widest(text) <= 100


@given(st.text(min_size=1, max_size=80), st.integers(8, 60))
def test_shorten_keeps_both_ends_within_the_width(text, width):
    short = shorten(text, width)
    assert len(short) <= width
    if len(text) <= width:
        assert short == text
    else:
        head, _, tail = short.partition("…")
        assert text.startswith(head) and text.endswith(tail) and head and tail


def variant_doc(models: tuple[str, ...]) -> dict:
    records = []
    for prompt in ("plain", "terse", "a-rather-long-prompt-variant-name"):
        for model in models:
            rec = report_docs.record("c1", model, "answer", passed=model != models[0])
            rec["test_id"] = f"suites/s.yaml::c1[{prompt}-{model}]"
            rec["prompt"] = prompt
            records.append(rec)
    doc = report_docs.document(records)
    prompts = {r["test_id"]: r["prompt"] for r in records}
    for item in doc["items"]:
        item["prompt"] = prompts[item["test_id"]]
    return doc


@pytest.mark.parametrize("width", [100, 80, 40])
def test_the_prompt_table_splits_its_models_to_fit(width):
    models = ("alpha", "beta", "gamma", "delta", *LONG)
    doc = variant_doc(models)
    assert widest(prompt_table(doc)) > 150
    tables = fitted_prompt_tables(doc, width)
    assert len(tables) > 1 and all(widest(t) <= width for t in tables)
    headers = " ".join(t.splitlines()[0] for t in tables)
    assert all(t.splitlines()[0].startswith("prompt") for t in tables)
    assert headers.rstrip().endswith("all models")
    for model in ("alpha", "beta", "gamma", "delta"):
        assert model in headers  # every model has its column in one of the tables


def test_without_prompt_variants_there_is_no_prompt_table():
    assert fitted_prompt_tables(report_docs.document([report_docs.record("c1", "a")])) == []


# --- the plugin ---------------------------------------------------------------------------------


def suite_project(pytester: pytest.Pytester) -> None:
    names = [
        "a-very-long-model-alias-for-the-careful-one",
        "another-long-model-alias-for-the-quick-one",
        "third-model-alias",
    ]
    models = "\n".join(
        f'[tool.harness.models.{name}]\nmodel = "mock/{name}"\nlatency_ms = 3\n'
        f"price = {{ input_per_mtok = 1.5, output_per_mtok = 2.5 }}\n"
        for name in names
    )
    pytester.makepyprojecttoml(models)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "wide.yaml").write_text(
        textwrap.dedent(f"""
        models: [{", ".join(names)}]
        prompts:
          - {{ id: plain, prompt: "Say {{{{ word }}}}" }}
          - {{ id: polite, prompt: "Please say {{{{ word }}}}" }}
        cases:
          - {{ id: hi, vars: {{ word: hi }}, assert: [{{ icontains: say }}] }}
          - {{ id: nope, vars: {{ word: nope }}, assert: [{{ contains: zebra }}] }}
        """)
    )


def summary_lines(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "harness summary" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("results: "))
    return lines[start + 1 : end]


@pytest.mark.parametrize("columns", [200, 80, 60])
def test_every_summary_line_fits_the_terminal_and_100_columns(pytester, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    suite_project(pytester)
    result = pytester.runpytest_subprocess("suites", "--harness-cache", "off")
    lines = summary_lines(result)
    assert len(lines) > 10  # the per-model table and the prompt × model tables
    assert max(len(line) for line in lines) <= min(columns, 100)
    assert any("a-very-long-model-alias" in line or "…" in line for line in lines)
    report = (pytester.path / "reports" / "report.md").read_text()
    assert "ttft p50 ms" in report and "failed" in report  # the reports keep every column
