"""The insert-if-absent commit of rows to the lake's Iceberg table (:mod:`sinks.iceberg.table`; no Beam here).

:func:`commit_rows` makes one snapshot of everything it is given (one batch
run, or one streaming window), inserting only the rows whose ``(uuid, target_index)`` the
table does not hold yet, and it stays right with concurrent writers:

1. load the table; remember its current snapshot S;
2. read, *at S*, the keys of the touched partitions in the time range of the new rows
   (files are sorted by ``published``, so older files are skipped by their statistics; the
   files are picked from cached manifest entries, :mod:`sinks.iceberg.keys`, so this does not
   grow with the number of files in the partition);
3. write data files of the absent rows only, and commit them as one append whose parent
   must be S.

If another writer committed after S, the catalog refuses the commit. pyiceberg 0.12 would
then retry *by itself*, rebasing the append on the new snapshot **without looking at the
data again** (its fast append skips validation), which would let two writers insert the
same event. So our append (:class:`_CheckedAppend`) validates on that retry: if the
concurrent snapshots added data files in our partitions and time range, it refuses, and
:func:`commit_rows` starts again from step 1 with the new snapshot. Concurrent commits
elsewhere in the table are rebased as pyiceberg does (they cannot hold our keys).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from common.errors import LakeError
from schemas.fields import Column
from sinks.iceberg import keys as iceberg_keys
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import SUMMARY_PREFIX, open_table, to_table_rows
from storage import fs

LOG = logging.getLogger(__name__)
KEY = ("uuid", "target_index")
MAX_ATTEMPTS = 50


class IcebergCommitError(LakeError, RuntimeError):
    """The commit could not be made (nothing of it is in the table); one line, no secret.

    Retryable: it is raised when other writers won every attempt; a later run commits."""

    retryable = True


def touched_filter(rows: pa.Table):
    """A row filter covering the rows' partitions (event_type and days) and their published range."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual, Or

    parts = []
    for event_type in sorted(set(rows.column("event_type").to_pylist())):
        mask = pc.equal(rows.column("event_type"), event_type)
        published = rows.column("published").filter(mask)
        low, high = pc.min(published).as_py(), pc.max(published).as_py()
        parts.append(And(EqualTo("event_type", event_type),
                         And(GreaterThanOrEqual("published", low.isoformat()),
                             LessThanOrEqual("published", high.isoformat()))))
    expression = parts[0]
    for part in parts[1:]:
        expression = Or(expression, part)
    return expression


def key_strings(table: pa.Table) -> pa.Array:
    index = pc.fill_null(pc.cast(table.column("target_index"), pa.string()), "")
    return pc.binary_join_element_wise(pc.cast(table.column("uuid"), pa.string()), index, ":")


def absent_rows(table, rows: pa.Table, snapshot_id: int | None) -> tuple[pa.Table, int]:
    """The rows whose key the table (at ``snapshot_id``) does not hold, and how many were present."""
    if snapshot_id is None or rows.num_rows == 0:
        return rows, 0
    row_filter, fields = touched_filter(rows), KEY + ("published", "event_type")
    # Planned from cached manifest entries (sinks.iceberg.keys), so the check does not grow with the file count.
    files = iceberg_keys.candidate_files(table, table.snapshot_by_id(snapshot_id), iceberg_keys.key_ranges(rows))
    if files is None:
        existing = table.scan(row_filter=row_filter, selected_fields=fields, snapshot_id=snapshot_id).to_arrow()
    elif not files:
        return rows, 0
    else:
        existing = iceberg_keys.read_keys(table, files, row_filter, fields)
    if existing.num_rows == 0:
        return rows, 0
    present = pc.is_in(key_strings(rows), value_set=key_strings(existing))
    kept = rows.filter(pc.invert(present))
    return kept, rows.num_rows - kept.num_rows


