"""``ReadExportedFiles``: replay exported System Log files as ``RawBatch`` elements.

Accepts, in any mix within one glob:
- JSON Lines: one LogEvent, Event Hook envelope or JSON array per line
  (``.gz``, ``.bz2`` and other compressions Beam knows, by file extension);
- whole JSON documents, pretty-printed or not: a saved ``/api/v1/logs`` page
  (an array) or an Event Hook envelope.

Large uncompressed JSON Lines files are cut into byte ranges read in
parallel (:mod:`sources.files.ranges` cuts them; a line belongs to the range where it
starts, as in Beam's TextIO).
A file whose first line is not JSON on its own but whose whole text is (a
pretty-printed document) is read whole by one worker. Lines are handed on in
batches of ``batch_size`` lines or ``batch_bytes`` bytes, whichever comes first.

``ExportedFilesToRows``: a local file replay, decoded and flattened in N processes (both cores, not one).

On a local runner the whole Beam graph runs in one Python process, so decoding
and flattening a large export used one core. This transform gives the same
output as ``ReadExportedFiles | PersonalEventsToRows(whole_batches=True)``
(``RowBatches`` and dead-letter records, the same counters) but sends the byte
ranges of uncompressed local JSON Lines files to ``processes`` decode processes
(:mod:`sources.files.pool`, :mod:`sources.files.worker`): they run the very same
decode and flatten functions and send back Arrow row batches, which this process
stages and commits as before (:class:`sinks.lake.beam.WriteLake`), so the
commit, the per-partition insert-if-absent dedupe and the manifest do not change.
Other ranges (compressed files, pretty-printed documents, non-local paths) take
the ordinary Beam path inside the same graph.

Only for local runs (``pipeline/batch.py`` decides): on Dataflow the ranges
are spread over the workers by the ordinary graph. A decode process that fails
or dies fails the run before anything is committed
(:class:`sources.files.pool.DecodeProcessFailed`).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.metrics import OrgCounters, counter, dead_letter_counter
from sources.files.lines import line_batches
from sources.files.pool import decoded_batches, worth_processes
from sources.files.ranges import BATCH_BYTES, SPLIT_BYTES, FileRange, file_ranges
from sources.files.worker import BatchDecoder
from transforms import beam as batch_coders  # noqa: F401  (registers the batch coders)
from transforms import jsonio, progress
from transforms.beam import DEAD_LETTER, TALLIES, Tally, drift_tally, emit_drift
from transforms.decode import STAGE_DECODE, STAGE_VALIDATE
from transforms.flatten import STAGE_FLATTEN
from transforms.gc_pause import PausedCollector
from transforms.records import PartitionKey, RawBatch, RowBatches
from transforms.settings import DecodeSettings


def _compression(path: str) -> str:
    return CompressionTypes.detect_compression_type(path)


class SplitFilesFn(beam.DoFn):
    """Glob pattern -> the ``FileRange`` elements of the files it matches."""

    def __init__(self, split_bytes: int):
        self.split_bytes = split_bytes

    def process(self, pattern: str):
        matches = FileSystems.match([pattern])[0].metadata_list
        if not matches:
            raise FileNotFoundError(f"--input {pattern!r} matched no files")
        for meta in sorted(matches, key=lambda m: m.path):
            path = meta.path
            compression = _compression(path)
            yield from file_ranges(path, meta.size_in_bytes, self.split_bytes,
                                   compression != CompressionTypes.UNCOMPRESSED,
                                   lambda: FileSystems.open(path, compression_type=compression))  # noqa: B023


class ReadRangeFn(beam.DoFn):
    """``FileRange`` -> ``RawBatch`` elements."""

    def __init__(self, batch_size: int, batch_bytes: int):
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes

    def process(self, file_range):
        path, start, end, document = file_range
        if document:
            with FileSystems.open(path, compression_type=_compression(path)) as handle:
                text = handle.read()
            try:
                jsonio.loads_or_elements(text)  # a whole array with a bad event in it is one document too
                yield RawBatch(path, "whole", ["file"], [text])
                return
            except jsonio.NotJson:
                pass  # not one document after all: read it as JSON Lines
        yield from self._lines(path, start, end)

    def _lines(self, path, start, end):
        """Yield batches of the lines that start inside [start, end) (:func:`sources.files.lines.line_batches`)."""
        with FileSystems.open(path, compression_type=_compression(path)) as handle:
            yield from line_batches(handle, path, start, end, self.batch_size, self.batch_bytes)


def plain_local_lines(file_range: FileRange) -> bool:
    """Whether a range is JSON Lines of an uncompressed local file (what a local decode process reads)."""
    path = file_range.path
    return (not file_range.document and "://" not in path
            and _compression(path) == CompressionTypes.UNCOMPRESSED)


class ReadExportedFiles(beam.PTransform):
    """Glob patterns -> ``RawBatch`` elements of up to ``batch_size`` lines."""

    def __init__(self, patterns: list[str], batch_size: int = 1000,
                 batch_bytes: int = BATCH_BYTES, split_bytes: int | None = None):
        super().__init__()
        self.patterns = list(patterns)
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.split_bytes = split_bytes or SPLIT_BYTES

    def expand(self, pbegin):
        return (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "SplitFiles" >> beam.ParDo(SplitFilesFn(self.split_bytes))
            # Keyed grouping (not Reshuffle) spreads ranges over local workers; see the Beam notes.
            | "KeyRanges" >> beam.Map(lambda r: (hash(r) & 0xFFFF, r))
            | "SpreadRanges" >> beam.GroupByKey()
            | "Ranges" >> beam.FlatMap(lambda kv: kv[1])
            | "ReadRanges" >> beam.ParDo(
                ReadRangeFn(self.batch_size, self.batch_bytes)).with_output_types(RawBatch)
        )


class _DecodeInProcessesFn(beam.DoFn):
    """All plain local ranges (one list) -> ``RowBatches`` and dead letters, from the decode processes."""

    def __init__(self, settings: DecodeSettings, processes: int, progress_interval: float):
        self.settings = settings
        self.processes = processes
        self.progress_interval = progress_interval

    def setup(self):
        names = ("events_read", "filtered_out", "dead_letters", "duplicates", "duplicates_in_run", "coerced")
        self._counters = {name: counter(name) for name in names}
        self._dead_by_stage = {s: dead_letter_counter(s) for s in (STAGE_DECODE, STAGE_VALIDATE, STAGE_FLATTEN)}
        self._by_org = OrgCounters()
        self._tally = Tally()
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
            reader, decoder = ReadRangeFn(self.settings.batch_size, self.settings.batch_bytes), None
            for file_range in sorted(r for r in ranges if r not in plain):
                for batch in reader.process(file_range):
                    collector.between_batches()
                    decoder = decoder or BatchDecoder(self.settings)
                    yield from self._emit(*decoder.decode(batch))
            yield from self._tally.emit()
            yield from drift_tally(decoder and decoder.drift)
        finally:
            collector.finish()

    def _emit(self, counts, dead, parts, table, drift=None):
        """One decoded batch out: counted, its dead letters and rows emitted; a decode process's drift report
        (``drift``) counted and sent to the manifest as the Beam graph's are."""
        yield from emit_drift(drift)
        org, counters, by_org = self.settings.org, self._counters, self._by_org
        read, filtered, duplicates, coerced = counts
        counters["events_read"].inc(read)
        if filtered:
            counters["filtered_out"].inc(filtered)
        if duplicates:
            counters["duplicates"].inc(duplicates)
            counters["duplicates_in_run"].inc(duplicates)
        if coerced:
            counters["coerced"].inc(coerced)
        self._tally.add(org, "events_read", read)
        self._tally.add(org, "filtered_out", filtered)
        self._tally.add(org, "duplicates_in_run", duplicates)
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
    """Glob patterns -> ``(rows, dead_letters, tallies)``, decoded in ``processes`` local processes (see the module
    doc)."""

    def __init__(self, patterns: list[str], processes: int, decode: DecodeSettings = DecodeSettings(),
                 progress_interval: float = 0, split_bytes: int | None = None):
        super().__init__()
        self.patterns = list(patterns)
        self.processes = processes
        self.decode, self.progress_interval = decode, progress_interval
        self.split_bytes = split_bytes or SPLIT_BYTES

    def expand(self, pbegin):
        settings = self.decode
        ranges = (pbegin
                  | "Patterns" >> beam.Create(self.patterns)
                  | "SplitFiles" >> beam.ParDo(SplitFilesFn(self.split_bytes)).with_output_types(FileRange))
        decoded = (ranges
                   | "AllRanges" >> beam.combiners.ToList()
                   | "DecodeInProcesses" >> beam.ParDo(
                       _DecodeInProcessesFn(settings, self.processes, self.progress_interval)
                   ).with_outputs(DEAD_LETTER, TALLIES, main="rows"))
        return decoded.rows, decoded[DEAD_LETTER], decoded[TALLIES]
