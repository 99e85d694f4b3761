"""Configuration: model strings, aliases, and the ``harness.toml`` / ``[tool.harness]`` loader.

A model is named either by a ``provider/name`` string (``openai/gpt-4o-mini``,
``anthropic/claude-haiku-4-5``, ``ollama/llama3.2``, ``mock/demo``) or by an alias
defined in the config::

    # harness.toml (or [tool.harness] in pyproject.toml)
    [defaults]
    timeout = 60          # seconds per attempt
    retries = 2
    max_concurrency = 32  # per model (default: no limit besides max_workers)

    [models.fast]
    model = "openai/gpt-4o-mini"
    max_concurrency = 16
    params = { temperature = 0 }
    price = { input_per_mtok = 0.15, output_per_mtok = 0.60 }

    [models.local]
    model = "openai/llama3.2"
    api_base = "http://localhost:11434/v1"
    api_key_env = "NONE"
    max_response_bytes = 8_388_608   # this model's bodies may be at most 8 MiB

``embedding_model = "alias-or-provider/model"`` (top level) is the model the ``similar``
check's ``scorer: embedding`` uses when it names none; it must resolve (an alias of
``[models]`` or a ``provider/name``).

Every number is checked when the file is loaded, and a bad one is a ``ConfigError`` naming
the file and the field: ``timeout`` is seconds, more than 0 and at most a day (86400);
``retries`` an integer from 0 to 100; ``max_concurrency``, ``rpm`` and ``tpm`` integers of
at least 1; prices (``price = {...}``, ``[prices."provider/model"]``) and a mock model's
``latency_ms`` / ``ttft_ms`` finite and not negative (the latter at most a day). NaN and
infinities, which TOML allows, are refused everywhere.

``max_response_bytes`` (in ``[defaults]`` and per model, an integer of at least 1024) is the
largest response body, or sum of a stream's bytes, the harness reads from a provider; the
transport enforces it and its default (32 MiB) is set there, so ``None`` here means "not
configured". A file that is not UTF-8 is a ``ConfigError`` naming the byte offset.

This module owns resolution of a name into a frozen ``ModelSpec`` (the provider table it
reads, with each named provider's default base URL and key variables, is
``harness.providers.registry``), and loading with precise errors
that name the file and the field. It never reads API keys into a spec: keys are looked up
at call time and never stored.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from harness.errors import ConfigError, secret_headers
from harness.prices import Price, builtin_price
from harness.providers.registry import PROVIDERS, ProviderInfo, provider_info, resolve_api_base

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_RETRIES",
    "MAX_TIMEOUT",
    "MIN_RESPONSE_BYTES",
    "PROVIDERS",
    "HarnessConfig",
    "ModelSpec",
    "Price",
    "ProviderInfo",
    "load_config",
]

DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 2
DEFAULT_MAX_CONCURRENCY: int | None = None
"""No per-model limit unless configured; ``max_workers`` still bounds each batch."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A fully resolved model: which adapter, which endpoint, which defaults and limits."""

    name: str
    """As the user wrote it: an alias or a ``provider/model`` string."""
    provider: str
    model: str
    """The provider's own model name (Azure: the deployment)."""
    api_base: str | None = None
    api_key_env: str | None = None
    """Environment variable holding the key; ``"NONE"`` means send no key."""
    api_version: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int | None = None
    rpm: int | None = None
    """Requests per minute, shared across processes (``harness.limits``)."""
    tpm: int | None = None
    """Tokens per minute, shared across processes (``harness.limits``)."""
    timeout: float | None = None
    retries: int | None = None
    price: Price | None = None
    mock: Mapping[str, Any] = field(default_factory=dict)
    """Settings of offline models: ``responses``, ``latency_ms``, ``ttft_ms``, ``error``."""
    max_response_bytes: int | None = None
    """The largest response body (or sum of a stream's bytes) to read from this model;
    ``None``: the config's ``[defaults]``, else the transport's default."""

    @property
    def info(self) -> ProviderInfo:
        """The provider table entry."""
        return PROVIDERS[self.provider]

    @property
    def family(self) -> str:
        """The adapter family that speaks this model's API."""
        return self.info.family

    @property
    def full_name(self) -> str:
        """``provider/model``."""
        return f"{self.provider}/{self.model}"

    def resolve_api_base(self, override: str | None = None) -> str | None:
        """The base URL: call override, then config, then env override, then provider default.

        The rule is ``harness.providers.registry.resolve_api_base``.
        """
        return resolve_api_base(self.info, self.api_base, override)

    def resolve_api_key(
        self, override: str | None = None, api_base: str | None = None
    ) -> str | None:
        """Find the key (call override, ``api_key_env``, the provider's variables).

        Raises ``ConfigError`` naming the variables to set when a key is required and absent.
        A custom ``api_base`` on an OpenAI-compatible provider makes the key optional, as
        local servers (vLLM, Ollama, llama.cpp) rarely need one.
        """
        if override:
            return override
        if self.api_key_env == "NONE":
            return None
        names = (self.api_key_env,) if self.api_key_env else self.info.key_env
        for var in names:
            if var and os.environ.get(var):
                return os.environ[var]
        required = self.info.key_required
        if self.family == "openai" and api_base and api_base != self.info.api_base:
            required = False
        if required:
            hint = " or ".join(n for n in names if n) or "an api_key_env"
            raise ConfigError(
                f"no API key for model {self.name!r}: set {hint}, "
                "or pass api_key=..., or set api_key_env in the config",
                provider=self.provider,
                model=self.name,
            )
        return None