def checked_append_class():
    from pyiceberg.exceptions import ValidationException
    from pyiceberg.table.update.snapshot import _MergeAppendFiles
    from pyiceberg.table.update.validate import _added_data_files

    class _CheckedAppend(_MergeAppendFiles):
        """An append that, on pyiceberg's retry, refuses when new data landed where it checked keys.

        (A merge append: with ``commit.manifest-merge.enabled`` the table keeps a few manifests
        instead of one per commit, so a commit's planning does not grow with the commit count.)
        """

        conflict_filter = None

        def _validate_concurrency(self) -> None:
            window = self._commit_window
            if window is None or window.is_empty() or window.head is None:
                return
            table = self._transaction._table
            for _ in _added_data_files(table, window.head, self.conflict_filter, None, window.base):
                raise ValidationException("data files were added to the checked partitions concurrently")

    return _CheckedAppend


@dataclass
class CommitResult:
    snapshot_id: int | None
    rows_offered: int
    rows_added: int
    events_added: int
    rows_present: int
    attempts: int
    data_files: int
    # The table as of this commit, for a caller that keeps it between commits (not part of the result's data).
    table: object = dataclasses.field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "table"}


def commit_rows(catalog, target: IcebergTarget, rows, summary: dict | None = None,
                columns: tuple[Column, ...] | None = None, max_attempts: int = MAX_ATTEMPTS,
                table=None) -> CommitResult:
    """Insert-if-absent rows on (uuid, target_index) as one snapshot; safe with concurrent writers.

    ``rows`` is a ``pyarrow.Table`` with the lake's columns plus ``event_type``, or, to keep
    memory to one piece at a time, a function returning an iterable of such tables, called
    again on each attempt, whose pieces never share a partition. ``summary`` goes into the
    snapshot summary under ``okta-lake.`` (run id, source, cursor, ...), with the counts
    added. Nothing is committed when no row is new.

    ``table``: the table as loaded (or returned in ``CommitResult.table``) before, to skip
    loading it again; if another writer committed since, the first attempt loses and the next
    one reloads (the keys are always checked at the snapshot the commit's parent is).
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from pyiceberg.expressions import Or
    from pyiceberg.io.pyarrow import _dataframe_to_data_files
    from pyiceberg.table.refs import MAIN_BRANCH
    from pyiceberg.table.snapshots import Operation

    pieces = (lambda: [rows]) if isinstance(rows, pa.Table) else rows
    checked_append = checked_append_class()
    table = table if table is not None else open_table(catalog, target, columns)
    for attempt in range(1, max_attempts + 1):
        if attempt > 1:
            table = catalog.load_table(target.table)
        base = table.current_snapshot()
        transaction = table.transaction()
        append = checked_append(operation=Operation.APPEND, transaction=transaction, io=table.io,
                                branch=MAIN_BRANCH)
        result = CommitResult(None, 0, 0, 0, 0, attempt, 0)
        files, conflict_filter = [], None
        try:
            for piece in pieces():
                piece = dedupe(piece)
                if piece.num_rows == 0:
                    continue
                ready = to_table_rows(piece, table)
                fresh, present = absent_rows(table, ready, base.snapshot_id if base else None)
                result.rows_offered += piece.num_rows
                result.rows_present += present
                if fresh.num_rows == 0:
                    continue
                result.rows_added += fresh.num_rows
                result.events_added += len(set(fresh.column("uuid").to_pylist()))
                touched = touched_filter(ready)
                conflict_filter = touched if conflict_filter is None else Or(conflict_filter, touched)
                # table.metadata, not transaction.table_metadata: the latter deep-copies the whole metadata.
                for data_file in _dataframe_to_data_files(table_metadata=table.metadata,
                                                          write_uuid=append.commit_uuid, df=fresh, io=table.io):
                    files.append(data_file)
                    append.append_data_file(data_file)
        except BaseException:
            delete_quietly(table.io, [f.file_path for f in files])
            raise
        if not files:
            result.snapshot_id = base.snapshot_id if base else None
            result.table = table
            return result
        append.conflict_filter = conflict_filter
        append.snapshot_properties = {f"{SUMMARY_PREFIX}{k}": v if isinstance(v, str) else json.dumps(v)
                                      for k, v in (summary or {}).items()}
        append.snapshot_properties.update({f"{SUMMARY_PREFIX}rows-offered": str(result.rows_offered),
                                           f"{SUMMARY_PREFIX}rows-added": str(result.rows_added),
                                           f"{SUMMARY_PREFIX}events-added": str(result.events_added),
                                           f"{SUMMARY_PREFIX}rows-already-present": str(result.rows_present)})
        try:
            append.commit()
            transaction.commit_transaction()
        except (CommitFailedException, ValidationException) as exc:
            delete_quietly(table.io, [f.file_path for f in files])
            LOG.info("Iceberg commit attempt %s of %s lost to a concurrent writer (%s); re-checking",
                     attempt, target.table, exc)
            time.sleep(min(0.05 * attempt, 1.0))
            continue
        result.snapshot_id = append.snapshot_id
        result.data_files = len(files)
        result.table = table  # pyiceberg updated its metadata in place with the commit
        return result
    raise IcebergCommitError(f"could not commit to the Iceberg table {target.table} after {max_attempts} "
                             "attempts: other writers kept committing to the same partitions")


def dedupe(rows: pa.Table) -> pa.Table:
    """One row per (uuid, target_index) within the input itself."""
    if rows.num_rows == 0:
        return rows
    keys = key_strings(rows).to_pylist()
    seen, keep = set(), []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return rows if len(keep) == rows.num_rows else rows.take(keep)


def delete_quietly(io, paths: list[str]) -> None:
    for path in paths:
        try:
            io.delete(path)
        except Exception:  # noqa: BLE001 - a leftover is an orphan file; maintenance removes it
            pass


def read_lake_partition(lake: str, partition: str, names: list[str] | None = None,
                        raw_event: bool = True) -> pa.Table | None:
    """The committed files ``names`` of a lake partition (every file when None) as one table plus
    ``event_type``; None when there is no file."""
    paths = (fs.list_files(fs.join(lake, partition, "*.parquet")) if names is None
             else [fs.join(lake, partition, n) for n in sorted(names)])
    tables = [fs.read_parquet(path) for path in paths]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default")
    if not raw_event and "raw_event" in table.column_names:
        table = table.drop_columns(["raw_event"])
    event_type = dict(part.split("=", 1) for part in partition.split("/"))["event_type"]
    return table.append_column("event_type", pa.array([event_type] * table.num_rows, pa.string()))


def _read_committed(lake: str, partition: str, names: list[str] | None, raw_event: bool,
                    attempts: int = 3) -> pa.Table | None:
    """:func:`read_lake_partition`; a window's files that the stream's compaction folded since (a snapshot step
    that ran late, e.g. a Pub/Sub backlog's) are read as the whole partition instead, whose folded files hold
    their rows (insert-if-absent keeps the table exact), and so is a partition compacted between its listing
    and its reading (read again)."""
    for attempt in range(1, attempts + 1):
        if names is not None and not all(fs.exists(fs.join(lake, partition, name)) for name in names):
            names = None
        try:
            return read_lake_partition(lake, partition, names, raw_event)
        except FileNotFoundError:
            if attempt == attempts:
                raise
            names = None
    return None


def commit_lake_files(catalog, target: IcebergTarget, lake: str, files: list[tuple[str, str | None]],
                      summary: dict | None = None, raw_event: bool = True, table=None) -> CommitResult:
    """Commit committed lake files as one snapshot: ``(partition path, file name)`` pairs, a ``None``
    name meaning every file of that partition (a batch run), a list of names one window's files.

    Read one partition at a time, so memory holds one partition, not the run.
    """
    from collections import defaultdict

    by_partition: dict[str, list] = defaultdict(list)
    for partition, name in files:
        by_partition[partition].append(name)

    def pieces():
        for partition in sorted(by_partition):
            names = by_partition[partition]
            rows = _read_committed(lake, partition, None if None in names else names, raw_event)
            if rows is not None:
                yield rows

    return commit_rows(catalog, target, pieces, summary, table=table)
