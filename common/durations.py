"""Durations and moments as options give them: ``30s``, ``15m``, ``1h``, ``7d``; RFC 3339 times.

Parsed once, when a run's (or a tool's) options are resolved; errors name the option.
"""

from __future__ import annotations

import datetime as _dt
import re

UTC = _dt.timezone.utc
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, name: str) -> _dt.timedelta:
    """``30s``, ``15m``, ``1.5h``, ``7d`` -> a positive timedelta; ValueError naming ``name`` otherwise."""
    match = _DURATION.match((text or "").strip().lower())
    if not match:
        raise ValueError(f"{name} must be a duration like 30s, 15m, 1h or 7d, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{name} must be longer than zero")
    return _dt.timedelta(seconds=seconds)


def describe(seconds: float) -> str:
    """Seconds the way an option gives them: ``300`` -> ``5m``, ``90`` -> ``90s``, ``7200`` -> ``2h``."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def parse_time(text: str, name: str) -> _dt.datetime:
    """An RFC 3339 time (``2026-11-01T00:00:00Z``, an offset, or none: UTC) -> an aware UTC datetime."""
    value = (text or "").strip()
    if len(value) < 19 or value[10] not in "Tt ":
        raise ValueError(f"{name} must be an RFC 3339 time like 2026-11-01T00:00:00Z, got {text!r}")
    if value[-1:] in "Zz":
        value = value[:-1] + "+00:00"
    try:
        moment = _dt.datetime.fromisoformat(value[:10] + "T" + value[11:])
    except ValueError:
        raise ValueError(f"{name} must be an RFC 3339 time like 2026-11-01T00:00:00Z, got {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_when(value: str, name: str, now: _dt.datetime) -> _dt.datetime:
    """An RFC 3339 time, or a duration back from ``now`` (``26h``: 26 hours ago): the tools' ``--since``."""
    if value and value[-1:].lower() in "smhd" and "T" not in value:
        return now - parse_duration(value, name)
    return parse_time(value, name)


def rfc3339(moment: _dt.datetime) -> str:
    """UTC, millisecond precision (Okta's own), e.g. ``2026-11-25T10:00:00.000Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
