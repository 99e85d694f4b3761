"""The controller-side collector: records to ``results.jsonl``, the summary, the gate.

Registered only in the controlling process (never on an xdist worker), like pytest's own
junitxml plugin. It reads the plain-data records that travel on each test report, appends
them to ``<report-dir>/results.jsonl`` as they arrive, prints the per-model table at the
end, and fails the session when ``--harness-min-pass-rate`` is not met.
"""

from __future__ import annotations

import platform
import sys
import time
from typing import Any

import pytest

from harness._version import __version__
from harness.report.results import build_document, case_key, config_hash, model_entries
from harness.report.summary import summary_table
from harness.results import JsonlWriter
from pytest_plugin._settings import Settings

__all__ = ["ResultsCollector"]


class ResultsCollector:
    """Gathers records from reports (local or from xdist workers)."""

    def __init__(
        self, config: pytest.Config, settings: Settings, baseline: dict[str, Any] | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.baseline = baseline
        self.records: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        self._writer: JsonlWriter | None = None
        self.gate_failures: list[str] = []
        self._document: dict[str, Any] | None = None
        self.unsent = 0
        """Items skipped because the session's cost cap was reached."""
        self.started = time.time()
        self.written: list[Any] = []

    @property
    def jsonl_path(self) -> Any:
        """Where the stream of records goes."""
        return self.settings.report_dir / "results.jsonl"

    def _open(self) -> JsonlWriter:
        if self._writer is None:
            path = self.jsonl_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("", encoding="utf-8")  # one run per file
            self._writer = JsonlWriter(path)
            self._writer.write(self._header())
        return self._writer

    def _header(self) -> dict[str, Any]:
        return {
            "kind": "run",
            "started": self.started,
            "args": list(self.config.invocation_params.args),
            "harness_version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "models": list(self.settings.models),
        }

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Append the records that came with this report."""
        if report.skipped and "cost cap" in str(report.longrepr):
            self.unsent += 1
        records = getattr(report, "harness_records", None)
        if not records:
            return
        writer = self._open()
        for record in records:
            writer.write({"kind": "result", **record})
        self.records.extend(records)
        item = getattr(report, "harness_item", None) or {}
        self.items.append(
            {
                "test_id": report.nodeid,
                "model": item.get("model") or records[0].get("model"),
                "case": case_key(records[0]),
                "outcome": report.outcome,
                "errored": all(r.get("error") for r in records),
                "duration_s": round(report.duration, 4),
                **item,
            }
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Close the stream, write the reports and apply the pass-rate gate."""
        if self._writer is not None:
            self._writer.close()
        if self.records:
            document = self._document = self.document()
            comparison = None
            if self.baseline is not None:
                from harness.report.compare import compare

                comparison = compare(self.baseline, document)
            from harness.report import write_reports

            self.written = write_reports(
                document, self.settings.report_dir, comparison=comparison, step_summary=True
            )
            if self.settings.fail_on_regression and comparison is not None:
                reasons = [
                    f"{r['case']} [{r['model']}]: {r['reason']}"
                    if r.get("case")
                    else f"{r['model']}: {r['reason']}"
                    for r in comparison.to_dict()["significant_regressions"]
                ]
                if reasons:
                    shown = "; ".join(reasons[:5]) + (
                        f"; … {len(reasons) - 5} more" if len(reasons) > 5 else ""
                    )
                    self.gate_failures.append(
                        f"harness: significant regression vs baseline: {shown}"
                    )
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
        gate = self.settings.min_pass_rate
        if gate is None or not self.items:
            return
        failing = [(name, rate) for name, rate in self.item_pass_rates().items() if rate < gate]
        if failing:
            worst = ", ".join(f"{name} {rate:.1%}" for name, rate in failing)
            self.gate_failures.append(
                f"harness: pass rate below --harness-min-pass-rate {gate:.0%}: {worst}"
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def document(self) -> dict[str, Any]:
        """The run document (``results.json``) of this session so far."""
        from pytest_plugin._state import get_state

        harness_config = get_state(self.config).harness.config
        names = list(self.settings.models) + [str(i["model"]) for i in self.items]
        run = {
            **{k: v for k, v in self._header().items() if k != "kind"},
            "command": ["pytest", *self.config.invocation_params.args],
            "config_hash": config_hash(harness_config),
            "models": [m for m in model_entries(harness_config, names) if m["name"] in set(names)],
        }
        return build_document(self.records, self.items, run=run)

    def item_pass_rates(self) -> dict[str, float]:
        """Pass rate of the items, overall (key ``"overall"``) and per model."""
        out: dict[str, list[int]] = {"overall": [0, 0]}
        for item in self.items:
            for key in ("overall", item["model"]):
                counts = out.setdefault(key, [0, 0])
                counts[0] += item["outcome"] == "passed"
                counts[1] += 1
        return {k: p / n for k, (p, n) in out.items() if n}

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The per-model table and the files written; silent when nothing was recorded."""
        if self.unsent:
            terminalreporter.write_line(
                f"harness: cost cap ${self.settings.max_cost:g} reached: "
                f"{self.unsent} item(s) skipped, their requests not sent",
                yellow=True,
                bold=True,
            )
        if not self.items:
            return
        tr = terminalreporter
        tr.write_sep("=", "harness summary")
        document = self._document or self.document()  # built once, at session finish
        for line in summary_table(document, "simple").splitlines():
            tr.write_line(line)
        tr.write_line(f"results: {self.jsonl_path}")
        for path in self.written:
            tr.write_line(f"report: {path}")
        for failure in self.gate_failures:
            tr.write_line(failure, red=True, bold=True)
