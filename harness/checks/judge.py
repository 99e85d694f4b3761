"""The ``llm_judge`` check: a judge model grades the output against a rubric.

This module owns ``llm_judge``, the conversation it sends (``JUDGE_SYSTEM_PROMPT``,
``judge_messages``), the rendering of its rubric, the reading of the judge's reply
(``parse_judge_reply``) and ``DEFAULT_JUDGE_MODEL``. It imports the runner (and so httpx)
only when a judge is called without a harness, so that importing the checks to validate a
suite stays cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.checks.core import (
    CheckContext,
    CheckSpecError,
    _cmp,
    _describe,
    _excerpt,
    _short,
    _Unevaluable,
    _Verdict,
)
from harness.checks.registry import _builtin, _fraction, _nonempty_text
from harness.messages import last_user_text

if TYPE_CHECKING:
    from harness.runner import Harness

DEFAULT_JUDGE_MODEL = "judge"
"""The model ``llm_judge`` asks when none is given: configure a ``judge`` alias."""
JUDGE_SYSTEM_PROMPT = (
    "You are a strict, impartial grader. You are given a rubric, possibly the question an AI "
    "assistant was asked, and the assistant's answer. Judge only whether the answer meets the "
    "rubric. Reply with a single JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"}. '
    "A score of 1 means the answer fully meets the rubric; 0 means it does not meet it at all."
)
"""The system message of every ``llm_judge`` call."""


def _render_rubric(rubric: str, variables: Mapping[str, Any]) -> str:
    """The rubric rendered as suite prompts are: jinja2's sandbox, bounded in size and time."""
    if "{{" not in rubric and "{%" not in rubric:
        return rubric
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    from harness.suites import render_template

    known = ", ".join(sorted(map(str, variables))) or "none"
    try:
        return render_template(rubric, variables)
    except SecurityError as exc:
        raise CheckSpecError(f"check 'llm_judge': unsafe rubric template: {exc}") from None
    except TemplateError as exc:
        raise CheckSpecError(
            f"check 'llm_judge': cannot render the rubric: {exc} (vars: {known})"
        ) from None
    except Exception as exc:  # the template's own operations (1 / 0, int('x'), ...)
        raise CheckSpecError(
            f"check 'llm_judge': cannot render the rubric: {type(exc).__name__}: {exc}"
        ) from None


def judge_messages(rubric: str, output: str, question: str | None) -> list[dict[str, Any]]:
    """The conversation ``llm_judge`` sends: the fixed grading prompt plus the case."""
    parts = [f"<rubric>\n{rubric}\n</rubric>"]
    if question is not None:
        parts.append(f"<question>\n{question}\n</question>")
    parts.append(f"<answer>\n{output}\n</answer>")
    parts.append('Grade the answer against the rubric. Reply with {"score": ..., "reason": ...}.')
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _judge_score(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        number = float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise _Unevaluable(f"the judge's score {value!r} is not a number from 0 to 1")
    return number


def parse_judge_reply(text: str) -> tuple[float, str]:
    """Read ``(score, reason)`` from a judge's reply.

    Takes the first JSON object with a ``score`` anywhere in the text (prose and code fences
    around it are fine); else the whole reply as a bare number. Raises ``ValueError`` (with a
    message saying why) when neither is there or the score is not in [0, 1].
    """
    try:
        return _read_judge_reply(text)
    except _Unevaluable as exc:
        raise ValueError(exc.detail) from None


def _read_judge_reply(text: str) -> tuple[float, str]:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            reason = obj.get("reason", "")
            return _judge_score(obj["score"]), str(reason if reason is not None else "").strip()
    bare = text.strip().rstrip(".")
    if _NUMBER_RE.fullmatch(bare):
        return _judge_score(bare), ""
    raise _Unevaluable(
        'could not read a score from the judge\'s reply (expected JSON like {"score": 0.8, '
        f'"reason": "..."}} or a bare number); the judge said {_excerpt(text)}'
    )


@_builtin(
    "llm_judge",
    kinds={"rubric": _nonempty_text, "model": _nonempty_text, "threshold": _fraction},
    example="llm_judge: {rubric: 'Is the answer polite?', model: judge, threshold: 0.7}",
)
def llm_judge(
    ctx: CheckContext,
    /,
    rubric: str,
    model: str = DEFAULT_JUDGE_MODEL,
    threshold: float = 0.5,
    harness: Harness | None = None,
    vars: Mapping[str, Any] | None = None,
    **judge_params: Any,
) -> _Verdict:
    """A judge model grades the output against ``rubric``; passes at ``threshold`` or more.

    YAML: ``llm_judge: {rubric: "Is the answer polite?", model: judge, threshold: 0.7}``.

    The judge gets ``JUDGE_SYSTEM_PROMPT``, the rubric (a jinja2 template over ``vars``),
    the last user message of the case (when known) and the output, and is asked for
    ``{"score": 0..1, "reason": "..."}`` (see ``parse_judge_reply``). The result's score is
    the judge's; the detail carries its reason. A failed judge call, or a reply without a
    score, is a failed check naming the problem (never an exception).

    Args:
        ctx: the answer.
        rubric: what a good answer does.
        model: the judge model (alias or ``provider/name``); default the alias ``judge``.
        threshold: the least passing score.
        harness: the harness to call through; default the context's, else the default one.
        vars: variables for the rubric; default the context's.
        judge_params: passed to ``Harness.completion`` (``temperature``, ``mock_response``,
            ``num_retries``, ...).

    Raises:
        CheckSpecError: the rubric uses an undefined variable.
    """
    text = _render_rubric(rubric, ctx.vars if vars is None else vars)
    messages = judge_messages(text, ctx.output, last_user_text(ctx.messages))
    via = harness or ctx.harness
    if via is None:
        from harness.runner import get_default_harness  # the runner: only when judging

        via = get_default_harness()
    try:
        reply = via.completion(model, messages, **judge_params)
    except Exception as exc:
        raise _Unevaluable(f"the judge call to {model!r} failed: {_describe(exc)}") from exc
    score, reason = _read_judge_reply(reply.content or "")
    passed = score >= threshold
    reason = reason if len(reason) <= 500 else reason[:499] + "…"
    return _Verdict(
        passed,
        f"judge {model!r} scored {score:g} ({_cmp(passed)} threshold {threshold:g}) on "
        f"{_short(text)}: {reason or '(no reason given)'}",
        score,
    )
