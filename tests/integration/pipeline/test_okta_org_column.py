"""The okta_org column: filled by --okta_org for files, and lakes / tables made before it keep working.

An "old" lake file is a file the pipeline wrote, rewritten without the okta_org column (exactly what a
release before the column wrote). Readers that union by name (DuckDB ``union_by_name``, pyarrow with
the current schema) see null for those rows; BigQuery gets the column by a schema update; Iceberg by
its schema evolution.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from schemas.arrow import file_schema, partition_schema
from schemas.bigquery import bigquery_schema
from schemas.fields import COLUMNS
from sinks.bigquery.settings import BigQueryTarget
from tests.support.helpers import run_pipeline, write_jsonl
from tests.support.okta import make_events, personal

HOST = "acme.okta.com"


def _strip_org(lake: Path) -> int:
    """Rewrite every lake file without okta_org, as a release before the column wrote it."""
    count = 0
    for path in lake.glob("event_date=*/event_type=*/*.parquet"):
        table = pq.read_table(path, partitioning=None)
        pq.write_table(table.drop_columns(["okta_org"]), path)
        count += 1
    return count


def _old_and_new_lake(tmp_path: Path) -> tuple[Path, list[dict], list[dict]]:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=1)
    events = make_events(120, start, dt.timedelta(minutes=3))
    old, new = events[:60], events[60:]
    lake = tmp_path / "lake"
    run = run_pipeline("--source=file", f"--input={write_jsonl(tmp_path / 'old.jsonl', old)}", f"--output={lake}")
    assert run.code == 0, run.stderr
    assert _strip_org(lake) > 0
    run = run_pipeline("--source=file", f"--input={write_jsonl(tmp_path / 'new.jsonl', new)}", f"--output={lake}",
                       f"--okta_org={HOST}")
    assert run.code == 0, run.stderr
    return lake, personal(old), personal(new)


def test_the_column_is_last_and_optional():
    assert COLUMNS[-1].name == "okta_org" and not COLUMNS[-1].required
    assert file_schema(raw_event=False).names[-1] == "okta_org"
    assert bigquery_schema()[len(COLUMNS) - 1]["name"] == "okta_org"


def test_old_files_read_as_null_with_duckdb_and_pyarrow(tmp_path):
    lake, old, new = _old_and_new_lake(tmp_path)
    old_uuids, new_uuids = {e["uuid"] for e in old}, {e["uuid"] for e in new}

    glob = f"{lake}/event_date=*/event_type=*/*.parquet"
    rows = duckdb.sql(f"SELECT uuid, okta_org FROM read_parquet('{glob}', hive_partitioning=true, "
                      "union_by_name=true)").fetchall()
    by_org: dict = {}
    for uuid, org in rows:
        by_org.setdefault(org, set()).add(uuid)
    assert by_org == {None: old_uuids, HOST: new_uuids}

    # pyarrow: give the dataset today's schema, so a first file without the column does not drop it.
    schema = pa.unify_schemas([file_schema(), partition_schema()])
    table = ds.dataset(str(lake), format="parquet", partitioning="hive", schema=schema).to_table(
        columns=["uuid", "okta_org"])
    got = {(u, o) for u, o in zip(table.column("uuid").to_pylist(), table.column("okta_org").to_pylist())}
    assert got == {(u, None) for u in old_uuids} | {(u, HOST) for u in new_uuids}


def test_an_old_bigquery_table_gets_the_column_by_alter_table(bigquery_emulator, tmp_path):
    from google.cloud import bigquery

    spec = "okta-lake-test:okta.events_org_migration"
    target = BigQueryTarget(spec, True, bigquery_emulator)
    client = target.client()
    client.create_dataset("okta-lake-test.okta", exists_ok=True)
    old_fields = [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in bigquery_schema()
                  if f["name"] != "okta_org"]
    client.create_table(bigquery.Table(target.table_id, schema=old_fields))

    lake, old, new = _old_and_new_lake(tmp_path)
    # A file run with BigQuery merges every file of the partitions it touches: the old files too.
    export = write_jsonl(tmp_path / "again.jsonl", new)
    run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}", f"--okta_org={HOST}",
                       f"--bigquery_table={spec}", f"--bigquery_endpoint={bigquery_emulator}")
    assert run.code == 0, run.stderr
    # (bqemulator applies ALTER TABLE to its storage but not to the metadata get_table shows: query instead.)
    got = {(r["uuid"], r["okta_org"]) for r in client.query(
        f"SELECT uuid, okta_org FROM `{target.table_id}`").result()}
    new_uuids = {e["uuid"] for e in new}
    assert {(u, HOST) for u in new_uuids} <= got
    assert {u for u, o in got if o is None} == {e["uuid"] for e in old} & {u for u, _ in got}
    assert not {u for u, o in got if o is None} & new_uuids


def test_a_bad_okta_org_is_refused_before_anything_starts(tmp_path):
    export = write_jsonl(tmp_path / "x.jsonl", [])
    run = run_pipeline("--source=file", f"--input={export}", f"--output={tmp_path / 'lake'}",
                       "--okta_org=https://acme.okta.com")
    assert run.code == 2 and "--okta_org must be the org's host name" in run.stderr


@pytest.mark.parametrize("attributes,expected", [({"okta_org": "Beta.Okta.com"}, "beta.okta.com"), ({}, None)])
def test_a_pubsub_message_attribute_names_the_org(attributes, expected):
    from types import SimpleNamespace

    from sources.pubsub.messages import message_batch
    from transforms.decode import decode_batch

    message = SimpleNamespace(message_id="1", attributes=attributes, data=b'{"uuid": "u1", "eventType": '
                              b'"personal.x", "published": "2026-11-01T00:00:00Z"}')
    batch = message_batch(message, "projects/p/subscriptions/s")
    assert batch.org == expected
    decoded = decode_batch(batch, org="fallback.okta.com")
    assert decoded.events[0].org == (expected or "fallback.okta.com")


def test_an_old_iceberg_table_evolves_to_hold_the_column(tmp_path):
    pytest.importorskip("pyiceberg")
    from sinks.iceberg.catalog import load_catalog
    from sinks.iceberg.commit import commit_rows
    from sinks.iceberg.settings import IcebergTarget
    from sinks.iceberg.table import open_table
    from tests.support.iceberg import event_uuid, make_rows

    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))
    catalog = load_catalog(target)
    older = tuple(c for c in COLUMNS if c.name != "okta_org")
    commit_rows(catalog, target, make_rows(range(3), columns=older), columns=older)
    assert "okta_org" not in catalog.load_table("okta.events").schema().column_names

    open_table(catalog, target)  # today's schema: adds okta_org as an optional column
    rows = make_rows(range(3, 5))
    rows = rows.set_column(rows.schema.get_field_index("okta_org"), "okta_org", pa.array([HOST] * rows.num_rows))
    commit_rows(catalog, target, rows)
    arrow = catalog.load_table("okta.events").scan().to_arrow()
    got = dict(zip(arrow.column("uuid").to_pylist(), arrow.column("okta_org").to_pylist()))
    assert got == {**{event_uuid(i): None for i in range(3)}, **{event_uuid(i): HOST for i in range(3, 5)}}
