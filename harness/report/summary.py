"""Per-model numbers of a run document, shared by every output format and the terminal.

``model_summaries(document)`` gives one plain dict per model, in the order the models
first appear: item counts and pass rate (with its Wilson 95% interval) over *items*
(a case×model with its repeats), error count, and over *records* (each answer): p50/p95
latency, time to first token and output speed when measured, tokens, cost, cache hits
(answers replayed from the response store) and the cost those replays saved.

A replayed answer's latency is the recorded call's (never a fake 0 ms), so it counts in the
percentiles like any other; its ``cost_usd`` is ``None`` and ``saved_cost_usd`` holds what
the recorded call cost.

``prompt_summaries(document)`` does the same per (prompt variant, model) for suites with
``prompts:`` (items and pass rate with its Wilson interval, answers, cost), and
``prompt_table`` sets them out as a prompt × model table of pass rates.
``suite_summaries``/``suite_table`` do the same per (suite, model), a suite being a suite
file or a Python test module; both are ``group_summaries`` with a different grouping key.

``tradeoff_summaries(document)`` gives per model the pass rate, cost per 1,000 cases and
p50 latency that the report's quality / cost / latency charts plot.

``record_verdict`` and ``repeats_differ`` let the reports show every repeat of an item whose
repeats disagree (some pass, some fail, or different outputs).

``fitted_summary_table`` and ``fitted_prompt_tables`` are the terminal's versions of both
tables, made to fit a width (100 columns at most): counts merged (``passed/items``,
``p50/p95 ms``), empty columns left out, then less asked for columns dropped; the
reports keep the full tables.

``race_summary(document)`` tallies the races: per model its wins and losses and the tokens
and cost it consumed while losing (as far as providers reported them), and the totals.

Records written before these fields existed lack ``cache_hit``, ``saved_cost_usd`` and the
contestants' usage fields; everything here treats a missing key as ``False``/``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from harness.report.formatting import NONE, integer, ms, percent, usd
from harness.results import RunDocument, percentile, wilson_interval

__all__ = [
    "ALL_MODELS",
    "RACE_OUTCOMES",
    "REPLAYED_HEADER",
    "SUMMARY_HEADERS",
    "TERMINAL_WIDTH",
    "TRADEOFF_HEADERS",
    "TTFT_HEADER",
    "contestant_usage",
    "fitted_prompt_tables",
    "fitted_summary_table",
    "group_headers",
    "group_rows",
    "group_summaries",
    "losers_text",
    "model_summaries",
    "overall_summary",
    "prompt_headers",
    "prompt_rows",
    "prompt_summaries",
    "prompt_table",
    "race_summary",
    "record_verdict",
    "repeats_differ",
    "replayed_text",
    "shorten",
    "summary_headers",
    "summary_rows",
    "suite_headers",
    "suite_of",
    "suite_rows",
    "suite_summaries",
    "suite_table",
    "summary_table",
    "text_table",
    "tradeoff_rows",
    "tradeoff_summaries",
]

SUMMARY_HEADERS = (
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
)
"""The per-model table's columns; ``REPLAYED_HEADER`` follows when anything was replayed."""

TTFT_HEADER = "ttft p50 ms"
"""The column after ``p95 ms`` when some answer was streamed: median time to first token."""

REPLAYED_HEADER = "replayed"
"""The extra column of the per-model table: replayed answers and the cost they saved."""

_R = TypeVar("_R", bound=Mapping[str, Any])

RACE_OUTCOMES = ("winner", "finished", "cancelled", "failed")
"""A race contestant's ``outcome`` values."""


