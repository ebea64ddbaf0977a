"""Stream dedupe on ``uuid`` within a bounded horizon.

Okta and Pub/Sub deliver at least once; a stream keeps the uuids it wrote in
the last ``--dedupe_horizon`` (default 24 h) and drops repeats before they
reach the lake. Memory is bounded by the events of one horizon. Past the
horizon a repeat is still caught when its window commits (insert-if-absent on
``uuid`` against the partition's files), so the lake stays exact; the state
only saves that work.

- :class:`RecentUuids`: the plain data structure (used by the loops without
  Beam state: the Okta tail and the local Pub/Sub loop), ~180 bytes per uuid.
- :class:`DropRecentDuplicates`: the Beam form for the Pub/Sub path: a
  stateful DoFn keyed by partition; a processing-time timer, armed once per
  partition and re-armed while entries remain, forgets uuids past the horizon
  and clears the partition's state once it is empty.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.coders import PickleCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain

from transforms.metrics import counter
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


class _DropRecentDuplicatesFn(beam.DoFn):
    SEEN = userstate.ReadModifyWriteStateSpec("seen", PickleCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.REAL_TIME)

    def __init__(self, horizon_seconds: float):
        self.horizon = horizon_seconds

    def setup(self):
        self._duplicates = counter("duplicates")
        self._duplicates_in_run = counter("duplicates_in_run")

    def process(self, element, seen=beam.DoFn.StateParam(SEEN), expiry=beam.DoFn.TimerParam(EXPIRY)):
        _, batch = element
        recent = seen.read()
        if recent is None:
            recent = RecentUuids(self.horizon)
            # Armed once per key, not per element: the timer re-arms itself while entries remain.
            expiry.set(time.time() + self.horizon)
        table, repeated = recent.keep_new(batch.table)
        seen.write(recent)
        if repeated:
            self._duplicates.inc(repeated)
            self._duplicates_in_run.inc(repeated)
        if table.num_rows:
            yield RowBatch(batch.partition, table, batch.events - repeated)

    @userstate.on_timer(EXPIRY)
    def expire(self, seen=beam.DoFn.StateParam(SEEN), expiry=beam.DoFn.TimerParam(EXPIRY)):
        recent = seen.read()
        next_expiry = recent.forget_expired() if recent is not None else None
        if next_expiry is None:
            seen.clear()  # the partition has been quiet for a whole horizon: nothing is kept for it
            return
        seen.write(recent)
        expiry.set(next_expiry + 1.0)


class DropRecentDuplicates(beam.PTransform):
    """``RowBatch`` -> ``RowBatch`` without the events already kept within the horizon (per partition)."""

    def __init__(self, horizon_seconds: float):
        super().__init__()
        self.horizon = horizon_seconds

    def expand(self, rows):
        return (
            rows
            | "KeyByPartition" >> beam.Map(lambda batch: (batch.partition.path(), batch))
            | "DropRecentDuplicates" >> beam.ParDo(_DropRecentDuplicatesFn(self.horizon)).with_output_types(RowBatch)
        )
