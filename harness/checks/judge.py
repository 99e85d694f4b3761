"""The ``llm_judge`` check: a judge model grades the output against a rubric.

This module owns ``llm_judge``, its built-in rubrics (``RUBRICS``: ``factuality``,
``relevance``, ``faithfulness``, ``g_eval``, each a versioned ``Rubric``), the conversation it
sends (``JUDGE_SYSTEM_PROMPT``, ``judge_messages``), the reading of the judge's reply
(``parse_judge_reply``, one follow-up turn when it cannot be read), which judge model is
asked (``judge_model_for``: the check's ``model``, else ``judge_model`` in the config, else
the alias ``judge``) and ``judge_config_problem`` (the suite loader's check that a built-in
rubric has its inputs). The prompts are documented in ``docs/judges.md``. It imports the
runner (and so httpx) only when a judge is called without a harness, so that importing the
checks to validate a suite stays cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
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
from harness.checks.registry import _builtin, _fraction, _nonempty_text, _texts
from harness.messages import last_user_text
from harness.providers.offline_judge import JUDGE_MARK

if TYPE_CHECKING:
    from harness.runner import Harness

DEFAULT_JUDGE_MODEL = "judge"
"""The alias ``llm_judge`` asks when neither the check nor ``judge_model`` names a model."""
NO_JUDGE_MODEL = (
    'no judge model is configured: add a [models.judge] table (e.g. model = "openai/gpt-4o", '
    'or model = "mock/judge" for the offline judge) or set judge_model = "<alias or '
    'provider/name>" at the top level of the harness config (harness.toml or '
    "[tool.harness]), or give the check a 'model:'"
)
"""The message when no judge model resolves (at collection, or as the check's failure)."""
JUDGE_SYSTEM_PROMPT = (
    f"{JUDGE_MARK} You are given a rubric, possibly the question an AI "
    "assistant was asked, and the assistant's answer. Judge only whether the answer meets the "
    "rubric. Reply with a single JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"}. '
    "A score of 1 means the answer fully meets the rubric; 0 means it does not meet it at all."
)
"""The system message of every ``llm_judge`` call scored 0-1 (free-text rubrics and the
built-in ``factuality``, ``relevance`` and ``faithfulness``)."""
JUDGE_SYSTEM_PROMPT_1_TO_5 = (
    f"{JUDGE_MARK} You are given evaluation criteria, possibly evaluation "
    "steps, the question an AI assistant was asked and the assistant's answer. Follow the "
    "steps and rate how well the answer meets the criteria on a scale of 1 to 5 "
    "(1: not at all, 2: poorly, 3: partly, 4: mostly, 5: fully). Reply with a single JSON "
    'object and nothing else: {"score": <an integer from 1 to 5>, "reason": "<one or two '
    'sentences>"}.'
)
"""The system message of ``g_eval`` (G-Eval: criteria and steps, scored 1-5)."""
RETRY_PROMPT = (
    "Your reply could not be read. Reply again with only the JSON object "
    '{"score": ..., "reason": "..."} and nothing else.'
)
"""The follow-up turn sent once when the judge's first reply has no readable score."""


@dataclass(frozen=True, slots=True)
class Rubric:
    """A built-in judge rubric: a versioned prompt, what it needs, and its scale."""

    name: str
    version: int
    """Bumped whenever the prompt's wording changes (records keep ``name@version``)."""
    text: str
    """The rubric shown to the judge (in ``<rubric>``)."""
    needs: tuple[str, ...] = ()
    """The inputs it shows the judge besides the answer: ``reference``, ``context``,
    ``question``, ``criteria`` (and ``steps``, optional)."""
    scale: tuple[int, int] = (0, 1)
    """The judge's score range; a 1-5 score ``s`` is normalised to ``(s - 1) / 4``."""

    @property
    def id(self) -> str:
        """``name@version``, e.g. ``factuality@1``."""
        return f"{self.name}@{self.version}"

    @property
    def system(self) -> str:
        """The system message for this rubric's scale."""
        return JUDGE_SYSTEM_PROMPT if self.scale == (0, 1) else JUDGE_SYSTEM_PROMPT_1_TO_5


