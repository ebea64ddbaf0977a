"""The Iceberg table: schema from schemas/fields.py, evolution, insert-if-absent under concurrency, readers."""

from __future__ import annotations

import json
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from schemas.fields import COLUMNS, DOCUMENTED_FIELDS
from sinks.iceberg import commit as iceberg_commit
from sinks.iceberg import table as iceberg_table
from sinks.iceberg.catalog import IcebergConfigError, load_catalog
from sinks.iceberg.commit import commit_rows
from sinks.iceberg.settings import IcebergTarget, problems_of
from sinks.iceberg.table import open_table, snapshot_summaries
from tests.support.helpers import REPO
from tests.support.iceberg import TYPES, event_uuid, make_rows, writer_command


@pytest.fixture
def sqlite_target(tmp_path):
    return IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))


@pytest.fixture
def postgres_target(postgres, tmp_path, request):
    database = "t" + str(abs(hash(request.node.name)))[:10]
    postgres.psql(f"CREATE DATABASE {database};")
    uri = postgres.get_uri(database)
    return IcebergTarget("okta.events", "sql", uri, str(tmp_path / "warehouse"))


def keys(table) -> list[tuple]:
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    return sorted(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))


def test_table_is_derived_from_the_schema_module(sqlite_target):
    catalog = load_catalog(sqlite_target)
    commit_rows(catalog, sqlite_target, make_rows(range(10)), {"run-id": "r1"})
    table = catalog.load_table("okta.events")
    schema = table.schema()
    assert [f.name for f in schema.fields] == [c.name for c in COLUMNS] + ["event_type"]
    assert [f.field_id for f in schema.fields] == list(range(1, len(COLUMNS) + 2))
    for column in COLUMNS:
        assert schema.find_field(column.name).doc == column.description
    assert schema.find_field("uuid").required and not schema.find_field("actor_id").required
    assert [str(f.transform) for f in table.spec().fields] == ["day", "identity"]
    assert [schema.find_column_name(f.source_id) for f in table.sort_order().fields] == [
        "published", "uuid", "target_index"]
    assert table.properties["write.parquet.compression-codec"] == "zstd"
    files = [task.file.file_path for task in table.scan().plan_files()]
    assert len(files) == 2  # one per event type, same day
    for path in files:
        metadata = pq.ParquetFile(path.removeprefix("file://")).metadata
        assert metadata.row_group(0).column(0).compression == "ZSTD"
        published = pq.read_table(path.removeprefix("file://"), columns=["published"]).column(0).to_pylist()
        assert published == sorted(published)
        assert "published_day=2026-11-05" in path


def test_a_new_documented_field_evolves_the_table(sqlite_target):
    catalog = load_catalog(sqlite_target)
    dropped = DOCUMENTED_FIELDS[-1]  # as if transaction.id had not been documented yet
    older = tuple(c for c in COLUMNS if c is not dropped)
    commit_rows(catalog, sqlite_target, make_rows(range(4), columns=older), columns=older)
    before = catalog.load_table("okta.events").schema()
    assert dropped.name not in [f.name for f in before.fields]

    table = open_table(catalog, sqlite_target)  # the full schema of today
    after = table.schema()
    added = after.find_field(dropped.name)
    assert not added.required and added.doc == dropped.description
    assert added.field_id == max(f.field_id for f in before.fields) + 1
    for field in before.fields:  # nothing renumbered
        assert after.find_field(field.name).field_id == field.field_id
    rows = make_rows(range(4, 6))
    rows = rows.set_column(rows.schema.get_field_index(dropped.name), dropped.name,
                           rows.column(dropped.name).fill_null("tx"))
    commit_rows(catalog, sqlite_target, rows)
    arrow = catalog.load_table("okta.events").scan().to_arrow().sort_by("uuid")
    values = dict(zip(arrow.column("uuid").to_pylist(), arrow.column(dropped.name).to_pylist()))
    assert [values[event_uuid(i)] for i in range(6)] == [None] * 4 + ["tx"] * 2


def test_two_runs_adding_the_same_new_column_at_once_both_succeed(sqlite_target, monkeypatch):
    """A run that loaded the table before another run added the new column: its own change loses the race
    (the schema it started from is gone), so it looks again and finds the column there."""
    dropped = DOCUMENTED_FIELDS[-1]
    older = tuple(c for c in COLUMNS if c is not dropped)
    commit_rows(load_catalog(sqlite_target), sqlite_target, make_rows(range(4), columns=older), columns=older)
    mine = load_catalog(sqlite_target)
    stale, real_load = mine.load_table("okta.events"), mine.load_table
    loads = [stale]  # what this run had loaded when the other one committed its change
    monkeypatch.setattr(mine, "load_table", lambda name: loads.pop() if loads else real_load(name))

    other = open_table(load_catalog(sqlite_target), sqlite_target)
    table = open_table(mine, sqlite_target)
    assert [f.name for f in table.schema().fields] == [f.name for f in other.schema().fields]
    assert table.schema().find_field(dropped.name).field_id == other.schema().find_field(dropped.name).field_id
    assert len(table.metadata.schemas) == 2  # the first schema and the other run's change, nothing more


