"""The Okta tail without Beam: poll the System Log from the stored cursor, buffer a window, commit, store the cursor.

:class:`OktaTail` is what both runners run: Dataflow calls ``tick()`` from a
stateful DoFn (:mod:`streaming.beam`), the local runner from the plain
loop :func:`run_locally`. The cursor of the last page of a window is stored
in ``--state`` only after that window is committed, so a crash re-reads
(and dedupes) instead of losing. With ``--iceberg_table`` the window's snapshot
records that cursor too, and a tail starts from the table's newest cursor of
its org (``--state`` is then optional; :func:`sources.okta.polling.starting_point`).
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
import time
from dataclasses import replace

from common.durations import rfc3339
from common.metrics import counter
from okta_client.errors import OktaApiError, Stopped
from sinks.lake import records as run_records
from sinks.lake.window import window_id
from sources.okta import state as okta_state
from sources.okta.connect import OktaSettings, build_client
from sources.okta.polling import UTC, ApiMetrics, starting_point
from streaming.settings import TailSettings
from streaming.window_buffer import WindowBuffer
from transforms.records import RawBatch

TICK_SECONDS = 1.0
MAX_PAGES_PER_TICK = 50  # a backlog is read over several ticks, so a window can close on time


class OktaTail:
    """The tail itself, no Beam: ``tick()`` once a second; it polls when due and commits finished windows."""

    def __init__(self, settings: OktaSettings, tail: TailSettings, clock=time.time, fresh_credential: bool = False,
                 stop: threading.Event | None = None):
        """``stop``: set it to end the tail's waits at once (its client raises ``Stopped`` out of a wait)."""
        self.settings, self.tail, self._clock = settings, tail, clock
        self._client = build_client(self.settings, fresh_credential, on_event=ApiMetrics(), stop=stop)
        self._buffer = WindowBuffer(tail.window, clock)
        self._cursor_stored = counter("cursor_stored")
        self._cursor: str | None = None
        self._stored_cursor: str | None = None
        self._next_poll = 0.0
        # The chain link the next window record starts with, and how far (in time) the cursor covers.
        self._link: dict = {}
        self._covered_until = ""
        self._records = 0

    def tick(self) -> int:
        """Commit the window that just ended (if any), then poll if it is time; returns pages read."""
        now = self._clock()
        if self._buffer.ended(now):
            self._flush()
        self._buffer.open(now)
        if now < self._next_poll:
            return 0
        if self._cursor is None:
            start = starting_point(self._client, self.settings, self.tail.state_uri, self.tail.lookback,
                                   self.tail.window.iceberg)
            self._cursor = self._stored_cursor = start.url
            self._link = {**start.describe(), "started_at": rfc3339(_dt.datetime.now(UTC))}
        caught_up, pages = False, 0
        for number, page in enumerate(self._client.polling_pages(self._cursor)):
            pages += 1
            if page.events:
                self._buffer.take(RawBatch(page.url, "page", [number + 1], [page.body], org=self.settings.org))
                self._covered_until = str(page.events[-1].get("published") or self._covered_until)
            else:
                self._covered_until = rfc3339(_dt.datetime.now(UTC))  # caught up
            if page.next_url:
                self._cursor = page.next_url
            if self._buffer.full:  # catching up: commit what is held (and store its cursor), then read on
                self._flush()
                self._buffer.open(now)
            if not page.events:
                caught_up = True
                break
            if number + 1 >= MAX_PAGES_PER_TICK:
                break
        if caught_up:
            self._next_poll = now + self.tail.poll_interval
        return pages

    def _flush(self) -> None:
        """Commit the finished window (lake, then Iceberg), then (and only then) store the cursor that covers it."""
        cursor, window = self._cursor, self._buffer.window
        committed = self._buffer.commit("poll", "okta", cursor)
        state = okta_state.CursorState(self.settings.org_url, self.settings.filter, cursor or "",
                                       run_id=self.tail.window.job, caught_up_at=self._covered_until,
                                       started=self._link)
        # Without --state (and with --iceberg_table) the window's snapshot, committed above, holds the cursor.
        if cursor and cursor != self._stored_cursor:
            if self.tail.state_uri:
                okta_state.store(self.tail.state_uri, state)
            self._stored_cursor = cursor
            self._cursor_stored.inc()
        elif cursor and self.tail.state_uri and self._covered_until and self._covered_until != self._link.get(
                "span_since"):
            okta_state.store(self.tail.state_uri, state)  # same cursor, caught up later: keep caught_up_at true
        self._record_window(state, window, committed)
        self._buffer.reset(None)

    def _record_window(self, state: okta_state.CursorState, window: float | None, committed) -> None:
        """The window's chain link for the coverage report (``LAKE/_runs/windows/``), when the cursor moved on."""
        moved = (self._covered_until, state.next_url) != (self._link.get("span_since"), self._link.get("cursor_from"))
        if not state.next_url or not self._covered_until or not moved:
            return
        job = self.tail.window.job
        self._records += 1
        name = f"{job}-{window_id(window or 0)}-{self._records:06d}"
        link = run_records.cursor_link(
            state, "okta-tail", window=window_id(window or 0), state_uri=self.tail.state_uri,
            rows=committed.rows if committed else 0, events=committed.events if committed else 0,
            partitions=list(committed.partitions) if committed else [])
        run_records.record_quietly(run_records.write_window_record, self.tail.window.lake.root, name, link)
        self._link = {"started_from": "cursor", "cursor_from": state.next_url, "cursor_from_run": job,
                      "span_since": self._covered_until}

    def close(self) -> None:
        # Uncommitted rows are dropped on purpose: the stored cursor still points before them.
        self._buffer.drop()


