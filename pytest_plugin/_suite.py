"""YAML suites collected as pytest items: one item per (case, model).

A suite with ``prompts:`` has one item per (case, prompt variant, model), named
``case[prompt-model]``.

``SuiteFile`` loads a suite with ``harness.suites.load_suite``; a broken file fails
collection with the loader's one-line message (file, line, case, field), never a
traceback. ``SuiteItem`` takes its answers from the prefetcher, runs the case's checks on
each repeat, records every answer, and passes when the pass rate meets the threshold.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_plugin._records import records_of, set_summary, set_unsent, take
from pytest_plugin._state import get_state

if TYPE_CHECKING:
    from harness.sequential import SequentialPlan

__all__ = ["SuiteFile", "SuiteItem", "matches_suite_glob"]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def matches_suite_glob(path: Path, root: Path, globs: tuple[str, ...]) -> bool:
    """Whether ``path`` (relative to ``root``) matches one of the suite globs."""
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = path.as_posix()
    return any(_glob_regex(g).match(rel) for g in globs)


class SuiteCaseFailed(Exception):
    """A suite item whose pass rate fell below its threshold; the message says why."""


class SuiteFile(pytest.File):
    """A YAML suite file."""

    def collect(self) -> Iterator[pytest.Item]:
        """One item per (case, model) for the selected models (per prompt variant too)."""
        from harness.errors import ConfigError
        from harness.suites import SuiteError, load_suite

        state = get_state(self.config)
        root = str(self.config.rootpath)
        if root not in sys.path:  # so that ``python: module:function`` checks import
            sys.path.insert(0, root)
        try:
            suite = load_suite(self.path, root=self.config.rootpath)
        except SuiteError as exc:
            raise self.CollectError(str(exc)) from None
        models = list(state.settings.models) or list(suite.models or [])
        if not models:
            raise self.CollectError(
                f"{self._rel()}: no models to run: add 'models: [...]' to the suite "
                "or pass --harness-models"
            )
        for model in models:
            try:
                state.harness.resolve(model)
            except ConfigError as exc:
                from pytest_plugin._preflight import suggest_model

                hint = suggest_model(state.harness.config, model)
                also = f"; did you mean {hint!r}?" if hint is not None else ""
                raise self.CollectError(f"{self._rel()}: {exc.message}{also}") from None
        self._check_embedding_models(suite, state.harness.config)
        self._check_judges(suite, state.harness)
        if suite.compare is not None:
            self._check_compare(suite, state.harness)
        prompts: list[str | None] = list(suite.prompt_ids) or [None]
        for case in suite.cases:
            for prompt in prompts:
                for model in models:
                    if case.models and model not in case.models:
                        continue
                    params = model if prompt is None else f"{prompt}-{model}"
                    item = SuiteItem.from_parent(
                        self,
                        name=f"{case.id}[{params}]",
                        suite=suite,
                        case=case,
                        model=model,
                        prompt=prompt,
                        **_item_id(self, case.id, params),
                    )
                    for tag in case.tags:
                        if tag not in state.markers:
                            state.markers.add(tag)
                            self.config.addinivalue_line("markers", f"{tag}: suite tag")
                        item.add_marker(tag)
                    yield item

    def _check_embedding_models(self, suite: Any, config: Any) -> None:
        """Fail collection when a ``similar: {scorer: embedding}`` check has no model."""
        from harness.checks.similarity import embedding_model_problem

        for case in suite.cases:
            problem = embedding_model_problem(case.checks, config)
            if problem is not None:
                raise self.CollectError(f"{self._rel()}: case {case.id!r}: {problem}")

    def _check_judges(self, suite: Any, harness: Any) -> None:
        """Every judge check's model resolves; else one collection error naming where."""
        from harness.checks.judge import JudgeModelError, judge_model_for
        from harness.errors import ConfigError

        for case in suite.cases:
            for spec in case.checks:
                if not isinstance(spec, dict) or len(spec) != 1:
                    continue
                ((key, arg),) = spec.items()
                if str(key).removeprefix("not-") != "llm_judge":
                    continue
                named = arg.get("model") if isinstance(arg, dict) else None
                try:
                    harness.resolve(judge_model_for(harness, named))
                except (JudgeModelError, ConfigError) as exc:
                    message = exc.message if isinstance(exc, ConfigError) else str(exc)
                    line = _line_of(suite, "llm_judge", case.line)
                    raise self.CollectError(
                        f"{self._rel()}:{line}: case {case.id!r}: llm_judge: {message}"
                    ) from None

    def _check_compare(self, suite: Any, harness: Any) -> None:
        """``compare:``'s models and judge resolve; else one collection error naming the line."""
        from harness.checks.judge import JudgeModelError, judge_model_for
        from harness.errors import ConfigError

        spec = suite.compare
        try:
            for model in spec.models:
                harness.resolve(model)
            harness.resolve(judge_model_for(harness, spec.judge))
        except (JudgeModelError, ConfigError) as exc:
            message = exc.message if isinstance(exc, ConfigError) else str(exc)
            raise self.CollectError(
                f"{self._rel()}:{suite.compare_line}: compare: {message}"
            ) from None

    def _rel(self) -> str:
        try:
            return self.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            return str(self.path)


