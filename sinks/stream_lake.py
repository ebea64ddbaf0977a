"""``WriteLakeWindows``: the streaming Beam sink for Pub/Sub input, one commit per window and partition.

It serves Beam's Pub/Sub graph (Dataflow, or ``--pubsub_reader=beam`` locally);
the local runner's default Pub/Sub loop (:mod:`streaming.pubsub_loop`) and the
Okta tail commit through :mod:`streaming.window_buffer` instead; all of them
count and report a window with :mod:`streaming.commit`.

    rows ─ DropRecentDuplicates (state per uuid) ─ FixedWindows ─ GBK(partition) ─ commit
    dead letters ─ FixedWindows ─ GBK ─ commit
    commits of a window ─ GBK ─ one Iceberg snapshot (``--iceberg_table``) and one progress line per window

Windows are in *arrival* time: every element is re-stamped with the time the
pipeline received it before windowing (:func:`transforms.local_runner.stamp_arrival`).
Measured here: the local runner moves the Pub/Sub watermark to the newest message it pulled, so a backlog pulled in
several batches made most messages "late" to their publish-time windows, and
Beam dropped them without a trace (65 of 151 rows written). Stamped on
arrival, no element is ever behind the watermark, so nothing can be dropped
as late. A window's rows are committed when the watermark passes its end,
with :func:`sinks.window_commit.commit_window` (files named after the window,
insert-if-absent on ``uuid``). Rows keep their own ``published`` date, so an
event that arrives late lands in its own ``event_date`` partition.
"""

from __future__ import annotations

import time

import apache_beam as beam
from apache_beam.transforms import window as beam_window

from schemas.arrow import file_schema
from sinks.window_commit import commit_window, window_id
from streaming.commit import commit_snapshot, finish_window, report_window
from streaming.settings import WindowSettings
from transforms.dedupe import DropRecentDuplicates
from transforms.local_runner import stamp_arrival
from transforms.records import RowBatch


class _CommitFn(beam.DoFn):
    def __init__(self, settings: WindowSettings, schema):
        self.settings, self.schema = settings, schema

    def process(self, element, window=beam.DoFn.WindowParam):
        key, items = element
        settings, name = self.settings, window_id(float(window.start))
        if key == "dead":
            result = commit_window(settings.lake, settings.dead_letter, name, settings.job, self.schema,
                                   (), items, settings.compression)
        else:
            result = commit_window(settings.lake, settings.dead_letter, name, settings.job, self.schema,
                                   ((batch.partition, batch.table) for batch in items), (), settings.compression)
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
        commit = _CommitFn(settings, file_schema(settings.raw_event))
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
