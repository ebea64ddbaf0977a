"""Helpers for the Iceberg tests: synthetic lake rows, a PostgreSQL server, concurrent writer processes."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid as uuidlib
from collections import Counter

import pyarrow as pa
import pytest

from schemas.arrow import file_schema
from schemas.fields import COLUMNS, Column
from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.settings import IcebergTarget
from tests.support.okta import expected_row_keys, make_events

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
    return [sys.executable, "-m", "tests.support.iceberg_writer", spec, str(start), str(stop), str(chunk), str(at),
            run_id,
            path]


def lake_table(lake):
    """The Iceberg table a streaming test's run writes beside its lake (the embedded SQLite catalog)."""
    return load_catalog(IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))).load_table("okta.events")


def lake_table_keys(lake) -> Counter:
    """Each (uuid, target_index) of that table with its count; empty before the table exists."""
    try:
        arrow = lake_table(lake).scan(selected_fields=("uuid", "target_index")).to_arrow()
    except Exception:  # noqa: BLE001 - not created yet
        return Counter()
    return Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))


def wait_for_table(lake, events, process, log, timeout: float = 120) -> None:
    """Wait until the table holds every row of ``events``; fail at once if ``process`` exits."""
    want = set(expected_row_keys(events))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the streaming run exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if want <= set(lake_table_keys(lake)):
            return
        time.sleep(0.5)
    pytest.fail(f"after {timeout} s the Iceberg table has {len(want & set(lake_table_keys(lake)))} of {len(want)} rows")


def append_recent(server, count: int, salt: int, ago: dt.timedelta = dt.timedelta(seconds=1)) -> list:
    """``count`` events published from ``ago`` before now, 10 ms apart, appended to the System Log stand-in."""
    events = make_events(count, dt.datetime.now(dt.timezone.utc) - ago, dt.timedelta(milliseconds=10), salt=salt)
    server.append(events)
    return events


def feed_windows(server, lake, history, process, log, batches: int) -> list:
    """Append ``batches`` batches of 15 fresh events, each once the table holds the previous one (so each is a
    window of its own); return them."""
    appended: list = []
    for batch in range(batches):
        appended += append_recent(server, 15, salt=10 + batch, ago=dt.timedelta(seconds=2))
        wait_for_table(lake, history + appended, process, log)
    return appended
