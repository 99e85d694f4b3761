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
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from harness._version import __version__
from harness.results import JsonlWriter, aggregate, wilson_interval
from pytest_plugin._settings import Settings

__all__ = ["ResultsCollector"]


class ResultsCollector:
    """Gathers records from reports (local or from xdist workers)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        self._writer: JsonlWriter | None = None
        self.gate_failure: str | None = None
        self.started = time.time()

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
                "outcome": report.outcome,
                "errored": all(r.get("error") for r in records),
                **item,
            }
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Close the stream and apply the pass-rate gate."""
        if self._writer is not None:
            self._writer.close()
        gate = self.settings.min_pass_rate
        if gate is None or not self.items:
            return
        failing = [(name, rate) for name, rate in self.item_pass_rates().items() if rate < gate]
        if failing:
            worst = ", ".join(f"{name} {rate:.1%}" for name, rate in failing)
            self.gate_failure = (
                f"harness: pass rate below --harness-min-pass-rate {gate:.0%}: {worst}"
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

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
        if not self.items:
            return
        tr = terminalreporter
        tr.write_sep("=", "harness summary")
        for line in summary_lines(self.items, self.records):
            tr.write_line(line)
        tr.write_line(f"results: {self.jsonl_path}")
        if self.gate_failure:
            tr.write_line(self.gate_failure, red=True, bold=True)


def summary_lines(
    items: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The per-model table: items, pass rate and its 95% interval, latency, tokens, cost."""
    from tabulate import tabulate

    per_item: dict[str, list[int]] = {}
    for item in items:
        counts = per_item.setdefault(item["model"], [0, 0, 0])
        counts[0] += 1
        counts[1] += item["outcome"] == "passed"
        counts[2] += bool(item.get("errored")) and item["outcome"] != "passed"
    stats = aggregate(records)
    rows = []
    for name, (total, passed, errored) in per_item.items():
        s = stats.get(name)
        lo, hi = wilson_interval(passed, total)
        rows.append(
            [
                name,
                total,
                passed,
                total - passed - errored,
                errored,
                f"{passed / total:.0%} [{lo:.0%}–{hi:.0%}]",
                _ms(s.p50 if s else None),
                _ms(s.p95 if s else None),
                (s.prompt_tokens + s.completion_tokens) if s else 0,
                f"${s.cost_usd:.4f}" if s and s.priced else "—",
            ]
        )
    headers = [
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
    return tabulate(rows, headers=headers, tablefmt="simple").splitlines()


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
