"""Head-to-head comparison: a judge picks the better of two models' answers to each case.

This module owns the pairwise prompt (``PAIRWISE_SYSTEM_PROMPT``, ``DEFAULT_PAIRWISE_RUBRIC``,
``pairwise_messages``), the reading of the judge's verdict (``parse_verdict``), the judging
of a run's records (``judge_pairs``: each pair twice, the order swapped; a disagreement is a
tie), the ``pairwise`` records it makes (``PairwiseRecord``), and the head-to-head numbers
the reports show (``head_to_head``: wins, ties, losses, the win rate with its Wilson 95%
interval, per prompt and overall, and the cases where the models differ most). See
``docs/judges.md`` (the prompt) and ``docs/statistics.md`` (the interval).

It imports neither the runner nor httpx: the caller hands it a ``Harness``.
"""

# No ``from __future__ import annotations`` here: Python 3.11 reads ``NotRequired`` in a
# TypedDict only from evaluated annotations.
import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from harness.messages import last_user_text
from harness.providers.offline_judge import PAIRWISE_MARK

__all__ = [
    "DEFAULT_PAIRWISE_RUBRIC",
    "PAIRWISE_RUBRIC_VERSION",
    "PAIRWISE_SYSTEM_PROMPT",
    "PairSpec",
    "PairwiseRecord",
    "head_to_head",
    "judge_pairs",
    "pairwise_messages",
    "parse_verdict",
    "tally_text",
    "wilson_interval_fraction",
]

PAIRWISE_SYSTEM_PROMPT = (
    f"{PAIRWISE_MARK} You are given a rubric, the question an AI assistant "
    "was asked, possibly a reference answer, and two answers, A and B. Decide which answer "
    "better meets the rubric, or whether they are equally good. The order of the answers "
    "says nothing about their quality; do not let it, nor their length, sway you. Reply with "
    'a single JSON object and nothing else: {"winner": "A" | "B" | "tie", "reason": "<one '
    'or two sentences>"}.'
)
"""The system message of every pairwise judge call."""
DEFAULT_PAIRWISE_RUBRIC = (
    "Which answer better serves the user: it answers the question asked, correctly and "
    "completely, follows the question's instructions (format, length, audience), and says "
    "nothing false or unsupported. Prefer the more helpful answer, not the longer one."
)
"""The rubric ``compare:`` uses when it gives none (``pairwise@1``)."""
PAIRWISE_RUBRIC_VERSION = "pairwise@1"
"""The version of ``PAIRWISE_SYSTEM_PROMPT`` and ``DEFAULT_PAIRWISE_RUBRIC``."""
RETRY_PROMPT = (
    "Your reply could not be read. Reply again with only the JSON object "
    '{"winner": "A" | "B" | "tie", "reason": "..."} and nothing else.'
)
"""The follow-up turn sent once when the judge's first verdict cannot be read."""
ANSWER_CHARS = 500
"""The longest answer excerpt a pairwise record keeps."""


@dataclass(frozen=True, slots=True)
class PairSpec:
    """One head-to-head: two models, the rubric (``None``: the default) and the judge."""

    models: tuple[str, str]
    rubric: str | None = None
    judge: str | None = None
    """The judge model; ``None``: ``judge_model`` in the config, else the alias ``judge``."""


class VerdictRecord(TypedDict):
    """One of a pair's two judgments: the order shown and the model the judge preferred."""

    order: list[str]
    """The models as answers A and B."""
    winner: str | None
    """A model name or ``tie``; ``None`` when the judge call failed or was unreadable."""
    reason: str


class PairwiseRecord(TypedDict):
    """A ``pairwise`` record: one case's answers from two models, judged in both orders."""

    suite: str | None
    case: str
    case_id: str | None
    prompt: str | None
    """The record's prompt variant (its ``prompt`` field), when it has one."""
    repeat: int
    models: list[str]
    judge: str
    rubric: str
    version: str
    verdicts: list[VerdictRecord]
    winner: str | None
    """``models[0]``, ``models[1]`` or ``tie`` (the orders disagreed, or both said tie);
    ``None`` when a judgment failed (then ``error`` says why)."""
    answers: list[str]
    """Both answers, excerpted (``ANSWER_CHARS``), in the order of ``models``."""
    question: str | None
    error: NotRequired[str]


_VERDICT_RE = re.compile(r"\{")


