"""Fixtures for every test: a clean environment, and one local HTTP server per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from harness import set_default_harness
from tests.helpers.local_server import LocalServer, Reply, Request

Serve = Callable[[Callable[[Request], Reply]], LocalServer]


def _no_handler(request: Request) -> Reply:
    return Reply(status=500, body={"error": {"message": "no handler set for this test"}})


@pytest.fixture(scope="session")
def _session_server() -> Iterator[LocalServer]:
    with LocalServer(_no_handler) as server:
        yield server


@pytest.fixture
def local_server(_session_server: LocalServer) -> Iterator[Serve]:
    """``local_server(handler)``: the session's local server, fresh, answering with ``handler``.

    Every connection of the previous test is closed and the recorded requests, connections
    and disconnects are cleared, when the test starts and again when it ends.
    """

    def serve(handler: Callable[[Request], Reply]) -> LocalServer:
        _session_server.reset(handler)
        return _session_server

    _session_server.reset(_no_handler)
    yield serve
    _session_server.reset(_no_handler)

# No hypothesis deadlines: a busy machine must not turn a slow example into a failure
# (timings belong in tests/benchmarks/).
settings.register_profile("harness", deadline=None)
settings.load_profile("harness")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No real keys, no proxies, and no config file from the developer's working directory."""
    for var in list(os.environ):
        if (
            var.endswith(("_API_KEY", "_AUTH_TOKEN"))
            or var.lower().endswith("_proxy")
            or var
            in (
                "OPENAI_BASE_URL",
                "ANTHROPIC_BASE_URL",
                "AZURE_OPENAI_ENDPOINT",
                "CO_API_URL",
                "GOOGLE_GEMINI_BASE_URL",
                "HARNESS_TRANSPORT",
            )
        ):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    set_default_harness(None)
    yield
    set_default_harness(None)
