"""Keeping the Iceberg table small and fast: compaction, snapshot expiry, orphan files (no Beam here).

All three are safe while writers commit; a maintenance run makes at most one snapshot (the
compaction's), and expiry and orphan removal make none:

- :func:`compact` rewrites the files that each partition holds at one snapshot S into files
  of about the target size (sorted like the table), and commits, for all the partitions at
  once, "delete exactly those files, add the new ones": **one snapshot per run**, recording
  the run id. Files a writer adds after S are left alone. If the commit meets a concurrent
  commit, it is made again on the new snapshot with the same new files (a partition whose
  old files another compaction replaced meanwhile is dropped from it), a few times, then
  left for the next run. The rows never change, so the writers' insert-if-absent checks
  see the same keys before and after.
- :func:`expire_snapshots` drops snapshots older than the retention (never a branch or tag
  head, so never the current one); time travel reaches back as far as the retention.
- :func:`remove_orphan_files` deletes files under the table's location that no remaining
  snapshot or metadata file refers to **and** that are older than ``min_age``: a writer's
  data files exist for a moment before its commit refers to them, so young files are kept.
"""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
import uuid
from dataclasses import dataclass, field

import pyarrow as pa

from sinks.iceberg import cursor as iceberg_cursor
from sinks.iceberg.table import SORT, SUMMARY_PREFIX

LOG = logging.getLogger(__name__)
COMPACT_ATTEMPTS = 5


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A maintenance run's id, shaped like a pipeline run's: ``20261201T154000Z-a1b2c3``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class MaintenanceReport:
    run_id: str = ""
    snapshot_id: int | None = None  # the compaction's one snapshot, if it made one
    partitions_compacted: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    partitions_skipped: list = field(default_factory=list)
    snapshots_expired: int = 0
    orphans_removed: list = field(default_factory=list)

    def render(self) -> str:
        return (f"compacted {self.partitions_compacted} partition(s): {self.files_rewritten} file(s) -> "
                f"{self.files_written}"
                + (f" in snapshot {self.snapshot_id} (okta-lake.run-id {self.run_id})" if self.snapshot_id else "")
                + f"; expired {self.snapshots_expired} snapshot(s); removed "
                f"{len(self.orphans_removed)} orphan file(s)"
                + (f"; left for the next run (busy): {', '.join(self.partitions_skipped)}"
                   if self.partitions_skipped else ""))


def partition_filter(table, partition) -> tuple[str, object]:
    """A row filter selecting exactly one (day, event_type) partition (a data file's partition tuple), and its
    name."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

    values = dict(zip([f.name for f in table.spec().fields], partition))
    day = _dt.date(1970, 1, 1) + _dt.timedelta(days=values["published_day"])
    start = _dt.datetime.combine(day, _dt.time(), _dt.timezone.utc)
    end = start + _dt.timedelta(days=1)
    expression = And(EqualTo("event_type", values["event_type"]),
                     And(GreaterThanOrEqual("published", start.isoformat()), LessThan("published", end.isoformat())))
    return f"{day.isoformat()}/{values['event_type']}", expression


def _small_file_partitions(table, target_bytes: int) -> list:
    groups: dict = {}
    for task in table.scan().plan_files():
        groups.setdefault(tuple(task.file.partition), []).append(task.file)
    return [p for p, files in sorted(groups.items(), key=lambda kv: str(kv[0]))
            if len(files) > 1 and sum(1 for f in files if f.file_size_in_bytes < target_bytes) > 1]


@dataclass
class Rewrite:
    """Files holding some rows at the planning snapshot (``old``), and files holding the same rows compacted
    (``new``); ``where`` is a row filter covering ``old``'s partition (None: look at the whole table)."""

    name: str
    old: list
    new: list
    where: object = None


