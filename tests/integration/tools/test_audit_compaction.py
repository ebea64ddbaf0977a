"""The audit reads a lake a stream is compacting: a file compacted away between the listing and its read makes the
partition be listed and read again, so no row is missed (a false "missing") and none is counted twice."""

from __future__ import annotations

import datetime as dt
import json

from sinks.lake import compaction
from sinks.lake.compaction_plan import Rules
from storage import fs
from streaming.window_buffer import WindowBuffer
from tests.support.helpers import window_settings
from tests.support.okta import make_events, personal
from tools.audit import held
from tools.audit.hours import floor_hour
from transforms.records import RawBatch

START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
WINDOW = 600.0
RULES = Rules(settle=300.0, fold_at=4)


def test_a_partition_compacted_while_the_audit_reads_it_is_read_again_whole(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    settings = window_settings(lake)
    sent = []
    for n in range(4):  # four windows of the first hour: four files per partition
        at = START + n * WINDOW
        events = make_events(3, dt.datetime.fromtimestamp(at, dt.timezone.utc), dt.timedelta(seconds=1), salt=n)
        buffer = WindowBuffer(settings, clock=lambda at=at: at)
        buffer.open(at)
        buffer.take(RawBatch("page", "page", [1], [json.dumps(events).encode()]))
        buffer.commit("okta")
        sent += personal(events)
    hour = floor_hour(dt.datetime.fromtimestamp(START, dt.timezone.utc))
    original = fs.parquet_file
    compacted = []

    def compact_first(path):  # the stream's compaction runs right after the audit listed the partition
        if not compacted:
            partition = path[len(str(lake)) + 1:].rsplit("/", 1)[0]
            compacted.append(compaction.compact_partition(str(lake), partition, START + 2 * 3600, RULES))
        return original(path)

    monkeypatch.setattr(fs, "parquet_file", compact_first)
    found = held.read_lake(str(lake), {hour}, lambda event_type: event_type.startswith("personal."))

    assert compacted and compacted[0].groups == 1 and compacted[0].files_read == 4
    got = {uuid for (_, _, _), uuids in found.uuids.items() for uuid in uuids}
    assert got == {e["uuid"] for e in sent}
    assert not found.doubled
