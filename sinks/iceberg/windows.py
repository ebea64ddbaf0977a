"""One streaming window = one Iceberg snapshot: the per-process committer the streaming paths share (no Beam here).

:class:`WindowCommitter` commits a window's committed lake files (or rows) with
:func:`sinks.iceberg.commit.commit_lake_files` / :func:`~sinks.iceberg.commit.commit_rows`, and
keeps what a long stream of small commits must not redo or let grow:

- the catalog and the loaded table stay open between windows (:func:`committer` gives one
  committer per table and process, opened on first use: the streaming settings carry only
  the plain :class:`~sinks.iceberg.catalog.IcebergTarget`, never a catalog). pyiceberg updates
  the table's metadata in place with each of our commits; when another writer committed in
  between, our commit loses once and the retry reloads (keys are always checked at the
  snapshot the commit is based on, see :mod:`sinks.iceberg.commit`);
- every ``expire_every`` windows it expires the snapshots beyond the newest
  ``keep_snapshots`` (``--iceberg_keep_snapshots``; never a branch or tag head, nor the snapshot
  holding an org's newest Okta cursor, where a restart without ``--state`` resumes), because
  the table metadata lists every snapshot and pyiceberg copies it whole several times per
  commit: without expiry a window's commit grows with the number of windows before it
  (bench/RESULTS.md). Time travel then reaches back ``keep_snapshots`` windows;
- its :class:`~sinks.iceberg.cleanup.TableJanitor` deletes the files only expired snapshots referred
  to, the metadata files that left the log, and (hourly) old orphans, so the table's folder stays the
  size of what it holds; the stream's compaction passes (:mod:`sinks.iceberg.compaction`) run under
  the same lock (:meth:`WindowCommitter.maintain`).
"""

from __future__ import annotations

import logging
import threading

from sinks.iceberg import cursor as iceberg_cursor
from sinks.iceberg.cleanup import TableJanitor
from sinks.iceberg.commit import CommitResult, commit_lake_files, commit_rows
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import connect

LOG = logging.getLogger(__name__)
KEEP_SNAPSHOTS = 60  # an hour of 1-minute windows
EXPIRE_EVERY = 10  # windows


class WindowCommitter:
    """Commits one window at a time to one table, keeping the catalog and table open."""

    def __init__(self, target: IcebergTarget, keep_snapshots: int = KEEP_SNAPSHOTS,
                 expire_every: int = EXPIRE_EVERY, catalog=None, janitor: TableJanitor | None = None):
        self.target, self.keep_snapshots, self.expire_every = target, keep_snapshots, expire_every
        self.janitor = janitor or TableJanitor()
        self._catalog = catalog
        self._table = None
        self._commits = 0
        self._lock = threading.Lock()  # Beam may run several bundles of a worker in threads
        self.snapshots_expired = 0

    @property
    def catalog(self):
        if self._catalog is None:
            self._catalog = connect(self.target)
        return self._catalog

    def commit_files(self, lake: str, files: list[tuple[str, str | None]], summary: dict,
                     raw_event: bool = True) -> CommitResult:
        """A window's committed lake files as one snapshot (``None`` as a name: the whole partition)."""
        with self._lock:
            return self._done(commit_lake_files(self.catalog, self.target, lake, files, summary, raw_event,
                                                table=self._table))

    def commit_rows(self, rows, summary: dict) -> CommitResult:
        """A window's rows (lake columns plus ``event_type``) as one snapshot."""
        with self._lock:
            return self._done(commit_rows(self.catalog, self.target, rows, summary, table=self._table))

    def maintain(self, work):
        """``work(catalog, table)`` returning ``(result, table)``, under this committer's lock (no window commits
        meanwhile); the table it returns is kept, and its files are tidied as after a commit. Returns ``result``."""
        from pyiceberg.exceptions import NoSuchTableError

        with self._lock:
            try:
                table = self._table if self._table is not None else self.catalog.load_table(self.target.table)
            except NoSuchTableError:
                table = None
            result, self._table = work(self.catalog, table)
            if self._table is not None:
                self._tidy(self._table)
            return result

    def _done(self, result: CommitResult) -> CommitResult:
        self._table = result.table
        if result.data_files:
            self._commits += 1
            if self.expire_every and self._commits % self.expire_every == 0:
                self.expire()
            self._tidy(self._table)
        return result

    def _tidy(self, table) -> None:
        try:
            self.janitor.observe(table)
            self.janitor.sweep(self.catalog, self.target.table, table.io)
        except Exception as exc:  # noqa: BLE001 - tidying never fails a commit; the orphan sweep catches up
            LOG.warning("could not remove the unneeded files of %s: %s: %s", self.target.table,
                        exc.__class__.__name__, exc)

    def expire(self) -> int:
        """Expire every snapshot but the newest ``keep_snapshots`` and the branch/tag heads; returns how many."""
        from pyiceberg.exceptions import CommitFailedException

        table = self._table if self._table is not None else self.catalog.load_table(self.target.table)
        for _ in range(5):
            heads = {ref.snapshot_id for ref in table.metadata.refs.values()} | iceberg_cursor.keep_ids(table)
            snapshots = sorted(table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
            expiring = [s for s in snapshots[:max(0, len(snapshots) - self.keep_snapshots)]
                        if s.snapshot_id not in heads]
            old = [s.snapshot_id for s in expiring]
            if not old:
                return 0
            try:
                table.maintenance.expire_snapshots().by_ids(old).commit()
            except CommitFailedException:  # a writer or maintenance committed meanwhile: look again
                table = self.catalog.load_table(self.target.table)
                continue
            self._table = table
            try:
                self.janitor.expired(table, expiring)
            except Exception as exc:  # noqa: BLE001 - their files are then orphans, swept later
                LOG.warning("could not list the files of the snapshots expired from %s: %s", self.target.table, exc)
            self.snapshots_expired += len(old)
            return len(old)
        LOG.info("snapshot expiry of %s skipped: the table kept changing", self.target.table)
        return 0


_COMMITTERS: dict[tuple[IcebergTarget, int], WindowCommitter] = {}
_LOCK = threading.Lock()


def committer(target: IcebergTarget, keep_snapshots: int = KEEP_SNAPSHOTS, **options) -> WindowCommitter:
    """This process's committer for the table (opened lazily: settings travel pickled, catalogs do not), made
    with ``options`` (e.g. ``janitor``) on first use.

    ``keep_snapshots`` 0: never expire.
    """
    with _LOCK:
        key = (target, keep_snapshots)
        if key not in _COMMITTERS:
            _COMMITTERS[key] = WindowCommitter(target, keep_snapshots=keep_snapshots,
                                               expire_every=EXPIRE_EVERY if keep_snapshots else 0, **options)
        return _COMMITTERS[key]
