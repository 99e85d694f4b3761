"""Per-model numbers of a run document, shared by every output format and the terminal.

``model_summaries(document)`` gives one plain dict per model, in the order the models
first appear: item counts and pass rate (with its Wilson 95% interval) over *items*
(a case×model with its repeats), error count, and over *records* (each answer): p50/p95
latency, time to first token when measured, tokens, cost and cache hits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.results import percentile, wilson_interval

__all__ = ["SUMMARY_HEADERS", "model_summaries", "overall_summary", "summary_rows", "summary_table"]

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


def model_summaries(document: Mapping[str, Any]) -> list[dict[str, Any]]:
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
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "priced": False,
                "cache_hits": 0,
            }
        return out[model]

    for item in document.get("items", []):
        e = entry(str(item.get("model")))
        e["items"] += 1
        if item.get("outcome") == "passed":
            e["passed"] += 1
        elif item.get("errored"):
            e["errors"] += 1
        else:
            e["failed"] += 1
    for r in document.get("records", []):
        e = entry(str(r.get("model")))
        e["records"] += 1
        if r.get("latency_ms") is not None:
            e["latencies"].append(float(r["latency_ms"]))
        if r.get("ttft_ms") is not None:
            e["ttfts"].append(float(r["ttft_ms"]))
        e["prompt_tokens"] += int(r.get("prompt_tokens") or 0)
        e["completion_tokens"] += int(r.get("completion_tokens") or 0)
        if r.get("cost_usd") is not None:
            e["cost_usd"] += float(r["cost_usd"])
            e["priced"] = True
        if r.get("cache_hit"):
            e["cache_hits"] += 1
    summaries = []
    for e in out.values():
        lo, hi = wilson_interval(e["passed"], e["items"])
        lat, ttft = e.pop("latencies"), e.pop("ttfts")
        priced = e.pop("priced")
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
                "total_tokens": e["prompt_tokens"] + e["completion_tokens"],
                "cost_usd": e["cost_usd"] if priced else None,
            }
        )
    return summaries


def overall_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """Totals over every model: items, passed, failed, errors, pass rate, cost, duration."""
    models = model_summaries(document)
    items = sum(m["items"] for m in models)
    passed = sum(m["passed"] for m in models)
    costs = [m["cost_usd"] for m in models if m["cost_usd"] is not None]
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
        "duration_s": document.get("run", {}).get("duration_s"),
    }


def summary_rows(
    document: Mapping[str, Any], escape: Callable[[str], str] = str
) -> list[list[str]]:
    """The per-model table's rows, formatted (columns as ``SUMMARY_HEADERS``).

    ``escape`` is applied to model names (the markdown report passes its escaper).
    """
    rows: list[list[str]] = []
    for m in model_summaries(document):
        lo, hi = m["pass_rate_ci95"]
        rate = (
            "—"
            if m["pass_rate"] is None
            else f"{m['pass_rate'] * 100:.1f}% [{lo * 100:.1f}–{hi * 100:.1f}]"
        )
        rows.append(
            [
                escape(str(m["model"])),
                str(m["items"]),
                str(m["passed"]),
                str(m["failed"]),
                str(m["errors"]),
                rate,
                _ms(m["latency_p50_ms"]),
                _ms(m["latency_p95_ms"]),
                f"{m['total_tokens']:,}",
                "—" if m["cost_usd"] is None else f"${m['cost_usd']:.4f}",
            ]
        )
    return rows


def summary_table(document: Mapping[str, Any], tablefmt: str = "simple") -> str:
    """The per-model table as text (``simple`` for terminals, ``github`` for markdown)."""
    from tabulate import tabulate

    align = ("left",) + ("right",) * (len(SUMMARY_HEADERS) - 1)
    return str(
        tabulate(
            summary_rows(document),
            headers=list(SUMMARY_HEADERS),
            tablefmt=tablefmt,
            colalign=align,
            disable_numparse=True,
        )
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
