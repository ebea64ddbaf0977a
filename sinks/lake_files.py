"""The lake's file protocol: stage, then commit each partition (no Beam here).

How a batch run writes the lake, and why:

1. **Stage.** Workers append flattened rows to Parquet files under
   ``LAKE/_staging/<run_id>/`` as they go, one open file per partition, with
   bounded buffers. Rows never pass through a shuffle, so memory stays flat
   however large the input (the local runner holds every shuffled element in
   memory). A stager drops a uuid it has already staged for that partition.
2. **Commit.** Once every worker is done, each partition is committed by
   exactly one worker: it reads the ``uuid`` column of the partition's
   existing files, then moves each staged file into
   ``event_date=.../event_type=.../part-<run_id>-<id>.parquet``, rewriting it
   without the events whose uuid is already in the lake or in an earlier file
   of this commit. A file appears whole or not at all.

So a write is *insert-if-absent on uuid*: re-running the same input, or an
overlapping range, or a run that crashed half-way, never duplicates an
event, and never needs to delete data that is already there.
"""

from __future__ import annotations

import os
import uuid as _uuid
from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from sinks import fs
from transforms import jsonio
from transforms.records import PartitionKey

STAGING_DIR = "_staging"
RUNS_DIR = "_runs"
DEFAULT_DEAD_LETTER_DIR = "_dead_letter"


class StagedFile(NamedTuple):
    partition: PartitionKey | None  # None for a dead-letter file
    path: str
    rows: int
    events: int


def staging_dir(lake: str, run_id: str) -> str:
    return fs.join(lake, STAGING_DIR, run_id)


def final_name(run_id: str, staged_path: str, prefix: str = "part") -> str:
    stem = os.path.basename(staged_path).split(".", 1)[0]
    return f"{prefix}-{run_id}-{stem}.parquet"


class PartitionStager:
    """Appends row batches to one staging Parquet file per partition, memory bounded.

    Rows are buffered per partition and written as a row group when the buffer
    reaches ``row_group_bytes``; when all buffers together pass
    ``max_buffer_bytes`` the largest is written early; a file is closed after
    ``max_file_rows`` rows or when more than ``max_open_files`` are open.
    """

    def __init__(
        self,
        staging: str,
        schema: pa.Schema,
        *,
        compression: str = fs.PARQUET_COMPRESSION,
        row_group_bytes: int = 32 * 1024 * 1024,
        max_buffer_bytes: int = 128 * 1024 * 1024,
        max_file_rows: int = 5_000_000,
        max_open_files: int = 128,
    ):
        self.staging = staging
        self.schema = schema
        self.compression = compression
        self.row_group_bytes = row_group_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.max_file_rows = max_file_rows
        self.max_open_files = max_open_files
        self._buffers: dict[PartitionKey, list[pa.Table]] = {}
        self._buffer_bytes: dict[PartitionKey, int] = {}
        self._buffer_events: dict[PartitionKey, int] = {}
        self._writers: dict[PartitionKey, fs.ParquetFileWriter] = {}
        self._writer_events: dict[PartitionKey, int] = {}
        self._seen: dict[PartitionKey, set[str]] = {}
        self._total_buffered = 0
        self.finished: list[StagedFile] = []

    def add(self, key: PartitionKey, table: pa.Table) -> int:
        """Stage one partition's rows; return how many events were duplicates of staged ones.

        The rows of one event share its uuid; the table holds each uuid once
        (the flattener drops in-batch duplicates).
        """
        seen = self._seen.setdefault(key, set())
        uuids = table.column("uuid").to_pylist()
        fresh = set(uuids)
        repeated = fresh & seen
        if repeated:
            table = table.filter(pc.invert(pc.is_in(table.column("uuid"), pa.array(list(repeated)))))
            fresh -= repeated
        seen |= fresh
        if table.num_rows:
            self._buffers.setdefault(key, []).append(table)
            size = table.nbytes
            self._buffer_bytes[key] = self._buffer_bytes.get(key, 0) + size
            self._buffer_events[key] = self._buffer_events.get(key, 0) + len(fresh)
            self._total_buffered += size
            if self._buffer_bytes[key] >= self.row_group_bytes:
                self._flush(key)
            while self._total_buffered > self.max_buffer_bytes and self._buffer_bytes:
                self._flush(max(self._buffer_bytes, key=self._buffer_bytes.get))
        return len(repeated)

    def _flush(self, key: PartitionKey) -> None:
        tables = self._buffers.pop(key, None)
        size = self._buffer_bytes.pop(key, 0)
        events = self._buffer_events.pop(key, 0)
        self._total_buffered -= size
        if not tables:
            return
        writer = self._writers.get(key)
        if writer is None:
            if len(self._writers) >= self.max_open_files:
                self._close(next(iter(self._writers)))
            path = fs.join(self.staging, f"{_uuid.uuid4().hex}.parquet")
            writer = self._writers[key] = fs.ParquetFileWriter(path, self.schema, self.compression)
            self._writer_events[key] = 0
        writer.write(pa.concat_tables(tables))
        self._writer_events[key] += events
        if writer.rows >= self.max_file_rows:
            self._close(key)

    def _close(self, key: PartitionKey) -> None:
        writer = self._writers.pop(key)
        events = self._writer_events.pop(key)
        writer.close()
        self.finished.append(StagedFile(key, writer.uri, writer.rows, events))

    def close(self) -> list[StagedFile]:
        """Write everything buffered, close every file, return all staged files."""
        for key in list(self._buffers):
            self._flush(key)
        for key in list(self._writers):
            self._close(key)
        finished, self.finished = self.finished, []
        return finished

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()
        self._writers.clear()
        self._buffers.clear()