def model_summaries(document: RunDocument) -> list[dict[str, Any]]:
    """One summary dict per model (see the module docstring for the keys)."""
    out: dict[str, dict[str, Any]] = {}

    def entry(model: str) -> dict[str, Any]:
        if model not in out:
            out[model] = {
                "model": model,
                "items": 0,
                "passed": 0,
                "failed": 0,
                "errors": 0,
                "records": 0,
                "latencies": [],
                "ttfts": [],
                "speeds": [],
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "priced": False,
                "cache_hits": 0,
                "saved_usd": 0.0,
                "saved_priced": False,
            }
        return out[model]

    for item in document.get("items", []):
        e = entry(str(item.get("model")))
        _count_item(e, item)
    for r in document.get("records", []):
        e = entry(str(r.get("model")))
        e["records"] += 1
        if (value := r.get("latency_ms")) is not None:
            e["latencies"].append(float(value))
        if (value := r.get("ttft_ms")) is not None:
            e["ttfts"].append(float(value))
        if (value := r.get("tokens_per_s")) is not None:
            e["speeds"].append(float(value))
        e["prompt_tokens"] += int(r.get("prompt_tokens") or 0)
        e["completion_tokens"] += int(r.get("completion_tokens") or 0)
        if (cost := r.get("cost_usd")) is not None:
            e["cost_usd"] += float(cost)
            e["priced"] = True
        if r.get("cache_hit"):
            e["cache_hits"] += 1
        saved = _number(r.get("saved_cost_usd"))
        if saved is not None:
            e["saved_usd"] += saved
            e["saved_priced"] = True
    summaries = []
    for e in out.values():
        lo, hi = wilson_interval(e["passed"], e["items"])
        lat, ttft, speeds = e.pop("latencies"), e.pop("ttfts"), e.pop("speeds")
        priced = e.pop("priced")
        saved_priced = e.pop("saved_priced")
        summaries.append(
            {
                **e,
                "pass_rate": e["passed"] / e["items"] if e["items"] else None,
                "pass_rate_ci95": [lo, hi],
                "latency_p50_ms": percentile(lat, 50),
                "latency_p95_ms": percentile(lat, 95),
                "latency_ms": lat,
                "ttft_p50_ms": percentile(ttft, 50),
                "ttft_p95_ms": percentile(ttft, 95),
                "tokens_per_s_p50": percentile(speeds, 50),
                "total_tokens": e["prompt_tokens"] + e["completion_tokens"],
                "cost_usd": e["cost_usd"] if priced else None,
                "saved_usd": e["saved_usd"] if saved_priced else None,
            }
        )
    return summaries


ALL_MODELS = "all models"
"""The last column of the prompt × model table: the prompt's pass rate over every model."""


def _item_prompts(document: RunDocument) -> dict[str, str]:
    """Each test id's prompt variant, from the records (items written before carry none)."""
    return {
        str(r.get("test_id")): str(r["prompt"])
        for r in document.get("records", [])
        if r.get("prompt")
    }


def prompt_summaries(document: RunDocument) -> list[dict[str, Any]]:
    """One dict per (prompt variant, model) that ran, prompts then models in first-seen order.

    Keys: ``prompt``, ``model``, ``items``, ``passed``, ``failed``, ``errors``,
    ``pass_rate`` (``None`` without items) and ``pass_rate_ci95`` (Wilson 95%), ``records``
    and ``cost_usd`` (``None`` when nothing was priced). Empty when no record has a prompt.
    """
    by_test = _item_prompts(document)
    if not by_test:
        return []

    def item_prompt(item: Mapping[str, Any]) -> str | None:
        prompt = item.get("prompt") or by_test.get(str(item.get("test_id")))
        return str(prompt) if prompt else None

    def record_prompt(record: Mapping[str, Any]) -> str | None:
        return str(record["prompt"]) if record.get("prompt") else None

    return group_summaries(document, "prompt", item_prompt, record_prompt)


def suite_of(entry: Mapping[str, Any]) -> str | None:
    """The suite an item or record belongs to: its suite file, or a Python test's file.

    A suite record names its ``suite`` (the suite file's node id); anything else is grouped
    by the part of its test id before ``::`` (the test module's path); ``None`` for a test
    id without one.
    """
    if entry.get("suite"):
        return str(entry["suite"])
    path, sep, _ = str(entry.get("test_id") or "").partition("::")
    return path if sep and path else None


def suite_summaries(document: RunDocument) -> list[dict[str, Any]]:
    """One dict per (suite, model) that ran, suites then models in first-seen order.

    The keys of ``prompt_summaries`` with ``suite`` (see ``suite_of``) for ``prompt``.
    """
    return group_summaries(document, "suite", suite_of, suite_of)