def _rewrite_partitions(table, target_bytes: int) -> list[Rewrite]:
    """Write, for each partition with more than one small file at the current snapshot, its rows again in
    files of about ``target_bytes`` (sorted like the table); nothing is committed."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    sized = table.metadata.model_copy(update={"properties": {
        **table.metadata.properties, "write.target-file-size-bytes": str(target_bytes)}})
    out = []
    for partition in _small_file_partitions(table, target_bytes):
        name, expression = partition_filter(table, partition)
        scan = table.scan(row_filter=expression, snapshot_id=snapshot.snapshot_id)
        old = [task.file for task in scan.plan_files()]
        if len(old) < 2:
            continue
        rows = scan.to_arrow().cast(table.schema().as_arrow()).sort_by([(c, "ascending") for c in SORT])
        new = list(_dataframe_to_data_files(table_metadata=sized, write_uuid=uuid.uuid4(), df=rows, io=table.io))
        out.append(Rewrite(name, old, new, expression))
    return out


@dataclass
class Committed:
    """What :func:`commit_rewrites` did: the snapshot (None: none made), the rewrites in it, those left out."""

    snapshot_id: int | None
    done: list
    skipped: list
    table: object


def commit_rewrites(catalog, table_name: str, table, planned: list[Rewrite], properties,
                    attempts: int = COMPACT_ATTEMPTS) -> Committed:
    """Commit every rewrite in **one** snapshot ("delete exactly these files, add those"), with
    ``properties(rewrites)`` in its summary, on the table's newest snapshot.

    If the commit meets a concurrent one it is made again on the new snapshot with the same new files; a
    rewrite whose old files are no longer all live there (another compaction replaced them) is left out
    and its new files deleted. After ``attempts`` attempts everything is left out. The rows never change,
    so the writers' insert-if-absent checks see the same keys before and after.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    planned, skipped = list(planned), []
    for attempt in range(1, attempts + 1):
        if not planned:
            break
        if attempt > 1:
            table = catalog.load_table(table_name)
        live = _live_paths(table, planned)
        for gone in [r for r in planned if any(f.file_path not in live for f in r.old)]:
            planned.remove(gone)
            _delete_all(table.io, gone.new)
            skipped.append(gone)
        if not planned:
            break
        transaction = table.transaction()
        overwrite = transaction.update_snapshot(snapshot_properties=properties(planned)).overwrite()
        for rewrite in planned:
            for data_file in rewrite.old:
                overwrite.delete_data_file(data_file)
            for data_file in rewrite.new:
                overwrite.append_data_file(data_file)
        try:
            overwrite.commit()
            transaction.commit_transaction()
        except (CommitFailedException, ValidationException) as exc:
            LOG.info("compaction commit attempt %s of %s lost to a concurrent commit (%s); again on the new "
                     "snapshot", attempt, attempts, exc)
            continue
        return Committed(overwrite.snapshot_id, planned, skipped, table)
    for rewrite in planned:
        _delete_all(table.io, rewrite.new)
    return Committed(None, [], skipped + planned, table)


def _live_paths(table, planned: list[Rewrite]) -> set[str]:
    from pyiceberg.expressions import AlwaysTrue, Or

    where = None
    for rewrite in planned:
        if rewrite.where is None:
            where = AlwaysTrue()
            break
        where = rewrite.where if where is None else Or(where, rewrite.where)
    return {task.file.file_path for task in table.scan(row_filter=where or AlwaysTrue()).plan_files()}


def compact(catalog, table_name: str, target_bytes: int = 128 * 1024 * 1024,
            report: MaintenanceReport | None = None, run_id: str | None = None) -> MaintenanceReport:
    """Rewrite each partition that has more than one file smaller than ``target_bytes``: all of them in **one**
    snapshot, whose summary records ``okta-lake.run-id`` (``run_id``, default :func:`new_run_id`),
    ``okta-lake.operation`` ``compact`` and ``okta-lake.partitions`` (how many were compacted).

    The files are written once; each attempt commits them on the table's newest snapshot
    (:func:`commit_rewrites`). A partition whose old files are no longer all live there (another maintenance
    run compacted it meanwhile) is left out of the commit, its new files deleted. Up to
    :data:`COMPACT_ATTEMPTS` attempts, then everything is left for the next run.
    """
    report = report or MaintenanceReport()
    report.run_id = report.run_id or run_id or new_run_id()
    table = catalog.load_table(table_name)
    planned = _rewrite_partitions(table, target_bytes)
    if not planned:
        return report

    def properties(rewrites):
        return {f"{SUMMARY_PREFIX}run-id": report.run_id, f"{SUMMARY_PREFIX}operation": "compact",
                f"{SUMMARY_PREFIX}partitions": str(len(rewrites))}

    outcome = commit_rewrites(catalog, table_name, table, planned, properties)
    report.partitions_skipped += [r.name for r in outcome.skipped]
    if outcome.snapshot_id is not None:
        report.snapshot_id = outcome.snapshot_id
        report.partitions_compacted += len(outcome.done)
        report.files_rewritten += sum(len(r.old) for r in outcome.done)
        report.files_written += sum(len(r.new) for r in outcome.done)
    return report


