"""ISO-8601 durations of Personalizer's service configuration <-> seconds."""

from __future__ import annotations

import pytest

from serving.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT10M", 600.0),
        ("PT5S", 5.0),
        ("PT0.5S", 0.5),
        ("P1D", 86400.0),
        ("P2DT3H4M5S", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("PT0S", 0.0),
        ("P1W", 7 * 86400.0),
        ("PT1,5S", 1.5),
        ("00:05:00", 300.0),  # .NET TimeSpan, as older Personalizer clients wrote it
        ("1.02:00:00", 86400 + 7200),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "10 minutes", "P1M", "P1Y", "-PT5M", "PTXS", "P3651D", "99999999999.00:00:00",
     "P99999999999999999999D", " PT1H ", "P1DT", "P1D2W"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).strip("'") or "duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["PT10M", "P1DT2H", "00:05:00", "P", "PT", "P1DT", " PT1H ",
                                  "PT1H\n", "P1M", "-PT5M", "PT1.S", "1:00:00", "P1W2D"])
def test_pattern_is_what_parse_reads(text: str) -> None:
    # The OpenAPI pattern of every duration: ECMAScript reads it as Python's
    # re.search does here, bar '$' before a final newline, which parse refuses.
    import re

    from serving.durations import DURATION_PATTERN

    try:
        parse_duration(text)
        parsed = True
    except ValueError as exc:
        parsed = "longer than" in str(exc)
    assert parsed == bool(re.search(DURATION_PATTERN, text)) or text.endswith("\n")


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="string"):
        parse_duration(600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600.0, "PT10M"), (0.0, "PT0S"), (86400.0, "P1D"), (90061.5, "P1DT1H1M1.5S"), (5, "PT5S")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.0, 1.0, 59.0, 600.0, 3601.0, 86400.0, 200000.25])
def test_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_format_rejects(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        format_duration(seconds)
