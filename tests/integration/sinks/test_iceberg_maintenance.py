"""``okta-personal-lake maintain``: compaction, snapshot expiry, orphan files; safe while a writer commits."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time

import pytest

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.commit import commit_rows
from sinks.iceberg.maintenance import compact, expire_snapshots, file_count, remove_orphan_files
from sinks.iceberg.settings import IcebergTarget
from tests.support.helpers import REPO, run_command
from tests.support.iceberg import DAY, event_uuid, make_rows, writer_command
from tools.maintain import main as maintain


@pytest.fixture
def target(tmp_path):
    return IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "lake" / "_iceberg"))


def keys(table):
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    return sorted(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))


def expected(stop: int, start: int = 0):
    return sorted((event_uuid(i), t) for i in range(start, stop) for t in (0, 1))


def test_compaction_rewrites_small_files_in_one_snapshot_and_keeps_every_row_and_time_travel(target):
    catalog = load_catalog(target)
    for low in range(0, 100, 10):  # ten windows: ten small files per partition
        commit_rows(catalog, target, make_rows(range(low, low + 10)), {"run-id": f"w{low}"})
    table = catalog.load_table(target.table)
    before, first = file_count(table), table.snapshots()[0].snapshot_id
    assert before == 20
    report = compact(catalog, target.table, run_id="maint-1")
    table = catalog.load_table(target.table)
    assert (report.partitions_compacted, report.files_rewritten, report.files_written) == (2, 20, 2)
    assert file_count(table) == 2 and keys(table) == expected(100)
    assert len(table.snapshots()) == 10 + 1  # both partitions in one snapshot
    summary = table.current_snapshot().summary
    assert report.snapshot_id == table.current_snapshot().snapshot_id
    assert (summary["okta-lake.run-id"], summary["okta-lake.operation"], summary["okta-lake.partitions"]) == (
        "maint-1", "compact", "2")
    assert [s.summary["okta-lake.run-id"] for s in table.snapshots()] == [f"w{i}" for i in range(0, 100, 10)] + [
        "maint-1"]
    assert keys_at(table, first) == expected(10)
    again = compact(catalog, target.table)  # nothing left to do: no snapshot
    assert again.partitions_compacted == 0 and again.snapshot_id is None
    assert len(catalog.load_table(target.table).snapshots()) == 11


def test_a_partition_another_compaction_replaced_meanwhile_is_left_out_of_the_commit(target, monkeypatch):
    from sinks.iceberg import maintenance

    catalog = load_catalog(target)
    for low in range(0, 40, 10):  # the first day: 4 small files per event type
        commit_rows(catalog, target, make_rows(range(low, low + 10)))
    for low in (100, 110):  # the next day: 2 small files per event type
        commit_rows(catalog, target, make_rows(range(low, low + 10), day=DAY + dt.timedelta(days=1)))
    first_day, real, mine = DAY.date().isoformat(), maintenance._rewrite_partitions, []

    def planned_then_another_run_compacts_the_first_day(table, target_bytes):
        mine.extend(real(table, target_bytes))
        other = catalog.load_table(target.table)
        transaction = other.transaction()
        overwrite = transaction.update_snapshot(snapshot_properties={"okta-lake.run-id": "other"}).overwrite()
        for rewrite in [r for r in real(other, target_bytes) if r.name.startswith(first_day)]:
            for data_file in rewrite.old:
                overwrite.delete_data_file(data_file)
            for data_file in rewrite.new:
                overwrite.append_data_file(data_file)
        overwrite.commit()
        transaction.commit_transaction()
        return list(mine)

    monkeypatch.setattr(maintenance, "_rewrite_partitions", planned_then_another_run_compacts_the_first_day)
    report = compact(catalog, target.table, run_id="mine")
    table = catalog.load_table(target.table)
    assert len(mine) == 4 and report.partitions_compacted == 2
    assert sorted(report.partitions_skipped) == sorted(r.name for r in mine if r.name.startswith(first_day))
    assert [s.summary["okta-lake.run-id"] for s in table.snapshots()][-2:] == ["other", "mine"]
    assert table.current_snapshot().summary["okta-lake.partitions"] == "2"
    assert file_count(table) == 4 and keys(table) == sorted(expected(40) + expected(120, start=100))
    dropped = [f.file_path for r in mine if r.name.startswith(first_day) for f in r.new]
    assert dropped and not any(os.path.exists(p.removeprefix("file://")) for p in dropped)


def keys_at(table, snapshot_id):
    arrow = table.scan(selected_fields=("uuid", "target_index"), snapshot_id=snapshot_id).to_arrow()
    return sorted(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))


def test_expiry_and_orphan_removal_keep_young_files_and_the_current_table(target):
    catalog = load_catalog(target)
    for low in range(0, 40, 10):
        commit_rows(catalog, target, make_rows(range(low, low + 10)))
    compact(catalog, target.table)
    table = catalog.load_table(target.table)
    stray_young = os.path.join(target.warehouse, "okta", "events", "data", "in-flight.parquet")
    stray_old = os.path.join(target.warehouse, "okta", "events", "data", "crashed-writer.parquet")
    for path in (stray_young, stray_old):
        with open(path, "wb") as handle:
            handle.write(b"PAR1")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stray_old, (two_days_ago, two_days_ago))

    report = expire_snapshots(catalog, target.table, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    assert report.snapshots_expired == len(table.snapshots()) - 1
    report = remove_orphan_files(catalog, target.table, dt.timedelta(hours=1))
    assert [os.path.basename(p) for p in report.orphans_removed] == ["crashed-writer.parquet"]
    assert os.path.exists(stray_young)
    # The old small files are unreferenced now; once they are old enough they go too.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    report = remove_orphan_files(catalog, target.table, dt.timedelta(hours=1), now=later)
    assert len([p for p in report.orphans_removed if p.endswith(".parquet")]) == 8 + 1  # 8 small files + stray
    table = catalog.load_table(target.table)
    assert keys(table) == expected(40) and file_count(table) == 2


def test_maintenance_while_a_writer_commits_loses_and_duplicates_nothing(target):
    catalog = load_catalog(target)
    commit_rows(catalog, target, make_rows(range(0, 10)))
    at = time.time() + 2.0
    # The writer re-sends events 0..9 too, and commits 10 small windows while maintenance runs.
    writer = subprocess.Popen(writer_command(target, 0, 110, 10, at, "writer"), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(max(0.0, at - time.time()))
    rounds = 0
    while writer.poll() is None or rounds == 0:
        compact(catalog, target.table, target_bytes=1024 * 1024)
        expire_snapshots(catalog, target.table, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
        remove_orphan_files(catalog, target.table, dt.timedelta(minutes=10))
        rounds += 1
    out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err[-3000:]
    table = catalog.load_table(target.table)
    assert keys(table) == expected(110)  # each row exactly once, every referenced file still there
    assert rounds >= 2
    print(f"maintenance rounds while the writer committed: {rounds}")


def test_the_command_line(target, capsys):
    catalog = load_catalog(target)
    for low in range(0, 30, 10):
        commit_rows(catalog, target, make_rows(range(low, low + 10)))
    lake = os.path.dirname(target.warehouse)
    done = run_command("maintain", f"--output={lake}", "--iceberg_table=okta.events", "--retention=1s")
    assert done.code == 0, done.stderr
    assert done.stdout.startswith("okta.events: compacted 2 partition(s): 6 file(s) -> 2 in snapshot ")
    table = load_catalog(target).load_table(target.table)
    run_id = table.current_snapshot().summary["okta-lake.run-id"]
    assert f"(okta-lake.run-id {run_id});" in done.stdout and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id)
    assert maintain(["--iceberg_table=okta.events", f"--output={lake}", "--run_id=nightly-7",
                     "--target_file_mb=1024"]) == 0  # one file per partition already: no snapshot
    assert table.current_snapshot().snapshot_id == load_catalog(target).load_table(target.table).current_snapshot(
    ).snapshot_id
    assert maintain(["--iceberg_table=okta.events", f"--output={lake}", "--run_id=-bad"]) == 2
    assert maintain(["--iceberg_table=okta.events", "--retention=soon", f"--output={lake}"]) == 2
    assert maintain(["--iceberg_table=okta.events", f"--output={lake}", "--runner=DirectRunner"]) == 2
    assert maintain(["--iceberg_table=okta.nothing", f"--output={lake}"]) == 1
    err = capsys.readouterr().err
    assert "--retention must be a duration" in err and "error: unknown option --runner" in err
    assert "--run_id must be 1 to 100 letters" in err
    assert "error: maintenance of okta.nothing failed" in err