def expire_snapshots(catalog, table_name: str, older_than: _dt.datetime,
                     report: MaintenanceReport | None = None) -> MaintenanceReport:
    """Drop snapshots older than ``older_than`` that no branch or tag points at and that hold no org's newest
    Okta cursor (:func:`sinks.iceberg.cursor.keep_ids`); re-tried on a concurrent commit."""
    from pyiceberg.exceptions import CommitFailedException

    report = report or MaintenanceReport()
    cutoff_ms = int(older_than.timestamp() * 1000)
    for _ in range(COMPACT_ATTEMPTS):
        table = catalog.load_table(table_name)
        # Also kept: the newest snapshot recording each org's Okta cursor, where a run without --state resumes.
        heads = {ref.snapshot_id for ref in table.metadata.refs.values()} | iceberg_cursor.keep_ids(table)
        expired = [s.snapshot_id for s in table.snapshots()
                   if s.timestamp_ms < cutoff_ms and s.snapshot_id not in heads]
        if not expired:
            break
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        except CommitFailedException:
            continue
        report.snapshots_expired += len(expired)
        break
    return report


def referenced_files(table) -> set[str]:
    """Every file the table refers to: metadata files, manifest lists, manifests, live data files of any snapshot."""
    refs = {table.metadata_location}
    refs |= {entry.metadata_file for entry in table.metadata.metadata_log}
    refs |= {s.statistics_path for s in table.metadata.statistics}
    for snapshot in table.snapshots():
        refs.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            refs.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                refs.add(entry.data_file.file_path)
    return {_normalise(r) for r in refs}


def _normalise(uri: str) -> str:
    return uri.removeprefix("file://") if uri.startswith("file:///") else uri


def _filesystem(table, location: str):
    """The Arrow filesystem and root path of ``location`` as the table's FileIO reaches it (its object store
    endpoint and credentials, see :func:`sinks.iceberg.catalog.file_io_properties`)."""
    from pyarrow import fs as pafs

    io = table.io
    if hasattr(io, "fs_by_scheme") and hasattr(io, "parse_location"):  # pyiceberg's PyArrowFileIO
        scheme, netloc, path = io.parse_location(location)
        return io.fs_by_scheme(scheme, netloc), path
    return pafs.FileSystem.from_uri(location)


def remove_orphan_files(catalog, table_name: str, min_age: _dt.timedelta,
                        report: MaintenanceReport | None = None, now: _dt.datetime | None = None
                        ) -> MaintenanceReport:
    """Delete files under the table location that nothing refers to and that are older than ``min_age``."""
    from pyarrow import fs as pafs

    report = report or MaintenanceReport()
    table = catalog.load_table(table_name)
    location = table.location()
    filesystem, root = _filesystem(table, location)
    listed = [info for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
              if info.type == pafs.FileType.File]
    # The files are listed before the references are read: a file committed in between is then referenced.
    refs = referenced_files(catalog.load_table(table_name))
    cutoff = (now or _dt.datetime.now(_dt.timezone.utc)) - min_age
    prefix = location[: len(location) - len(location.split("://", 1)[-1])] if "://" in location else ""
    for info in listed:
        uri = info.path if prefix in ("", "file://") else prefix + info.path
        if _normalise(uri) in refs:
            continue
        modified = info.mtime
        if modified is not None and modified.replace(tzinfo=modified.tzinfo or _dt.timezone.utc) > cutoff:
            continue
        filesystem.delete_file(info.path)
        report.orphans_removed.append(uri)
    return report


def _delete_all(io, data_files) -> None:
    for data_file in data_files:
        try:
            io.delete(data_file.file_path)
        except Exception:  # noqa: BLE001 - left behind, it is an orphan file for the next run
            pass


def file_count(table) -> int:
    return sum(1 for _ in table.scan().plan_files())


def rows(table) -> pa.Table:
    return table.scan().to_arrow()
