"""Run history: ``<report-dir>/runs/<id>/results.json``, kept, pruned, listed and resolved.

Every pytest session that records answers also keeps a copy of its run document under
``runs/<UTC timestamp>`` (``20261207T221530Z``; a second run in the same second gets
``-2``, a third ``-3``, ...), so ``--harness-baseline last`` can compare with the previous
run without copying a baseline by hand. At most ``keep`` runs are kept; the oldest go.
``harness runs`` lists them (``run_overview``). Directories whose names are not run ids are
never listed nor deleted.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results import RunDocument

__all__ = [
    "DEFAULT_KEEP_RUNS",
    "RUNS_DIR",
    "KeptRun",
    "kept_runs",
    "load_kept_run",
    "parse_run_ref",
    "prune_runs",
    "run_overview",
    "save_run",
]

RUNS_DIR = "runs"
"""The history's folder under the report directory."""

DEFAULT_KEEP_RUNS = 20
"""How many runs are kept when neither ``--harness-keep-runs`` nor the config says."""

_RUN_ID = re.compile(r"(\d{8}T\d{6}Z)(?:-(\d+))?")
_REF = re.compile(r"(?:last|previous)(?:~(\d+))?")


@dataclass(frozen=True, slots=True)
class KeptRun:
    """One directory of the history."""

    id: str
    """The directory's name: the UTC time the run was kept, ``-N`` for the N-th that second."""
    path: Path
    """The directory."""

    @property
    def results(self) -> Path:
        """Its ``results.json`` (absent while the run is being written)."""
        return self.path / "results.json"


def _order(run_id: str) -> tuple[str, int]:
    match = _RUN_ID.fullmatch(run_id)
    assert match is not None
    return match.group(1), int(match.group(2) or 1)


def kept_runs(report_dir: str | os.PathLike[str]) -> list[KeptRun]:
    """The history's runs, newest first (an empty list when there is none)."""
    runs = Path(report_dir) / RUNS_DIR
    try:
        entries = list(os.scandir(runs))
    except OSError:  # no history yet (or not a directory)
        return []
    found = [
        KeptRun(e.name, Path(e.path))
        for e in entries
        if _RUN_ID.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
    ]
    return sorted(found, key=lambda r: _order(r.id), reverse=True)


def save_run(
    document: RunDocument,
    report_dir: str | os.PathLike[str],
    *,
    keep: int = DEFAULT_KEEP_RUNS,
    now: float | None = None,
) -> tuple[Path, list[str]]:
    """Keep ``document`` as the newest run; prune beyond ``keep``.

    Its id is the UTC time ``now``, by default the time the run finished (its header's).
    The run's directory is made with one ``mkdir`` (two sessions ending in the same second
    get distinct names) and its ``results.json`` is written atomically. Returns the file
    written and one warning per run that could not be pruned (pruning never raises).

    Raises:
        OSError: when the run itself cannot be written.
    """
    from harness.report.document import write_document

    runs = Path(report_dir) / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    if now is None:
        finished = document.get("run", {}).get("finished")
        now = float(finished) if isinstance(finished, int | float) else time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    n = 1
    while True:
        folder = runs / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            n += 1
    written = write_document(document, folder / "results.json")
    return written, prune_runs(report_dir, keep, spare=folder.name)


def prune_runs(
    report_dir: str | os.PathLike[str], keep: int, *, spare: str | None = None
) -> list[str]:
    """Delete the oldest runs beyond ``keep``; returns a warning per run left in place.

    ``spare`` (a run id) is never deleted: the run just kept, even when the clock went back.
    """
    warnings: list[str] = []
    old = [r for r in kept_runs(report_dir) if r.id != spare]
    for run in old[max(keep - (spare is not None), 0) :]:
        try:
            shutil.rmtree(run.path)
        except FileNotFoundError:  # another session pruned it first
            continue
        except OSError as exc:
            warnings.append(f"could not prune the kept run {run.path}: {exc.strerror or exc}")
    return warnings


def parse_run_ref(text: str) -> int | None:
    """``last``/``previous`` → 0, ``last~N``/``previous~N`` → N; anything else → ``None``.

    0 is the newest kept run: under pytest, the run before this session (a session's own
    run is kept only at its end).
    """
    match = _REF.fullmatch(text.strip().lower())
    if match is None:
        return None
    return int(match.group(1) or 0)


def load_kept_run(
    report_dir: str | os.PathLike[str], index: int = 0, *, skip_session: str | None = None
) -> tuple[RunDocument | None, Path | None, list[str]]:
    """The ``index``-th newest readable kept run: (document, its file, notes).

    Runs that cannot be read (partial, corrupt) are skipped, each with a note; so is the
    run of session ``skip_session`` (the kept copy of the run being compared, outside
    pytest). When there are not enough runs the document and file are ``None`` and a note
    says so.
    """
    from harness.report.document import ResultsError, load_document

    notes: list[str] = []
    seen = 0
    for run in kept_runs(report_dir):
        try:
            document = load_document(run.results)
        except ResultsError as exc:
            notes.append(f"skipped the kept run {run.id}: {exc}")
            continue
        if skip_session is not None and document["run"].get("session") == skip_session:
            continue
        if seen == index:
            return document, run.results, notes
        seen += 1
    where = Path(report_dir) / RUNS_DIR
    if seen == 0:
        notes.append(f"no kept run in {where} yet (the first run keeps one)")
    else:
        notes.append(f"only {seen} kept run(s) in {where}; asked for the one {index} before last")
    return None, None, notes


def run_overview(run: KeptRun) -> dict[str, Any]:
    """What ``harness runs`` shows of one kept run.

    Keys: ``id``, ``path``, ``finished`` (epoch seconds or ``None``), ``command`` (a
    list), ``items``, ``pass_rate`` (overall), ``models`` (name → pass rate, ``None`` for
    a model without items), ``cost_usd`` (``None`` when nothing was priced); or ``id``,
    ``path`` and ``error`` (one line) for a run that cannot be read.
    """
    from harness.report.document import ResultsError, load_document
    from harness.report.summary import model_summaries, overall_summary

    base: dict[str, Any] = {"id": run.id, "path": str(run.results)}
    if not run.results.is_file():
        return {**base, "error": "incomplete: no results.json (being written, or interrupted)"}
    try:
        document = load_document(run.results)
        header = document["run"]
        overall = overall_summary(document)
        models = {str(m["model"]): m["pass_rate"] for m in model_summaries(document)}
    except ResultsError as exc:
        return {**base, "error": str(exc).removeprefix(f"{run.results}: ")}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # valid JSON, odd fields
        return {**base, "error": f"unreadable: {type(exc).__name__}: {exc}"}
    command = header.get("command")
    return {
        **base,
        "finished": header.get("finished"),
        "command": [str(c) for c in command] if isinstance(command, list) else [],
        "items": overall["items"],
        "pass_rate": overall["pass_rate"],
        "models": models,
        "cost_usd": overall["cost_usd"],
    }