def run_locally(settings: OktaSettings, tail: TailSettings, stop_after: float | None = None,
                clock=time.monotonic, stop: threading.Event | None = None) -> None:
    """The tail as a plain loop in this process: what the local runner gets instead of PeriodicImpulse.

    Measured here (Beam 2.77): a ``PeriodicImpulse`` on the local streaming runner grows the process by
    ~7.5 MB/s whatever its interval, and on the FnApiRunner it fires nothing until its stop time. The
    loop calls exactly the code the DoFn calls. ``stop_after`` (or ``stop``, set) ends it at once, even in
    the middle of a wait for Okta.
    """
    stop = stop or threading.Event()
    timer = _stop_at(stop, stop_after)
    runner = OktaTail(settings, tail, stop=stop)
    try:
        while not stop.is_set():
            started = clock()
            try:
                runner.tick()
            except Stopped:
                break
            except OktaApiError as exc:
                if not outage(exc):
                    raise
                # Okta or the network is down past the client's retries: keep the buffer and the
                # cursor, and try again after a poll interval instead of ending the stream.
                print(f"warning: {exc}; polling again in {tail.poll_interval:g} s", file=sys.stderr, flush=True)
                stop.wait(tail.poll_interval)
                continue
            stop.wait(max(0.0, TICK_SECONDS - (clock() - started)))
    finally:
        if timer is not None:
            timer.cancel()
        runner.close()


def _stop_at(stop: threading.Event, after: float | None) -> threading.Timer | None:
    """Set ``stop`` ``after`` seconds from now (None: never)."""
    if after is None:
        return None
    timer = threading.Timer(after, stop.set)
    timer.daemon = True
    timer.start()
    return timer


def outage(exc: OktaApiError) -> bool:
    """Worth waiting out (no answer, 5xx, still throttled) rather than a configuration problem (other 4xx)."""
    return exc.retryable




MAX_PAUSE_SECONDS = 300.0  # a failing org is retried at least every five minutes


def org_tail_settings(tail: TailSettings, org, number: int) -> TailSettings:
    """One org's tail: its own cursor file, event types, and window file names (``<job>-o<number>``)."""
    window = replace(tail.window, job=f"{tail.window.job}-o{number}",
                     decode=replace(tail.window.decode, event_types=org.event_types))
    return replace(tail, state_uri=org.state, window=window)


class OrgTail:
    """One org of a many-org tail (``--orgs``): an :class:`OktaTail` that pauses when its org fails.

    An org that fails (401/403, a wrong URL, an outage past the client's retries) is paused: its open
    window is dropped (its cursor still points before it), the error is printed as one line, and it
    starts again after a backoff (poll interval x 2^failures, at most five minutes) with its credential
    read anew; the other orgs are not touched. Both runners tick it: a thread per org locally
    (:func:`run_orgs_locally`), a key per org on Dataflow (:mod:`streaming.beam`).
    """

    def __init__(self, org, tail: TailSettings, clock=time.monotonic, stop: threading.Event | None = None):
        self.org, self.tail, self._clock, self._stop = org, tail, clock, stop
        self._runner: OktaTail | None = None
        self.failures = 0
        self.paused_until = 0.0

    def tick(self) -> int:
        if self._clock() < self.paused_until:
            return 0
        try:
            if self._runner is None:
                # After a failure the credential is read anew: it may have been rotated since.
                self._runner = OktaTail(self.org.settings, self.tail, fresh_credential=self.failures > 0,
                                        stop=self._stop)
            pages = self._runner.tick()
        except Stopped:
            return 0  # the run stops: not a failure of the org
        except Exception as exc:  # noqa: BLE001 - one org's failure pauses that org only
            self.close()
            self.failures += 1
            pause = min(self.tail.poll_interval * 2 ** (self.failures - 1), MAX_PAUSE_SECONDS)
            self.paused_until = self._clock() + pause
            counter("okta_org_pauses").inc()
            print(f"warning: org {self.org.host} paused: {exc.__class__.__name__}: "
                  f"{' '.join(str(exc).split())[:300]}; retrying in {pause:g} s", file=sys.stderr, flush=True)
            return 0
        self.failures = 0
        return pages

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None


def run_orgs_locally(orgs, tail: TailSettings, stop_after: float | None = None,
                     clock=time.monotonic) -> None:
    """Tail many orgs in this process: one thread per org, each ticking its :class:`OrgTail` once a second."""
    stop = threading.Event()
    timer = _stop_at(stop, stop_after)

    def one_org(org, number: int) -> None:
        org_tail = OrgTail(org, org_tail_settings(tail, org, number), clock, stop)
        try:
            while not stop.is_set():
                started = clock()
                org_tail.tick()
                stop.wait(max(0.0, TICK_SECONDS - (clock() - started)))
        finally:
            org_tail.close()

    threads = [threading.Thread(target=one_org, args=(org, number), daemon=True, name=f"tail-{org.host}")
               for number, org in enumerate(orgs)]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.2)
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
        for thread in threads:
            thread.join(timeout=30)
