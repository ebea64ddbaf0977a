"""A batch run's Iceberg snapshot, written by many workers and committed by one (no Beam here).

:mod:`sinks.iceberg.commit` ``commit_rows`` reads, checks, writes and commits in one call, so on
Dataflow one worker would write every data file of the run. Here the same commit is cut in
three pieces that :mod:`sinks.iceberg.beam` spreads over the job:

1. :func:`base_snapshot` (once): open the table (creating or evolving it) and take its current
   snapshot B; every worker checks keys against B, so they all see the same table.
2. :func:`write_partition` (once per lake partition, on any worker): read the partition's
   lake files, keep the rows whose ``(uuid, target_index)`` the table does not hold *at B*,
   write them as Iceberg data files into the table's location with pyiceberg's own writer
   (sorted, zstd, named with a fresh write id), and return a :class:`PartitionFiles`: the
   ``DataFile`` descriptions, the counts, and the ``published`` range of the added rows.
3. :func:`commit_partitions` (once, after all of them): add every file as **one append**,
   the snapshot summary carrying the run id, source, counts, cursor and a ``commit-id``.

**Concurrent writers.** If the table moved past B before step 3, the committer reads the keys
of the data files the snapshots after B added in our partitions and time range (pyiceberg's
own validation history), drops our rows that became present (rewriting a file that keeps
some rows, dropping a file that keeps none) and commits with B' = the new head as parent. Its
append refuses pyiceberg's silent rebase when more data lands in that range meanwhile
(``checked_append_class`` of :mod:`sinks.iceberg.commit`), and then the re-check runs again.

**Retries and failures.** The ``commit-id`` (made once, with B) makes the commit step
idempotent: a retried step that finds a snapshot with its id after B reports that snapshot
instead of committing again. Nothing is half-committed: data files are invisible until the one
append refers to them. A worker that fails while writing deletes the files it wrote; the
committer deletes the files it dropped or replaced once its snapshot is committed, and a
replacement it wrote for a lost attempt at once. Files written for a run that then fails
(or by a worker attempt Beam discards) are left as orphans, because a retried commit step
needs them: ``okta-personal-lake maintain`` removes them (unreferenced files older than
``--orphan_age``).

``DataFile`` objects cross the shuffle as they are: pyiceberg's ``DataFile`` is a plain
record (``_data`` list of strings, numbers, bytes, dicts, a partition record), which Beam's
default coder pickles exactly (tested). That is simpler than re-reading each file's footer in
the committer (one more read per file on the one committing worker, and pyiceberg's
``add_files`` path refuses files that carry field ids, as its writer's do).
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sinks.iceberg.commit import (
    KEY,
    MAX_ATTEMPTS,
    CommitResult,
    IcebergCommitError,
    absent_rows,
    checked_append_class,
    dedupe,
    delete_quietly,
    key_strings,
    read_lake_partition,
)
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import SUMMARY_PREFIX, open_table, to_table_rows

LOG = logging.getLogger(__name__)
COMMIT_ID = "commit-id"


@dataclass
class PartitionFiles:
    """What one worker wrote for one lake partition (crosses a Beam shuffle: plain values and DataFiles)."""

    partition: str  # the lake partition path, event_date=.../event_type=...
    files: list = field(default_factory=list)  # pyiceberg DataFile objects, not committed yet
    rows_offered: int = 0
    rows_present: int = 0  # already in the table at the base snapshot
    rows_added: int = 0
    events_added: int = 0
    # (event_type, lowest published, highest published) of the rows added, ISO text: where a
    # concurrent writer could have added the same keys.
    ranges: list = field(default_factory=list)


def base_snapshot(catalog, target: IcebergTarget) -> tuple[object, int | None]:
    """(the table, opened and evolved, its current snapshot id or None when it has none)."""
    table = open_table(catalog, target)
    current = table.current_snapshot()
    return table, current.snapshot_id if current else None


def new_commit_id() -> str:
    return uuidlib.uuid4().hex


def write_partition(table, lake: str, partition: str, base_snapshot_id: int | None,
                    raw_event: bool = True) -> PartitionFiles:
    """Write the lake partition's rows absent from the table at ``base_snapshot_id`` as data files (not committed)."""
    rows = read_lake_partition(lake, partition, raw_event=raw_event)
    return write_rows(table, rows, base_snapshot_id, partition)


