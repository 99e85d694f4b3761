"""The pytest11 entry module (``-p no:harness`` disables it).

Hooks only; the work lives in private modules: ``_settings`` (options), ``_suite`` (YAML
suites as items), ``_prefetch`` (concurrent calls ahead of the items), ``_fixtures``
(``harness``, ``model``, ``batch``, ``race``, ``all_responses``), ``_preflight`` (unknown
model names, missing API keys) and ``_collector`` (results stream, summary and gate, on the
controller only).
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_plugin._collector import ResultsCollector
from pytest_plugin._fixtures import (
    _selected_models,
    all_responses,
    batch,
    harness,
    model,
    race,
)
from pytest_plugin._records import set_summary, take
from pytest_plugin._settings import add_options, load_harness_config, resolve_settings
from pytest_plugin._state import State, get_state, state_key
from pytest_plugin._suite import SuiteFile, matches_suite_glob

if TYPE_CHECKING:
    from harness.results import RunDocument

__all__ = ["all_responses", "batch", "harness", "model", "race"]

_collector_key = pytest.StashKey[ResultsCollector]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the options and ini keys."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Resolve the options, load the config, register markers and the collector."""
    config.addinivalue_line(
        "markers",
        "models(*names, replace=False): run this test with these models "
        "(narrows the selected models; replace=True ignores the selection)",
    )
    config.addinivalue_line(
        "markers",
        "repeat(n, threshold=1.0): run the test n times; it passes when the pass rate "
        "reaches threshold",
    )
    config.addinivalue_line(
        "markers", "harness(**params): call parameters for this test's harness fixtures"
    )
    file = load_harness_config(config)  # read now, so that a mistake in it fails early
    settings = resolve_settings(config, file)
    state = State(settings=settings, config=config, file=file)
    config.stash[state_key] = state
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        baseline = None
        if settings.baseline is not None:
            from harness.report.document import ResultsError, load_document

            try:
                baseline = load_document(settings.baseline)
            except ResultsError as exc:
                raise pytest.UsageError(f"--harness-baseline: {exc}") from None
        notes: list[str] = []
        if settings.baseline_run is not None:
            baseline, notes = _kept_baseline(config, settings.report_dir, settings.baseline_run)
        collector = ResultsCollector(config, settings, baseline)
        collector.gate_notes.extend(notes)
        config.stash[_collector_key] = collector
        config.pluginmanager.register(collector, "harness-collector")


