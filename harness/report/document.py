"""The run document, ``results.json``: build, load, validate, merge.

A run document is the whole of a session in one JSON object::

    {"schema": "harness.results", "schema_version": 1,
     "run": {...header...}, "items": [...], "records": [...]}

``run`` says when, how and with what (never API keys); ``items`` has one entry per test
item with its outcome and pass rate; ``records`` has one entry per (item, model, repeat)
answer, the same objects that stream into ``results.jsonl``. See ``docs/results-schema.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from harness._version import __version__
from harness.results import ItemRecord, ResultRecord, RunDocument, RunHeader

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ResultsError",
    "build_document",
    "case_key",
    "config_hash",
    "load_document",
    "merge_documents",
    "model_entries",
    "write_document",
]

SCHEMA = "harness.results"
SCHEMA_VERSION = 1


class ResultsError(ValueError):
    """A results file that cannot be read as a run document (names the file and the field)."""


def case_key(record: Mapping[str, Any]) -> str:
    """The row of the comparison matrix a record belongs to.

    Suite records: ``<suite file>::<case id>``, and ``<suite file>::<case id>[<prompt>]``
    for a prompt variant, so two variants never merge. Python tests: the test id without
    the ``[model]`` parameter, so one test run for several models lands on one row.
    """
    if record.get("suite") and record.get("case_id"):
        prompt = record.get("prompt")
        suffix = f"[{prompt}]" if prompt else ""
        return f"{record['suite']}::{record['case_id']}{suffix}"
    test_id = str(record.get("test_id", ""))
    model = record.get("model")
    prompt = record.get("prompt")
    variant = f"[{prompt}-{model}]"
    if prompt and model and test_id.endswith(variant):  # an item of a prompt variant
        return f"{test_id[: -len(variant)]}[{prompt}]"
    suffix = f"[{model}]"
    if model and test_id.endswith(suffix):
        return test_id[: -len(suffix)]
    return test_id


def config_hash(config: Any) -> str | None:
    """A short, stable hash of the model settings (keys excluded: they are never in config)."""
    models = model_entries(config)
    if not models:
        return None
    blob = json.dumps(models, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_entries(config: Any, names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The models of a ``HarnessConfig`` (its aliases plus ``names``) as plain data, no keys."""
    if config is None:
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    wanted = list(getattr(config, "models", {})) + [n for n in names if n]
    for name in wanted:
        if name in seen:
            continue
        seen.add(name)
        try:
            spec = config.resolve(name)
        except Exception:  # an unknown model string: record the name only
            out.append({"name": name})
            continue
        out.append(
            {
                "name": name,
                "model": spec.full_name,
                "provider": spec.provider,
                "api_base": spec.api_base,
                "params": dict(spec.params),
                "max_concurrency": spec.max_concurrency,
                "timeout": spec.timeout,
                "retries": spec.retries,
                "price": (
                    {
                        "input_per_mtok": spec.price.input_per_mtok,
                        "output_per_mtok": spec.price.output_per_mtok,
                        "cached_input_per_mtok": spec.price.cached_input_per_mtok,
                    }
                    if spec.price
                    else None
                ),
            }
        )
    return out


def build_document(
    records: Sequence[ResultRecord],
    items: Sequence[Mapping[str, Any]] = (),
    *,
    run: Mapping[str, Any] | None = None,
    history: Sequence[ResultRecord] = (),
    pairwise: Sequence[Mapping[str, Any]] = (),
) -> RunDocument:
    """Assemble a run document from records, item outcomes and a run header.

    ``history`` holds the records of superseded attempts (a rerun's earlier tries); they are
    kept for the record and never counted. ``pairwise`` holds head-to-head judgments
    (``harness.pairwise``).
    """
    header: RunHeader = {
        "started": None,
        "finished": time.time(),
        "duration_s": None,
        "command": list(sys.argv),
        "harness_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "config_hash": None,
        "models": [],
    }
    header.update(cast(RunHeader, run or {}))
    started, finished = header.get("started"), header.get("finished")
    if started and finished:
        header["duration_s"] = round(float(finished) - float(started), 3)
    document: RunDocument = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "run": header,
        "items": [cast(ItemRecord, dict(i)) for i in items],
        "records": _clean(records),
    }
    if history:
        document["history"] = _clean(history)
    if pairwise:
        document["pairwise"] = [
            {k: v for k, v in p.items() if k not in ("kind", "session")} for p in pairwise
        ]
    return document


def _clean(records: Iterable[Mapping[str, Any]]) -> list[ResultRecord]:
    """Records without the stream's ``kind`` and ``session``, each with its ``case``."""
    out = []
    for record in records:
        r = {k: v for k, v in record.items() if k not in ("kind", "session")}
        r.setdefault("case", case_key(r))
        out.append(cast(ResultRecord, r))
    return out


