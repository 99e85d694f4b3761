"""`harness init` writes a starter project that passes at once; `--version`; quiet pipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness._version import __version__
from harness.cli import BROKEN_PIPE_STATUS, main
from harness.config import load_config
from harness.starter import STARTER_FILES, starter_text, write_starter
from harness.suites import load_suite

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    """The environment of a child process that imports this checkout's harness."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), path]))}


def test_init_writes_a_project_whose_pytest_passes_offline(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "init"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for rel in STARTER_FILES:
        assert (tmp_path / rel).is_file(), rel
        assert f"wrote {rel}" in done.stdout
    assert "pytest" in done.stdout.split("Next:", 1)[1]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary
    # both the suite and the Python tests ran, against both offline models
    assert "suites/starter.yaml" in run.stdout and "tests/test_starter.py" in run.stdout
    records = (tmp_path / "reports" / "results.jsonl").read_text(encoding="utf-8")
    assert '"careful"' in records and '"quick"' in records and '"llm_judge' in records
    assert (tmp_path / "reports" / "report.html").is_file()


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "starter.yaml").write_text("mine", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert "refusing to overwrite" in line and "starter.yaml" in line
    assert "harness.toml" not in line
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["starter.yaml", "suites"]
    assert (tmp_path / "suites" / "starter.yaml").read_text(encoding="utf-8") == "mine"


def test_init_into_a_new_directory_names_it_in_the_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "llm"
    assert main(["init", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"cd {target}" in out
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(
        STARTER_FILES
    )


def test_the_workflow_uploads_the_report_and_writes_the_step_summary() -> None:
    workflow = yaml.safe_load(starter_text(".github/workflows/llm-tests.yml"))
    steps = workflow["jobs"]["llm-tests"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert "reports/report.html" in upload["with"]["path"] and upload["if"] == "always()"
    runs = [s.get("run", "") for s in steps]
    assert any("pip install" in r for r in runs) and "pytest" in runs
    assert any('reports/report.md >> "$GITHUB_STEP_SUMMARY"' in r for r in runs)


def test_the_starter_config_and_its_commented_real_models_load(tmp_path: Path) -> None:
    text = starter_text("harness.toml")
    path = tmp_path / "harness.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert {n: m.full_name for n, m in config.models.items()} == {
        "careful": "mock/careful",
        "quick": "mock/quick",
        "judge": "mock/judge",
        "embedder": "mock/embedder",
    }
    # the commented real models are valid config once uncommented
    real = "\n".join(
        line.removeprefix("#   ")
        for line in text.splitlines()
        if line.startswith(("#   [", "#   model"))
    )
    path.write_text(real, encoding="utf-8")
    models = {m.full_name for m in load_config(path).models.values()}
    assert models == {"openai/gpt-4o", "anthropic/claude-haiku-4-5", "gemini/gemini-3.5-flash"}


def test_the_starter_suite_loads_with_several_check_kinds(tmp_path: Path) -> None:
    write_starter(tmp_path)
    suite = load_suite(tmp_path / "suites" / "starter.yaml")
    names = {
        (next(iter(c)) if isinstance(c, dict) else c).removeprefix("not-")
        for case in suite.cases
        for c in case.checks
    }
    assert {
        "icontains",
        "max_words",
        "is_json",
        "json_path",
        "regex",
        "similar",
        "llm_judge",
    } <= names


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--version"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout == f"harness {__version__}\n"


@pytest.mark.parametrize("argv", [["checks"], ["cache", "stats"], ["checks", "--markdown"]])
def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(
    argv: list[str], tmp_path: Path
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head -0`) is gone before the first byte is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", *argv],
            cwd=tmp_path,
            env=_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == BROKEN_PIPE_STATUS


def test_piped_into_head_prints_the_first_line_quietly(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m harness.cli checks --markdown | head -1"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout == "# Checks reference\n"
    assert done.stderr == ""


def test_the_templates_ship_as_package_data_and_each_is_used() -> None:
    import tomllib
    from fnmatch import fnmatch

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["harness"]
    folder = ROOT / "harness" / "templates" / "init"
    shipped = {p.name for p in folder.iterdir()}
    for name in shipped:
        rel = f"templates/init/{name}"
        assert any(fnmatch(rel, pattern) for pattern in patterns), f"{rel} is not package data"
    assert shipped == set(STARTER_FILES.values())