def write_rows(table, rows: pa.Table | None, base_snapshot_id: int | None, partition: str = "") -> PartitionFiles:
    """Write the rows (lake columns plus ``event_type``) absent at ``base_snapshot_id`` as data files."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    result = PartitionFiles(partition)
    if rows is None or rows.num_rows == 0:
        return result
    rows = dedupe(rows)
    ready = to_table_rows(rows, table)
    fresh, present = absent_rows(table, ready, base_snapshot_id)
    result.rows_offered, result.rows_present = rows.num_rows, present
    if fresh.num_rows == 0:
        return result
    result.rows_added = fresh.num_rows
    result.events_added = pc.count_distinct(fresh.column("uuid")).as_py()
    result.ranges = _ranges(fresh)
    try:
        for data_file in _dataframe_to_data_files(table_metadata=table.metadata, write_uuid=uuidlib.uuid4(),
                                                  df=fresh, io=table.io):
            result.files.append(data_file)
    except BaseException:
        delete_quietly(table.io, [f.file_path for f in result.files])
        raise
    return result


def _ranges(rows: pa.Table) -> list[tuple[str, str, str]]:
    out = []
    for event_type in sorted(set(rows.column("event_type").to_pylist())):
        published = rows.column("published").filter(pc.equal(rows.column("event_type"), event_type))
        out.append((event_type, pc.min(published).as_py().isoformat(), pc.max(published).as_py().isoformat()))
    return out


def ranges_filter(ranges):
    """The row filter covering these (event_type, low, high) ranges; None when there are none."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual, Or

    expression = None
    for event_type, low, high in ranges:
        part = And(EqualTo("event_type", event_type),
                   And(GreaterThanOrEqual("published", low), LessThanOrEqual("published", high)))
        expression = part if expression is None else Or(expression, part)
    return expression


