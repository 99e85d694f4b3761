"""The controller-side collector: records to ``results.jsonl``, the summary, the gate.

Registered only in the controlling process (never on an xdist worker), like pytest's own
junitxml plugin. It reads the plain-data records that travel on each test report, appends
them to ``<report-dir>/results.jsonl`` as they arrive, prints the per-model table at the
end, keeps a copy of the run in ``<report-dir>/runs/`` (``harness.report.history``), and
fails the session when ``--harness-min-pass-rate`` is not met.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness._version import __version__
from harness.report.document import build_document, case_key, config_hash, model_entries
from harness.report.formatting import usd_brief
from harness.report.summary import TERMINAL_WIDTH, fitted_prompt_tables, fitted_summary_table
from harness.results import JsonlWriter, ResultRecord, RunDocument
from pytest_plugin._settings import Settings

__all__ = ["ResultsCollector"]


class ResultsCollector:
    """Gathers records from reports (local or from xdist workers)."""

    def __init__(
        self, config: pytest.Config, settings: Settings, baseline: RunDocument | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.baseline = baseline
        self.records: list[ResultRecord] = []
        self.items: list[dict[str, Any]] = []
        self.history: list[ResultRecord] = []
        """Records of attempts that pytest-rerunfailures ran again."""
        self._writer: JsonlWriter | None = None
        self._share = SharedStream(None)
        self.gate_failures: list[str] = []
        self.gate_notes: list[str] = []
        self.failed_items = 0
        """Harness items (with records) whose final outcome is a failure."""
        self._document: RunDocument | None = None
        self.unsent = 0
        """Items skipped because the session's cost cap was reached."""
        self.started = time.time()
        self.session_id = uuid.uuid4().hex[:12]
        """Tells this session's lines from another's in a shared ``results.jsonl``."""
        self.written: list[Any] = []
        self.pairwise: list[dict[str, Any]] = []
        """Head-to-head judgments (``harness.pairwise``), made at session end."""
        self.kept: Path | None = None
        """This run's copy in the history (``<report-dir>/runs/<id>/results.json``)."""
        self.no_model = 0
        """Python tests skipped because no model was selected."""
        self.no_key: dict[tuple[str, str, str], int] = {}
        """Items skipped for want of an API key, per (model, provider/name, what to set)."""

    @property
    def jsonl_path(self) -> Any:
        """Where the stream of records goes."""
        return self.settings.report_dir / "results.jsonl"

    def _open(self) -> JsonlWriter:
        if self._writer is None:
            path = self.jsonl_path
            path.parent.mkdir(parents=True, exist_ok=True)
            self._share = SharedStream(path)
            if self._share.alone:
                path.write_bytes(b"")  # one run per file, unless another session is writing
            self._writer = JsonlWriter(path)
            self._writer.write(self._header())
        return self._writer

    def _header(self) -> dict[str, Any]:
        return {
            "kind": "run",
            "session": self.session_id,
            "gate": self.settings.gate,
            "started": self.started,
            "args": list(self.config.invocation_params.args),
            "harness_version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "models": list(self.settings.models),
        }

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Append the records that came with this report.

        An attempt that pytest-rerunfailures will run again (outcome ``rerun``) is kept
        only as history: its records go to ``results.jsonl`` as ``kind: "rerun"`` and to the
        document's ``history``; the item is counted once, with its final outcome.
        """
        if report.skipped and getattr(report, "harness_unsent", False):
            self.unsent += 1
        if report.skipped and getattr(report, "harness_no_model", False):
            self.no_model += 1
        no_key = getattr(report, "harness_no_key", None)
        if report.skipped and no_key:
            model, full, hint = (str(x) for x in no_key)
            self.no_key[model, full, hint] = self.no_key.get((model, full, hint), 0) + 1
        records = getattr(report, "harness_records", None)
        if not records:
            return
        attempt = int(getattr(report, "rerun", 0) or 0)
        if attempt or str(report.outcome) == "rerun":
            records = [{**r, "attempt": attempt} for r in records]
        writer = self._open()
        if str(report.outcome) == "rerun":  # pytest-rerunfailures' own outcome
            for record in records:
                writer.write({"kind": "rerun", "session": self.session_id, **record})
            self.history.extend(records)
            return
        for record in records:
            writer.write({"kind": "result", "session": self.session_id, **record})
        self.records.extend(records)
        for item in getattr(report, "harness_items", None) or [
            getattr(report, "harness_item", None) or {}
        ]:
            self._add_item(report, item, records, attempt)
        if report.failed:
            self.failed_items += 1

    def _add_item(
        self,
        report: pytest.TestReport,
        item: dict[str, Any],
        records: list[dict[str, Any]],
        attempt: int,
    ) -> None:
        """One ``items`` entry: a test's item for one model (its records of that model)."""
        model = item.get("model") or records[0].get("model")
        own = [r for r in records if r.get("model") == model] or records
        entry = {
            "test_id": report.nodeid,
            "model": model,
            "case": case_key(own[0]),
            "outcome": report.outcome,
            "errored": all(r.get("error") for r in own),
            "duration_s": round(report.duration, 4),
            **item,
        }
        if attempt:
            entry["reruns"] = attempt
        self.items.append(entry)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Judge head to head, close the stream, write the reports, apply the gates."""
        if self.records:
            self._judge_pairwise()
        if self._writer is not None:
            self._writer.close()
            self._share.release()
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
                self._regression_gate(comparison)
            if self.settings.keep_runs:  # after the comparison: `last` is the run before
                self._keep_run(document)
        self._pass_rate_gate()
        self._no_key_gate()
        if self.gate_failures:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif self.settings.gate == "rate" and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
            # Failing harness items are reported, not counted: the gates decide. Anything
            # else that failed (an ordinary test, an error in setup) still fails the run.
            if self.failed_items and session.testsfailed == self.failed_items:
                session.exitstatus = pytest.ExitCode.OK
                self.gate_notes.append(
                    f"harness: gate 'rate': {self.failed_items} failing item(s) reported; "
                    "the pass-rate and regression gates passed"
                )

    def _keep_run(self, document: RunDocument) -> None:
        """Add this run to the history; a failure to write or prune is a note, never fatal."""
        from harness.report.history import RUNS_DIR, save_run

        try:
            self.kept, warnings = save_run(
                document, self.settings.report_dir, keep=self.settings.keep_runs
            )
        except OSError as exc:
            where = self.settings.report_dir / RUNS_DIR
            warnings = [f"could not keep this run in {where}: {exc.strerror or exc}"]
        self.gate_notes.extend(f"harness: run history: {w}" for w in warnings)

    def _regression_gate(self, comparison: Any) -> None:
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
            self.gate_failures.append(f"harness: significant regression vs baseline: {shown}")

    def _pass_rate_gate(self) -> None:
        gate = self.settings.min_pass_rate
        if gate is None or not self.items:
            return
        failing = [(name, rate) for name, rate in self.item_pass_rates().items() if rate < gate]
        if failing:
            worst = ", ".join(f"{name} {rate:.1%}" for name, rate in failing)
            self.gate_failures.append(
                f"harness: pass rate below --harness-min-pass-rate {gate:.0%}: {worst}"
            )

    def _no_key_gate(self) -> None:
        """With a gate on, items skipped for want of a key fail the run: they never ran."""
        s = self.settings
        if not self.no_key or (s.min_pass_rate is None and not s.fail_on_regression):
            return
        models = ", ".join(model for model, _, _ in self.no_key)
        self.gate_failures.append(
            f"harness: {sum(self.no_key.values())} item(s) not run for want of an API key "
            f"({models}); the gates cannot pass on items that never ran"
        )

    def _skip_lines(self) -> list[str]:
        """Why harness skipped items: no model selected, no API key (once per session)."""
        from pytest_plugin._preflight import key_lines
        from pytest_plugin._state import get_state

        lines = []
        if self.no_model:
            lines.append(
                f"harness: {self.no_model} Python test(s) skipped: no model selected — pass "
                "--harness-models, set harness_models in the pytest ini (pytest.ini, "
                "[tool.pytest.ini_options]), or mark them @pytest.mark.models(...)"
            )
        if self.no_key:
            if not get_state(self.config).keys_announced:  # under xdist: not said yet
                lines += key_lines(list(self.no_key))
            lines.append(
                f"harness: {sum(self.no_key.values())} item(s) skipped: no API key, nothing sent"
            )
        return lines

    def document(self) -> RunDocument:
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
        return build_document(
            self.records, self.items, run=run, history=self.history, pairwise=self.pairwise
        )

    def _pair_specs(self) -> list[tuple[Any, list[ResultRecord]]]:
        """Each head-to-head to judge, with its records: the option's, then each suite's."""
        from harness.pairwise import PairSpec
        from harness.suites import SuiteError, load_suite

        out: list[tuple[Any, list[ResultRecord]]] = []
        option = self.settings.pairwise
        if option is not None:
            out.append((PairSpec(option, None, self.settings.pairwise_judge), self.records))
        root = self.config.rootpath
        for suite_id in dict.fromkeys(str(r["suite"]) for r in self.records if r.get("suite")):
            path = root / suite_id
            try:
                suite = load_suite(path, root=root) if path.is_file() else None
            except SuiteError:
                suite = None
            spec = suite.compare if suite is not None else None
            if spec is None or (option is not None and set(spec.models) == set(option)):
                continue
            out.append((spec, [r for r in self.records if r.get("suite") == suite_id]))
        return out

    def _judge_pairwise(self) -> None:
        """Judge every head-to-head through the session's harness; records to the stream."""
        specs = self._pair_specs()
        if not specs:
            return
        from harness._sync import run_sync
        from harness.checks.judge import JudgeModelError, judge_model_for
        from harness.pairwise import judge_pairs
        from pytest_plugin._state import get_state

        harness = get_state(self.config).harness
        writer = self._open()
        for spec, records in specs:
            try:
                judge = judge_model_for(harness, spec.judge)
            except JudgeModelError as exc:
                self.gate_notes.append(f"harness: head to head {' vs '.join(spec.models)}: {exc}")
                continue
            for record in run_sync(judge_pairs(harness, records, spec, judge)):
                writer.write({"kind": "pairwise", "session": self.session_id, **record})
                self.pairwise.append(dict(record))

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
                f"harness: cost cap {usd_brief(self.settings.max_cost, 6)} reached: "
                f"{self.unsent} item(s) skipped, their requests not sent",
                yellow=True,
                bold=True,
            )
        for line in self._skip_lines():
            terminalreporter.write_line(line, yellow=True)
        if not self.items:
            for failure in self.gate_failures:
                terminalreporter.write_line(failure, red=True, bold=True)
            return
        tr = terminalreporter
        tr.write_sep("=", "harness summary")
        document = self._document or self.document()  # built once, at session finish
        width = int(getattr(getattr(tr, "_tw", None), "fullwidth", 0) or TERMINAL_WIDTH)
        lines = fitted_summary_table(document, width).splitlines()  # the reports: every column
        # prompt variants: pass rate per prompt × model, 95% interval, counts
        for by_prompt in fitted_prompt_tables(document, width):
            lines += ["", *by_prompt.splitlines()]
        for line in lines:
            tr.write_line(line)
        adaptive = [i for i in self.items if i.get("max_repeats")]
        if adaptive:
            asked = sum(int(i.get("repeats") or 0) for i in adaptive)
            most = sum(int(i["max_repeats"]) for i in adaptive)
            tr.write_line(
                f"adaptive repeats: {asked} of up to {most} calls asked for "
                f"{len(adaptive)} item(s); {most - asked} saved"
            )
        if self.pairwise:
            from harness.pairwise import head_to_head, tally_text

            for pair in head_to_head(self.pairwise):
                tr.write_line(tally_text(pair))
        tr.write_line(f"results: {self.jsonl_path}")
        for path in self.written:
            tr.write_line(f"report: {path}")
        if self.kept is not None:
            tr.write_line(f"kept: {self.kept} (--harness-baseline last)")
        for failure in self.gate_failures:
            tr.write_line(failure, red=True, bold=True)
        for note in self.gate_notes:
            tr.write_line(note, yellow=True)


class SharedStream:
    """Whether this session writes ``results.jsonl`` alone, held for the session's life.

    Every session writing a report directory holds a shared ``flock`` on
    ``results.jsonl.lock``. A session that can take it exclusively is alone: it starts the
    file afresh (one run per file). Otherwise another session is writing, and this one
    appends, so neither loses a line (each line names its session). Locks go with the
    process, so a killed session never blocks the next. Where ``fcntl`` is missing
    (Windows) every session starts the file afresh, as before.
    """

    def __init__(self, jsonl: Path | None) -> None:
        self.alone = True
        self._fd: int | None = None
        if jsonl is None:
            return
        try:
            import fcntl
        except ImportError:
            return
        fd = os.open(str(jsonl) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.alone = False
        fcntl.flock(fd, fcntl.LOCK_SH)  # from exclusive to shared, or wait for a shared one
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the descriptor releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