def test_a_table_whose_schema_conflicts_is_refused_untouched(sqlite_target):
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    catalog = load_catalog(sqlite_target)
    catalog.create_namespace("okta")
    catalog.create_table("okta.events", schema=Schema(NestedField(1, "uuid", LongType(), required=True)))
    with pytest.raises(IcebergConfigError, match="column uuid is long, the pipeline writes string"):
        commit_rows(catalog, sqlite_target, make_rows(range(3)))
    table = catalog.load_table("okta.events")
    assert table.current_snapshot() is None and [f.name for f in table.schema().fields] == ["uuid"]


def test_insert_if_absent_and_the_snapshot_summary(sqlite_target):
    catalog = load_catalog(sqlite_target)
    first = commit_rows(catalog, sqlite_target, make_rows(range(0, 10)), {"run-id": "r1", "source": "file"})
    again = commit_rows(catalog, sqlite_target, make_rows(range(0, 10)), {"run-id": "r2"})
    overlap = commit_rows(catalog, sqlite_target, make_rows(range(5, 15)),
                          {"run-id": "r3", "source": "okta", "cursor": {"next": "https://x/api/v1/logs?after=1"}})
    assert (first.rows_added, again.rows_added, overlap.rows_added) == (20, 0, 10)
    assert again.snapshot_id == first.snapshot_id  # nothing new: no snapshot
    table = catalog.load_table("okta.events")
    assert keys(table) == sorted((event_uuid(i), t) for i in range(15) for t in (0, 1))
    summaries = snapshot_summaries(table)
    assert [s["run-id"] for s in summaries] == ["r1", "r3"]
    assert summaries[1]["rows-added"] == "10" and summaries[1]["rows-already-present"] == "10"
    assert summaries[1]["events-added"] == "5" and summaries[0]["source"] == "file"
    assert json.loads(summaries[1]["cursor"]) == {"next": "https://x/api/v1/logs?after=1"}


def test_pyicebergs_own_retry_does_not_recheck_but_ours_does(sqlite_target, monkeypatch):
    """The interleaving that breaks a naive check-then-append, made deterministic in one process."""
    catalog = load_catalog(sqlite_target)
    commit_rows(catalog, sqlite_target, make_rows(range(0, 2)))
    # Naive: check against a snapshot, another writer commits the same event, append (pyiceberg retries it).
    stale = catalog.load_table("okta.events")
    fresh_rows, _ = iceberg_commit.absent_rows(stale, iceberg_table.to_table_rows(make_rows(range(2, 4)), stale),
                                               stale.current_snapshot().snapshot_id)
    commit_rows(catalog, sqlite_target, make_rows(range(2, 4)))
    stale.append(fresh_rows)  # pyiceberg: "concurrent update, retrying", and it lands without a re-check
    assert len(keys(catalog.load_table("okta.events"))) == 4 + 4 + 4  # duplicated

    # Ours: the same interleaving inside commit_rows is caught and re-checked.
    real = iceberg_commit.absent_rows
    calls = []

    def check_then_someone_commits(table, rows, snapshot_id):
        result = real(table, rows, snapshot_id)
        if not calls:
            calls.append(1)
            monkeypatch.setattr(iceberg_commit, "absent_rows", real)
            commit_rows(catalog, sqlite_target, make_rows(range(10, 14)), {"run-id": "other"})
            monkeypatch.setattr(iceberg_commit, "absent_rows", check_then_someone_commits)
        return result

    monkeypatch.setattr(iceberg_commit, "absent_rows", check_then_someone_commits)
    result = commit_rows(catalog, sqlite_target, make_rows(range(10, 16)), {"run-id": "mine"})
    assert result.attempts == 2 and result.rows_added == 4
    table = catalog.load_table("okta.events")
    assert [k for k in keys(table) if k[0] in {event_uuid(i) for i in range(10, 16)}] == sorted(
        (event_uuid(i), t) for i in range(10, 16) for t in (0, 1))


