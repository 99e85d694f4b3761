"""Short scripts exit cleanly: nothing on stderr, no hang, whatever they left behind.

Each script runs in its own interpreter against the fault server. The sync API's background
loop (``harness._sync``) must be wound down at exit: before that was done, a ``Harness``
that outlived asyncio's own teardown (kept by a module torn down after it) printed
"Exception ignored … AttributeError: 'NoneType' object has no attribute 'Handle'".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.server import ANSWER, FaultServer

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = "[{'role': 'user', 'content': 'hi'}]"

SCRIPTS = {
    "completion": """
import harness
print(harness.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12).content)
""",
    "stream": """
import harness
chunks = harness.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12, stream=True)
print(''.join(c.choices[0].delta.content or '' for c in chunks if c.choices))
""",
    "stream-left-open": """
import harness
chunks = harness.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12, stream=True)
next(iter(chunks))
print('{A}')
""",
    "httpx-transport": """
from harness import Harness
h = Harness(transport='httpx')
print(h.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12).content)
for _ in h.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12, stream=True):
    pass
""",
    "batch-in-a-function": """
import harness
def main():
    results = harness.batch_completion('openai/ok', [{M}] * 3, api_base={B!r}, api_key='k' * 12)
    print(results[0].content)
main()
""",
    # The reproduction: the Harness (and its clients) live until a module that was imported
    # before asyncio is torn down, i.e. after asyncio's modules were.
    "kept-past-asyncio": """
import json
import harness
json.kept = h = harness.Harness()
print(h.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12).content)
for _ in h.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12, stream=True):
    pass
json.kept_httpx = harness.Harness(transport='httpx')
json.kept_httpx.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12)
""",
    # Exit while another thread waits on a call that never ends: the loop is busy, and exit
    # must neither hang nor complain.
    "busy-at-exit": """
import threading, harness
started = threading.Event()
def waiting():
    started.set()
    try:
        harness.completion('openai/hang', {M}, api_base={B!r}, api_key='k' * 12, timeout=600)
    except BaseException:
        pass
threading.Thread(target=waiting, daemon=True).start()
started.wait()
print(harness.completion('openai/ok', {M}, api_base={B!r}, api_key='k' * 12).content)
""",
}


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_PROXY", "_proxy"))}
    env["PYTHONPATH"] = str(ROOT)
    env.pop("HARNESS_TRANSPORT", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,  # no harness.toml: the defaults
        env=env,
        timeout=50,
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_short_script_exits_cleanly(fault_server: FaultServer, name: str, tmp_path: Path) -> None:
    code = SCRIPTS[name].format(M=MESSAGES, B=fault_server.url + "/v1", A=ANSWER)
    done = run_script(code, tmp_path)
    assert done.stderr == ""
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == ANSWER
