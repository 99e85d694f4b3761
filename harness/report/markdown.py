r"""``report.md``: the run as GitHub-flavoured markdown, sized for PR comments and step summaries.

``render_markdown(document)`` gives, in order of priority:

1. a status line (``**harness**: 28/39 items passed (71.8%) across 3 models in 0.62 s``);
2. the per-model table (from ``harness.report.summary.summary_rows``, shared with the terminal),
   with a "replayed" column (answers replayed from the response store, the cost saved) only
   when something was replayed;
   with prompt variants (suites with ``prompts:``), the prompt × model table of pass rates
   with their 95% intervals (``harness.report.summary.prompt_rows``); with several suites
   (suite files or Python test modules), the suite × model table the same way; with
   several models, each model's pass rate, cost per 1,000 cases and p50 latency;
3. with a baseline ``Comparison``: a line saying what α promises, the per-model change
   with its stratified (CMH) p-value, adjusted p-value and verdict, and the changed cases
   with theirs, each labelled ``regression (significant)`` (significant after correction)
   or ``changed, not significant``;
4. when records carry races: per model its races, wins, late finishes, cancellations and
   failures, and the tokens and cost it consumed while losing, then the total the losers
   consumed;
5. when the run has ``pairwise`` records (``harness.pairwise``): the head-to-head table —
   wins, ties, losses and the win rate with its 95% interval per pair, overall and per
   prompt — and the cases where the two models differ most, both answers excerpted;
6. the failing cases: case, model, why it failed (failed checks' details or the error) and
   an excerpt of the output; when the item's repeats disagree (some pass, some fail, or
   different outputs), every repeat's verdict, reason and excerpt, one per line.

The whole text stays within ``limit_bytes`` (UTF-8): sections and table rows are added whole
while they fit, and what does not fit is replaced by a pointer line ("… and 123 more failing
cases — see report.html"). Tables are never cut mid-row.

Model output, check details, case ids and model names are untrusted text. Before any of it
lands in the markdown it is cleaned (control characters dropped, line breaks shown as ``↵``,
so a cell never spans lines) and escaped: ``& < >`` become entities (never raw HTML from
model output), and the markdown punctuation ``\ ` * _ ~ [ ] |`` is backslash-escaped, so
an output can neither split a table cell, open a code span or fence, nor emphasise or link.
Output excerpts are set in ``<code>`` rather than a backtick span: inside a backtick span
GitHub would show ``&lt;`` literally, while inside ``<code>`` the entities and escapes
render as the original characters (and GitHub does not turn ``@name`` there into mentions).

``append_step_summary`` appends the text to ``$GITHUB_STEP_SUMMARY`` when that is set.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from harness.report.compare import (
    CASE_HEADERS,
    MODEL_HEADERS,
    Comparison,
    alpha_sentence,
    case_rows,
    changed_cases,
    model_rows,
)
from harness.report.document import case_key
from harness.report.formatting import duration, integer, interval, percent, plural, usd
from harness.report.summary import (
    TRADEOFF_HEADERS,
    losers_text,
    overall_summary,
    prompt_headers,
    prompt_rows,
    race_summary,
    record_verdict,
    repeats_differ,
    suite_headers,
    suite_rows,
    summary_headers,
    summary_rows,
    tradeoff_rows,
)
from harness.results import ItemRecord, ResultRecord, RunDocument

__all__ = ["append_step_summary", "escape_markdown", "render_markdown"]

EXCERPT_CHARS = 200
"""The longest output excerpt shown for a failing case (characters, before escaping)."""

DETAIL_CHARS = 300
"""The longest explanation shown for a failing case (characters, before escaping)."""

SUITE_ROWS = 20
"""The most suites in the suite × model table (the rest are pointed to the HTML report)."""

REPEATS_SHOWN = 10
"""The most repeats listed for a failing case whose repeats disagree."""

REPEAT_CHARS = 80
"""The longest output excerpt and reason shown per repeat (characters, before escaping)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[ \t]*(?:(?:\r\n|\r|\n)[ \t]*)+")
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    **{ch: "\\" + ch for ch in "\\`*_~[]|"},
}
_ESCAPE = re.compile("[" + re.escape("".join(_ESCAPES)) + "]")


# --------------------------------------------------------------------------- escaping


def _show_breaks(match: re.Match[str]) -> str:
    breaks = len(re.findall(r"\r\n|\r|\n", match.group()))
    return " " + "↵" * breaks + " "


