"""Run history: every session keeps its run, ``--harness-baseline last`` and ``harness runs``.

Sessions run through pytester (in process, or as subprocesses where xdist or two sessions
at once are the point); the history module's own tests use fixed times, so two runs in the
same second are made on purpose rather than hoped for.
"""

from __future__ import annotations

import calendar
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.suites  # noqa: F401  (PyYAML's C extension must be imported only once)
from harness.cli import main
from harness.report.document import build_document, load_document
from harness.report.history import (
    kept_runs,
    load_kept_run,
    parse_run_ref,
    prune_runs,
    run_overview,
    save_run,
)
from tests.helpers.pytester_ini import PYTESTER_INI

CONFIG = PYTESTER_INI + """
[tool.harness.models.careful]
model = "mock/careful"

[tool.harness.models.quick]
model = "echo/quick"
"""

SUITE = """
models: [careful, quick]
prompt: "Tell me about {{ thing }}"
cases:
  - id: sun
    vars: { thing: the sun }
    assert: [{ icontains: star }]
    mock_response: "The sun is a star."
  - id: moon
    vars: { thing: the moon }
    assert: [{ icontains: moon }]
    mock_response: "The moon is a rock."
"""

STEADY = """
models: [careful]
prompt: hi
cases:
  - id: steady
    repeat: 8
    threshold: 0.5
    mock_response: "ok"
    assert: [{ contains: ok }]
"""

COMPARED = "### Compared with the baseline"
REGRESSED = re.compile(r"— \d+ significant regression")

NOW = float(calendar.timegm((2026, 12, 7, 22, 15, 30, 0, 0, 0)))
"""2026-12-07 22:15:30 UTC."""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(CONFIG)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "demo.yaml").write_text(SUITE)
    return pytester


def _runs(pytester: pytest.Pytester) -> list[Path]:
    return [r.path for r in kept_runs(pytester.path / "reports")]


def _doc(tag: str) -> dict:
    record = {"test_id": f"t::{tag}", "model": "m", "passed": True, "repeat": 0}
    return dict(build_document([record], run={"command": ["pytest", tag]}))


# --- the history module --------------------------------------------------------------------


def test_runs_in_the_same_second_get_distinct_ids_in_order(tmp_path):
    ids = [save_run(_doc(str(i)), tmp_path, keep=50, now=NOW)[0].parent.name for i in range(11)]
    assert ids[:3] == ["20261207T221530Z", "20261207T221530Z-2", "20261207T221530Z-3"]
    newest_first = [r.id for r in kept_runs(tmp_path)]
    assert newest_first == ids[::-1]  # -10 and -11 come after -9, not between -1 and -2
    later = save_run(_doc("later"), tmp_path, keep=50, now=NOW + 1)[0]
    assert kept_runs(tmp_path)[0].results == later
    assert load_document(later)["run"]["command"] == ["pytest", "later"]


def test_pruning_keeps_the_newest_and_leaves_other_folders_alone(tmp_path):
    for i in range(5):
        save_run(_doc(str(i)), tmp_path, keep=3, now=NOW + i)
    kept = [r.id for r in kept_runs(tmp_path)]
    assert kept == ["20261207T221534Z", "20261207T221533Z", "20261207T221532Z"]
    mine = tmp_path / "runs" / "notes"
    mine.mkdir()
    assert prune_runs(tmp_path, 1) == []
    assert [r.id for r in kept_runs(tmp_path)] == ["20261207T221534Z"] and mine.is_dir()


def test_the_run_just_kept_survives_a_clock_that_went_back(tmp_path):
    save_run(_doc("future"), tmp_path, keep=5, now=NOW + 3600)
    written, _ = save_run(_doc("now"), tmp_path, keep=1, now=NOW)
    assert [r.results for r in kept_runs(tmp_path)] == [written]


def test_concurrent_writers_never_share_a_run(tmp_path):
    barrier = threading.Barrier(8)
    written: list[Path] = []

    def keep(i: int) -> None:
        barrier.wait()
        written.append(save_run(_doc(f"w{i}"), tmp_path, keep=100, now=NOW)[0])

    threads = [threading.Thread(target=keep, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.parent for p in written}) == 8
    commands = sorted(load_document(p)["run"]["command"][1] for p in written)
    assert commands == sorted(f"w{i}" for i in range(8))


@pytest.mark.parametrize(
    ("text", "index"),
    [("last", 0), ("previous", 0), ("LAST", 0), ("last~2", 2), ("previous~1", 1)],
)
def test_run_references(text, index):
    assert parse_run_ref(text) == index


@given(st.text(max_size=20))
def test_anything_else_is_a_path_not_a_reference(text):
    index = parse_run_ref(text)
    assert index is None or text.strip().lower().startswith(("last", "previous"))


