"""Result records, the crash-safe JSONL stream, and the statistics the reports show.

A *record* is one plain-data dict per (test item, model, repeat): what was asked, what came
back (the ``ModelResponse`` or the error), each check, and the numbers (latency, tokens,
cost, attempts). Records are JSON-able so they survive pytest-xdist and land in
``results.jsonl`` as they arrive, one line each; ``read_jsonl`` reads them back, tolerating a
torn last line after a crash.

``ResultRecord`` (with ``CheckRecord``, ``ErrorRecord``, ``RaceRecord`` and
``ContestantRecord``), ``ItemRecord``, ``RunHeader`` and ``RunDocument`` type that data as
``docs/results-schema.md`` describes it. A record read back from a file written before a
field existed lacks it, so readers use ``.get`` for every field added since.

``wilson_interval`` and ``percentile`` are the statistics the summaries use
(``harness.report.summary`` builds the per-model numbers).
"""

# No ``from __future__ import annotations`` here: Python 3.11 reads ``NotRequired`` in a
# TypedDict only from evaluated annotations (``ResultRecord.__optional_keys__`` is right).
import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from harness.errors import HarnessError, knows_secrets, redact_known
from harness.types import ModelResponse

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "CheckRecord",
    "ContestantRecord",
    "ErrorRecord",
    "ItemRecord",
    "JsonlWriter",
    "RaceRecord",
    "ResultRecord",
    "RunDocument",
    "RunHeader",
    "make_record",
    "percentile",
    "read_jsonl",
    "wilson_interval",
]

RESULTS_SCHEMA_VERSION = 1


class CheckRecord(TypedDict):
    """One check of a record: ``{name, passed, score, detail}`` (and a judge's ``judge``)."""

    name: str
    passed: bool
    score: float | None
    detail: str
    judge: NotRequired[dict[str, Any]]
    """A judge check's judgment: ``{model, score, reason, rubric, version}`` (see
    ``harness.checks.CheckResult.judge``)."""


class ErrorRecord(TypedDict):
    """A record's error; one that is not a ``HarnessError`` has ``type`` and ``message`` only."""

    type: str
    message: str
    provider: NotRequired[str | None]
    model: NotRequired[str | None]
    status: NotRequired[int | None]
    body: NotRequired[str | None]
    retry_after: NotRequired[float | None]
    request_id: NotRequired[str | None]
    attempts: NotRequired[int | None]
    errors: NotRequired[dict[str, Any]]
    """``AllModelsFailed`` (every model of a race failed): each model's error, by model."""


class ContestantRecord(TypedDict):
    """One model's part in a race (``race.contestants``), in the order the models were raced."""

    model: str
    outcome: str
    """``winner``, ``finished``, ``cancelled`` or ``failed``."""
    latency_ms: float
    error: str | None
    ttft_ms: NotRequired[float | None]
    first_byte: NotRequired[bool | None]
    prompt_tokens: NotRequired[int | None]
    completion_tokens: NotRequired[int | None]
    cost_usd: NotRequired[float | None]


class RaceRecord(TypedDict):
    """A race, on the record of its winner."""

    winner: str
    contestants: list[ContestantRecord]


class ResultRecord(TypedDict):
    """One answer (item × model × repeat): a line of ``results.jsonl``, an entry of ``records``.

    ``case`` is added when the run document is built; ``attempt`` marks a rerun's records,
    ``flags`` comes with a response and ``superseded`` marks a record ``harness merge`` moved
    to ``history``.
    """

    test_id: str
    case: NotRequired[str]
    model: str
    suite: str | None
    case_id: str | None
    resolved_model: str | None
    prompt: NotRequired[str | None]
    """The suite's prompt variant (``prompts:``); absent for a suite with one prompt."""
    repeat: int
    attempt: NotRequired[int]
    shape: str
    """``suite``, ``batch``, ``race``, ``all`` or ``completion``."""
    vars: dict[str, Any]
    messages: list[dict[str, Any]] | None
    passed: bool
    checks: list[CheckRecord]
    response: dict[str, Any] | None
    """The OpenAI ``chat.completion``."""
    error: ErrorRecord | None
    provider: str | None
    latency_ms: float | None
    ttft_ms: float | None
    tokens_per_s: float | None
    attempts: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    cache_hit: bool
    saved_cost_usd: float | None
    race: RaceRecord | None
    flags: NotRequired[list[str]]
    time: float
    superseded: NotRequired[str]


