"""Which hours an audit looks at: whole UTC hours, closed and settled, and (``--skip_clean``) not audited clean yet.

An hour is ``[h, h + 1h)`` with ``h`` on a UTC hour boundary. The requested ``[since, until)`` is widened
to whole hours; an hour is audited only once it ended at least the settle delay ago (Okta may persist an
event late, and a bounded request, the kind the audit sends, may miss it until then). Runs of
consecutive hours are what a repair backfills (:func:`blocks`).
"""

from __future__ import annotations

import datetime as _dt

HOUR = _dt.timedelta(hours=1)
UTC = _dt.timezone.utc
#: Hour results that need no second look: the lake held everything Okta returned (after a repair, verified).
CLEAN = ("clean", "repaired")


def floor_hour(moment: _dt.datetime) -> _dt.datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: _dt.datetime) -> _dt.datetime:
    floored = floor_hour(moment)
    return floored if floored == moment.astimezone(UTC) else floored + HOUR


def hours_between(since: _dt.datetime, until: _dt.datetime) -> list[_dt.datetime]:
    """The starts of the whole hours that ``[since, until)`` touches."""
    found, hour = [], floor_hour(since)
    while hour < until:
        found.append(hour)
        hour += HOUR
    return found


def settled(hours: list[_dt.datetime], now: _dt.datetime, settle: _dt.timedelta) -> tuple[list, list]:
    """``(settled, not yet)``: an hour is settled once it ended ``settle`` ago."""
    ready = [h for h in hours if h + HOUR + settle <= now]
    return ready, [h for h in hours if h + HOUR + settle > now]


def blocks(hours) -> list[tuple[_dt.datetime, _dt.datetime]]:
    """Consecutive hours merged into ``[since, until)`` ranges, in order."""
    ranges: list[list[_dt.datetime]] = []
    for hour in sorted(set(hours)):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    return [(a, b) for a, b in ranges]


def latest_hours(records: list[dict], org_url: str, event_types: str | None = None,
                 iceberg_table: str | None = None) -> dict[_dt.datetime, dict]:
    """hour start -> that hour as the newest audit record of the org gave it (its ``audit_id`` and ``audited_at``
    added).

    With ``event_types`` only records of that selection count, and with ``iceberg_table`` only records that
    compared that table too: a record counts only when it checked the same things.
    """
    from common.durations import parse_time

    found: dict[_dt.datetime, dict] = {}
    for record in records:
        if record.get("org_url") != org_url:
            continue
        if event_types is not None and record.get("event_types") != event_types:
            continue
        if iceberg_table and record.get("iceberg_table") != iceberg_table:
            continue
        audited_at = str(record.get("audited_at", ""))
        for hour in record.get("hours", []):
            try:
                start = parse_time(str(hour.get("hour", "")), "hour")
            except ValueError:
                continue
            if start not in found or found[start]["audited_at"] <= audited_at:
                found[start] = {**hour, "audit_id": record.get("audit_id", ""), "audited_at": audited_at}
    return found


def latest_results(records: list[dict], org_url: str, event_types: str | None = None,
                   iceberg_table: str | None = None) -> dict[_dt.datetime, str]:
    """hour start -> the result the newest audit record of this org (and selection, and table) gave it."""
    return {hour: str(found.get("result", "")) for hour, found in
            latest_hours(records, org_url, event_types, iceberg_table).items()}
