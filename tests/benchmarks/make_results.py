"""A synthetic run document (``results.json``) for report tests and benchmarks.

``make_results(n_records=10_000, models=3, seed=0)`` returns a valid run document (the shape
``harness.report.document.build_document`` makes) with:

* suite cases run once per model, some with repeats (3 by default) and a pass threshold;
* races: one record per race, for the winning model, with every contestant's outcome;
* failures (failed checks with details) and errors (a timeout, a 429, a 500) at per-model rates;
* short and long outputs (some well over the report's 4,000-character cut), unicode
  (CJK, emoji, right-to-left text, combining marks, U+2028/U+2029) and XSS payloads in
  outputs, vars and check details.

The same arguments always give the same document (a seeded ``random.Random``; times are
derived from a fixed epoch). Run as a script to write a ``results.json``::

    python tests/benchmarks/make_results.py -n 10000 --models 3 --seed 0 -o results.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from harness.report.document import build_document
from harness.results import wilson_interval

__all__ = ["XSS_PAYLOADS", "make_results"]

EPOCH = 1_790_000_000.0
MODEL_NAMES = ("careful", "quick", "parrot", "steady", "wobbly", "tiny")
XSS_PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "<!-- not a comment",
    "line\u2028separator and\u2029paragraph",
)
UNICODE_SNIPPETS = (
    "naïve café — “quoted” ‘text’",
    "日本語のテキストと中文字符",
    "emoji: 🚀🔥👩‍💻🇫🇷",
    "עברית ومرحبا بالعالم",
    "Zalgo: Z̷͙a̵͚l̶g̸o̴",
)
WORDS = (
    "refund billing account invoice error timeout latency model answer customer ticket "
    "feature request bug crash login password reset charge twice subscription plan "
    "upgrade downgrade export report summary translate classify extract json yaml"
).split()
LABELS = ("billing", "bug", "feature", "account")


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _text(rng: random.Random, long_fraction: float) -> str:
    """A model output: mostly short, sometimes long, sometimes unicode or an XSS payload."""
    roll = rng.random()
    if roll < long_fraction:
        lines = [_sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(40, 600))]
        return "\n".join(lines)
    if roll < long_fraction + 0.03:
        return f"{rng.choice(XSS_PAYLOADS)} {_sentence(rng, 4)}"
    if roll < long_fraction + 0.08:
        return f"{rng.choice(UNICODE_SNIPPETS)} {_sentence(rng, 3)}"
    if roll < 0.5:
        return rng.choice(LABELS)
    return "\n".join(_sentence(rng, rng.randint(5, 15)) for _ in range(rng.randint(1, 5)))


def _response(
    model: str, content: str, prompt_tokens: int, completion_tokens: int, created: int, index: int
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-synthetic-{index:08d}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(rng: random.Random, model: str) -> dict[str, Any]:
    kind = rng.choice(("timeout", "rate", "server"))
    if kind == "timeout":
        return {
            "type": "Timeout",
            "message": "no answer within 30.0 s",
            "status": None,
            "provider": "mock",
            "model": model,
        }
    if kind == "rate":
        return {
            "type": "RateLimitError",
            "message": "Rate limit reached for requests",
            "status": 429,
            "provider": "mock",
            "model": model,
            "retry_after": 2.0,
        }
    return {
        "type": "ServiceUnavailable",
        "message": "The server had an error <b>500</b>",
        "status": 500,
        "provider": "mock",
        "model": model,
    }


class _Builder:
    """Accumulates records for one synthetic run."""

    def __init__(
        self,
        rng: random.Random,
        models: list[str],
        long_fraction: float,
        fail_rates: dict[str, float],
        error_rate: float,
    ) -> None:
        self.rng = rng
        self.models = models
        self.long_fraction = long_fraction
        self.fail_rates = fail_rates
        self.error_rate = error_rate
        self.records: list[dict[str, Any]] = []

    def base(
        self,
        *,
        test_id: str,
        suite: str | None,
        case_id: str | None,
        model: str,
        repeat: int,
        shape: str,
        vars: dict[str, Any],
        messages: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "test_id": test_id,
            "suite": suite,
            "case_id": case_id,
            "model": model,
            "resolved_model": f"mock/{model}",
            "repeat": repeat,
            "shape": shape,
            "vars": vars,
            "messages": messages,
            "passed": False,
            "checks": [],
            "response": None,
            "error": None,
            "provider": "mock",
            "latency_ms": None,
            "ttft_ms": None,
            "attempts": 1,
            "prompt_tokens": None,
            "completion_tokens": None,
            "total_tokens": None,
            "cost_usd": None,
            "cache_hit": False,
            "saved_cost_usd": None,
            "race": None,
            "time": EPOCH + len(self.records) * 0.01,
            "flags": [],
        }

    def answer(
        self, record: dict[str, Any], *, model: str, expected: str, latency_ms: float | None = None
    ) -> None:
        """Fill a record with a successful answer or an error, and its checks."""
        rng = self.rng
        rank = self.models.index(model)
        record["latency_ms"] = round(
            latency_ms if latency_ms is not None else rng.lognormvariate(4.0 + 0.6 * rank, 0.5), 3
        )
        if rng.random() < 0.3:
            record["ttft_ms"] = round(record["latency_ms"] * rng.uniform(0.1, 0.5), 3)
        if rng.random() < self.error_rate:
            record["error"] = _error(rng, model)
            record["response"] = None
            record["attempts"] = rng.randint(1, 3)
            return
        passed = rng.random() >= self.fail_rates[model]
        content = expected if passed and rng.random() < 0.5 else _text(rng, self.long_fraction)
        if not passed and content == expected:
            content = f"not {expected}"
        prompt_tokens = rng.randint(20, 400)
        completion_tokens = max(1, len(content) // 4)
        record["response"] = _response(
            model, content, prompt_tokens, completion_tokens, int(record["time"]), len(self.records)
        )
        record["prompt_tokens"] = prompt_tokens
        record["completion_tokens"] = completion_tokens
        record["total_tokens"] = prompt_tokens + completion_tokens
        if rank % 3 != 2:  # the third model of each three has no price
            record["cost_usd"] = round((prompt_tokens * 2.5 + completion_tokens * 10.0) / 1e6, 9)
        if rng.random() < 0.05:  # replayed from the store: no spend now, the recorded cost saved
            record.update(cache_hit=True, saved_cost_usd=record["cost_usd"], cost_usd=None)
        record["checks"] = self.checks(content, expected, passed)
        record["passed"] = passed

    def checks(self, content: str, expected: str, passed: bool) -> list[dict[str, Any]]:
        rng = self.rng
        shown = content[:60]
        checks = [
            {"name": "not_empty", "passed": True, "score": None, "detail": "output is not empty"}
        ]
        if passed:
            checks.append(
                {
                    "name": "contains",
                    "passed": True,
                    "score": None,
                    "detail": f"output contains {expected!r}",
                }
            )
            return checks
        detail = f"output does not contain {expected!r}; output: {shown!r}"
        if rng.random() < 0.05:
            detail += " " + rng.choice(XSS_PAYLOADS)
        checks.append({"name": "contains", "passed": False, "score": None, "detail": detail})
        if rng.random() < 0.3:
            score = round(rng.uniform(0.0, 0.6), 3)
            checks.append(
                {
                    "name": "similar",
                    "passed": False,
                    "score": score,
                    "detail": f"similarity {score} < 0.8",
                }
            )
        return checks

    def suite_case(self, index: int, repeats: int) -> None:
        rng = self.rng
        suite = f"suites/synthetic_{index % 4}.yaml"
        case_id = f"case-{index:05d}"
        vars: dict[str, Any] = {"ticket": _sentence(rng, rng.randint(4, 12)), "n": index}
        roll = rng.random()
        if roll < 0.02:
            vars["note"] = rng.choice(XSS_PAYLOADS)
        elif roll < 0.05:
            vars["note"] = rng.choice(UNICODE_SNIPPETS)
        expected = rng.choice(LABELS)
        messages = [
            {"role": "system", "content": "You are a support classifier."},
            {
                "role": "user",
                "content": f"Classify this ticket: {vars['ticket']}"
                + (f" ({vars['note']})" if "note" in vars else ""),
            },
        ]
        for model in self.models:
            for repeat in range(repeats):
                record = self.base(
                    test_id=f"{suite}::{case_id}[{model}]",
                    suite=suite,
                    case_id=case_id,
                    model=model,
                    repeat=repeat,
                    shape="suite",
                    vars=vars,
                    messages=messages,
                )
                self.answer(record, model=model, expected=expected)
                self.records.append(record)

    def race_case(self, index: int) -> None:
        rng = self.rng
        messages = [{"role": "user", "content": f"Race {index}: {_sentence(rng, 6)}"}]
        latencies = {m: rng.lognormvariate(4.5, 0.6) for m in self.models}
        failed = {m for m in self.models if rng.random() < 0.1}
        ok = [m for m in self.models if m not in failed] or [self.models[0]]
        winner = min(ok, key=lambda m: latencies[m])
        contestants = []
        for m in self.models:
            if m == winner:
                contestants.append(
                    {
                        "model": m,
                        "outcome": "winner",
                        "latency_ms": round(latencies[m], 3),
                        "error": None,
                    }
                )
            elif m in failed:
                contestants.append(
                    {
                        "model": m,
                        "outcome": "failed",
                        "latency_ms": round(latencies[m] * 0.3, 3),
                        "error": "ServiceUnavailable: 503 from upstream",
                    }
                )
            elif rng.random() < 0.2:  # answered before it could be cancelled
                late = latencies[winner] + rng.uniform(0.1, 5.0)
                contestants.append(
                    {"model": m, "outcome": "finished", "latency_ms": round(late, 3), "error": None}
                )
            else:
                contestants.append(
                    {
                        "model": m,
                        "outcome": "cancelled",
                        "latency_ms": round(latencies[winner] + 0.2, 3),
                        "error": None,
                    }
                )
        record = self.base(
            test_id=f"tests/test_race.py::test_race_{index:05d}",
            suite=None,
            case_id=None,
            model=winner,
            repeat=0,
            shape="race",
            vars={},
            messages=messages,
        )
        saved = self.error_rate
        self.error_rate = 0.0  # a race record is the winner's answer
        self.answer(record, model=winner, expected=rng.choice(LABELS), latency_ms=latencies[winner])
        self.error_rate = saved
        record["race"] = {"winner": winner, "contestants": contestants}
        self.records.append(record)


def _items(records: list[dict[str, Any]], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    by_item: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        by_item.setdefault((r["test_id"], r["model"]), []).append(r)
    items = []
    for (test_id, model), recs in by_item.items():
        passes = sum(bool(r["passed"]) for r in recs)
        threshold = thresholds.get(test_id, 1.0)
        rate = passes / len(recs)
        lo, hi = wilson_interval(passes, len(recs))
        errored = all(r["error"] for r in recs)
        items.append(
            {
                "test_id": test_id,
                "model": model,
                "case": recs[0]["case"],
                "outcome": "passed" if rate >= threshold and not errored else "failed",
                "errored": errored,
                "duration_s": round(sum(r["latency_ms"] or 0 for r in recs) / 1e3, 4),
                "repeats": len(recs),
                "passes": passes,
                "pass_rate": rate,
                "threshold": threshold,
                "ci95": [lo, hi],
            }
        )
    return items


def make_results(
    n_records: int = 10_000,
    models: int | list[str] = 3,
    *,
    seed: int = 0,
    repeat_fraction: float = 0.2,
    repeats: int = 3,
    race_fraction: float = 0.05,
    long_fraction: float = 0.02,
    error_rate: float = 0.02,
) -> dict[str, Any]:
    """A deterministic synthetic run document of (about) ``n_records`` records.

    Args:
        n_records: how many records; the last case is cut short to hit it exactly.
        models: how many models (named from a fixed list) or the names themselves.
        seed: the random seed; the same arguments always give the same document.
        repeat_fraction: the share of suite cases run ``repeats`` times per model.
        repeats: the repeat count of those cases (their pass threshold is 2/3).
        race_fraction: the share of cases that are races (one record each).
        long_fraction: the share of outputs that are long (many lines, up to ~80 KB).
        error_rate: the share of non-race calls that end in an error.
    """
    names = list(models) if isinstance(models, list) else list(MODEL_NAMES[:models])
    rng = random.Random(seed)
    fail_rates = {m: min(0.9, 0.05 + 0.25 * i) for i, m in enumerate(names)}
    builder = _Builder(rng, names, long_fraction, fail_rates, error_rate)
    thresholds: dict[str, float] = {}
    index = 0
    while len(builder.records) < n_records:
        if rng.random() < race_fraction:
            builder.race_case(index)
        else:
            count = repeats if rng.random() < repeat_fraction else 1
            builder.suite_case(index, count)
            if count > 1:
                for m in names:
                    thresholds[f"suites/synthetic_{index % 4}.yaml::case-{index:05d}[{m}]"] = 2 / 3
        index += 1
    records = builder.records[:n_records]
    run = {
        "started": EPOCH,
        "finished": EPOCH + n_records * 0.01,
        "command": ["pytest", "suites/", "--harness-models", ",".join(names)],
        "harness_version": "0.1.0",
        "python": "3.11.7",
        "platform": "Linux-synthetic",
        "config_hash": f"{seed:016x}",
        "models": [{"name": m, "model": f"mock/{m}", "provider": "mock"} for m in names],
    }
    document = build_document(records, (), run=run)
    document["items"] = _items(document["records"], thresholds)
    return document


def main(argv: list[str] | None = None) -> int:
    """Write a synthetic ``results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--records", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default="results.json")
    args = parser.parse_args(argv)
    document = make_results(args.records, args.models, seed=args.seed)
    Path(args.output).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    print(
        f"wrote {args.output}: {len(document['records'])} records, {len(document['items'])} items",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