FACTUALITY = Rubric(
    "factuality",
    1,
    "The answer is factually consistent with the reference answer: it states the reference's "
    "key facts and nothing that contradicts them. Wording, style and extra detail that does "
    "not contradict the reference do not matter. Score 1 when every key fact of the reference "
    "is there and nothing contradicts it; 0 when the answer contradicts the reference or "
    "misses its point; in between, the share of the reference's key facts it gets right.",
    needs=("reference", "question"),
)
"""``factuality@1``: the answer against a reference answer (the ``reference`` var)."""
RELEVANCE = Rubric(
    "relevance",
    1,
    "The answer addresses the question that was asked: it responds to what the user asked "
    "for, stays on topic and does not evade or pad. Whether it is correct is not judged. "
    "Score 1 when it answers exactly what was asked; 0 when it is off topic or a non-answer; "
    "in between when it is partly on topic or answers only part of the question.",
    needs=("question",),
)
"""``relevance@1``: the answer against the question asked (the last user message)."""
FAITHFULNESS = Rubric(
    "faithfulness",
    1,
    "Every claim in the answer is supported by the context. The answer may leave parts of the "
    "context out, but must not state facts the context does not give, nor contradict it. "
    "Score 1 when every claim is supported by the context; 0 when its main claims are "
    "unsupported or contradicted; in between, the share of its claims the context supports.",
    needs=("context", "question"),
)
"""``faithfulness@1``: the answer supported by retrieved text (the ``context`` var; RAG)."""
G_EVAL = Rubric(
    "g_eval",
    1,
    "Rate the answer against the criteria below, following the evaluation steps if given.",
    needs=("criteria", "steps", "question"),
    scale=(1, 5),
)
"""``g_eval@1``: G-Eval, your ``criteria`` (and ``steps``) scored 1-5, normalised to 0-1."""
RUBRICS: Mapping[str, Rubric] = MappingProxyType(
    {r.name: r for r in (FACTUALITY, RELEVANCE, FAITHFULNESS, G_EVAL)}
)
"""The built-in rubrics by name (``llm_judge: {template: <name>}``)."""


class JudgeModelError(LookupError):
    """No judge model is configured (the message says how to configure one)."""


def judge_model_for(harness: Any, model: str | None = None) -> str:
    """The judge model to ask: ``model``, else ``judge_model`` in the config, else ``judge``.

    Raises:
        JudgeModelError: none of them is there (``NO_JUDGE_MODEL``).
    """
    if model:
        return model
    config = getattr(harness, "config", None)
    if config is None:  # a stand-in harness without a config: the conventional alias
        return DEFAULT_JUDGE_MODEL
    configured = getattr(config, "judge_model", None)
    if configured:
        return str(configured)
    if DEFAULT_JUDGE_MODEL in getattr(config, "models", {}):
        return DEFAULT_JUDGE_MODEL
    raise JudgeModelError(NO_JUDGE_MODEL)


def _template_inputs(arguments: Mapping[str, Any]) -> Rubric | None:
    name = arguments.get("template")
    return None if name is None else RUBRICS[name]


def _combined(label: str, arguments: Mapping[str, Any]) -> None:
    """The arguments of ``llm_judge`` together: a rubric or a template, and what each needs."""
    if arguments.get("rubric") is not None and arguments.get("template") is not None:
        raise CheckSpecError(
            f"check {label!r}: give either 'rubric' (your own text) or 'template' (a built-in "
            f"rubric: {', '.join(RUBRICS)}), not both"
        )
    rubric = _template_inputs(arguments)
    for name in ("reference", "context", "criteria", "steps"):
        if arguments.get(name) is not None and (rubric is None or name not in rubric.needs):
            uses = [r.name for r in RUBRICS.values() if name in r.needs]
            raise CheckSpecError(
                f"check {label!r}: {name!r} is only used by template {' / '.join(uses)}"
            )
    if rubric is G_EVAL and arguments.get("criteria") is None:
        raise CheckSpecError(
            f"check {label!r}: template 'g_eval' needs 'criteria' (what a good answer does), "
            "e.g. llm_judge: {template: g_eval, criteria: 'The summary is short and keeps the "
            "key fact', steps: ['List the key facts', 'Check each is kept']}"
        )