def _concurrent_writers(target, writers: int = 4, path: str = "rows"):
    # Nothing is created beforehand: the writers create the catalog's tables, the namespace and the table too.
    at = time.time() + 3.0
    # Overlapping input: writer w commits events [w*25, w*25 + 100) in chunks of 20.
    processes = [subprocess.Popen(writer_command(target, w * 25, w * 25 + 100, 20, at, f"w{w}", path), cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(writers)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        results += [json.loads(line) for line in out.splitlines()]
    table = load_catalog(target).load_table(target.table)
    expected = sorted((event_uuid(i), t) for i in range((writers - 1) * 25 + 100) for t in (0, 1))
    assert keys(table) == expected  # each row exactly once
    assert sum(r["rows_added"] for r in results) == len(expected)
    snapshots = [s for s in snapshot_summaries(table)]
    assert len(snapshots) == sum(1 for r in results if r["rows_added"])
    return results


# rows: commit_rows; files: the batch run's pieces (data files checked at a base snapshot, one commit).
@pytest.mark.parametrize("path", ["rows", "files"])
def test_four_concurrent_writer_processes_on_sqlite(sqlite_target, path):
    results = _concurrent_writers(sqlite_target, path=path)
    print("attempts per commit:", sorted(r["attempts"] for r in results))


@pytest.mark.parametrize("path", ["rows", "files"])
def test_four_concurrent_writer_processes_on_postgresql(postgres_target, path):
    results = _concurrent_writers(postgres_target, path=path)
    assert any(r["rows_present"] for r in results)
    print("attempts per commit:", sorted(r["attempts"] for r in results))


def test_readers_pyiceberg_duckdb_polars_and_time_travel(sqlite_target, monkeypatch):
    import duckdb
    import polars as pl

    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # polars' own planner is a separate package

    catalog = load_catalog(sqlite_target)
    first = commit_rows(catalog, sqlite_target, make_rows(range(0, 10)), {"run-id": "r1"})
    commit_rows(catalog, sqlite_target, make_rows(range(10, 30)), {"run-id": "r2"})
    table = catalog.load_table("okta.events")

    arrow = table.scan(row_filter="event_type == 'personal.user.app_migration.export'").to_arrow()
    assert arrow.num_rows == 30 and set(arrow.column("event_type").to_pylist()) == {TYPES[1]}

    events = table.scan().to_arrow()  # noqa: F841 - DuckDB reads the Arrow table by its name
    counts = duckdb.sql("SELECT event_type, count(DISTINCT uuid) AS n FROM events GROUP BY 1 ORDER BY 1").fetchall()
    assert counts == [(TYPES[0], 15), (TYPES[1], 15)]

    frame = pl.scan_iceberg(table).filter(pl.col("target_index") == 0).select("uuid").collect()
    assert sorted(frame["uuid"].to_list()) == sorted(event_uuid(i) for i in range(30))

    then = table.scan(snapshot_id=first.snapshot_id).to_arrow()
    assert sorted(set(then.column("uuid").to_pylist())) == sorted(event_uuid(i) for i in range(10))


def test_configuration_problems_are_one_line_each(tmp_path):
    assert problems_of(IcebergTarget("events", "sqlite", None, str(tmp_path))) == [
        "--iceberg_table must look like NAMESPACE.TABLE (letters, digits, _), not 'events'"]
    assert problems_of(IcebergTarget("okta.events", "sql", "postgresql://u:secret@h/db", str(tmp_path))) == [
        "--iceberg_catalog_uri must not hold a password: use PGPASSWORD or ~/.pgpass"]
    assert problems_of(IcebergTarget("okta.events", "rest", None, None))[0].startswith("--iceberg_catalog=rest needs")
    assert problems_of(IcebergTarget("okta.events", "sqlite", None, "gs://b/wh"))[0].startswith("a gs:// or s3://")


def test_a_streaming_windows_lake_files_become_one_snapshot(sqlite_target, tmp_path):
    """The Beam-free step a streaming window would call after its lake commit (not wired into streaming yet)."""
    from schemas.arrow import file_schema
    from sinks.iceberg.commit import commit_lake_files
    from storage import fs

    lake = tmp_path / "lake"
    written = []
    for event_type in TYPES:
        rows = make_rows([i for i in range(20) if TYPES[i % 2] == event_type])
        partition = f"event_date=2026-11-05/event_type={event_type}"
        for n, part in enumerate((rows.slice(0, 10), rows.slice(10))):
            name = f"part-w20261105T000000Z-job-{n}.parquet"
            fs.write_parquet(str(lake / partition / name), part.drop_columns(["event_type"]).cast(file_schema()))
            written.append((partition, name))
    catalog = load_catalog(sqlite_target)
    window = commit_lake_files(catalog, sqlite_target, str(lake), written[:3], {"window": "w20261105T000000Z"})
    rest = commit_lake_files(catalog, sqlite_target, str(lake), [(p, None) for p, _ in written])
    table = catalog.load_table("okta.events")
    assert window.rows_added == 30 and rest.rows_added == 10 and rest.rows_present == 30
    assert keys(table) == sorted((event_uuid(i), t) for i in range(20) for t in (0, 1))
    assert [s.get("window") for s in snapshot_summaries(table)] == ["w20261105T000000Z", None]
