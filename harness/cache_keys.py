"""Cache keys: a stable SHA-256 of exactly what can change a model's answer.

This module owns the canonical form of a request: the provider, the resolved model, the
normalised ``api_base``, the full messages, every output-relevant parameter and the repeat
index, as JSON with one spelling per value (``cache_key``), and the same for a prepared
runner ``Call`` (``key_for_call``). Timeouts, retries, keys, headers and the like are left
out (``NON_OUTPUT_PARAMS``, and any parameter named like a credential), so they never
split or leak into an entry; a streamed and a non-streamed call of the same request share
one key. The store that the keys index is ``harness.cache``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.providers.base import Call

__all__ = ["KEY_VERSION", "NON_OUTPUT_PARAMS", "cache_key", "key_for_call"]

KEY_VERSION = 1
"""Part of every key: bump it when the canonical form changes, so old entries stop matching."""

NON_OUTPUT_PARAMS: frozenset[str] = frozenset(
    {
        # How long and how often to try: the answer is the same.
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        # Credentials and transport: never key material, never stored.
        "api_key",
        "extra_headers",
        "headers",
        # Harness plumbing.
        "max_workers",
        "mock_latency_ms",
        "on_result",
        # Bookkeeping the provider does not answer differently to.
        "metadata",
        "user",
        # A streamed and a non-streamed call of the same request share one entry.
        "stream",
        "stream_options",
    }
)
"""Parameters left out of the cache key because they cannot change the answer.

Any parameter whose name looks like a credential (``*_key``, ``*api_key*``, ``*secret*``,
``*password*``, ``*token`` but not ``*tokens``, ``authorization``, ``credentials``) is left
out as well, and so is any parameter whose value is ``None`` (``None`` means "not given").
"""

_KEY_LIKE = re.compile(
    r"(^key$|_key$|api_?key|secret|password|passwd|authorization|credential|bearer"
    r"|(^|_)(access|auth|api|id|refresh|session)_?token$)",
    re.IGNORECASE,
)


def _is_key_like(name: str) -> bool:
    return bool(_KEY_LIKE.search(name))


def _excluded(name: str) -> bool:
    return name in NON_OUTPUT_PARAMS or _is_key_like(name)


def _canon(value: Any) -> Any:
    """JSON-able data with one spelling per value: integral floats become ints, -0.0 is 0."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"__float__": repr(value)}
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [_canon(v) for v in value]
        return sorted(items, key=_dumps_canonical)
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"__schema__": _canon(value.model_json_schema())}  # a pydantic model class
    if hasattr(value, "model_dump"):
        return _canon(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canon(dataclasses.asdict(value))
    raise TypeError(
        f"cache_key: cannot make a stable key from a {type(value).__name__} value; "
        "pass JSON-like data (dicts, lists, strings, numbers, booleans, None)"
    )


def _dumps_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _normal_api_base(api_base: str | None) -> str | None:
    if api_base is None:
        return None
    base = api_base.strip().rstrip("/")
    return base or None


def _normal_messages(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    # A message key set to None is the same as the key left out ({"content": None} on an
    # assistant tool-call message); deeper Nones (e.g. in a tool's JSON schema) are data.
    return [
        {str(k): _canon(v) for k, v in m.items() if v is not None}
        if isinstance(m, Mapping)
        else _canon(m)
        for m in messages
    ]


def cache_key(
    *,
    provider: str,
    model: str,
    api_base: str | None,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    repeat: int = 0,
) -> str:
    """The cache key of one request: a SHA-256 hex digest of its canonical JSON.

    The canonical JSON holds the provider, the resolved model, ``api_base`` without trailing
    slashes, the full messages, the output-relevant params and the repeat index, with sorted
    keys, no whitespace and ASCII only. Params named in ``NON_OUTPUT_PARAMS``, params that look
    like credentials, and params set to ``None`` are left out. Dict key order and the spelling
    of numbers (``1`` / ``1.0``, ``0.0`` / ``-0.0``) do not change the key; ``True`` and ``1``
    do.

    Args:
        provider: the provider name (``openai``, ``anthropic``, …).
        model: the provider's own model name (``ModelSpec.model``), not an alias.
        api_base: the resolved base URL, or ``None`` for offline models.
        messages: the conversation as sent.
        params: the request parameters (temperature, max_tokens, tools, …).
        repeat: which repetition of the same request this is (0 for the first).

    Returns:
        64 lowercase hex characters.

    Raises:
        TypeError: a param or message holds a value with no stable JSON form.
    """
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
        raise ValueError(f"cache_key: repeat must be an integer >= 0, got {repeat!r}")
    material = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "api_base": _normal_api_base(api_base),
        "messages": _normal_messages(messages),
        "params": {
            str(k): _canon(v) for k, v in params.items() if v is not None and not _excluded(str(k))
        },
        "repeat": repeat,
    }
    return hashlib.sha256(_dumps_canonical(material).encode("ascii")).hexdigest()


def key_for_call(call: Call, repeat: int = 0, *, embedding: bool = False) -> str:
    """The cache key of a prepared runner ``Call``.

    Besides ``call.params`` this counts what else shapes the answer: the per-call
    ``mock_response``, the spec's ``api_version`` (Azure) and, for offline models, the
    scripted ``responses``/``error`` of the config (not its ``latency_ms``). The key, the
    headers and the timeouts are left out. An embeddings call (``embedding=True``, texts in
    ``params["input"]``) is marked, so it never shares a key with a completion.
    """
    spec = call.spec
    params: dict[str, Any] = dict(call.params)
    if embedding:
        params["__embedding__"] = True
    if call.mock_response is not None:
        params["mock_response"] = call.mock_response
    if spec.api_version is not None:
        params["api_version"] = spec.api_version
    mock = {k: v for k, v in spec.mock.items() if k != "latency_ms"}
    if mock:
        params["__mock_config__"] = mock
    return cache_key(
        provider=spec.provider,
        model=spec.model,
        api_base=call.api_base,
        messages=call.messages,
        params=params,
        repeat=repeat,
    )