def judge_config_problem(spec: object, variables: Mapping[str, Any]) -> str | None:
    """What a valid ``assert:`` entry lacks for this case's ``variables`` (``None``: nothing).

    A built-in rubric's ``reference`` (factuality) or ``context`` (faithfulness) defaults to
    the case variable of that name; the suite loader calls this for each case so that a
    missing one is an error at load, naming the case.
    """
    if not isinstance(spec, Mapping) or len(spec) != 1:
        return None
    ((key, arg),) = spec.items()
    if str(key).removeprefix("not-") != "llm_judge" or not isinstance(arg, Mapping):
        return None
    rubric = RUBRICS.get(str(arg.get("template")))
    if rubric is None:
        return None
    for name in ("reference", "context"):
        if name in rubric.needs and arg.get(name) is None and variables.get(name) is None:
            return (
                f"check 'llm_judge': template {rubric.name!r} needs a {name}: give "
                f"'{name}: ...' in the check or a case variable {name!r}"
            )
    return None


def _template_name(label: str, param: str, value: Any) -> str:
    """One of the built-in rubrics: factuality, relevance, faithfulness, g_eval."""
    if isinstance(value, str) and value in RUBRICS:
        return value
    raise CheckSpecError(_template_name_error(value))


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


def judge_messages(
    rubric: str,
    output: str,
    question: str | None,
    *,
    inputs: Mapping[str, Any] | None = None,
    system: str = JUDGE_SYSTEM_PROMPT,
) -> list[dict[str, Any]]:
    """The conversation ``llm_judge`` sends: the fixed grading prompt plus the case.

    ``inputs`` are a built-in rubric's sections (``criteria``, ``steps``, ``reference``,
    ``context``), shown between the rubric and the question, in that order.
    """
    parts = [f"<rubric>\n{rubric}\n</rubric>"]
    extra = inputs or {}
    for name in ("criteria", "steps", "reference", "context"):
        value = extra.get(name)
        if value is None:
            continue
        if name == "steps":
            value = "\n".join(f"{i}. {step}" for i, step in enumerate(value, start=1))
        parts.append(f"<{name}>\n{value}\n</{name}>")
    if question is not None:
        parts.append(f"<question>\n{question}\n</question>")
    parts.append(f"<answer>\n{output}\n</answer>")
    parts.append('Grade the answer against the rubric. Reply with {"score": ..., "reason": ...}.')
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _judge_score(value: Any, scale: tuple[int, int] = (0, 1)) -> float:
    low, high = scale
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        number = float(value)
    if number is None or not low <= number <= high:
        raise _Unevaluable(f"the judge's score {value!r} is not a number from {low} to {high}")
    return number


def parse_judge_reply(text: str, scale: tuple[int, int] = (0, 1)) -> tuple[float, str]:
    """Read ``(score, reason)`` from a judge's reply; the score as given, on ``scale``.

    Takes the first JSON object with a ``score`` anywhere in the text (prose and code fences
    around it are fine); else the whole reply as a bare number. Raises ``ValueError`` (with a
    message saying why) when neither is there or the score is outside ``scale``.
    """
    try:
        return _read_judge_reply(text, scale)
    except _Unevaluable as exc:
        raise ValueError(exc.detail) from None


