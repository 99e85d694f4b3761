"""The offline judge: how a ``mock/`` model with no script answers harness's judge prompts.

A ``mock/`` model that has no scripted answer for a call (no ``mock_response``, no
``responses`` in its config) and is sent one of harness's judge conversations (its system
message opens with ``JUDGE_MARK`` or ``PAIRWISE_MARK``) answers as a judge would, in the
format the prompt asks for, instead of echoing. So ``[models.judge] model = "mock/judge"``
makes suites with ``llm_judge`` and ``compare:`` run with no network, deterministically.

The grading is a word-overlap heuristic, not a language model: the content words (three
letters or more, lower-cased, a plural ``s`` dropped, common words left out) of the answer
are compared with those of the section the rubric grades against:

* ``<reference>`` (factuality): the share of the reference's words the answer has;
* ``<context>`` (faithfulness): the share of the answer's words the context has;
* else ``<question>`` (relevance, g_eval, free-text rubrics): the share of the question's
  words the answer has; with no question, of the rubric's.

A 1-5 prompt (g_eval) gets ``1 + round(4 * share)``. Pairwise prompts score each answer
against the reference (else the question) the same way and pick the higher; when the two
are within ``TIE_MARGIN`` it picks answer A, a deliberate first-position bias (as real
judges have), which judging each pair in both orders turns into a tie. The reply is the
JSON object the prompt asks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.messages import last_user_text

__all__ = [
    "JUDGE_MARK",
    "PAIRWISE_MARK",
    "TIE_MARGIN",
    "is_judge_conversation",
    "judge_reply",
    "overlap",
]

JUDGE_MARK = "You are a strict, impartial grader."
"""How every harness grading prompt (``llm_judge``) opens its system message."""
PAIRWISE_MARK = "You are an impartial judge comparing two answers."
"""How every harness pairwise prompt (``compare:``) opens its system message."""
TIE_MARGIN = 0.05
"""Pairwise: scores closer than this are a close call, which goes to answer A."""

_WORD_RE = re.compile(r"[a-z0-9]+")
_SECTION_RE = re.compile(r"<([a-z_]+)>\n(.*?)\n</\1>", re.DOTALL)
_STOP = frozenset(
    "the and for are was were with that this from into over than then them they their there "
    "what which who whom whose when where why how you your yours our ours its his her hers "
    "not but all any can has have had does did doing done will would should could may might "
    "one two about also just only very more most some such each other out off too let lets "
    "use used using make made give gives given answer answers question say says said".split()
)


def _words(text: str) -> set[str]:
    out: set[str] = set()
    for word in _WORD_RE.findall(text.lower()):
        if len(word) < 3 or word in _STOP:
            continue
        out.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return out


def overlap(part: str, whole: str) -> float:
    """The share of ``whole``'s content words that ``part`` has (0 when ``whole`` has none)."""
    wanted = _words(whole)
    return len(wanted & _words(part)) / len(wanted) if wanted else 0.0


def _system(messages: Sequence[Mapping[str, Any]]) -> str:
    first = messages[0] if messages else {}
    content = first.get("content") if first.get("role") == "system" else None
    return content if isinstance(content, str) else ""


def is_judge_conversation(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``messages`` is one of harness's judge conversations (by its system message)."""
    system = _system(messages)
    return system.startswith((JUDGE_MARK, PAIRWISE_MARK))


def _sections(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The tagged sections of the judge prompt (the first user message)."""
    for message in messages:
        if message.get("role") == "user":
            text = last_user_text([dict(message)]) or ""
            return {m.group(1): m.group(2) for m in _SECTION_RE.finditer(text)}
    return {}


def _grade(answer: str, sections: Mapping[str, str]) -> tuple[float, str]:
    if "reference" in sections:
        share = overlap(answer, sections["reference"])
        return share, f"the answer has {share:.0%} of the reference's key words"
    if "context" in sections:
        share = overlap(sections["context"], answer)
        return share, f"{share:.0%} of the answer's key words are in the context"
    if "question" in sections:
        share = overlap(answer, sections["question"])
        return share, f"the answer has {share:.0%} of the question's key words"
    share = overlap(answer, sections.get("rubric", ""))
    return share, f"the answer has {share:.0%} of the rubric's key words"


def judge_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """The offline judge's answer to a judge conversation, as the JSON text it asks for."""
    sections = _sections(messages)
    if _system(messages).startswith(PAIRWISE_MARK):
        return _pairwise(sections)
    share, what = _grade(sections.get("answer", ""), sections)
    if "1 to 5" in _system(messages):
        score: float = 1 + round(4 * share)
        reason = f"offline judge: {what}, so {score:g} of 5"
    else:
        score = round(share, 2)
        reason = f"offline judge: {what}"
    return json.dumps({"score": score, "reason": reason})


def _pairwise(sections: Mapping[str, str]) -> str:
    basis = sections.get("reference") or sections.get("question") or ""
    a = overlap(sections.get("answer_a", ""), basis)
    b = overlap(sections.get("answer_b", ""), basis)
    # Close calls go to answer A: a first-position bias like real judges', on purpose, so
    # that judging each pair in both orders (harness.pairwise) has something to cancel.
    winner = "A" if a > b or abs(a - b) < TIE_MARGIN else "B"
    reason = f"offline judge: answer A has {a:.0%}, answer B {b:.0%} of the key words"
    return json.dumps({"winner": winner, "reason": reason})
