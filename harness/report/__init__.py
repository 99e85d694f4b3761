"""The reporter: ``results.json``, ``report.html``, ``report.md``, and baseline comparison.

* ``document`` — the run document (``results.json``): building it from records, loading,
  validating and merging saved runs. Its schema is in ``docs/results-schema.md``.
* ``compare`` — the baseline diff: per case and model pass→fail / fail→pass / new / removed,
  per model the change in pass rate with a significance test, latency and cost deltas.
* ``html`` — one self-contained ``report.html`` (inline CSS, JS and SVG; no network).
* ``markdown`` — ``report.md`` for PR comments and ``GITHUB_STEP_SUMMARY``.
* ``history`` — the kept runs (``runs/<id>/results.json``): keep, prune, list, and resolve
  ``--harness-baseline last``.

``write_reports`` renders all of them from one run document.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.report.compare import Comparison
    from harness.results import RunDocument

__all__ = ["write_reports"]


def write_reports(
    document: RunDocument,
    out_dir: str | os.PathLike[str],
    *,
    baseline: RunDocument | None = None,
    comparison: Comparison | None = None,
    formats: Sequence[str] = ("json", "html", "md"),
    step_summary: bool = False,
) -> list[Path]:
    """Write ``results.json``, ``report.html`` and ``report.md`` (those in ``formats``).

    With a ``baseline`` run document (or a ready ``comparison``), the reports show what
    changed. ``step_summary`` also appends the markdown to ``$GITHUB_STEP_SUMMARY`` when
    that variable is set. Returns the paths written.
    """
    from harness.report.document import write_document

    if comparison is None and baseline is not None:
        from harness.report.compare import compare

        comparison = compare(baseline, document)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "json" in formats:
        written.append(write_document(document, out / "results.json"))
    if "html" in formats:
        from harness.report.html import render_html

        html = render_html(
            document, baseline_comparison=comparison.to_dict() if comparison else None
        )
        path = out / "report.html"
        path.write_text(html, encoding="utf-8")
        written.append(path)
    if "md" in formats or step_summary:
        from harness.report.markdown import append_step_summary, render_markdown

        markdown = render_markdown(document, comparison=comparison)
        if "md" in formats:
            path = out / "report.md"
            path.write_text(markdown, encoding="utf-8")
            written.append(path)
        if step_summary:
            append_step_summary(markdown)
    return written
