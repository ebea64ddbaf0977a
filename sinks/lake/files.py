"""The lake's file protocol: stage, then commit each partition (no Beam here).

How a batch run writes the lake, and why:

1. **Stage.** Workers append flattened rows to Parquet files
   ``LAKE/_staging/<run_id>/<id>.parquet.staged`` (a name no reader's glob
   matches, in a folder every reader skips; see :mod:`sinks.lake.staging` for
   the lease that keeps a live run's folder from being removed) as they go, one open file per partition, with
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
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from sinks.lake.staging import STAGING_DIR, file_id, staged_file, staging_dir  # noqa: F401 - re-exported
from storage import fs
from transforms import jsonio
from transforms.records import PartitionKey

RUNS_DIR = "_runs"
DEFAULT_DEAD_LETTER_DIR = "_dead_letter"


class StagedFile(NamedTuple):
    partition: PartitionKey | None  # None for a dead-letter file
    path: str
    rows: int
    events: int
    org: str | None = None  # a dead-letter file's okta_org (they are staged per org), else None


def final_name(run_id: str, staged_path: str, prefix: str = "part") -> str:
    return f"{prefix}-{run_id}-{file_id(staged_path)}.parquet"


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


class DeadLetterStager:
    """Appends dead-letter records as JSON Lines to staging files (of one org, when ``org`` is given)."""

    def __init__(self, staging: str, max_file_bytes: int = 64 * 1024 * 1024, org: str | None = None):
        self.staging = staging
        self.org = org
        self.max_file_bytes = max_file_bytes
        self._handle = None
        self._path = None
        self._bytes = 0
        self._records = 0
        self.finished: list[StagedFile] = []

    def add(self, record: dict) -> None:
        line = jsonio.dumps(record) + b"\n"
        if self._handle is None:
            self._path = staged_file(self.staging, "jsonl")
            fs.ensure_dir(self.staging)
            self._handle = fs.create(self._path, mime_type="application/x-ndjson")
        self._handle.write(line)
        self._bytes += len(line)
        self._records += 1
        if self._bytes >= self.max_file_bytes:
            self._close()

    def _close(self) -> None:
        self._handle.close()
        self.finished.append(StagedFile(None, self._path, self._records, self._records, self.org))
        self._handle, self._path, self._bytes, self._records = None, None, 0, 0

    def close(self) -> list[StagedFile]:
        if self._handle is not None:
            self._close()
        finished, self.finished = self.finished, []
        return finished


def newest_published(directory: str, names: Iterable[str]) -> float | None:
    """The newest ``published`` (epoch seconds) in committed files of one partition, None when empty."""
    newest = None
    for name in names:
        value = pc.max(fs.read_parquet(fs.join(directory, name), columns=["published"]).column("published")).value
        if value is not None:
            seconds = value.timestamp() if hasattr(value, "timestamp") else value / 1e6
            newest = seconds if newest is None else max(newest, seconds)
    return newest


class PartitionCommit(NamedTuple):
    """What committing one partition did."""

    partition: str  # event_date=.../event_type=...
    files: list  # file names written
    rows: int
    events: int
    duplicates_in_run: int  # events already committed by an earlier staged file of this run
    duplicates_in_lake: int  # events whose uuid was already in the lake before this run
    #: The same counts per okta_org (``{org: {"rows", "events", "duplicates_in_run", "duplicates_in_lake",
    #: "withheld"}}``), for the orgs that have one; empty when no row names its org.
    by_org: dict = {}
    withheld: int = 0  # events of ``withheld_orgs`` (orgs whose source failed), left uncommitted


def _tally() -> dict:
    return {"rows": 0, "events": 0, "duplicates_in_run": 0, "duplicates_in_lake": 0, "withheld": 0}


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
    withheld_orgs: frozenset = frozenset(),
) -> PartitionCommit:
    """Move a partition's staged files into the lake, skipping uuids already there.

    Safe to run again after a crash or a retried bundle: a staged file that is
    already committed (its final file exists, the staged one is gone) is
    counted as committed, not written twice.

    Rows whose ``okta_org`` is in ``withheld_orgs`` (many-org runs: the orgs whose source failed)
    are never committed: they are counted as ``withheld`` and left out of the file. Filtering here,
    rather than staging each org apart, costs nothing when every org is healthy (the commit reads the
    ``uuid`` and ``okta_org`` columns anyway) and keeps one file per partition and stager, not one per
    org. A staged file that held withheld rows stays in the staging folder (removed with it at the
    end of the run, or as a dead run's), so a retried commit counts them again the same way; a
    staged file is only ever published by its own run's commit, so a failed org's rows never reach
    the lake later either, whatever crashes.
    """
    directory = fs.join(lake, key.path())
    staged = sorted(staged, key=lambda s: s.path)
    ours = {final_name(run_id, s.path): s for s in staged}
    in_lake: set[str] = set()
    for path in fs.list_files(fs.join(directory, "*.parquet")):
        if os.path.basename(path) not in ours:
            in_lake |= _uuid_set(path)
    in_run: set[str] = set()
    files, rows, events, dup_run, dup_lake, withheld = [], 0, 0, 0, 0, 0
    by_org: dict = {}

    def count(orgs, uuids, what: str, row_counts: dict | None = None) -> None:
        if isinstance(orgs, str):  # the whole file is one org's (the usual case): no per-uuid work
            tally = by_org.setdefault(orgs, _tally())
            tally[what] += len(uuids)
            return
        for uuid in uuids:
            org = orgs.get(uuid)
            if org is not None:
                tally = by_org.setdefault(org, _tally())
                tally[what] += 1
                if row_counts is not None:
                    tally["rows"] += row_counts[uuid]

    for item in staged:
        name = final_name(run_id, item.path)
        final = fs.join(directory, name)
        if not fs.exists(item.path):
            if not fs.exists(final):
                raise OSError(f"staged file {item.path} is missing and was never committed")
            table = _keys(final)
            uuids = set(table.column("uuid").to_pylist())
            in_run |= uuids
            files.append(name)
            rows += table.num_rows
            events += len(uuids)
            orgs, row_counts = _orgs_of(table)
            count(orgs, uuids, "events", row_counts)
            _add_rows(by_org, orgs, table.num_rows)
            continue
        table = _keys(item.path)
        uuids = set(table.column("uuid").to_pylist())
        orgs, row_counts = _orgs_of(table)
        held = _withheld(orgs, uuids, withheld_orgs)
        if held:
            withheld += len(held)
            count(orgs, held, "withheld")
            uuids -= held
            if isinstance(orgs, str):
                orgs, row_counts = {}, {}  # nothing of this one-org file is committed
        lake_dups = uuids & in_lake
        run_dups = (uuids - in_lake) & in_run
        dup_lake += len(lake_dups)
        dup_run += len(run_dups)
        count(orgs, lake_dups, "duplicates_in_lake")
        count(orgs, run_dups, "duplicates_in_run")
        fresh = uuids - lake_dups - run_dups
        # A staged file that is not published whole stays in staging (removed with the folder), so a
        # retried commit judges it again the same way: deleting it here would make a retry count a
        # rewritten file's duplicates as nothing, or find an all-duplicates file "missing".
        if not fresh:
            continue
        if lake_dups or run_dups or held:
            full = fs.read_parquet(item.path)
            keep = full.filter(pc.is_in(full.column("uuid"), pa.array(list(fresh), pa.string())))
            fs.write_parquet(final, keep, compression)
            rows += keep.num_rows
            _add_rows(by_org, orgs, keep.num_rows)
        else:
            fs.rename(item.path, final)
            rows += table.num_rows
            _add_rows(by_org, orgs, table.num_rows)
        in_run |= fresh
        events += len(fresh)
        count(orgs, fresh, "events", row_counts)
        files.append(name)
    return PartitionCommit(key.path(), files, rows, events, dup_run, dup_lake, by_org, withheld)


def _withheld(orgs, uuids: set, withheld_orgs: frozenset) -> set:
    """The uuids of a staged file that belong to a withheld org (``orgs`` as :func:`_orgs_of` gives)."""
    if not withheld_orgs or not orgs:
        return set()
    if isinstance(orgs, str):
        return set(uuids) if orgs in withheld_orgs else set()
    return {uuid for uuid in uuids if orgs.get(uuid) in withheld_orgs}


def _keys(path: str) -> pa.Table:
    """uuid (and okta_org, when the file has it) of a staged or committed file."""
    try:
        return fs.read_parquet(path, columns=["uuid", "okta_org"])
    except (KeyError, pa.ArrowInvalid):
        return fs.read_parquet(path, columns=["uuid"])


def _orgs_of(table: pa.Table) -> tuple:
    """``({uuid: org}, {uuid: rows})`` of a file's keys, or ``(org, None)`` when one org wrote it all;
    ``({}, {})`` when no row names its org."""
    if "okta_org" not in table.column_names or table.column("okta_org").null_count == table.num_rows:
        return {}, {}
    column = table.column("okta_org")
    if column.null_count == 0:
        distinct = pc.unique(column)
        if len(distinct) == 1:
            return distinct[0].as_py(), None
    orgs, row_counts = {}, {}
    for uuid, org in zip(table.column("uuid").to_pylist(), table.column("okta_org").to_pylist()):
        orgs[uuid] = org
        row_counts[uuid] = row_counts.get(uuid, 0) + 1
    return orgs, row_counts


def _add_rows(by_org: dict, orgs, rows: int) -> None:
    """Rows committed from a one-org file (a mixed file counts its rows per uuid instead)."""
    if isinstance(orgs, str) and rows:
        by_org.setdefault(orgs, _tally())["rows"] += rows


def commit_dead_letters(dead_letter_uri: str, staged: StagedFile, run_id: str) -> str:
    """Move one staged dead-letter file to ``DEAD_LETTER/<run_id>/``; idempotent."""
    name = f"dead-letters-{file_id(staged.path)}.jsonl"
    final = fs.join(dead_letter_uri, run_id, name)
    if fs.exists(staged.path):
        fs.rename(staged.path, final)
    elif not fs.exists(final):
        raise OSError(f"staged dead-letter file {staged.path} is missing and was never committed")
    return final


def withheld_dead_letters(staged: StagedFile) -> dict[str, int]:
    """A staged dead-letter file of a failed org, left uncommitted: ``{stage: records}``.

    The file stays in the staging folder, which the run removes (or a later run, as a dead run's): it is
    never moved to the dead-letter folder.
    """
    if not fs.exists(staged.path):
        return {"": staged.rows}  # cannot happen within a run (staging is removed last); stages unknown
    stages: dict[str, int] = {}
    for line in fs.read_bytes(staged.path).splitlines():
        if line.strip():
            stage = jsonio.loads(line).get("stage", "")
            stages[stage] = stages.get(stage, 0) + 1
    return stages