_MODEL_KEYS = {
    "model",
    "api_base",
    "api_key_env",
    "api_version",
    "params",
    "headers",
    "max_concurrency",
    "timeout",
    "retries",
    "price",
    "responses",
    "latency_ms",
    "ttft_ms",
    "error",
    "rpm",
    "tpm",
    "max_response_bytes",
}
_DEFAULT_KEYS = {"timeout", "retries", "max_concurrency", "max_response_bytes"}
_TOP_KEYS = {
    "models",
    "defaults",
    "cache",
    "report",
    "suites",
    "limits",
    "prices",
    "embedding_model",
    "judge_model",
}
_PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")

MAX_TIMEOUT = 86_400.0
"""The longest ``timeout`` (seconds) a config may set: a day. Much more overflows the
platform's timers."""
MAX_RETRIES = 100
"""The most ``retries`` a config may set (the backoff doubles per retry)."""
MIN_RESPONSE_BYTES = 1024
"""The smallest ``max_response_bytes``: less would refuse an ordinary error body."""
_MAX_INT = 2**63 - 1
"""Counts are stored in SQLite (``harness.limits``), whose integers are 64-bit."""


class CacheSettings(NamedTuple):
    """``[cache]``: the response store. Its presence turns the store on for the library."""

    mode: str | None = None
    """``use``, ``replay``, ``record``, ``refresh-failed`` or ``off``; ``None``: not given
    (``use``)."""
    path: str | None = None
    """The SQLite file; ``None``: not given (``harness.paths.DEFAULT_CACHE_PATH``)."""


class ReportSettings(NamedTuple):
    """``[report]``: where the pytest plugin writes ``results.jsonl`` and the reports."""

    dir: str | None = None
    """The report directory, relative to the pytest rootdir; ``None``: ``reports``."""
    keep_runs: int | None = None
    """``keep_runs``: how many runs ``<dir>/runs/`` keeps (0: no history); ``None``: the
    plugin's default, 20 (``harness.report.history.DEFAULT_KEEP_RUNS``)."""


class SuiteSettings(NamedTuple):
    """``[suites]``: which files the pytest plugin collects as YAML suites."""

    globs: tuple[str, ...] | None = None
    """``glob``: one pattern, several separated by spaces, or a list; ``None``:
    ``suites/**/*.yaml suites/**/*.yml``."""


class LimitsSettings(NamedTuple):
    """``[limits]``: the SQLite file where processes share rate limits and the cost cap."""

    path: str | None = None
    """``None``: ``harness.paths.DEFAULT_LIMITS_PATH``."""