def _clean(text: str, limit: int | None = None) -> str:
    """One line of printable text.

    Line breaks become ``↵`` (one per break), tabs spaces; control characters are dropped;
    the result is cut to ``limit`` characters, ending in an ellipsis when cut.
    """
    if limit is not None:
        text = text[: 2 * limit + 64]  # enough for the excerpt, and cheap on huge outputs
    text = _LINE_BREAKS.sub(_show_breaks, text.replace("\t", " ").strip())
    text = _CONTROL.sub("", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def escape_markdown(text: str, limit: int | None = None) -> str:
    r"""Untrusted text made safe for one markdown table cell or list item.

    Args:
        text: Any text (model output, a check's detail, a case id).
        limit: Cut the cleaned text to this many characters (before escaping).

    Returns:
        A single line in which ``& < >`` are entities and ``\ ` * _ ~ [ ] |`` are
        backslash-escaped: it renders as the original text and cannot change the
        structure around it.
    """
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], _clean(text, limit))


def _code(text: str, limit: int) -> str:
    """An output excerpt as inline code (see the module docstring for why ``<code>``)."""
    escaped = escape_markdown(text, limit)
    return f"<code>{escaped}</code>" if escaped else ""


# --------------------------------------------------------------------------- formatting


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], colalign: Sequence[str]) -> str:
    return tabulate(
        [list(r) for r in rows],
        headers=list(headers),
        tablefmt="github",
        colalign=list(colalign),
        disable_numparse=True,
    )


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    colalign: Sequence[str],
    budget: int,
) -> tuple[str, int]:
    """The table with as many leading rows as fit in ``budget`` bytes, and that count.

    Returns ``("", 0)`` when not even one row fits. Rows are padded by tabulate to the
    widest kept row, so the size of the first ``k`` rows only grows with ``k``; a binary
    search finds the largest ``k`` that fits.
    """
    # an upper bound for k: the rows, even unpadded, must fit
    used, hi = 0, 0
    for row in rows:
        used += sum(_size(cell) + 3 for cell in row) + 2
        if used > budget:
            break
        hi += 1
    lo, best = 1, ""
    found = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        text = _table(headers, rows[:mid], colalign)
        if _size(text) <= budget:
            found, best, lo = mid, text, mid + 1
        else:
            hi = mid - 1
    return best, found


class _Builder:
    """Blocks of markdown separated by blank lines, never more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.blocks: list[str] = []
        self.used = 0

    def room(self, reserve: int = 0) -> int:
        """Bytes still free for one more block's text, keeping ``reserve`` bytes back."""
        return self.limit - self.used - 2 - reserve  # each block costs its text + "\n\n"

    def add(self, block: str) -> bool:
        """Append ``block`` if it fits; return whether it did."""
        if _size(block) > self.room():
            return False
        self.blocks.append(block)
        self.used += _size(block) + 2
        return True

    def text(self) -> str:
        return "\n\n".join(self.blocks) + "\n" if self.blocks else ""


# --------------------------------------------------------------------------- sections


def _title(document: RunDocument) -> str:
    total = overall_summary(document)
    if not total["items"]:
        return "**harness**: no test items ran"
    title = (
        f"**harness**: {total['passed']}/{total['items']} items passed "
        f"({percent(total['pass_rate'])}) across {plural(total['models'], 'model')}"
    )
    if total["duration_s"] is not None:
        title += f" in {duration(total['duration_s'])}"
    if total["errors"]:
        title += f", {plural(total['errors'], 'item')} errored"
    return title


RACE_HEADERS = (
    "model",
    "races",
    "won",
    "finished late",
    "cancelled",
    "failed",
    "tokens while losing",
    "cost while losing",
)

_COMPARE_ALIGN = ("left",) + ("right",) * 5 + ("left",) + ("right",) * 6
_CASE_ALIGN = ("left", "left", "left", "right", "right", "right", "right", "left")


class _Pointer:
    """The line standing in for rows that did not fit ("… and 12 more failing cases — see …")."""

    def __init__(self, what: str, html_name: str) -> None:
        self.what = what
        self.where = f"see {escape_markdown(html_name)}"

    def line(self, left: int, shown: int) -> str:
        """The pointer for ``left`` rows left out after ``shown`` rows."""
        if shown:
            return f"… and {left} more {self.what} — {self.where}"
        return f"{left} {self.what} not shown — {self.where}"

    def reserve(self, total: int) -> int:
        """Bytes to keep free so that the pointer for up to ``total`` rows still fits."""
        return max(_size(self.line(total, 1)), _size(self.line(total, 0))) + 2


