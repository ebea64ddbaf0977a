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
import queue
import threading
import uuid as _uuid
from typing import NamedTuple
from collections.abc import Iterable

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


class _Writer:
    """One thread that encodes and writes Parquet while the caller decodes the next batches.

    pyarrow releases the GIL while it encodes and compresses, so on two cores
    the writing overlaps the (GIL-bound) decoding. Jobs run in order; at most
    ``depth`` wait, so memory stays bounded. An error is raised to the caller
    at its next call.
    """

    def __init__(self, depth: int = 2):
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def submit(self, job) -> None:
        self._raise()
        self._jobs.put(job)

    def join(self) -> None:
        """Wait for every job, stop the thread, raise what failed."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class PartitionStager:
    """Appends row batches to one staging Parquet file per partition, memory bounded.

    ``add`` only files a partition's table away (usually a zero-copy slice of
    the flattener's one table per batch), so its cost does not grow with the
    number of partitions a batch touches. What the buffered slices pin (their
    whole parent tables) is counted; when it passes ``max_buffer_bytes`` every
    buffered partition becomes a row group of its file, in one job on the
    writer thread (a slice frees its parent only when every slice of it is
    gone, so writing some partitions would free nothing; copying slices into
    compact tables instead cost 10% of the run, measured). With input sorted
    by ``published`` that is a few large row groups; with random order, one
    per partition touched, as DuckDB writes too. A file is closed after
    ``max_file_rows`` rows or when more than ``max_open_files`` are open.
    """

    def __init__(
        self,
        staging: str,
        schema: pa.Schema,
        *,
        compression: str = fs.PARQUET_COMPRESSION,
        max_buffer_bytes: int = 128 * 1024 * 1024,
        max_file_rows: int = 5_000_000,
        max_open_files: int | None = None,
        writer_thread: bool = True,
    ):
        self.staging = staging
        self.schema = schema
        self.compression = compression
        self.max_buffer_bytes = max_buffer_bytes
        self.max_file_rows = max_file_rows
        self.max_open_files = max_open_files or _open_files_allowed()
        self._buffers: dict[PartitionKey, list[pa.Table]] = {}
        self._buffer_events: dict[PartitionKey, int] = {}
        self._parents: set[int] = set()  # tables the buffers are slices of
        self._pinned = 0  # their bytes
        self._writers: dict[PartitionKey, _LazyWriter] = {}
        self._writer_rows: dict[PartitionKey, int] = {}
        self._writer_events: dict[PartitionKey, int] = {}
        self._seen: dict[PartitionKey, set[str]] = {}
        self._thread = _Writer() if writer_thread else None
        self._lock = threading.Lock()
        self.finished: list[StagedFile] = []

    def add(self, key: PartitionKey, table: pa.Table) -> int:
        """Stage one partition's rows; return how many events were duplicates of staged ones.

        The rows of one event share its uuid; the table holds each uuid once
        (the flattener drops in-batch duplicates).
        """
        if not table.num_rows:
            return 0
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = set()
        column = table.column("uuid")
        fresh = set(column.to_pylist())
        repeated = fresh & seen
        if repeated:
            table = table.filter(pc.invert(pc.is_in(column, pa.array(list(repeated), pa.string()))))
            fresh -= repeated
            if not table.num_rows:
                return len(repeated)
        seen |= fresh
        parent = _parent_id(table)
        if parent not in self._parents:
            self._parents.add(parent)
            self._pinned += table.get_total_buffer_size()
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = []
        buffer.append(table)
        self._buffer_events[key] = self._buffer_events.get(key, 0) + len(fresh)
        if self._pinned > self.max_buffer_bytes:
            self._flush_all()
        return len(repeated)

    def _flush_all(self) -> None:
        """Every buffered partition -> one row group each, written in one job on the writer thread."""
        writes = []
        for key in sorted(self._buffers):
            tables = self._buffers[key]
            writer = self._writers.get(key)
            if writer is None:
                if len(self._writers) >= self.max_open_files:
                    self._close(next(iter(self._writers)), writes)
                path = fs.join(self.staging, f"{_uuid.uuid4().hex}.parquet")
                writer = self._writers[key] = _LazyWriter(path, self.schema, self.compression)
                self._writer_rows[key] = 0
                self._writer_events[key] = 0
            writes.append((writer.write, tables))
            self._writer_rows[key] += sum(t.num_rows for t in tables)
            self._writer_events[key] += self._buffer_events[key]
            if self._writer_rows[key] >= self.max_file_rows:
                self._close(key, writes)
        self._buffers = {}
        self._buffer_events = {}
        self._parents = set()
        self._pinned = 0
        if writes:
            self._run(lambda: _write_all(writes))

    def _close(self, key: PartitionKey, writes: list) -> None:
        """Queue the file's closing after the writes already in ``writes``."""
        writer = self._writers.pop(key)
        staged = StagedFile(key, writer.uri, self._writer_rows.pop(key), self._writer_events.pop(key))

        def close(_tables):
            writer.close()
            with self._lock:
                self.finished.append(staged)

        writes.append((close, None))

    def _run(self, job) -> None:
        if self._thread is None:
            job()
        else:
            self._thread.submit(job)

    def take_finished(self) -> list[StagedFile]:
        """The files closed so far (each returned once)."""
        with self._lock:
            finished, self.finished = self.finished, []
        return finished

    def close(self) -> list[StagedFile]:
        """Write everything buffered, close every file, return all staged files."""
        self._flush_all()
        closes: list = []
        for key in list(self._writers):
            self._close(key, closes)
        if closes:
            self._run(lambda: _write_all(closes))
        if self._thread is not None:
            self._thread.join()
        return self.take_finished()

    def abort(self) -> None:
        if self._thread is not None:
            try:
                self._thread.join()
            except Exception:  # noqa: BLE001 - aborting after a failure anyway
                pass
        for writer in self._writers.values():
            writer.abort()
        self._writers.clear()
        self._buffers.clear()


class _LazyWriter:
    """A :class:`fs.ParquetFileWriter` opened by its first write (on the writer thread)."""

    def __init__(self, uri: str, schema: pa.Schema, compression: str):
        self.uri, self._schema, self._compression = uri, schema, compression
        self._writer: fs.ParquetFileWriter | None = None

    def write(self, tables: list[pa.Table]) -> None:
        if self._writer is None:
            self._writer = fs.ParquetFileWriter(self.uri, self._schema, self._compression)
        # One contiguous table: writing 250 slices as they are cost 2.5x (per-chunk work, measured).
        self._writer.write(tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks())

    def close(self, _tables=None) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def _open_files_allowed() -> int:
    """Half the process's file limit, at most 4096: a file per partition stays open (an export
    of 60 types over 4 weeks touches 1,680 partitions; closing and reopening makes many small files)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 128
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft // 2))


def _write_all(writes: list) -> None:
    for write, tables in writes:
        write(tables)


def _parent_id(table: pa.Table) -> int:
    """Which table this one is a slice of: the address of its first column's first data buffer."""
    chunks = table.column(0).chunks
    if len(chunks) != 1:
        return id(table)
    buffers = chunks[0].buffers()
    return buffers[-1].address if buffers and buffers[-1] is not None else id(table)


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