def _kept_baseline(
    config: pytest.Config, report_dir: Path, index: int
) -> tuple[RunDocument | None, list[str]]:
    """``--harness-baseline last[~N]``: the kept run, and the terminal's notes about it.

    No kept run (the first run) is a note, not an error: the session runs with no baseline,
    and ``--harness-fail-on-regression`` has nothing to gate on.
    """
    from harness.report.history import load_kept_run

    document, path, found = load_kept_run(report_dir, index)
    given = config.getoption("harness_baseline") or config.getini("harness_baseline")
    flag = f"harness: --harness-baseline {given or 'last'}"
    notes = [f"{flag}: {note}" for note in found]
    if document is None:
        gate = (
            "; the regression gate is skipped"
            if config.getoption("harness_fail_on_regression")
            else ""
        )
        notes[-1] += f": nothing to compare with{gate}"
    else:
        notes.append(f"{flag}: compared with {path}")
    return document, notes


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unregister the collector."""
    collector = config.stash.get(_collector_key, None)
    if collector is not None:
        del config.stash[_collector_key]
        config.pluginmanager.unregister(collector)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """YAML files matching ``harness_suite_glob`` become suites."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    settings = get_state(parent.config).settings
    if not matches_suite_glob(file_path, parent.config.rootpath, settings.suite_globs):
        return None
    result: pytest.Collector = SuiteFile.from_parent(parent, path=file_path)
    return result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise tests that ask for ``model`` over the selected models.

    An unknown name in ``@pytest.mark.models(...)`` fails the test's collection first.
    """
    from pytest_plugin._preflight import check_marker_models

    check_marker_models(metafunc.definition, get_state(metafunc.config).file)
    if "model" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if "model" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test parametrises model itself
    settings = get_state(metafunc.config).settings
    models = _selected_models(metafunc.definition, settings.models)
    if not models:
        skip = pytest.mark.skip(
            reason="no models selected: pass --harness-models, set harness_models, "
            "or use @pytest.mark.models(...)"
        )
        metafunc.parametrize(
            "model", [pytest.param(None, marks=skip)], ids=["no-model"], indirect=True
        )
        return
    metafunc.parametrize("model", models, ids=models, indirect=True)


@pytest.hookimpl(trylast=True)  # after -k/-m and other plugins have deselected
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip the items whose model needs an API key that is not set (nothing is sent)."""
    from pytest_plugin._preflight import missing_keys

    state = get_state(config)
    state.missing_keys = missing_keys(items, lambda: state.harness)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str] | None:
    """Once, after collection: every model whose key is missing and what to set.

    Under xdist the workers collect; the controller says it in the summary instead.
    """
    from pytest_plugin._preflight import key_lines

    state = config.stash.get(state_key, None)
    if state is None or not state.missing_keys:
        return None
    state.keys_announced = True
    return key_lines(state.missing_keys)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``@pytest.mark.repeat(n, threshold=...)`` tests n times and judge the pass rate."""
    marker = pyfuncitem.get_closest_marker("repeat")
    if marker is None or inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    settings = get_state(pyfuncitem.config).settings
    n = settings.repeat or int(marker.args[0] if marker.args else marker.kwargs.get("n", 1))
    threshold = float(
        marker.kwargs.get("threshold", marker.args[1] if len(marker.args) > 1 else 1.0)
    )
    if n < 1 or not 0 <= threshold <= 1:
        raise pytest.UsageError(
            f"{pyfuncitem.nodeid}: @pytest.mark.repeat needs n >= 1 and 0 <= threshold <= 1"
        )
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    plan = None
    if settings.adaptive:  # --harness-repeat auto: stop once the verdict is decided
        from harness.sequential import SequentialPlan
        from harness.suites import DEFAULT_CONFIDENCE

        plan = SequentialPlan(n, threshold, DEFAULT_CONFIDENCE)
    passes = ran = 0
    last_failure: BaseException | None = None
    while ran < n:
        try:
            pyfuncitem.obj(**kwargs)
        except (AssertionError, Exception) as exc:  # noqa: B014 - a failed repeat
            last_failure = exc
        else:
            passes += 1
        ran += 1
        if plan is not None and plan.decide(passes, ran).verdict is not None:
            break
    from harness.verdict import case_verdict

    verdict = case_verdict(passes, ran, threshold, plan)
    set_summary(pyfuncitem, verdict.summary())
    if not verdict.passed:
        __tracebackhide__ = True
        raise AssertionError(
            f"{verdict.headline()}; last failure: {type(last_failure).__name__}: {last_failure}"
        ) from last_failure
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach this test's records to its report, as plain data that survives xdist.

    Every report is also scrubbed of the keys this process knows (see ``_scrub_report``).
    """
    report = _scrub_report((yield))
    if report.when == "setup" and report.skipped:
        _mark_skipped(item, report)
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return report
    taken = take(item)
    if taken.unsent:
        report.harness_unsent = True  # type: ignore[attr-defined]
    records = taken.records
    if not records:
        return report
    for i in taken.from_test:
        records[i]["passed"] = report.passed and not records[i].get("error")
    report.harness_records = records  # type: ignore[attr-defined]
    models = list(dict.fromkeys(str(r["model"]) for r in records))
    summary = taken.summary or {}
    if len(models) == 1:
        report.harness_item = {"model": models[0], **summary}  # type: ignore[attr-defined]
    else:  # all_responses / race: one item per model that answered, the test's outcome each
        report.harness_items = [{**summary, "model": m} for m in models]  # type: ignore[attr-defined]
    return report


def _mark_skipped(item: pytest.Item, report: pytest.TestReport) -> None:
    """Say on the report why the harness skipped it (no model, no key), for the summary."""
    from pytest_plugin._preflight import no_key_key

    missing = item.stash.get(no_key_key, None)
    if missing is not None:
        report.harness_no_key = list(missing)  # type: ignore[attr-defined]
        return
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "model" in callspec.params and callspec.params["model"] is None:
        report.harness_no_model = True  # type: ignore[attr-defined]


def _scrub_report(report: pytest.TestReport) -> pytest.TestReport:
    """The report with every key the harness knows replaced by ``***``.

    What pytest shows of a failure — the traceback with ``--showlocals``, the captured
    output and logs — reaches the terminal, ``--junitxml`` and every reporting plugin
    through the report. A key can get there from a local variable holding a raw answer
    body that echoed it, or from the test's own prints; the report is rewritten as text
    only when it holds one, so ordinary failures keep their rich form.
    """
    from harness.errors import knows_secrets, redact_known

    if not knows_secrets():
        return report
    if report.longrepr is not None:
        text = str(report.longrepr)
        cleaned = redact_known(text)
        if cleaned != text:
            report.longrepr = cleaned
    report.sections = [(title, redact_known(body)) for title, body in report.sections]
    return report


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """One line naming the selected models and the mode."""
    state = config.stash.get(state_key, None)
    if state is None:
        return None
    s = state.settings
    models = ", ".join(s.models) if s.models else "from each suite"
    mode = " (offline)" if s.offline else ""
    return [f"harness: models: {models}{mode}; reports: {s.report_dir}"]
