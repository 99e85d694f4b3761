"""The reports' number formats: one rule per quantity (``harness.report.formatting``)."""

from __future__ import annotations

import pytest

from harness.report.formatting import (
    NONE,
    duration,
    integer,
    interval,
    ms,
    p_text,
    p_value,
    percent,
    plural,
    points,
    signed,
    speed,
    timestamp,
    usd,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, NONE),
        (0, "$0"),
        (-0.0, "$0"),
        (0.0123, "$0.0123"),
        (0.01, "$0.0100"),
        (0.00035, "$0.000350"),  # below a cent: six decimals, never rounded away
        (0.0000001, "$0.000000"),
        (1234.5, "$1,234.50"),
        (1, "$1.00"),
        (0.99994, "$0.9999"),
        (-0.002, "-$0.002000"),
        (-1.5, "-$1.50"),
    ],
)
def test_usd(value: float | None, text: str) -> None:
    assert usd(value) == text


def test_ms_is_whole_milliseconds_with_or_without_the_unit() -> None:
    assert ms(812.4) == "812 ms"
    assert ms(12_345.6) == "12,346 ms"
    assert ms(12_345.6, unit=False) == "12,346"
    assert ms(None) == ms(None, unit=False) == NONE


def test_rates_and_points() -> None:
    assert percent(0.718) == "71.8%"
    assert percent(0.9, 0) == "90%"
    assert percent(None) == NONE
    assert interval(0.602, 0.81) == "60.2%–81.0%"
    assert points(0.025) == "+2.5 pp"
    assert points(-0.25) == "-25.0 pp"
    assert points(None) == NONE


def test_p_values() -> None:
    assert (p_value(0.0042), p_text(0.0042)) == ("0.004", "p=0.004")
    assert (p_value(0.0004), p_text(0.0004)) == ("<0.001", "p<0.001")
    assert p_value(None) == p_text(None) == NONE


def test_counts_speed_and_signs() -> None:
    assert integer(1234) == "1,234"
    assert integer(None) == NONE
    assert speed(1234.5) == "1,234"
    assert signed(12, ms) == "+12 ms"
    assert signed(-12, ms) == "-12 ms"
    assert signed(0, usd) == "$0"
    assert signed(None, usd) == NONE
    assert plural(1, "model") == "1 model"
    assert plural(3, "model") == "3 models"


def test_durations_and_timestamps() -> None:
    assert duration(0.6) == "0.60 s"
    assert duration(65.5) == "1 min 6 s"
    assert duration(3 * 3600 + 4) == "3 h 0 min 4 s"
    assert duration(None) == duration("soon") == duration(True) == NONE
    assert timestamp(0) == "1970-01-01 00:00:00 UTC"
    assert timestamp("yesterday") == "yesterday"
    assert timestamp(None) == NONE