def group_summaries(
    document: RunDocument,
    field: str,
    item_key: Callable[[Mapping[str, Any]], str | None],
    record_key: Callable[[Mapping[str, Any]], str | None],
) -> list[dict[str, Any]]:
    """Pass rates per (group, model): the groups by ``item_key``/``record_key`` (``None``: none).

    Each dict has ``field`` (the group), ``model``, ``items``, ``passed``, ``failed``,
    ``errors``, ``pass_rate`` and ``pass_rate_ci95``, ``records`` and ``cost_usd``; groups
    then models in first-seen order.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(group: str, model: str) -> dict[str, Any]:
        key = (group, model)
        if key not in out:
            out[key] = {
                field: group,
                "model": model,
                "items": 0,
                "passed": 0,
                "failed": 0,
                "errors": 0,
                "records": 0,
                "cost_usd": None,
            }
        return out[key]

    for item in document.get("items", []):
        group = item_key(item)
        if group is None:
            continue
        _count_item(entry(group, str(item.get("model"))), item)
    for r in document.get("records", []):
        group = record_key(r)
        if group is None:
            continue
        e = entry(group, str(r.get("model")))
        e["records"] += 1
        if (cost := _number(r.get("cost_usd"))) is not None:
            e["cost_usd"] = (e["cost_usd"] or 0.0) + cost
    groups = list(dict.fromkeys(g for g, _ in out))
    models = list(dict.fromkeys(m for _, m in out))
    summaries = []
    for group in groups:
        for model in models:
            pair = out.get((group, model))
            if pair is None:
                continue
            lo, hi = wilson_interval(pair["passed"], pair["items"])
            summaries.append(
                {
                    **pair,
                    "pass_rate": pair["passed"] / pair["items"] if pair["items"] else None,
                    "pass_rate_ci95": [lo, hi],
                }
            )
    return summaries


def _rate_text(passed: int, items: int) -> str:
    """``66.7% [30.0–90.3] 4/6``: a pass rate with its Wilson interval and counts."""
    if not items:
        return NONE
    lo, hi = wilson_interval(passed, items)
    return f"{percent(passed / items)} [{lo * 100:.1f}–{hi * 100:.1f}] {passed}/{items}"


def prompt_headers(document: RunDocument) -> tuple[str, ...]:
    """The prompt × model table's columns: ``prompt``, each model, ``ALL_MODELS``."""
    return group_headers(prompt_summaries(document), "prompt")


def prompt_rows(document: RunDocument, escape: Callable[[str], str] = str) -> list[list[str]]:
    """The prompt × model table's rows, one per prompt variant.

    Each cell is a pass rate with its Wilson 95% interval and counts (``—`` where the pair
    did not run); the last is the prompt's over every model. ``escape`` is applied to
    prompt ids (the markdown report passes its escaper).
    """
    return group_rows(prompt_summaries(document), "prompt", escape)


def prompt_table(document: RunDocument, tablefmt: str = "simple") -> str:
    """The prompt × model pass-rate table as text; ``""`` when no record has a prompt."""
    return _group_table(prompt_summaries(document), "prompt", tablefmt)


def suite_headers(document: RunDocument) -> tuple[str, ...]:
    """The suite × model table's columns: ``suite``, each model, ``ALL_MODELS``."""
    return group_headers(suite_summaries(document), "suite")


def suite_rows(document: RunDocument, escape: Callable[[str], str] = str) -> list[list[str]]:
    """The suite × model table's rows, one per suite (cells as in ``prompt_rows``)."""
    return group_rows(suite_summaries(document), "suite", escape)


def suite_table(
    document: RunDocument,
    tablefmt: str = "simple",
    *,
    min_suites: int = 2,
    max_width: int | None = None,
) -> str:
    """The suite × model pass-rate table as text; ``""`` with fewer than ``min_suites`` suites.

    ``max_width`` (for the terminal summary): ``""`` when some line would be wider.
    """
    summaries = suite_summaries(document)
    if len({s["suite"] for s in summaries}) < min_suites:
        return ""
    text = _group_table(summaries, "suite", tablefmt)
    if max_width is not None and any(len(line) > max_width for line in text.splitlines()):
        return ""
    return text


