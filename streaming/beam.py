"""Streaming on Beam: the Okta tail in a stateful DoFn, and the windowed lake sink of Beam's Pub/Sub graph.

The streaming core (:mod:`streaming.okta_tail`, :mod:`streaming.window_buffer`,
:mod:`streaming.commit`) has no Beam in it; this module puts it in a graph, for
Dataflow (and ``--pubsub_reader=beam`` locally).

**The Okta tail** (``--streaming --source=okta``):
A polling chain is one sequence of requests (each ``next`` link comes from the
previous page), so one org is tailed by one worker: a ``PeriodicImpulse``
ticks every second, all ticks share one key, and a stateful DoFn (Beam runs
one key serially, on any runner) does the work:

- it polls from the cursor while pages are full, stops at the first short
  page (caught up), then waits ``--poll_interval`` (auto: from the org's
  rate limit) before the next poll, whatever the runner does with the ticks
  (Beam's local runner does not honour poll intervals reliably); every
  request also goes through the org's rate governor;
- each page is decoded, validated, selected and flattened by the same
  functions as the batch path, deduped against the uuids kept within
  ``--dedupe_horizon``, and buffered;
- what a poll read is committed to the lake when the poll ends, or when the
  ``--window`` (processing time) it was read in ends, whichever comes first,
  as that window's files (:func:`sinks.lake.window.commit_window`), and only
  then is the cursor after it stored in ``--state``.

The tail itself has no Beam in it (:class:`streaming.okta_tail.OktaTail`);
this module only puts it inside a stateful DoFn for Dataflow.

A crash or a stop loses at most the uncommitted buffer, whose events the next
run reads again from the stored cursor: nothing is lost and the lake's
insert-if-absent drops what was already written. Events persisted late (Okta
orders the polling chain by persistence time) arrive in the window they are
polled in and land in the partition of their own ``published`` date.

**The Pub/Sub sink**, ``WriteLakeWindows``:
It serves Beam's Pub/Sub graph (Dataflow, or ``--pubsub_reader=beam`` locally);
the local runner's default Pub/Sub loop (:mod:`streaming.pubsub_loop`) and the
Okta tail commit through :mod:`streaming.window_buffer` instead; all of them
count and report a window with :mod:`streaming.commit`.

    rows ─ DropRecentDuplicates (state per uuid) ─ FixedWindows ─ GBK(partition) ─ commit
    dead letters ─ FixedWindows ─ GBK ─ commit
    commits of a window ─ GBK ─ one Iceberg snapshot (``--iceberg_table``) and one progress line per window

Windows are in *arrival* time: every element is re-stamped with the time the
pipeline received it before windowing (:func:`pipeline.runner.stamp_arrival`).
Measured here: the local runner moves the Pub/Sub watermark to the newest message it pulled, so a backlog pulled in
several batches made most messages "late" to their publish-time windows, and
Beam dropped them without a trace (65 of 151 rows written). Stamped on
arrival, no element is ever behind the watermark, so nothing can be dropped
as late. A window's rows are committed when the watermark passes its end,
with :func:`sinks.lake.window.commit_window` (files named after the window,
insert-if-absent on ``uuid``). Rows keep their own ``published`` date, so an
event that arrives late lands in its own ``event_date`` partition.
"""

from __future__ import annotations

import time

import apache_beam as beam
from apache_beam.coders import BooleanCoder, VarIntCoder
from apache_beam.transforms import userstate
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.transforms.timeutil import TimeDomain

from common.metrics import counter
from schemas.arrow import file_schema
from sinks.lake.window import commit_window, window_id
from sources.okta.connect import OktaSettings
from streaming.commit import commit_snapshot, finish_window, report_window
from streaming.okta_tail import TICK_SECONDS, OktaTail, OrgTail, org_tail_settings
from streaming.settings import TailSettings, WindowSettings
from transforms.dedupe import split_by_uuid
from transforms.records import RowBatch


def stamp_arrival(element):
    """Workaround 5: the element, timestamped with the moment it arrived (never behind the watermark)."""
    return beam_window.TimestampedValue(element, time.time())


