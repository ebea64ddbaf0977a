"""The Beam building blocks: parse -> select -> flatten, one batch per element.

Each transform is pure (no I/O) and can be tested with ``beam.Create`` and
``assert_that``. Dead letters leave every stage on the ``dead_letter``
tagged output; :class:`PersonalEventsToRows` joins them into one collection.

    RawBatch --ParseEvents (decode, validate, select)--> EventBatch
             --FlattenTargets--> RowBatch (one lake partition's rows)

Cyclic garbage collection is paused during a bundle (see
:mod:`transforms.gc_pause`).

The batch element types get coders of their own, registered on import: Beam samples
elements to estimate PCollection sizes, and without them a batch (1000 events as nested
dicts, or an Arrow table) was encoded by the generic coder just to be measured, which cost
more than the parsing itself in profiles. These coders pickle (Arrow tables pickle as their
buffers) and estimate size in O(1). Every Beam module that carries batches imports this one.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from common.metrics import OrgCounters, count_drift, counter, dead_letter_counter
from transforms import progress
from transforms.decode import STAGE_DECODE, STAGE_VALIDATE, decode_batch
from transforms.drift import DriftWatch, new_watch
from transforms.flatten import STAGE_FLATTEN, Flattener
from transforms.gc_pause import PausedCollector
from transforms.records import EventBatch, RawBatch, RowBatch, RowBatches
from transforms.selection import EventTypeSelection
from transforms.settings import DecodeSettings
from transforms.shortcuts import LineDecoder

DEAD_LETTER = "dead_letter"
#: Per-bundle counts by org, as data: the run manifest sums them (:class:`sinks.lake.beam.FinishRun`), so it says
#: what the counters say (the counters themselves cannot be read inside a pipeline).
TALLIES = "tallies"


class Tally:
    """Counts of one bundle by org (None: the org is not known), emitted as ``TALLIES`` records at its end."""

    def __init__(self):
        self.counts: dict = {}

    def add(self, org: str | None, name: str, n: int = 1) -> None:
        if n:
            by_name = self.counts.setdefault(org, {})
            by_name[name] = by_name.get(name, 0) + n

    def emit(self):
        """The bundle's records (``{"kind": "tally", "org", name: n, ...}``), in the global window."""
        counts, self.counts = self.counts, {}
        for org, by_name in counts.items():
            yield beam.pvalue.TaggedOutput(TALLIES, GlobalWindows.windowed_value({"kind": "tally", "org": org,
                                                                                    **by_name}))


class _BatchCoder(beam.coders.Coder):
    def encode(self, value) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes):
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value) -> int:
        return value.estimated_bytes()

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class RawBatchCoder(_BatchCoder):
    def to_type_hint(self):
        return RawBatch


class EventBatchCoder(_BatchCoder):
    def to_type_hint(self):
        return EventBatch


class RowBatchCoder(_BatchCoder):
    def to_type_hint(self):
        return RowBatch


def drift_tally(watch: DriftWatch | None):
    """What ``watch`` saw since it was last asked, as :func:`emit_drift` sends it on."""
    if watch is not None:
        yield from emit_drift(watch.take())


def emit_drift(report: dict):
    """A drift report (:mod:`common.drift`), counted (Beam counters, the local endpoint) and as the ``TALLIES``
    record (``{"kind": "drift", "drift": report}``) the run manifest sums; nothing for an empty one."""
    if report:
        count_drift(report)
        yield beam.pvalue.TaggedOutput(TALLIES, GlobalWindows.windowed_value({"kind": "drift", "drift": report}))


beam.coders.registry.register_coder(RawBatch, RawBatchCoder)
beam.coders.registry.register_coder(EventBatch, EventBatchCoder)
beam.coders.registry.register_coder(RowBatch, RowBatchCoder)


class RowBatchesCoder(_BatchCoder):
    def to_type_hint(self):
        return RowBatches


beam.coders.registry.register_coder(RowBatches, RowBatchesCoder)