def _read_judge_reply(text: str, scale: tuple[int, int] = (0, 1)) -> tuple[float, str]:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            reason = obj.get("reason", "")
            score = _judge_score(obj["score"], scale)
            return score, str(reason if reason is not None else "").strip()
    bare = text.strip().rstrip(".")
    if _NUMBER_RE.fullmatch(bare):
        return _judge_score(bare, scale), ""
    raise _Unevaluable(
        'could not read a score from the judge\'s reply (expected JSON like {"score": 0.8, '
        f'"reason": "..."}} or a bare number); the judge said {_excerpt(text)}'
    )


@_builtin(
    "llm_judge",
    kinds={
        "rubric": _nonempty_text,
        "model": _nonempty_text,
        "threshold": _fraction,
        "template": _template_name,
        "reference": _nonempty_text,
        "context": _nonempty_text,
        "criteria": _nonempty_text,
        "steps": _texts,
    },
    one_of=("rubric", "template"),
    example="llm_judge: {rubric: 'Is the answer polite?', model: judge, threshold: 0.7}",
    combined=_combined,
)
def llm_judge(
    ctx: CheckContext,
    /,
    rubric: str | None = None,
    model: str | None = None,
    threshold: float = 0.5,
    template: str | None = None,
    reference: str | None = None,
    context: str | None = None,
    criteria: str | None = None,
    steps: list[str] | None = None,
    harness: Harness | None = None,
    vars: Mapping[str, Any] | None = None,
    **judge_params: Any,
) -> _Verdict:
    """A judge grades the output on ``rubric`` or a built-in ``template``; passes at ``threshold``.

    YAML: ``llm_judge: {rubric: "Is the answer polite?", model: judge, threshold: 0.7}``.

    Built-in rubrics (``RUBRICS``; the prompts are in ``docs/judges.md``):
    ``llm_judge: {template: factuality}`` (against ``reference``), ``relevance``,
    ``faithfulness`` (to ``context``), ``g_eval`` (``criteria``, ``steps``; scored 1-5).

    The judge gets the rubric's system prompt, the rubric (a jinja2 template over ``vars``)
    or the built-in one with its inputs, the last user message of the case (when known) and
    the output, and is asked for ``{"score": ..., "reason": "..."}`` (see
    ``parse_judge_reply``); a 1-5 score (``g_eval``) is normalised to ``(s - 1) / 4``. A
    reply without a readable score gets one follow-up turn asking for the JSON only. The
    result's score is the judge's; the detail carries its reason, and ``judge`` the model,
    score, reason, rubric and version. A failed judge call, or a reply that still has no
    score, is a failed check naming the problem (never an exception).

    Args:
        ctx: the answer.
        rubric: what a good answer does (your own text); or use ``template``.
        model: the judge model (alias or ``provider/name``); default ``judge_model`` in the
            config, else the alias ``judge``.
        threshold: the least passing score (0-1, after normalising).
        template: a built-in rubric: ``factuality``, ``relevance``, ``faithfulness``,
            ``g_eval``.
        reference: factuality's reference answer; default the case variable ``reference``.
        context: faithfulness's context; default the case variable ``context``.
        criteria: g_eval's criteria.
        steps: g_eval's evaluation steps (optional).
        harness: the harness to call through; default the context's, else the default one.
        vars: variables for the rubric; default the context's.
        judge_params: passed to ``Harness.completion`` (``temperature`` (default 0),
            ``mock_response``, ``num_retries``, ...).

    Raises:
        CheckSpecError: the rubric uses an undefined variable, or is missing.
    """
    variables = ctx.vars if vars is None else vars
    question = last_user_text(ctx.messages)
    inputs: dict[str, Any] = {}
    built_in = None
    if template is not None:
        built_in = RUBRICS.get(template)
        if built_in is None:
            raise CheckSpecError(_template_name_error(template))
        text = built_in.text
        given = {"reference": reference, "context": context, "criteria": criteria}
        for name in ("reference", "context", "criteria"):
            if name not in built_in.needs:
                continue
            if given[name] is not None:  # the check's own text: a template over the vars
                inputs[name] = _render_rubric(str(given[name]), variables)
            elif variables.get(name) is not None:  # a case var: data, shown as it is
                inputs[name] = str(variables[name])
            else:
                raise _Unevaluable(
                    f"template {built_in.name!r} needs a {name}: give '{name}: ...' in the "
                    f"check or a case variable {name!r}"
                )
        if steps:
            inputs["steps"] = [_render_rubric(step, variables) for step in steps]
        if built_in is RELEVANCE and question is None:
            raise _Unevaluable("template 'relevance' needs the question: no user message")
    elif rubric is not None:
        text = _render_rubric(rubric, variables)
    else:
        raise CheckSpecError("check 'llm_judge' needs 'rubric' or 'template'")
    via = harness or ctx.harness
    if via is None:
        from harness.runner import get_default_harness  # the runner: only when judging

        via = get_default_harness()
    try:
        judge = judge_model_for(via, model)
    except JudgeModelError as exc:
        raise _Unevaluable(str(exc)) from None
    scale = built_in.scale if built_in is not None else (0, 1)
    system = built_in.system if built_in is not None else JUDGE_SYSTEM_PROMPT
    messages = judge_messages(text, ctx.output, question, inputs=inputs, system=system)
    details: dict[str, Any] = {
        "model": judge,
        "score": None,
        "reason": None,
        "rubric": built_in.name if built_in is not None else _cut(text, 200),
        "version": built_in.id if built_in is not None else None,
    }
    judge_params.setdefault("temperature", 0)
    raw, score, reason = _ask(via, judge, messages, scale, judge_params, details)
    normalised = (score - scale[0]) / (scale[1] - scale[0])
    passed = normalised >= threshold
    reason = reason if len(reason) <= 500 else reason[:499] + "…"
    details.update(score=normalised, reason=reason)
    if scale != (0, 1):
        details["raw_score"] = score
    shown = built_in.id if built_in is not None else _short(text)
    on_scale = f" ({score:g} of {scale[0]}-{scale[1]})" if scale != (0, 1) else ""
    return _Verdict(
        passed,
        f"judge {judge!r} scored {normalised:g}{on_scale} ({_cmp(passed)} threshold "
        f"{threshold:g}) on {shown}: {reason or '(no reason given)'}",
        normalised,
        details,
    )


