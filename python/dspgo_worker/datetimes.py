"""Values of ``datetime.date`` and ``datetime.datetime`` fields, as Go's
``internal/program`` (datetime.go) holds them: their canonical text.

A date is ``YYYY-MM-DD``; a datetime ``YYYY-MM-DDTHH:MM:SS``, then ``.ffffff`` when its
microseconds are not zero, then ``Z`` for a zero offset, ``±HH:MM`` for another, nothing
without a zone: the text pydantic's JSON mode writes, so what DSPy's prompts show. The
stdlib's ``datetime`` module is not imported (memory of an idle worker): the calendar is
checked here.
"""

from __future__ import annotations

import re

from .fieldtypes import DATE, DATETIME

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

#: What a date and a datetime take, for errors (Go's ``dateWant`` and ``dateTimeWant``).
DATE_WANT = f"expected {DATE} (YYYY-MM-DD)"
DATETIME_WANT = f"expected {DATETIME} (YYYY-MM-DDTHH:MM:SS, seconds and fraction optional, then Z or ±HH:MM for its zone, if any)"

_DATE_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
#: A date, ``T``, ``t`` or a space, hours and minutes, optional seconds with an optional
#: fraction (at most 9 digits), and an optional zone: ``Z``, ``z``, ``±HH:MM`` or ``±HHMM``.
_DATETIME_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?\Z"
)


def _civil_date(year: str, month: str, day: str) -> str | None:
    """``YYYY-MM-DD`` when the digits name a day of the years 1 to 9999 (Python's
    ``datetime.date``; the proleptic Gregorian calendar), else None."""
    y, m, d = int(year), int(month), int(day)
    if y < 1 or not 1 <= m <= 12 or d < 1:
        return None
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = 29 if m == 2 and leap else (28 if m == 2 else (30 if m in (4, 6, 9, 11) else 31))
    return f"{year}-{month}-{day}" if d <= days else None


def canonical_date(s: str) -> str | None:
    """``s`` when it is ``YYYY-MM-DD`` of a real day, else None (Go's ``CanonicalDate``)."""
    m = _DATE_TEXT.match(s)
    return _civil_date(*m.groups()) if m else None


def canonical_datetime(s: str) -> str | None:
    """The canonical text of the datetime ``s`` writes, or None (Go's
    ``CanonicalDateTime``): digits of a fraction beyond the sixth are dropped, as pydantic
    drops them."""
    m = _DATETIME_TEXT.match(s)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, z, sign, zh, zm = m.groups()
    date = _civil_date(year, month, day)
    if date is None or int(hour) > 23 or int(minute) > 59 or int(second or 0) > 59:
        return None
    out = f"{date}T{hour}:{minute}:{second or '00'}"
    micro = ((fraction or "") + "000000")[:6]
    if micro.strip("0"):
        out += "." + micro
    if z:
        out += "Z"
    elif sign:
        if int(zh) > 23 or int(zm) > 59:
            return None
        out += "Z" if zh == zm == "00" else f"{sign}{zh}:{zm}"
    return out


def convert_datetime(kind: str, v: Any, path: str, describe: Any) -> str:
    """An input ``v`` of a ``datetime.date`` or ``datetime.datetime`` field (``kind``) as its
    canonical text; ``ValueError`` naming ``path`` (``describe`` names a bad value)."""
    date = kind == DATE
    if isinstance(v, str):
        text = canonical_date(v) if date else canonical_datetime(v)
        if text is not None:
            return text
    raise ValueError(f"{path}: {DATE_WANT if date else DATETIME_WANT}, got {describe(v)}")


def parse_datetime(kind: str, s: str) -> str | None:
    """What an LM wrote for a ``datetime.date`` or ``datetime.datetime`` output (stripped),
    as its canonical text, or None; read as DSPy reads it (pydantic's lax mode): a
    datetime at midnight (in any zone) is a date, and a date a datetime at midnight."""
    if kind == DATE:
        text = canonical_date(s)
        if text is None:
            moment = canonical_datetime(s)
            if moment is not None and moment[10:19] == "T00:00:00" and moment[19:20] != ".":  # any zone
                text = moment[:10]
        return text
    text = canonical_datetime(s)
    if text is None and canonical_date(s) is not None:
        text = s + "T00:00:00"
    return text


def dummy_datetime(kind: str, n: int) -> str:
    """The dummy LM's value for ``n`` (Go's ``dummyDate`` and ``dummyDateTime``):
    2000-01-01 plus ``n`` mod 36525 days, or 2000-01-01T00:00:00Z plus ``n`` mod
    3,155,760,000 seconds."""
    import datetime  # only for programs with such outputs

    start = datetime.datetime(2000, 1, 1)
    if kind == DATE:
        return (start + datetime.timedelta(days=n % 36525)).strftime("%Y-%m-%d")
    return (start + datetime.timedelta(seconds=n % 3155760000)).strftime("%Y-%m-%dT%H:%M:%SZ")