def test_load_kept_run_skips_a_corrupt_run_with_a_note(tmp_path):
    save_run(_doc("old"), tmp_path, now=NOW)
    save_run(_doc("new"), tmp_path, now=NOW + 1)
    (tmp_path / "runs" / "20261207T221532Z").mkdir()  # interrupted: no results.json
    broken = tmp_path / "runs" / "20261207T221533Z"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    document, path, notes = load_kept_run(tmp_path, 0)
    assert document is not None and document["run"]["command"] == ["pytest", "new"]
    assert path == tmp_path / "runs" / "20261207T221531Z" / "results.json"
    assert any("20261207T221533Z" in n and "not JSON" in n for n in notes)
    assert load_kept_run(tmp_path, 1)[0]["run"]["command"] == ["pytest", "old"]  # type: ignore[index]
    none, where, notes = load_kept_run(tmp_path, 2)
    assert none is None and where is None and "only 2 kept run(s)" in notes[-1]
    assert load_kept_run(tmp_path / "elsewhere")[2] == [
        f"no kept run in {tmp_path / 'elsewhere' / 'runs'} yet (the first run keeps one)"
    ]


def test_an_overview_of_a_run_that_is_json_but_not_a_run_names_the_problem(tmp_path):
    odd = tmp_path / "runs" / "20261207T221530Z"
    odd.mkdir(parents=True)
    (odd / "results.json").write_text('{"schema": "harness.results", "schema_version": 1}')
    [run] = kept_runs(tmp_path)
    assert run_overview(run)["error"] == "field 'run' must be a dict"


# --- sessions keep their runs --------------------------------------------------------------


def test_every_session_keeps_its_run_up_to_the_bound(project):
    for _ in range(3):
        result = project.runpytest("suites", "--harness-keep-runs", "2")
        result.stdout.fnmatch_lines(["kept: *reports/runs/*/results.json*"])
    runs = _runs(project)
    assert len(runs) == 2
    newest = json.loads((runs[0] / "results.json").read_text())
    assert newest == json.loads((project.path / "reports" / "results.json").read_text())
    assert len(newest["records"]) == 4
    finished = datetime.fromtimestamp(newest["run"]["finished"], UTC)
    assert runs[0].name.startswith(finished.strftime("%Y%m%dT%H%M%SZ"))  # named by its end


def test_the_config_and_ini_bound_the_history_and_zero_disables_it(project):
    project.makepyprojecttoml(CONFIG + "\n[tool.harness.report]\nkeep_runs = 1\n")
    project.runpytest("suites")
    project.runpytest("suites")
    assert len(_runs(project)) == 1
    result = project.runpytest("suites", "-o", "harness_keep_runs=0")
    assert "kept:" not in result.stdout.str()
    assert len(_runs(project)) == 1  # 0 keeps nothing new and deletes nothing
    result = project.runpytest("suites", "--harness-keep-runs", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-keep-runs: expected an integer >= 0, got '-1'*"])


def test_a_history_that_cannot_be_written_is_a_note_not_a_failure(project):
    (project.path / "reports").mkdir()
    (project.path / "reports" / "runs").write_text("not a folder")
    result = project.runpytest("suites", "-k", "careful")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["harness: run history: could not keep this run in *runs*"])
    assert (project.path / "reports" / "results.json").is_file()


def test_a_prune_that_fails_warns_and_the_session_passes(project, monkeypatch):
    import harness.report.history as history

    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    project.runpytest("suites", "-k", "careful")
    monkeypatch.setattr(history.shutil, "rmtree", refuse)
    result = project.runpytest("suites", "-k", "careful", "--harness-keep-runs", "1")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["harness: run history: could not prune *: Permission denied"])
    assert len(_runs(project)) == 2


def test_under_xdist_only_the_controller_keeps_the_run(project):
    result = project.runpytest_subprocess("suites", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=3, failed=1)
    [run] = _runs(project)
    assert len(load_document(run / "results.json")["records"]) == 4


def test_two_sessions_at_once_keep_two_runs(project):
    args = [*project._getpytestargs(), "suites", "-p", "no:cacheprovider"]
    procs = [project.popen(args, stdin=None) for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=120)
    assert [p.returncode for p in procs] == [1, 1]  # the parrot fails one case
    runs = _runs(project)
    assert len(runs) == 2
    sessions = {load_document(r / "results.json")["run"]["session"] for r in runs}
    assert len(sessions) == 2
    assert all(len(load_document(r / "results.json")["records"]) == 4 for r in runs)


# --- --harness-baseline last ----------------------------------------------------------------


