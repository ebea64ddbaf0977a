"""``ReadExportedFiles``: replay exported System Log files as ``RawBatch`` elements.

Accepts, in any mix within one glob:
- JSON Lines: one LogEvent, Event Hook envelope or JSON array per line
  (``.gz``, ``.bz2`` and other compressions Beam knows, by file extension);
- whole JSON documents, pretty-printed or not: a saved ``/api/v1/logs`` page
  (an array) or an Event Hook envelope.

Large uncompressed JSON Lines files are cut into byte ranges read in
parallel (:mod:`sources.file_ranges` cuts them; a line belongs to the range where it
starts, as in Beam's TextIO).
A file whose first line is not JSON on its own but whose whole text is (a
pretty-printed document) is read whole by one worker. Lines are handed on in
batches of ``batch_size`` lines or ``batch_bytes`` bytes, whichever comes first.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from sources.file_ranges import BATCH_BYTES, SPLIT_BYTES, FileRange, file_ranges
from sources.line_ranges import line_batches
from transforms import (
    coders,  # noqa: F401  (registers the batch coders)
    jsonio,
)
from transforms.records import RawBatch


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
                jsonio.loads(text)
                yield RawBatch(path, "whole", ["file"], [text])
                return
            except jsonio.NotJson:
                pass  # not one document after all: read it as JSON Lines
        yield from self._lines(path, start, end)

    def _lines(self, path, start, end):
        """Yield batches of the lines that start inside [start, end) (:func:`sources.line_ranges.line_batches`)."""
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