@dataclass(frozen=True, slots=True)
class HarnessConfig:
    """Aliases and defaults from ``harness.toml``, ``[tool.harness]``, or built in code."""

    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    max_concurrency: int | None = DEFAULT_MAX_CONCURRENCY
    source: str | None = None
    """Where the config came from (a file path), for error messages."""
    cache: CacheSettings | None = None
    """``[cache]``; ``None`` when the config has no such table (no store, for the library)."""
    report: ReportSettings = ReportSettings()
    """``[report]``."""
    suites: SuiteSettings = SuiteSettings()
    """``[suites]``."""
    limits: LimitsSettings = LimitsSettings()
    """``[limits]``."""
    prices: Mapping[str, Price] = field(default_factory=dict)
    """``[prices."provider/model"]`` from the config: they override the built-in table
    (``harness.prices``) for those models; an alias's own ``price`` overrides both."""
    max_response_bytes: int | None = None
    """``[defaults].max_response_bytes``: the largest response body (or sum of a stream's
    bytes) to read; ``None``: the transport's default (32 MiB). A model's own setting wins."""
    embedding_model: str | None = None
    """``embedding_model``: the model (alias or ``provider/name``) of ``similar``'s
    ``scorer: embedding`` when the check names none; ``None``: not configured."""
    judge_model: str | None = None
    """``judge_model = "..."`` (top level): the model judge checks and ``compare:`` ask when
    they name none (an alias or ``provider/name``); else an alias named ``judge``."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> HarnessConfig:
        """Validate and build a config from parsed TOML (or an equivalent dict)."""
        where = source or "config"
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown top-level key(s) {_names(unknown)}; "
                f"expected {', '.join(sorted(_TOP_KEYS))}"
            )
        defaults = _table(data.get("defaults", {}), f"{where}: [defaults]")
        bad = set(defaults) - _DEFAULT_KEYS
        if bad:
            raise ConfigError(
                f"{where}: [defaults]: unknown key(s) {_names(bad)}; "
                f"expected {', '.join(sorted(_DEFAULT_KEYS))}"
            )
        timeout = _timeout(defaults.get("timeout", DEFAULT_TIMEOUT), f"{where}: [defaults].timeout")
        retries = _retries(defaults.get("retries", DEFAULT_RETRIES), f"{where}: [defaults].retries")
        max_conc = (
            _int(defaults["max_concurrency"], f"{where}: [defaults].max_concurrency", 1)
            if "max_concurrency" in defaults
            else None
        )
        max_bytes = _max_response_bytes(defaults, f"{where}: [defaults]")
        prices = {
            name: _price_from_table(table, f"{where}: [prices.{name!r}]", model=name)
            for name, table in _table(data.get("prices", {}), f"{where}: [prices]").items()
        }
        models: dict[str, ModelSpec] = {}
        for alias, table in _table(data.get("models", {}), f"{where}: [models]").items():
            spec = _model_from_table(alias, table, where)
            if "price" not in table and spec.full_name in prices:
                spec = replace(spec, price=prices[spec.full_name])
            models[alias] = spec
        config = cls(
            models,
            timeout,
            retries,
            max_conc,
            source,
            prices=MappingProxyType(prices),
            max_response_bytes=max_bytes,
            cache=_cache_settings(data["cache"], where) if "cache" in data else None,
            report=_report_settings(data, where),
            suites=SuiteSettings(_suite_globs(data, where)),
            limits=LimitsSettings(_opt_path(data, "limits", "path", where)),
            judge_model=_opt_str(data.get("judge_model"), f"{where}: judge_model"),
        )
        if "embedding_model" in data:
            config = replace(config, embedding_model=_embedding_model(config, data, where))
        return config

    def resolve(self, name: str) -> ModelSpec:
        """Turn an alias or ``provider/model`` string into a ``ModelSpec``.

        Raises ``ConfigError`` for an unknown alias or provider, naming the choices.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"model must be a non-empty string, got {name!r}")
        if name in self.models:
            return self.models[name]
        spec = parse_model_string(name, known_aliases=tuple(self.models))
        price = self.prices.get(spec.full_name) if self.prices else None
        return spec if price is None else replace(spec, price=price)