def group_headers(summaries: Sequence[Mapping[str, Any]], field: str) -> tuple[str, ...]:
    """A group × model table's columns: ``field``, each model, ``ALL_MODELS``."""
    models = dict.fromkeys(str(s["model"]) for s in summaries)
    return (field, *models, ALL_MODELS)


def group_rows(
    summaries: Sequence[Mapping[str, Any]], field: str, escape: Callable[[str], str] = str
) -> list[list[str]]:
    """A group × model table's rows from ``group_summaries``: one per group.

    Each cell is a pass rate with its Wilson 95% interval and counts (``—`` where the pair
    did not run); the last is the group's over every model. ``escape`` applies to the
    group names.
    """
    models = list(dict.fromkeys(str(s["model"]) for s in summaries))
    cells: dict[str, dict[str, Mapping[str, Any]]] = {}
    for s in summaries:
        cells.setdefault(str(s[field]), {})[str(s["model"])] = s
    rows = []
    for group, per_model in cells.items():
        passed = sum(s["passed"] for s in per_model.values())
        items = sum(s["items"] for s in per_model.values())
        row = [escape(group)]
        row += [
            _rate_text(per_model[m]["passed"], per_model[m]["items"]) if m in per_model else NONE
            for m in models
        ]
        row.append(_rate_text(passed, items))
        rows.append(row)
    return rows


def _group_table(summaries: Sequence[Mapping[str, Any]], field: str, tablefmt: str) -> str:
    rows = group_rows(summaries, field)
    if not rows:
        return ""
    return text_table(rows, group_headers(summaries, field), tablefmt)


def text_table(
    rows: Sequence[Sequence[str]], headers: Sequence[str], tablefmt: str = "simple"
) -> str:
    """A table of already formatted cells: the first column left-aligned, the rest right."""
    from tabulate import tabulate

    align = ("left",) + ("right",) * (len(headers) - 1)
    return str(
        tabulate(
            [list(r) for r in rows],
            headers=list(headers),
            tablefmt=tablefmt,
            colalign=align,
            disable_numparse=True,
        )
    )


def overall_summary(document: RunDocument) -> dict[str, Any]:
    """Totals over every model.

    Keys: ``models``, ``items``, ``passed``, ``failed``, ``errors``, ``records``,
    ``pass_rate`` and ``pass_rate_ci95``, ``cost_usd`` (``None`` when nothing was priced),
    ``cache_hits``, ``saved_usd`` (``None`` when no replayed answer had a recorded cost)
    and ``duration_s``.
    """
    models = model_summaries(document)
    items = sum(m["items"] for m in models)
    passed = sum(m["passed"] for m in models)
    costs = [m["cost_usd"] for m in models if m["cost_usd"] is not None]
    saved = [m["saved_usd"] for m in models if m["saved_usd"] is not None]
    lo, hi = wilson_interval(passed, items)
    return {
        "models": len(models),
        "items": items,
        "passed": passed,
        "failed": sum(m["failed"] for m in models),
        "errors": sum(m["errors"] for m in models),
        "records": sum(m["records"] for m in models),
        "pass_rate": passed / items if items else None,
        "pass_rate_ci95": [lo, hi],
        "cost_usd": sum(costs) if costs else None,
        "cache_hits": sum(m["cache_hits"] for m in models),
        "saved_usd": sum(saved) if saved else None,
        "duration_s": document.get("run", {}).get("duration_s"),
    }


def summary_headers(document: RunDocument, *, replayed: bool | None = None) -> tuple[str, ...]:
    """The per-model table's columns: ``SUMMARY_HEADERS``, then ``REPLAYED_HEADER``.

    ``replayed=None`` adds the replayed column only when some answer was replayed;
    ``TTFT_HEADER`` follows ``p95 ms`` when some answer has a time to first token.
    """
    headers = list(SUMMARY_HEADERS)
    if _with_ttft(document):
        headers.insert(headers.index("p95 ms") + 1, TTFT_HEADER)
    if _with_replayed(document, replayed):
        headers.append(REPLAYED_HEADER)
    return tuple(headers)


