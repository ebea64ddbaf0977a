"""Helpers for the Iceberg tests: synthetic lake rows, a PostgreSQL server, concurrent writer processes."""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib

import pyarrow as pa

from schemas.arrow import file_schema
from schemas.fields import COLUMNS, Column

TYPES = ("personal.admin.configuration.update", "personal.user.app_migration.export")
DAY = dt.datetime(2026, 11, 5, tzinfo=dt.timezone.utc)


def event_uuid(i: int) -> str:
    return str(uuidlib.UUID(int=i + 1))


def make_rows(indexes, day: dt.datetime = DAY, columns: tuple[Column, ...] = COLUMNS) -> pa.Table:
    """Two rows (targets 0 and 1) per event index; event i is published i seconds after ``day`` starts."""
    names = [c.name for c in columns]
    data = {name: [] for name in names}
    data["event_type"] = []
    for i in indexes:
        for target in (0, 1):
            row = {"uuid": event_uuid(i), "published": day + dt.timedelta(seconds=i),
                   "target_index": target, "actor_id": f"actor-{i}", "target_id": f"t-{i}-{target}",
                   "raw_event": json.dumps({"uuid": event_uuid(i)}), "severity": "INFO",
                   "security_context_is_proxy": False}
            for name in names:
                data[name].append(row.get(name))
            data["event_type"].append(TYPES[i % 2])
    schema = pa.schema([f for f in file_schema() if f.name in names] + [pa.field("event_type", pa.string())])
    return pa.table(data, schema=schema)


def writer_command(target, start: int, stop: int, chunk: int, at: float, run_id: str,
                   path: str = "rows") -> list[str]:
    """A separate writer process committing events [start, stop) in chunks, starting at time ``at``.

    ``path``: ``rows`` (``commit_rows``) or ``files`` (data files written, then one commit).
    """
    import json
    import sys

    spec = json.dumps({"table": target.table, "catalog": target.catalog, "uri": target.uri,
                       "warehouse": target.warehouse})
    return [sys.executable, "-m", "tests.iceberg_writer", spec, str(start), str(stop), str(chunk), str(at), run_id,
            path]