def _add_table(
    out: _Builder,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    colalign: Sequence[str],
    pointer: _Pointer,
) -> None:
    """Add a table with as many rows as fit, then the pointer line if any were left out."""
    table, kept = _fit_table(headers, rows, colalign, out.room(pointer.reserve(len(rows))))
    if table:
        out.add(table)
    if kept < len(rows):
        out.add(pointer.line(len(rows) - kept, kept))


def _add_lines(out: _Builder, heading: str, lines: Sequence[str], pointer: _Pointer) -> None:
    """A heading line and a list with as many lines as fit, then the pointer if cut."""
    budget = out.room(pointer.reserve(len(lines))) - _size(heading)
    kept: list[str] = []
    for line in lines:
        budget -= _size(line) + 1
        if budget < 0:
            break
        kept.append(line)
    if kept:
        out.add("\n".join([heading, *kept]))
    if len(kept) < len(lines):
        out.add(pointer.line(len(lines) - len(kept), len(kept)))


def _add_comparison(out: _Builder, comparison: Comparison, html_name: str) -> None:
    if not out.add("### Compared with the baseline"):
        return
    regressions = comparison.significant_regressions
    meaning = alpha_sentence(comparison.alpha)
    if regressions:
        out.add(f"**{plural(len(regressions), 'significant regression')}** ({meaning}).")
    else:
        flips = sum(c.status == "regression" for c in comparison.cases)
        note = f"; {plural(flips, 'case')} went pass → fail, not significant" if flips else ""
        out.add(f"No significant regressions ({meaning}{note}).")
    for line in comparison.notes:
        out.add(f"Note: {escape_markdown(line)}.")
    _add_table(
        out,
        MODEL_HEADERS,
        model_rows(comparison, escape_markdown, lambda text: f"**{text}**"),
        _COMPARE_ALIGN,
        _Pointer("models", html_name),
    )
    changed = changed_cases(comparison)
    if changed and out.add(
        f"Changed cases ({len(changed)}): one-sided Fisher p on the repeats, adjusted p after "
        "Holm across every case × model; *significant* means significant after correction."
    ):
        _add_table(
            out,
            CASE_HEADERS,
            case_rows(changed, escape_markdown, lambda text: f"**{text}**"),
            _CASE_ALIGN,
            _Pointer("changed cases", html_name),
        )


def _right_after_first(headers: Sequence[str]) -> tuple[str, ...]:
    """Column alignment: the first column left, the numbers right."""
    return ("left",) + ("right",) * (len(headers) - 1)


def _add_prompts(out: _Builder, document: RunDocument, html_name: str) -> None:
    """The prompt × model pass rates (95% intervals); nothing without prompt variants."""
    rows = prompt_rows(document, escape_markdown)
    if not rows or not out.add(f"### Prompt variants ({len(rows)})"):
        return
    headers = [escape_markdown(h) for h in prompt_headers(document)]
    _add_table(out, headers, rows, _right_after_first(headers), _Pointer("prompts", html_name))


def _add_suites(out: _Builder, document: RunDocument, html_name: str) -> None:
    """The suite × model pass rates (95% intervals); nothing with a single suite."""
    rows = suite_rows(document, escape_markdown)
    if len(rows) < 2 or not out.add(f"### Suites ({len(rows)})"):
        return
    headers = [escape_markdown(h) for h in suite_headers(document)]
    pointer = _Pointer("suites", html_name)
    kept = rows[:SUITE_ROWS]
    _add_table(out, headers, kept, _right_after_first(headers), pointer)
    if len(rows) > len(kept):
        out.add(pointer.line(len(rows) - len(kept), len(kept)))


def _add_tradeoff(out: _Builder, document: RunDocument, html_name: str) -> None:
    """Quality, cost and latency per model (the HTML report's scatter charts as a table)."""
    rows = tradeoff_rows(document, escape_markdown)
    if len(rows) < 2 or not out.add("### Quality, cost and latency"):
        return
    headers = TRADEOFF_HEADERS
    _add_table(out, headers, rows, _right_after_first(headers), _Pointer("models", html_name))


