"""Tail the System Log continuously: ``--streaming --source=okta``.

A polling chain is one sequence of requests (each ``next`` link comes from the
previous page), so one org is tailed by one worker: a ``PeriodicImpulse``
ticks every second, all ticks share one key, and a stateful DoFn (Beam runs
one key serially, on any runner) does the work:

- it polls from the cursor until an empty page, then waits
  ``--poll_interval`` before the next poll, whatever the runner does with
  the ticks (Beam's local runner does not honour poll intervals reliably);
  every request also goes through the org's rate governor;
- each page is decoded, validated, selected and flattened by the same
  functions as the batch path, deduped against the uuids kept within
  ``--dedupe_horizon``, and buffered;
- when the ``--window`` (processing time) a buffer belongs to is over, the
  buffer is committed to the lake as that window's files
  (:func:`sinks.window_commit.commit_window`), and only then is the cursor
  of the last page in the buffer stored in ``--state``.

A crash or a stop loses at most the uncommitted buffer, whose events the next
run reads again from the stored cursor: nothing is lost and the lake's
insert-if-absent drops what was already written. Events persisted late (Okta
orders the polling chain by persistence time) arrive in the window they are
polled in and land in the partition of their own ``published`` date.
"""

from __future__ import annotations

import logging
import sys
import time

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.periodicsequence import PeriodicImpulse

from okta_client.errors import OktaApiError
from sinks.window_buffer import WindowBuffer
from sources import okta_state
from sources.okta import _ApiMetrics, starting_url
from sources.okta_config import OktaSettings, build_client
from streaming.settings import TailSettings
from transforms.metrics import counter
from transforms.records import RawBatch

LOG = logging.getLogger("okta_personal.tail")
TICK_SECONDS = 1.0
MAX_PAGES_PER_TICK = 50  # a backlog is read over several ticks, so a window can close on time


class OktaTail:
    """The tail itself, no Beam: ``tick()`` once a second; it polls when due and commits finished windows."""

    def __init__(self, settings: OktaSettings, tail: TailSettings, clock=time.time):
        self.settings, self.tail, self._clock = settings, tail, clock
        self._client = build_client(self.settings)
        self._metrics = _ApiMetrics()
        self._buffer = WindowBuffer(tail.window, clock)
        self._cursor_stored = counter("cursor_stored")
        self._cursor: str | None = None
        self._stored_cursor: str | None = None
        self._next_poll = 0.0

    def tick(self) -> int:
        """Commit the window that just ended (if any), then poll if it is time; returns pages read."""
        now = self._clock()
        if self._buffer.ended(now):
            self._flush()
        self._buffer.open(now)
        if now < self._next_poll:
            return 0
        if self._cursor is None:
            self._cursor = starting_url(self._client, self.settings, self.tail.state_uri, self.tail.lookback)
            self._stored_cursor = self._cursor
        caught_up, pages = False, 0
        for number, page in enumerate(self._client.polling_pages(self._cursor)):
            pages += 1
            self._metrics.pages.inc()
            self._metrics.update(self._client)
            if page.events:
                self._buffer.take(RawBatch(page.url, "page", [number + 1], [page.body]))
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
        """Commit the finished window, then (and only then) store the cursor that covers it."""
        cursor = self._cursor
        self._buffer.commit("poll")
        if cursor and cursor != self._stored_cursor:
            okta_state.store(self.tail.state_uri, okta_state.CursorState(
                self.settings.org_url, self.settings.filter, cursor, run_id=self.tail.window.job))
            self._stored_cursor = cursor
            self._cursor_stored.inc()
        self._buffer.reset(None)

    def close(self) -> None:
        # Uncommitted rows are dropped on purpose: the stored cursor still points before them.
        self._buffer.reset(None)


class _TailFn(beam.DoFn):
    """:class:`OktaTail` inside a stateful DoFn: one key per org, so Beam runs it serially on any runner."""

    POLLS = userstate.ReadModifyWriteStateSpec("polls", VarIntCoder())

    def __init__(self, settings: OktaSettings, tail: TailSettings):
        self.settings, self.tail = settings, tail

    def setup(self):
        self._tail = OktaTail(self.settings, self.tail)

    def process(self, element, polls=beam.DoFn.StateParam(POLLS)):
        pages = self._tail.tick()
        if pages:
            polls.write((polls.read() or 0) + pages)

    def teardown(self):
        self._tail.close()


def run_locally(settings: OktaSettings, tail: TailSettings, stop_after: float | None = None,
                sleep=time.sleep, clock=time.monotonic) -> None:
    """The tail as a plain loop in this process: what the local runner gets instead of PeriodicImpulse.

    Measured here (Beam 2.77): a ``PeriodicImpulse`` on the local streaming runner grows the process by
    ~7.5 MB/s whatever its interval, and on the FnApiRunner it fires nothing until its stop time. The
    loop calls exactly the code the DoFn calls.
    """
    runner = OktaTail(settings, tail)
    deadline = None if stop_after is None else clock() + stop_after
    try:
        while deadline is None or clock() < deadline:
            started = clock()
            try:
                runner.tick()
            except OktaApiError as exc:
                if not outage(exc):
                    raise
                # Okta or the network is down past the client's retries: keep the buffer and the
                # cursor, and try again after a poll interval instead of ending the stream.
                print(f"warning: {exc}; polling again in {tail.poll_interval:g} s", file=sys.stderr, flush=True)
                sleep(tail.poll_interval)
                continue
            sleep(max(0.0, TICK_SECONDS - (clock() - started)))
    finally:
        runner.close()


def outage(exc: OktaApiError) -> bool:
    """Worth waiting out (no answer, 5xx, still throttled) rather than a configuration problem (other 4xx)."""
    return exc.status is None or exc.status >= 500 or exc.status == 429


class TailSystemLogToLake(beam.PTransform):
    """The whole Okta streaming job: ticks -> poll, flatten, dedupe -> per-window commits and cursor."""

    def __init__(self, settings: OktaSettings, tail: TailSettings):
        super().__init__()
        self.settings, self.tail = settings, tail

    def expand(self, pbegin):
        return (
            pbegin
            | "Ticks" >> PeriodicImpulse(fire_interval=TICK_SECONDS)
            | "OneKeyPerOrg" >> beam.Map(lambda tick, org: (org, tick), self.settings.org_url)
            | "TailAndCommit" >> beam.ParDo(_TailFn(self.settings, self.tail))
        )
