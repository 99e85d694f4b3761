"""Fixtures: ``harness``, ``model`` and the three call shapes, each recording its answers.

Every fixture is a thin wrapper over a library call (``Harness.batch_completion`` and
friends); what it adds is the test's defaults (its ``model``, the selected models, the
``@pytest.mark.harness(...)`` parameters) and recording every answer into the test's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from harness import AllModelsFailed, Harness, HarnessError, ModelResponse, Result
from harness.results import make_record
from pytest_plugin._records import add_from_test
from pytest_plugin._state import get_state

__all__ = [
    "AllResponses",
    "Batch",
    "Race",
    "all_responses",
    "batch",
    "harness",
    "model",
    "race",
]


class _Shape:
    """Shared plumbing: defaults from the test, and recording."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._state = get_state(request.config)
        self.harness: Harness = self._state.harness

    def _test_model(self) -> str | None:
        callspec = getattr(self._request.node, "callspec", None)
        value = callspec.params.get("model") if callspec is not None else None
        return value if isinstance(value, str) else None

    def _models(self, models: Sequence[str] | None) -> list[str]:
        if models is not None:
            if isinstance(models, str):
                raise TypeError(f"models must be a list, got the string {models!r}")
            return list(models)
        chosen = _selected_models(self._request.node, self._state.settings.models)
        if not chosen:
            pytest.fail(
                "no models: pass models=[...], --harness-models, or @pytest.mark.models(...)"
            )
        return chosen

    def _model(self, model: str | None) -> str:
        chosen = model or self._test_model()
        if chosen is None:
            models = self._models(None)
            chosen = models[0]
        return chosen

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for marker in reversed(list(self._request.node.iter_markers("harness"))):
            merged.update(marker.kwargs)  # closest marker last, so it wins
        merged.update(params)
        return merged

    def _record(self, model: str, result: Result, shape: str, messages: Any) -> None:
        add_from_test(
            self._request.node,
            make_record(
                test_id=self._request.node.nodeid,
                model=model,
                result=result,
                shape=shape,
                messages=messages,
                passed=False,  # settled from the test's outcome when it ends
                resolved_model=_resolved(self.harness, model),
            ),
        )


class Batch(_Shape):
    """``batch(messages_list, model=None, **params)``: many conversations, one model."""

    def __call__(
        self, messages_list: list[list[dict[str, Any]]], model: str | None = None, **params: Any
    ) -> list[Result]:
        """Run the batch and record every answer (sync; safe inside a running loop)."""
        chosen = self._model(model)
        results = self.harness.batch_completion(chosen, messages_list, **self._params(params))
        for conv, result in zip(messages_list, results, strict=True):
            self._record(chosen, result, "batch", conv)
        return results

    async def acall(
        self, messages_list: list[list[dict[str, Any]]], model: str | None = None, **params: Any
    ) -> list[Result]:
        """The async variant of the call."""
        chosen = self._model(model)
        results = await self.harness.abatch_completion(
            chosen, messages_list, **self._params(params)
        )
        for conv, result in zip(messages_list, results, strict=True):
            self._record(chosen, result, "batch", conv)
        return results


class Race(_Shape):
    """``race(messages, models=None, **params)``: the first successful answer wins."""

    def __call__(
        self, messages: list[dict[str, Any]], models: Sequence[str] | None = None, **params: Any
    ) -> ModelResponse:
        """Race the models and record the winner (or every error when all fail)."""
        chosen = self._models(models)
        try:
            winner = self.harness.batch_completion_models(chosen, messages, **self._params(params))
        except AllModelsFailed as exc:
            self._record_failures(exc, messages)
            raise
        self._record(winner.harness.model, winner, "race", messages)
        return winner

    async def acall(
        self, messages: list[dict[str, Any]], models: Sequence[str] | None = None, **params: Any
    ) -> ModelResponse:
        """The async variant of the call."""
        chosen = self._models(models)
        try:
            winner = await self.harness.abatch_completion_models(
                chosen, messages, **self._params(params)
            )
        except AllModelsFailed as exc:
            self._record_failures(exc, messages)
            raise
        self._record(winner.harness.model, winner, "race", messages)
        return winner

    def _record_failures(self, exc: AllModelsFailed, messages: Any) -> None:
        for name, error in exc.errors.items():
            self._record(name, error, "race", messages)  # type: ignore[arg-type]


class AllResponses(_Shape):
    """``all_responses(messages, models=None, **params)``: every model, in order."""

    def __call__(
        self, messages: list[dict[str, Any]], models: Sequence[str] | None = None, **params: Any
    ) -> list[Result]:
        """Ask every model and record each answer."""
        chosen = self._models(models)
        results = self.harness.batch_completion_models_all_responses(
            chosen, messages, **self._params(params)
        )
        for name, result in zip(chosen, results, strict=True):
            self._record(name, result, "all", messages)
        return results

    async def acall(
        self, messages: list[dict[str, Any]], models: Sequence[str] | None = None, **params: Any
    ) -> list[Result]:
        """The async variant of the call."""
        chosen = self._models(models)
        results = await self.harness.abatch_completion_models_all_responses(
            chosen, messages, **self._params(params)
        )
        for name, result in zip(chosen, results, strict=True):
            self._record(name, result, "all", messages)
        return results


def _resolved(h: Harness, model: str) -> str | None:
    try:
        return h.resolve(model).full_name
    except HarnessError:
        return None


def _selected_models(node: pytest.Item, selected: Sequence[str]) -> list[str]:
    """The models for a test: the selection, narrowed or replaced by ``@pytest.mark.models``."""
    marker = node.get_closest_marker("models")
    if marker is None:
        return list(selected)
    names = [str(m) for m in marker.args]
    if marker.kwargs.get("replace") or not selected:
        return names
    return [m for m in selected if m in names]


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config) -> Harness:
    """The session's configured ``Harness`` (config file, offline mode, concurrency)."""
    return get_state(pytestconfig).harness


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    """The model this test runs against: the test runs once per selected model.

    Select models with ``--harness-models`` or the ``harness_models`` ini key; narrow or
    replace them per test with ``@pytest.mark.models(...)``. The value is the alias or
    ``provider/model`` string, usable with every harness call.
    """
    value: str = request.param
    return value


@pytest.fixture
def batch(request: pytest.FixtureRequest) -> Batch:
    """``batch(messages_list, model=None, **params)``: many conversations to one model.

    Defaults to the test's ``model``; answers are recorded into the test's result.
    ``await batch.acall(...)`` in async tests.
    """
    return Batch(request)


@pytest.fixture
def race(request: pytest.FixtureRequest) -> Race:
    """``race(messages, models=None, **params)``: first successful answer of the models.

    Defaults to the selected models; the winner (or every error) is recorded.
    ``await race.acall(...)`` in async tests.
    """
    return Race(request)


@pytest.fixture
def all_responses(request: pytest.FixtureRequest) -> AllResponses:
    """``all_responses(messages, models=None, **params)``: every model's answer, in order.

    Defaults to the selected models; every answer is recorded.
    ``await all_responses.acall(...)`` in async tests.
    """
    return AllResponses(request)
