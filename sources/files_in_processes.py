"""``ExportedFilesToRows``: a local file replay, decoded and flattened in N processes (both cores, not one).

On a local runner the whole Beam graph runs in one Python process, so decoding
and flattening a large export used one core. This transform gives the same
output as ``ReadExportedFiles | PersonalEventsToRows(whole_batches=True)``
(``RowBatches`` and dead-letter records, the same counters) but sends the byte
ranges of uncompressed local JSON Lines files to ``processes`` decode processes
(:mod:`sources.range_pool`, :mod:`sources.range_worker`; :mod:`pipeline.prestart` may have
started them before Beam was imported, for exactly these ranges and settings): they run the very
same decode and flatten functions and send back Arrow row batches, which this
process stages and commits as before (:class:`sinks.lake.WriteLake`), so the
commit, the per-partition insert-if-absent dedupe and the manifest do not change.
Other ranges (compressed files, pretty-printed documents, non-local paths) take
the ordinary Beam path inside the same graph.

Only for local runs (``pipeline/batch.py`` decides): on Dataflow the ranges
are spread over the workers by the ordinary graph. A decode process that fails
or dies fails the run before anything is committed
(:class:`sources.range_pool.DecodeProcessFailed`).
"""

from __future__ import annotations

import apache_beam as beam

from sources import files
from sources.file_ranges import BATCH_BYTES, FileRange
from sources.files import ReadRangeFn, SplitFilesFn, plain_local_lines
from sources.range_pool import decode_settings, decoded_batches, worth_processes
from sources.range_worker import BatchDecoder
from transforms import progress
from transforms.decode import STAGE_DECODE, STAGE_VALIDATE
from transforms.flatten import STAGE_FLATTEN
from transforms.gc_pause import PausedCollector
from transforms.metrics import OrgCounters, counter, dead_letter_counter
from transforms.personal_rows import DEAD_LETTER
from transforms.records import PartitionKey, RowBatches
from transforms.selection import DEFAULT_EVENT_TYPES


class _DecodeInProcessesFn(beam.DoFn):
    """All plain local ranges (one list) -> ``RowBatches`` and dead letters, from the decode processes."""

    def __init__(self, settings: dict, processes: int, progress_interval: float):
        self.settings = settings
        self.processes = processes
        self.progress_interval = progress_interval

    def setup(self):
        names = ("events_read", "filtered_out", "dead_letters", "duplicates", "duplicates_in_run", "coerced")
        self._counters = {name: counter(name) for name in names}
        self._dead_by_stage = {s: dead_letter_counter(s) for s in (STAGE_DECODE, STAGE_VALIDATE, STAGE_FLATTEN)}
        self._by_org = OrgCounters()
        progress.enable(self.progress_interval)

    def process(self, ranges):
        collector = PausedCollector()  # the head of the fused chain, as _ParseEventsFn is on the other path
        collector.start()
        try:
            plain = sorted(r for r in ranges if plain_local_lines(r))
            if not worth_processes(plain, self.processes):
                plain = []
            for decoded in decoded_batches(plain, self.settings, self.processes):
                collector.between_batches()
                yield from self._emit(*decoded)
            # The rest here, in this process: compressed files, documents, remote paths, a single range.
            reader, decoder = ReadRangeFn(self.settings["batch_size"], self.settings["batch_bytes"]), None
            for file_range in sorted(r for r in ranges if r not in plain):
                for batch in reader.process(file_range):
                    collector.between_batches()
                    decoder = decoder or BatchDecoder(self.settings)
                    yield from self._emit(*decoder.decode(batch))
        finally:
            collector.finish()

    def _emit(self, counts, dead, parts, table):
        org, counters, by_org = self.settings["org"], self._counters, self._by_org
        read, filtered, duplicates, coerced = counts
        counters["events_read"].inc(read)
        if filtered:
            counters["filtered_out"].inc(filtered)
        if duplicates:
            counters["duplicates"].inc(duplicates)
            counters["duplicates_in_run"].inc(duplicates)
        if coerced:
            counters["coerced"].inc(coerced)
        if org is not None:
            by_org.inc(org, "events_read", read)
            by_org.inc(org, "filtered_out", filtered)
            by_org.inc(org, "dead_letters", len(dead))
            by_org.inc(org, "duplicates", duplicates)
        progress.record(read=read)
        for record in dead:
            counters["dead_letters"].inc()
            self._dead_by_stage[record["stage"]].inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)
        if table is not None:
            yield RowBatches(table, [(PartitionKey(*key), offset, rows, events) for key, offset, rows, events in parts])


class ExportedFilesToRows(beam.PTransform):
    """Glob patterns -> ``(rows, dead_letters)``, decoded in ``processes`` local processes (see the module doc)."""

    def __init__(self, patterns: list[str], processes: int, event_types: str = DEFAULT_EVENT_TYPES,
                 raw_event: bool = True, max_payload_bytes: int = 16 * 1024 * 1024, progress_interval: float = 0,
                 org: str | None = None, batch_size: int = 1000, batch_bytes: int = BATCH_BYTES,
                 split_bytes: int | None = None):
        super().__init__()
        self.patterns = list(patterns)
        self.processes = processes
        self.event_types, self.raw_event, self.org = event_types, raw_event, org
        self.max_payload_bytes, self.progress_interval = max_payload_bytes, progress_interval
        self.batch_size, self.batch_bytes = batch_size, batch_bytes
        self.split_bytes = split_bytes or files.SPLIT_BYTES

    def expand(self, pbegin):
        settings = decode_settings(self.event_types, self.raw_event, self.max_payload_bytes, self.org,
                                   self.batch_size, self.batch_bytes)
        ranges = (pbegin
                  | "Patterns" >> beam.Create(self.patterns)
                  | "SplitFiles" >> beam.ParDo(SplitFilesFn(self.split_bytes)).with_output_types(FileRange))
        decoded = (ranges
                   | "AllRanges" >> beam.combiners.ToList()
                   | "DecodeInProcesses" >> beam.ParDo(
                       _DecodeInProcessesFn(settings, self.processes, self.progress_interval)
                   ).with_outputs(DEAD_LETTER, main="rows"))
        return decoded.rows, decoded[DEAD_LETTER]
