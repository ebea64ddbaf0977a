"""The files a streaming Iceberg table no longer needs, deleted by the stream itself (no Beam here).

Snapshot expiry (every few windows, :class:`sinks.iceberg.windows.WindowCommitter`) and compaction
(:mod:`sinks.iceberg.compaction`) change only the table's metadata: the files of the expired
snapshots stay where they are. Without this module a stream leaves tens of thousands of files a day
(a manifest list, a manifest, a metadata file and a data file per window, and every small file a
compaction replaced) until ``okta-personal-lake maintain`` removes them. :class:`TableJanitor`
deletes, ``grace`` seconds after it learnt of them (so a reader that planned a scan just before
still finds its files):

- after each expiry, every manifest list, manifest and data file that an expired snapshot
  referred to and no remaining snapshot does (reachability, as Iceberg's own expiry computes it;
  a remaining snapshot's files are never touched, nor a file another writer has not committed yet,
  since no snapshot refers to it);
- the metadata files that left the table's metadata log (``write.metadata.previous-versions-max``)
  while this process watched the table (after each of its commits);
- and every ``orphan_every`` seconds, the files under the table's location that nothing refers to
  and that are older than ``orphan_age`` (:func:`sinks.iceberg.maintenance.remove_orphan_files`): what
  failed or killed commits left, of any writer. ``orphan_age`` (a day, like ``maintain``'s default) is
  longer than any writer's files wait for their commit.

Deletions that are due when the process stops are left to the orphan sweep of a later run.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time

from sinks.iceberg.maintenance import remove_orphan_files

LOG = logging.getLogger(__name__)
GRACE_SECONDS = 3600.0
ORPHAN_EVERY_SECONDS = 3600.0
ORPHAN_AGE_SECONDS = 86400.0
CACHED_MANIFESTS = 4096


class TableJanitor:
    """Deletes what one table's expired snapshots and old metadata leave behind (see the module doc)."""

    def __init__(self, clock=time.time, grace: float = GRACE_SECONDS, orphan_every: float = ORPHAN_EVERY_SECONDS,
                 orphan_age: float = ORPHAN_AGE_SECONDS):
        self.clock, self.grace, self.orphan_every, self.orphan_age = clock, grace, orphan_every, orphan_age
        self._due: dict[str, float] = {}  # path -> when it may be deleted
        self._metadata: set[str] = set()
        self._live: dict[str, frozenset] = {}  # manifest path -> the data files it holds live
        self._last_orphans: float | None = None
        self._lock = threading.Lock()
        self.deleted = 0
        self.orphans_removed = 0

    def observe(self, table) -> None:
        """After a commit: the metadata files that left the table's metadata log since the last look go later."""
        current = {table.metadata_location} | {entry.metadata_file for entry in table.metadata.metadata_log}
        with self._lock:
            self._schedule(self._metadata - current)
            self._metadata = current

    def expired(self, table, snapshots) -> int:
        """After ``snapshots`` were expired from ``table``: what only they referred to goes later; returns how many."""
        gone = _reachable(table.io, snapshots, self._live)
        kept = _reachable(table.io, table.snapshots(), self._live)
        unreachable = (gone - kept) - {table.metadata_location}
        with self._lock:
            self._schedule(unreachable)
            if len(self._live) > CACHED_MANIFESTS:
                self._live.clear()
        return len(unreachable)

    def sweep(self, catalog, table_name: str, io) -> int:
        """Delete what is due; the orphan sweep when it is due too. Returns how many files were deleted."""
        now = self.clock()
        with self._lock:
            due = [path for path, when in self._due.items() if when <= now]
            for path in due:
                del self._due[path]
        for path in due:
            try:
                io.delete(path)
            except FileNotFoundError:
                pass
            except Exception as exc:  # noqa: BLE001 - left for the orphan sweep
                LOG.warning("could not delete %s: %s", path, exc.__class__.__name__)
        self.deleted += len(due)
        if self._last_orphans is None or now - self._last_orphans >= self.orphan_every:
            self._last_orphans = now
            moment = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
            found = remove_orphan_files(catalog, table_name, _dt.timedelta(seconds=self.orphan_age), now=moment)
            self.orphans_removed += len(found.orphans_removed)
        return len(due)

    @property
    def waiting(self) -> int:
        """Files known unneeded, not deleted yet (their grace is running)."""
        return len(self._due)

    def _schedule(self, paths) -> None:
        when = self.clock() + self.grace
        for path in paths:
            self._due.setdefault(path, when)


def _reachable(io, snapshots, live: dict) -> set[str]:
    """The manifest lists, manifests and live data files of ``snapshots`` (manifests' data files cached)."""
    found = set()
    for snapshot in snapshots:
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            found.add(manifest.manifest_path)
            files = live.get(manifest.manifest_path)
            if files is None:
                files = frozenset(entry.data_file.file_path
                                  for entry in manifest.fetch_manifest_entry(io, discard_deleted=True))
                live[manifest.manifest_path] = files
            found |= files
    return found
