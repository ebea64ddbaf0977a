"""RFC 3339 timestamps as integer microseconds since the epoch (the emulator's one time unit)."""

from __future__ import annotations

import datetime as dt
import re
import time

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = _EPOCH.toordinal()
DAY_US = 86_400_000_000


def now_us() -> int:
    return time.time_ns() // 1000


def parse_us(text: str) -> int:
    """Microseconds for an RFC 3339 timestamp; any number of fraction digits, no offset means UTC.

    Raises ValueError for anything else (a space for 'T', an impossible date, ...).
    """
    match = _RFC3339.fullmatch(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    hour, minute, second = int(hour), int(minute), int(second)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not a valid time of day: {text!r}")
    days = dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL  # validates the date
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second
    if offset and offset not in "Zz":
        sign = -1 if offset[0] == "-" else 1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return seconds * 1_000_000 + (int(fraction[:6].ljust(6, "0")) if fraction else 0)


def format_us(us: int) -> str:
    """Okta's ``published`` style: UTC with milliseconds, e.g. 2026-03-01T10:05:12.345Z."""
    moment = _EPOCH + dt.timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
