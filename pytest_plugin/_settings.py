"""Command-line and ini options, resolved once into a frozen ``Settings``.

Precedence: command line, then ini, then the harness config file (``[cache]``, ``[report]``,
``[suites]``, ``[limits]``, typed by ``harness.config``), then default. The config file is
read here once, with the rest (``load_harness_config``). Bad values raise
``pytest.UsageError`` naming the option and what would be valid. Raw option values stay
plain strings and numbers, because pytest-xdist ships them to the workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.paths import DEFAULT_CACHE_PATH, DEFAULT_LIMITS_PATH
from harness.report.history import DEFAULT_KEEP_RUNS

if TYPE_CHECKING:
    from harness.config import HarnessConfig

__all__ = ["Settings", "add_options", "load_harness_config", "resolve_settings"]

DEFAULT_SUITE_GLOB = "suites/**/*.yaml suites/**/*.yml"
DEFAULT_NETWORK_CONCURRENCY = 32
GATE_MODES = ("items", "rate")
DEFAULT_ADAPTIVE_MAX = 10


@dataclass(frozen=True, slots=True)
class Settings:
    """Every option the plugin reads, validated."""

    models: tuple[str, ...]
    """Models selected on the command line or in ini; empty means "the suite's own"."""
    config_path: Path | None
    report_dir: Path
    repeat: int | None
    """``--harness-repeat``: the repeats (with ``adaptive``, the most) for every case."""
    min_pass_rate: float | None
    max_concurrency: int
    offline: bool
    suite_globs: tuple[str, ...]
    baseline: Path | None = None
    fail_on_regression: bool = False
    cache_mode: str | None = None
    """The store mode given on the command line or in ini; ``None``: the config file's
    ``[cache] mode``, else ``use`` (the ``Harness`` reads the config's)."""
    cache_path: Path = DEFAULT_CACHE_PATH
    """The store's file: the config's ``[cache] path`` (relative to the rootdir), else
    ``.harness/cache.sqlite`` under the rootdir."""
    limits_path: Path = DEFAULT_LIMITS_PATH
    """Where processes share limits and the cost cap: the config's ``[limits] path``, else
    ``.harness/limits.sqlite`` under the rootdir."""
    stream: bool = True
    max_cost: float | None = None
    adaptive: bool = False
    """``--harness-repeat auto[:MAX]``: every case repeats adaptively, up to ``repeat``."""
    gate: str = "items"
    """``items``: any failing item fails the session (pytest's own rule), and the pass-rate
    and regression gates can only add failures; ``rate``: failing harness items are reported
    but the exit status is decided by those gates."""
    pairwise: tuple[str, str] | None = None
    """``--harness-pairwise a,b``: judge a against b head to head in every suite."""
    pairwise_judge: str | None = None
    """``--harness-pairwise-judge``: the judge for it (else the config's judge model)."""
    baseline_run: int | None = None
    """``--harness-baseline last`` (or ``previous``): 0; ``last~N``: N. The baseline is then
    that kept run under ``<report_dir>/runs`` (0 the newest), read by the controller."""
    keep_runs: int = DEFAULT_KEEP_RUNS
    """``--harness-keep-runs``: how many runs ``<report_dir>/runs`` keeps; 0: none."""


def add_options(parser: pytest.Parser) -> None:
    """Register the ``harness`` option group and ini keys."""
    group = parser.getgroup("harness", "LLM testing with harness")
    group.addoption(
        "--harness-models",
        default=None,
        metavar="MODELS",
        help="comma-separated aliases or provider/model strings to run (ini: harness_models)",
    )
    group.addoption(
        "--harness-config",
        default=None,
        metavar="PATH",
        help="config file (default: harness.toml, else [tool.harness] in pyproject.toml)",
    )
    group.addoption(
        "--harness-report-dir",
        default=None,
        metavar="DIR",
        help="where results.jsonl and the reports go (ini: harness_report_dir; default reports/)",
    )
    group.addoption(
        "--harness-repeat",
        default=None,
        metavar="N",
        help="run every suite case and repeat-marked test N times (overrides the files); "
        "auto[:MAX] repeats each only until its verdict is decided, up to MAX (default "
        f"{DEFAULT_ADAPTIVE_MAX})",
    )
    group.addoption(
        "--harness-min-pass-rate",
        default=None,
        metavar="RATE",
        help="fail the session when the overall or any model's pass rate is below RATE (0..1)",
    )
    group.addoption(
        "--harness-max-concurrency",
        default=None,
        metavar="N",
        help="calls in flight per network model without a limit of its own "
        f"(default {DEFAULT_NETWORK_CONCURRENCY})",
    )
    group.addoption(
        "--harness-offline",
        action="store_true",
        default=None,
        help="send nothing: answers in the response store replay, any other call is refused "
        "(ini: harness_offline)",
    )
    group.addoption(
        "--harness-baseline",
        default=None,
        metavar="PATH",
        help="a previous results.json (or a folder holding one), or last (also: previous) for "
        "the newest run kept in <report-dir>/runs, last~N for the one N before it: the reports "
        "show what changed (ini: harness_baseline)",
    )
    group.addoption(
        "--harness-keep-runs",
        default=None,
        metavar="N",
        help="how many runs <report-dir>/runs keeps for --harness-baseline last and "
        "`harness runs` (default 20; 0: keep none; ini: harness_keep_runs)",
    )
    group.addoption(
        "--harness-fail-on-regression",
        action="store_true",
        default=None,
        help="fail the session on a statistically significant regression against the baseline",
    )
    group.addoption(
        "--harness-cache",
        default=None,
        metavar="MODE",
        help="response store: use (default), replay (offline CI; a miss fails), record, "
        "refresh-failed, off (ini: harness_cache)",
    )
    group.addoption(
        "--harness-stream",
        action="store_true",
        dest="harness_stream",
        default=None,
        help="stream suite calls to measure time to first token (the default; "
        "ini: harness_stream)",
    )
    group.addoption(
        "--harness-no-stream",
        action="store_false",
        dest="harness_stream",
        help="do not stream suite calls (no time to first token)",
    )
    parser.addini(
        "harness_stream", "stream suite calls (time to first token)", type="bool", default=True
    )
    group.addoption(
        "--harness-max-cost",
        default=None,
        metavar="USD",
        help="cap the session's spend at USD: a request is sent only if its estimated cost "
        "fits; the remaining items are skipped with the reason",
    )
    group.addoption(
        "--harness-gate",
        default=None,
        metavar="MODE",
        choices=GATE_MODES,
        help="items (default): any failing item fails the session; rate: failing harness "
        "items are reported, and the exit status is decided by --harness-min-pass-rate and "
        "--harness-fail-on-regression (ini: harness_gate)",
    )
    group.addoption(
        "--harness-pairwise",
        default=None,
        metavar="A,B",
        help="judge model A against model B head to head on every case both answered "
        "(each pair judged twice, the order swapped); adds a head-to-head table to the reports",
    )
    group.addoption(
        "--harness-pairwise-judge",
        default=None,
        metavar="MODEL",
        help="the judge for --harness-pairwise (default: judge_model in the config, else the "
        "alias judge)",
    )
    parser.addini("harness_gate", "items or rate (see --harness-gate)", default="")
    parser.addini("harness_cache", "response store mode", default="")
    parser.addini("harness_baseline", "baseline results.json, or last", default="")
    parser.addini("harness_keep_runs", "runs kept in <report-dir>/runs (default 20)", default="")
    parser.addini("harness_models", "default models (comma-separated)", default="")
    parser.addini("harness_report_dir", "report directory (default reports)", default="")
    parser.addini(
        "harness_suite_glob",
        f"glob(s) of YAML suite files, space-separated (default {DEFAULT_SUITE_GLOB})",
        default="",
    )
    parser.addini("harness_offline", "refuse network calls", type="bool", default=False)
    parser.addini("harness_min_pass_rate", "session pass-rate gate (0..1)", default="")
    parser.addini("harness_max_concurrency", "calls in flight per network model", default="")


def _option(config: pytest.Config, name: str, ini: str | None = None) -> str | None:
    value = config.getoption(name)
    if value is not None:
        return str(value)
    if ini is not None:
        raw = config.getini(ini)
        if raw not in ("", None):
            return str(raw)
    return None


def _int(value: str | None, flag: str, minimum: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise pytest.UsageError(f"{flag}: expected an integer >= {minimum}, got {value!r}")
    return number


def config_path(config: pytest.Config) -> Path | None:
    """``--harness-config``, resolved against the invocation directory and checked."""
    config_raw = _option(config, "harness_config")
    if config_raw is None:
        return None
    path = Path(config_raw)
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    if not path.is_file():
        raise pytest.UsageError(f"--harness-config: no such file: {config_raw}")
    return path


def load_harness_config(config: pytest.Config) -> HarnessConfig:
    """The harness config file's contents (an error in it is a ``pytest.UsageError``).

    ``--harness-config``, else the first config file found in the invocation directory,
    then the rootdir; none: the empty config.
    """
    from harness.config import HarnessConfig, find_config_file, load_config
    from harness.errors import ConfigError

    try:
        path = config_path(config)
        if path is not None:
            return load_config(path)
        for where in (Path(config.invocation_params.dir), config.rootpath):
            found = find_config_file(where)
            if found is not None:
                return load_config(found)
    except ConfigError as exc:
        raise pytest.UsageError(f"harness config: {exc.message}") from None
    return HarnessConfig()


def resolve_settings(config: pytest.Config, file: HarnessConfig | None = None) -> Settings:
    """Read and validate every option once.

    ``file`` is the harness config: its tables fill in what neither the command line nor
    ini gave.
    """
    from harness.config import HarnessConfig

    file = file if file is not None else HarnessConfig()
    models_raw = _option(config, "harness_models", "harness_models") or ""
    models = tuple(m.strip() for m in models_raw.split(",") if m.strip())
    if models:  # every unknown name at once, before anything is collected
        from pytest_plugin._preflight import check_selected_models

        given = config.getoption("harness_models") is not None
        check_selected_models(file, models, "--harness-models" if given else "harness_models")
    rate_raw = _option(config, "harness_min_pass_rate", "harness_min_pass_rate")
    min_pass_rate = None
    if rate_raw is not None:
        try:
            min_pass_rate = float(rate_raw)
        except ValueError:
            min_pass_rate = -1.0
        if not 0.0 <= min_pass_rate <= 1.0:
            raise pytest.UsageError(
                "--harness-min-pass-rate: expected a number from 0 to 1 (e.g. 0.9), "
                f"got {rate_raw!r}"
            )
    report_dir = _under(
        config.rootpath,
        _option(config, "harness_report_dir", "harness_report_dir") or file.report.dir,
        "reports",
    )
    cache_given = file.cache.path if file.cache is not None else None
    cache_path = _under(config.rootpath, cache_given, DEFAULT_CACHE_PATH)
    limits_path = _under(config.rootpath, file.limits.path, DEFAULT_LIMITS_PATH)
    offline_flag = config.getoption("harness_offline")
    offline = (
        bool(offline_flag) if offline_flag is not None else bool(config.getini("harness_offline"))
    )
    ini_globs = str(config.getini("harness_suite_glob") or "").split()
    globs = tuple(ini_globs) or file.suites.globs or tuple(DEFAULT_SUITE_GLOB.split())
    baseline_raw = _option(config, "harness_baseline", "harness_baseline")
    baseline = None
    baseline_run = _run_ref(baseline_raw)
    if baseline_raw is not None and baseline_run is None:
        baseline = Path(baseline_raw)
        if not baseline.is_absolute():
            baseline = Path(config.invocation_params.dir) / baseline
        if baseline.is_dir() and (baseline / "results.json").is_file():
            baseline = baseline / "results.json"  # a kept run's folder, or a report dir
        if not baseline.is_file():
            raise pytest.UsageError(f"--harness-baseline: no such file: {baseline_raw}")
    fail_on_regression = bool(config.getoption("harness_fail_on_regression"))
    cache_mode = _option(config, "harness_cache", "harness_cache")
    if cache_mode is not None:
        from harness.cache import parse_mode

        try:
            cache_mode = parse_mode(cache_mode).value
        except ValueError as exc:
            raise pytest.UsageError(f"--harness-cache: {exc}") from None
    if fail_on_regression and baseline is None and baseline_run is None:
        raise pytest.UsageError(
            "--harness-fail-on-regression needs --harness-baseline PATH (or last)"
        )
    repeat, adaptive = _repeat(_option(config, "harness_repeat"))
    gate = _option(config, "harness_gate", "harness_gate") or "items"
    if gate not in GATE_MODES:
        raise pytest.UsageError(
            f"harness_gate: expected one of {', '.join(GATE_MODES)}, got {gate!r}"
        )
    if gate == "rate" and min_pass_rate is None and not fail_on_regression:
        raise pytest.UsageError(
            "--harness-gate rate lets the gates decide the exit status: give "
            "--harness-min-pass-rate RATE and/or --harness-fail-on-regression"
        )
    pairwise = _pairwise(_option(config, "harness_pairwise"), file)
    pairwise_judge = _option(config, "harness_pairwise_judge")
    if pairwise_judge is not None:
        pairwise_judge = pairwise_judge.strip()
        _known_model(file, pairwise_judge, "--harness-pairwise-judge")
    return Settings(
        models=models,
        config_path=config_path(config),
        report_dir=report_dir,
        repeat=repeat,
        adaptive=adaptive,
        min_pass_rate=min_pass_rate,
        max_concurrency=_int(
            _option(config, "harness_max_concurrency", "harness_max_concurrency"),
            "--harness-max-concurrency",
            1,
        )
        or DEFAULT_NETWORK_CONCURRENCY,
        offline=offline,
        suite_globs=globs,
        baseline=baseline,
        fail_on_regression=fail_on_regression,
        cache_mode=cache_mode,
        cache_path=cache_path,
        limits_path=limits_path,
        stream=_stream(config),
        max_cost=_max_cost(_option(config, "harness_max_cost")),
        gate=gate,
        pairwise=pairwise,
        pairwise_judge=pairwise_judge,
        baseline_run=baseline_run,
        keep_runs=_keep_runs(config, file),
    )


def _run_ref(value: str | None) -> int | None:
    """``last``, ``previous``, ``last~N``: how far back in the kept runs (else ``None``)."""
    if value is None:
        return None
    from harness.report.history import parse_run_ref

    return parse_run_ref(value)


def _keep_runs(config: pytest.Config, file: HarnessConfig) -> int:
    """``--harness-keep-runs``, then ini, then ``[report] keep_runs``, then 20."""
    given = _int(
        _option(config, "harness_keep_runs", "harness_keep_runs"), "--harness-keep-runs", 0
    )
    if given is not None:
        return given
    return file.report.keep_runs if file.report.keep_runs is not None else DEFAULT_KEEP_RUNS


def _pairwise(value: str | None, file: HarnessConfig) -> tuple[str, str] | None:
    """``--harness-pairwise a,b``: two different models that resolve."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise pytest.UsageError(
            f"--harness-pairwise: expected two different models as A,B, got {value!r}"
        )
    for name in names:
        _known_model(file, name, "--harness-pairwise")
    return names[0], names[1]


def _known_model(file: HarnessConfig, name: str, flag: str) -> None:
    from harness.errors import ConfigError

    try:
        file.resolve(name)
    except ConfigError as exc:
        raise pytest.UsageError(f"{flag}: {exc.message}") from None


def _under(root: Path, given: str | None, default: str | os.PathLike[str]) -> Path:
    """``given`` (else ``default``) as a path, relative ones under ``root``."""
    path = Path(given if given else default)
    return path if path.is_absolute() else root / path


def _repeat(value: str | None) -> tuple[int | None, bool]:
    """``N`` → (N, fixed); ``auto`` or ``auto:MAX`` → (MAX, adaptive)."""
    if value is None:
        return None, False
    head, _, most = value.partition(":")
    if head.strip().lower() != "auto":
        return _int(value, "--harness-repeat", 1), False
    if not most:
        return DEFAULT_ADAPTIVE_MAX, True
    return _int(most, "--harness-repeat auto:MAX", 1), True


def _stream(config: pytest.Config) -> bool:
    option = config.getoption("harness_stream")
    return bool(config.getini("harness_stream") if option is None else option)


def _max_cost(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        cost = float(value.lstrip("$"))
    except ValueError:
        cost = -1.0
    if cost < 0:
        raise pytest.UsageError(
            f"--harness-max-cost: expected dollars >= 0 (e.g. 2.50), got {value!r}"
        )
    return cost
