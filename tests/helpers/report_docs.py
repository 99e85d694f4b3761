"""Result records and run documents for the report tests, built by hand field by field."""

from __future__ import annotations

from typing import Any

from harness.report.document import build_document


def record(
    case_id: str,
    model: str,
    output: str | None = "ok",
    *,
    passed: bool = True,
    suite: str = "suites/s.yaml",
    repeat: int = 0,
    vars: dict[str, Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    error: dict[str, Any] | None = None,
    latency_ms: float | None = 100.0,
    cost_usd: float | None = 0.001,
    race: dict[str, Any] | None = None,
    prompt: str = "Say hello",
) -> dict[str, Any]:
    """One result record of a suite case (an answer, or ``error``), as the plugin writes it."""
    response = None
    if output is not None and error is None:
        response = {
            "id": "chatcmpl-secret-id-123",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": output},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    return {
        "test_id": f"{suite}::{case_id}[{model}]",
        "suite": suite,
        "case_id": case_id,
        "model": model,
        "resolved_model": f"mock/{model}",
        "repeat": repeat,
        "shape": "race" if race else "suite",
        "vars": vars or {},
        "messages": [
            {"role": "system", "content": "system prompt text"},
            {"role": "user", "content": prompt},
        ],
        "passed": passed and error is None,
        "checks": checks
        if checks is not None
        else [{"name": "equals", "passed": passed, "score": None, "detail": "compared"}],
        "response": response,
        "error": error,
        "provider": "mock",
        "latency_ms": latency_ms,
        "ttft_ms": None,
        "attempts": 1,
        "prompt_tokens": 10 if response else None,
        "completion_tokens": 5 if response else None,
        "total_tokens": 15 if response else None,
        "cost_usd": cost_usd if response else None,
        "cache_hit": False,
        "race": race,
        "time": 1_790_000_000.0,
        "flags": [],
    }


def document(records: list[dict[str, Any]], **run: Any) -> dict[str, Any]:
    """A run document of ``records`` (header fields overridden by ``run``)."""
    header = {
        "started": 1_790_000_000.0,
        "finished": 1_790_000_065.5,
        "command": ["pytest", "suites/", "--harness-models", "a,b"],
        "harness_version": "9.8.7",
        "config_hash": "feedc0ffee123456",
        "models": [{"name": "a", "model": "mock/alpha"}, {"name": "b", "model": "mock/beta"}],
        **run,
    }
    return build_document(records, items_of(records), run=header)


def items_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per (test id, model): passed when every repeat passed."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["test_id"], []).append(r)
    items = []
    for test_id, recs in groups.items():
        passes = sum(bool(r["passed"]) for r in recs)
        items.append(
            {
                "test_id": test_id,
                "model": recs[0]["model"],
                "outcome": "passed" if passes == len(recs) else "failed",
                "errored": all(r["error"] for r in recs),
                "repeats": len(recs),
                "passes": passes,
                "pass_rate": passes / len(recs),
                "threshold": 1.0,
            }
        )
    return items
