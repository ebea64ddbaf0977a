"""A batch run's Iceberg commit in pieces (sinks/iceberg/files.py): workers write data files checked at one base
snapshot, one step commits them; a writer committing in between never makes a row appear twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from schemas.arrow import file_schema
from sinks.iceberg import files as iceberg_files
from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.commit import commit_rows
from sinks.iceberg.files import PartitionFiles, base_snapshot, commit_partitions, new_commit_id, write_partition
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import snapshot_summaries
from storage import fs
from tests.support.iceberg import DAY, TYPES, event_uuid, make_rows

NEXT_DAY = DAY + dt.timedelta(days=1)


@pytest.fixture
def target(tmp_path):
    return IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))


def write_lake(lake: Path) -> list[str]:
    """Four lake partitions: events 0..39 on DAY and 100..139 on the next day, even ones TYPES[0], odd TYPES[1]."""
    partitions = []
    for day, indexes in ((DAY, range(0, 40)), (NEXT_DAY, range(100, 140))):
        for event_type in TYPES:
            rows = make_rows([i for i in indexes if TYPES[i % 2] == event_type], day=day)
            partition = f"event_date={day.date().isoformat()}/event_type={event_type}"
            fs.write_parquet(str(lake / partition / "part-0.parquet"),
                             rows.drop_columns(["event_type"]).cast(file_schema()))
            partitions.append(partition)
    return partitions


def rows_of(events_by_day) -> list:
    return [make_rows(list(indexes), day=day) for day, indexes in events_by_day]


def expected_keys(events) -> list[tuple]:
    return sorted((event_uuid(i), t) for i in events for t in (0, 1))


def table_keys(table) -> list[tuple]:
    """Every (uuid, target_index) of the table, counted by DuckDB over the pyiceberg scan: duplicates show."""
    scan = table.scan().to_arrow()  # noqa: F841 - read by DuckDB by name
    return [tuple(r) for r in duckdb.sql("SELECT uuid, target_index FROM scan ORDER BY 1, 2").fetchall()]


def data_files_on_disk(target) -> set[str]:
    return {"file://" + str(p) for p in Path(target.warehouse).rglob("data/**/*.parquet")}


def referenced(table) -> set[str]:
    return {task.file.file_path for task in table.scan().plan_files()}


def workers_write(catalog, target, lake: Path, partitions: list[str]) -> tuple:
    """(the base snapshot id, each partition's PartitionFiles): what the workers hand the commit step."""
    table, base = base_snapshot(catalog, target)
    return base, [write_partition(table, str(lake), p, base) for p in partitions]


def test_the_pieces_commit_one_snapshot_of_the_absent_rows(target, tmp_path):
    catalog = load_catalog(target)
    commit_rows(catalog, target, make_rows(range(0, 10)), {"run-id": "earlier"})
    partitions = write_lake(tmp_path / "lake")
    base, written = workers_write(catalog, target, tmp_path / "lake", partitions)
    assert [(w.rows_offered, w.rows_present, w.rows_added) for w in written] == [
        (40, 10, 30), (40, 10, 30), (40, 0, 40), (40, 0, 40)]
    assert len(snapshot_summaries(catalog.load_table(target.table))) == 1  # nothing committed yet

    result = commit_partitions(catalog, target, written, base, "c1", {"run-id": "run-1", "source": "file"})
    table = catalog.load_table(target.table)
    assert table_keys(table) == expected_keys([*range(0, 40), *range(100, 140)])
    assert (result.rows_added, result.rows_present, result.events_added, result.data_files) == (140, 20, 70, 4)
    [_, mine] = snapshot_summaries(table)
    assert mine["run-id"] == "run-1" and mine["commit-id"] == "c1" and mine["rows-added"] == "140"
    assert mine["snapshot_id"] == result.snapshot_id
    assert referenced(table) == data_files_on_disk(target)


def test_a_writer_committing_between_the_base_and_the_commit_leaves_each_row_once(target, tmp_path):
    catalog = load_catalog(target)
    commit_rows(catalog, target, make_rows(range(0, 10)), {"run-id": "earlier"})
    partitions = write_lake(tmp_path / "lake")
    base, written = workers_write(catalog, target, tmp_path / "lake", partitions)
    ours = {f.file_path for w in written for f in w.files}

    # Between the workers' check (at the base) and the commit, another writer commits events 30..49 of DAY
    # (overlapping both DAY partitions in part) and every odd event of the next day (all of that partition).
    for rows in rows_of([(DAY, range(30, 50)), (NEXT_DAY, range(101, 140, 2))]):
        commit_rows(catalog, target, rows, {"run-id": "other"})

    result = commit_partitions(catalog, target, written, base, "c1", {"run-id": "mine"})
    table = catalog.load_table(target.table)
    assert table_keys(table) == expected_keys([*range(0, 50), *range(100, 140)])  # each row once
    assert (result.rows_offered, result.rows_added, result.rows_present) == (160, 80, 80)
    summaries = snapshot_summaries(table)
    assert [s["run-id"] for s in summaries] == ["earlier", "other", "other", "mine"]
    assert summaries[-1]["rows-added"] == "80" and summaries[-1]["events-added"] == "40"
    # The next day's odd partition became present whole: its file is dropped; DAY's two are rewritten;
    # the next day's even one is committed as written. Dropped and replaced files are deleted.
    committed = referenced(table)
    assert len(ours & committed) == 1 and result.data_files == 3
    assert committed == data_files_on_disk(target)

    # The commit step again (a retry by the runner after it had committed): the same snapshot, nothing new.
    again = commit_partitions(catalog, target, written, base, "c1", {"run-id": "mine"})
    assert again.snapshot_id == result.snapshot_id and again.rows_added == 80
    assert len(snapshot_summaries(catalog.load_table(target.table))) == 4
    assert table_keys(catalog.load_table(target.table)) == expected_keys([*range(0, 50), *range(100, 140)])


def test_a_writer_committing_during_the_commit_makes_it_check_again(target, tmp_path, monkeypatch):
    catalog = load_catalog(target)
    partitions = write_lake(tmp_path / "lake")
    base, written = workers_write(catalog, target, tmp_path / "lake", partitions)
    real, calls = iceberg_files._committed_by, []

    def then_someone_commits(table, commit_id, since):  # after the committer loaded the table
        if not calls:
            calls.append(1)
            commit_rows(catalog, target, make_rows(range(20, 30)), {"run-id": "other"})
        return real(table, commit_id, since)

    monkeypatch.setattr(iceberg_files, "_committed_by", then_someone_commits)
    result = commit_partitions(catalog, target, written, base, new_commit_id(), {"run-id": "mine"})
    assert result.attempts == 2 and result.rows_added == 160 - 20
    table = catalog.load_table(target.table)
    assert table_keys(table) == expected_keys([*range(0, 40), *range(100, 140)])
    assert [s["run-id"] for s in snapshot_summaries(table)] == ["other", "mine"]
    assert referenced(table) == data_files_on_disk(target)


def test_a_base_snapshot_expired_meanwhile_is_checked_against_the_whole_table(target, tmp_path):
    catalog = load_catalog(target)
    commit_rows(catalog, target, make_rows(range(0, 4)), {"run-id": "earlier"})
    partitions = write_lake(tmp_path / "lake")
    base, written = workers_write(catalog, target, tmp_path / "lake", partitions)
    commit_rows(catalog, target, make_rows(range(100, 110), day=NEXT_DAY), {"run-id": "other"})
    catalog.load_table(target.table).maintenance.expire_snapshots().by_ids([base]).commit()
    assert catalog.load_table(target.table).snapshot_by_id(base) is None

    result = commit_partitions(catalog, target, written, base, new_commit_id(), {"run-id": "mine"})
    assert result.rows_added == 160 - 8 - 20
    assert table_keys(catalog.load_table(target.table)) == expected_keys([*range(0, 40), *range(100, 140)])


def test_nothing_new_is_no_snapshot(target, tmp_path):
    catalog = load_catalog(target)
    partitions = write_lake(tmp_path / "lake")
    for day, indexes in ((DAY, range(0, 40)), (NEXT_DAY, range(100, 140))):
        commit_rows(catalog, target, make_rows(list(indexes), day=day))
    base, written = workers_write(catalog, target, tmp_path / "lake", partitions)
    assert all(not w.files and w.rows_present == 40 for w in written)
    result = commit_partitions(catalog, target, written, base, new_commit_id(), {"run-id": "again"})
    assert result.snapshot_id == base and result.rows_added == 0 and result.data_files == 0
    assert len(snapshot_summaries(catalog.load_table(target.table))) == 2


def test_data_files_cross_a_beam_shuffle_intact(target, tmp_path):
    """Beam's default coder (what a PCollection of these uses) pickles pyiceberg's DataFile exactly."""
    from apache_beam.coders import registry
    from apache_beam.typehints import Any

    catalog = load_catalog(target)
    partitions = write_lake(tmp_path / "lake")
    table, base = base_snapshot(catalog, target)
    part = write_partition(table, str(tmp_path / "lake"), partitions[0], base)
    coder = registry.get_coder(Any)
    back = coder.decode(coder.encode(part))
    assert isinstance(back, PartitionFiles) and back.partition == part.partition and back.ranges == part.ranges
    assert [f._data for f in back.files] == [f._data for f in part.files]  # every statistic and bound
    assert back.files[0].partition == part.files[0].partition
    result = commit_partitions(catalog, target, [back], base, new_commit_id())
    assert result.rows_added == 40
    assert table_keys(catalog.load_table(target.table)) == expected_keys(range(0, 40, 2))


def test_a_worker_that_fails_while_writing_leaves_no_file(target, tmp_path, monkeypatch):
    import pyiceberg.io.pyarrow as pyiceberg_arrow

    catalog = load_catalog(target)
    partitions = write_lake(tmp_path / "lake")
    table, base = base_snapshot(catalog, target)
    real = pyiceberg_arrow._dataframe_to_data_files

    def then_fails(**kwargs):
        yield from real(**kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(pyiceberg_arrow, "_dataframe_to_data_files", then_fails)
    with pytest.raises(OSError, match="disk full"):
        write_partition(table, str(tmp_path / "lake"), partitions[0], base)
    assert data_files_on_disk(target) == set()