def test_baseline_last_compares_with_the_previous_run_and_catches_a_regression(project):
    (project.path / "suites" / "demo.yaml").write_text(STEADY)
    gate = ["suites", "--harness-baseline", "last", "--harness-fail-on-regression"]
    first = project.runpytest(*gate)
    assert first.ret == pytest.ExitCode.OK  # nothing to compare with: a note, not a failure
    assert COMPARED not in (project.path / "reports" / "report.md").read_text()
    first_note = (
        "harness: --harness-baseline last: no kept run in *runs yet (the first run keeps one): "
        "nothing to compare with; the regression gate is skipped"
    )
    first.stdout.fnmatch_lines([first_note])
    [kept] = _runs(project)
    second = project.runpytest(*gate)
    assert second.ret == pytest.ExitCode.OK
    report = (project.path / "reports" / "report.md").read_text()
    assert COMPARED in report and not REGRESSED.search(report)
    second.stdout.fnmatch_lines([f"harness: --harness-baseline last: compared with {kept}*"])
    (project.path / "suites" / "demo.yaml").write_text(STEADY.replace('"ok"', '"no"'))
    third = project.runpytest(*gate)
    assert third.ret == pytest.ExitCode.TESTS_FAILED
    third.stdout.fnmatch_lines(["*harness: significant regression vs baseline:*steady*"])
    assert REGRESSED.search((project.path / "reports" / "report.md").read_text())
    # The failing run is kept too: compared with it, the next failing run has no regression.
    assert project.runpytest(*gate, "--harness-gate", "rate").ret == pytest.ExitCode.OK
    # last~N reaches further back: the passing runs, so the regression shows again.
    again = project.runpytest("suites", "--harness-baseline", "previous~2")
    again.stdout.fnmatch_lines(["*--harness-baseline previous~2: compared with *"])
    assert REGRESSED.search((project.path / "reports" / "report.md").read_text())


def test_baseline_last_without_a_gate_only_notes_the_first_run(project):
    result = project.runpytest("suites", "-k", "careful", "--harness-baseline", "last")
    assert result.ret == pytest.ExitCode.OK
    note = "*no kept run in *runs yet (the first run keeps one): nothing to compare with"
    result.stdout.fnmatch_lines([note])
    assert "regression gate is skipped" not in result.stdout.str()
    [kept] = _runs(project)
    from_ini = project.runpytest("suites", "-k", "careful", "-o", "harness_baseline=previous")
    from_ini.stdout.fnmatch_lines([f"harness: --harness-baseline previous: compared with {kept}*"])


def test_a_kept_runs_folder_is_a_baseline_too(project):
    project.runpytest("suites")
    [kept] = _runs(project)
    result = project.runpytest("suites", "--harness-baseline", str(kept))
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the parrot's failure, as before
    assert COMPARED in (project.path / "reports" / "report.md").read_text()


# --- harness runs -----------------------------------------------------------------------------


def test_harness_runs_lists_pass_rates_per_model_newest_first(project, capsys):
    project.runpytest("suites", "-k", "careful")
    project.runpytest("suites")
    reports = project.path / "reports"
    broken = reports / "runs" / "20000101T000000Z"
    broken.mkdir()
    (broken / "results.json").write_text("{")
    assert main(["runs", "--dir", str(reports)]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line[:2] == "20"]
    assert len(rows) == 3
    assert "careful 100.0%  quick 50.0%" in rows[0] and "pytest suites" in rows[0]
    assert "75.0%" in rows[0] and "UTC" in rows[0]
    assert "careful 100.0%" in rows[1] and "quick" not in rows[1] and "-k careful" in rows[1]
    assert rows[2].startswith("20000101T000000Z") and "(unreadable) not JSON" in rows[2]
    assert out[-1].startswith("3 kept run(s) in ")
    assert main(["runs", "--dir", str(reports), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [sorted(o["models"].items()) for o in listed[:2]] == [
        [("careful", 1.0), ("quick", 0.5)],
        [("careful", 1.0)],
    ]
    assert listed[0]["items"] == 4 and listed[0]["command"][:2] == ["pytest", "suites"]
    assert listed[2]["id"] == "20000101T000000Z" and "not JSON" in listed[2]["error"]


def test_harness_runs_with_no_history_says_so(tmp_path, capsys):
    (tmp_path / "runs" / "20261207T221530Z").mkdir(parents=True)  # being written
    assert main(["runs", "--dir", str(tmp_path)]) == 0
    assert "(unreadable) incomplete: no results.json" in capsys.readouterr().out
    assert main(["runs", "--dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.startswith("no kept runs in ")


def test_harness_compare_and_report_name_kept_runs(project, capsys, tmp_path):
    (project.path / "suites" / "demo.yaml").write_text(STEADY)
    project.runpytest("suites")
    (project.path / "suites" / "demo.yaml").write_text(STEADY.replace('"ok"', '"no"'))
    project.runpytest("suites")
    reports = str(project.path / "reports")
    capsys.readouterr()
    # last: the newest kept run other than the current run's own copy, i.e. the passing one.
    assert main(["compare", "last", "current", "--dir", reports]) == 1
    assert "regression" in capsys.readouterr().out
    assert main(["compare", "last~1", "current", "--dir", reports]) == 2
    assert "only 1 kept run(s)" in capsys.readouterr().err
    out = tmp_path / "site"
    args = ["report", "current", "--baseline", "previous", "--dir", reports, "--out", str(out)]
    assert main([*args, "--format", "md"]) == 0
    assert REGRESSED.search((out / "report.md").read_text())
    current = str(project.path / "reports" / "results.json")
    assert main(["compare", "last", current, "--dir", str(tmp_path / "none")]) == 2
    assert "last: no kept run in " in capsys.readouterr().err
