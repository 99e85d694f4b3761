from __future__ import annotations

import os

import pytest
from hypothesis import settings

from harness import set_default_harness

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
