"""What every reader of the System Log shares, without Beam: timestamps, where a chain starts, API counters.

Used by the batch reader (:mod:`sources.okta.beam`) and the streaming tail
(:mod:`streaming.okta_tail`).
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass

from common.durations import rfc3339
from common.metrics import counter, measure
from sinks.iceberg import cursor as iceberg_cursor
from sources.okta import state as okta_state
from sources.okta.connect import OktaSettings

UTC = _dt.timezone.utc
LOG = logging.getLogger(__name__)




class ApiMetrics:
    """The Okta API counters, moved as each request happens: a client's ``on_event`` (see
    :data:`okta_client.client.EVENTS`), so a dashboard sees the requests of an outage while it lasts."""

    NAMES = {"request": "okta_requests", "page": "okta_pages", "retry": "okta_retries", "throttled": "okta_throttled"}

    def __init__(self):
        self._counters = {event: counter(name) for event, name in self.NAMES.items()}
        self.splits = counter("okta_slice_splits")

    def __call__(self, event: str) -> None:
        self._counters[event].inc()

    def count_for_beam(self, stats) -> None:
        """A client's totals for Beam only: what it counted in other threads (the local endpoint has them)."""
        for event, field in (("request", "requests"), ("page", "pages"), ("retry", "retries"),
                             ("throttled", "throttled")):
            self._counters[event].inc(getattr(stats, field), mirror=False)


@dataclass(frozen=True)
class StartPoint:
    """Where a polling chain starts: the stored cursor (``previous``), or ``lookback_since`` on a first run."""

    url: str
    previous: okta_state.CursorState | None = None
    lookback_since: str = ""

    def describe(self) -> dict:
        """The chain's start, as the coverage records keep it (``CursorState.started``)."""
        if self.previous is None:
            return {"started_from": "lookback", "cursor_from": "", "cursor_from_run": "",
                    "span_since": self.lookback_since}
        return {"started_from": "cursor", "cursor_from": self.url, "cursor_from_run": self.previous.run_id,
                "span_since": self.previous.caught_up_at}


def starting_point(client, settings: OktaSettings, state_uri: str | None, lookback: _dt.timedelta,
                   iceberg=None) -> StartPoint:
    """Where a polling chain starts: the stored cursor, or ``lookback`` ago on a first run.

    With ``iceberg`` (the run's :class:`sinks.iceberg.catalog.IcebergTarget`), the newest cursor the
    table records for this org and filter comes first: the table holds the data, and its cursor
    committed with it. A ``--state`` cursor that differs is newer only when runs since added no row
    (they commit no snapshot; re-reading from the table's cursor adds nothing) or older when a run
    stopped between its snapshot and storing the state; either way the table's is safe, so it wins
    (one warning line says so). ``--state`` is used when the table records no cursor of the org.
    """
    state = okta_state.load(state_uri) if state_uri else None
    if state is not None and state.updated_at:
        try:  # the cursor's age, for --metrics_port (a timestamp written by another version: no reading)
            measure("cursor_loaded", _dt.datetime.fromisoformat(state.updated_at).timestamp())
        except ValueError:
            pass
    if state is not None:
        state.check_matches(settings.org_url, settings.filter, state_uri)
    if iceberg is not None:
        recorded = iceberg_cursor.table_cursor(iceberg, settings.org_url, settings.filter)
        if recorded is not None:
            if state is not None and state.next_url != recorded.next_url:
                LOG.warning("the cursor in --state %s (stored %s) differs from the one the Iceberg table %s "
                            "recorded in snapshot %s (%s): resuming from the table's, which commits with the data "
                            "(events read again are skipped by insert-if-absent)", state_uri,
                            state.updated_at or "at an unknown time", iceberg.table, recorded.snapshot_id,
                            _dt.datetime.fromtimestamp(recorded.timestamp_ms / 1000, UTC).isoformat())
            previous = okta_state.CursorState(settings.org_url, settings.filter, recorded.next_url,
                                              run_id=recorded.run_id, caught_up_at=recorded.caught_up_at)
            return StartPoint(recorded.next_url, previous=previous)
    if state is not None:
        return StartPoint(state.next_url, previous=state)
    since = rfc3339(_dt.datetime.now(UTC) - lookback)
    return StartPoint(client.first_url(since=since, filter=settings.filter or None, limit=settings.page_limit),
                      lookback_since=since)


def starting_url(client, settings: OktaSettings, state_uri: str, lookback: _dt.timedelta) -> str:
    """Where a polling chain starts: the stored cursor, or ``lookback`` ago on a first run."""
    return starting_point(client, settings, state_uri, lookback).url
