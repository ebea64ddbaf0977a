"""The Okta tail without Beam: poll the System Log from the stored cursor, commit what each poll read, store the cursor.

:class:`OktaTail` is what both runners run: Dataflow calls ``tick()`` from a
stateful DoFn (:mod:`streaming.beam`), the local runner from the plain
loop :func:`run_locally`. A poll reads pages while they are full (more may be
waiting) and stops at the first short page (caught up: its ``next`` link is
the cursor, not asked for now); then it commits what it read and stores the
cursor, and the tail waits until the next poll is due. A window whose end
passes while a poll reads on is committed at once, before the next page is
taken, so a window's files hold only rows read within it. The cursor is stored
in ``--state`` only after the commit it covers, so a crash re-reads (and
dedupes) instead of losing. With ``--iceberg_table`` each commit's snapshot
records that cursor too, and a tail starts from the table's newest cursor of
its org (``--state`` is then optional; :func:`sources.okta.polling.starting_point`).

Requests are a budget: an idle tail sends one request per poll, ``--poll_interval``
apart (auto: :func:`auto_poll_interval`); a backlog is read page after page as fast
as the org's rate governor allows within ``--okta_rate_share``.
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
import time
from dataclasses import replace

from common.durations import rfc3339
from common.metrics import counter
from okta_client.client import page_limit
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
MAX_PAGES_PER_TICK = 50  # a long backlog is read over several ticks (a DoFn call must end now and then)

#: --poll_interval=auto: the idle tail's requests stay at this share of the org's limit (times --okta_rate_share
#: when that is lower), polling no more often than MIN_AUTO_POLL_SECONDS; the limit is assumed to be the
#: smallest org's until Okta's first answer tells it.
IDLE_SHARE = 0.45
MIN_AUTO_POLL_SECONDS = 6.0
ASSUMED_LIMIT = 20
RATE_WINDOW_SECONDS = 60.0  # Okta counts /api/v1/logs requests per minute
#: While nothing new arrives, the caught-up time is stored (and a window record written) this often, not per poll.
IDLE_STATE_SECONDS = 300.0


def auto_poll_interval(limit: int | None, rate_share: float) -> float:
    """Seconds between idle polls: ``IDLE_SHARE`` of the limit (less with a smaller share), at most every 6 s.

    20 requests/min (a developer org): 6.7 s, 9 requests/min (45%); 120: 6 s, 10 requests/min (8%).
    """
    share = min(IDLE_SHARE, 0.9 * rate_share)
    return max(MIN_AUTO_POLL_SECONDS, RATE_WINDOW_SECONDS / (share * (limit or ASSUMED_LIMIT)))


class OktaTail:
    """The tail itself, no Beam: ``tick()`` often (once a second, or when :meth:`due_in` says); it polls when
    due, commits what each poll read and the windows that end, and stores the cursor after each commit."""

    def __init__(self, settings: OktaSettings, tail: TailSettings, clock=time.time, fresh_credential: bool = False,
                 stop: threading.Event | None = None, client=None):
        """``stop``: set it to end the tail's waits at once (its client raises ``Stopped`` out of a wait);
        ``client``: a :class:`okta_client.SystemLogClient` to use (default: one built from ``settings``)."""
        self.settings, self.tail, self._clock = settings, tail, clock
        self._client = client or build_client(self.settings, fresh_credential, on_event=ApiMetrics(), stop=stop)
        self._buffer = WindowBuffer(tail.window, clock)
        self._cursor_stored = counter("cursor_stored")
        self._cursor: str | None = None
        self._stored_cursor: str | None = None
        self._next_poll = 0.0
        self._state_stored_at = float("-inf")  # the first idle window end stores the caught-up time
        # The chain link the next window record starts with, and how far (in time) the cursor covers.
        self._link: dict = {}
        self._covered_until = ""
        self._records = 0

    def poll_interval(self) -> float:
        """Seconds from one poll's start to the next once caught up (``--poll_interval``, or auto)."""
        if self.tail.poll_interval is not None:
            return self.tail.poll_interval
        return auto_poll_interval(self._client.governor.limit, self.settings.rate_share)

    def due_in(self) -> float:
        """Seconds until the tail has something to do (a poll, or the end of a window holding rows)."""
        now = self._clock()
        due = self._next_poll - now
        if self._buffer.window is not None:
            due = min(due, self._buffer.window + self._buffer.settings.length - now)
        return max(0.0, due)

    def tick(self) -> int:
        """Commit a window that ended, then poll if it is time; returns pages read."""
        now = self._clock()
        if self._buffer.ended(now):
            self._flush()
        if now < self._next_poll:
            return 0
        if self._cursor is None:
            start = starting_point(self._client, self.settings, self.tail.state_uri, self.tail.lookback,
                                   self.tail.window.iceberg)
            self._cursor = self._stored_cursor = start.url
            self._link = {**start.describe(), "started_at": rfc3339(_dt.datetime.now(UTC))}
        pages, caught_up, asked = 0, False, _dt.datetime.now(UTC)
        for number, page in enumerate(self._client.polling_pages(self._cursor)):
            pages += 1
            received = self._clock()
            if self._buffer.ended(received):  # the window ended while this poll read on: commit what it holds
                self._flush()
            self._buffer.open(received)
            if page.events:
                self._buffer.take(RawBatch(page.url, "page", [number + 1], [page.body], org=self.settings.org))
                self._covered_until = str(page.events[-1].get("published") or self._covered_until)
            if page.next_url:
                self._cursor = page.next_url
            if self._buffer.full:  # a backlog: commit what is held (and store its cursor), then read on
                self._flush()
            caught_up = len(page.events) < page_limit(page.url)
            if caught_up:
                self._covered_until = rfc3339(asked)  # the short page holds all Okta had persisted when asked
            elif number + 1 >= MAX_PAGES_PER_TICK:
                break
            asked = _dt.datetime.now(UTC)
        if not self._buffer.empty or self._cursor != self._stored_cursor:
            self._flush()  # commit what this poll read now: not when its window ends
        self._next_poll = now + self.poll_interval() if caught_up else now
        return pages

    def _flush(self) -> None:
        """Commit the buffered rows (lake, then Iceberg), then (and only then) store the cursor that covers them."""
        cursor, window = self._cursor, self._buffer.window
        committed = self._buffer.commit("okta", cursor)
        state = okta_state.CursorState(self.settings.org_url, self.settings.filter, cursor or "",
                                       run_id=self.tail.window.job, caught_up_at=self._covered_until,
                                       started=self._link)
        # Without --state (and with --iceberg_table) the commit's snapshot, committed above, holds the cursor.
        if cursor and cursor != self._stored_cursor:
            self._store(state)
            self._stored_cursor = cursor
            self._cursor_stored.inc()
            self._record_window(state, window, committed)
        elif cursor and self._covered_until and self._covered_until != self._link.get("span_since") and (
                self._clock() - self._state_stored_at >= IDLE_STATE_SECONDS):
            self._store(state)  # same cursor, caught up later: keep caught_up_at true, now and then
            self._record_window(state, window, committed)
        self._buffer.reset(None)

    def _store(self, state: okta_state.CursorState) -> None:
        if self.tail.state_uri:
            okta_state.store(self.tail.state_uri, state)
        self._state_stored_at = self._clock()

    def _record_window(self, state: okta_state.CursorState, window: float | None, committed) -> None:
        """The commit's chain link for the coverage report (``LAKE/_runs/windows/``), when the cursor moved on."""
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
                wait = runner.poll_interval()
                print(f"warning: {exc}; polling again in {wait:.3g} s", file=sys.stderr, flush=True)
                stop.wait(wait)
                continue
            stop.wait(min(max(0.0, TICK_SECONDS - (clock() - started)), runner.due_in()))
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

    An org that fails (401/403, a wrong URL, an outage past the client's retries) is paused: what its
    current poll read is dropped (its cursor still points before it), the error is printed as one line, and it
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
            base = self.tail.poll_interval or auto_poll_interval(None, self.org.settings.rate_share)
            pause = min(base * 2 ** (self.failures - 1), MAX_PAUSE_SECONDS)
            self.paused_until = self._clock() + pause
            counter("okta_org_pauses").inc()
            print(f"warning: org {self.org.host} paused: {exc.__class__.__name__}: "
                  f"{' '.join(str(exc).split())[:300]}; retrying in {pause:g} s", file=sys.stderr, flush=True)
            return 0
        self.failures = 0
        return pages

    def due_in(self) -> float:
        """Seconds until this org has something to do (see :meth:`OktaTail.due_in`)."""
        if self._runner is None or self._clock() < self.paused_until:
            return TICK_SECONDS
        return self._runner.due_in()

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
                stop.wait(min(max(0.0, TICK_SECONDS - (clock() - started)), org_tail.due_in()))
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