def write_document(document: RunDocument, path: str | os.PathLike[str]) -> Path:
    """Write the document as JSON (atomically: a temporary file, then a rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of its own: two sessions writing one report directory never share it.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    # One dumps call (the C encoder in one go) beats json.dump's many small writes ~1.7x.
    text = json.dumps(document, ensure_ascii=False, default=str, separators=(",", ":"))
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def load_document(path: str | os.PathLike[str]) -> RunDocument:
    """Read and check a ``results.json`` (also accepts a ``results.jsonl`` stream)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if p.suffix == ".jsonl":
        from harness.results import read_jsonl

        lines = read_jsonl(p)
        header = next((line for line in lines if line.get("kind") == "run"), {})
        records = [line for line in lines if line.get("kind") == "result"]
        history = [line for line in lines if line.get("kind") == "rerun"]
        run = {k: v for k, v in header.items() if k != "kind"}
        return build_document(
            cast(list[ResultRecord], records),
            _items_from_records(records),
            run=run,
            history=cast(list[ResultRecord], history),
            pairwise=[line for line in lines if line.get("kind") == "pairwise"],
        )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{p}: not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ResultsError(f'{p}: not a harness results file (no "schema": "{SCHEMA}")')
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(
            f"{p}: schema_version {version!r} is newer than this harness understands "
            f"({SCHEMA_VERSION}); upgrade harness"
        )
    for field in ("run", "items", "records"):
        expected = dict if field == "run" else list
        if not isinstance(data.get(field), expected):
            raise ResultsError(f"{p}: field {field!r} must be a {expected.__name__}")
    for i, record in enumerate(data["records"]):
        if not isinstance(record, dict) or "model" not in record or "test_id" not in record:
            raise ResultsError(f"{p}: records[{i}] needs at least 'test_id' and 'model'")
        record.setdefault("case", case_key(record))
    if not data["items"]:
        data["items"] = _items_from_records(data["records"])
    return cast(RunDocument, data)


def _items_from_records(records: Sequence[Mapping[str, Any]]) -> list[ItemRecord]:
    """Item outcomes rebuilt from records (for streams and hand-made files).

    One item per (test id, model): a Python test that called several models has one each.
    """
    by_item: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        by_item.setdefault((str(r["test_id"]), str(r["model"])), []).append(r)
    items: list[ItemRecord] = []
    for (test_id, _), recs in by_item.items():
        passes = sum(bool(r.get("passed")) for r in recs)
        item: ItemRecord = {
            "test_id": test_id,
            "model": recs[0]["model"],
            "outcome": "passed" if passes == len(recs) else "failed",
            "repeats": len(recs),
            "passes": passes,
            "pass_rate": passes / len(recs),
            "errored": all(r.get("error") for r in recs),
        }
        if recs[0].get("prompt"):
            item["prompt"] = str(recs[0]["prompt"])
        items.append(item)
    return items


def merge_documents(documents: Sequence[RunDocument]) -> RunDocument:
    """One run from several (sharded CI jobs); no record is lost.

    Every record of every input is kept. An item (a test id) that appears in more than one
    input — a shard run twice, or overlapping shards — is taken from the later input; the
    earlier copies' records move to ``history`` (marked ``"superseded": "merge"``) and the
    test ids are listed in ``run["merge_replaced"]`` for the caller to warn about.
    """
    if not documents:
        raise ResultsError("nothing to merge")
    by_item: dict[str, tuple[list[ResultRecord], list[ItemRecord]]] = {}
    history: list[ResultRecord] = []
    pairwise: dict[tuple[Any, ...], dict[str, Any]] = {}  # a later input's judgment wins
    replaced: list[str] = []
    models: dict[str, dict[str, Any]] = {}
    started: list[float] = []
    finished: list[float] = []
    for doc in documents:
        header = doc.get("run", {})
        if start := header.get("started"):
            started.append(float(start))
        if finish := header.get("finished"):
            finished.append(float(finish))
        for m in header.get("models", []):
            models.setdefault(m.get("name", ""), m)
        history.extend(r.copy() for r in doc.get("history", []))
        for p in doc.get("pairwise", []):
            key = (p.get("case"), p.get("prompt"), p.get("repeat"), tuple(p.get("models") or ()))
            pairwise[key] = dict(p)
        mine: dict[str, tuple[list[ResultRecord], list[ItemRecord]]] = {}
        for r in doc.get("records", []):
            mine.setdefault(str(r["test_id"]), ([], []))[0].append(r.copy())
        for i in doc.get("items", []):
            mine.setdefault(str(i["test_id"]), ([], []))[1].append(i.copy())
        for test_id, (records, items) in mine.items():
            earlier = by_item.pop(test_id, None)
            if earlier is not None:
                replaced.append(test_id)
                history.extend({**r, "superseded": "merge"} for r in earlier[0])
            by_item[test_id] = (records, items)
    first = documents[0].get("run", {})
    run: dict[str, Any] = {
        **first,
        "started": min(started) if started else None,
        "finished": max(finished) if finished else None,
        "models": list(models.values()),
        "merged_from": len(documents),
    }
    if replaced:
        run["merge_replaced"] = list(dict.fromkeys(replaced))
    records = [r for recs, _ in by_item.values() for r in recs]
    items = [i for recs, its in by_item.values() for i in (its or _items_from_records(recs))]
    return build_document(
        records, items, run=run, history=history, pairwise=list(pairwise.values())
    )
