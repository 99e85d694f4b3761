"""The response store wired into the runner: use, replay, record, refresh-failed, repeats."""

from __future__ import annotations

import httpx
import pytest

from harness import Harness, ReplayMissError
from tests.helpers.local_server import chat_body

USER = [{"role": "user", "content": "What is 2+2?"}]
KEY = "sk-test-cache-runner-0123456789"


def counting(responses=None):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if responses:
            return responses.pop(0)
        return httpx.Response(200, json=chat_body(f"answer {len(seen)}"))

    return seen, httpx.MockTransport(handler)


def test_use_mode_calls_once_and_replays_with_the_recorded_latency(tmp_path):
    seen, transport = counting()
    h = Harness(transport=transport, cache=tmp_path / "c.sqlite")
    first = h.completion("openai/gpt-4o-mini", USER, api_key=KEY)
    second = h.completion("openai/gpt-4o-mini", USER, api_key=KEY, timeout=5, num_retries=0)
    assert len(seen) == 1
    assert second.content == first.content == "answer 1"
    assert second.harness.replayed and not first.harness.replayed
    assert second.harness.latency_ms == pytest.approx(first.harness.latency_ms, abs=0.01)
    assert second.harness.latency_ms > 0
    # a different request is a miss
    h.completion("openai/gpt-4o-mini", USER, api_key=KEY, temperature=0.5)
    assert len(seen) == 2


def test_repeats_are_never_served_by_one_answer(tmp_path):
    seen, transport = counting()
    h = Harness(transport=transport, cache=tmp_path / "c.sqlite")
    answers = [h.completion("openai/m", USER, api_key=KEY, harness_repeat=i).content for i in range(3)]
    assert answers == ["answer 1", "answer 2", "answer 3"]
    again = [h.completion("openai/m", USER, api_key=KEY, harness_repeat=i).content for i in range(3)]
    assert again == answers and len(seen) == 3


def test_replay_needs_no_key_and_no_network_and_names_a_miss(tmp_path):
    seen, transport = counting()
    Harness(transport=transport, cache=tmp_path / "c.sqlite").completion("openai/m", USER, api_key=KEY)
    replay = Harness(transport=transport, cache=tmp_path / "c.sqlite", cache_mode="replay", offline=True)
    assert replay.completion("openai/m", USER).content == "answer 1"  # no api_key, offline
    with pytest.raises(ReplayMissError, match="openai/m.*What is 3\\+3"):
        replay.completion("openai/m", [{"role": "user", "content": "What is 3+3?"}])
    assert len(seen) == 1


def test_offline_with_a_store_replays_hits_and_refuses_only_misses(tmp_path):
    from harness import ConfigError

    seen, transport = counting()
    path = tmp_path / "c.sqlite"
    Harness(transport=transport, cache=path).completion("openai/m", USER, api_key=KEY)
    offline = Harness(transport=transport, cache=path, offline=True)  # mode: use
    hit = offline.completion("openai/m", USER)  # no key: nothing is sent
    assert hit.content == "answer 1" and hit.harness.replayed
    with pytest.raises(ConfigError, match="not in the response store"):
        offline.completion("openai/m", [{"role": "user", "content": "new"}], stream=True)
    [missed] = offline.batch_completion("openai/m", [[{"role": "user", "content": "new"}]])
    assert isinstance(missed, ConfigError)
    assert "not in the response store" in missed.message
    assert "--harness-cache replay" in missed.message
    assert len(seen) == 1
    for mode in ("record", "off"):
        refused = Harness(transport=transport, cache=path, cache_mode=mode, offline=True)
        with pytest.raises(ConfigError, match=f"would call the network \\(the response store is {mode}\\)"):
            refused.completion("openai/m", USER, api_key=KEY)
    assert len(seen) == 1


def test_record_always_calls_and_refresh_failed_retries_errors(tmp_path):
    seen, transport = counting([
        httpx.Response(500, json={"error": {"message": "boom"}}),
        httpx.Response(200, json=chat_body("recovered")),
        httpx.Response(200, json=chat_body("recorded again")),
    ])
    path = tmp_path / "c.sqlite"
    h = Harness(transport=transport, cache=path, retries=0)
    [failed] = h.batch_completion("openai/m", [USER], api_key=KEY)
    assert failed.status == 500
    [served] = h.batch_completion("openai/m", [USER], api_key=KEY)  # use: the stored error
    assert served.status == 500 and len(seen) == 1
    fixed = h.completion("openai/m", USER, api_key=KEY, cache="refresh-failed")
    assert fixed.content == "recovered" and len(seen) == 2
    again = h.completion("openai/m", USER, api_key=KEY, cache="record")
    assert again.content == "recorded again" and len(seen) == 3
    assert h.completion("openai/m", USER, api_key=KEY).content == "recorded again"


def test_keys_never_reach_the_store(tmp_path):
    seen, transport = counting()
    path = tmp_path / "c.sqlite"
    h = Harness(transport=transport, cache=path)
    h.completion("openai/m", USER, api_key=KEY)
    h.cache.close()
    for file in tmp_path.iterdir():
        assert KEY.encode() not in file.read_bytes(), file


def test_config_cache_table_turns_the_cache_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "harness.toml").write_text('[cache]\nmode = "use"\npath = "store/c.sqlite"\n')
    seen, transport = counting()
    h = Harness(transport=transport)
    h.completion("openai/m", USER, api_key=KEY)
    h.completion("openai/m", USER, api_key=KEY)
    assert len(seen) == 1 and (tmp_path / "store" / "c.sqlite").is_file()


def _open_at_once(path: str, barrier) -> str:
    from harness.cache import ResponseCache
    from harness.limits import SharedLimiter

    barrier.wait()
    try:
        ResponseCache(path + ".cache").close()
        SharedLimiter(path + ".limits").state("m")
    except Exception as exc:  # reported to the parent, which asserts on it
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        outcomes = pool.starmap(_open_at_once, [(str(tmp_path / "new"), barrier)] * 4)
    assert outcomes == ["ok"] * 4
