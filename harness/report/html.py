r"""``report.html``: one self-contained page for a run (inline CSS, JS and SVG; no network).

``render_html(document, baseline_comparison=None)`` renders a run document (``results.json``)
into a single HTML file that opens from disk. In order, the page shows:

1. a header: when the run started and ended, its duration, command line, harness version,
   config hash and the models (alias → resolved model); the overall line adds to the cost
   what race losers spent, and how many answers were replayed and what that saved;
2. the per-model summary table (from ``harness.report.summary``): pass rate with its Wilson
   95% interval, as text and as a small SVG bar with the interval drawn, failures, errors,
   p50/p95 latency, time to first token, tokens, cost, and the answers replayed from the
   response store with the cost they saved;
2b. with several suites (suite files or Python test modules), a suite × model table of pass
    rates with their Wilson 95% intervals;
3. two scatters, quality against cost and against latency (``scatter_svg``): per model one
   labelled point, x the cost per 1,000 cases or the p50 latency, y the pass rate with its
   interval as a bar (models without a known cost are listed under the chart; the x axis
   turns logarithmic, and says so, past a ``LOG_SPAN``× spread); then one small chart panel
   per model: the pass-rate bar and a latency histogram (all models on one latency scale,
   the p50 and p95 marked);
4. races, when records have one: per model its wins and losses and the tokens and cost it
   consumed while losing; per race the winner, the margin and every contestant's latency,
   time to first output, outcome (a cancelled loser: before or after its first byte) and
   the tokens and cost it reported;
4b. head to head, when the run has ``pairwise`` records (``harness.pairwise``): per pair of
    models, wins, ties and losses with the win rate and its 95% interval, overall and per
    prompt, and the cases where they differ most with both answers (rendered in Python);
5. the comparison matrix: one row per case, one column per model (see below); with
   prompt variants (suites with ``prompts:``) a prompt × model table of pass rates with
   their Wilson 95% intervals comes after the per-model table, and the matrix has one
   column per (prompt, model), grouped by prompt or by model at the reader's choice;
6. with ``baseline_comparison`` (``harness.report.compare.Comparison.to_dict()``, or the
   ``Comparison`` itself): what α promises, the per-model change in pass rate with its
   stratified (CMH) p-value, adjusted p-value, verdict, latency and cost deltas, and the
   lists of regressed, fixed, new and removed cases, each case with its one-sided Fisher
   p-value, adjusted p-value and verdict (``regression (significant)`` — significant after
   correction — or ``changed, not significant``).

Sections 1–4 and 6 are rendered here in Python (Jinja2 with autoescaping, charts as SVG
strings) and need no JavaScript. The matrix is rendered by the page's script from a data
island, ``<script type="application/json" id="data">``, 50 rows per page, so that a run of
10,000 results does not put 30,000 cells in the DOM up front. The island holds::

    {"v": 1, "perPage": 50, "baseline": bool,
     "models": [{"name", "model"}],                  # matrix columns
     "prompts": [prompt id | null, ...],             # with prompt variants only (null: the
     "cols": [{"p": prompt id | null, "m": model}],  #   cases without); the matrix columns
     "rows": [{"c": case, "p": prompt | absent,      # the last user message (per variant:
               "v": vars | absent,                   #   "[id] text" lines)
               "cells": [cell | null | false, ...]}]}  # one per column, null: not run,
                                                     # false: the case has no such variant

    cell = {"s": "pass" | "fail" | "error", "n": records, "k": passing records,
            "o": output, "e": error, "f": [[check, detail, score], ...] (failed checks),
            "l": median latency ms, "$": cost USD, "t": threshold (< 1 only),
            "fr": finish reason (when not "stop"), "b": "regression" | "fix" | "new",
            "rp": answers replayed from the response store, "sv": cost they saved USD,
            "r": [[verdict, reason, output], ...] every repeat, when they disagree,
            "rm": repeats left out of "r"}

Keys whose value would be empty are left out. A replayed answer's latency is the recorded
call's, so the page labels ``l`` "(recorded)" when ``rp`` is set, and shows ``sv`` beside or
instead of a cost. ``r`` is set only when a cell's repeats disagree (some pass and some not,
or their outputs differ): ``verdict`` is ``PASS``, ``FAIL`` or ``ERROR``, ``reason`` the
failed checks or the error; at most ``REPEATS_SHOWN`` repeats, outputs cut at
``REPEAT_OUTPUT_CHARS``. Outputs are cut at ``OUTPUT_CHARS`` with a visible marker; message lists,
raw responses and ids are not embedded.

Model output, vars, prompts and check details are untrusted. In the data island ``<``,
``>``, ``&``, U+2028 and U+2029 (and lone surrogates) are written as ``\uXXXX`` escapes, so
no text can close the script element or open a comment; the script builds the matrix with
``createElement`` and ``textContent`` only, never ``innerHTML``. Everything rendered in
Python goes through Jinja2's autoescaping. A Content-Security-Policy allows only the page's
own script (by hash) and inline styles, and no network at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shlex
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeGuard

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from harness._version import __version__
from harness.messages import last_user_text
from harness.report.document import case_key
from harness.report.formatting import (
    NONE,
    duration,
    integer,
    interval,
    ms,
    p_value,
    percent,
    points,
    signed,
    speed,
    timestamp,
    usd,
)
from harness.report.summary import (
    contestant_usage,
    losers_text,
    model_summaries,
    overall_summary,
    prompt_summaries,
    race_summary,
    record_verdict,
    repeats_differ,
    replayed_text,
    suite_summaries,
    tradeoff_summaries,
)
from harness.results import ItemRecord, ResultRecord, RunDocument, percentile, wilson_interval

__all__ = [
    "LOG_SPAN",
    "OUTPUT_CHARS",
    "ROWS_PER_PAGE",
    "dump_data",
    "latency_svg",
    "pass_rate_svg",
    "render_html",
    "scatter_svg",
]

ROWS_PER_PAGE = 50
"""Matrix rows the page renders at a time."""

OUTPUT_CHARS = 4_000
"""The longest model output embedded per cell; longer ones are cut with a marker."""

DETAIL_CHARS = 1_000
"""The longest check detail, error message, prompt or var value embedded."""

REPEATS_SHOWN = 20
"""The most repeats listed in a matrix cell whose repeats disagree (the rest are counted)."""

REPEAT_OUTPUT_CHARS = 1_000
"""The longest output embedded per listed repeat."""

LIST_ROWS = 300
"""The most rows server-rendered in a race or baseline list (the rest are counted)."""

CHANGE_MARKS = ("regression", "fix", "new")
"""Baseline statuses that mark a matrix cell and count as "changed since baseline"."""

_JSON_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
_HTML_UNSAFE = re.compile("[\u2028\u2029\ud800-\udfff]")
_HIST_BINS = 24


# --------------------------------------------------------------------------- public


def render_html(
    document: RunDocument, *, baseline_comparison: Mapping[str, Any] | None = None
) -> str:
    """Render a run document as one self-contained HTML page.

    Args:
        document: A run document (``results.json``: ``run``, ``items``, ``records``).
        baseline_comparison: ``Comparison.to_dict()`` from ``harness.report.compare`` (a
            ``Comparison`` object is accepted too); adds the baseline section, the
            regression/fix marks in the matrix and the "changed since baseline" filter.

    Returns:
        The HTML text. Lone surrogates outside the data island become U+FFFD, so the text
        always encodes as UTF-8; U+2028/U+2029 become character references.
    """
    comparison = _as_dict(baseline_comparison)
    summaries = model_summaries(document)
    columns = _columns(document, summaries)
    changes = _case_marks(comparison)
    prompt_table = _prompt_table(document)
    prompts: list[str | None] = list(prompt_table["prompts"]) if prompt_table else []
    if prompts and any(
        not entry.get("prompt")
        for entries in (document.get("records", []), document.get("items", []))
        for entry in entries
    ):
        prompts.append(None)  # a suite without variants in the same run: its own group
    rows = _matrix_rows(document, [c["name"] for c in columns], changes, prompts)
    data: dict[str, Any] = {
        "v": 1,
        "perPage": ROWS_PER_PAGE,
        "baseline": comparison is not None,
        "models": columns,
        "rows": rows,
    }
    if prompts:
        data["prompts"] = prompts
        data["cols"] = [{"p": p, "m": c["name"]} for p in prompts for c in columns]
    env = _environment()
    script = _script()
    races = race_summary(document)
    context = {
        "header": _header(document),
        "overall": _overall(document, races),
        "models": _model_rows(summaries, columns),
        "prompt_table": prompt_table,
        "suite_table": _suite_table(document),
        "tradeoff": _tradeoff(document),
        "charts": _charts(summaries),
        "races": _races(document.get("records", []), races),
        "head_to_head": _head_to_head(document),
        "baseline": _baseline(comparison),
        "data_json": Markup(dump_data(data)),
        "row_count": len(rows),
        "columns": columns,
        "style": Markup(_static("report.css")),
        "script": Markup(script),
        "csp": Markup(_csp(script)),
        "version": __version__,
    }
    html = env.get_template("report.html.j2").render(context)
    return _HTML_UNSAFE.sub(_html_char, html)


def _html_char(match: re.Match[str]) -> str:
    """U+2028/U+2029 as character references; a lone surrogate (not UTF-8) as U+FFFD."""
    char = match.group()
    return f"&#x{ord(char):x};" if char in "\u2028\u2029" else "\ufffd"


def dump_data(data: Any) -> str:
    r"""JSON for a ``<script type="application/json">`` element.

    ``<``, ``>``, ``&``, U+2028, U+2029 and lone surrogates are written as ``\uXXXX``
    escapes (they can only occur inside JSON strings), so the text can neither end the
    element nor open a comment, and ``JSON.parse`` gives back exactly the original strings.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# --------------------------------------------------------------------------- environment


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("harness", "report/templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


@lru_cache(maxsize=4)
def _static(name: str) -> str:
    """A file of ``templates/`` verbatim (not rendered as a template).

    It must not be able to end its ``<script>``/``<style>`` element or open a comment.
    """
    env = _environment()
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    lowered = source.lower()
    if "</script" in lowered or "</style" in lowered or "<!--" in source:
        raise ValueError(f"{name} must not contain '</script', '</style' or '<!--'")
    return source


def _script() -> str:
    """The page's script (``templates/report.js``)."""
    return _static("report.js")


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        "default-src 'none'; "
        f"script-src 'sha256-{digest}'; "
        "style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def _as_dict(comparison: Any) -> Mapping[str, Any] | None:
    if comparison is None:
        return None
    to_dict = getattr(comparison, "to_dict", None)
    if callable(to_dict):
        result: Mapping[str, Any] = to_dict()
        return result
    if isinstance(comparison, Mapping):
        return comparison
    raise TypeError(f"baseline_comparison must be a dict or a Comparison, not {comparison!r}")


# --------------------------------------------------------------------------- formatting


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [truncated: {len(text) - limit:,} more characters]"


# --------------------------------------------------------------------------- header


def _header(document: RunDocument) -> dict[str, Any]:
    run: Mapping[str, Any] = document.get("run") or {}
    command = run.get("command")
    if isinstance(command, list | tuple):
        command_text = " ".join(shlex.quote(str(part)) for part in command)
    else:
        command_text = str(command or NONE)
    seconds = run.get("duration_s")
    if (
        seconds is None
        and isinstance(run.get("started"), int | float)
        and isinstance(run.get("finished"), int | float)
    ):
        seconds = float(run["finished"]) - float(run["started"])
    return {
        "started": timestamp(run.get("started")),
        "finished": timestamp(run.get("finished")),
        "duration": duration(seconds),
        "command": command_text,
        "version": str(run.get("harness_version") or NONE),
        "config_hash": str(run.get("config_hash") or NONE),
        "python": str(run.get("python") or ""),
        "platform": str(run.get("platform") or ""),
        "merged_from": run.get("merged_from"),
    }


def _columns(
    document: RunDocument, summaries: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """The models in summary order, each with its resolved model name when known."""
    resolved: dict[str, str] = {}
    for entry in (document.get("run") or {}).get("models") or []:
        if isinstance(entry, Mapping) and entry.get("name") and entry.get("model"):
            resolved[str(entry["name"])] = str(entry["model"])
    for record in document.get("records", []):
        name = str(record.get("model"))
        if name not in resolved and record.get("resolved_model"):
            resolved[name] = str(record["resolved_model"])
    names = [str(s["model"]) for s in summaries]
    return [{"name": n, "model": resolved.get(n, "")} for n in names]


# --------------------------------------------------------------------------- summary


def _overall(document: RunDocument, races: Mapping[str, Any] | None) -> dict[str, str]:
    o = overall_summary(document)
    lo, hi = o["pass_rate_ci95"]
    loser_cost = races["lost_cost_usd"] if races else None
    return {
        "models": integer(o["models"]),
        **_counts(o),
        "pass_rate": percent(o["pass_rate"]),
        "ci": interval(lo, hi) if o["items"] else "",
        "cost": usd(o["cost_usd"]),
        "replayed": integer(o["cache_hits"]) if o["cache_hits"] else "",
        "saved": usd(o["saved_usd"]) if o["saved_usd"] is not None else "",
        "loser_cost": usd(loser_cost) if loser_cost else "",
        "duration": duration(o["duration_s"]),
    }


def _counts(summary: Mapping[str, Any]) -> dict[str, str]:
    """Items, passed, failed, errors and records of a summary, formatted."""
    return {
        "total": integer(summary["items"]),
        **{key: integer(summary[key]) for key in ("passed", "failed", "errors", "records")},
    }


def _model_rows(
    summaries: Sequence[Mapping[str, Any]], columns: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    resolved = {c["name"]: c["model"] for c in columns}
    rows = []
    for s in summaries:
        lo, hi = s["pass_rate_ci95"]
        rows.append(
            {
                "name": str(s["model"]),
                "resolved": resolved.get(str(s["model"]), ""),
                "pass_rate": percent(s["pass_rate"]),
                "ci": interval(lo, hi) if s["items"] else "",
                "bar": pass_rate_svg(s["pass_rate"], lo, hi, width=120, height=12),
                **_counts(s),
                "p50": ms(s["latency_p50_ms"]),
                "p95": ms(s["latency_p95_ms"]),
                "ttft": (
                    f"{ms(s['ttft_p50_ms'])} / {ms(s['ttft_p95_ms'])}"
                    if s["ttft_p50_ms"] is not None
                    else NONE
                ),
                "speed": speed(s.get("tokens_per_s_p50")),
                "prompt_tokens": integer(s["prompt_tokens"]),
                "completion_tokens": integer(s["completion_tokens"]),
                "total_tokens": integer(s["total_tokens"]),
                "cost": usd(s["cost_usd"]),
                "replayed": replayed_text(s["cache_hits"], s["saved_usd"]),
                "failing": bool(s["failed"] or s["errors"]),
            }
        )
    return rows


# --------------------------------------------------------------------------- SVG charts


def _rate_colour(rate: float | None) -> str:
    if rate is None:
        return "#8c959f"
    if rate >= 0.9:
        return "#2da44e"
    if rate >= 0.6:
        return "#d4a72c"
    return "#cf222e"


def pass_rate_svg(
    rate: float | None, lo: float, hi: float, *, width: int = 120, height: int = 12
) -> Markup:
    """A horizontal pass-rate bar with its 95% interval drawn as a whisker.

    Args:
        rate: The pass rate in ``[0, 1]`` (``None``: nothing ran; an empty bar).
        lo: The interval's lower end.
        hi: The interval's upper end.
        width: The SVG width in pixels.
        height: The SVG height in pixels.

    Returns:
        The ``<svg>`` element as safe markup.
    """
    label = (
        "no items"
        if rate is None
        else f"pass rate {percent(rate)} (95% interval {percent(lo)}–{percent(hi)})"
    )
    parts = [
        f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>',
        f'<rect width="{width}" height="{height}" rx="2" fill="#eaeef2"/>',
    ]
    if rate is not None:
        fill = _rate_colour(rate)
        parts.append(f'<rect width="{rate * width:.1f}" height="{height}" rx="2" fill="{fill}"/>')
        y = height / 2
        x1, x2 = lo * width, hi * width
        tick = height * 0.3
        parts.append(
            f'<g stroke="#24292f" stroke-width="1.2">'
            f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}"/>'
            f'<line x1="{x1:.1f}" y1="{y - tick:.1f}" x2="{x1:.1f}" y2="{y + tick:.1f}"/>'
            f'<line x1="{x2:.1f}" y1="{y - tick:.1f}" x2="{x2:.1f}" y2="{y + tick:.1f}"/></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def latency_svg(
    latencies: Sequence[float], upper: float, *, width: int = 260, height: int = 64
) -> Markup:
    """A latency histogram on ``[0, upper]`` ms (slower values land in the last bin).

    The p50 and p95 are drawn as vertical lines; the axis is labelled at 0 and ``upper``.

    Args:
        latencies: The latencies in ms.
        upper: The right end of the axis (shared by every model's chart).
        width: The SVG width in pixels.
        height: The SVG height in pixels.

    Returns:
        The ``<svg>`` element as safe markup.
    """
    label_h = 12
    plot_h = height - label_h
    upper = max(upper, 1e-9)
    counts = [0] * _HIST_BINS
    for value in latencies:
        index = int(max(value, 0.0) / upper * _HIST_BINS)
        counts[min(index, _HIST_BINS - 1)] += 1
    top = max(counts) or 1
    bin_w = width / _HIST_BINS
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    label = f"latency histogram of {len(latencies)} answers: p50 {ms(p50)}, p95 {ms(p95)}"
    parts = [
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>',
        f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#d0d7de"/>',
    ]
    for i, count in enumerate(counts):
        if not count:
            continue
        h = max(1.0, count / top * (plot_h - 2))
        lo_ms, hi_ms = i * upper / _HIST_BINS, (i + 1) * upper / _HIST_BINS
        span = f"{ms(lo_ms)}–{ms(hi_ms)}" + (" and slower" if i == _HIST_BINS - 1 else "")
        parts.append(
            f'<rect x="{i * bin_w + 0.5:.1f}" y="{plot_h - h:.1f}" width="{bin_w - 1:.1f}"'
            f' height="{h:.1f}" fill="#54aeff"><title>{escape(span)}: {count}</title></rect>'
        )
    for name, mark, colour in (("p50", p50, "#0969da"), ("p95", p95, "#bf3989")):
        if mark is None:
            continue
        x = min(mark / upper, 1.0) * (width - 1) + 0.5
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}" stroke="{colour}"'
            f' stroke-dasharray="3 2"><title>{name} {escape(ms(mark))}</title></line>'
        )
    parts.append(
        f'<text x="0" y="{height - 2}" font-size="9" fill="#57606a">0</text>'
        f'<text x="{width}" y="{height - 2}" font-size="9" fill="#57606a"'
        f' text-anchor="end">{escape(ms(upper))}</text></svg>'
    )
    return Markup("".join(parts))


