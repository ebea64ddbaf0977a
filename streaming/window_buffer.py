"""The open window of a streaming loop: decode, dedupe and buffer batches, then commit and report.

Both loops that run without Beam's streaming machinery use it: the Okta tail
(:mod:`streaming.okta_tail`, on every runner) and the local Pub/Sub loop
(:mod:`streaming.pubsub_loop`). ``take`` runs the batch path's decode,
validate, select and flatten functions on a :class:`RawBatch`, drops uuids
kept within ``--dedupe_horizon`` (:class:`transforms.dedupe.RecentUuids`)
and buffers rows and dead letters; ``commit`` writes them as the window's
files (:func:`sinks.lake.window.commit_window`), then counts them, streams
them to BigQuery if asked and prints the window's progress line
(:mod:`streaming.commit`). The window's kept events are watched for schema drift
(:mod:`transforms.drift`); after its commit what they showed is counted, what is new to the lake marked
(:mod:`sinks.lake.drift`), kept as the window's drift record and named in its line. While a backlog
is read, a window is committed in pieces of ``MAX_BUFFERED_ROWS`` (``full``),
so memory stays bounded whatever the window length. What the caller
does after a commit (store the Okta cursor, acknowledge the Pub/Sub messages)
is what makes the loop safe to kill at any point.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

from common.metrics import Quantiles, count_drift, counter, dead_letter_counter, measure, observe
from schemas.arrow import file_schema
from sinks.lake.drift import DriftRegistry, write_window_record
from sinks.lake.window import WindowCommit, commit_window, window_id, window_start
from streaming.commit import commit_snapshot, finish_window, report_window
from streaming.settings import WindowSettings
from transforms.decode import decode_batch
from transforms.dedupe import RecentUuids
from transforms.drift import new_watch
from transforms.flatten import Flattener
from transforms.records import RawBatch
from transforms.shortcuts import LineDecoder

MAX_BUFFERED_ROWS = 50_000  # a backlog is committed in pieces of about this size, not held in memory whole


class WindowBuffer:
    """Rows and dead letters of one processing-time window at a time, as ``settings`` says."""

    def __init__(self, settings: WindowSettings, clock=time.time):
        self.settings, self._clock = settings, clock
        self._selection = settings.decode.selection
        self._flattener = Flattener(settings.decode.raw_event, settings.decode.max_payload_bytes)
        self._typed = LineDecoder()
        self._schema = file_schema(settings.decode.raw_event)
        self._recent = RecentUuids(settings.dedupe_horizon)
        self._drift = new_watch(settings.decode.drift, settings.decode.drift_cpu_share)
        self._registry = DriftRegistry(settings.lake.root)
        self._counters = {name: counter(name) for name in (
            "events_read", "filtered_out", "dead_letters", "duplicates", "duplicates_in_run", "coerced",
            "withheld", "withheld_dead_letters")}
        self._dead_by_stage: dict = {}
        self.reset(None)

    def reset(self, window: float | None) -> None:
        """Forget the buffer (after a commit, or on a stop: what it held is read again by the next run)."""
        self.window = window
        self._rows: list = []
        self._dead: list = []
        self._read = 0
        self._buffered = 0
        self._kept = 0  # events kept in the buffer (their rows not yet committed)
        self._duplicates = 0  # events dropped as duplicates while the window was read
        self._received: list = []  # (wall-clock second received, {uuid: (published µs, org)}) per kept table

    def ended(self, now: float) -> bool:
        """Whether the buffered window is over at ``now`` (time to commit it)."""
        return self.window is not None and window_start(now, self.settings.length) != self.window

    def open(self, now: float) -> float:
        """Buffer the window ``now`` falls in, unless one is open; returns the open window's end."""
        if self.window is None:
            self.window = window_start(now, self.settings.length)
        return self.window + self.settings.length

    @property
    def empty(self) -> bool:
        return not self._rows and not self._dead

    @property
    def full(self) -> bool:
        """Holding MAX_BUFFERED_ROWS or more: commit now, before the window ends (a backlog being read)."""
        return self._buffered >= MAX_BUFFERED_ROWS

    def take(self, *batches: RawBatch) -> None:
        """Decode each batch (its own dead-letter context), then flatten and dedupe their events together."""
        events, dead = [], []
        for batch in batches:
            decoded = decode_batch(batch, self.settings.decode.max_payload_bytes, self._selection,
                                   self._flattener.prepare, org=self.settings.decode.org, typed=self._typed)
            self._counters["events_read"].inc(decoded.read)
            self._counters["filtered_out"].inc(decoded.filtered)
            self._read += decoded.read
            events += decoded.events
            dead += decoded.dead_letters
        received = time.time()  # wall clock, like `published`, whatever clock cuts the windows
        flat = self._flattener.flatten(events)
        if self._drift is not None:
            self._drift.observe(events, flat.type_changes)
        duplicates = flat.duplicates
        for key, table in flat.tables.items():
            table, repeated = self._recent.keep_new(table)
            duplicates += repeated
            self._kept += flat.events[key] - repeated
            if table.num_rows:
                self._rows.append((key, table))
                self._buffered += table.num_rows
                self._received.append((received, _events_of(table)))
        dead += flat.dead_letters
        self._dead.extend(dead)
        self._counters["dead_letters"].inc(len(dead))
        for record in dead:
            stage = record["stage"]
            if stage not in self._dead_by_stage:
                self._dead_by_stage[stage] = dead_letter_counter(stage)
            self._dead_by_stage[stage].inc()
        self._duplicates += duplicates
        self._counters["duplicates"].inc(duplicates)
        self._counters["duplicates_in_run"].inc(duplicates)
        self._counters["coerced"].inc(flat.coerced)

    def drop(self) -> None:
        """Forget the open window without committing it (a stop, a failed org): what it holds is read again by
        the next run. Counted as ``withheld``, so a run's counts still balance."""
        held_dead = len(self._dead)
        if self._kept or held_dead:
            self._counters["withheld"].inc(self._kept + held_dead)
            self._counters["withheld_dead_letters"].inc(held_dead)
        if self._drift is not None:
            self._drift.discard()  # its events are read again
        self.reset(None)

    def commit(self, source: str, cursor: str | None = None) -> WindowCommit | None:
        """Commit the buffered window (None when it holds nothing) and print its progress line.

        With ``--iceberg_table`` the window's files then become one Iceberg snapshot, its summary
        naming ``source`` and ``cursor`` (the Okta cursor after the window).
        """
        if self.empty:  # its events, if any, were all duplicates
            self._report_drift(window_id(self._clock() if self.window is None else self.window))
            measure("window_closed", self._clock())
            return None
        settings, window = self.settings, self.window
        started = time.monotonic()
        result = commit_window(settings.lake.root, settings.lake.dead_letter, window_id(window), settings.job,
                               self._schema, self._rows, self._dead, settings.lake.compression)
        finish_window(settings, window_id(window), self._schema, result)
        commit_snapshot(settings, window_id(window), [result], source, cursor)
        measure("commit_seconds", time.monotonic() - started)
        if self._rows:
            measure("newest_published", max(pc.max(table["published"]).value for _, table in self._rows) / 1e6)
        freshness = self._observe_freshness()
        drift = self._report_drift(window_id(window))
        report_window(settings, window, [result], freshness, read=self._read, duplicates=self._duplicates,
                      drift=drift)
        measure("window_closed", self._clock())
        return result

    def _report_drift(self, window: str) -> dict:
        """After the window's commit: its drift, what is new to the lake marked, recorded and counted."""
        report = self._drift.take() if self._drift is not None else {}
        if report:
            settings = self.settings
            self._registry.register_quietly(report, settings.job)
            write_window_record(settings.lake.root, settings.job, window, report)
            count_drift(report)
        return report

    def _observe_freshness(self) -> str:
        """Each committed event's seconds since it was received and since it was published: to the endpoint's
        histograms (per org) and, as quantiles, to the window line. Called right after the commit."""
        now = time.time()
        by_org: dict = {}
        for received, events in self._received:
            for published_us, org in events.values():
                since = by_org.setdefault(org, ([], []))
                since[0].append(now - received)
                since[1].append(now - published_us / 1e6)
        receipt, published = Quantiles(), Quantiles()
        for org, (after_receipt, after_published) in by_org.items():
            observe("receipt_to_commit_seconds", org, after_receipt)
            observe("published_to_commit_seconds", org, after_published)
            receipt.add(after_receipt)
            published.add(after_published)
        if not receipt.count:
            return "nothing new"
        return (f"committed {receipt.quantile(0.5):.1f} s (max {receipt.largest:.1f} s) after receipt, "
                f"{published.quantile(0.5):.1f} s (max {published.largest:.1f} s) after published")


def _events_of(table: pa.Table) -> dict:
    """``{uuid: (published in µs, okta_org)}`` of a table of rows (one row per target)."""
    published = pc.cast(table["published"], pa.int64()).to_pylist()
    return {uuid: (when, org) for uuid, when, org in zip(table["uuid"].to_pylist(), published,
                                                          table["okta_org"].to_pylist())}
