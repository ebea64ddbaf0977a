"""The Iceberg table with its warehouse on gs:// and s3:// (embedded SQLite catalog), against the local stand-ins.

The warehouse's store is reached with the options the Hive lake already uses (Beam's S3 options,
``STORAGE_EMULATOR_HOST``); the table is read back with a pyiceberg scan and maintained.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.maintenance import file_count, referenced_files
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import snapshot_summaries
from storage import fs
from tests.support.helpers import run_command, run_pipeline, use_in_this_process, write_jsonl
from tests.support.okta import expected_row_keys, make_events, personal
from tests.support.reference import expected_rows


def _reference(events: list[dict]) -> dict:
    return {(e["uuid"], r["target_index"]): r for e in personal(events) for r in expected_rows(e)}


def _assert_table_exact(table, events: list[dict]) -> None:
    rows = table.scan().to_arrow().to_pylist()
    assert Counter((r["uuid"], r["target_index"]) for r in rows) == expected_row_keys(events)
    reference = _reference(events)
    for row in rows:
        expected = reference[(row["uuid"], row["target_index"])]
        for column in ("event_type", "published", "actor_id", "target_id", "client_ip_address", "outcome_result"):
            if column in expected:
                assert row[column] == expected[column], (column, row["uuid"], row[column], expected[column])


def test_a_warehouse_in_a_bucket_holds_the_runs_exactly_and_can_be_maintained(cloud, tmp_path, request):
    base, extra = cloud
    prefix = f"{base}/iceberg-{request.node.callspec.id}-{dt.datetime.now().strftime('%H%M%S%f')}"
    lake, warehouse = f"{prefix}/lake", f"{prefix}/warehouse"
    catalog_uri = f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}"
    iceberg = ["--iceberg_table=okta.events", f"--iceberg_catalog_uri={catalog_uri}",
               f"--iceberg_warehouse={warehouse}"]
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    first = make_events(120, start, dt.timedelta(minutes=20))  # crosses event dates
    second = make_events(60, start + dt.timedelta(minutes=7), dt.timedelta(minutes=40), salt=3)  # same partitions
    for name, events in (("a", first), ("b", second)):
        run = run_pipeline("--source=file", f"--input={write_jsonl(tmp_path / f'{name}.jsonl', events)}",
                           f"--output={lake}", *iceberg, *extra)
        assert run.code == 0, run.stderr

    use_in_this_process(extra)
    target = IcebergTarget("okta.events", "sqlite", catalog_uri, warehouse)
    table = load_catalog(target).load_table("okta.events")
    assert table.metadata_location.startswith(f"{warehouse}/okta/events/metadata/")
    assert len(snapshot_summaries(table)) == 2
    _assert_table_exact(table, first + second)
    assert all(task.file.file_path.startswith(f"{warehouse}/") for task in table.scan().plan_files())
    assert not list((tmp_path / "catalog").glob("*.parquet"))  # only the catalog file is local

    # Maintenance through the same settings, in its own process: compaction, expiry, and an orphan removed
    # from the bucket.
    files_before = file_count(table)
    orphan = f"{warehouse}/okta/events/data/orphan-{request.node.callspec.id}.parquet"
    fs.write_bytes(orphan, b"PAR1 not referenced")
    time.sleep(1.5)  # older than --retention and --orphan_age below
    done = run_command("maintain", "--iceberg_table=okta.events", f"--iceberg_catalog_uri={catalog_uri}",
                       f"--iceberg_warehouse={warehouse}", "--target_file_mb=1", "--retention=1s",
                       "--orphan_age=1s", "--run_id=maint-cloud", *extra)
    assert done.code == 0, done.stderr
    table = load_catalog(target).load_table("okta.events")
    assert file_count(table) < files_before
    # The two runs' snapshots expired; what is left is the maintenance run's one snapshot.
    assert [s["run-id"] for s in snapshot_summaries(table)] == ["maint-cloud"]
    assert not fs.exists(orphan)
    assert all(fs.exists(path) for path in referenced_files(table))
    _assert_table_exact(table, first + second)
