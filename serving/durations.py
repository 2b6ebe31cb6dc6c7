"""ISO-8601 durations (Personalizer's ``rewardWaitTime``) to and from seconds.

Personalizer's REST API writes time spans as ISO-8601 durations (``PT10M``,
``P1D``); older clients and .NET's ``TimeSpan`` also write ``[d.]hh:mm:ss``.
The engine works in seconds. Years and months are refused: their length in
seconds depends on the calendar.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import isodate

__all__ = ["DURATION_PATTERN", "MAX_SECONDS", "format_duration", "parse_duration"]

#: Longest duration accepted (10 years): longer is surely a mistake, and it
#: keeps every value representable as a ``datetime.timedelta``.
MAX_SECONDS = 3650 * 86400.0
_NUMBER = r"\d+(?:[.,]\d+)?"
#: The durations :func:`parse_duration` reads, as a regular expression that reads
#: the same in Python and ECMAScript (the OpenAPI ``pattern``): ISO-8601 weeks,
#: days, hours, minutes and seconds with at least one number (``PT10M``,
#: ``P1DT2H``, ``PT0.5S``), or a ``[d.]hh:mm:ss`` time span.
DURATION_PATTERN = (
    rf"^(?:P(?=\d|T\d)(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
    r"|(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?))$"
)
_DURATION = re.compile(DURATION_PATTERN)
_ISO_PART = re.compile(rf"({_NUMBER})([WDHMS])")
_ISO_SECONDS = {"W": 7 * 86400.0, "D": 86400.0, "H": 3600.0, "M": 60.0, "S": 1.0}
_YEARS_OR_MONTHS = re.compile(r"^P(?:\d+(?:[.,]\d+)?[YMWD])*\d+(?:[.,]\d+)?[YM]")


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration or ``[d.]hh:mm:ss`` time span.

    Parameters
    ----------
    text : str
        ``"PT5M"``, ``"P1DT2H"``, ``"PT0.5S"``, ``"00:05:00"``, ``"1.00:00:00"``:
        a whole match of :data:`DURATION_PATTERN`.

    Returns
    -------
    float
        Non-negative number of seconds.

    Raises
    ------
    ValueError
        If ``text`` is not such a duration, is longer than :data:`MAX_SECONDS`,
        or uses years or months.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 duration string, got {type(text).__name__}")
    match = _DURATION.fullmatch(text)
    if match is None:
        if text.startswith("-") and _DURATION.fullmatch(text[1:]):
            raise ValueError(f"{text!r} is negative; durations must be zero or more")
        if _YEARS_OR_MONTHS.match(text):
            raise ValueError(
                f"{text!r} uses years or months, whose length varies; use days (P30D) instead")
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as 'PT10M'")
    days, hours, minutes, seconds = match.groups()
    if hours is not None:  # a time span
        total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        return _check_range(float(total), text)
    # Only weeks and days come before the T, so every "M" is minutes.
    total = sum(float(number.replace(",", ".")) * _ISO_SECONDS[unit]
                for number, unit in _ISO_PART.findall(text))
    return _check_range(total, text)


def _check_range(seconds: float, text: str) -> float:
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than the maximum of 10 years (P3650D)")
    return seconds


def format_duration(seconds: float) -> str:
    """ISO-8601 duration for ``seconds`` (``600.0`` -> ``"PT10M"``).

    Parameters
    ----------
    seconds : float
        Non-negative, finite number of seconds.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and non-negative, got {seconds!r}")
    delta = dt.timedelta(seconds=seconds)
    # isodate writes zero as "P0D"; Personalizer clients expect a time part.
    return "PT0S" if delta == dt.timedelta(0) else isodate.duration_isoformat(delta)
