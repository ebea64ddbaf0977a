"""Keeping the Iceberg table small and fast: compaction, snapshot expiry, orphan files (no Beam here).

All three are safe while writers commit:

- :func:`compact` rewrites, per partition, the files of one snapshot S into files of about
  the target size (sorted like the table) and commits "delete exactly those files, add the
  new ones". Files a writer adds after S are left alone. If the commit meets a concurrent
  change pyiceberg cannot rebase safely, the partition is re-planned from the new snapshot
  (a few times, then left for the next run). The rows never change, so the writers'
  insert-if-absent checks see the same keys before and after.
- :func:`expire_snapshots` drops snapshots older than the retention (never a branch or tag
  head, so never the current one); time travel reaches back as far as the retention.
- :func:`remove_orphan_files` deletes files under the table's location that no remaining
  snapshot or metadata file refers to **and** that are older than ``min_age``: a writer's
  data files exist for a moment before its commit refers to them, so young files are kept.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field

import pyarrow as pa

from sinks.iceberg import cursor as iceberg_cursor
from sinks.iceberg.table import SORT, SUMMARY_PREFIX

LOG = logging.getLogger(__name__)
COMPACT_ATTEMPTS = 5


@dataclass
class MaintenanceReport:
    partitions_compacted: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    partitions_skipped: list = field(default_factory=list)
    snapshots_expired: int = 0
    orphans_removed: list = field(default_factory=list)

    def render(self) -> str:
        return (f"compacted {self.partitions_compacted} partition(s): {self.files_rewritten} file(s) -> "
                f"{self.files_written}; expired {self.snapshots_expired} snapshot(s); removed "
                f"{len(self.orphans_removed)} orphan file(s)"
                + (f"; left for the next run (busy): {', '.join(self.partitions_skipped)}"
                   if self.partitions_skipped else ""))


def _partition_filter(table, partition) -> tuple[str, object]:
    """A row filter selecting exactly one (day, event_type) partition, and its name."""
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


def compact(catalog, table_name: str, target_bytes: int = 128 * 1024 * 1024,
            report: MaintenanceReport | None = None) -> MaintenanceReport:
    """Rewrite each partition that has more than one file smaller than ``target_bytes``."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    report = report or MaintenanceReport()
    table = catalog.load_table(table_name)
    for partition in _small_file_partitions(table, target_bytes):
        name, expression = _partition_filter(table, partition)
        for _ in range(COMPACT_ATTEMPTS):
            table = catalog.load_table(table_name)
            snapshot = table.current_snapshot()
            scan = table.scan(row_filter=expression, snapshot_id=snapshot.snapshot_id)
            old = [task.file for task in scan.plan_files()]
            if len(old) < 2:
                break
            rows = scan.to_arrow().cast(table.schema().as_arrow()).sort_by([(c, "ascending") for c in SORT])
            transaction = table.transaction()
            overwrite = transaction.update_snapshot(snapshot_properties={
                f"{SUMMARY_PREFIX}operation": "compact", f"{SUMMARY_PREFIX}partition": name}).overwrite()
            sized = transaction.table_metadata.model_copy(update={"properties": {
                **transaction.table_metadata.properties, "write.target-file-size-bytes": str(target_bytes)}})
            new = list(_dataframe_to_data_files(table_metadata=sized,
                                                write_uuid=overwrite.commit_uuid, df=rows, io=table.io))
            for data_file in old:
                overwrite.delete_data_file(data_file)
            for data_file in new:
                overwrite.append_data_file(data_file)
            try:
                overwrite.commit()
                transaction.commit_transaction()
            except (CommitFailedException, ValidationException) as exc:
                for data_file in new:
                    _delete(table.io, data_file.file_path)
                LOG.info("compacting %s lost to a concurrent commit (%s); re-planning", name, exc)
                continue
            report.partitions_compacted += 1
            report.files_rewritten += len(old)
            report.files_written += len(new)
            break
        else:
            report.partitions_skipped.append(name)
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


def _delete(io, path: str) -> None:
    try:
        io.delete(path)
    except Exception:  # noqa: BLE001 - left behind, it is an orphan file for the next run
        pass


def file_count(table) -> int:
    return sum(1 for _ in table.scan().plan_files())


def rows(table) -> pa.Table:
    return table.scan().to_arrow()