def parse_model_string(name: str, known_aliases: tuple[str, ...] = ()) -> ModelSpec:
    """Parse ``provider/model`` into a bare ``ModelSpec`` (no config applied)."""
    provider, sep, model = name.partition("/")
    if not sep and (inferred := infer_provider(name)):
        return ModelSpec(
            name=name, provider=inferred, model=name, price=builtin_price(inferred, name)
        )
    if not sep or not model:
        hint = f" or one of the aliases {', '.join(known_aliases)}" if known_aliases else ""
        raise ConfigError(
            f"model {name!r} is not of the form 'provider/model'{hint}; "
            f"providers: {', '.join(sorted(PROVIDERS))}",
            model=name,
        )
    if provider_info(provider) is None:
        raise ConfigError(
            f"unknown provider {provider!r} in model {name!r}; "
            f"known providers: {', '.join(sorted(PROVIDERS))}",
            model=name,
        )
    return ModelSpec(
        name=name, provider=provider, model=model, price=builtin_price(provider, model)
    )


_BARE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("command", "cohere"),
    ("mistral-", "mistral"),
    ("open-mistral", "mistral"),
    ("codestral", "mistral"),
    ("deepseek-", "deepseek"),
)


def infer_provider(bare_name: str) -> str | None:
    """The provider of a well-known model name given without a prefix (``gpt-4o`` → openai).

    This keeps LiteLLM-style calls (``model="claude-2"``) working; anything else needs
    ``provider/name``.
    """
    for prefix, provider in _BARE_PREFIXES:
        if bare_name.startswith(prefix):
            return provider
    return None


def _model_from_table(alias: str, table: Any, where: str) -> ModelSpec:
    ctx = f"{where}: [models.{alias}]"
    table = _table(table, ctx)
    bad = set(table) - _MODEL_KEYS
    if bad:
        raise ConfigError(
            f"{ctx}: unknown key(s) {_names(bad)}; "
            f"expected some of {', '.join(sorted(_MODEL_KEYS))}"
        )
    if "model" not in table:
        raise ConfigError(f"{ctx}: missing 'model' (a 'provider/name' string)")
    try:
        base = parse_model_string(_str(table["model"], f"{ctx}.model"))
    except ConfigError as exc:
        raise ConfigError(f"{ctx}.model: {exc.message}") from None
    price = _price_from_table(table["price"], f"{ctx}.price") if "price" in table else base.price
    mock: dict[str, Any] = {}
    if "responses" in table:
        responses = table["responses"]
        if not isinstance(responses, list) or not responses:
            raise ConfigError(f"{ctx}.responses: expected a non-empty list of answers")
        mock["responses"] = responses
    for name in ("latency_ms", "ttft_ms"):
        if name in table:
            mock[name] = _number(table[name], f"{ctx}.{name}", maximum=MAX_TIMEOUT * 1000)
    if "error" in table:
        mock["error"] = table["error"]
    headers = _table(table.get("headers", {}), f"{ctx}.headers")
    return replace(
        base,
        name=alias,
        api_base=_opt_str(table.get("api_base"), f"{ctx}.api_base"),
        api_key_env=_opt_str(table.get("api_key_env"), f"{ctx}.api_key_env"),
        api_version=_opt_str(table.get("api_version"), f"{ctx}.api_version"),
        params=MappingProxyType(dict(_table(table.get("params", {}), f"{ctx}.params"))),
        headers=MappingProxyType(secret_headers({str(k): str(v) for k, v in headers.items()})),
        max_concurrency=(
            _int(table["max_concurrency"], f"{ctx}.max_concurrency", 1)
            if "max_concurrency" in table
            else None
        ),
        rpm=_int(table["rpm"], f"{ctx}.rpm", 1) if "rpm" in table else None,
        tpm=_int(table["tpm"], f"{ctx}.tpm", 1) if "tpm" in table else None,
        timeout=_timeout(table["timeout"], f"{ctx}.timeout") if "timeout" in table else None,
        retries=_retries(table["retries"], f"{ctx}.retries") if "retries" in table else None,
        price=price,
        mock=MappingProxyType(mock),
        max_response_bytes=_max_response_bytes(table, ctx),
    )