class _ParseEventsFn(beam.DoFn):
    def __init__(self, selection: EventTypeSelection, max_payload_bytes: int, progress_interval: float,
                 prepare_rows: bool, org: str | None = None, org_selections: dict | None = None):
        self.org = org
        self.org_selections = org_selections or {}  # org -> its own EventTypeSelection (--orgs event_types)
        self.selection = selection
        self.max_payload_bytes = max_payload_bytes
        self.progress_interval = progress_interval
        self.prepare_rows = prepare_rows

    def setup(self):
        self._prepare = Flattener().prepare if self.prepare_rows else None
        self._typed = LineDecoder() if self.prepare_rows else None  # its rows need no dict later
        self._read = counter("events_read")
        self._filtered = counter("filtered_out")
        self._dead = counter("dead_letters")
        self._dead_by_stage = {s: dead_letter_counter(s) for s in (STAGE_DECODE, STAGE_VALIDATE)}
        self._by_org = OrgCounters()
        self._tally = Tally()
        progress.enable(self.progress_interval)

    def start_bundle(self):
        self._collector = PausedCollector()
        self._collector.start()

    def finish_bundle(self):
        self._collector.finish()
        yield from self._tally.emit()

    def process(self, batch):
        self._collector.between_batches()
        selection = self.org_selections.get(batch.org, self.selection) if self.org_selections else self.selection
        events, dead, read, filtered = decode_batch(batch, self.max_payload_bytes, selection,
                                                    self._prepare, org=self.org, typed=self._typed)
        self._read.inc(read)
        if filtered:
            self._filtered.inc(filtered)
        org = batch.org or self.org
        self._tally.add(org, "events_read", read)
        self._tally.add(org, "filtered_out", filtered)
        if org is not None:
            self._by_org.inc(org, "events_read", read)
            self._by_org.inc(org, "filtered_out", filtered)
            self._by_org.inc(org, "dead_letters", len(dead))
        progress.record(read=read)
        if dead:
            self._dead.inc(len(dead))
            for record in dead:
                self._dead_by_stage[record["stage"]].inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)
        if events:
            yield EventBatch(events)


class ParseEvents(beam.PTransform):
    """``RawBatch`` -> ``EventBatch`` of the selected event types.

    Undecodable or invalid input goes to ``dead_letter``; valid events of
    other types are counted as ``filtered_out`` and dropped on the spot (see
    :func:`transforms.decode.decode_batch` for why selection happens here).
    With ``prepare_rows`` the documented fields are also extracted right
    away, for :class:`FlattenTargets` to use (same reason: a hot cache).
    ``org`` is the ``okta_org`` of events whose batch names none (files, Pub/Sub).
    """

    def __init__(self, decode: DecodeSettings = DecodeSettings(), progress_interval: float = 0,
                 prepare_rows: bool = False, org_event_types: dict | None = None):
        super().__init__()
        self.org = decode.org
        self.org_selections = {o: EventTypeSelection.parse(t) for o, t in (org_event_types or {}).items()}
        self.selection = decode.selection
        self.max_payload_bytes = decode.max_payload_bytes
        self.progress_interval = progress_interval
        self.prepare_rows = prepare_rows

    def expand(self, batches):
        return batches | beam.ParDo(
            _ParseEventsFn(self.selection, self.max_payload_bytes, self.progress_interval,
                           self.prepare_rows, self.org, self.org_selections)
        ).with_input_types(RawBatch).with_output_types(EventBatch).with_outputs(
            DEAD_LETTER, TALLIES, main="events")