def _line_of(suite: Any, word: str, default: int) -> int:
    """The first line of the suite file that mentions ``word`` (else ``default``)."""
    for number, text in enumerate(suite.source_text_lines, start=1):
        if word in text:
            return number
    return default


def _item_id(parent: pytest.Collector, case_id: str, params: str) -> dict[str, Any]:
    """The item's structured node id, where pytest has them (9 and later).

    pytest parses the node ids it stores (``--lf``, ``--ff``, ``--nf``) into path, names and
    ``[params]``, and builds an item's own id from its parent's; an item named ``case[model]``
    (or ``case[prompt-model]``) must carry that as its params, as a parametrised test
    function does, or the stored ids never match it again.
    """
    parent_id = getattr(parent, "id", None)
    if parent_id is None or not hasattr(parent_id, "with_params"):
        return {}  # pytest 8: node ids are plain strings, and they already match
    return {"nodeid": parent_id.child(case_id).with_params(params)}


class SuiteItem(pytest.Item):
    """One suite case against one model (with one prompt variant), with repeats."""

    def __init__(
        self, *, suite: Any, case: Any, model: str, prompt: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.case = case
        self.model = model
        self.prompt = prompt
        """The prompt variant's id (``prompts:``), or ``None`` for a suite with one prompt."""
        self.messages: list[dict[str, Any]] = case.messages_for(prompt)
        """The conversation this item sends."""
        self.label = model if prompt is None else f"{prompt}-{model}"
        """``model``, or ``prompt-model``: the item's params, as in its name."""
        settings = get_state(self.config).settings
        self.repeat: int = settings.repeat or case.repeat
        """The repeats to ask (adaptive: the most that may be asked)."""
        self.threshold: float = case.threshold
        adaptive = case.adaptive
        if settings.repeat is not None:  # the command line decides, fixed or adaptive
            from harness.suites import DEFAULT_CONFIDENCE

            adaptive = (adaptive or DEFAULT_CONFIDENCE) if settings.adaptive else None
        self.plan: SequentialPlan | None = None
        """Adaptive repeats: when to stop asking (``None``: ask ``repeat`` times)."""
        if adaptive is not None:
            from harness.sequential import SequentialPlan

            self.plan = SequentialPlan(self.repeat, self.threshold, adaptive)
        self._judged: dict[int, tuple[list[Any], bool]] = {}

    def first_batch(self) -> int:
        """How many repeats to ask for before anything is known."""
        if self.plan is None:
            return self.repeat
        # At least one: a threshold of 0 is decided before asking, but an item with no
        # answer would not show in any report.
        return max(1, self.plan.next_batch(0, 0))

    def judge(self, repeat: int, result: Any) -> tuple[list[Any], bool]:
        """The checks of one repeat's answer and whether it passed (run once, then kept)."""
        judged = self._judged.get(repeat)
        if judged is None:
            from harness.checks import CheckContext, run_checks

            state = get_state(self.config)
            ctx = CheckContext.from_result(
                result, vars=self.case.vars, messages=self.messages, harness=state.harness
            )
            checks = [] if isinstance(result, BaseException) else run_checks(self.case.checks, ctx)
            ok = not isinstance(result, BaseException) and all(c.passed for c in checks)
            judged = self._judged[repeat] = (checks, ok)
        return judged

    def passes(self, upto: int) -> int:
        """Passing repeats among the first ``upto`` judged ones."""
        return sum(self._judged[r][1] for r in range(upto))

    def judged(self) -> int:
        """How many repeats have been judged."""
        return len(self._judged)

    def forget(self) -> None:
        """Drop every judgement: a rerun (pytest-rerunfailures) asks and judges again."""
        self._judged = {}

    def requests(
        self, start: int = 0, count: int | None = None
    ) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
        """The calls of ``count`` repeats from ``start`` (default: all of them).

        One ``(model, messages, params)`` per repeat, with its repeat index (a cache key part).
        """
        state = get_state(self.config)
        params = dict(self.case.params)
        if state.settings.stream and (params.get("n") or 1) == 1:
            # Streamed under the hood for time to first token; n > 1 is not streamed
            # (most providers return one choice per stream).
            params.setdefault("stream", True)
        mock = self.case.mock_for(self.model, self.prompt)
        # Scripted answers are for mock models; echo models stay echoes, real ones stay real.
        if mock is not None and state.harness.resolve(self.model).family == "mock":
            params["mock_response"] = mock
        # The repeat index is part of the cache key: repeats are never one stored answer,
        # and a rerun (pytest-rerunfailures) asks new questions rather than replaying.
        first = self.attempt * self.repeat
        count = self.repeat - start if count is None else count
        return [
            (self.model, self.messages, {**params, "harness_repeat": first + r})
            for r in range(start, start + count)
        ]

    @property
    def attempt(self) -> int:
        """0 on the first run; pytest-rerunfailures counts its reruns up from 1."""
        return max(int(getattr(self, "execution_count", 1) or 1) - 1, 0)

    def runtest(self) -> None:
        """Check every repeat's answer and compare the pass rate with the threshold.

        With adaptive repeats the prefetcher asks in batches and stops once the verdict is
        decided (``harness.sequential``); the item then judges the repeats it got.
        """
        from harness.errors import BudgetExceededError, ReplayMissError
        from harness.results import make_record
        from harness.verdict import case_verdict

        take(self)  # a rerun starts afresh (its answers too: see Prefetcher)
        state = get_state(self.config)
        budget = _timeout_budget(self)
        results = state.prefetcher.results(self, budget)
        unsent = next((r for r in results if isinstance(r, BudgetExceededError)), None)
        if unsent is not None:
            set_unsent(self)  # the collector counts it
            pytest.skip(f"harness: {unsent.message}")
        spec = state.harness.resolve(self.model)
        records = records_of(self)
        passes = 0
        failures: dict[str, list[int]] = {}  # description -> the repeats that failed so
        for r, result in enumerate(results):
            checks, ok = self.judge(r, result)
            passes += ok
            records.append(
                make_record(
                    test_id=self.nodeid,
                    model=self.model,
                    resolved_model=spec.full_name,
                    result=result,
                    checks=checks,
                    passed=ok,
                    repeat=r,
                    suite=self.parent.nodeid if self.parent else None,
                    case_id=self.case.id,
                    vars=self.case.vars,
                    messages=self.messages,
                    shape="suite",
                    prompt=self.prompt,
                )
            )
            if not ok:
                failures.setdefault(_describe_failure(result, checks), []).append(r + 1)
        n = len(results)
        verdict = case_verdict(passes, n, self.threshold, self.plan)
        summary = {"model": self.model, **verdict.summary()}
        if self.prompt is not None:
            summary["prompt"] = self.prompt
        set_summary(self, summary)
        missing = [r + 1 for r, result in enumerate(results) if isinstance(result, ReplayMissError)]
        if missing:
            # Replay never passes on less than what was recorded: a missing answer is an
            # error of the item, whatever the other repeats say.
            summary["errored"] = True
            label = "repeat" if len(missing) == 1 else "repeats"
            first = results[missing[0] - 1]
            raise SuiteCaseFailed(
                f"{self.case.id} [{self.label}]: not recorded: {label} {_spans(missing)} of "
                f"{n} (replay mode only serves stored answers; record them with "
                f"--harness-cache use)\n  {type(first).__name__}: {first}"
            )
        if not verdict.passed:
            head = (
                f"{self.case.id} [{self.label}]: {verdict.headline()}"
                if n > 1
                else f"{self.case.id} [{self.label}] failed{verdict.stop_note()}"
            )
            lines = [head]
            for description, repeats in failures.items():
                label = "repeat" if len(repeats) == 1 else "repeats"
                where = f"{label} {_spans(repeats)}: " if n > 1 else ""
                lines.append(f"  {where}{description}")
            raise SuiteCaseFailed("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The check details and output, not a traceback from the plugin."""
        if isinstance(excinfo.value, SuiteCaseFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, pytest.fail.Exception):  # e.g. pytest-timeout's
            return f"{self.case.id} [{self.label}]: {excinfo.value.msg}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the case is: file and line."""
        return self.path, max(self.case.line - 1, 0), f"{self.case.id}[{self.label}]"


TIMEOUT_SHARE = 0.8
"""The share of pytest-timeout's limit an item waits for its answers: the rest is left to
check them and report, so that the item fails with its records instead of the process
being stopped."""


def _timeout_budget(item: pytest.Item) -> float | None:
    """Seconds the item may wait for its answers under pytest-timeout (``None``: no limit)."""
    try:
        from pytest_timeout import _get_item_settings  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        timeout = _get_item_settings(item).timeout
    except Exception:  # an unexpected pytest-timeout: let it keep its own rules
        return None
    if not timeout or timeout <= 0:
        return None
    return float(timeout) * TIMEOUT_SHARE


def _describe_failure(result: Any, checks: list[Any]) -> str:
    if isinstance(result, BaseException):
        return f"the call failed: {type(result).__name__}: {result}"
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    return "\n    ".join(failed)


def _spans(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``1-3, 5``."""
    out: list[str] = []
    start = prev = numbers[0]
    for x in [*numbers[1:], None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if x is not None:
            start = prev = x
    return ", ".join(out)