class DeadLetterStager:
    """Appends dead-letter records as JSON Lines to staging files."""

    def __init__(self, staging: str, max_file_bytes: int = 64 * 1024 * 1024):
        self.staging = staging
        self.max_file_bytes = max_file_bytes
        self._handle = None
        self._path = None
        self._bytes = 0
        self._records = 0
        self.finished: list[StagedFile] = []

    def add(self, record: dict) -> None:
        line = jsonio.dumps(record) + b"\n"
        if self._handle is None:
            from apache_beam.io.filesystem import CompressionTypes
            from apache_beam.io.filesystems import FileSystems

            self._path = fs.join(self.staging, f"{_uuid.uuid4().hex}.jsonl")
            fs.ensure_dir(self.staging)
            self._handle = FileSystems.create(
                self._path, mime_type="application/x-ndjson",
                compression_type=CompressionTypes.UNCOMPRESSED,
            )
        self._handle.write(line)
        self._bytes += len(line)
        self._records += 1
        if self._bytes >= self.max_file_bytes:
            self._close()

    def _close(self) -> None:
        self._handle.close()
        self.finished.append(StagedFile(None, self._path, self._records, self._records))
        self._handle, self._path, self._bytes, self._records = None, None, 0, 0

    def close(self) -> list[StagedFile]:
        if self._handle is not None:
            self._close()
        finished, self.finished = self.finished, []
        return finished


class PartitionCommit(NamedTuple):
    """What committing one partition did."""

    partition: str  # event_date=.../event_type=...
    files: list  # file names written
    rows: int
    events: int
    duplicates_in_run: int  # events already committed by an earlier staged file of this run
    duplicates_in_lake: int  # events whose uuid was already in the lake before this run


def _uuid_set(path: str) -> set[str]:
    try:
        return set(fs.read_parquet(path, columns=["uuid"]).column("uuid").to_pylist())
    except Exception as exc:  # a foreign or corrupt file in our partition
        raise OSError(
            f"cannot read the uuid column of {path} ({exc.__class__.__name__}: {exc}); "
            "every .parquet file in a lake partition must be one this pipeline wrote"
        ) from None


def commit_partition(
    lake: str,
    key: PartitionKey,
    staged: Iterable[StagedFile],
    run_id: str,
    compression: str = fs.PARQUET_COMPRESSION,
) -> PartitionCommit:
    """Move a partition's staged files into the lake, skipping uuids already there.

    Safe to run again after a crash or a retried bundle: a staged file that is
    already committed (its final file exists, the staged one is gone) is
    counted as committed, not written twice.
    """
    directory = fs.join(lake, key.path())
    staged = sorted(staged, key=lambda s: s.path)
    ours = {final_name(run_id, s.path): s for s in staged}
    in_lake: set[str] = set()
    for path in fs.list_files(fs.join(directory, "*.parquet")):
        if os.path.basename(path) not in ours:
            in_lake |= _uuid_set(path)
    in_run: set[str] = set()
    files, rows, events, dup_run, dup_lake = [], 0, 0, 0, 0
    for item in staged:
        name = final_name(run_id, item.path)
        final = fs.join(directory, name)
        if not fs.exists(item.path):
            if not fs.exists(final):
                raise OSError(f"staged file {item.path} is missing and was never committed")
            table = fs.read_parquet(final, columns=["uuid"])
            uuids = set(table.column("uuid").to_pylist())
            in_run |= uuids
            files.append(name)
            rows += table.num_rows
            events += len(uuids)
            continue
        table = fs.read_parquet(item.path, columns=["uuid"])
        uuids = set(table.column("uuid").to_pylist())
        lake_dups = uuids & in_lake
        run_dups = (uuids - in_lake) & in_run
        dup_lake += len(lake_dups)
        dup_run += len(run_dups)
        fresh = uuids - lake_dups - run_dups
        if not fresh:
            fs.delete([item.path])
            continue
        if lake_dups or run_dups:
            full = fs.read_parquet(item.path)
            keep = full.filter(pc.is_in(full.column("uuid"), pa.array(list(fresh), pa.string())))
            fs.write_parquet(final, keep, compression)
            fs.delete([item.path])
            rows += keep.num_rows
        else:
            fs.rename(item.path, final)
            rows += table.num_rows
        in_run |= fresh
        events += len(fresh)
        files.append(name)
    return PartitionCommit(key.path(), files, rows, events, dup_run, dup_lake)


def commit_dead_letters(dead_letter_uri: str, staged: StagedFile, run_id: str) -> str:
    """Move one staged dead-letter file to ``DEAD_LETTER/<run_id>/``; idempotent."""
    name = f"dead-letters-{os.path.basename(staged.path)}"
    final = fs.join(dead_letter_uri, run_id, name)
    if fs.exists(staged.path):
        fs.rename(staged.path, final)
    elif not fs.exists(final):
        raise OSError(f"staged dead-letter file {staged.path} is missing and was never committed")
    return final