class ItemRecord(TypedDict):
    """One test item (a case × model, or a Python test): an entry of ``items``."""

    test_id: str
    model: str
    """The model (alias); a test that called several has one item per model that answered."""
    case: NotRequired[str]
    prompt: NotRequired[str]
    """The suite's prompt variant, when it has ``prompts:``."""
    outcome: str
    """``passed`` or ``failed``."""
    errored: bool
    duration_s: NotRequired[float]
    repeats: NotRequired[int]
    passes: NotRequired[int]
    pass_rate: NotRequired[float]
    threshold: NotRequired[float]
    ci95: NotRequired[list[float]]
    reruns: NotRequired[int]
    max_repeats: NotRequired[int]
    stopped: NotRequired[str]
    """``curtailed``, ``confident`` or ``max``."""
    confidence: NotRequired[float]


class RunHeader(TypedDict, total=False):
    """The run document's ``run``: when, how and with what (never API keys)."""

    started: float | None
    finished: float | None
    duration_s: float | None
    command: list[str]
    args: list[str]
    harness_version: str
    python: str
    platform: str
    config_hash: str | None
    models: list[dict[str, Any]]
    merged_from: int
    merge_replaced: list[str]
    gate: str
    session: str


class RunDocument(TypedDict):
    """``results.json``: the whole of a session (``schema_version`` 1)."""

    schema: str
    schema_version: int
    run: RunHeader
    items: list[ItemRecord]
    records: list[ResultRecord]
    history: NotRequired[list[ResultRecord]]
    pairwise: NotRequired[list[dict[str, Any]]]
    """Head-to-head judgments (``harness.pairwise.PairwiseRecord``), when the run compared."""


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
    prompt: str | None = None,
) -> ResultRecord:
    """One JSON-able record of a model answer (or error) and its checks.

    ``passed`` defaults to: the call succeeded and every check passed. ``prompt`` (a suite's
    prompt variant id) is recorded only when given.
    """
    check_dicts = [
        cast(CheckRecord, c.to_dict() if hasattr(c, "to_dict") else dict(c)) for c in checks
    ]
    response = result if isinstance(result, ModelResponse) else None
    error = result if isinstance(result, BaseException) else None
    if passed is None:
        passed = response is not None and all(c.get("passed") for c in check_dicts)
    record: ResultRecord = {
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
    if prompt is not None:
        record["prompt"] = prompt
    if response is not None:
        meta = response.harness
        usage = response.usage
        record.update(
            {
                "provider": meta.provider,
                "latency_ms": round(meta.latency_ms, 3),
                "attempts": meta.attempts,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "cost_usd": meta.cost_usd,
                "race": cast(RaceRecord, meta.race.to_dict()) if meta.race else None,
                "flags": list(meta.flags),
                "cache_hit": meta.replayed,
                "saved_cost_usd": meta.saved_cost_usd,
                "ttft_ms": meta.ttft_ms,
                "tokens_per_s": meta.tokens_per_s,
            }
        )
    elif isinstance(error, HarnessError):
        record.update({"provider": error.provider, "attempts": error.attempts})
    return _without_keys(record)


def _without_keys(record: ResultRecord) -> ResultRecord:
    """The record with every registered key replaced by ``***`` (an answer may echo one)."""
    if not knows_secrets():
        return record
    text = json.dumps(record, ensure_ascii=False, default=str)
    cleaned = redact_known(text)
    return record if cleaned == text else cast(ResultRecord, json.loads(cleaned))


def _error_dict(error: BaseException | None) -> ErrorRecord | None:
    if error is None:
        return None
    if isinstance(error, HarnessError):
        return cast(ErrorRecord, error.to_dict())
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