def summary_rows(
    document: RunDocument,
    escape: Callable[[str], str] = str,
    *,
    replayed: bool | None = None,
) -> list[list[str]]:
    """The per-model table's rows, formatted (columns as ``summary_headers``).

    ``escape`` is applied to model names (the markdown report passes its escaper).
    ``replayed`` as in ``summary_headers``: the last cell then reads ``12 · saved $0.0123``
    (replayed answers and what their recorded calls cost).
    """
    with_replayed = _with_replayed(document, replayed)
    with_ttft = _with_ttft(document)
    rows: list[list[str]] = []
    for m in model_summaries(document):
        lo, hi = m["pass_rate_ci95"]
        rate = (
            NONE
            if m["pass_rate"] is None
            else f"{percent(m['pass_rate'])} [{lo * 100:.1f}–{hi * 100:.1f}]"
        )
        row = [
            escape(str(m["model"])),
            integer(m["items"]),
            integer(m["passed"]),
            integer(m["failed"]),
            integer(m["errors"]),
            rate,
            ms(m["latency_p50_ms"], unit=False),
            ms(m["latency_p95_ms"], unit=False),
            *([ms(m["ttft_p50_ms"], unit=False)] if with_ttft else []),
            integer(m["total_tokens"]),
            usd(m["cost_usd"]),
        ]
        if with_replayed:
            row.append(replayed_text(m["cache_hits"], m["saved_usd"]))
        rows.append(row)
    return rows


def replayed_text(hits: int, saved_usd: float | None) -> str:
    """``12 · saved $0.0123``: replayed answers and the cost they saved (when recorded)."""
    text = integer(hits)
    if hits and saved_usd is not None:
        text += f" · saved {usd(saved_usd)}"
    return text


def summary_table(document: RunDocument, tablefmt: str = "simple") -> str:
    """The per-model table as text (``simple`` for terminals, ``github`` for markdown).

    It has the replayed column when some answer was replayed from the response store.
    """
    return text_table(summary_rows(document), summary_headers(document), tablefmt)


# --------------------------------------------------------------------------- trade-off

TRADEOFF_HEADERS = ("model", "pass rate [95% CI]", "cost per 1k cases", "p50 ms")
"""The quality / cost / latency table's columns (the report's scatter charts as text)."""


def tradeoff_summaries(document: RunDocument) -> list[dict[str, Any]]:
    """Per model the three numbers a comparison plots: quality, cost and latency.

    Keys: ``model``, ``items``, ``pass_rate`` (``None`` without items), ``pass_rate_ci95``,
    ``cost_per_1k_usd`` (the mean cost of an item × 1,000; replayed answers count at their
    recorded cost; ``None`` when nothing was priced or no item ran) and ``latency_p50_ms``.
    """
    out = []
    for m in model_summaries(document):
        spent = [v for v in (m["cost_usd"], m["saved_usd"]) if v is not None]
        per_1k = sum(spent) / m["items"] * 1000 if spent and m["items"] else None
        out.append(
            {
                "model": m["model"],
                "items": m["items"],
                "pass_rate": m["pass_rate"],
                "pass_rate_ci95": m["pass_rate_ci95"],
                "cost_per_1k_usd": per_1k,
                "latency_p50_ms": m["latency_p50_ms"],
            }
        )
    return out


def tradeoff_rows(document: RunDocument, escape: Callable[[str], str] = str) -> list[list[str]]:
    """The quality / cost / latency table's rows (columns as ``TRADEOFF_HEADERS``)."""
    rows = []
    for t in tradeoff_summaries(document):
        lo, hi = t["pass_rate_ci95"]
        rate = (
            NONE
            if t["pass_rate"] is None
            else f"{percent(t['pass_rate'])} [{lo * 100:.1f}–{hi * 100:.1f}]"
        )
        rows.append(
            [
                escape(str(t["model"])),
                rate,
                usd(t["cost_per_1k_usd"]),
                ms(t["latency_p50_ms"], unit=False),
            ]
        )
    return rows


# --------------------------------------------------------------------------- repeats


