"""This process's compaction of the Hive lake while a stream runs: which partitions, and how often (no Beam).

The streaming paths hand every committed window to :meth:`LakeCompactor.after_window`
(:mod:`streaming.commit`). It notes the partitions the window wrote and, at most every
``every`` seconds, makes a pass: for a bounded number of the partitions it knows of, oldest
first, it finishes interrupted compactions and rewrites what is due
(:func:`sinks.lake.compaction.compact_partition`). It knows the partitions its process wrote,
and, at its first pass and every ``rescan_every`` seconds after, every partition of the lake
holding window or hour files or a compaction journal (left by another process, or a killed
one). A partition stays known while a later pass may find work in it (its day is not closed).

Several processes may compact one lake: each partition is rewritten under its commit lease, and a
partition whose lease is taken is left for the next pass.

A stream's compactor runs its passes in a thread of its own (``background``; one pass at a time), so a
pass that reads and writes a few dozen files on a bucket never delays the next window: the window's
commit of a partition only waits for the lease when the pass is rewriting that very partition. A
process that exits mid-pass leaves what a ``kill -9`` would (finished by the next compaction).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sinks.lake.compaction import JOURNAL_DIR, TARGET_ROWS, PartitionReport, compact_partition
from sinks.lake.compaction_plan import Rules
from storage import fs

PASS_EVERY_SECONDS = 60.0
RESCAN_EVERY_SECONDS = 3600.0
MAX_PARTITIONS_PER_PASS = 50  # a pass lists at most this many partitions (one listing each)
MAX_GROUPS_PER_PASS = 20  # and rewrites at most this many groups: the rest waits for the next pass


@dataclass
class PassReport:
    """What one pass over the lake did."""

    partitions: int = 0  # partitions looked at
    groups: int = 0
    files_read: int = 0
    files_written: int = 0
    rows: int = 0
    duplicates: int = 0
    recovered: int = 0
    busy: list = field(default_factory=list)

    def add(self, done: PartitionReport) -> None:
        self.partitions += 1
        self.groups += done.groups
        self.files_read += done.files_read
        self.files_written += done.files_written
        self.rows += done.rows
        self.duplicates += done.duplicates
        self.recovered += done.recovered
        if done.busy:
            self.busy.append(done.partition)

    @property
    def changed(self) -> bool:
        return bool(self.groups or self.recovered)

    def render(self) -> str:
        text = f"lake compacted: {self.files_read:,} file(s) -> {self.files_written:,} ({self.rows:,} rows)"
        if self.recovered:
            text += f"; finished {self.recovered} interrupted compaction(s)"
        if self.duplicates:
            text += f"; dropped {self.duplicates:,} duplicate row(s)"
        return text


def discover(lake: str) -> list[str]:
    """Every partition holding streaming window or hour files, or an interrupted compaction's journal."""
    found = set()
    for path in fs.list_files(fs.join(lake, "event_date=*", "event_type=*", "part-[wh]*.parquet")):
        found.add("/".join(path.rsplit("/", 3)[1:3]))
    for path in fs.list_files(fs.join(lake, JOURNAL_DIR, "event_date=*", "event_type=*", "*.json")):
        found.add("/".join(path.rsplit("/", 3)[1:3]))
    return sorted(found)


class LakeCompactor:
    """Compaction passes over one lake, as a stream's windows are committed (see the module doc)."""

    def __init__(self, lake: str, owner: str, clock=time.time, rules: Rules = Rules(), *,
                 target_rows: int = TARGET_ROWS, every: float = PASS_EVERY_SECONDS,
                 rescan_every: float = RESCAN_EVERY_SECONDS, max_partitions: int = MAX_PARTITIONS_PER_PASS,
                 max_groups: int = MAX_GROUPS_PER_PASS, compression: str = fs.PARQUET_COMPRESSION,
                 background: bool = False):
        self.lake, self.owner, self.clock, self.rules = lake, owner, clock, rules
        self.target_rows, self.every, self.rescan_every = target_rows, every, rescan_every
        self.max_partitions, self.max_groups, self.compression = max_partitions, max_groups, compression
        self.background = background
        self._worker: threading.Thread | None = None
        self._known: dict[str, None] = {}  # partitions in the order they are looked at
        self._noted: set[str] = set()  # partitions a window wrote since the pass under way took its list
        self._last_pass: float | None = None
        self._last_scan: float | None = None
        self._lock = threading.Lock()  # one pass at a time
        # Guards _known and _noted only, never held through a pass: a window noting its partitions never waits.
        self._known_lock = threading.Lock()

    def note(self, partitions) -> None:
        with self._known_lock:
            for partition in partitions:
                self._known.setdefault(partition, None)
                self._noted.add(partition)

    def after_window(self, partitions, done: Callable[[PassReport | Exception], None] | None = None) -> None:
        """Note a committed window's partitions; make a pass if one is due, then ``done(report)`` (or
        ``done(exception)`` when the pass failed), in this thread or, with ``background``, in the compactor's."""
        self.note(partitions)
        if not self.background:
            self._pass_then(done)
            return
        if (self._worker is not None and self._worker.is_alive()) or not self._due(self.clock()):
            return
        self._worker = threading.Thread(target=self._pass_then, args=(done,), name="lake-compaction", daemon=True)
        self._worker.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the background pass under way (if any) is over."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _pass_then(self, done) -> None:
        try:
            report = self.run()
        except Exception as exc:  # noqa: BLE001 - handed to ``done``: a failed pass is left for the next
            report = exc
        if done is not None and report is not None:
            done(report)

    def _due(self, now: float) -> bool:
        return self._last_pass is None or now - self._last_pass >= self.every

    def run(self, force: bool = False) -> PassReport | None:
        """A pass, if ``every`` seconds went by since the last (or ``force``) and no other thread is in one."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            now = self.clock()
            if not force and not self._due(now):
                return None
            self._last_pass = now
            found = None
            if self._last_scan is None or now - self._last_scan >= self.rescan_every:
                self._last_scan = now
                found = discover(self.lake)
            with self._known_lock:
                for partition in found or ():
                    self._known.setdefault(partition, None)
                chosen = list(self._known)[:self.max_partitions]
                self._noted.clear()
            report = PassReport()
            for partition in chosen:
                budget = self.max_groups - report.groups
                if budget <= 0:
                    break
                done = compact_partition(self.lake, partition, now, self.rules, target_rows=self.target_rows,
                                         owner=self.owner, max_groups=budget, compression=self.compression)
                report.add(done)
                with self._known_lock:
                    del self._known[partition]
                    if done.waiting or partition in self._noted:
                        self._known[partition] = None  # looked at again after the others
            return report
        finally:
            self._lock.release()

    @property
    def known(self) -> list[str]:
        with self._known_lock:
            return list(self._known)


_COMPACTORS: dict[str, LakeCompactor] = {}
_LOCK = threading.Lock()


def compactor(lake: str, owner: str, **options) -> LakeCompactor:
    """This process's compactor of ``lake`` (made on first use, with ``options``; later calls get the same one)."""
    with _LOCK:
        if lake not in _COMPACTORS:
            _COMPACTORS[lake] = LakeCompactor(lake, owner, **options)
        return _COMPACTORS[lake]
