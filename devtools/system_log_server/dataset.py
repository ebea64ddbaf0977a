"""Where the emulator's events come from: a JSON Lines file, the deterministic generator, a live stream.

Persistence times are decided here: an event is persisted when it is
published, except a ``late_fraction`` share persisted ``late_seconds``
after, so that persistence order differs from published order the way
Okta's rare delayed events make it.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from devtools.eventgen import EventGenerator
from devtools.system_log_server.store import EventRecord, EventStore, record_from_event, record_from_line
from devtools.system_log_server.timestamps import DAY_US, format_us, now_us

_TICK_SECONDS = 0.05


def read_events_file(path: str) -> tuple[list[EventRecord], int]:
    """The LogEvents of a JSON Lines file (``.gz`` too), and how many lines were skipped as not LogEvents."""
    records, skipped = [], 0
    opener = gzip.open if path.endswith(".gz") else open
    with opener(Path(path), "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(record_from_line(line))
            except ValueError:
                skipped += 1
    return records, skipped


def event_generator(seed: int, personal_share: float, days: float, now_us: int) -> EventGenerator:
    """The project's deterministic generator, publishing over [now - days, now)."""
    start = now_us - int(days * DAY_US)
    return EventGenerator(seed=seed, start=format_us(start), end=format_us(now_us), personal_share=personal_share)


def generated_records(generator: EventGenerator, count: int) -> list[EventRecord]:
    return [record_from_event(_without_sentinel(event)) for event in generator.events(count)]


def _without_sentinel(event: dict) -> dict:
    # EventGenerator.event() marks "no target key at all" with the string "missing"; the real shape has no key.
    if event.get("target") == "missing":
        del event["target"]
    return event


class LateSchedule:
    """Picks the events persisted late: a seeded ``fraction`` of them, ``seconds`` after published."""

    def __init__(self, fraction: float, seconds: float, seed: int):
        self._fraction = fraction
        self._late_us = int(seconds * 1_000_000)
        self._rng = random.Random(f"late:{seed}")

    def late_persistence(self, record: EventRecord) -> int | None:
        """When this event persists if it is one of the late ones, else None."""
        if self._fraction and self._rng.random() < self._fraction:
            return record.published_us + self._late_us
        return None

    def historical(self, records: Iterable[EventRecord]) -> Iterator[tuple[EventRecord, int]]:
        """(record, persisted_us) for an initial data set: on-time events persisted when published."""
        for record in records:
            late = self.late_persistence(record)
            yield record, record.published_us if late is None else late


class Feeder:
    """A background thread appending ``rate`` generated events per second, published now."""

    def __init__(self, store: EventStore, generator: EventGenerator, rate: float, schedule: LateSchedule):
        self._store = store
        self._generator = generator
        self._rate = rate
        self._schedule = schedule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started, sent = time.monotonic(), 0
        while not self._stop.wait(_TICK_SECONDS):
            due = int((time.monotonic() - started) * self._rate) - sent
            if due <= 0:
                continue
            now = now_us()
            records = [record_from_event(_without_sentinel(self._generator.event(now))) for _ in range(due)]
            # None: persisted on arrival, at the store's "now".
            self._store.add((record, self._schedule.late_persistence(record)) for record in records)
            sent += due
