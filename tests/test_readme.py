"""The README's examples run as written, and the docs name every LiteLLM error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.errors import LITELLM_NAMES

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(section: str, language: str = "python") -> list[str]:
    """The ```python (or other ``language``) blocks of one ``## `` section of the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def test_the_streaming_example_runs_as_written(tmp_path):
    [example] = _python_blocks("Streaming and time to first token")
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Paris is the capital of France."
    assert lines[1].startswith("Paris. (") and lines[1].endswith(" tokens)")
    assert lines[2].startswith("Paris. ")  # the assembled answer, then its TTFT and speed


def test_the_litellm_page_maps_every_litellm_error_name():
    page = (ROOT / "docs" / "litellm.md").read_text(encoding="utf-8")
    for litellm_name, ours in LITELLM_NAMES.items():
        assert f"`{litellm_name}`" in page, litellm_name
        assert f"`{ours}`" in page, ours


def test_the_configuration_example_loads(tmp_path):
    from harness.config import load_config

    [example] = _python_blocks("Configuration", "toml")
    path = tmp_path / "harness.toml"
    path.write_text(example, encoding="utf-8")
    config = load_config(path)
    assert set(config.models) == {"fast", "local", "scripted"}
    assert config.cache is not None and config.cache.mode == "use"
    assert config.report.dir == "reports" and config.limits.path == ".harness/limits.sqlite"


def test_the_serve_examples_run_as_written(tmp_path):
    import os
    import shutil
    import signal
    import socket

    import pytest

    start, curl = _python_blocks("Serve: the three shapes over HTTP, for any language", "bash")
    if shutil.which("curl") is None:
        pytest.skip("needs the curl command")
    with socket.socket() as s:  # a free port instead of the README's 4000
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    [command] = [line for line in start.splitlines() if line.startswith("harness serve")]
    argv = command.removesuffix("&").split()[2:]
    key = "local-secret"
    assert f"export HARNESS_SERVE_API_KEY={key}" in start
    env = {**os.environ, "HARNESS_SERVE_API_KEY": key}
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", *[a.replace("4000", port) for a in argv]],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"harness serve: listening on http://127.0.0.1:{port}"
        done = subprocess.run(
            ["bash", "-c", curl.replace(":4000", f":{port}").replace("curl -s", "curl -s -i")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        server.stdout.close()
    assert code == 0
    assert done.stdout.startswith("HTTP/1.1 200"), done.stdout
    assert "x-harness-fastest-response: quick" in done.stdout or (
        "x-harness-fastest-response: careful" in done.stdout
    )
    assert (tmp_path / "reports" / "serve" / "results.jsonl").read_text().count('"shape": "race"')


def test_the_similarity_examples_run_as_written(tmp_path):
    from harness.config import load_config

    [config] = [b for b in _python_blocks("Testing with pytest", "toml") if "embedding_model" in b]
    path = tmp_path / "pyproject.toml"
    path.write_text(config, encoding="utf-8")
    assert load_config(path).embedding_model == "embedder"
    [example] = [b for b in _python_blocks("Testing with pytest") if "embedding(" in b]
    namespace: dict = {}
    exec(example, namespace)
    assert len(namespace["vector"]) == 64 and namespace["cost"] is None