def _add_races(out: _Builder, document: RunDocument, html_name: str) -> None:
    """The races section: per-model tallies and what the losers consumed; none without races."""
    summary = race_summary(document)
    if summary is None or not out.add(f"### Races ({integer(summary['races'])})"):
        return
    rows = [
        [
            escape_markdown(str(t["model"])),
            integer(t["races"]),
            integer(t["winner"]),
            integer(t["finished"]),
            integer(t["cancelled"]),
            integer(t["failed"]),
            integer(t["lost_tokens"]),
            usd(t["lost_cost_usd"]),
        ]
        for t in summary["models"]
    ]
    pointer = _Pointer("race models", html_name)
    _add_table(out, RACE_HEADERS, rows, _right_after_first(RACE_HEADERS), pointer)
    out.add(losers_text(summary))


HEAD_TO_HEAD_HEADERS = ("models", "prompt", "cases", "wins", "ties", "losses", "win rate [95% CI]")
"""Columns of the head-to-head table (wins and losses from the first model's side)."""


def _add_head_to_head(out: _Builder, document: RunDocument, html_name: str) -> None:
    """Head to head: per pair, overall and per prompt; then where the models differ most."""
    from harness.pairwise import head_to_head

    pairs = head_to_head(document.get("pairwise") or [])
    if not pairs or not out.add(
        "### Head to head\n\nEach case judged twice, the answers' order swapped; a "
        "disagreement counts as a tie. Win rate = (wins + ties / 2) / cases, Wilson 95% CI."
    ):
        return
    rows: list[list[str]] = []
    differ: list[list[str]] = []
    for pair in pairs:
        first, second = (escape_markdown(str(m)) for m in pair["models"])
        label = f"{first} vs {second}"
        for prompt, tally in [("all", pair["overall"]), *pair["prompts"].items()]:
            rows.append([label, escape_markdown(str(prompt)), *_tally_cells(tally)])
        for r in pair["differ"]:
            answers = list(r.get("answers") or ["", ""]) + ["", ""]
            differ.append(
                [
                    escape_markdown(str(r.get("case", ""))),
                    escape_markdown(str(r.get("winner", ""))),
                    _code(str(answers[0]), 120),
                    _code(str(answers[1]), 120),
                ]
            )
    align = ("left", "left") + ("right",) * 5
    _add_table(out, HEAD_TO_HEAD_HEADERS, rows, align, _Pointer("head-to-head rows", html_name))
    if differ and out.add("Where they differ most (the same winner in both orders):"):
        headers = ("case", "winner", "first model's answer", "second model's answer")
        _add_table(out, headers, differ, ("left",) * 4, _Pointer("decided cases", html_name))


def _tally_cells(tally: Mapping[str, Any]) -> list[str]:
    low, high = tally["ci95"]
    rate = f"{percent(tally['win_rate'])} [{interval(low, high)}]" if tally["n"] else "—"
    return [
        integer(tally["n"]),
        integer(tally["wins"]),
        integer(tally["ties"]),
        integer(tally["losses"]),
        rate,
    ]


def _output_text(record: ResultRecord) -> str:
    """The text a record's response carried (its content, else its tool calls)."""
    response = record.get("response")
    if not isinstance(response, Mapping):
        return ""
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0], Mapping):
        return ""
    message = choices[0].get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    if content:
        return json.dumps(content, ensure_ascii=False)
    calls = message.get("tool_calls") or []
    return " ".join(
        f"{(c.get('function') or {}).get('name')}({(c.get('function') or {}).get('arguments')})"
        for c in calls
        if isinstance(c, Mapping)
    )


def _why(item: ItemRecord, record: ResultRecord | None) -> str:
    """Why an item failed: its repeat count when repeated, then the error or failed checks."""
    parts = []
    repeats = int(item.get("repeats") or 0)
    if repeats > 1:
        parts.append(f"{item.get('passes', 0)}/{repeats} repeats passed")
    if record is None:
        parts.append("no record of the answer")
    elif isinstance(error := record.get("error"), Mapping):
        parts.append(f"{error.get('type', 'error')}: {error.get('message', '')}")
    else:
        failed = [c for c in record.get("checks") or [] if not c.get("passed")]
        parts += [f"{c.get('name')}: {c.get('detail') or 'failed'}" for c in failed]
        if not failed:
            parts.append("failed")
    return "; ".join(str(p) for p in parts)