def record_verdict(record: Mapping[str, Any]) -> tuple[str, str]:
    """One answer's verdict and why: ``("PASS", "")``, ``("FAIL", "icontains: …")``, etc.

    A failed answer's reason lists its failed checks (``name: detail``); an error's is
    ``Type: message``.
    """
    error = record.get("error")
    if error:
        if isinstance(error, Mapping):
            return "ERROR", f"{error.get('type') or 'Error'}: {error.get('message') or ''}"
        return "ERROR", str(error)
    if record.get("passed"):
        return "PASS", ""
    failed = [
        f"{c.get('name')}: {c.get('detail') or 'failed'}"
        for c in record.get("checks") or []
        if isinstance(c, Mapping) and not c.get("passed")
    ]
    return "FAIL", "; ".join(failed)


def repeats_differ(records: Sequence[_R], output: Callable[[_R], Hashable]) -> bool:
    """Whether an item's repeats disagree: some pass and some not, or their outputs differ."""
    if len(records) < 2:
        return False
    verdicts = {record_verdict(r)[0] for r in records}
    return len(verdicts) > 1 or len({output(r) for r in records}) > 1


# --------------------------------------------------------------------------- terminal

TERMINAL_WIDTH = 100
"""The widest the terminal's tables get, however wide the terminal."""

_FIT_STEPS = ("merge", "ttft", "replayed", "tokens", "ci", "p95", "latency")
"""What a narrower table gives up, in order: merged counts and latencies (and no column of
zeros), then time to first token, replays, tokens, the pass rate's interval, p95 latency,
and latency."""


def fitted_summary_table(document: RunDocument, width: int = TERMINAL_WIDTH) -> str:
    """The per-model table for a terminal, no line wider than ``min(width, 100)``.

    The full table (``summary_table``) when it fits; else, step by step until it fits:
    ``passed/items`` in one column with ``failed`` left out (it is the rest) and ``errors``
    only when some are nonzero, ``p50/p95 ms`` in one; then without ``ttft p50 ms``,
    ``replayed``, ``tokens``, the pass rate's interval, p95 latency and latency; then model
    names are shortened in the middle (``anthropic/cla…sonnet-4``), to 8 characters at
    least. The narrowest table (model, passed/items, errors when any, pass rate, cost) is
    about 50 columns wide; a terminal narrower than that gets it anyway.
    """
    limit = min(width, TERMINAL_WIDTH)
    full = summary_table(document, "simple")
    if _widest(full) <= limit:
        return full
    summaries = model_summaries(document)
    with_ttft = _with_ttft(document)
    with_replayed = _with_replayed(document, None)
    longest = max((len(str(m["model"])) for m in summaries), default=5)

    def attempt(done: int, name_width: int | None) -> str:
        steps = set(_FIT_STEPS[:done])
        return _compact_table(summaries, steps, with_ttft, with_replayed, name_width)

    text = full
    for done in range(1, _FIT_STEPS.index("ci") + 2):
        text = attempt(done, None)
        if _widest(text) <= limit:
            return text
    # Then names shortened to 24 characters before latency goes, and to 8 after.
    for floor, done in ((24, 5), (24, 6), (24, 7), (8, 7)):
        name_width = longest
        text = attempt(done, None)
        while _widest(text) > limit and name_width > floor:
            name_width = max(name_width - (_widest(text) - limit), floor)
            text = attempt(done, name_width)
        if _widest(text) <= limit:
            return text
    return text