class _FlattenFn(beam.DoFn):
    def __init__(self, raw_event: bool, max_payload_bytes: int, whole_batches: bool = False, drift: bool = True,
                 drift_cpu_share: float = 0.02):
        self.raw_event = raw_event
        self.max_payload_bytes = max_payload_bytes
        self.whole_batches = whole_batches
        self.drift, self.drift_cpu_share = drift, drift_cpu_share

    def setup(self):
        self._flattener = Flattener(self.raw_event, self.max_payload_bytes)
        self._drift = new_watch(self.drift, self.drift_cpu_share)
        self._dead = counter("dead_letters")
        self._dead_stage = dead_letter_counter(STAGE_FLATTEN)
        self._duplicates = counter("duplicates")
        self._duplicates_in_run = counter("duplicates_in_run")
        self._coerced = counter("coerced")
        self._by_org = OrgCounters()
        self._tally = Tally()

    def finish_bundle(self):
        yield from self._tally.emit()
        yield from drift_tally(self._drift)

    def process(self, batch):
        result = self._flattener.flatten(batch.events)
        if self._drift is not None:
            self._drift.observe(batch.events, result.type_changes)
        org = batch.events[0].org if batch.events else None  # one batch, one org
        if result.duplicates:
            self._duplicates.inc(result.duplicates)
            self._duplicates_in_run.inc(result.duplicates)
            self._by_org.inc(org, "duplicates", result.duplicates)
            self._tally.add(org, "duplicates_in_run", result.duplicates)
        if result.coerced:
            self._coerced.inc(result.coerced)
        for record in result.dead_letters:
            self._dead.inc()
            self._dead_stage.inc()
            self._by_org.inc(org, "dead_letters")
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)
        if self.whole_batches:
            if result.table is not None:
                yield RowBatches(result.table, [(key, offset, rows, result.events[key])
                                                for key, offset, rows in result.tables.spans()])
            return
        for key, table in result.tables.items():
            yield RowBatch(key, table, result.events[key])


class FlattenTargets(beam.PTransform):
    """``EventBatch`` -> ``RowBatch`` per partition, one row per target.

    Events with a documented field of the wrong type go to ``dead_letter``;
    a uuid repeated inside one batch and partition keeps its first copy. With ``decode.drift`` every event is
    watched for schema drift (:mod:`transforms.drift`): a ``{"kind": "drift"}`` record on ``TALLIES`` per bundle.
    With ``whole_batches`` the output is one ``RowBatches`` per input batch
    instead (what the batch sink stages; see :class:`transforms.records.RowBatches`).
    """

    def __init__(self, decode: DecodeSettings = DecodeSettings(), whole_batches: bool = False):
        super().__init__()
        self.raw_event = decode.raw_event
        self.max_payload_bytes = decode.max_payload_bytes
        self.whole_batches = whole_batches
        self.drift, self.drift_cpu_share = decode.drift, decode.drift_cpu_share

    def expand(self, batches):
        return batches | beam.ParDo(
            _FlattenFn(self.raw_event, self.max_payload_bytes, self.whole_batches, self.drift,
                       self.drift_cpu_share)
        ).with_input_types(EventBatch).with_output_types(
            RowBatches if self.whole_batches else RowBatch).with_outputs(DEAD_LETTER, TALLIES, main="rows")


class PersonalEventsToRows(beam.PTransform):
    """The composite: ``RawBatch`` -> (rows, dead letters, tallies).

    Returns a tuple ``(rows, dead_letters, tallies)``: ``RowBatch`` elements (or one
    ``RowBatches`` per input batch with ``whole_batches``), dead-letter dicts, and the ``TALLIES``
    records the run manifest sums (a streaming graph has no manifest and drops them).
    ``decode.org``: the ``okta_org`` of batches that name none; ``org_event_types``:
    an org's own selection (``{host: "personal.*"}``), instead of ``decode.event_types`` for its batches.
    """

    def __init__(self, decode: DecodeSettings = DecodeSettings(), progress_interval: float = 0,
                 whole_batches: bool = False, org_event_types: dict | None = None):
        super().__init__()
        self.decode = decode
        self.whole_batches = whole_batches
        self.org_event_types = org_event_types
        self.progress_interval = progress_interval

    def expand(self, batches):
        parsed = batches | "ParseEvents" >> ParseEvents(
            self.decode, self.progress_interval, prepare_rows=True, org_event_types=self.org_event_types)
        flat = parsed.events | "FlattenTargets" >> FlattenTargets(self.decode, self.whole_batches)
        dead = (parsed[DEAD_LETTER], flat[DEAD_LETTER]) | "AllDeadLetters" >> beam.Flatten()
        tallies = (parsed[TALLIES], flat[TALLIES]) | "AllTallies" >> beam.Flatten()
        return flat.rows, dead, tallies