def _template_name_error(value: Any) -> str:
    return (
        f"check 'llm_judge': 'template' must be one of {', '.join(RUBRICS)}, got {value!r} "
        "(for your own rubric use 'rubric:')"
    )


def _ask(
    via: Any,
    model: str,
    messages: list[dict[str, Any]],
    scale: tuple[int, int],
    params: Mapping[str, Any],
    details: dict[str, Any],
) -> tuple[str, float, str]:
    """Ask the judge; one follow-up turn when its reply has no readable score.

    The follow-up is a different conversation (the bad reply and ``RETRY_PROMPT`` appended),
    so a response store does not serve the bad reply again.
    """
    first = _call(via, model, messages, params, details)
    try:
        score, reason = _read_judge_reply(first, scale)
        return first, score, reason
    except _Unevaluable:
        pass
    follow_up = [
        *messages,
        {"role": "assistant", "content": first},
        {"role": "user", "content": RETRY_PROMPT},
    ]
    second = _call(via, model, follow_up, params, details)
    try:
        score, reason = _read_judge_reply(second, scale)
    except _Unevaluable as exc:
        details["raw"] = second if len(second) <= 2000 else second[:1999] + "…"
        raise _Unevaluable(
            f"the judge {model!r} did not give a readable score, asked twice: {exc.detail} "
            f"(first reply: {_excerpt(first)})",
            details,
        ) from None
    return second, score, reason


def _call(
    via: Any,
    model: str,
    messages: list[dict[str, Any]],
    params: Mapping[str, Any],
    details: Mapping[str, Any],
) -> str:
    try:
        reply = via.completion(model, messages, **params)
    except Exception as exc:
        detail = f"the judge call to {model!r} failed: {_describe(exc)}"
        raise _Unevaluable(detail, details) from exc
    return str(reply.content or "")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