def _compact_table(
    summaries: list[dict[str, Any]],
    steps: set[str],
    with_ttft: bool,
    with_replayed: bool,
    name_width: int | None,
) -> str:
    """The per-model table without what ``steps`` gives up (see ``_FIT_STEPS``)."""
    errors = any(m["errors"] for m in summaries)
    headers = ["model", "passed/items"]
    if errors:
        headers.append("errors")
    headers.append("pass rate" if "ci" in steps else "pass rate [95% CI]")
    if "latency" not in steps:
        headers.append("p50 ms" if "p95" in steps else "p50/p95 ms")
    if with_ttft and "ttft" not in steps:
        headers.append(TTFT_HEADER)
    if "tokens" not in steps:
        headers.append("tokens")
    headers.append("cost")
    if with_replayed and "replayed" not in steps:
        headers.append(REPLAYED_HEADER)
    rows = []
    for m in summaries:
        lo, hi = m["pass_rate_ci95"]
        rate = percent(m["pass_rate"])
        if m["pass_rate"] is not None and "ci" not in steps:
            rate += f" [{lo * 100:.1f}–{hi * 100:.1f}]"
        name = str(m["model"])
        row = [
            name if name_width is None else shorten(name, name_width),
            f"{integer(m['passed'])}/{integer(m['items'])}",
        ]
        if errors:
            row.append(integer(m["errors"]))
        row.append(rate)
        p50, p95 = m["latency_p50_ms"], m["latency_p95_ms"]
        if "p95" in steps and "latency" not in steps:
            row.append(ms(p50, unit=False))
        elif "latency" not in steps:
            row.append(NONE if p50 is None else f"{ms(p50, unit=False)}/{ms(p95, unit=False)}")
        if with_ttft and "ttft" not in steps:
            row.append(ms(m["ttft_p50_ms"], unit=False))
        if "tokens" not in steps:
            row.append(integer(m["total_tokens"]))
        row.append(usd(m["cost_usd"]))
        if with_replayed and "replayed" not in steps:
            row.append(replayed_text(m["cache_hits"], m["saved_usd"]))
        rows.append(row)
    return text_table(rows, headers)