def _repeats_cell(records: Sequence[ResultRecord]) -> str:
    """Every repeat's verdict, reason and output excerpt, one per line (``<br>``).

    ``repeat 1 PASS: <code>…</code>`` / ``repeat 2 FAIL (icontains: …): <code>…</code>``;
    at most ``REPEATS_SHOWN`` repeats, then how many more.
    """
    lines = []
    for index, record in enumerate(records[:REPEATS_SHOWN], 1):
        verdict, reason = record_verdict(record)
        why = f" ({escape_markdown(reason, REPEAT_CHARS)})" if reason else ""
        excerpt = _code(_output_text(record), REPEAT_CHARS)
        lines.append(f"repeat {index} {verdict}{why}: {excerpt}")
    if len(records) > REPEATS_SHOWN:
        lines.append(f"… and {len(records) - REPEATS_SHOWN} more repeats")
    return "<br>".join(lines)


def _failing_rows(document: RunDocument, comparison: Comparison | None) -> list[list[str]]:
    """One row per failing item, regressions (per the comparison) first."""
    records: dict[tuple[str, str], list[ResultRecord]] = {}
    for r in document.get("records", []):
        records.setdefault((str(r.get("test_id")), str(r.get("model"))), []).append(r)
    regressed = (
        {(c.case, c.model) for c in comparison.cases if c.status == "regression"}
        if comparison
        else set()
    )
    rows: list[tuple[bool, list[str]]] = []
    for item in document.get("items", []):
        if item.get("outcome") == "passed":
            continue
        case, model = str(item.get("case") or case_key(item)), str(item.get("model"))
        recs = records.get((str(item.get("test_id")), model), [])
        record = next(
            (r for r in recs if r.get("error") or not r.get("passed")), recs[0] if recs else None
        )
        is_regression = (case, model) in regressed
        why = ("regression; " if is_regression else "") + _why(item, record)
        rows.append(
            (
                not is_regression,
                [
                    escape_markdown(case),
                    escape_markdown(model),
                    escape_markdown(why, DETAIL_CHARS),
                    _repeats_cell(recs)
                    if repeats_differ(recs, _output_text)
                    else (_code(_output_text(record), EXCERPT_CHARS) if record else ""),
                ],
            )
        )
    rows.sort(key=lambda pair: pair[0])  # stable: document order within each group
    return [row for _, row in rows]


# --------------------------------------------------------------------------- public


def render_markdown(
    document: RunDocument,
    *,
    comparison: Comparison | None = None,
    html_name: str = "report.html",
    limit_bytes: int = 60_000,
) -> str:
    """Render a run document as GitHub-flavoured markdown of at most ``limit_bytes``.

    Args:
        document: The run document (``results.json``).
        comparison: A baseline comparison; adds the "Compared with the baseline" section.
        html_name: The HTML report the pointer lines refer to.
        limit_bytes: The largest size of the result in UTF-8 bytes (GitHub caps a PR
            comment at 65,536 characters).

    Returns:
        The markdown, ending in a newline.
    """
    out = _Builder(limit_bytes)
    title = _title(document)
    if comparison is not None and comparison.has_significant_regression:
        title += f" — {plural(len(comparison.significant_regressions), 'significant regression')}"
    if not out.add(title):
        return title.encode("utf-8")[: max(0, limit_bytes - 1)].decode("utf-8", "ignore") + "\n"
    summary = summary_rows(document, escape_markdown)
    if summary:
        headers = summary_headers(document)
        _add_table(
            out, headers, summary, _right_after_first(headers), _Pointer("models", html_name)
        )
    _add_prompts(out, document, html_name)
    _add_suites(out, document, html_name)
    _add_tradeoff(out, document, html_name)
    if comparison is not None:
        _add_comparison(out, comparison, html_name)
    _add_races(out, document, html_name)
    _add_head_to_head(out, document, html_name)
    failing = _failing_rows(document, comparison)
    heading = f"### Failing cases ({len(failing)})"
    pointer = _Pointer("failing cases", html_name)
    if failing and out.room(pointer.reserve(len(failing))) >= _size(heading):
        out.add(heading)
        _add_table(out, ("case", "model", "why", "output"), failing, ("left",) * 4, pointer)
    return out.text()


def append_step_summary(markdown: str, env: Mapping[str, str] = os.environ) -> bool:
    """Append ``markdown`` to the file named by ``GITHUB_STEP_SUMMARY``, when that is set.

    Args:
        markdown: The text to append (a newline is added if it does not end in one).
        env: The environment to read the variable from.

    Returns:
        Whether the text was appended: ``False`` when the variable is unset or empty, or
        the file cannot be written (a CI summary is never worth failing the run for).
    """
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        return False
    return True
