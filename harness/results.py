"""Result records, the crash-safe JSONL stream, and the statistics the reports show.

A *record* is one plain-data dict per (test item, model, repeat): what was asked, what came
back (the ``ModelResponse`` or the error), each check, and the numbers (latency, tokens,
cost, attempts). Records are JSON-able so they survive pytest-xdist and land in
``results.jsonl`` as they arrive, one line each; ``read_jsonl`` reads them back, tolerating a
torn last line after a crash.

``wilson_interval`` and ``percentile`` are the statistics the summaries use
(``harness.report.summary`` builds the per-model numbers).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, knows_secrets, redact_known
from harness.types import ModelResponse

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "JsonlWriter",
    "make_record",
    "percentile",
    "read_jsonl",
    "wilson_interval",
]

RESULTS_SCHEMA_VERSION = 1


def wilson_interval(passed: int, total: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a pass rate (95% by default); ``(0, 1)`` when empty."""
    if total <= 0:
        return 0.0, 1.0
    p = passed / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def make_record(
    *,
    test_id: str,
    model: str,
    result: ModelResponse | BaseException | None,
    checks: Sequence[Any] = (),
    passed: bool | None = None,
    repeat: int = 0,
    suite: str | None = None,
    case_id: str | None = None,
    vars: Mapping[str, Any] | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
    shape: str = "completion",
    resolved_model: str | None = None,
) -> dict[str, Any]:
    """One JSON-able record of a model answer (or error) and its checks.

    ``passed`` defaults to: the call succeeded and every check passed.
    """
    check_dicts = [c.to_dict() if hasattr(c, "to_dict") else dict(c) for c in checks]
    response = result if isinstance(result, ModelResponse) else None
    error = result if isinstance(result, BaseException) else None
    if passed is None:
        passed = response is not None and all(c.get("passed") for c in check_dicts)
    record: dict[str, Any] = {
        "test_id": test_id,
        "suite": suite,
        "case_id": case_id,
        "model": model,
        "resolved_model": resolved_model,
        "repeat": repeat,
        "shape": shape,
        "vars": dict(vars) if vars else {},
        "messages": [dict(m) for m in messages] if messages else None,
        "passed": bool(passed),
        "checks": check_dicts,
        "response": response.to_dict() if response is not None else None,
        "error": _error_dict(error),
        "provider": None,
        "latency_ms": None,
        "ttft_ms": None,
        "tokens_per_s": None,
        "attempts": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
        "cost_usd": None,
        "cache_hit": False,
        "saved_cost_usd": None,
        "race": None,
        "time": time.time(),
    }
    if response is not None:
        meta = response.harness
        usage = response.usage
        record.update(
            provider=meta.provider,
            latency_ms=round(meta.latency_ms, 3),
            attempts=meta.attempts,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cost_usd=meta.cost_usd,
            race=meta.race.to_dict() if meta.race else None,
            flags=list(meta.flags),
            cache_hit=meta.replayed,
            saved_cost_usd=meta.saved_cost_usd,
            ttft_ms=meta.ttft_ms,
            tokens_per_s=meta.tokens_per_s,
        )
    elif isinstance(error, HarnessError):
        record.update(provider=error.provider, attempts=error.attempts)
    return _without_keys(record)


def _without_keys(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every registered key replaced by ``***`` (an answer may echo one)."""
    if not knows_secrets():
        return record
    text = json.dumps(record, ensure_ascii=False, default=str)
    cleaned = redact_known(text)
    return record if cleaned == text else dict(json.loads(cleaned))


def _error_dict(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    if isinstance(error, HarnessError):
        return error.to_dict()
    return {"type": type(error).__name__, "message": str(error)}


class JsonlWriter:
    """Appends records to a JSONL file, one line per record, handed to the OS as written.

    Thread-safe. Each line goes out in one ``os.write`` on a descriptor opened with
    ``O_APPEND``, so lines from several writers (threads, or processes sharing the file) never
    interleave, and a crash can tear at most the last line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self._lock = threading.Lock()
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: the writer is closed")
            view = memoryview(line)
            while view:  # one write in practice; a short write (a full disk) goes on
                view = view[os.write(self._fd, view) :]
            self.count += 1

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read records back; a torn (unparseable) last line is skipped, any other is an error."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break  # torn by a crash mid-write
            raise ValueError(f"{path}:{i + 1}: not a JSON record") from None
    return out
