"""Compacting the Iceberg table while a stream runs: its hours and days of small files, one snapshot a pass (no Beam).

Every streaming window adds a small data file to each partition (``day(published)``,
``event_type``) it wrote. :class:`TableCompactor` makes, at most every ``every`` seconds (after a
window's snapshot, :mod:`streaming.commit`), a pass over the days its process's windows wrote to
(and, at its first pass, today and yesterday). It plans each partition with the Hive lake's rules
(:mod:`sinks.lake.compaction_plan`), a data file belonging to the UTC hour of its oldest
``published``: an open hour's files are rewritten as one once there are ``fold_at`` of them, a closed
hour's together, a closed day's into one; a file of the table's target size
(``write.target-file-size-bytes``, 128 MB) is never rewritten again. Every group of a pass is
committed in **one** snapshot that replaces exactly the old files by the new ones
(:func:`sinks.iceberg.maintenance.commit_rewrites`; its summary records ``okta-lake.run-id``, the
job, and ``okta-lake.operation`` ``compact``), so a reader sees the table before or after it: never a
row twice, never one missing. A window commit of another process meanwhile re-checks its keys on
the new snapshot (:mod:`sinks.iceberg.commit`); a group whose files another compaction replaced is
left out. The pass runs under the process's :class:`~sinks.iceberg.windows.WindowCommitter`, so its
own windows never race it and keep the table it leaves.

A pass holds one group's rows in memory at a time, at most a closed day of one partition.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
import uuid
from dataclasses import dataclass, field

from sinks.iceberg.maintenance import Rewrite, commit_rewrites, partition_filter
from sinks.iceberg.table import SORT, SUMMARY_PREFIX
from sinks.iceberg.windows import WindowCommitter
from sinks.lake.compaction_plan import DAY, HOUR, Piece, Rules, plan, waiting

PASS_EVERY_SECONDS = 60.0
TARGET_BYTES = 128 * 1024 * 1024  # when the table does not say (write.target-file-size-bytes)


@dataclass
class TableReport:
    """What one pass over the table did."""

    snapshot_id: int | None = None
    groups: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    skipped: list = field(default_factory=list)

    def render(self, table: str) -> str:
        text = f"{table} compacted: {self.files_rewritten:,} file(s) -> {self.files_written:,}"
        if self.snapshot_id is not None:
            text += f" in snapshot {self.snapshot_id}"
        if self.skipped:
            text += f"; left for the next pass: {', '.join(self.skipped)}"
        return text


def lake_days(partitions) -> set[int]:
    """The UTC days (epoch seconds of their start) of lake partition paths ``event_date=.../event_type=...``."""
    days = set()
    for partition in partitions:
        for part in partition.split("/"):
            if part.startswith("event_date="):
                day = _dt.date.fromisoformat(part[len("event_date="):])
                days.add(int(_dt.datetime.combine(day, _dt.time(), _dt.timezone.utc).timestamp()))
    return days


class TableCompactor:
    """Compaction passes over one table, as a stream's windows are committed (see the module doc)."""

    def __init__(self, committer: WindowCommitter, owner: str, clock=time.time, rules: Rules = Rules(), *,
                 every: float = PASS_EVERY_SECONDS):
        self.committer, self.owner, self.clock, self.rules, self.every = committer, owner, clock, rules, every
        self._days: dict[int, None] = {}
        self._last_pass: float | None = None
        self._lock = threading.Lock()

    def after_window(self, partitions) -> TableReport | None:
        """Note a committed window's lake partitions; make a pass if one is due (None when none was made)."""
        with self._lock:
            for day in sorted(lake_days(partitions)):
                self._days.setdefault(day, None)
        return self.run()

    def run(self, force: bool = False) -> TableReport | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            now = self.clock()
            if not force and self._last_pass is not None and now - self._last_pass < self.every:
                return None
            if self._last_pass is None:
                today = int(now - now % DAY)
                for day in (today - DAY, today):
                    self._days.setdefault(day, None)
            self._last_pass = now
            if not self._days:
                return None
            return self.committer.maintain(lambda catalog, table: self._pass(catalog, table, now))
        finally:
            self._lock.release()

    @property
    def days(self) -> list[int]:
        return sorted(self._days)

    def _pass(self, catalog, table, now: float):
        report = TableReport()
        if table is None or table.current_snapshot() is None:
            return report, table
        target = int(table.metadata.properties.get("write.target-file-size-bytes", TARGET_BYTES))
        planned, done_days = [], set(self._days)
        found = _partitions(table, sorted(self._days))
        for partition, (day, files) in sorted(found.items(), key=lambda kv: str(kv[0])):
            pieces = [Piece(f.file_path, hour, hour, small=f.file_size_in_bytes < target) for f, hour in files]
            by_path = {f.file_path: f for f, _ in files}
            groups = plan(pieces, now, self.rules)
            if groups or waiting(pieces, now, self.rules):
                done_days.discard(day)
            name, where = partition_filter(table, partition)
            for group in groups:
                old = [by_path[path] for path in group.members]
                planned.append(Rewrite(f"{name} {group.level} {_when(group.period)}", old, _rewritten(table, old),
                                       where))
        for day in done_days:
            if day + DAY + self.rules.settle <= now:
                self._days.pop(day, None)  # closed and final: looked at again only if a window writes to it
        if not planned:
            return report, table

        def properties(rewrites):
            return {f"{SUMMARY_PREFIX}run-id": self.owner, f"{SUMMARY_PREFIX}operation": "compact",
                    f"{SUMMARY_PREFIX}groups": str(len(rewrites))}

        outcome = commit_rewrites(catalog, self.committer.target.table, table, planned, properties)
        report.snapshot_id = outcome.snapshot_id
        report.groups = len(outcome.done)
        report.files_rewritten = sum(len(r.old) for r in outcome.done)
        report.files_written = sum(len(r.new) for r in outcome.done)
        report.skipped = [r.name for r in outcome.skipped]
        return report, outcome.table


