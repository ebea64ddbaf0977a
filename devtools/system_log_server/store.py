"""The emulator's event store: pre-serialized events in published order and in persistence order.

Each event is kept once, as its compact JSON bytes (a page is a join of
them), with its ``published`` and persistence times in microseconds and a
sequence number that breaks ties. Two sorted lists index the same events:
``by_published`` (bounded requests) and ``by_persisted`` (polling
requests). An event whose persistence time is still in the future exists
but is not visible yet. Readers hold ``lock`` while they walk the lists.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from operator import attrgetter
from typing import NamedTuple

import orjson

from common.json_scan import top_level_strings
from devtools.system_log_server.timestamps import now_us, parse_us

ENVELOPE_KEYS = frozenset({"uuid", "eventType", "published"})
# Below this many new events, inserting one by one beats re-sorting the whole list.
_INSORT_MAX = 64


class StoredEvent:
    __slots__ = ("published_us", "persisted_us", "seq", "event_type", "data", "published_key", "persisted_key")

    def __init__(self, data: bytes, event_type: str, published_us: int, persisted_us: int, seq: int):
        self.data = data
        self.event_type = event_type
        self.published_us = published_us
        self.persisted_us = persisted_us
        self.seq = seq
        self.published_key = (published_us, seq)
        self.persisted_key = (persisted_us, seq)


PUBLISHED_KEY = attrgetter("published_key")
PERSISTED_KEY = attrgetter("persisted_key")


class EventRecord(NamedTuple):
    """One event ready to store."""

    data: bytes
    event_type: str
    published_us: int


def record_from_event(event: dict) -> EventRecord:
    """Serialize a LogEvent dict; ValueError when it lacks a uuid, an eventType or a valid published."""
    return _record(event, orjson.dumps(event))


def record_from_line(line: bytes) -> EventRecord:
    """An event from one JSON Lines line, kept byte for byte; ValueError when it is not a LogEvent.

    A line orjson refuses (a lone surrogate escape, a ``NaN``, nesting past 1,024 levels, invalid UTF-8) is
    kept too when it is a whole JSON object whose ``uuid``, ``eventType`` and ``published`` can be read: Okta
    may serve such an event, and the server serves it as it is, for clients to cope with.
    """
    line = line.strip()
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        event = top_level_strings(line, ENVELOPE_KEYS)
        if event is None:
            raise ValueError(f"not JSON: {error}") from error
    return _record(event, line)


def event_document(data: bytes) -> dict:
    """A stored event as a dict for filters and keywords: decoded, or (one orjson refuses) its envelope strings."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return top_level_strings(data, ENVELOPE_KEYS) or {}


def _record(event, data: bytes) -> EventRecord:
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    for field in ("uuid", "eventType", "published"):
        if not isinstance(event.get(field), str) or not event[field]:
            raise ValueError(f"missing or empty {field!r}")
    return EventRecord(data, event["eventType"], parse_us(event["published"]))


class EventStore:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_published: list[StoredEvent] = []
        self.by_persisted: list[StoredEvent] = []
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self.by_published)

    def add(self, records: Iterable[tuple[EventRecord, int | None]]) -> int:
        """Store ``(record, persisted_us)`` pairs; a persisted time of None means now, under the lock.

        Taking "now" under the lock matters: a polling reader that has moved
        past time T must never see a new event persisted at or before T.
        """
        with self.lock:
            now = now_us()
            new = []
            for (data, event_type, published_us), persisted_us in records:
                new.append(StoredEvent(data, event_type, published_us,
                                       now if persisted_us is None else persisted_us, self._next_seq))
                self._next_seq += 1
            for index, key in ((self.by_published, PUBLISHED_KEY), (self.by_persisted, PERSISTED_KEY)):
                if len(new) <= _INSORT_MAX:
                    for stored in new:
                        bisect.insort(index, stored, key=key)
                else:
                    index.extend(new)
                    index.sort(key=key)
            return len(new)