LOG_SPAN = 100.0
"""A scatter's x axis turns logarithmic when its largest value is more than this × its least."""


def scatter_svg(
    points: Sequence[tuple[str, float, float, float, float]],
    x_label: str,
    x_format: Callable[[float], str],
    *,
    width: int = 440,
    height: int = 260,
) -> Markup:
    """A scatter of pass rate (y, 0–100%) against ``x``: one labelled point per model.

    Each point carries its 95% interval as a vertical bar and a ``<title>`` with its
    numbers; the x axis is linear from 0, or logarithmic (decades, and labelled so) when
    the values are all positive and span more than ``LOG_SPAN``×.

    Args:
        points: ``(label, x, pass rate, interval low, interval high)`` per model.
        x_label: The x axis' name (``cost per 1k cases (USD)``).
        x_format: Formats an x value for the ticks and titles.
        width: The SVG width in pixels.
        height: The SVG height in pixels.

    Returns:
        The ``<svg>`` element as safe markup.
    """
    left, right, top, bottom = 40, 16, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [p[1] for p in points]
    positive = [x for x in xs if x > 0]
    log = bool(xs) and len(positive) == len(xs) and max(xs) > LOG_SPAN * min(xs)
    if log:
        lo_exp, hi_exp = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
        hi_exp = max(hi_exp, lo_exp + 1)

        def sx(x: float) -> float:
            return left + (math.log10(x) - lo_exp) / (hi_exp - lo_exp) * plot_w

        ticks = [
            (left + (e - lo_exp) / (hi_exp - lo_exp) * plot_w, 10.0**e)
            for e in range(lo_exp, hi_exp + 1)
        ]

        x_label = f"{x_label}, log scale"
    else:
        step = _nice_step(max(xs, default=0.0) * 1.15 / 4)
        upper = step * 4

        def sx(x: float) -> float:
            return left + x / upper * plot_w

        ticks = [(sx(step * i), step * i) for i in range(5)]

    def sy(rate: float) -> float:
        return top + (1 - rate) * plot_h

    label = f"pass rate against {x_label}: {len(points)} models"
    parts = [
        f'<svg class="scatter" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>',
        '<g class="grid" stroke="#eaeef2" font-size="9" fill="#57606a">',
    ]
    for rate in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = sy(rate)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" stroke="none">'
            f"{rate * 100:.0f}%</text>"
        )
    for index, (x, tick) in enumerate(ticks):
        align = "end" if index == len(ticks) - 1 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 12}" text-anchor="{align}" stroke="none">'
            f"{escape(x_format(tick))}</text>"
        )
    parts.append(
        f'</g><text class="axis" x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="10"'
        f' text-anchor="middle" fill="#24292f">{escape(x_label)}</text>'
    )
    for name, x_value, rate, lo, hi in points:
        x, y = sx(x_value), sy(rate)
        anchor, dx = ("end", -6) if x > left + plot_w * 0.7 else ("start", 6)
        title = (
            f"{name}: pass rate {percent(rate)} (95% interval {percent(lo)}–{percent(hi)}),"
            f" {x_format(x_value)}"
        )
        parts.append(
            f'<g class="point" data-model="{escape(name)}"><title>{escape(title)}</title>'
            f'<line x1="{x:.1f}" y1="{sy(lo):.1f}" x2="{x:.1f}" y2="{sy(hi):.1f}"'
            f' stroke="#57606a" stroke-width="1.2"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{_rate_colour(rate)}"'
            f' stroke="#24292f" stroke-width="0.8"/>'
            f'<text class="label" x="{x + dx:.1f}" y="{y - 5:.1f}" font-size="10"'
            f' text-anchor="{anchor}" fill="#24292f">{escape(name)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at least ``raw`` (``1`` for nothing to scale)."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def _tradeoff(document: RunDocument) -> dict[str, Any] | None:
    """The quality / cost / latency scatters; ``None`` when no model has an item."""
    models = [t for t in tradeoff_summaries(document) if t["pass_rate"] is not None]
    if not models:
        return None

    def chart(key: str, x_label: str, x_format: Callable[[float], str]) -> dict[str, Any]:
        points = [
            (str(t["model"]), float(t[key]), float(t["pass_rate"]), *t["pass_rate_ci95"])
            for t in models
            if t[key] is not None
        ]
        return {
            "svg": scatter_svg(points, x_label, x_format) if points else None,
            "count": len(points),
            "missing": [str(t["model"]) for t in models if t[key] is None],
        }

    return {
        "cost": chart("cost_per_1k_usd", "cost per 1k cases (USD)", usd),
        "latency": chart("latency_p50_ms", "p50 latency (ms)", ms),
    }


def _charts(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    tops = [percentile(s["latency_ms"], 99) for s in summaries if s["latency_ms"]]
    upper: float = max((t for t in tops if t is not None), default=1.0) or 1.0
    charts = []
    for s in summaries:
        lo, hi = s["pass_rate_ci95"]
        latencies: list[float] = s["latency_ms"]
        charts.append(
            {
                "name": str(s["model"]),
                "pass_rate": percent(s["pass_rate"]),
                "ci": interval(lo, hi) if s["items"] else "",
                "bar": pass_rate_svg(s["pass_rate"], lo, hi, width=260, height=14),
                "hist": latency_svg(latencies, upper) if latencies else None,
                "p50": ms(s["latency_p50_ms"]),
                "p95": ms(s["latency_p95_ms"]),
                "count": len(latencies),
            }
        )
    return charts


# --------------------------------------------------------------------------- head to head


def _head_to_head(document: RunDocument) -> list[dict[str, Any]]:
    """The head-to-head section (``harness.pairwise.head_to_head``), as display strings."""
    from harness.pairwise import head_to_head

    out = []
    for pair in head_to_head(document.get("pairwise") or []):
        rows = []
        for prompt, tally in [("all", pair["overall"]), *pair["prompts"].items()]:
            low, high = tally["ci95"]
            rows.append(
                {
                    "prompt": _clip(str(prompt), DETAIL_CHARS),
                    "n": integer(tally["n"]),
                    "wins": integer(tally["wins"]),
                    "ties": integer(tally["ties"]),
                    "losses": integer(tally["losses"]),
                    "rate": percent(tally["win_rate"]) if tally["n"] else NONE,
                    "ci": interval(low, high) if tally["n"] else NONE,
                }
            )
        differ = [
            {
                "case": _clip(str(r.get("case", "")), DETAIL_CHARS),
                "winner": str(r.get("winner", "")),
                "answers": [_clip(str(a), DETAIL_CHARS) for a in (r.get("answers") or [])],
                "reasons": [str(v.get("reason") or "") for v in r.get("verdicts") or []],
            }
            for r in pair["differ"]
        ]
        out.append(
            {
                "models": [str(m) for m in pair["models"]],
                "judge": str(pair.get("judge") or ""),
                "rows": rows,
                "differ": differ,
                "differ_hidden": pair["differ_total"] - len(differ),
            }
        )
    return out


# --------------------------------------------------------------------------- races


def _races(
    records: Iterable[ResultRecord], summary: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The races section: per-model tallies (from ``race_summary``) and one row per race."""
    if summary is None:
        return None
    rows: list[dict[str, Any]] = []
    for record in records:
        race = record.get("race")
        if isinstance(race, Mapping) and len(rows) < LIST_ROWS:
            rows.append(_race_row(record, race))
    return {
        "total": summary["races"],
        "rows": rows,
        "hidden": max(0, summary["races"] - len(rows)),
        "wins": [_race_tally_row(t) for t in summary["models"]],
        "waste": losers_text(summary),
    }


def _race_row(record: ResultRecord, race: Mapping[str, Any]) -> dict[str, Any]:
    """One race: its case, winner, margin and a chip per contestant."""
    contestants = [c for c in race.get("contestants") or [] if isinstance(c, Mapping)]
    win_ms = next(
        (c.get("latency_ms") for c in contestants if c.get("outcome") == "winner"),
        record.get("latency_ms"),
    )
    finished = [
        float(c["latency_ms"])
        for c in contestants
        if c.get("outcome") == "finished" and c.get("latency_ms") is not None
    ]
    margin = min(finished) - float(win_ms) if finished and win_ms is not None else None
    return {
        "case": str(record.get("case") or case_key(record)),
        "winner": str(race.get("winner") or record.get("model")),
        "margin": ms(margin),
        "contestants": [_contestant_chip(c) for c in contestants],
    }


def _contestant_chip(contestant: Mapping[str, Any]) -> dict[str, str]:
    """``b · 150 ms · TTFT 40 ms · cancelled after first byte · 120 tokens · $0.000300``."""
    outcome = str(contestant.get("outcome"))
    parts = [str(contestant.get("model")), ms(contestant.get("latency_ms"))]
    if contestant.get("ttft_ms") is not None:
        parts.append(f"TTFT {ms(contestant.get('ttft_ms'))}")
    first_byte = contestant.get("first_byte")
    if outcome == "cancelled" and isinstance(first_byte, bool):
        parts.append(f"{outcome} {'after' if first_byte else 'before'} first byte")
    else:
        parts.append(outcome)
    tokens, cost = contestant_usage(contestant)
    if tokens is not None:
        parts.append(f"{integer(tokens)} tokens")
    if cost is not None:
        parts.append(usd(cost))
    return {
        "outcome": outcome,
        "text": " · ".join(parts),
        "error": str(contestant.get("error") or ""),
    }


def _race_tally_row(tally: Mapping[str, Any]) -> dict[str, str]:
    """One row of the per-model race table, formatted."""
    cancelled = integer(tally["cancelled"])
    if tally["cancelled_after_first_byte"]:
        cancelled += f" ({integer(tally['cancelled_after_first_byte'])} after first byte)"
    return {
        "model": str(tally["model"]),
        "races": integer(tally["races"]),
        "winner": integer(tally["winner"]),
        "finished": integer(tally["finished"]),
        "cancelled": cancelled,
        "failed": integer(tally["failed"]),
        "lost_tokens": integer(tally["lost_tokens"]),
        "lost_cost": usd(tally["lost_cost_usd"]),
    }


# --------------------------------------------------------------------------- matrix data


def _case_marks(comparison: Mapping[str, Any] | None) -> dict[tuple[str, str], str]:
    marks: dict[tuple[str, str], str] = {}
    for case in (comparison or {}).get("cases") or []:
        status = case.get("status")
        if status in CHANGE_MARKS:
            marks[(str(case.get("case")), str(case.get("model")))] = str(status)
    return marks


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                else:
                    parts.append(f"[{part.get('type', 'part')}]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False, default=str)


def _prompt(messages: Any) -> str | None:
    """The matrix row's prompt: the last user message, clipped."""
    text = last_user_text(messages, _text)
    return None if text is None else _clip(text, DETAIL_CHARS * 2)


def _output(record: ResultRecord) -> tuple[str | None, str | None]:
    """The first choice's text (tool calls and refusals included) and its finish reason."""
    response = record.get("response")
    if not isinstance(response, Mapping):
        return None, None
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0], Mapping):
        return "", None
    message = choices[0].get("message") or {}
    parts = [_text(message.get("content"))] if message.get("content") is not None else []
    for call in message.get("tool_calls") or []:
        function = (call.get("function") or {}) if isinstance(call, Mapping) else {}
        parts.append(f"→ {function.get('name')}({function.get('arguments') or ''})")
    if not parts and message.get("refusal"):
        parts.append(f"[refusal] {message['refusal']}")
    reason = choices[0].get("finish_reason")
    return _clip("\n".join(parts), OUTPUT_CHARS), (str(reason) if reason else None)


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    if not isinstance(error, Mapping):
        return _clip(str(error), DETAIL_CHARS)
    text = f"{error.get('type') or 'Error'}: {error.get('message') or ''}"
    if error.get("status"):
        text += f" (HTTP {error['status']})"
    return _clip(text, DETAIL_CHARS)


def _vars(values: Any) -> dict[str, Any] | None:
    if not isinstance(values, Mapping) or not values:
        return None
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            out[str(key)] = _clip(value, DETAIL_CHARS)
        elif value is None or isinstance(value, bool | int | float):
            out[str(key)] = value
        else:
            text = json.dumps(value, ensure_ascii=False, default=str)
            out[str(key)] = _clip(text, DETAIL_CHARS)
    return out


def _status(records: Sequence[ResultRecord], items: Sequence[ItemRecord]) -> str:
    """``pass``, ``fail`` or ``error`` for a cell: from the items if any, else the records."""
    if items:
        states = {
            "pass" if i.get("outcome") == "passed" else "error" if i.get("errored") else "fail"
            for i in items
        }
    else:
        if all(r.get("error") for r in records):
            return "error"
        return "pass" if all(r.get("passed") and not r.get("error") for r in records) else "fail"
    for state in ("fail", "error"):
        if state in states:
            return state
    return "pass"


def _cell(
    records: Sequence[ResultRecord], items: Sequence[ItemRecord], mark: str | None
) -> dict[str, Any]:
    status = _status(records, items)
    cell: dict[str, Any] = {"s": status, "n": len(records)}
    if items and not records:
        cell["n"] = sum(int(i.get("repeats") or 0) for i in items)
        cell["k"] = sum(int(i.get("passes") or 0) for i in items)
    else:
        cell["k"] = sum(1 for r in records if r.get("passed") and not r.get("error"))
    thresholds = [float(i["threshold"]) for i in items if i.get("threshold") is not None]
    if thresholds and min(thresholds) < 1:
        cell["t"] = min(thresholds)
    if mark:
        cell["b"] = mark
    if not records:
        return cell
    passing = [r for r in records if r.get("passed") and not r.get("error")]
    failing = [r for r in records if r.get("error") or not r.get("passed")]
    shown = (passing or records)[0] if status == "pass" else (failing or records)[0]
    output, reason = _output(shown)
    if output:
        cell["o"] = output
    if reason and reason != "stop":
        cell["fr"] = reason
    error = _error_text(shown.get("error"))
    if error:
        cell["e"] = error
    failed = [
        [str(c.get("name")), _clip(str(c.get("detail") or ""), DETAIL_CHARS), c.get("score")]
        for c in shown.get("checks") or []
        if isinstance(c, Mapping) and not c.get("passed")
    ]
    if failed:
        cell["f"] = failed
    latencies = [float(v) for r in records if (v := r.get("latency_ms")) is not None]
    if latencies:
        cell["l"] = round(statistics.median(latencies), 1)
    costs = [float(v) for r in records if (v := r.get("cost_usd")) is not None]
    if costs:
        cell["$"] = round(sum(costs), 9)
    cell.update(_replay_keys(records))
    cell.update(_repeat_keys(records))
    return cell


def _repeat_keys(records: Sequence[ResultRecord]) -> dict[str, Any]:
    """``r`` (every repeat's verdict, reason and output) when the repeats disagree.

    At most ``REPEATS_SHOWN`` repeats, in repeat order, each output cut at
    ``REPEAT_OUTPUT_CHARS``; ``rm`` counts the repeats left out.
    """
    if not repeats_differ(records, lambda r: _output(r)[0]):
        return {}
    ordered = sorted(records, key=lambda r: int(r.get("repeat") or 0))
    shown = []
    for record in ordered[:REPEATS_SHOWN]:
        verdict, reason = record_verdict(record)
        output = _output(record)[0] or ""
        shown.append([verdict, _clip(reason, DETAIL_CHARS), _clip(output, REPEAT_OUTPUT_CHARS)])
    keys: dict[str, Any] = {"r": shown}
    if len(ordered) > REPEATS_SHOWN:
        keys["rm"] = len(ordered) - REPEATS_SHOWN
    return keys


def _replay_keys(records: Sequence[ResultRecord]) -> dict[str, Any]:
    """``rp`` (answers replayed from the store) and ``sv`` (what they saved), when any."""
    replayed = [r for r in records if r.get("cache_hit")]
    if not replayed:
        return {}
    keys: dict[str, Any] = {"rp": len(replayed)}
    saved = [v for r in replayed if _is_number(v := r.get("saved_cost_usd"))]
    if saved:
        keys["sv"] = round(sum(float(v) for v in saved), 9)
    return keys


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _variant_of(entry: Mapping[str, Any]) -> tuple[str, str | None]:
    """A record's or item's matrix row and prompt variant: ``(case, prompt)``.

    A variant's case key ends in ``[prompt]``; its row is the case without it, so that
    every variant of a case shares one row.
    """
    case = str(entry.get("case") or case_key(entry))
    prompt = entry.get("prompt")
    if not prompt:
        return case, None
    suffix = f"[{prompt}]"
    return (case[: -len(suffix)] if case.endswith(suffix) else case), str(prompt)


def _matrix_rows(
    document: RunDocument,
    models: Sequence[str],
    marks: Mapping[tuple[str, str], str],
    prompts: Sequence[str | None] = (),
) -> list[dict[str, Any]]:
    """One row per case (first-seen order), one cell per model.

    With prompt variants: one cell per (prompt, model), prompts first, every variant of a
    case on its row (``None`` in ``prompts``: the columns of cases without variants).
    """
    Column = tuple[str | None, str]
    columns: list[Column] = [(p, m) for p in prompts for m in models] or [(None, m) for m in models]
    by_case: dict[str, dict[Column, list[ResultRecord]]] = {}
    for record in document.get("records", []):
        case, prompt = _variant_of(record)
        column = (prompt, str(record.get("model")))
        by_case.setdefault(case, {}).setdefault(column, []).append(record)
    items: dict[tuple[str, Column], list[ItemRecord]] = {}
    for item in document.get("items", []):
        case, prompt = _variant_of(item)
        column = (prompt, str(item.get("model")))
        items.setdefault((case, column), []).append(item)
        by_case.setdefault(case, {}).setdefault(column, [])
    rows = []
    for case, per_column in by_case.items():
        row: dict[str, Any] = {"c": case}
        texts: dict[str | None, str] = {}
        first = None
        for (prompt, _), recs in per_column.items():
            if recs and prompt not in texts:
                first = first or recs[0]
                texts[prompt] = _prompt(recs[0].get("messages")) or ""
        if first is not None:
            if prompts:
                shown = "\n".join(
                    f"[{p}] {texts[p]}" if p else texts[p] for p in prompts if texts.get(p)
                )
                if shown:
                    row["p"] = _clip(shown, DETAIL_CHARS * 2)
            elif texts.get(None):
                row["p"] = texts[None]
            variables = _vars(first.get("vars"))
            if variables:
                row["v"] = variables
        variants = {prompt for prompt, _ in per_column}
        row["cells"] = [
            _cell(
                per_column[column],
                items.get((case, column), []),
                marks.get((f"{case}[{column[0]}]" if column[0] else case, column[1])),
            )
            if column in per_column
            else (None if column[0] in variants else False)
            for column in columns
        ]
        rows.append(row)
    return rows


def _prompt_table(document: RunDocument) -> dict[str, Any] | None:
    """The prompt × model pass-rate table: ``None`` without prompt variants."""
    summaries = prompt_summaries(document)
    return _group_table(summaries, "prompt") if summaries else None


def _suite_table(document: RunDocument) -> dict[str, Any] | None:
    """The suite × model pass-rate table: ``None`` with fewer than two suites."""
    summaries = suite_summaries(document)
    if len({s["suite"] for s in summaries}) < 2:
        return None
    return _group_table(summaries, "suite")


def _group_table(summaries: Sequence[Mapping[str, Any]], field: str) -> dict[str, Any]:
    """A group × model pass-rate table from ``group_summaries`` (prompts, suites).

    ``{field + "s": groups, "models": models, "rows": [{field: group, "cells", "all"}]}``.
    """
    groups = list(dict.fromkeys(str(s[field]) for s in summaries))
    models = list(dict.fromkeys(str(s["model"]) for s in summaries))
    by_pair = {(str(s[field]), str(s["model"])): s for s in summaries}

    def rate(passed: int, items: int) -> dict[str, Any]:
        lo, hi = wilson_interval(passed, items)
        value = passed / items if items else None
        return {
            "rate": percent(value),
            "ci": interval(lo, hi) if items else "",
            "counts": f"{integer(passed)}/{integer(items)}",
            "bar": pass_rate_svg(value, lo, hi, width=90, height=10),
            "failing": passed < items,
        }

    rows = []
    for group in groups:
        pairs = [by_pair.get((group, m)) for m in models]
        present = [s for s in pairs if s is not None]
        passed = sum(int(s["passed"]) for s in present)
        total = sum(int(s["items"]) for s in present)
        rows.append(
            {
                field: group,
                "cells": [
                    rate(int(s["passed"]), int(s["items"])) if s is not None else None
                    for s in pairs
                ],
                "all": rate(passed, total),
            }
        )
    return {f"{field}s": groups, "models": models, "rows": rows}


# --------------------------------------------------------------------------- baseline


def _model_verdict(model: Mapping[str, Any]) -> str:
    """The verdict of a comparison dict written before ``verdict`` was stored."""
    direction = str(model.get("direction") or "unchanged")
    if direction != "unchanged":
        return f"{direction} (significant)"
    changed = model.get("regressions") or model.get("fixes")
    return "changed, not significant" if changed else "unchanged"


def _case_verdict(case: Mapping[str, Any]) -> str:
    """The same for a case: ``regression (significant)``, ``changed, not significant`` etc."""
    status = str(case.get("status"))
    if status not in ("regression", "fix"):
        return status
    return f"{status} (significant)" if case.get("significant") else "changed, not significant"


def _alpha_text(alpha: Any) -> str:
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        return ""
    from harness.report.compare import alpha_sentence

    return alpha_sentence(float(alpha))


def _baseline(comparison: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    models = []
    for m in comparison.get("models") or []:
        delta = m.get("delta")
        models.append(
            {
                "model": str(m.get("model")),
                "baseline": percent(m.get("baseline_pass_rate")),
                "current": percent(m.get("current_pass_rate")),
                "delta": points(delta),
                "p": p_value(m.get("p_value")),
                "adjusted": p_value(m.get("adjusted_p_value")),
                "significant": bool(m.get("significant")),
                "direction": str(m.get("direction") or "unchanged"),
                "verdict": str(m.get("verdict") or _model_verdict(m)),
                "regressions": integer(m.get("regressions")),
                "fixes": integer(m.get("fixes")),
                "new": integer(m.get("new")),
                "removed": integer(m.get("removed")),
                "latency": signed(m.get("latency_p50_delta_ms"), ms),
                "cost": signed(m.get("cost_delta_usd"), usd),
            }
        )
    groups: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("regression", "fix", "new", "removed")
    }
    for c in comparison.get("cases") or []:
        status = str(c.get("status"))
        if status in groups:
            groups[status].append(
                {
                    "case": str(c.get("case")),
                    "model": str(c.get("model")),
                    "baseline": percent(c.get("baseline_pass_rate"), 0),
                    "current": percent(c.get("current_pass_rate"), 0),
                    "p": p_value(c.get("p_value")),
                    "adjusted": p_value(c.get("adjusted_p_value")),
                    "significant": bool(c.get("significant")),
                    "verdict": str(c.get("verdict") or _case_verdict(c)),
                }
            )
    for group in groups.values():
        group.sort(key=lambda c: not c["significant"])  # stable: run order otherwise
    lists = [
        {
            "status": status,
            "title": title,
            "total": len(groups[status]),
            "rows": groups[status][:LIST_ROWS],
            "hidden": max(0, len(groups[status]) - LIST_ROWS),
        }
        for status, title in (
            ("regression", "Regressions (passed → failed)"),
            ("fix", "Fixes (failed → passed)"),
            ("new", "New cases"),
            ("removed", "Removed cases"),
        )
    ]
    significant = [
        {"model": str(r.get("model")), "case": r.get("case"), "reason": str(r.get("reason"))}
        for r in comparison.get("significant_regressions") or []
    ]
    return {
        "alpha": comparison.get("alpha"),
        "meaning": _alpha_text(comparison.get("alpha")),
        "notes": [str(n) for n in comparison.get("notes") or []],
        "models": models,
        "lists": lists,
        "significant": significant,
        "regressions": len(groups["regression"]),
        "fixes": len(groups["fix"]),
    }