def _when(period: int) -> str:
    return time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(period))


def _partitions(table, days: list[int]) -> dict:
    """The live data files of the current snapshot in those days: ``{partition: (day, [(file, hour)])}``, a file's
    hour that of its oldest ``published`` (the day's start without statistics)."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan, Or
    from pyiceberg.types import TimestamptzType

    where = None
    for day in days:
        start = _dt.datetime.fromtimestamp(day, _dt.timezone.utc)
        span = And(GreaterThanOrEqual("published", start.isoformat()),
                   LessThan("published", (start + _dt.timedelta(days=1)).isoformat()))
        where = span if where is None else Or(where, span)
    published = table.schema().find_field("published").field_id
    names = [f.name for f in table.spec().fields]
    found: dict = {}
    for task in table.scan(row_filter=where).plan_files():
        data_file = task.file
        day = dict(zip(names, data_file.partition))["published_day"] * DAY
        low = (data_file.lower_bounds or {}).get(published)
        hour = day
        if low is not None:
            seconds = from_bytes(TimestamptzType(), low) // 1_000_000
            hour = min(max(seconds - seconds % HOUR, day), day + DAY - HOUR)
        found.setdefault(tuple(data_file.partition), (day, []))[1].append((data_file, hour))
    return found


def _rewritten(table, old: list) -> list:
    """The rows of ``old`` written again as the table writes (sorted, zstd, files of its target size)."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
    from pyiceberg.table import FileScanTask

    rows = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table([FileScanTask(f) for f in old])
    rows = rows.cast(table.schema().as_arrow()).sort_by([(c, "ascending") for c in SORT])
    return list(_dataframe_to_data_files(table_metadata=table.metadata, write_uuid=uuid.uuid4(), df=rows,
                                         io=table.io))


_COMPACTORS: dict = {}
_LOCK = threading.Lock()


def table_compactor(committer: WindowCommitter, owner: str, **options) -> TableCompactor:
    """This process's compactor of the committer's table (made on first use with ``options``)."""
    with _LOCK:
        key = id(committer)
        if key not in _COMPACTORS or _COMPACTORS[key].committer is not committer:
            _COMPACTORS[key] = TableCompactor(committer, owner, **options)
        return _COMPACTORS[key]
