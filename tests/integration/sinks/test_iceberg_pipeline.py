"""``python -m pipeline --iceberg_table=...``: one snapshot per batch run, next to the lake; errors leave nothing."""

from __future__ import annotations

import json

import pytest

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import snapshot_summaries
from tests.support.helpers import personalize, read_lake, real_events, run_pipeline, write_jsonl
from tests.support.okta import TOKEN, make_events, recent_start


def _events(count: int, offset: int = 0) -> list[dict]:
    real = real_events()
    return [personalize(real[i % len(real)], offset + i) for i in range(count)]


def _table(lake):
    target = IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))
    return load_catalog(target).load_table("okta.events")


def _keys(arrow) -> list[tuple]:
    return sorted(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()),
                  key=lambda k: (k[0], -1 if k[1] is None else k[1]))


def test_a_batch_run_is_one_snapshot_holding_what_the_lake_holds(tmp_path):
    lake = tmp_path / "lake"
    first = write_jsonl(tmp_path / "in" / "a.jsonl", _events(40))
    run = run_pipeline("--input", str(first), "--output", str(lake), "--iceberg_table=okta.events",
                       "--run_id=run-1")
    assert run.code == 0, run.stderr
    assert "iceberg:" in run.stdout
    table = _table(lake)
    lake_rows = read_lake(lake)
    assert _keys(table.scan().to_arrow()) == [(r["uuid"], r["target_index"]) for r in lake_rows]
    [snapshot] = snapshot_summaries(table)
    assert snapshot["run-id"] == "run-1" and snapshot["source"] == "file"
    assert int(snapshot["rows-added"]) == len(lake_rows)
    iceberg_row = table.scan(row_filter=f"uuid == '{lake_rows[0]['uuid']}'").to_arrow().to_pylist()[0]
    assert iceberg_row["raw_event"] == lake_rows[0]["raw_event"]
    assert iceberg_row["event_type"] == lake_rows[0]["event_type"]

    # An overlapping second run: one more snapshot with only the new rows; a repeat adds no snapshot.
    second = write_jsonl(tmp_path / "in" / "b.jsonl", _events(60))
    assert run_pipeline("--input", str(second), "--output", str(lake), "--iceberg_table=okta.events",
                        "--run_id=run-2").code == 0
    assert run_pipeline("--input", str(second), "--output", str(lake), "--iceberg_table=okta.events",
                        "--run_id=run-3").code == 0
    table = _table(lake)
    assert [s["run-id"] for s in snapshot_summaries(table)] == ["run-1", "run-2"]
    assert _keys(table.scan().to_arrow()) == [(r["uuid"], r["target_index"]) for r in read_lake(lake)]


def _spread_events(days: int, types: int, per_partition: int) -> list[dict]:
    """Events over ``days`` days x ``types`` personal event types: one lake partition each."""
    import datetime as dt

    real, events, start = real_events(), [], dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    for day in range(days):
        for kind in range(types):
            for n in range(per_partition):
                i = len(events)
                event = personalize(real[i % len(real)], i, event_type=f"personal.test.kind{kind:02d}")
                event["published"] = (start + dt.timedelta(days=day, seconds=37 * n + kind)).strftime(
                    "%Y-%m-%dT%H:%M:%S.000Z")
                events.append(event)
    return events


@pytest.mark.parametrize("workers", [[], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]],
                         ids=["one-process", "two-worker-processes"])
def test_a_run_over_many_partitions_writes_per_partition_and_commits_once(tmp_path, workers):
    import duckdb

    lake = tmp_path / "lake"
    source = write_jsonl(tmp_path / "in" / "a.jsonl", _spread_events(days=20, types=5, per_partition=3))
    earlier = write_jsonl(tmp_path / "in" / "b.jsonl", _spread_events(days=1, types=5, per_partition=3))
    assert run_pipeline("--input", str(earlier), "--output", str(lake), "--iceberg_table=okta.events",
                        "--run_id=earlier").code == 0  # the first day's events: present before the run
    run = run_pipeline("--input", str(source), "--output", str(lake), "--iceberg_table=okta.events",
                       "--run_id=many", *workers)
    assert run.code == 0, run.stderr
    assert len(list(lake.glob("event_date=*/event_type=*"))) == 100

    table = _table(lake)
    iceberg = table.scan().to_arrow()  # noqa: F841 - DuckDB reads both by name
    columns = "uuid, target_index, published, event_type, actor_id, raw_event"
    lake_rows = duckdb.sql(f"SELECT {columns} FROM read_parquet('{lake}/event_date=*/*/*.parquet', "  # noqa: F841
                           "hive_partitioning = true)")
    assert duckdb.sql("SELECT count(*), count(DISTINCT (uuid, target_index)) FROM iceberg").fetchall() == (
        duckdb.sql("SELECT count(*), count(*) FROM lake_rows").fetchall())
    for a, b in (("iceberg", "lake_rows"), ("lake_rows", "iceberg")):
        assert duckdb.sql(f"SELECT {columns} FROM {a} EXCEPT ALL SELECT {columns} FROM {b}").fetchall() == []

    earlier_run, this_run = snapshot_summaries(table)  # the run is ONE snapshot
    assert earlier_run["run-id"] == "earlier" and this_run["run-id"] == "many"
    assert int(this_run["rows-added"]) == len(read_lake(lake)) - int(earlier_run["rows-added"])
    assert int(this_run["rows-already-present"]) == int(earlier_run["rows-added"])
    files = list(table.scan(snapshot_id=this_run["snapshot_id"]).plan_files())
    # One data file per partition, each written by its own WriteIcebergFiles element.
    assert len(files) == 100 and len({f.file.partition for f in files}) == 100