def _price_from_table(value: Any, ctx: str, *, model: str | None = None) -> Price:
    """A ``Price`` from ``{input_per_mtok, output_per_mtok, cached_input_per_mtok}``."""
    if model is not None:
        try:
            parse_model_string(model)
        except ConfigError as exc:
            raise ConfigError(f"{ctx}: {exc.message}") from None
    p = _table(value, ctx)
    bad = set(p) - set(_PRICE_KEYS)
    if bad:
        raise ConfigError(f"{ctx}: unknown key(s) {_names(bad)}; expected {', '.join(_PRICE_KEYS)}")
    cached = p.get("cached_input_per_mtok")
    return Price(
        _number(p.get("input_per_mtok", 0.0), f"{ctx}.input_per_mtok"),
        _number(p.get("output_per_mtok", 0.0), f"{ctx}.output_per_mtok"),
        None if cached is None else _number(cached, f"{ctx}.cached_input_per_mtok"),
    )


_CACHE_MODES = ("use", "replay", "record", "refresh-failed", "off")


def _cache_settings(value: Any, where: str) -> CacheSettings:
    table = _table(value, f"{where}: [cache]")
    _only(table, ("mode", "path"), f"{where}: [cache]")
    if "mode" in table and table["mode"] not in _CACHE_MODES:
        raise ConfigError(
            f"{where}: [cache].mode: {_short(table['mode'])} is not one of "
            f"{', '.join(_CACHE_MODES)}"
        )
    path = _str(table["path"], f"{where}: [cache].path") if "path" in table else None
    return CacheSettings(table.get("mode"), path)


