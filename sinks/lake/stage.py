"""Stage a run's rows and dead letters: the first half of the lake's file protocol (no Beam here).

Workers append flattened rows to ``LAKE/_staging/<run_id>/<id>.parquet.staged`` (a name no reader's
glob matches, in a folder every reader skips; :mod:`sinks.lake.staging` keeps a live run's folder
from being removed) as they go, one open file per partition, with bounded buffers. Rows never pass
through a shuffle, so memory stays flat however large the input (the local runner holds every
shuffled element in memory). A stager drops a uuid it has already staged for that partition. The
second half, into the lake, is :mod:`sinks.lake.commit`; dead letters are :mod:`sinks.lake.dead_letters`.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from sinks.lake.staging import staged_file
from storage import fs
from transforms.records import PartitionKey


class StagedFile(NamedTuple):
    partition: PartitionKey | None  # None for a dead-letter file
    path: str
    rows: int
    events: int
    org: str | None = None  # a dead-letter file's okta_org (they are staged per org), else None


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
        row_group_bytes: int = 2 * 1024 * 1024,
        max_file_rows: int = 5_000_000,
        max_open_files: int = 128,
        writer_thread: bool = True,
    ):
        self.staging = staging
        self.schema = schema
        self.compression = compression
        self.max_buffer_bytes = max_buffer_bytes
        self.row_group_bytes = row_group_bytes
        self.max_file_rows = max_file_rows
        self.max_open_files = max_open_files
        self._buffers: dict[PartitionKey, list[pa.Table]] = {}
        self._buffer_events: dict[PartitionKey, int] = {}
        self._buffered_rows = 0
        self._parents: set[int] = set()  # tables the buffers are slices of
        self._pinned = 0  # their bytes
        # Small pieces spilled to local Arrow IPC files: key -> [(spill file number, batch index)].
        self._spilled: dict[PartitionKey, list[tuple[int, int]]] = {}
        self._spilled_rows: dict[PartitionKey, int] = {}
        self._spilled_events: dict[PartitionKey, int] = {}
        self._spilled_bytes: dict[PartitionKey, float] = {}
        self._pending_rows: dict[PartitionKey, int] = {}
        self._pending_events: dict[PartitionKey, int] = {}
        self._spill_root: str | None = None
        self._spill_paths: list[str] = []
        self._spill_files = 0
        self._spill_readers: dict = {}  # used on the writer thread only
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
        self._buffered_rows += table.num_rows
        self._buffer_events[key] = self._buffer_events.get(key, 0) + len(fresh)
        if self._pinned > self.max_buffer_bytes:
            self._flush_all()
        return len(repeated)

    def _flush_all(self, final: bool = False) -> dict | None:
        """Empty every buffer in one writer-thread job: a partition with ``row_group_bytes`` or more
        becomes a row group of its file; a smaller one is spilled (Arrow IPC, local disk) until its
        pieces add up to a row group (or the end), so many partitions never make tiny row groups."""
        jobs: dict = {None: []}  # partition -> its jobs, in order; None: the spill file, written first
        spill: list = []
        per_row = self._pinned / self._buffered_rows if self._buffered_rows else 0.0
        for key in sorted(self._buffers):
            tables = self._buffers[key]
            rows = sum(t.num_rows for t in tables)
            events = self._buffer_events[key]
            if final or rows * per_row >= self.row_group_bytes:
                self._write(key, self._take_spilled(key) + [_memory(tables)], rows, events, jobs)
            else:
                spill.append((key, tables))
                self._spilled.setdefault(key, []).append((self._spill_files, len(spill) - 1))
                self._spilled_rows[key] = self._spilled_rows.get(key, 0) + rows
                self._spilled_events[key] = self._spilled_events.get(key, 0) + events
                self._spilled_bytes[key] = self._spilled_bytes.get(key, 0) + rows * per_row
        if spill:
            path = os.path.join(self._spill_dir(), f"{self._spill_files}.arrow")
            self._spill_paths.append(path)
            self._spill_files += 1
            jobs[None].append(lambda: _spill(path, self.schema, [tables for _, tables in spill]))
        for key in [k for k, size in self._spilled_bytes.items() if final or size >= self.row_group_bytes]:
            self._write(key, self._take_spilled(key), 0, 0, jobs)
        self._buffers = {}
        self._buffer_events = {}
        self._buffered_rows = 0
        self._parents = set()
        self._pinned = 0
        if final:
            return jobs
        ordered = [job for key_jobs in jobs.values() for job in key_jobs]
        if ordered:
            self._run(lambda: [job() for job in ordered])
        return None

    def _take_spilled(self, key: PartitionKey) -> list:
        """The partition's spilled pieces, as sources for a write; its counts move to its file."""
        refs = self._spilled.pop(key, [])
        if not refs:
            return []
        self._spilled_bytes.pop(key)
        self._pending_rows[key] = self._pending_rows.get(key, 0) + self._spilled_rows.pop(key)
        self._pending_events[key] = self._pending_events.get(key, 0) + self._spilled_events.pop(key)
        paths = self._spill_paths
        return [_spilled_piece(self._spill_readers, paths[number], index) for number, index in refs]

    def _write(self, key: PartitionKey, sources: list, rows: int, events: int, jobs: dict) -> None:
        """Queue one row group of ``key`` made of ``sources`` (callables giving tables)."""
        if not sources:
            return
        writer = self._writers.get(key)
        if writer is None:
            if len(self._writers) >= self.max_open_files:
                self._close(next(iter(self._writers)), jobs)
            path = staged_file(self.staging, "parquet")
            writer = self._writers[key] = _LazyWriter(path, self.schema, self.compression)
            self._writer_rows[key] = 0
            self._writer_events[key] = 0
        jobs.setdefault(key, []).append(lambda: writer.write([source() for source in sources]))
        self._writer_rows[key] += rows + self._pending_rows.pop(key, 0)
        self._writer_events[key] += events + self._pending_events.pop(key, 0)
        if self._writer_rows[key] >= self.max_file_rows:
            self._close(key, jobs)

    def _spill_dir(self) -> str:
        if self._spill_root is None:
            self._spill_root = tempfile.mkdtemp(prefix="okta-lake-spill-")
        return self._spill_root

    def _close(self, key: PartitionKey, jobs: dict) -> None:
        """Queue the file's closing after the writes already in ``writes``."""
        writer = self._writers.pop(key)
        staged = StagedFile(key, writer.uri, self._writer_rows.pop(key), self._writer_events.pop(key))

        def close():
            writer.close()
            with self._lock:
                self.finished.append(staged)

        jobs.setdefault(key, []).append(close)

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
        if self._thread is not None:
            self._thread.join()  # what was queued, spill files included
        jobs = self._flush_all(final=True)
        for key in list(self._writers):
            self._close(key, jobs)
        # The last writes: the caller has nothing left to decode, so use both cores.
        _run_parallel([key_jobs for key_jobs in jobs.values() if key_jobs], 2 if self._thread else 1)
        self._remove_spill()
        return self.take_finished()

    def _remove_spill(self) -> None:
        self._spill_readers.clear()
        if self._spill_root is not None:
            shutil.rmtree(self._spill_root, ignore_errors=True)
            self._spill_root = None

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
        self._remove_spill()