def fitted_prompt_tables(document: RunDocument, width: int = TERMINAL_WIDTH) -> list[str]:
    """The prompt × model table for a terminal, as tables no wider than ``min(width, 100)``.

    The models are split over as many tables as needed, each repeating the prompt column
    (the ``all models`` column comes last); when one model does not fit beside the
    prompts, cells lose their interval (``66.7% 4/6``) and prompt ids and model names are
    shortened to half the width each.
    Empty when no record has a prompt.
    """
    rows = prompt_rows(document)
    if not rows:
        return []
    limit = min(width, TERMINAL_WIDTH)
    headers = list(prompt_headers(document))
    columns = list(range(1, len(headers)))

    def table(cols: list[int], rows: list[list[str]], heads: list[str]) -> str:
        return text_table(
            [[row[0], *(row[c] for c in cols)] for row in rows],
            [heads[0], *(heads[c] for c in cols)],
        )

    if all(_widest(table([c], rows, headers)) > limit for c in columns):
        rows = [[row[0], *(_without_interval(cell) for cell in row[1:])] for row in rows]
    if any(_widest(table([c], rows, headers)) > limit for c in columns):
        half = max((limit - 2) // 2, 8)
        rows = [[shorten(row[0], half), *row[1:]] for row in rows]
        headers = [headers[0], *(shorten(h, half - 2) for h in headers[1:])]  # 2: padding
    tables: list[str] = []
    group: list[int] = []
    for c in columns:
        if group and _widest(table([*group, c], rows, headers)) > limit:
            tables.append(table(group, rows, headers))
            group = []
        group.append(c)
    tables.append(table(group, rows, headers))
    return tables


def shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (``anthropic/cla…sonnet-4``)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


def _without_interval(cell: str) -> str:
    """``66.7% [30.0–90.3] 4/6`` → ``66.7% 4/6``."""
    start, end = cell.find(" ["), cell.find("] ")
    return cell if start < 0 or end < start else cell[:start] + cell[end + 1 :]


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


# --------------------------------------------------------------------------- races


def contestant_usage(contestant: Mapping[str, Any]) -> tuple[int | None, float | None]:
    """The tokens (prompt + completion) and cost one race contestant reported.

    Each is ``None`` when the provider reported none (a loser cancelled before its usage
    arrived, a model without a price, or a record written before these fields existed).
    """
    prompt = _integer(contestant.get("prompt_tokens"))
    completion = _integer(contestant.get("completion_tokens"))
    tokens = None if prompt is None and completion is None else (prompt or 0) + (completion or 0)
    return tokens, _number(contestant.get("cost_usd"))


def race_summary(document: RunDocument) -> dict[str, Any] | None:
    """What the races of a run came to; ``None`` when no record is a race winner.

    Returns:
        ``races`` (race records), ``models`` (one dict per contestant model, most wins
        first: ``model``, ``races``, ``winner``, ``finished``, ``cancelled``, ``failed``,
        ``cancelled_after_first_byte``, and ``lost_tokens``/``lost_cost_usd``: what the
        model consumed in the races it did not win, ``None`` when none was reported),
        ``lost_tokens`` and ``lost_cost_usd`` (the same over every model) and
        ``reported_races`` (races in which some loser reported usage).
    """
    tallies: dict[str, dict[str, Any]] = {}
    races = reported = 0
    for record in document.get("records", []):
        race = record.get("race")
        if not isinstance(race, Mapping):
            continue
        races += 1
        contestants = [c for c in race.get("contestants") or [] if isinstance(c, Mapping)]
        if _tally_race(tallies, contestants):
            reported += 1
    if not races:
        return None
    models = sorted(tallies.values(), key=lambda t: -t["winner"])
    return {
        "races": races,
        "models": models,
        "lost_tokens": _sum_known(t["lost_tokens"] for t in models),
        "lost_cost_usd": _sum_known(t["lost_cost_usd"] for t in models),
        "reported_races": reported,
    }


def losers_text(summary: Mapping[str, Any]) -> str:
    """One sentence on what the races' losers consumed, from ``race_summary``.

    ``Losers consumed 1,234 tokens ($0.001200) across 5 races where reported.``
    """
    races = summary["reported_races"]
    if not races:
        return (
            "No losing contestant reported its usage (a loser cancelled before its usage "
            "arrived reports none)."
        )
    tokens, cost = summary["lost_tokens"], summary["lost_cost_usd"]
    spent = f"{integer(tokens)} tokens" if tokens is not None else ""
    if cost is not None:
        spent = f"{spent} ({usd(cost)})" if spent else usd(cost)
    where = "race" if races == 1 else "races"
    return f"Losers consumed {spent} across {integer(races)} {where} where reported."


def _tally_race(
    tallies: dict[str, dict[str, Any]], contestants: Sequence[Mapping[str, Any]]
) -> bool:
    """Add one race's contestants to the per-model tallies; whether a loser reported usage."""
    reported = False
    for c in contestants:
        name = str(c.get("model"))
        t = tallies.setdefault(name, _race_tally(name))
        t["races"] += 1
        outcome = c.get("outcome")
        if outcome in RACE_OUTCOMES:
            t[outcome] += 1
        if outcome == "cancelled" and c.get("first_byte") is True:
            t["cancelled_after_first_byte"] += 1
        if outcome == "winner":
            continue
        tokens, cost = contestant_usage(c)
        if tokens is not None:
            t["lost_tokens"] = (t["lost_tokens"] or 0) + tokens
        if cost is not None:
            t["lost_cost_usd"] = (t["lost_cost_usd"] or 0.0) + cost
        reported = reported or tokens is not None or cost is not None
    return reported


def _race_tally(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "races": 0,
        **{outcome: 0 for outcome in RACE_OUTCOMES},
        "cancelled_after_first_byte": 0,
        "lost_tokens": None,
        "lost_cost_usd": None,
    }


# --------------------------------------------------------------------------- helpers


def _with_ttft(document: RunDocument) -> bool:
    return any(r.get("ttft_ms") is not None for r in document.get("records", []))


def _with_replayed(document: RunDocument, replayed: bool | None) -> bool:
    if replayed is not None:
        return replayed
    return any(r.get("cache_hit") for r in document.get("records", []))


def _sum_known(values: Iterable[Any]) -> Any:
    """The sum of the values that are not ``None``; ``None`` when all are."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def _count_item(entry: dict[str, Any], item: Mapping[str, Any]) -> None:
    """Count an item in a summary entry: ``items`` and one of passed, errors, failed."""
    entry["items"] += 1
    if item.get("outcome") == "passed":
        entry["passed"] += 1
    elif item.get("errored"):
        entry["errors"] += 1
    else:
        entry["failed"] += 1