def _embedding_model(config: HarnessConfig, data: Mapping[str, Any], where: str) -> str:
    """``embedding_model``, checked: non-empty text that resolves to a model."""
    value = data["embedding_model"]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}: embedding_model: expected an alias or 'provider/model', got {value!r}"
        )
    try:
        config.resolve(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: embedding_model: {exc.message}") from None
    return value


def _opt_path(data: Mapping[str, Any], name: str, key: str, where: str) -> str | None:
    """``[name] key``, a non-empty string, or ``None`` when not given."""
    if name not in data:
        return None
    table = _table(data[name], f"{where}: [{name}]")
    _only(table, (key,), f"{where}: [{name}]")
    return _str(table[key], f"{where}: [{name}].{key}") if key in table else None


def _report_settings(data: Mapping[str, Any], where: str) -> ReportSettings:
    """``[report]``: ``dir`` (a non-empty string) and ``keep_runs`` (an integer >= 0)."""
    if "report" not in data:
        return ReportSettings()
    table = _table(data["report"], f"{where}: [report]")
    _only(table, ("dir", "keep_runs"), f"{where}: [report]")
    directory = _str(table["dir"], f"{where}: [report].dir") if "dir" in table else None
    keep = table.get("keep_runs")
    if keep is not None:
        keep = _int(keep, f"{where}: [report].keep_runs", 0, 100_000)
    return ReportSettings(directory, keep)


def _suite_globs(data: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    if "suites" not in data:
        return None
    table = _table(data["suites"], f"{where}: [suites]")
    _only(table, ("glob",), f"{where}: [suites]")
    if "glob" not in table:
        return None
    value, ctx = table["glob"], f"{where}: [suites].glob"
    if isinstance(value, str):
        globs = tuple(value.split())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        globs = tuple(g for v in value for g in v.split())
    else:
        raise ConfigError(f"{ctx}: expected a string or a list of strings, got {_short(value)}")
    if not globs:
        raise ConfigError(f"{ctx}: expected at least one pattern")
    return globs


def _only(table: Mapping[str, Any], keys: tuple[str, ...], ctx: str) -> None:
    bad = set(table) - set(keys)
    if bad:
        raise ConfigError(f"{ctx}: unknown key(s) {_names(bad)}; expected {', '.join(keys)}")


def _names(keys: Iterable[Any]) -> str:
    return ", ".join(sorted(str(k) for k in keys))


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters so a huge value keeps errors readable."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(value: Any, ctx: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{ctx}: expected a table, got {type(value).__name__} {_short(value)}")
    return value


def _str(value: Any, ctx: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{ctx}: expected a string, got {type(value).__name__} {_short(value)}")
    return value


def _opt_str(value: Any, ctx: str) -> str | None:
    return None if value is None else _str(value, ctx)


def _finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def _number(value: Any, ctx: str, *, maximum: float | None = None) -> float:
    """A finite number from 0 to ``maximum``."""
    number = _finite(value)
    if number is None or number < 0:
        raise ConfigError(f"{ctx}: expected a non-negative number, got {_short(value)}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{ctx}: expected a number of at most {maximum:g}, got {_short(value)}")
    return number


def _timeout(value: Any, ctx: str) -> float:
    """Seconds: a finite number above 0 and at most ``MAX_TIMEOUT``."""
    number = _finite(value)
    if number is None or not 0 < number <= MAX_TIMEOUT:
        raise ConfigError(
            f"{ctx}: expected a number of seconds above 0 and at most {MAX_TIMEOUT:g}, "
            f"got {_short(value)}"
        )
    return number


def _int(value: Any, ctx: str, minimum: int, maximum: int = _MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{ctx}: expected an integer >= {minimum}, got {_short(value)}")
    if value > maximum:
        raise ConfigError(
            f"{ctx}: expected an integer from {minimum} to {maximum}, got {_short(value)}"
        )
    return value


def _retries(value: Any, ctx: str) -> int:
    return _int(value, ctx, 0, MAX_RETRIES)


def _max_response_bytes(table: Mapping[str, Any], ctx: str) -> int | None:
    if "max_response_bytes" not in table:
        return None
    return _int(table["max_response_bytes"], f"{ctx}.max_response_bytes", MIN_RESPONSE_BYTES)


_BOM = b"\xef\xbb\xbf"


def _decode(raw: bytes, file: Path) -> str:
    """The text of a config file; a ``ConfigError`` naming the byte offset if not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(_BOM) if raw.startswith(_BOM) else 0)
        line = raw[:offset].count(b"\n") + 1
        raise ConfigError(
            f"{file}: not UTF-8 text: {exc.reason} at byte {offset} (line {line})"
        ) from None


def _parse_toml(text: str, file: Path) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid TOML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None


_TOOL_HARNESS_RE = re.compile(rb"""tool\s*\.\s*["']?harness\b""")


def find_config_file(start: Path | None = None) -> Path | None:
    """Find the config file in ``start`` (default: the working directory).

    That is ``harness.toml``, else a ``pyproject.toml`` with a ``[tool.harness]`` table. A
    ``pyproject.toml`` that cannot be parsed (not UTF-8, invalid TOML) is returned when its
    bytes mention ``tool.harness``, so that ``load_config`` reports what is wrong with it;
    otherwise it is not the harness's business and is passed over.
    """
    here = Path(start or Path.cwd())
    toml = here / "harness.toml"
    if toml.is_file():
        return toml
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        try:
            raw = pyproject.read_bytes()
        except OSError:
            return None
        try:
            data = _parse_toml(_decode(raw, pyproject), pyproject)
        except ConfigError:
            return pyproject if _TOOL_HARNESS_RE.search(raw) else None
        tool = data.get("tool")
        if isinstance(tool, dict) and "harness" in tool:
            return pyproject
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> HarnessConfig:
    """Load the config from ``path``, or find it in the working directory.

    A ``pyproject.toml`` path reads its ``[tool.harness]`` table; any other path is read as a
    harness TOML file. With no path and no file found, the empty default config is returned.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8 (naming the byte offset), is not
            valid TOML, or has a bad field (naming the file and the field).
    """
    file = Path(path) if path is not None else find_config_file()
    if file is None:
        return HarnessConfig()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    data: Mapping[str, Any] = _parse_toml(_decode(raw, file), file)
    if file.name == "pyproject.toml":
        where = f"{file} [tool.harness]"
        tool = data.get("tool", {})
        if not isinstance(tool, Mapping):
            raise ConfigError(f"{file}: [tool]: expected a table, got {type(tool).__name__}")
        return HarnessConfig.from_dict(tool.get("harness", {}), where)
    return HarnessConfig.from_dict(data, str(file))