def parse_verdict(text: str) -> tuple[str, str]:
    """Read ``(winner, reason)`` from a pairwise reply; ``winner`` is ``A``, ``B`` or ``tie``.

    Takes the first JSON object with a ``winner`` anywhere in the text; else a reply that is
    only ``A``, ``B`` or ``tie``. Raises ``ValueError`` saying why otherwise.
    """
    decoder = json.JSONDecoder()
    for m in _VERDICT_RE.finditer(text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "winner" in obj:
            winner = _winner(obj["winner"])
            reason = obj.get("reason")
            return winner, str(reason if reason is not None else "").strip()
    bare = text.strip().strip(".").strip()
    if bare.lower() in ("a", "b", "tie"):
        return _winner(bare), ""
    raise ValueError(
        'could not read a verdict from the judge\'s reply (expected JSON like {"winner": "A", '
        f'"reason": "..."}}); the judge said {_excerpt(text)}'
    )


def _winner(value: Any) -> str:
    text = str(value).strip()
    if text.upper() in ("A", "B"):
        return text.upper()
    if text.lower() == "tie":
        return "tie"
    raise ValueError(f"the judge's winner {value!r} is not A, B or tie")


def _excerpt(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def pairwise_messages(
    rubric: str, question: str | None, first: str, second: str, reference: str | None = None
) -> list[dict[str, Any]]:
    """The conversation a pairwise judge gets: the rubric, the case and answers A and B."""
    parts = [f"<rubric>\n{rubric}\n</rubric>"]
    if reference is not None:
        parts.append(f"<reference>\n{reference}\n</reference>")
    if question is not None:
        parts.append(f"<question>\n{question}\n</question>")
    parts.append(f"<answer_a>\n{first}\n</answer_a>")
    parts.append(f"<answer_b>\n{second}\n</answer_b>")
    parts.append('Which answer is better? Reply with {"winner": "A" | "B" | "tie", "reason": ...}.')
    return [
        {"role": "system", "content": PAIRWISE_SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _content(record: Mapping[str, Any]) -> str | None:
    """A record's answer text; ``None`` when it has none (an error, no choices)."""
    if record.get("error"):
        return None
    response = record.get("response")
    if not isinstance(response, Mapping):
        return None
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0], Mapping):
        return None
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else None


def _key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (record.get("suite"), record.get("case_id"), record.get("prompt"))


def _pairs(
    records: Sequence[Mapping[str, Any]], models: tuple[str, str]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Repeat 0 of each model for the same (suite, case, prompt), in record order."""
    firsts: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for record in records:
        if record.get("repeat", 0) != 0 or record.get("model") not in models:
            continue
        if not record.get("case_id"):
            continue
        firsts.setdefault(_key(record), {}).setdefault(str(record["model"]), record)
    return [(pair[models[0]], pair[models[1]]) for pair in firsts.values() if len(pair) == 2]


async def _ask(harness: Any, judge: str, messages: list[dict[str, Any]]) -> tuple[str, str]:
    """One judgment; one follow-up turn when the verdict cannot be read."""
    reply = await harness.acompletion(judge, messages, temperature=0)
    first = str(reply.content or "")
    try:
        return parse_verdict(first)
    except ValueError:
        pass
    follow_up = [
        *messages,
        {"role": "assistant", "content": first},
        {"role": "user", "content": RETRY_PROMPT},
    ]
    reply = await harness.acompletion(judge, follow_up, temperature=0)
    second = str(reply.content or "")
    try:
        return parse_verdict(second)
    except ValueError as exc:
        raise ValueError(f"{exc} (asked twice; first reply: {_excerpt(first)})") from None


async def _judge_one(
    harness: Any,
    spec: PairSpec,
    judge: str,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
) -> PairwiseRecord:
    first, second = spec.models
    answers = [_content(a), _content(b)]
    question = last_user_text(a.get("messages") or [])
    reference = (a.get("vars") or {}).get("reference")
    rubric = spec.rubric or DEFAULT_PAIRWISE_RUBRIC
    record: PairwiseRecord = {
        "suite": a.get("suite"),
        "case": str(a.get("case") or f"{a.get('suite')}::{a.get('case_id')}"),
        "case_id": a.get("case_id"),
        "prompt": a.get("prompt"),
        "repeat": 0,
        "models": [first, second],
        "judge": judge,
        "rubric": rubric,
        "version": PAIRWISE_RUBRIC_VERSION if spec.rubric is None else "custom",
        "verdicts": [],
        "winner": None,
        "answers": [_cut(t or "") for t in answers],
        "question": question,
    }
    if answers[0] is None or answers[1] is None:
        record["error"] = "a model has no answer for this case (its call failed)"
        return record
    ref = str(reference) if isinstance(reference, str | int | float) else None
    orders = ((first, second, answers[0], answers[1]), (second, first, answers[1], answers[0]))
    results = await asyncio.gather(
        *(
            _ask(harness, judge, pairwise_messages(rubric, question, x, y, ref))
            for _, _, x, y in orders
        ),
        return_exceptions=True,
    )
    errors: list[str] = []
    for (shown_a, shown_b, _, _), result in zip(orders, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"{type(result).__name__}: {result}")
            record["verdicts"].append({"order": [shown_a, shown_b], "winner": None, "reason": ""})
            continue
        letter, reason = result
        winner = {"A": shown_a, "B": shown_b}.get(letter, "tie")
        record["verdicts"].append(
            {"order": [shown_a, shown_b], "winner": winner, "reason": _cut(reason)}
        )
    if errors:
        record["error"] = "; ".join(errors)
        return record
    one, two = (v["winner"] for v in record["verdicts"])
    record["winner"] = one if one == two else "tie"
    return record


def _cut(text: str) -> str:
    return text if len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 1] + "…"


async def judge_pairs(
    harness: Any, records: Sequence[Mapping[str, Any]], spec: PairSpec, judge: str
) -> list[PairwiseRecord]:
    """Judge every case both models answered (repeat 0 of each), each in both orders.

    The calls go through ``harness`` (its response store, cost cap and limits) all at once;
    the harness's concurrency limits pace them. A failed or unreadable judgment leaves the
    record's ``winner`` ``None`` with an ``error``; it is not counted.
    """
    pairs = _pairs(records, spec.models)
    return list(await asyncio.gather(*(_judge_one(harness, spec, judge, a, b) for a, b in pairs)))


# --- the numbers -------------------------------------------------------------------------------


def _tally(records: Sequence[Mapping[str, Any]], first: str) -> dict[str, Any]:
    decided = [r for r in records if r.get("winner") is not None]
    wins = sum(r["winner"] == first for r in decided)
    ties = sum(r["winner"] == "tie" for r in decided)
    n = len(decided)
    losses = n - wins - ties
    share = wins + ties / 2
    low, high = wilson_interval_fraction(share, n)
    return {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "win_rate": share / n if n else None,
        "ci95": [low, high],
        "failed": len(records) - n,
    }


def wilson_interval_fraction(successes: float, total: int) -> tuple[float, float]:
    """Wilson's 95% interval for ``successes`` of ``total`` (a tie counts as half a success)."""
    if total <= 0:
        return 0.0, 1.0
    # harness.results.wilson_interval with a count that may end in .5.
    z = 1.959963984540054
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * ((p * (1 - p) / total + z * z / (4 * total * total)) ** 0.5) / denom
    # The interval holds p exactly; rounding could leave it a hair outside at 0 or 1.
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)


def head_to_head(pairwise: Sequence[Mapping[str, Any]], most: int = 10) -> list[dict[str, Any]]:
    """Per pair of models: overall and per-prompt tallies, and the cases they differ most on.

    Each entry: ``models`` [a, b], ``judge``, ``overall`` and ``prompts`` (prompt ->
    tally), each tally ``{n, wins, ties, losses, win_rate, ci95, failed}`` from ``a``'s side
    (win rate = (wins + ties / 2) / n, with Wilson's 95% interval on that count);
    ``differ``: up to ``most`` records whose two judgments both picked the same model.
    """
    by_pair: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in pairwise:
        models = record.get("models") or []
        if len(models) == 2:
            by_pair.setdefault((str(models[0]), str(models[1])), []).append(record)
    out: list[dict[str, Any]] = []
    for (first, second), records in by_pair.items():
        prompts: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            if record.get("prompt") is not None:
                prompts.setdefault(str(record["prompt"]), []).append(record)
        differ = [
            r
            for r in records
            if r.get("winner") not in (None, "tie")
            and all(v.get("winner") == r["winner"] for v in r.get("verdicts") or [])
        ]
        out.append(
            {
                "models": [first, second],
                "judge": records[0].get("judge"),
                "overall": _tally(records, first),
                "prompts": {p: _tally(rs, first) for p, rs in prompts.items()},
                "differ": differ[:most],
                "differ_total": len(differ),
            }
        )
    return out


def tally_text(pair: Mapping[str, Any]) -> str:
    """One line for a head-to-head (the terminal summary), from ``head_to_head``.

    ``head to head a vs b: won 3, tied 1, lost 1 of 5 (judge j); win rate 70% [30%–93%]``:
    a's wins, ties and losses against b and its win rate with the 95 % interval.
    """
    first, second = pair["models"]
    t = pair["overall"]
    if not t["n"]:
        return f"head to head {first} vs {second}: no case judged ({t['failed']} failed)"
    low, high = t["ci95"]
    failed = f"; {t['failed']} not judged" if t["failed"] else ""
    return (
        f"head to head {first} vs {second}: won {t['wins']}, tied {t['ties']}, lost "
        f"{t['losses']} of {t['n']} (judge {pair['judge']}); win rate {t['win_rate']:.0%} "
        f"[{low:.0%}–{high:.0%}]{failed}"
    )