def test_an_incremental_okta_run_records_its_cursor_in_the_snapshot(okta_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)
    server = okta_server(make_events(200, recent_start(hours_back=2), __import__("datetime").timedelta(seconds=1)))
    lake, state = tmp_path / "lake", tmp_path / "cursor.json"
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
                       "--lookback=1d", "--iceberg_table=okta.events")
    assert run.code == 0, run.stderr
    [snapshot] = snapshot_summaries(_table(lake))
    assert snapshot["source"] == "okta"
    assert json.loads(snapshot["cursor"])["next_url"] == json.loads(state.read_text())["next_url"]
    assert TOKEN not in json.dumps(snapshot)


@pytest.mark.parametrize("extra, expected", [
    (["--iceberg_catalog=sql", "--iceberg_catalog_uri=postgresql://lake@127.0.0.1:9/okta",
      "--iceberg_warehouse=WAREHOUSE"], "cannot open the Iceberg catalog"),
    (["--iceberg_catalog=rest", "--iceberg_catalog_uri=http://127.0.0.1:9/catalog"], "cannot open the Iceberg catalog"),
])
def test_an_unreachable_catalog_is_one_line_and_exit_1_with_the_lake_untouched(tmp_path, extra, expected):
    lake = tmp_path / "lake"
    source = write_jsonl(tmp_path / "in" / "a.jsonl", _events(10))
    extra = [e.replace("WAREHOUSE", str(tmp_path / "wh")) for e in extra]
    run = run_pipeline("--input", str(source), "--output", str(lake), "--iceberg_table=okta.events", *extra)
    assert run.code == 1
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], run.stderr
    assert not lake.exists() or not list(lake.rglob("*.parquet"))


def test_a_table_whose_schema_conflicts_stops_the_run_before_anything_is_written(tmp_path):
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    lake = tmp_path / "lake"
    catalog = load_catalog(IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg")))
    catalog.create_namespace("okta")
    catalog.create_table("okta.events", schema=Schema(NestedField(1, "uuid", LongType(), required=True)))
    source = write_jsonl(tmp_path / "in" / "a.jsonl", _events(10))
    run = run_pipeline("--input", str(source), "--output", str(lake), "--iceberg_table=okta.events")
    assert run.code == 1
    assert "column uuid is long, the pipeline writes string" in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1
    assert not list(lake.rglob("event_date=*"))
    assert _table(lake).current_snapshot() is None


def test_bad_iceberg_options_are_reported_before_anything_starts(tmp_path):
    source = write_jsonl(tmp_path / "in" / "a.jsonl", _events(2))
    run = run_pipeline("--input", str(source), "--output", str(tmp_path / "lake"), "--iceberg_table=events",
                       "--iceberg_catalog=sql")
    assert run.code == 2
    assert "--iceberg_table must look like NAMESPACE.TABLE" in run.stderr
    assert "--iceberg_catalog=sql needs --iceberg_catalog_uri" in run.stderr


def test_the_documented_columns_and_day_query_are_the_tables(tmp_path):
    """docs/iceberg.md lists the table's columns (no event_date) and queries one day by published: both hold for
    the table a run creates."""
    import datetime as dt
    import re

    from tests.support.helpers import REPO

    lake, doc = tmp_path / "lake", (REPO / "docs" / "iceberg.md").read_text()
    events = make_events(48, dt.datetime(2026, 11, 4, 12, tzinfo=dt.timezone.utc), dt.timedelta(hours=1),
                         personal_every=1)  # noon Nov 4 to 11:00 Nov 6, UTC
    run = run_pipeline("--input", str(write_jsonl(tmp_path / "in" / "a.jsonl", events)), "--output", str(lake),
                       "--iceberg_table=okta.events")
    assert run.code == 0, run.stderr
    table = _table(lake)

    section = doc[doc.index("## The table"):doc.index("## One run, one snapshot")]
    documented = []
    for row in re.findall(r"^\| (`.+?) \| (.+?) \|$", section, re.M):
        kind, required = row[1].split()[0].rstrip(","), "required" in row[1]
        documented += [(name, kind, required) for name in re.findall(r"`([a-z_]+)`", row[0])]
    actual = [(f.name, str(f.field_type), f.required) for f in table.schema().fields]
    assert documented == actual
    assert "event_date" not in [name for name, _, _ in actual]

    [day_filter] = re.findall(r'row_filter="(published >= [^"]+)"', doc)
    day = dt.date.fromisoformat(re.search(r"'(\d{4}-\d\d-\d\d)T", day_filter).group(1))
    assert day == dt.date(2026, 11, 5)
    scan = table.scan(row_filter=day_filter)
    assert {task.file.partition[0] for task in scan.plan_files()} == {(day - dt.date(1970, 1, 1)).days}
    rows = scan.to_arrow()
    want = [r for r in read_lake(lake) if r["event_date"] == day.isoformat()]
    assert want and _keys(rows) == [(r["uuid"], r["target_index"]) for r in want]
