"""``okta-personal-lake maintain``: compaction, snapshot expiry, orphan files; safe while a writer commits."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time

import pytest

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.commit import commit_rows
from sinks.iceberg.maintenance import compact, expire_snapshots, file_count, remove_orphan_files
from sinks.iceberg.settings import IcebergTarget
from tests.support.helpers import REPO, run_command
from tests.support.iceberg import event_uuid, make_rows, writer_command
from tools.maintain import main as maintain


@pytest.fixture
def target(tmp_path):
    return IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "lake" / "_iceberg"))


def keys(table):
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    return sorted(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))


def expected(stop: int, start: int = 0):
    return sorted((event_uuid(i), t) for i in range(start, stop) for t in (0, 1))


def test_compaction_rewrites_small_files_and_keeps_every_row_and_time_travel(target):
    catalog = load_catalog(target)
    for low in range(0, 100, 10):  # ten windows: ten small files per partition
        commit_rows(catalog, target, make_rows(range(low, low + 10)))
    table = catalog.load_table(target.table)
    before, first = file_count(table), table.snapshots()[0].snapshot_id
    assert before == 20
    report = compact(catalog, target.table)
    table = catalog.load_table(target.table)
    assert (report.partitions_compacted, report.files_rewritten, report.files_written) == (2, 20, 2)
    assert file_count(table) == 2 and keys(table) == expected(100)
    assert table.current_snapshot().summary["okta-lake.operation"] == "compact"
    assert keys_at(table, first) == expected(10)
    assert compact(catalog, target.table).partitions_compacted == 0  # nothing left to do


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
    assert done.stdout.startswith("okta.events: compacted 2 partition(s): 6 file(s) -> 2;")
    assert maintain(["--iceberg_table=okta.events", "--retention=soon", f"--output={lake}"]) == 2
    assert maintain(["--iceberg_table=okta.events", f"--output={lake}", "--runner=DirectRunner"]) == 2
    assert maintain(["--iceberg_table=okta.nothing", f"--output={lake}"]) == 1
    err = capsys.readouterr().err
    assert "--retention must be a duration" in err and "error: unknown option --runner" in err
    assert "error: maintenance of okta.nothing failed" in err
