"""Build small flattened tables for sink tests."""

from __future__ import annotations

import json

from transforms.decode import decode_batch
from transforms.flatten import Flattener
from transforms.records import RawBatch


def table_of(uuids, targets: int = 1, day: str = "2026-03-01",
             event_type: str = "personal.user.app_migration.export"):
    """A flattened table with one event per uuid and ``targets`` rows each."""
    lines = []
    for uuid in uuids:
        event = {"uuid": uuid, "published": f"{day}T10:00:00Z", "eventType": event_type,
                 "target": [{"id": f"t{i}"} for i in range(targets)]}
        lines.append(json.dumps(event).encode())
    events, dead, _, _ = decode_batch(RawBatch("t", "line", list(range(len(lines))), lines))
    assert not dead
    result = Flattener().flatten(events)
    [table] = result.tables.values()
    return table