def commit_partitions(catalog, target: IcebergTarget, written: list[PartitionFiles], base_snapshot_id: int | None,
                      commit_id: str, summary: dict | None = None, max_attempts: int = MAX_ATTEMPTS) -> CommitResult:
    """Commit every worker's data files as one snapshot whose parent holds none of their keys.

    ``written``: the :class:`PartitionFiles` of :func:`write_partition`, all checked at
    ``base_snapshot_id``; ``commit_id``: made once with the base (:func:`new_commit_id`), so a
    retried call finds its own snapshot instead of committing twice.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from pyiceberg.table.refs import MAIN_BRANCH
    from pyiceberg.table.snapshots import Operation

    parts = [_copy(p) for p in sorted(written, key=lambda p: p.partition)]
    inputs = {f.file_path for p in parts for f in p.files}
    created: set[str] = set()  # replacement files this call wrote
    checked = base_snapshot_id  # every file in `parts` holds only keys absent at this snapshot
    checked_append = checked_append_class()
    for attempt in range(1, max_attempts + 1):
        table = catalog.load_table(target.table)
        head = table.current_snapshot()
        done = _committed_by(table, commit_id, base_snapshot_id)
        if done is not None:
            return _result_of(done, attempt, table)
        if head is not None and head.snapshot_id != checked:
            _recheck(table, parts, checked, head, created)
            checked = head.snapshot_id
        result = _totals(parts, attempt)
        if not result.data_files:
            result.snapshot_id, result.table = checked, table
            return result
        transaction = table.transaction()
        append = checked_append(operation=Operation.APPEND, transaction=transaction, io=table.io,
                                branch=MAIN_BRANCH)
        append.conflict_filter = ranges_filter(r for p in parts for r in p.ranges)
        for part in parts:
            for data_file in part.files:
                append.append_data_file(data_file)
        append.snapshot_properties = _properties({**(summary or {}), COMMIT_ID: commit_id}, result)
        try:
            append.commit()
            transaction.commit_transaction()
        except (CommitFailedException, ValidationException) as exc:
            LOG.info("Iceberg commit attempt %s of %s lost to a concurrent writer (%s); re-checking",
                     attempt, target.table, exc)
            time.sleep(min(0.05 * attempt, 1.0))
            continue
        kept = {f.file_path for p in parts for f in p.files}
        delete_quietly(table.io, sorted(inputs - kept))  # dropped or replaced by the re-check
        result.snapshot_id, result.table = append.snapshot_id, table
        return result
    delete_quietly(table.io, sorted(created))
    raise IcebergCommitError(f"could not commit to the Iceberg table {target.table} after {max_attempts} "
                             "attempts: other writers kept committing to the same partitions")


def _copy(part: PartitionFiles) -> PartitionFiles:
    return PartitionFiles(part.partition, list(part.files), part.rows_offered, part.rows_present,
                          part.rows_added, part.events_added, list(part.ranges))


def _totals(parts: list[PartitionFiles], attempt: int) -> CommitResult:
    return CommitResult(None, sum(p.rows_offered for p in parts), sum(p.rows_added for p in parts),
                        sum(p.events_added for p in parts), sum(p.rows_present for p in parts), attempt,
                        sum(len(p.files) for p in parts))


def _properties(summary: dict, result: CommitResult) -> dict[str, str]:
    import json

    out = {f"{SUMMARY_PREFIX}{k}": v if isinstance(v, str) else json.dumps(v) for k, v in summary.items()}
    out.update({f"{SUMMARY_PREFIX}rows-offered": str(result.rows_offered),
                f"{SUMMARY_PREFIX}rows-added": str(result.rows_added),
                f"{SUMMARY_PREFIX}events-added": str(result.events_added),
                f"{SUMMARY_PREFIX}rows-already-present": str(result.rows_present)})
    return out


def _committed_by(table, commit_id: str, since: int | None):
    """The snapshot after ``since`` (on the main branch) whose summary carries ``commit_id``, else None."""
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != since:
        extra = snapshot.summary.additional_properties if snapshot.summary else {}
        if extra.get(SUMMARY_PREFIX + COMMIT_ID) == commit_id:
            return snapshot
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    return None


def _result_of(snapshot, attempt: int, table) -> CommitResult:
    extra = snapshot.summary.additional_properties
    number = lambda name: int(extra.get(SUMMARY_PREFIX + name, 0))  # noqa: E731
    return CommitResult(snapshot.snapshot_id, number("rows-offered"), number("rows-added"), number("events-added"),
                        number("rows-already-present"), attempt, int(extra.get("added-data-files", 0)), table)


def _recheck(table, parts: list[PartitionFiles], checked: int | None, head, created: set[str]) -> None:
    """Drop from ``parts`` the rows that snapshots after ``checked`` (up to ``head``) added meanwhile."""
    present = _keys_added_since(table, parts, checked, head)
    for part in parts:
        if not part.files:
            continue
        if present is None:  # the base is no longer in the history: check against the whole table
            ours = pa.concat_tables([_read(table.io, f.file_path) for f in part.files], promote_options="default")
            kept, _ = absent_rows(table, to_table_rows(ours, table), head.snapshot_id)
        else:
            keys = pa.concat_tables([_read(table.io, f.file_path, KEY) for f in part.files])
            if not pc.any(pc.is_in(key_strings(keys), value_set=present)).as_py():
                continue
            ours = pa.concat_tables([_read(table.io, f.file_path) for f in part.files], promote_options="default")
            kept = ours.filter(pc.invert(pc.is_in(key_strings(ours), value_set=present)))
        if kept.num_rows == ours.num_rows:
            continue
        _replace(table, part, kept, created)


def _keys_added_since(table, parts: list[PartitionFiles], checked: int | None, head) -> pa.Array | None:
    """The keys of the data files added after ``checked`` in our ranges; None when that history is gone."""
    from pyiceberg.exceptions import ValidationException
    from pyiceberg.table.update.validate import _added_data_files

    base = table.snapshot_by_id(checked) if checked is not None else None
    if checked is not None and base is None:
        return None
    where = ranges_filter(r for p in parts for r in p.ranges)
    if where is None:
        return pa.array([], pa.string())
    try:
        entries = list(_added_data_files(table, head, where, None, base))
    except ValidationException:  # the base is not an ancestor of the head (a rollback)
        return None
    keys = [key_strings(_read(table.io, e.data_file.file_path, KEY)) for e in entries]
    return pa.chunked_array([chunk for k in keys for chunk in k.chunks], pa.string()).combine_chunks()


def _read(io, path: str, columns=None) -> pa.Table:
    with io.new_input(path).open() as handle:
        return pq.read_table(handle, columns=list(columns) if columns else None)


def _replace(table, part: PartitionFiles, kept: pa.Table, created: set[str]) -> None:
    """Put ``kept`` (the part's rows still absent) in place of the part's files."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    dropped = part.rows_added - kept.num_rows
    old = [f.file_path for f in part.files]
    part.files = []
    if kept.num_rows:
        ready = to_table_rows(kept, table)
        for data_file in _dataframe_to_data_files(table_metadata=table.metadata, write_uuid=uuidlib.uuid4(),
                                                  df=ready, io=table.io):
            part.files.append(data_file)
            created.add(data_file.file_path)
    delete_quietly(table.io, [p for p in old if p in created])  # our own earlier replacements only
    created.difference_update(old)
    part.rows_added, part.rows_present = kept.num_rows, part.rows_present + dropped
    part.events_added = pc.count_distinct(kept.column("uuid")).as_py() if kept.num_rows else 0
    part.ranges = _ranges(kept) if kept.num_rows else []
