"""Stream dedupe on ``uuid`` within a bounded horizon.

Okta and Pub/Sub deliver at least once; a stream keeps the uuids it wrote in
the last ``--dedupe_horizon`` (default 24 h) and drops repeats before they
reach the lake. Memory is bounded by the events of one horizon. Past the
horizon a repeat is still caught when its window commits (insert-if-absent on
``uuid`` against the partition's files), so the lake stays exact; the state
only saves that work.

- :class:`RecentUuids`: the plain data structure (used by the loops without
  Beam state: the Okta tail and the local Pub/Sub loop), ~180 bytes per uuid.
- :class:`streaming.beam.DropRecentDuplicates`: the Beam form for the Pub/Sub graph
  (Dataflow): keyed by uuid, as Beam's own ``DeduplicatePerKey`` is, so each
  element touches one small state and one timer whatever the horizon (a
  state per partition holding every uuid would be rewritten whole on every
  bundle: O(horizon) per element). The timer forgets the uuid after the
  horizon; the ``duplicates`` counter counts what is dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import pyarrow as pa
import pyarrow.compute as pc

from transforms.records import RowBatch


class RecentUuids:
    """uuid -> when it was first kept, oldest first; entries older than the horizon are forgotten."""

    def __init__(self, horizon_seconds: float, clock=time.time):
        self.horizon = horizon_seconds
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        cutoff = now - self.horizon
        while self._seen:
            uuid, seen_at = next(iter(self._seen.items()))
            if seen_at >= cutoff:
                break
            del self._seen[uuid]

    def forget_expired(self) -> float | None:
        """Drop what is past the horizon; return when the oldest remaining entry expires (None: empty)."""
        self._expire(self._clock())
        if not self._seen:
            return None
        return next(iter(self._seen.values())) + self.horizon

    def keep_new(self, table: pa.Table) -> tuple[pa.Table, int]:
        """The rows whose uuid was not kept within the horizon, and how many events were dropped."""
        now = self._clock()
        self._expire(now)
        uuids = set(table.column("uuid").to_pylist())
        repeated = {u for u in uuids if u in self._seen}
        if repeated:
            table = table.filter(pc.invert(pc.is_in(table.column("uuid"), pa.array(list(repeated), pa.string()))))
        for uuid in uuids - repeated:
            self._seen[uuid] = now
        return table, len(repeated)


def split_by_uuid(batch: RowBatch):
    """(uuid, the rows of that event) for every event of a batch (an event's target rows stay together)."""
    uuids = batch.table.column("uuid").to_pylist()
    if len(set(uuids)) == 1:
        yield uuids[0], RowBatch(batch.partition, batch.table, 1)
        return
    rows_of: dict[str, list[int]] = {}
    for index, uuid in enumerate(uuids):
        rows_of.setdefault(uuid, []).append(index)
    for uuid, indices in rows_of.items():
        yield uuid, RowBatch(batch.partition, batch.table.take(indices), 1)
