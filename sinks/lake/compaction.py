"""Compacting one Hive lake partition's streaming files, under its commit lease (no Beam here).

The files a stream commits, ``part-w<window>-<job>-<id>.parquet``, are rewritten together as
:mod:`sinks.lake.compaction_plan` decides, into ``part-h20261125T23Z-<rows>r-<id>.parquet`` (an
hour of windows) and ``part-d20261125-<rows>r-<id>.parquet`` (closed days, named after the
newest); batch runs' files are never touched. Each group is rewritten like this, holding the
partition's commit lease (:mod:`sinks.lake.locks`) from before it lists the files to after its
last step, so no commit reads or publishes the partition meanwhile:

1. its rows are written, deduplicated on ``uuid`` and sorted by ``published``, into files staged
   under ``_staging/compact-<id>/`` (a reader never sees them; a killed run's are swept away);
2. a journal ``_compaction/<partition>/<id>.json`` names the group's files and the new ones;
3. the new files are published (each a rename; the lease is checked before each step);
4. the group's files are deleted, then the journal.

Whoever holds the lease next (a compaction of any process) first finishes every journal of the
partition: when all its new files are there it deletes the old ones still there, else it deletes
the new ones that are there (no old one was deleted yet). So after a ``kill -9`` at any point the
partition ends up holding each row exactly once, in the old files or the new ones; in between
(until the next compaction of the partition) it may hold some rows twice. A commit in between
stays right: it reads the partition's uuids as a set.

A reader that lists the partition between steps 3 and 4 sees the group's rows twice; one that listed
the old files before step 4 and opens one after gets a not-found error. No row is ever missing from
a listing: see docs/lake.md (reading while a stream runs) for queries that exclude both.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import time
import uuid as _uuid
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sinks.lake import locks
from sinks.lake.compaction_plan import DAY, HOUR, Group, Piece, Rules, plan, waiting
from sinks.lake.staging import leased, staged_file, staging_dir
from storage import fs

LOG = logging.getLogger(__name__)
JOURNAL_DIR = "_compaction"
TARGET_ROWS = 250_000  # rows per compacted file (one with this many or more is never rewritten again)
ROW_GROUP_ROWS = 50_000
MAX_GROUP_FILES = 400  # the oldest files of a larger group go first; the rest at the next pass
WAIT_FOR_LEASE_SECONDS = 2.0  # a busy partition is left for the next pass
SORT = [("published", "ascending"), ("uuid", "ascending"), ("target_index", "ascending")]


def _epoch(text: str, form: str) -> int:
    return calendar.timegm(time.strptime(text, form))


def piece(name: str, target_rows: int = TARGET_ROWS) -> Piece | None:
    """How the plan sees a file of the partition; None for files no stream made (batch runs')."""
    found = re.fullmatch(r"part-w(\d{8}T\d{6})Z-.+\.parquet", name)
    if found:
        start = _epoch(found[1], "%Y%m%dT%H%M%S")
        return Piece(name, start - start % HOUR, start, small=True, fresh=True)
    found = re.fullmatch(r"part-h(\d{8}T\d{2})Z-(\d+)r-[0-9a-f]{12}\.parquet", name)
    if found:
        hour = _epoch(found[1], "%Y%m%dT%H")
        return Piece(name, hour, hour, small=int(found[2]) < target_rows, fresh=False)
    found = re.fullmatch(r"part-d(\d{8})-(\d+)r-[0-9a-f]{12}\.parquet", name)
    if found:
        day = _epoch(found[1], "%Y%m%d")
        return Piece(name, day, day, small=int(found[2]) < target_rows, fresh=False)
    return None


def output_name(group: Group, rows: int, token: str) -> str:
    if group.level == "day":
        day = time.strftime("%Y%m%d", time.gmtime(group.period - group.period % DAY))
        return f"part-d{day}-{rows}r-{token}.parquet"
    return f"part-h{time.strftime('%Y%m%dT%H', time.gmtime(group.period))}Z-{rows}r-{token}.parquet"


def journal_dir(lake: str, partition: str) -> str:
    return fs.join(lake, JOURNAL_DIR, partition)


@dataclass
class PartitionReport:
    """What one partition's compaction did."""

    partition: str
    groups: int = 0
    files_read: int = 0
    files_written: int = 0
    rows: int = 0
    duplicates: int = 0  # rows dropped as a second copy of a uuid (a crash's leftovers, a foreign writer)
    recovered: int = 0  # journals of interrupted compactions finished
    busy: bool = False  # another commit or compaction held the lease: left for the next pass
    waiting: bool = False  # a later pass may find work here without a new commit


def compact_partition(lake: str, partition: str, now: float, rules: Rules = Rules(), *,
                      target_rows: int = TARGET_ROWS, owner: str = "compaction", max_groups: int = 0,
                      compression: str = fs.PARQUET_COMPRESSION,
                      timing: locks.LeaseTiming | None = None) -> PartitionReport:
    """Finish the partition's interrupted compactions, then rewrite what the plan says is due at ``now``
    (at most ``max_groups`` groups when not 0). A partition whose lease stays taken for
    :data:`WAIT_FOR_LEASE_SECONDS` is reported ``busy`` and left alone."""
    report = PartitionReport(partition)
    timing = timing or replace(locks.default_timing(), wait_at_most=WAIT_FOR_LEASE_SECONDS)
    try:
        with locks.PartitionLease(lake, partition, f"compaction-{owner}", timing) as lease:
            report.recovered = finish_journals(lake, partition, lease)
            names = [os.path.basename(p) for p in fs.list_files(fs.join(lake, partition, "*.parquet"))]
            pieces = [p for p in (piece(n, target_rows) for n in names) if p is not None]
            groups = plan(pieces, now, rules, MAX_GROUP_FILES)
            chosen = groups[:max_groups] if max_groups else groups
            for group in chosen:
                done = rewrite(lake, partition, group, lease, target_rows, compression, owner)
                report.groups += 1
                report.files_read += len(group.members)
                report.files_written += done[0]
                report.rows += done[1]
                report.duplicates += done[2]
            report.waiting = (waiting(pieces, now, rules) or len(chosen) < len(groups)
                              or any(len(g.members) >= MAX_GROUP_FILES for g in chosen))
    except locks.LeaseWaitTimeout:
        report.busy = report.waiting = True
    return report


# --- one group: staged, journalled, published, the old files deleted -------------------------------------

def rewrite(lake: str, partition: str, group: Group, lease, target_rows: int, compression: str,
            owner: str) -> tuple[int, int, int]:
    """Rewrite one group as new files (see the module doc); returns (files written, rows, duplicate rows)."""
    directory = fs.join(lake, partition)
    token = _uuid.uuid4().hex[:12]
    with leased(staging_dir(lake, f"compact-{token}")) as staging:
        sources = {name: _source(fs.join(directory, name)) for name in group.members}
        schema = pa.unify_schemas([_schema(source) for source in sources.values()], promote_options="permissive")
        outputs = _Outputs(staging, schema, target_rows, compression)
        seen: set = set()
        duplicates = 0
        for name in group.members:
            table = _read(sources.pop(name))
            uuids = set(table.column("uuid").to_pylist())
            repeated = uuids & seen
            if repeated:  # a second copy of an event: the rows of its first file are kept
                keep = pc.invert(pc.is_in(table.column("uuid"), value_set=pa.array(list(repeated), pa.string())))
                duplicates += table.num_rows
                table = table.filter(keep)
                duplicates -= table.num_rows
            seen |= uuids
            outputs.add(_conform(table, schema))
        staged = outputs.close()
        finals = [(path, output_name(group, rows, _uuid.uuid4().hex[:12])) for path, rows in staged]
        journal = write_journal(lake, partition, token, owner, list(group.members), [name for _, name in finals],
                                lease)
        for path, name in finals:
            publish(path, fs.join(directory, name), lease)
        remove_inputs(directory, list(group.members), lease)
        close_journal(journal)
    return len(finals), sum(rows for _, rows in staged), duplicates


def write_journal(lake: str, partition: str, token: str, owner: str, inputs: list, outputs: list, lease) -> str:
    path = fs.join(journal_dir(lake, partition), f"{token}.json")
    lease.check()
    fs.write_bytes(path, json.dumps({"partition": partition, "owner": owner, "inputs": inputs, "outputs": outputs,
                                     "written_at": time.time()}).encode())
    return path


def publish(staged: str, final: str, lease) -> None:
    lease.check()
    fs.rename(staged, final)


def remove_inputs(directory: str, names: list, lease) -> None:
    lease.check()
    fs.delete([fs.join(directory, name) for name in names])


def close_journal(path: str) -> None:
    fs.delete([path])


def finish_journals(lake: str, partition: str, lease) -> int:
    """Finish (or undo) every compaction of the partition a crash interrupted; returns how many there were."""
    directory, done = fs.join(lake, partition), 0
    for path in fs.list_files(fs.join(journal_dir(lake, partition), "*.json")):
        try:
            record = json.loads(fs.read_bytes(path))
            inputs, outputs = list(record["inputs"]), list(record["outputs"])
        except Exception as exc:  # noqa: BLE001 - a journal is written whole: this one is not ours
            LOG.warning("left alone: %s is not a compaction journal (%s)", path, exc.__class__.__name__)
            continue
        if all(fs.exists(fs.join(directory, name)) for name in outputs):
            remove_inputs(directory, inputs, lease)  # it was published: its old files go
        else:
            lease.check()  # not all published, so no old file was deleted yet: the new ones go
            fs.delete([fs.join(directory, name) for name in outputs])
        close_journal(path)
        done += 1
    return done


# --- reading and writing the rows ----------------------------------------------------------------------

def _source(uri: str):
    """A local path, or an object store file read once (its schema, then its rows)."""
    return uri if fs.is_local(uri) else fs.parquet_file(uri)


def _schema(source) -> pa.Schema:
    return pq.read_schema(fs.local_path(source)) if isinstance(source, str) else source.schema_arrow


def _read(source) -> pa.Table:
    return fs.read_parquet(source) if isinstance(source, str) else source.read()


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order (a column a file lacks is null)."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


class _Outputs:
    """A group's rows as staged files of at most about ``target_rows`` rows, written a row group at a time."""

    def __init__(self, staging: str, schema: pa.Schema, target_rows: int, compression: str):
        self.staging, self.schema, self.target_rows, self.compression = staging, schema, target_rows, compression
        self._pending: list = []
        self._buffered = 0
        self._writer: fs.ParquetFileWriter | None = None
        self.done: list[tuple[str, int]] = []

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._pending.append(table)
            self._buffered += table.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        rows = pa.concat_tables(self._pending).sort_by([key for key in SORT if key[0] in self.schema.names])
        self._pending, self._buffered = [], 0
        if self._writer is None:
            self._writer = fs.ParquetFileWriter(staged_file(self.staging, "parquet"), self.schema, self.compression)
        self._writer.write(rows)
        if self._writer.rows >= self.target_rows:
            self._close_file()

    def _close_file(self) -> None:
        self._writer.close()
        self.done.append((self._writer.uri, self._writer.rows))
        self._writer = None

    def close(self) -> list[tuple[str, int]]:
        self._flush()
        if self._writer is not None:
            self._close_file()
        return self.done