class _FirstWithinHorizonFn(beam.DoFn):
    """Keyed by uuid: pass the first copy, drop repeats until a processing-time timer forgets the uuid."""

    SEEN = userstate.ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.REAL_TIME)

    def __init__(self, horizon_seconds: float):
        self.horizon = horizon_seconds

    def setup(self):
        self._duplicates = counter("duplicates")
        self._duplicates_in_run = counter("duplicates_in_run")

    def process(self, element, seen=beam.DoFn.StateParam(SEEN), expiry=beam.DoFn.TimerParam(EXPIRY)):
        _, batch = element
        if seen.read():
            self._duplicates.inc()
            self._duplicates_in_run.inc()
            return
        seen.write(True)
        expiry.set(time.time() + self.horizon)
        yield batch

    @userstate.on_timer(EXPIRY)
    def expire(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


class DropRecentDuplicates(beam.PTransform):
    """``RowBatch`` -> one ``RowBatch`` per event, without the events already seen within the horizon."""

    def __init__(self, horizon_seconds: float):
        super().__init__()
        self.horizon = horizon_seconds

    def expand(self, rows):
        return (
            rows
            | "KeyByUuid" >> beam.FlatMap(split_by_uuid).with_output_types(tuple[str, RowBatch])
            | "FirstWithinHorizon" >> beam.ParDo(_FirstWithinHorizonFn(self.horizon)).with_output_types(RowBatch)
        )


class _CommitFn(beam.DoFn):
    def __init__(self, settings: WindowSettings, schema):
        self.settings, self.schema = settings, schema

    def process(self, element, window=beam.DoFn.WindowParam):
        key, items = element
        settings, name = self.settings, window_id(float(window.start))
        if key == "dead":
            result = commit_window(settings.lake.root, settings.lake.dead_letter, name, settings.job, self.schema,
                                   (), items, settings.lake.compression)
        else:
            result = commit_window(settings.lake.root, settings.lake.dead_letter, name, settings.job, self.schema,
                                   ((batch.partition, batch.table) for batch in items), (), settings.lake.compression)
            finish_window(settings, name, self.schema, result)
        yield result


class _ReportFn(beam.DoFn):
    def __init__(self, settings: WindowSettings):
        self.settings = settings

    def process(self, element, window=beam.DoFn.WindowParam):
        _, results = element
        results = list(results)
        # Every lake commit of the window is in: its files become one Iceberg snapshot (one step, one worker).
        commit_snapshot(self.settings, window_id(float(window.start)), results, "pubsub")
        lag = time.time() - float(window.end)
        report_window(self.settings, float(window.start), results,
                      f"committed {lag:.1f} s after the window closed")


class WriteLakeWindows(beam.PTransform):
    """(rows, dead letters) of a stream -> per-window lake commits; returns the commit results."""

    def __init__(self, settings: WindowSettings):
        super().__init__()
        self.settings = settings

    def expand(self, pcolls):
        rows, dead = pcolls
        settings = self.settings
        windows = beam_window.FixedWindows(settings.length)
        keyed_rows = (
            rows
            | "StampArrival" >> beam.Map(stamp_arrival).with_output_types(RowBatch)
            | "Dedupe" >> DropRecentDuplicates(settings.dedupe_horizon)
            | "WindowRows" >> beam.WindowInto(windows)
            | "ByPartition" >> beam.Map(lambda batch: (batch.partition.path(), batch))
        )
        keyed_dead = (
            dead
            | "StampDeadLetterArrival" >> beam.Map(stamp_arrival)
            | "WindowDeadLetters" >> beam.WindowInto(windows)
            | "DeadKey" >> beam.Map(lambda record: ("dead", record))
        )
        commit = _CommitFn(settings, file_schema(settings.decode.raw_event))
        committed_rows = keyed_rows | "GroupRows" >> beam.GroupByKey() | "CommitRows" >> beam.ParDo(commit)
        committed_dead = keyed_dead | "GroupDeadLetters" >> beam.GroupByKey() | "CommitDeadLetters" >> beam.ParDo(
            commit)
        return (
            (committed_rows, committed_dead)
            | "AllCommits" >> beam.Flatten()
            | "OneKey" >> beam.Map(lambda result: ("window", result))
            | "GroupWindow" >> beam.GroupByKey()
            | "Report" >> beam.ParDo(_ReportFn(settings))
        )


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


class _OrgsTailFn(beam.DoFn):
    """Many orgs (``--orgs``): an :class:`OrgTail` per org, ticked under that org's key (keys run in parallel)."""

    POLLS = userstate.ReadModifyWriteStateSpec("polls", VarIntCoder())

    def __init__(self, orgs, tail: TailSettings):
        self.orgs, self.tail = list(orgs), tail

    def setup(self):
        self._tails = {org.host: OrgTail(org, org_tail_settings(self.tail, org, number))
                       for number, org in enumerate(self.orgs)}

    def process(self, element, polls=beam.DoFn.StateParam(POLLS)):
        host, _ = element
        pages = self._tails[host].tick()
        if pages:
            polls.write((polls.read() or 0) + pages)

    def teardown(self):
        for tail in self._tails.values():
            tail.close()


class TailOrgsToLake(beam.PTransform):
    """The many-org streaming job: each tick goes to every org's key; each org polls, commits and stores its own."""

    def __init__(self, orgs, tail: TailSettings):
        super().__init__()
        self.orgs, self.tail = list(orgs), tail

    def expand(self, pbegin):
        hosts = [org.host for org in self.orgs]
        return (
            pbegin
            | "Ticks" >> PeriodicImpulse(fire_interval=TICK_SECONDS)
            | "OneKeyPerOrg" >> beam.FlatMap(lambda tick, hosts: [(host, tick) for host in hosts], hosts)
            | "TailAndCommit" >> beam.ParDo(_OrgsTailFn(self.orgs, self.tail))
        )
