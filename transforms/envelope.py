"""The LogEvent envelope: where a payload's events sit, and the three fields every consumer relies on.

A payload may hold one LogEvent object (a JSON Lines line, a Pub/Sub message), a JSON array of
LogEvents (a saved ``/api/v1/logs`` page), an Okta Event Hook envelope or an AWS EventBridge
envelope (:func:`unwrap`). Each event found must have a non-empty string ``uuid`` and
``eventType`` and a valid ``published`` (:func:`validate`); :class:`InvalidEvent` says why not.
Pure Python: the full decode (:mod:`transforms.decode`) and its shortcuts
(:mod:`transforms.shortcuts`) judge by these same rules.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

from common.errors import LakeError
from transforms.jsonio import json_type as _json_type

UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = _dt.timedelta(microseconds=1)


class InvalidEvent(LakeError, ValueError):
    """A LogEvent that cannot be used; the message says why."""


def parse_published(value: Any) -> tuple[int, str]:
    """``published`` -> (microseconds since epoch UTC, UTC date ``YYYY-MM-DD``)."""
    utc = published_datetime(value)
    return (utc - _EPOCH) // _ONE_US, utc.date().isoformat()


def published_datetime(value: Any) -> _dt.datetime:
    """``published`` -> timezone-aware UTC datetime, or :class:`InvalidEvent`.

    Accepts RFC 3339 / ISO 8601 extended date-times with ``T`` or a space
    between date and time, any number of fractional digits (cut to
    microseconds) and ``Z`` or a numeric offset. A time without an offset is
    taken as UTC (Okta always writes ``Z``).
    """
    if type(value) is not str:
        raise InvalidEvent(f"'published' must be a string, got {_json_type(value)}")
    if (
        len(value) < 19
        or value[4] != "-"
        or value[7] != "-"
        or value[10] not in "Tt "
        or value[13] != ":"
    ):
        raise InvalidEvent(
            f"'published' is not an RFC 3339 timestamp: {value[:40]!r}"
        )
    try:
        parsed = _dt.datetime.fromisoformat(value.replace("t", "T", 1) if value[10] == "t" else value)
    except ValueError as exc:
        raise InvalidEvent(f"'published' is not a valid timestamp ({exc}): {value[:40]!r}") from None
    tz = parsed.tzinfo
    if tz is UTC:
        return parsed
    if tz is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(f"'published' is out of range: {value[:40]!r}") from None


def unwrap(document: Any) -> Iterator[tuple[Any, bool]]:
    """Yield ``(candidate_event, is_whole_document)`` for each event in a document.

    Raises :class:`InvalidEvent` for an envelope whose event list is malformed.
    """
    if isinstance(document, list):
        for item in document:
            yield item, False
        return
    if isinstance(document, dict) and "uuid" not in document:
        data = document.get("data")
        if isinstance(data, dict) and "events" in data:
            events = data["events"]
            if not isinstance(events, list):
                raise InvalidEvent(
                    f"Event Hook envelope: 'data.events' must be an array, got {_json_type(events)}"
                )
            for item in events:
                yield item, False
            return
        if "detail" in document and ("detail-type" in document or "source" in document):
            yield document["detail"], False
            return
    yield document, True


def validate(candidate: Any) -> tuple[str, str, _dt.datetime]:
    """Check the envelope; return ``(uuid, eventType, published as UTC datetime)``."""
    if not isinstance(candidate, dict):
        raise InvalidEvent(f"a LogEvent must be a JSON object, got {_json_type(candidate)}")
    uuid = candidate.get("uuid")
    if uuid is None:
        raise InvalidEvent("missing required field 'uuid'")
    if type(uuid) is not str or not uuid.strip():
        raise InvalidEvent(f"'uuid' must be a non-empty string, got {_json_type(uuid)}")
    event_type = candidate.get("eventType")
    if event_type is None:
        raise InvalidEvent("missing required field 'eventType'")
    if type(event_type) is not str or not event_type:
        raise InvalidEvent(f"'eventType' must be a non-empty string, got {_json_type(event_type)}")
    if "published" not in candidate or candidate["published"] is None:
        raise InvalidEvent("missing required field 'published'")
    return uuid, event_type, published_datetime(candidate["published"])