class _LazyWriter:
    """A :class:`fs.ParquetFileWriter` opened by its first write (on the writer thread)."""

    def __init__(self, uri: str, schema: pa.Schema, compression: str):
        self.uri, self._schema, self._compression = uri, schema, compression
        self._writer: fs.ParquetFileWriter | None = None

    def write(self, tables: list[pa.Table]) -> None:
        if self._writer is None:
            self._writer = fs.ParquetFileWriter(self.uri, self._schema, self._compression)
        # One contiguous table: writing 250 slices as they are cost 2.5x (per-chunk work, measured).
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        self._writer.write(table.combine_chunks() if table.column(0).num_chunks > 1 else table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def _run_parallel(lists: list[list], threads: int) -> None:
    """Run each list of jobs in order, the lists on ``threads`` threads (pyarrow releases the GIL)."""
    if threads <= 1:
        for jobs in lists:
            for job in jobs:
                job()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(lambda jobs=jobs: [job() for job in jobs]) for jobs in lists]:
            future.result()


def _memory(tables: list[pa.Table]):
    return lambda: tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _spill(path: str, schema: pa.Schema, pieces: list[list[pa.Table]]) -> None:
    """Write each piece as one record batch of an Arrow IPC file (uncompressed: cheap to write)."""
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for tables in pieces:
            table = pa.concat_tables(tables).combine_chunks()
            writer.write_batch(table.to_batches()[0])


def _spilled_piece(readers: dict, path: str, index: int):
    def read() -> pa.Table:
        where = (threading.get_ident(), path)  # a reader per thread
        reader = readers.get(where)
        if reader is None:
            reader = readers[where] = pa.ipc.open_file(pa.OSFile(path, "rb"))
        return pa.Table.from_batches([reader.get_batch(index)])

    return read


def _parent_id(table: pa.Table) -> int:
    """Which table this one is a slice of: the address of its first column's first data buffer."""
    chunks = table.column(0).chunks
    if len(chunks) != 1:
        return id(table)
    buffers = chunks[0].buffers()
    return buffers[-1].address if buffers and buffers[-1] is not None else id(table)
