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


#: A datetime's text with a fraction of its seconds after a comma or of more than 9
#: digits, which pydantic's lax mode reads too (to the microsecond).
_LONG_FRACTION = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})[.,]([0-9]+)(.*)\Z", re.S)
#: A Unix timestamp's text, as pydantic's lax mode reads one for a date or a datetime.
_TIMESTAMP_TEXT = re.compile(r"[+-]?(?:[0-9]+|(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z")
#: A timestamp beyond this many seconds either way is in milliseconds (speedate's rule).
_MS_WATERSHED = 20_000_000_000
#: The first and last second of a datetime (0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z).
_FIRST_SECOND, _LAST_SECOND = -62135596800, 253402300799


def lax_datetime(kind: str, v: Any) -> str | None:
    """A value of a ``datetime.date`` or ``datetime.datetime`` (``kind``) as pydantic's lax
    mode takes it (``TypeAdapter(date).validate_python``), as its canonical text, or
    None: a text as :func:`parse_datetime` reads it (not stripped), its seconds' fraction
    also after a comma or longer than 9 digits; or a Unix timestamp, a number or its
    text (digits, or with a decimal point also an exponent; not a bool), in seconds, or
    in milliseconds beyond 2e10 (UTC; for a date, only a midnight)."""
    if isinstance(v, str):
        m = _LONG_FRACTION.match(v)
        moment = parse_datetime(kind, f"{m.group(1)}.{m.group(2)[:9]}{m.group(3)}" if m else v)
        if moment is not None or not _TIMESTAMP_TEXT.match(v):
            return moment
        try:
            v = float(v) if "." in v else int(v)
        except ValueError:  # an int of more than 4,300 digits: no moment
            return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return _timestamp(kind, v)


def _timestamp(kind: str, ts: int | float) -> str | None:
    """A Unix timestamp as pydantic (speedate) reads it, as canonical text (see
    :func:`lax_datetime`): a float's fraction rounded to the microsecond."""
    import math

    micro = 0
    if isinstance(ts, float):
        if not math.isfinite(ts) or abs(ts) >= 2.0**63:
            return None
        whole = math.floor(ts)
        fraction = (ts - whole) * (1000 if abs(whole) > _MS_WATERSHED else 1_000_000)  # of a millisecond, or of a second
        micro = math.floor(fraction)
        if fraction - micro >= 0.5:  # half away from zero, as Rust's f64::round
            micro += 1
        ts = whole
    if abs(ts) > _MS_WATERSHED:
        micro += ts % 1000 * 1000
        ts //= 1000
    ts += micro // 1_000_000
    micro %= 1_000_000
    if not _FIRST_SECOND <= ts <= _LAST_SECOND:
        return None
    days, second = divmod(ts, 86400)
    # Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day from 1970-01-01.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    date = f"{year:04d}-{month:02d}-{day:02d}"
    if kind == DATE:
        return date if second == 0 and micro == 0 else None
    out = f"{date}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    return out + (f".{micro:06d}" if micro else "") + "Z"
